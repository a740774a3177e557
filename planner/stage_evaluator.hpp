// The one stage evaluator (DESIGN.md section 4): per-layer costs of one micro-batch on the T
// processes of a stage (a LayerTable) are summed over each stage, scheduled (GPipe or 1F1B),
// overlapped with the gradient synchronisation and checked against memory. A layer-parallel plan
// is its one-stage, one-micro-batch case: CostModel::score() calls it like every family does.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "planner/cost_model.hpp"
#include "planner/schedule.hpp"

namespace dnnplan::planner {

// How a non-blocking collective in flight advances while its process computes (the link's
// nonblocking_progress / nonblocking_test_calls, clusters/cluster.hpp).
struct SyncProgress {
    double fraction = 1;    // share of its full speed during compute (1: a progress engine of its own)
    double test_calls = 0;  // > 0: done after this many MPI_Test calls (per call, not per unit of time)
    double call_share = 0;  // per-call progress: the share of what a call advances that it takes of its caller
    static SyncProgress of(const clusters::Link& link) {
        return {link.nonblocking_progress, link.nonblocking_test_calls, link.nonblocking_call_share};
    }
    // The share of a collective still to run after `calls` of the `test_calls` it needs, each call
    // advancing it by one equal step (Open MPI's libnbc runs its schedule one round per progress
    // call: ompi/mca/coll/libnbc/nbc.c, NBC_Progress). SyncOverlap and the calibration's fit of
    // test_calls (validators/calibrate.cpp) both use this one formula.
    static double left_after_calls(double calls, double test_calls) {
        return test_calls > 0 ? std::max(0.0, 1 - calls / test_calls) : 0.0;
    }
    // The share of a collective's time alone that its process spends on it when `left` of it is
    // still to run at the final wait: all of that, and call_share of the part the start and the
    // MPI_Test calls advanced (they do the copies and the reduction on the caller's CPU; Open MPI's
    // shared-memory transport copies a large message inside the receiver's progress call).
    // The calibration's fit of call_share (validators/calibrate.cpp) uses this; SyncOverlap keeps
    // its two parts apart (call_share of each call's advance as it happens, `left` at the wait).
    static double paid_share(double left, double call_share) { return left + call_share * (1 - left); }
};

// The overlapped gradient synchronisation of one backward pass, fed layer by layer in backward
// order: a layer's all-reduce starts when its backward is done, one at a time (the simulator
// replays this). A blocking transfer on the same links as an all-reduce in flight (both through
// the network card, or both inside a node) shares the bandwidth fairly: b seconds of transfer
// while r seconds of sync remain delay both by min(b, r) (the SimGrid replay measured up to 6.6%
// more time when this was ignored, and no delay when the two use different links).
// While the process computes, the syncs in flight progress at `fraction` of their speed (the
// link's nonblocking_progress); inside blocking transfers and after the backward pass at full
// speed. Per-call progress (SyncProgress::test_calls > 0, Open MPI without a progress thread as
// dnnplan calibrate measures it): nothing moves during compute; the validator's runner tests its
// outstanding all-reduces once after each layer's backward (validators/runner.cpp), and each such
// call advances what is in flight by one of the test_calls steps the last started sync still
// needs, never faster than the link moves the bytes; the rest runs in the final wait. What a call
// advances costs the process call_share of it (SyncProgress::paid_share): exposed, like the wait.
class SyncOverlap {
public:
    SyncOverlap(bool overlap, double start_s = 0) : overlap_(overlap), clock_(start_s) {}
    void layer(double compute_s, double comm_s, double comm_network_s, double sync_s, bool sync_network,
               SyncProgress progress = {}) {
        const double remaining = left();
        clock_ += compute_s;
        network_free_ = clock_ + (per_call() ? std::max(call_left_, full_speed_free_ - clock_)
                                             : std::max(0.0, remaining - progress_.fraction * compute_s));
        const double same_links = in_flight_network_ ? comm_network_s : comm_s - comm_network_s;
        const double shared = overlap_ ? std::min(same_links, left()) : 0.0;
        clock_ += comm_s + shared;
        network_free_ += shared;
        full_speed_free_ += shared;
        call_left_ = std::max(0.0, call_left_ - comm_s);  // MPI calls: full speed inside blocking transfers
        total_ += sync_s;
        contention_ += shared;
        if (sync_s > 0) {
            network_free_ = std::max(network_free_, clock_) + sync_s;
            full_speed_free_ = std::max(full_speed_free_, clock_) + sync_s;
            in_flight_network_ = sync_network;
            progress_ = progress;
            // As the calls count: what they had left of the earlier syncs, and this one whole (the
            // link's bound in test_call keeps it no faster than the bytes move).
            call_left_ += sync_s;
            calls_left_ = progress.test_calls;
        }
        if (per_call()) test_call();
    }
    double total_s() const { return total_; }
    double contention_s() const { return contention_; }
    // What the process spends on the syncs: inside the per-call progress calls during the backward
    // pass, and what runs past its end (all of it without overlap).
    double exposed_s() const { return overlap_ ? in_calls_ + left() : total_; }

private:
    double left() const { return std::max(0.0, network_free_ - clock_); }
    bool per_call() const { return progress_.test_calls > 0; }
    // One MPI_Test: what is in flight shrinks by one of the calls the last started sync still
    // needs (SyncProgress::left_after_calls), but no faster than at full speed.
    void test_call() {
        const double before = call_left_;
        call_left_ *= SyncProgress::left_after_calls(1, calls_left_);
        calls_left_ = std::max(0.0, calls_left_ - 1);
        const double paid = progress_.call_share * (before - call_left_);
        clock_ += paid;
        in_calls_ += paid;
        network_free_ = clock_ + std::max(call_left_, full_speed_free_ - clock_);
    }
    bool overlap_;
    double clock_, network_free_ = 0, total_ = 0, contention_ = 0;
    SyncProgress progress_;
    // Per-call progress: when the syncs would end at full speed, the seconds left as the calls
    // count them, and the calls the last started sync still needs.
    double full_speed_free_ = 0, call_left_ = 0, calls_left_ = 0;
    double in_calls_ = 0;  // seconds the process spent inside them (call_share)
    bool in_flight_network_ = true;
};

// Per-layer figures of one micro-batch on the T processes of a stage, with prefix sums over the
// layers so that any stage [first, last] sums in O(1): what every configuration sharing (T,
// micro-batch, layouts) reuses. Index 0 (the input) holds zeros.
struct LayerTable {
    int tensor = 1;
    std::int64_t micro_batch = 1;
    PlannerOptions options;  // procs = T, batch = the micro-batch
    ScoredPlan plan;         // CostModel::layer_costs of one micro-batch on T processes
    int layer_count = 0;     // network layers incl. the input

