// The alpha-beta cost model: compute, communication and memory of a network under an
// assignment of layouts to its layers (DESIGN.md sections 3a and 4).
//
// Layers are grouped into segments: each "anchor" layer (convolution, linear, attention,
// embedding) chooses a Layout; every other layer follows the distribution of its first input
// (elementwise layers fuse with their producer). Communication per anchor layout follows
// Gholami et al. (SPAA'18) for batch x model and batch x domain, and Megatron-LM's column/row
// split for the reduction axis; redistributions between layouts are costed on the edges.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "clusters/cluster.hpp"
#include "clusters/collectives.hpp"
#include "clusters/processes_per_node.hpp"
#include "clusters/link_model.hpp"
#include "networks/network.hpp"
#include "planner/comm.hpp"
#include "planner/compute.hpp"
#include "planner/flat_memo.hpp"
#include "planner/layout.hpp"
#include "planner/memory.hpp"
#include "planner/software_options.hpp"

namespace dnnplan::planner {

struct PlannerOptions {
    std::int64_t procs = 1;
    std::int64_t batch = 1;
    DType dtype = DType::fp32;
    Optimizer optimizer = Optimizer::sgd;
    bool optimizer_defaulted = false;  // chosen by default_optimizer(), not by the user (reports say so)
    bool overlap_sync = true;  // weight-gradient all-reduce overlaps the backward pass
    bool roofline = false;     // compute time = max(FLOPs / rate, bytes / memory bandwidth)
    ComputeModel compute = ComputeModel::per_operation;  // planner/compute.hpp
    bool sequence_parallel = false;  // set per pipeline configuration (PipelineSpec::sequence_parallel)
    // The software's mixed-precision optimizer step and gradient accumulation (planner/compute.hpp).
    MixedPrecisionStep mixed_precision_step = MixedPrecisionStep::megatron_lm;
    std::optional<GradAccumulation> grad_accumulation;  // unset: default_grad_accumulation(dtype)
    // How pipeline-stage boundary tensors move between the stages' tensor groups (planner/software_options.hpp).
    PipelineBoundarySend boundary_send = PipelineBoundarySend::scatter_gather;
    // Processes sharing each node (clusters/processes_per_node.hpp): the CostModel plans on the
    // cluster viewed so, P processes on P / k nodes. 1 on clusters without cores (GPUs).
    int processes_per_node = 1;
};

// Why a plan cannot run: its layouts do not fit the layers or P (layout), its pipeline
// configuration does not fit P, the batch or the network (configuration), or it needs more
// memory than a device has (memory).
enum class Infeasibility { none, layout, configuration, memory };
std::string to_string(Infeasibility infeasibility);

// Seconds and bytes for a whole plan (or one layer), units in the names.
struct CostBreakdown {
    double fwd_compute_s = 0, bwd_compute_s = 0;
    PerCommKind comm_s{};          // blocking communication by kind
    double sync_total_s = 0;       // weight-gradient synchronisation, all of it
    double sync_exposed_s = 0;     // the part not hidden behind the backward pass
    double sync_contention_s = 0;  // backward communication slowed by sharing links with the sync
    double bubble_s = 0;           // pipeline bubble (pipelines only)
    double optimizer_step_s = 0;   // the optimizer's update once per iteration (planner/compute.hpp)
    double iteration_s = 0;
    double weights_bytes = 0, gradients_bytes = 0, optimizer_bytes = 0, activations_bytes = 0, buffers_bytes = 0;
    double memory_bytes = 0;  // per process, the sum of the above
    double memory_capacity_bytes = 0;
    bool feasible = true;
    Infeasibility infeasibility = Infeasibility::none;
    std::string reason;  // why not feasible, for people
    double comm(CommKind kind) const { return comm_s[index_of(kind)]; }
    double blocking_comm_s() const {
        double total = 0;
        for (double s : comm_s) total += s;
        return total;
    }
    void set_infeasible(Infeasibility kind, std::string why) {
        feasible = false;
        infeasibility = kind;
        reason = std::move(why);
    }
    bool operator==(const CostBreakdown&) const = default;
};

// "needs 14.8 GiB per process (stage 0), more than the 14.5 GiB usable on the device (15.8 GiB
// less 1.26 GiB reserved)": the infeasibility reason of a plan over the device's usable memory.
std::string over_memory_reason(double needed_bytes, const clusters::Device& device, const std::string& where = "");

// Per-layer result of a scored assignment (one micro-batch on the stage's processes in pipelines);
// its memory figures are layer_memory's (planner/memory.hpp), held as they come.
struct LayerCost : LayerMemory {
    Layout layout;  // the anchor's layout (followers: their segment anchor's)
    Dist in_dist, out_dist;
    double fwd_compute_s = 0, bwd_compute_s = 0, fwd_comm_s = 0, bwd_comm_s = 0, sync_s = 0;
    double optimizer_step_s = 0;    // once per iteration, on the layer's local parameters
    double bwd_comm_network_s = 0;  // the part of bwd_comm_s whose groups span nodes (through the network card)
    bool sync_network = true;       // the weight-gradient sync's group spans nodes
    bool operator==(const LayerCost&) const = default;
};

struct ScoredPlan {
    std::vector<Layout> anchor_layouts;  // per layer; meaningful for anchors only
    std::vector<LayerCost> layers;
    std::vector<CommCall> calls;
    CostBreakdown cost;
    bool operator==(const ScoredPlan&) const = default;
};

// A segment's seconds with the weight-gradient synchronisation kept apart, so that searches can
// weigh the sync (how much of it the backward pass hides) without evaluating the segment again.
struct SegmentCost {
    double seconds = 0;  // forward + backward compute and blocking communication
    double sync_s = 0;   // weight-gradient all-reduce, in full
    // The part of `seconds` in the backward pass: compute, blocking communication (the backward
    // redistributions inside the segment too) and gradient accumulation.
    double backward_s = 0;
};

// Immutable context built once per (network, cluster, options): per-layer shapes and the
// segment structure. Plain data; cheap to query from the search's inner loops. Queries memoise
// collective choices and candidate lists internally, so one CostModel must not be shared
// between threads.
class CostModel {
public:
    CostModel(const networks::Network& network, const clusters::Cluster& cluster, const PlannerOptions& options);

