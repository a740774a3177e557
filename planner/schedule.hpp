// Pipeline schedules (GPipe, 1F1B): how a plan is pipelined and replicated, the order each stage
// runs its micro-batches in, and when each stage's last backward ends.
#pragma once

#include <string>
#include <vector>

namespace dnnplan::planner {

enum class Schedule { gpipe, one_f_one_b };

// The most micro-batches a pipeline is cut into. A bound on work, not a model constant: the search
// scores every M up to it and the 1F1B walk keeps S x M end times, so an unbounded M (a batch of
// 2^31) would make planning time and memory grow with the batch; published schedules use far
// fewer (GPT-3 on 3,072 A100s: 1,536 per batch of 1,536 sequences spread over the replicas).
inline constexpr int kMaxMicroBatches = 4096;
std::string to_string(Schedule schedule);

// Activation recomputation (Korthikanti et al. 2022, section 5): none; selective (the attention
// core, the s x s score and softmax tensors, is redone in the backward pass); full (only each
// transformer layer's input is kept, one checkpoint per layer, and the whole forward is redone;
// networks without attention keep each stage's input).
enum class Recompute { none, selective, full };
std::string to_string(Recompute recompute);

// How a plan is pipelined and replicated. The default (one stage, one micro-batch, one replica,
// no ZeRO, no recomputation) is the plain layer-parallel plan.
struct PipelineSpec {
    int tensor = 1;         // T: processes of one stage (its layouts' process count)
    int stages = 1;         // S (graph partitions: the devices of one replica)
    int micro_batches = 1;  // M: the per-replica batch B / R is cut into M micro-batches
    int replicas = 1;       // R: data-parallel copies of the whole pipeline; P = T x S x R
    Schedule schedule = Schedule::gpipe;
    bool zero = false;             // ZeRO stage 1: optimizer state sharded over the R replicas
    Recompute recompute = Recompute::none;
    bool sequence_parallel = false;  // Korthikanti et al.: layernorm/dropout split by T, AR -> RS + AG
    std::vector<int> stage_first;  // first layer index of each stage (stage 0 starts at layer 1)
    std::vector<int> device_of;    // graph partition only: the device (0..stages-1) of every layer
    bool active() const {
        return stages > 1 || micro_batches > 1 || replicas > 1 || zero || recompute != Recompute::none || sequence_parallel || !device_of.empty();
    }
    bool operator==(const PipelineSpec&) const = default;
};

// One operation of a pipeline stage: the forward or the backward pass of a micro-batch.
struct PipelineOp {
    bool forward = true;
    int micro = 0;
    bool operator==(const PipelineOp&) const = default;
};
// Operation k of stage `stage`'s order, without building the list (the search walks millions).
PipelineOp op_at(Schedule schedule, int stages, int stage, int micro_batches, int k);
// The order stage `stage` of `stages` runs its M micro-batches in (the simulator replays it).
// GPipe: all forwards, then all backwards. 1F1B: min(S - s - 1, M) warm-up forwards, then one
// forward and one backward in turn, then the remaining backwards.
std::vector<PipelineOp> pipeline_order(Schedule schedule, int stages, int stage, int micro_batches);

// When each stage's last backward ends, stages running their pipeline_order with per-micro-batch
// forward and backward seconds F[s] and B[s] (each including its receive): an operation starts
// once the stage is free and its input is there (the previous stage's forward of the same
// micro-batch; the next stage's backward, or the stage's own forward on the last stage). The
// first element is the schedule's makespan. GPipe in closed form (two flow shops of identical
// jobs), 1F1B by walking the dependency graph once (O(S M)).
// `last_extra` (optional, per stage) lengthens the stage's backward of the last micro-batch (its
// gradient arrives late).
std::vector<double> last_backward_ends(const std::vector<double>& F, const std::vector<double>& B, Schedule schedule,
                                       int micro_batches, const std::vector<double>& last_extra = {});

}  // namespace dnnplan::planner
