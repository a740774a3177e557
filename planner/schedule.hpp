// Pipeline schedules (GPipe, 1F1B): how a plan is pipelined and replicated, the order each stage
// runs its micro-batches in, and when each stage's last backward ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dnnplan::planner {

enum class Schedule { gpipe, one_f_one_b };

// The most micro-batches a pipeline is cut into. A bound on work, not a model constant: the 1F1B
// walk takes O(S M V) time (its memory is O(S V)), so an unbounded M (a batch of 2^31) would make
// planning time grow with the batch; published schedules use far
// fewer (GPT-3 on 3,072 A100s: 1,536 per batch of 1,536 sequences spread over the replicas).
inline constexpr int kMaxMicroBatches = 4096;
std::string to_string(Schedule schedule);
// The most model chunks per device the search tries (V = 2, 4, 8; --interleave may ask for more):
// a bound on the search's work, not a model constant (each doubling of V halves the bubble's share
// but doubles the point-to-point traffic, so the gain shrinks quickly).
inline constexpr int kMaxSearchInterleave = 8;

// Activation recomputation (Korthikanti et al. 2022, section 5): none; selective (the attention
// core, the s x s score and softmax tensors, is redone in the backward pass); full (only each
// transformer layer's input is kept, one checkpoint per layer, and the whole forward is redone;
// networks without attention keep each stage's input).
enum class Recompute { none, selective, full };
std::string to_string(Recompute recompute);

// A stage's (or device's) optimizer step under `spec`: ZeRO-1 updates 1 / R of it on each replica.
struct PipelineSpec;
double optimizer_step_share(double step_s, const PipelineSpec& spec);

// How a plan is pipelined and replicated. The default (one stage, one micro-batch, one replica,
// no ZeRO, no recomputation) is the plain layer-parallel plan.
struct PipelineSpec {
    int tensor = 1;         // T: processes of one stage (its layouts' process count)
    int stages = 1;         // S (graph partitions: the devices of one replica)
    int micro_batches = 1;  // M: the per-replica batch B / R is cut into M micro-batches
    int replicas = 1;       // R: data-parallel copies of the whole pipeline; P = T x S x R
    Schedule schedule = Schedule::gpipe;
    // V: model chunks per device (interleaved 1F1B, Narayanan et al. SC'21 section 2.2.2). Device d
    // runs virtual stages d, d + S, ..., d + (V - 1) S; stage_first then holds S x V chunk starts.
    int interleave = 1;
    bool zero = false;             // ZeRO stage 1: optimizer state sharded over the R replicas
    Recompute recompute = Recompute::none;
    bool sequence_parallel = false;  // Korthikanti et al.: layernorm/dropout split by T, AR -> RS + AG
    std::vector<int> stage_first;  // first layer index of each stage (stage 0 starts at layer 1)
    std::vector<int> device_of;    // graph partition only: the device (0..stages-1) of every layer
    bool active() const {
        return stages > 1 || micro_batches > 1 || replicas > 1 || zero || recompute != Recompute::none || sequence_parallel || !device_of.empty();
    }
    int virtual_stages() const { return stages * interleave; }
    bool operator==(const PipelineSpec&) const = default;
};

// What the user fixed of the pipeline search (the CLI's --recompute, --sequence-parallel and
// --micro-batch-size without an explicit pipeline); every other dimension is still searched.
struct PipelineNarrowing {
    std::optional<Recompute> recompute;
    std::optional<bool> sequence_parallel;
    std::int64_t micro_batch_size = 0;  // samples per micro-batch; 0: any
    bool any() const { return recompute || sequence_parallel || micro_batch_size > 0; }
};

// Why interleaving cannot be used with this spec ("" when it can, always for V = 1): V > 1 needs
// 1F1B, at least two stages, no graph partition and M a multiple of S (Megatron-LM's condition).
std::string interleave_problem(const PipelineSpec& spec);

