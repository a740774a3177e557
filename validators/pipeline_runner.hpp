// The pipeline runner (issue 17, item 1): a pipeline plan on real MPI ranks. Rank
// t + T (s + S r) is tensor rank t of stage s of replica r (planner/pipeline.hpp); each stage runs
// its layers on the micro-batches in the plan's exact order (planner::pipeline_order), receiving
// activations from stage s - 1 and partial errors from stage s + 1 by point-to-point messages;
// a stage keeps one weight and one gradient per layer, into which every micro-batch accumulates;
// the replicas all-reduce each stage's weight gradients, each layer's from its last backward on
// under the plan's overlap (ZeRO-1: reduce-scatter, each replica
// updates its slice of the parameters, all-gather); with recomputation a stage keeps only its
// input per micro-batch and redoes the forward right before the backward. Checked in double
// against the sequential network (loss, every weight gradient, SGD losses), timed in fp32 per
// stage and per operation with the measured bubble, and every send counted in a byte ledger that
// must equal the plan's CommCalls (validators/ledger.hpp).
#pragma once

#include <mpi.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "planner/pipeline.hpp"
#include "planner/pipeline_program.hpp"
#include "validators/ledger.hpp"
#include "validators/runner.hpp"

namespace dnnplan::validators {

// Why the runner cannot run this spec ("" when it can): graph partitions (device_of) are not run;
// stages of T ranks run their layers tensor-parallel, interleaved schedules their V chunks.
std::string pipeline_unsupported_reason(const planner::PipelineSpec& spec);

// One operation of a stage: the forward or backward pass of a micro-batch on one of the stage's
// model chunks (an interleaved schedule gives a stage several chunks; GPipe and 1F1B one).
struct StageOp {
    int chunk = 0;
    int micro = 0;
    bool forward = true;
};
// The order stage `stage` runs its operations in: planner::pipeline_order (V chunks when interleaved).
std::vector<StageOp> stage_ops(const planner::PipelineSpec& spec, int stage);

// One weight and gradient storage per layer for the runners of a device's micro-batch slots, as
// GPipe, PipeDream-1F1B and Megatron-LM keep it: every micro-batch reads the same weights and
// accumulates its gradient in place. The slots' own shards stay empty and are lent the storage for
// the operation they run (Loan: Shard::trade, O(1), no element copy). The pipeline runner's model
// chunks and the graph-partition runner's devices use it.
template <class T>
struct LentParameters {
    // Per layer with weights: the storage (map nodes stay put, also when this moves).
    std::map<int, Shard<T>> params;
    // Per slot: (layer, (the runner's shard, the storage of the layer)), for the loans.
    std::vector<std::vector<std::pair<int, std::pair<Shard<T>*, Shard<T>*>>>> lend;
    // Per layer with weights: the shard holding its storage now (a runner's during a loan).
    std::map<int, Shard<T>*> holder;

    // `slots[s]`: slot s's runner's shards by layer. The first slot's buffers become the storage
    // (moved, not copied); every other slot's own are released (the same initial values: the
    // layers fill them from global indices).
    void adopt(const std::vector<std::vector<std::pair<int, Shard<T>*>>>& slots) {
        for (const auto& [index, sh] : slots.at(0)) params.emplace(index, std::move(*sh));
        for (const auto& slot : slots) {
            lend.emplace_back();
            for (const auto& [index, sh] : slot) {
                Shard<T>().trade(*sh);  // released
                lend.back().push_back({index, {sh, &params.at(index)}});
            }
        }
        for (auto& [index, storage] : params) holder[index] = &storage;
    }
    // Lends the storage to slot `slot`'s runner for one operation, and takes it back.
    class Loan {
    public:
        Loan(LentParameters& p, std::size_t slot) : p_(p), slot_(slot) { trade(true); }
        ~Loan() { trade(false); }
        Loan(const Loan&) = delete;
        Loan& operator=(const Loan&) = delete;

    private:
        void trade(bool lending) {
            for (auto& [index, pair] : p_.lend[slot_]) pair.first->trade(*pair.second);
            for (auto& [index, pair] : p_.lend[slot_]) p_.holder[index] = lending ? pair.first : pair.second;
        }
        LentParameters& p_;
        std::size_t slot_;
    };
};

// What the plan says rank `rank` sends in one iteration, per model chunk: M activations of
// B / (R M) samples to the same tensor rank of the next stage and M partial errors to the previous
// one (PipelineProgram::Stage::recv_bytes), M times the stage-internal tensor-parallel calls of
// its layers (PipelineProgram::micro), and each of its layers' gradient synchronisation calls
// (PipelineProgram::sync: bytes, group size).
ByteLedger planned_ledger(const planner::PipelineProgram& program, const planner::PipelineSpec& spec, int rank);

struct PipelineRunResult {
    RunResult run;        // check, iteration and per-operation medians (slowest rank)
    Json details;         // rank 0: spec, per-stage measured and predicted times, the bubble, the ledger
    bool ledger_agrees = true;
};

// `anchor_layouts`: the plan's layouts (every one a single process here). The byte ledger is
// compared after the last timed iteration (fp32: the plan's dtype decides the planned bytes).
PipelineRunResult run_pipeline(const planner::CostModel& model, const planner::PipelineSpec& spec,
                               const std::vector<planner::Layout>& anchor_layouts, const RunOptions& options,
                               MPI_Comm comm);

// Adds each pipeline plan's details under "pipeline" in the results document (plans in the same
// order), "ledger_agrees" at the top, and fails the checks when any ledger differs from its plan.
void attach_pipeline_results(Json& results, const std::vector<PipelineRunResult>& pipelines);
// The pipeline plans' per-stage table, bubble and ledger verdict for the text output ("" when none).
std::string pipeline_text(const Json& results);

}  // namespace dnnplan::validators
