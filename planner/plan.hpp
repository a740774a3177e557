// The Plan document: what `plan` chose and what `simulate`, `validate` and `report` read back.
// Schema in planner/README.md.
#pragma once

#include <string>
#include <vector>

#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"
#include "planner/pipeline.hpp"

namespace dnnplan::planner {

struct Plan {
    std::string network_name, network_source, network_fingerprint;
    std::string cluster_name, cluster_source;
    PlannerOptions options;
    Strategy strategy = Strategy::hand_edited;
    std::string label;                                    // the candidate's label ("grid" in the document)
    std::vector<std::pair<std::string, Layout>> layouts;  // anchor layer name -> layout
    ScoredPlan scored;
    PipelineSpec pipeline;  // the "pipeline" block (planner/pipeline.hpp)
};

// Where the plan's network and cluster came from, as the user named them (kept in the document so
// that simulate, validate and report load the same ones).
struct PlanSources {
    std::string network, cluster;
};
// The Plan document of a scored candidate: every anchor's layout by name, its scored plan and pipeline.
Plan make_plan(const CostModel& model, const Candidate& candidate, const PlanSources& sources);

// A digest of the network's layers (names, kinds, shapes, parameters) to catch plans for
// another network.
std::string network_fingerprint(const networks::Network& network);

Json plan_to_json(const Plan& plan, const CostModel& model);
Json cost_to_json(const CostBreakdown& cost);

// What a plan file asks for, before the network and cluster are loaded.
struct PlanRequest {
    std::string network_source, network_fingerprint, cluster_name, cluster_source;
    std::string network_name;  // as the plan file names it (for messages; optional in the file)
    PlannerOptions options;
    Strategy strategy = Strategy::hand_edited;  // a name dnnplan does not know reads as hand-edited
    std::string label;
    std::vector<std::pair<std::string, Layout>> layouts;
    std::vector<std::string> layout_pointers;  // JSON pointer of each layout, for diagnostics
    PipelineSpec pipeline;                     // stage_first and device_of resolved by pipeline_for()
    std::vector<std::pair<std::string, std::string>> stage_ranges;  // first and last layer name per stage
};
PlanRequest parse_plan_request(const Json& json, const std::string& file);

// Checks what a CostModel needs of the cluster before one is built for the request (the dtype has
// a peak rate, P fits the devices); InputError with the plan's pointer otherwise.
void check_request_fits_cluster(const PlanRequest& request, const clusters::Cluster& cluster, const std::string& file);

// Checks the request against the network and cluster (fingerprint, cluster name, P, layouts naming every anchor
// and dividing P) and returns the anchors' layouts; InputError with the plan's pointer otherwise.
std::vector<Layout> layouts_for(const PlanRequest& request, const CostModel& model, const std::string& file);

// The request's pipeline block resolved against the network (stage and device layer names to
// indices) and checked (pipeline_problem); InputError at /pipeline otherwise.
PipelineSpec pipeline_for(const PlanRequest& request, const CostModel& model, const std::string& file);

// The saved plan as a candidate scored by `model` (what `plan --plan` and `report --plan` show):
// layouts_for() and pipeline_for() checks, then the score. A pipeline's label states M, the
// schedule and the scored figures, so it is made anew from the plan's spec (a hand-edited M gets
// its own label); other families keep the saved one.
Candidate rescored_candidate(const PlanRequest& request, const CostModel& model, const std::string& file);

}  // namespace dnnplan::planner