// The micro-batch counts the search scores for a per-replica batch n and S stages: the divisors
// of n (at most kMaxMicroBatches) that are a power of two, S times a power of two, or n over a
// power of two (a micro-batch size of 1, 2, 4, ...). At most 3 x 13 values whatever n, so the
// search's cost does not grow with the batch; increasing order.
std::vector<int> micro_batch_counts(std::int64_t per_replica_batch, int stages);

// One operation of a pipeline stage: the forward or the backward pass of a micro-batch on one of
// the device's model chunks (always 0 without interleaving).
struct PipelineOp {
    bool forward = true;
    int micro = 0;
    int chunk = 0;
    bool operator==(const PipelineOp&) const = default;
};
// Interleaved 1F1B's warm-up forwards on device `stage` (Megatron-LM,
// megatron/core/pipeline_parallel/schedules.py, forward_backward_pipelining_with_interleaving):
// 2 (S - d - 1) + (V - 1) S, at most M V, and all M V when M = S.
int interleaved_warmup(int stages, int stage, int micro_batches, int interleave);
// Operation k of stage `stage`'s order, without building the list (the search walks millions).
PipelineOp op_at(Schedule schedule, int stages, int stage, int micro_batches, int k, int interleave = 1);
// The same operations in order, one at a time without divisions: the 1F1B walk asks for every
// operation of every configuration the search scores, and op_at's index arithmetic was most of
// the search's time. next() gives op_at(schedule, stages, stage, M, k, V) for k = 0, 1, ...
class PipelineOpCursor {
public:
    PipelineOpCursor(Schedule schedule, int stages, int stage, int micro_batches, int interleave = 1);
    PipelineOp next();

private:
    // One stream of units (all forwards, or all backwards) in op_at's unit order: micro-batches in
    // groups of S, chunk by chunk within a group.
    struct Units {
        int micro_base = 0, chunk = 0, in_chunk = 0;
        PipelineOp take(bool forward, int stages, int interleave);
    };
    Units forwards_, backwards_;
    int stages_, interleave_, k_ = 0, warmup_, units_;
    bool gpipe_;
};
// The order stage `stage` of `stages` runs its M micro-batches in (the simulator replays it).
// GPipe: all forwards, then all backwards. 1F1B: min(S - s - 1, M) warm-up forwards, then one
// forward and one backward in turn, then the remaining backwards. Interleaved 1F1B (V > 1, M a
// multiple of S): the same over M V chunk-forwards and chunk-backwards after
// interleaved_warmup() forwards; forward k runs micro-batch S (k div S V) + k mod S on chunk
// (k mod S V) div S, backward k the same micro-batch on chunk V - 1 - (k mod S V) div S.
std::vector<PipelineOp> pipeline_order(Schedule schedule, int stages, int stage, int micro_batches,
                                       int interleave = 1);

// When each stage's last backward ends, stages running their pipeline_order with per-micro-batch
// forward and backward seconds F[s] and B[s] (each including its receive): an operation starts
// once the stage is free and its input is there (the previous stage's forward of the same
// micro-batch; the next stage's backward, or the stage's own forward on the last stage). The
// first element is the schedule's makespan. GPipe in closed form (two flow shops of identical
// jobs), 1F1B by walking the dependency graph once: O(S M) time, and memory for the end times not
// yet consumed by the neighbour only (the micro-batches in flight, O(S V)), not S x M.
// `last_extra` (optional, per stage) lengthens the stage's backward of the last micro-batch (its
// gradient arrives late).
// Interleaved (V > 1): F and B hold the S x V virtual stages (chunk c of device d is virtual
// stage c S + d, which receives from virtual stage c S + d - 1); the result is per device, and
// last_extra (per device) lengthens the device's last backward (micro-batch M - 1 on chunk 0).
std::vector<double> last_backward_ends(const std::vector<double>& F, const std::vector<double>& B, Schedule schedule,
                                       int micro_batches, const std::vector<double>& last_extra = {},
                                       int interleave = 1);

}  // namespace dnnplan::planner
