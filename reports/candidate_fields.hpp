// The named fields every machine-readable ranking carries for a candidate (plan --format csv/json,
// the report's ranked table, sweep rows): its family and configuration, decided on the typed
// Candidate fields (strategy, grid, pipeline), never on its label, and the time components that add
// up to iteration_s. Documented in planner/README.md ("Machine-readable rankings") and
// docs/plan-ranking.schema.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/diagnostics.hpp"
#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"

namespace dnnplan::reports {

// strategy, pr, pc, tensor, stages, replicas, micro_batches, micro_batch_size, schedule, interleave,
// zero, recompute, sequence_parallel, processes_per_node: in this order, in every CSV and JSON ranking.
const std::vector<std::string>& config_keys();

// The configuration of `c` for a global batch `batch`: every key of config_keys(), null where it
// does not apply. Grid families (batch, model, domain, grid-model, grid-domain): pr, pc. Pipelines
// and tp-pp-dp: tensor, stages, replicas, micro_batches, micro_batch_size (= batch / (replicas x
// micro_batches)), schedule, interleave (model chunks per device, 1 without interleaving), zero, recompute ("none", "selective" or "full"), sequence_parallel.
// Graph partitions: stages (k devices), tensor (1),
// replicas, micro_batches, micro_batch_size, schedule (GPipe order); zero, recompute and
// sequence_parallel null (the
// family has neither). Every family: processes_per_node (k processes share a node; 1 on GPU
// clusters). Per-layer: only strategy and processes_per_node. A hand-edited plan: the pipeline fields when its
// pipeline block is active.
Json candidate_config(const planner::Candidate& c, std::int64_t batch);
// The same as CSV cells in config_keys() order: "" where null, true/false, integers.
std::vector<std::string> candidate_config_cells(const planner::Candidate& c, std::int64_t batch);

// The time components, in the order they are stacked; they add up to iteration_s:
// fwd_compute_s + bwd_compute_s + the seven communication kinds (planner::kAllCommKinds) +
// sync_contention_s + sync_exposed_s + bubble_s.
struct TimeComponent {
    std::string key;    // "fwd_compute_s", "point_to_point_s", ...
    std::string label;  // "forward compute", "point-to-point", ...
    double (*field)(const planner::CostBreakdown&) = nullptr;
    planner::CommKind kind = planner::CommKind::all_reduce;  // for the communication components
    bool is_comm = false;
    double of(const planner::CostBreakdown& c) const { return is_comm ? c.comm(kind) : field(c); }
};
const std::vector<TimeComponent>& time_components();

// Achieved FLOP/s per device of a candidate, both conventions (0 when its iteration time is not
// positive): model FLOP/s counts the network's forward and backward once (MFU-style, what papers
// quoting model FLOPs utilisation use); hardware FLOP/s adds the forward work recomputation
// redoes (what papers quoting "achieved teraFLOP/s" with recomputation count, e.g. Narayanan et
// al. 2021). planner::model_flops_per_device / hardware_flops_per_device over iteration_s.
struct Throughput {
    double model_flops_per_s = 0, hardware_flops_per_s = 0;
};
Throughput throughput(const planner::CostModel& model, const planner::Candidate& c);

}  // namespace dnnplan::reports
