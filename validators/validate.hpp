// `dnnplan validate` without the MPI launch: which plans to run (plan files, or the search's
// candidates for a network), the checks before anything starts (P against the ranks, memory), and
// the report of predicted against measured times (JSON, text, Chrome trace).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"
#include "planner/pipeline.hpp"
#include "validators/image.hpp"
#include "validators/runner.hpp"

namespace dnnplan::validators {

struct PlanJob {
    std::string label;         // plan file, or the candidate's strategy and grid
    std::string file;          // the plan file ("" for search candidates), for diagnostics
    std::string network_file;  // the network spec it runs
    std::shared_ptr<const networks::Network> network;
    std::shared_ptr<const clusters::Cluster> cluster;
    std::string cluster_source;
    std::shared_ptr<const planner::CostModel> model;
    planner::Strategy strategy = planner::Strategy::hand_edited;
    std::string grid;  // the candidate's label
    planner::ScoredPlan scored;  // the prediction on `cluster`
    std::vector<planner::Layout> layouts;  // the anchor layouts `scored` was scored with
    planner::PipelineSpec pipeline;  // a pipeline plan's block (inactive for layer-parallel plans)
};

// A plan file as written by `dnnplan plan --out`; its layouts are re-scored on `cluster_override`
// (a file or preset name; "" keeps the plan's own cluster); `image` re-infers the network at another
// input size (--image). InputError on any problem.
PlanJob load_plan_job(const std::string& file, const std::string& cluster_override, const std::string& data_dir,
                      const ImageSize& image = {});

// The feasible candidates of the planner's search (uniform families and per-layer) for a network
// on `procs` processes; `strategies` filters by name ("all" keeps every one).
std::vector<PlanJob> search_jobs(const std::string& net, std::int64_t procs, std::int64_t batch,
                                 const std::string& cluster, const std::vector<std::string>& strategies,
                                 const std::string& data_dir, const ImageSize& image = {});

// InputError (naming the plan file and pointer) when the plan is for another P than `ranks`, when
// the validator cannot run the network, or when `ranks` copies of it need more memory than this
// machine has available.
void check_runnable(const PlanJob& job, int ranks);

// Kendall's tau-a between two rankings given as values (ties count as neither concordant nor discordant).
double kendall_tau(const std::vector<double>& a, const std::vector<double>& b);

// The plan `pipeline` (inactive: layer-parallel; device_of set: a graph partition) with `layouts`,
// scored by `model` as the planner scores its family.
planner::ScoredPlan score_plan(const planner::CostModel& model, const planner::PipelineSpec& pipeline,
                               const std::vector<planner::Layout>& layouts);

// The results document. A plan whose run timed the speed reference, predicted on a cluster spec
// that `dnnplan calibrate` timed it in, is also scored at the run's compute speed
// (clusters::at_compute_speed, slowdown = the run's reference time over the calibration's):
// "speed", "predicted_at_run_speed" and "relative_error_at_run_speed" per plan, and the summary
// with the suffix "_at_run_speed" when every plan has them.
Json results_json(const std::vector<PlanJob>& jobs, const std::vector<RunResult>& results, const RunOptions& options,
                  int ranks);
std::string results_text(const Json& results);
// Chrome trace event format in the convention of common/timeline.hpp (source "measured").
Json trace_json(const std::vector<PlanJob>& jobs, const std::vector<RunResult>& results);

// Tolerances of the checks (issue 6): forward and gradients 1e-10 relative, SGD losses 1e-8.
constexpr double kValueTolerance = 1e-10;
constexpr double kLossTolerance = 1e-8;

}  // namespace dnnplan::validators
