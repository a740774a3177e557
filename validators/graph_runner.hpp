// The graph-partition runner (issue 17, item 1): a graph-partition plan (planner/graph_partition.hpp)
// on real MPI ranks. Rank dev + k r runs device dev of replica r: the operations of the layers the
// plan's device_of puts on it, in the model's list order (simulator/replay_graph.cpp: every
// micro-batch's forwards, layers ascending, then every micro-batch's backwards, layers descending),
// receiving each cut tensor (a producer -> consumer edge between two devices,
// GraphPartitionProgram::transfers) from the producer's device before the consumer's forward and
// sending its gradient back after the consumer's backward; after a layer's last backward the
// replicas all-reduce its weight gradients. Each layer runs on one process with the layer-parallel
// runner's kernels (NetworkRunner::forward_one / backward_one, one runner per micro-batch holding
// that micro-batch's saved activations). Checked in double against the sequential network, timed in
// fp32 per device and per operation, and every send of the last timed iteration counted through
// MPI's profiling interface (validators/ledger.hpp) and compared with the plan's transfers and
// syncs: a difference fails the run.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "planner/graph_partition.hpp"
#include "validators/ledger.hpp"
#include "validators/runner.hpp"

namespace dnnplan::validators {

// Why the runner cannot run this graph partition ("" when it can): ZeRO-1 and recomputation
// (the planner's search writes neither for graph partitions).
std::string graph_unsupported_reason(const planner::PipelineSpec& spec);

// What the plan says rank `rank` sends in one iteration: per cut tensor whose producer is on its
// device, M forward messages to the consumer's device (layer: the producer), per cut tensor whose
// consumer is on its device, M gradient messages back (layer: the consumer), each of
// GraphPartitionProgram::Transfer::bytes; and its layers' gradient syncs (bytes, group size).
ByteLedger graph_planned_ledger(const planner::GraphPartitionProgram& program, const planner::PipelineSpec& spec,
                                int rank);

struct GraphRunResult {
    RunResult run;  // check, iteration and per-operation medians (slowest rank)
    Json details;   // rank 0: spec, per-device measured and predicted times, the ledger
    bool ledger_agrees = true;
};

// `layouts`: the plan's layouts (every one a single process).
GraphRunResult run_graph(const planner::CostModel& model, const planner::PipelineSpec& spec,
                         const std::vector<planner::Layout>& layouts, const RunOptions& options, MPI_Comm comm);

// Adds each graph-partition plan's details under "graph_partition" in the results document (plans
// in the same order), ANDs "ledger_agrees" and fails the checks when a ledger differs from its plan.
void attach_graph_results(Json& results, const std::vector<GraphRunResult>& graphs);
// The per-device table and the ledger verdict for the text output ("" when no graph partition ran).
std::string graph_text(const Json& results);

}  // namespace dnnplan::validators