    // What a range of layers adds up to per micro-batch (seconds, parameters, bytes per process).
    struct Sums {
        double fwd_compute = 0, bwd_compute = 0, fwd_comm = 0, params = 0, weight_bytes = 0, activation_bytes = 0;
        double optimizer_step = 0;  // seconds, once per iteration
        double attention_core_bytes = 0, checkpoint_bytes = 0, checkpoints = 0;  // planner/memory.hpp
        double fwd_core_compute = 0;  // the attention cores' forward (selective recomputation redoes it)
        // Forward work redone in the backward pass under `recompute` (the whole forward, the attention cores, none).
        double recomputed(Recompute recompute) const {
            return recompute == Recompute::full        ? fwd_compute + fwd_comm
                   : recompute == Recompute::selective ? fwd_core_compute
                                                       : 0.0;
        }
        PerCommKind comm{}, fwd_comm_by_kind{};  // blocking seconds by kind: all, and the forward's
        double blocking() const {
            double total = 0;
            for (double s : comm) total += s;
            return total;
        }
    };
    // Prefix sums: prefix[i] sums layers 1..i-1, so any stage sums in O(1).
    std::vector<Sums> prefix;
    Sums sum(int first, int last) const;  // layers [first, last]

    std::vector<double> buffer_bytes;                  // per layer: its largest communication buffer
    std::vector<clusters::GroupPlacement> sync_group;  // inner sync group per layer ({1,1} when none)
    std::vector<double> sync_bytes;                    // inner sync bytes per layer
    std::vector<double> boundary_bytes;  // per cut position c: bytes per rank per micro-batch crossing into c
    std::vector<double> boundary_total;  // the same, all ranks of the tensor group
    // Megatron-LM's scatter/gather of stage-boundary activations (Narayanan et al. SC'21, section
    // 4.1): a tensor replicated over the T ranks crosses as T slices of 1/T, one per rank pair, and
    // the receiving stage all-gathers it over its tensor group inside the node (not needed under
    // sequence parallelism, whose tensors are already split T ways along the sequence). Per cut c:
    // the bytes one rank sends, the all-gather's buffer (the whole tensors; 0 when none) and its
    // seconds.
    std::vector<double> boundary_send_bytes;
    std::vector<double> boundary_gather_bytes;
    std::vector<double> boundary_gather_s;
    // The all-gather's group (the T ranks, node by node) and per cut the algorithm costed (the
    // simulator replays the same one).
    clusters::GroupPlacement boundary_gather_group{1, 1};
    std::vector<clusters::CollectiveChoice> boundary_gather_choice;
    // Seconds to move the tensors crossing cut c into the next stage (or their gradient back).
    double boundary_seconds(int c, const clusters::LinkCost& link) const {
        return clusters::point_to_point_seconds(boundary_send_bytes[c], link) + boundary_gather_s[c];
    }
    double input_bytes = 0;              // the input micro-batch resident on stage 0, per rank
    // Tied weights: each linear layer with `tied_to` and the embedding whose table it reads. The
    // table counts the weight once, at the embedding (its layer has none); see tied_copies().
    struct Tie {
        int layer = 0, embedding = 0;
    };
    std::vector<Tie> ties;
};
// `micro_model` has procs = T and batch = the micro-batch; `layer_plan` is its layer_costs(layouts).
LayerTable make_layer_table(const CostModel& micro_model, ScoredPlan layer_plan);
// Builds the micro-batch model itself.
LayerTable make_layer_table(const CostModel& model, int tensor, std::int64_t micro_batch,
                            const std::vector<Layout>& layouts, bool sequence_parallel = false);

// The plan's memory per process: its largest stage's (or device's, interleaved), and which stage.
struct WorstStageMemory {
    MemoryBreakdown memory;
    int stage = 0;
};
WorstStageMemory worst_stage_memory(const LayerTable& t, const PipelineSpec& spec);

// Sets `cost`'s memory to the largest stage's (or device's) `worst`, infeasible with the reason
// when it exceeds the usable device memory (`where`: "stage 2", "device 1", "" for a plain plan).
void record_memory(CostBreakdown& cost, const MemoryBreakdown& worst, const clusters::Device& device,
                   const std::string& where);

// Per layer: the seconds of its gradient synchronisation over the replicas, and whether its group
// spans nodes (for SyncOverlap's contention).
struct LayerSync {
    double seconds = 0;
    bool network = true;
    SyncProgress progress;  // its link's (SyncOverlap)
};
// Per layer, the gradient synchronisation over the inner batch group times the R replicas
// (gradient_sync_calls); with one replica and no ZeRO, the micro-batch plan's own sync calls.
// Shared by the scores and the simulator's pipeline program, so both see one choice.
std::vector<std::vector<CommCall>> replica_sync_calls(const CostModel& model, const LayerTable& table, int stages,
                                                      int replicas, bool zero);
std::vector<LayerSync> replica_sync(const CostModel& model, const LayerTable& table, int stages, int replicas,
                                    bool zero);

// The links the point-to-point transfers between stages use (clusters::LinkModel): for the stage
// partitioner, which does not know which boundary a cut becomes, inside a node when the whole
// pipeline of one replica fits in a node; for scoring, the transfer into stage s (from s - 1)
// inside a node when every pair of counterparts (rank t + T (s - 1 + S r) and the rank T later)
// shares a node (a stage starts when its slowest member has its input). Either is the link's
// point-to-point message cost (LinkModel::intra_message: the calibrated ping-pong on this machine,
// what the runner's one MPI_Isend / MPI_Recv per boundary tensor costs), not its collective fit.
clusters::LinkCost stage_link(const CostModel& model, int tensor, int stages);
clusters::LinkCost boundary_link(const CostModel& model, const PipelineSpec& spec, int stage);

// Tied weights under pipeline parallelism, as Megatron-LM runs GPT's lm_head tied to the word
// embedding: when the embedding and the layer tied to it run on different devices, the tied
// layer's device keeps a copy of the embedding's shard (V/T x h: weights, gradients, optimizer
// state and its optimizer step; megatron/core/models/common/language_module/language_module.py,
// LanguageModule.setup_embeddings_and_output_layer), the copy's gradient is synchronised over the
// replicas like any weight's, and then tensor rank t of the embedding's device and tensor rank t of
// the copy's device, per replica, all-reduce the gradient: the "embedding group" of 2
// (megatron/core/parallel_state.py, initialize_model_parallel with default_embedding_ranks: the
// first and last rank of each pipeline group), after the data-parallel sync and before the
// optimizer step (megatron/core/distributed/finalize_model_grads.py, finalize_model_grads ->
// _allreduce_word_embedding_grads). On one device the two layers share one weight: nothing extra.
struct TiedCopy {
    int layer = 0, embedding = 0;          // the tied layer and its embedding
    int device = 0, embedding_device = 0;  // the devices (stages) holding them, different
    double params = 0, weight_bytes = 0;   // the copy per process (the embedding's shard)
    double optimizer_step_s = 0;           // the copy's update (the embedding's)
};
std::vector<TiedCopy> tied_copies(const LayerTable& table, const PipelineSpec& spec);
// The embedding-group all-reduce of `copy` (layer: the tied layer, Phase::sync): the embedding's
// weight bytes per process, a group of 2, inside a node when every pair (tensor rank t, replica r)
// shares one.
CommCall tied_copy_all_reduce(const CostModel& model, const PipelineSpec& spec, const TiedCopy& copy);
// Seconds per local parameter per micro-batch of adding a micro-batch's weight gradients into the
// accumulated ones (planner/compute.hpp grad_accumulation_seconds, spread over the M backwards):
// the stage evaluator's and the simulator's pipeline replay's (PipelineProgram::accumulate_s) one figure.
// Every family's one figure: the pipelines' (and a one-stage plan's, M = 1) here, the graph
// partitions' backward operations and the layout search's objective (M = 1) through the overload.
double accumulation_per_param(const CostModel& model, const LayerTable& t, const PipelineSpec& spec);
double accumulation_per_param(const clusters::Device& device, const PlannerOptions& options, int micro_batches);

// Per-stage figures of a scored pipeline (seconds per micro-batch, bytes per process).
struct StageCost {
    int first = 1, last = 1;                         // layer range [first, last]
    double forward_s = 0, backward_s = 0;            // compute + inner communication + received transfers
    double recv_forward_s = 0, recv_backward_s = 0;  // the point-to-point parts of the above
    double sync_s = 0;                               // gradient all-reduce over the replicas (and inner batch group)
    double memory_bytes = 0;
    double boundary_bytes = 0;  // bytes per micro-batch (all ranks) crossing into the next stage
};

struct StageEvaluation {
    CostBreakdown cost;
    std::vector<StageCost> stages;  // filled when asked (keep_stages)
    double pipeline_s = 0;          // the schedule, before the exposed gradient synchronisation
    double balance = 1;             // slowest stage / mean stage (forward + backward per micro-batch)
    double cut_bytes = 0;           // activation bytes per micro-batch crossing stage boundaries
};
// The schedule, memory and synchronisation of `spec` (stage_first set; spec.device_of empty) on
// a prepared table. The breakdown is the slowest stage's: its M micro-batches of work, the bubble
// (the schedule's idle time on top of them) and the synchronisation past the schedule.
StageEvaluation evaluate_stages(const CostModel& model, const LayerTable& table, const PipelineSpec& spec,
                                const std::vector<LayerSync>& sync, bool keep_stages);

}  // namespace dnnplan::planner
