// Pipeline and hybrid parallelism (HyPar-Flow, GPipe, 1F1B) and the transformers' 3-D
// parallelism (tensor x pipeline x data, Megatron-LM), scored by the same cost model as the grid
// families (DESIGN.md sections 4 and 5; the formulas are in planner/README.md, "Pipelines").
//
// Rank order: the T processes of a stage's tensor group innermost, then the S stages, then the R
// replicas outermost (hierarchical placement: tensor groups fill a node first, pipeline
// neighbours are next, the replicas' gradient all-reduce crosses nodes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "planner/cost_model.hpp"

namespace dnnplan::planner {

struct Candidate;
struct SearchResult;

enum class Schedule { gpipe, one_f_one_b };
std::string to_string(Schedule schedule);

// How a plan is pipelined and replicated. The default (one stage, one micro-batch, one replica,
// no ZeRO, no recomputation) is the plain grid plan.
struct PipelineSpec {
    int tensor = 1;         // T: processes of one stage (its layouts' process count)
    int stages = 1;         // S
    int micro_batches = 1;  // M: the per-replica batch B / R is cut into M micro-batches
    int replicas = 1;       // R: data-parallel copies of the whole pipeline; P = T x S x R
    Schedule schedule = Schedule::gpipe;
    bool zero = false;             // ZeRO stage 1: optimizer state sharded over the R replicas
    bool recompute = false;        // keep only each stage's input per micro-batch, redo the forward in the backward
    std::vector<int> stage_first;  // first layer index of each stage (stage 0 starts at layer 1)
    std::vector<int> device_of;    // graph partition only: the device (0..stages-1) of every layer
    bool active() const {
        return stages > 1 || micro_batches > 1 || replicas > 1 || zero || recompute || !device_of.empty();
    }
    bool operator==(const PipelineSpec&) const = default;
};

// Per-stage figures of a scored pipeline (seconds per micro-batch, bytes per process).
struct StageCost {
    int first = 1, last = 1;                         // layer range [first, last]
    double forward_s = 0, backward_s = 0;            // compute + inner communication + received transfers
    double recv_forward_s = 0, recv_backward_s = 0;  // the point-to-point parts of the above
    double sync_s = 0;                               // gradient all-reduce over the replicas (and inner batch group)
    double memory_bytes = 0;
    double boundary_bytes = 0;  // bytes per micro-batch (all ranks) crossing into the next stage
};

struct PipelineScore {
    ScoredPlan plan;  // anchor layouts, per-layer costs of ONE micro-batch, the calls of one micro-batch
    std::vector<StageCost> stages;
    double pipeline_s = 0;             // the schedule, before the exposed gradient synchronisation
    double balance = 1;                // slowest stage / mean stage (forward + backward per micro-batch)
    double cut_bytes = 0;              // activation bytes per micro-batch crossing stage boundaries
    double model_flops = 0;            // forward + backward FLOPs of one iteration (no recomputation)
    double flops_per_device() const {  // achieved model FLOP/s per process
        return plan.cost.iteration_s > 0 ? model_flops / plan.cost.iteration_s : 0;
    }
};

// One operation of a pipeline stage: the forward or the backward pass of a micro-batch.
struct PipelineOp {
    bool forward = true;
    int micro = 0;
    bool operator==(const PipelineOp&) const = default;
};
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

// The weight-gradient synchronisation of `layer` over the replicas' `group` (ZeRO-1: a
// reduce-scatter of the gradient, then an all-gather of the updated weights), each collective the
// cheapest on the links. Shared by the pipeline and graph-partition families.
std::vector<CommCall> gradient_sync_calls(int layer, const clusters::GroupPlacement& group, double bytes, bool zero,
                                          const clusters::LinkCost& intra, const clusters::LinkCost& inter);

// Why the spec cannot be used for this model's P and batch ("" when it can): T x S x R = P, the
// micro-batch count dividing B / R, stage ranges, more stages than layers.
std::string pipeline_problem(const CostModel& model, const PipelineSpec& spec);

// Scores a pipeline: `layouts` are the stages' layouts per anchor (procs() dividing spec.tensor),
// spec.stage_first the stage boundaries. With S = M = R = 1 and neither ZeRO nor recomputation,
// the result equals model.score(layouts) exactly. Infeasible (with the reason) when
// pipeline_problem() is not empty or a stage exceeds the device memory.
PipelineScore score_pipeline(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts);

// The tensor-parallel layouts of a stage of T processes (Megatron-LM as the layout algebra says):
// attention split by heads, embeddings by their dimension, a linear layer whose input arrives
// split along features takes the row split (ci = T), others the column split (co = T);
// convolutions split output channels. An anchor that cannot be split T ways keeps the other
// split, or none (replicated) when T = 1. Returns an empty vector when some anchor cannot take T.
std::vector<Layout> tensor_layouts(const CostModel& model, int tensor);

// Positions where a stage may start: layer indices c such that exactly one tensor (not the
// input's) crosses from layers < c to layers >= c. On a chain that is every layer.
std::vector<int> cut_positions(const CostModel& model);

// Per-layer seconds per micro-batch used by the stage partitioner.
struct StageWeights {
    std::vector<double> layer_s;     // forward + backward (+ forward again under recomputation), per layer
    std::vector<double> recv_fwd_s;  // receiving the activations at a stage starting at layer c
    std::vector<double> recv_bwd_s;  // receiving the gradients at a stage ending just before c
};
// For spec's T, micro-batch B / (R M), link (by T x S) and recomputation setting.
StageWeights stage_weights(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts);

// The contiguous partition into `stages` stages (starts restricted to `cuts`) that minimises
// the slowest stage's (layer seconds + received transfers). Exact; empty when impossible.
// `all_stage_counts` (optional) receives the best partition for every count 1..stages.
std::vector<int> partition_stages(const StageWeights& weights, const std::vector<int>& cuts, int stages,
                                  std::vector<std::vector<int>>* all_stage_counts = nullptr);
// The slowest stage of a partition, by the same objective (tests compare with brute force).
double slowest_stage(const StageWeights& weights, const std::vector<int>& stage_first);

struct PipelineSearchStats {
    long long configurations = 0;  // (T, S, R, M, schedule, ZeRO, recompute) combinations scored
    long long skipped = 0;         // combinations that do not divide P or the batch
    long long infeasible = 0;      // scored but over memory
};

// Every T (tensor groups inside a node), S, R = P / (T S), M dividing B / R, both schedules,
// ZeRO-1 and recomputation on and off. Returns the best feasible spec per (T, S) (or, when
// nothing fits, the least over-memory one per (T, S)), best first.
struct PipelineCandidate {
    PipelineSpec spec;
    std::vector<Layout> layouts;
    PipelineScore score;
};
std::vector<PipelineCandidate> search_pipelines(const CostModel& model, PipelineSearchStats* stats = nullptr);

// The label of a pipeline candidate: "TP=8 x PP=16 x DP=8, M=96, 1f1b, zero-1, 152 TFLOP/s/GPU".
std::string pipeline_label(const PipelineSpec& spec, const PipelineScore& score);

// An explicitly requested configuration (spec.stage_first is ignored: the stages come from
// partition_stages). Throws InputError(origin, "--stages" / "--replicas" / "--micro-batches" /
// "--tensor", why) when the numbers do not fit P, the batch or the network.
PipelineCandidate plan_pipeline(const CostModel& model, PipelineSpec spec, const std::string& origin = "dnnplan");

// Appends the pipeline, 3-D and graph-partition families to a search result (called by search()
// before its final ranking).
void append_pipeline_candidates(const CostModel& model, SearchResult& result);

// What a replay of the pipeline (simulator/) needs, straight from the model so that nothing is
// derived twice: the plan of ONE micro-batch on the T processes of a stage (per-layer compute
// seconds and the stage-internal CommCalls, groups within those T ranks; its own phase-sync calls
// cover the inner batch group only), each stage's layer range and the point-to-point bytes per
// rank it receives from the previous stage per micro-batch (the activations forward; the gradients
// travel back with the same size) on `link` (stage_link: the one link the model charges every
// boundary on), and per layer the gradient synchronisation over the R replicas x the inner batch
// group as the calls score_pipeline() costs (clusters::cheapest; ZeRO-1: reduce-scatter, then
// all-gather). Rank t + T (s + S r) is tensor rank t of stage s of replica r.
// Throws std::invalid_argument when pipeline_problem() is not empty or for a graph partition.
struct PipelineProgram {
    std::int64_t micro_batch = 1;  // B / (R M)
    ScoredPlan micro;              // one micro-batch on T processes
    struct Stage {
        int first = 1, last = 1;  // layer range [first, last]
        double recv_bytes = 0;    // per rank per micro-batch from stage s - 1 (0 for stage 0)
        double recv_s = 0;        // the seconds the model charges for it (on the boundary's link: intra-node when both ranks share a node)
    };
    std::vector<Stage> stages;
    std::vector<clusters::GroupPlacement> inner_sync_group;  // per layer: the sync group inside the T ranks
    std::vector<std::vector<CommCall>> sync;                 // per layer (index 0 unused), in the order run
};
PipelineProgram pipeline_program(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts);

}  // namespace dnnplan::planner
