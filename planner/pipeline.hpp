// The pipeline family: pipeline and hybrid parallelism (HyPar-Flow, GPipe, 1F1B) and the
// transformers' 3-D parallelism (tensor x pipeline x data, Megatron-LM), scored by the stage
// evaluator like every family (DESIGN.md sections 4 and 5; formulas in planner/README.md,
// "Pipelines"): stage partitions (pipeline_partition.cpp), the search (pipeline_search.cpp).
//
// Rank order: the T processes of a stage's tensor group innermost, then the S stages, then the R
// replicas outermost (hierarchical placement: tensor groups fill a node first, pipeline
// neighbours are next, the replicas' gradient all-reduce crosses nodes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "planner/cost_model.hpp"
#include "planner/families.hpp"
#include "planner/schedule.hpp"
#include "planner/stage_evaluator.hpp"

namespace dnnplan::planner {

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
    std::vector<double> layer_s;     // forward + backward (+ the forward work recomputation redoes), per layer
    std::vector<double> recv_fwd_s;  // receiving the activations at a stage starting at layer c
    std::vector<double> recv_bwd_s;  // receiving the gradients at a stage ending just before c
};
// From a prepared table, transfers on `link`.
StageWeights weights_from(const LayerTable& table, const clusters::LinkCost& link, Recompute recompute);
// For spec's T, micro-batch B / (R M), link (by T x S) and recomputation setting.
StageWeights stage_weights(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts);

// The contiguous partition into `stages` stages (starts restricted to `cuts`) that minimises
// the slowest stage's (layer seconds + received transfers). Exact; empty when impossible.
// `all_stage_counts` (optional) receives the best partition for every count 1..stages.
std::vector<int> partition_stages(const StageWeights& weights, const std::vector<int>& cuts, int stages,
                                  std::vector<std::vector<int>>* all_stage_counts = nullptr);
// The slowest stage of a partition, by the same objective (tests compare with brute force).
double slowest_stage(const StageWeights& weights, const std::vector<int>& stage_first);
// Interleaved 1F1B runs chunk c on device c mod `devices` (Narayanan et al. SC'21, section
// 2.2.2): a device's time is the sum of its chunks', so balancing the chunks is not balancing the
// devices. Starting from `stage_first` (S V chunks), moves one chunk boundary at a time to the next
// or previous cut while that lowers the busiest device's sum without raising its neighbour's to
// it (a local search: never worse than the start, not proven optimal). `devices` = 1 or one chunk
// per device returns `stage_first` unchanged.
std::vector<int> balance_devices(const StageWeights& weights, const std::vector<int>& cuts,
                                 std::vector<int> stage_first, int devices);
// The busiest device's sum of its chunks (slowest_stage's per-stage objective).
double slowest_device(const StageWeights& weights, const std::vector<int>& stage_first, int devices);

// Every T (tensor groups inside a node), S, R = P / (T S), M in micro_batch_counts(B / R, S),
// GPipe, 1F1B and interleaved 1F1B (V = 2, 4, 8 when M is a multiple of S), ZeRO-1 and
// recomputation on and off. Returns the best feasible spec per (T, S) (or, when
// nothing fits, the least over-memory one per (T, S)), best first.
struct PipelineCandidate {
    PipelineSpec spec;
    std::vector<Layout> layouts;
    PipelineScore score;
};
// `narrowing` keeps only the recomputation, sequence parallelism or micro-batch size it fixes.
std::vector<PipelineCandidate> search_pipelines(const CostModel& model, PipelineSearchStats* stats = nullptr,
                                                const PipelineNarrowing& narrowing = {});

// The label of a pipeline candidate: "TP=8 x PP=16 x DP=8, M=96, 1f1b, zero-1, 152 TFLOP/s/GPU".
std::string pipeline_label(const PipelineSpec& spec, const PipelineScore& score);

// An explicitly requested configuration (spec.stage_first is ignored: the stages come from
// partition_stages). Throws InputError(origin, "--stages" / "--replicas" / "--micro-batches" /
// "--tensor", why) when the numbers do not fit P, the batch or the network.
PipelineCandidate plan_pipeline(const CostModel& model, PipelineSpec spec, const std::string& origin = "dnnplan");

// Achieved-rate numerators, per process and iteration. Model FLOPs: forward + backward, no
// recomputation (the MFU convention of Chowdhery et al. 2022 and Korthikanti et al. 2022).
// Hardware FLOPs: what the devices execute, with the forward work recomputation redoes (full:
// the whole forward again; selective: the attention cores' scores, softmax and P V).
double model_flops_per_device(const CostModel& model);
double hardware_flops_per_device(const CostModel& model, Recompute recompute);

}  // namespace dnnplan::planner