    const networks::Network& network() const { return *network_; }
    const clusters::Cluster& cluster() const { return *cluster_; }  // as the processes see it (below)
    // The cluster as given: cluster() is its view when options().processes_per_node differs from
    // its own processes_per_node (1 for a cluster file).
    const clusters::Cluster& node_cluster() const { return *node_cluster_; }
    const PlannerOptions& options() const { return options_; }

    bool is_anchor(int layer) const { return anchor_of_[layer] == layer && layer != 0; }
    int anchor_of(int layer) const { return anchor_of_[layer]; }
    const std::vector<int>& anchors() const { return anchors_; }
    const std::vector<int>& segment(int anchor) const;  // the anchor and its followers, topological order

    // Why `layout` cannot be used by anchor `layer` ("" when it can).
    std::string layout_problem(int layer, const Layout& layout) const;
    // The layouts an anchor may use: all factorizations of a divisor of P over the axes the layer
    // has, pruned by divisibility and by at most one of co/ci (column or row, not both).
    std::vector<Layout> candidates(int layer) const;

    // Cost of one segment (anchor + followers) under the anchor's layout, given the distribution
    // each external input arrives in is what the segment needs (edges are costed separately).
    // Returns seconds (forward + backward + full sync); fills `out` when given.
    // `sync_weight` scales the weight-gradient all-reduce (0: assume the overlap hides it all).
    double segment_seconds(int anchor, const Layout& layout, double sync_weight = 1.0) const;
    SegmentCost segment_cost(int anchor, const Layout& layout) const;        // one evaluation, sync apart
    Dist segment_output_dist(int layer, const Layout& anchor_layout) const;  // dist of `layer`'s output
    Dist required_input_dist(int layer, const Layout& anchor_layout, int input_index) const;

    // Forward + backward seconds to move `producer`'s output (whole batch) from one dist to another.
    double redistribution_seconds(const Dist& from, const Dist& to, int producer) const;

    // Whether the calls of a scored plan carry their CommCall::what text (for people only): a
    // search's trials need the numbers alone, and building the text costs an allocation per call.
    enum class CallText { described, omitted };
    // Per-layer costs and communication calls of a full assignment (layouts of the anchors;
    // others ignored), infeasible with the first layout problem; no totals.
    ScoredPlan layer_costs(const std::vector<Layout>& anchor_layouts, CallText text = CallText::described) const;
    // Exact score of a full assignment: its layer costs through the stage evaluator as one stage
    // with one micro-batch (planner/stage_evaluator.hpp).
    ScoredPlan score(const std::vector<Layout>& anchor_layouts, CallText text = CallText::described) const;
    // score() after layer_costs(): the stage evaluation of a layer plan (planner/rescore.hpp builds
    // layer plans piece by piece).
    ScoredPlan evaluate_one_stage(ScoredPlan layer_plan) const;

