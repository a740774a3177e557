// The search: every strategy family's candidates (planner/families.hpp), ranked.
#pragma once

#include <memory>
#include <vector>

#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"
#include "planner/families.hpp"
#include "planner/schedule.hpp"

namespace dnnplan::planner {

struct SearchResult {
    std::vector<Candidate> ranked;  // feasible by iteration time, then infeasible ones
    int feasible_count = 0;
    int infeasible_count = 0;
    long long layout_evaluations = 0;  // segment-layout and edge evaluations in the search
    // The pipeline / 3-D search (planner/pipeline.hpp): configurations scored, skipped because S,
    // R, T or M do not divide P or the batch, and scored but over memory.
    long long pipeline_configurations = 0, pipeline_skipped = 0, pipeline_over_memory = 0;
    const Candidate* best() const { return feasible_count > 0 ? &ranked.front() : nullptr; }
    const Candidate* find(Strategy strategy) const;  // the best-ranked of the family
};

// Which families search() ranks beyond the layer-parallel ones (uniform grids and per-layer).
struct SearchOptions {
    bool pipelines = true;  // pipeline, tp-pp-dp and graph-partition
    // Only pipeline and tp-pp-dp plans have these dimensions: when any is set, the layer-parallel
    // and graph-partition families are left out and the pipeline search keeps only matching ones.
    PipelineNarrowing narrowing;
    // The per-layer local improvement's trials: incremental (planner/rescore.hpp) or full scores, the
    // reference the tests compare the incremental ones with.
    TrialScoring trial_scoring = TrialScoring::incremental;
};

SearchResult search(const CostModel& model, const SearchOptions& options = {});

// Processes per node as a plan dimension (clusters/processes_per_node.hpp): P processes on P / k
// nodes, k from processes_per_node_choices(cluster).
enum class PlacementOutcome {
    searched,       // every family searched on the cluster viewed with k processes per node
    not_divisible,  // P is not a multiple of k
    too_few_nodes,  // P / k nodes exceed the cluster's (k = 1: P exceeds its devices)
    bounded_out,    // its compute lower bound is already no better than a smaller k's best plan
};
std::string to_string(PlacementOutcome outcome);
struct PlacementTrial {
    int processes_per_node = 1;
    PlacementOutcome outcome = PlacementOutcome::searched;
    double lower_bound_s = 0;     // compute_lower_bound for this k
    double best_iteration_s = 0;  // searched: the best feasible plan's (0 when none is feasible)
};
struct PlacementSearch {
    std::unique_ptr<CostModel> model;  // for the chosen k; refers to the network and cluster given
    SearchResult result;               // search(*model): every candidate has the chosen k
    std::vector<PlacementTrial> trials;
};
// No plan at k processes per node can be faster than this: the network's forward and weight-gradient
// FLOPs over P devices at the peak of 1/k of a node (every family computes all of them, once at
// least, and no operation runs above peak; the input gradient is left out because the first layer
// needs none).
double compute_lower_bound(const networks::Network& network, const clusters::Cluster& cluster,
                           const PlannerOptions& options, int processes_per_node);
// Searches every k of processes_per_node_choices(cluster) that P allows, in ascending order, and keeps
// the fastest feasible best plan (a tie keeps the smaller k; none feasible: the smallest k tried).
// A k is skipped without a search when its compute_lower_bound is no better than the best found.
// `options.processes_per_node` is ignored. std::invalid_argument when no k fits P and the cluster
// (the input edge checks P against nodes x the largest choice first).
PlacementSearch search_processes_per_node(const networks::Network& network, const clusters::Cluster& cluster,
                                          PlannerOptions options, const SearchOptions& search_options = {});

}  // namespace dnnplan::planner