    // The pieces of layer_costs. The layout `layer` runs under: its segment anchor's (the input's
    // followers: the batch split as far as the batch allows).
    Layout layout_of(int layer, const std::vector<Layout>& anchor_layouts) const;
    // The infeasibility reason of the first anchor whose layout does not fit ("" when all fit).
    std::string first_layout_problem(const std::vector<Layout>& anchor_layouts) const;
    // Layer `layer`'s LayerCost under `layout` into layer_costs[layer], reading the out_dist of its
    // inputs (earlier entries), its calls appended to `calls` and its seconds added to `totals` (by
    // call kind, compute and optimizer step: the LayerCost's compute and step seconds are the
    // increments of those running totals, as layer_costs sums them).
    void layer_cost(int layer, const Layout& layout, std::vector<LayerCost>& layer_costs, std::vector<CommCall>& calls,
                    CostBreakdown& totals, CallText text = CallText::described) const;

    const clusters::LinkModel& links() const { return links_; }
    // The whole batch of `layer`'s output in the training dtype (planner/memory.hpp).
    double output_bytes(int layer) const {
        return planner::output_bytes(network_->layers[layer], static_cast<double>(options_.batch), element_bytes_);
    }

private:
    struct Recorder;
    double evaluate_segment(int anchor, const Layout& layout, Recorder* recorder, double sync_weight = 1.0,
                            SegmentCost* parts = nullptr) const;
    struct LayerComm {
        double forward = 0, backward = 0;  // blocking seconds
    };
    struct LocalSizes {
        double batch = 1;                          // samples on one process
        double input_bytes = 0, output_bytes = 0;  // its shard of the first input and of the output
    };
    LayerComm anchor_communication(int index, const Layout& layout, const LocalSizes& local, Recorder* rec) const;
    LayerComm follower_communication(int index, const Layout& anchor_layout, const Dist& in, double local_batch,
                                     Recorder* rec) const;
    double halo_exchange(int index, const Layout& layout, double local_batch, std::int64_t channels, Phase phase,
                         const char* what, Recorder* rec) const;
    double layer_seconds(int layer, const Layout& anchor_layout, const Dist& in, const Dist& out, Recorder* recorder,
                         double sync_weight = 1.0, SegmentCost* parts = nullptr) const;
    clusters::CollectiveChoice cheapest(clusters::Collective kind, const clusters::GroupPlacement& group,
                                        double bytes) const;
    double redistribute(const Dist& from, const Dist& to, int producer, int layer, Phase phase,
                        Recorder* recorder) const;
    double collective(clusters::Collective kind, const clusters::GroupPlacement& group, double bytes, int layer,
                      Phase phase, const char* what, Recorder* recorder) const;
    clusters::GroupPlacement placement(const Layout& layout, bool n, bool co, bool ci, bool h, bool w) const;
    clusters::GroupPlacement contiguous(std::int64_t size) const;

    const networks::Network* network_;
    // The cluster given, or, with options.processes_per_node > 1, view_: that cluster seen by k
    // processes per node (shared, so copies of the model keep a valid pointer).
    std::shared_ptr<const clusters::Cluster> view_;
    const clusters::Cluster* cluster_;
    const clusters::Cluster* node_cluster_;
    PlannerOptions options_;
    std::vector<int> anchor_of_;
    std::vector<int> anchors_;
    std::vector<std::vector<int>> segments_;    // indexed by anchor layer
    std::vector<std::int64_t> input_elements_;  // per sample, first input of each layer
    double element_bytes_ = 4;
    clusters::LinkModel links_;

    // Memoised collective choices and redistributions: the search asks the same ones many times.
    struct CollectiveKey {
        clusters::Collective kind = clusters::Collective::all_reduce;
        int size = 0, per_node = 0;
        double bytes = 0;
        bool operator==(const CollectiveKey&) const = default;
    };
    struct CollectiveKeyHash {
        std::uint64_t operator()(const CollectiveKey& k) const;
    };
    struct RedistributionKey {
        Dist from, to;
        double bytes = 0;
        std::array<std::int64_t, 3> extents{};  // split_extents of the tensor: balanced splits' parts depend on them
        bool operator==(const RedistributionKey&) const = default;
    };
    struct RedistributionKeyHash {
        std::uint64_t operator()(const RedistributionKey& k) const;
    };
    mutable FlatMemo<CollectiveKey, clusters::CollectiveChoice, CollectiveKeyHash> collective_memo_;
    mutable FlatMemo<RedistributionKey, double, RedistributionKeyHash> redistribution_memo_;
    // Candidate layouts depend only on what layout_problem reads (kind, shapes, groups, heads,
    // embedding size): layers alike share one list (ResNet-1001's 1004 anchors have a dozen kinds).
    using CandidateSignature = std::tuple<networks::LayerKind, std::int64_t, std::int64_t, std::int64_t,
                                          networks::Shape, networks::Shape>;  // kind, groups, heads, embedding, out, in
    mutable std::map<CandidateSignature, std::vector<Layout>> candidates_by_signature_;
};

}  // namespace dnnplan::planner
