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
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "clusters/collectives.hpp"
#include "networks/network.hpp"
#include "planner/flat_memo.hpp"
#include "planner/layout.hpp"

namespace dnnplan::planner {

enum class Optimizer { sgd, adam };  // sgd = SGD with momentum
std::string to_string(Optimizer optimizer);

struct PlannerOptions {
    std::int64_t procs = 1;
    std::int64_t batch = 1;
    DType dtype = DType::fp32;
    Optimizer optimizer = Optimizer::sgd;
    bool overlap_sync = true;  // weight-gradient all-reduce overlaps the backward pass
    bool roofline = false;     // compute time = max(FLOPs / rate, bytes / memory bandwidth)
};

// How a tensor [B, C, H, W] (or [B, S, H] with c = hidden, or [B, F]) is split; the processes
// beyond n*c*h*w hold replicas.
struct Dist {
    int n = 1, c = 1, h = 1, w = 1;
    std::int64_t parts() const { return std::int64_t{n} * c * h * w; }
    bool operator==(const Dist&) const = default;
};

enum class Phase { forward, backward, sync };
enum class CommKind { all_reduce, all_gather, reduce_scatter, all_to_all, halo, point_to_point, redistribution };
std::string to_string(Phase phase);
std::string to_string(CommKind kind);

// One communication the plan performs: the simulator replays exactly these calls.
struct CommCall {
    int layer = 0;
    Phase phase = Phase::forward;
    CommKind kind = CommKind::all_reduce;
    clusters::Collective collective = clusters::Collective::all_reduce;  // for collective kinds
    clusters::CollectiveAlgorithm algorithm;
    clusters::GroupPlacement group;
    double bytes = 0;
    double seconds = 0;
    std::string what;  // "weight gradient", "input gradient", "halo of input", ...
    bool operator==(const CommCall&) const = default;
};

// The call a plan records for one collective: its kind follows the collective (all-reduce,
// all-gather, reduce-scatter; anything else is an all-to-all), algorithm and seconds `choice`'s.
CommCall collective_call(int layer, Phase phase, clusters::Collective collective,
                         const clusters::CollectiveChoice& choice, const clusters::GroupPlacement& group, double bytes,
                         const char* what);

// Seconds and bytes for a whole plan (or one layer), units in the names.
struct CostBreakdown {
    double fwd_compute_s = 0, bwd_compute_s = 0;
    double all_reduce_s = 0, all_gather_s = 0, reduce_scatter_s = 0, all_to_all_s = 0, halo_s = 0,
           point_to_point_s = 0, redistribution_s = 0;
    double sync_total_s = 0;    // weight-gradient synchronisation, all of it
    double sync_exposed_s = 0;  // the part not hidden behind the backward pass
    double sync_contention_s = 0;  // backward communication slowed by sharing links with the sync
    double bubble_s = 0;        // pipeline bubble (pipelines only)
    double iteration_s = 0;
    double weights_bytes = 0, gradients_bytes = 0, optimizer_bytes = 0, activations_bytes = 0, buffers_bytes = 0;
    double memory_bytes = 0;  // per process, the sum of the above
    double memory_capacity_bytes = 0;
    bool feasible = true;
    std::string reason;  // why not feasible
    double blocking_comm_s() const {
        return all_reduce_s + all_gather_s + reduce_scatter_s + all_to_all_s + halo_s + point_to_point_s +
               redistribution_s;
    }
};

// "needs 14.8 GiB per process (stage 0), more than the 14.5 GiB usable on the device (15.8 GiB
// less 1.26 GiB reserved)": the infeasibility reason of a plan over the device's usable memory.
std::string over_memory_reason(double needed_bytes, const clusters::Device& device, const std::string& where = "");

// Per-layer result of a scored assignment.
struct LayerCost {
    Layout layout;   // the anchor's layout (followers: their segment anchor's)
    Dist in_dist, out_dist;
    double fwd_compute_s = 0, bwd_compute_s = 0, fwd_comm_s = 0, bwd_comm_s = 0, sync_s = 0;
    double bwd_comm_network_s = 0;  // the part of bwd_comm_s whose groups span nodes (through the network card)
    bool sync_network = true;       // the weight-gradient sync's group spans nodes
    double activation_bytes = 0, weight_bytes = 0;
};

// The overlapped gradient synchronisation of one backward pass, fed layer by layer in backward
// order: a layer's all-reduce starts when its backward is done, one at a time (the simulator
// replays this). A blocking transfer on the same links as an all-reduce in flight (both through
// the network card, or both inside a node) shares the bandwidth fairly: b seconds of transfer
// while r seconds of sync remain delay both by min(b, r) (the SimGrid replay measured up to 6.6%
// more time when this was ignored, and no delay when the two use different links).
class SyncOverlap {
public:
    SyncOverlap(bool overlap, double start_s = 0) : overlap_(overlap), clock_(start_s) {}
    void layer(double compute_s, double comm_s, double comm_network_s, double sync_s, bool sync_network) {
        clock_ += compute_s;
        const double same_links = in_flight_network_ ? comm_network_s : comm_s - comm_network_s;
        const double shared = overlap_ ? std::min(same_links, std::max(0.0, network_free_ - clock_)) : 0.0;
        clock_ += comm_s + shared;
        network_free_ += shared;
        total_ += sync_s;
        contention_ += shared;
        if (sync_s > 0) {
            network_free_ = std::max(network_free_, clock_) + sync_s;
            in_flight_network_ = sync_network;
        }
    }
    double total_s() const { return total_; }
    double contention_s() const { return contention_; }
    // What runs past the end of the backward pass (all of it without overlap).
    double exposed_s() const { return overlap_ ? std::max(0.0, network_free_ - clock_) : total_; }

private:
    bool overlap_;
    double clock_, network_free_ = 0, total_ = 0, contention_ = 0;
    bool in_flight_network_ = true;
};

struct ScoredPlan {
    std::vector<Layout> anchor_layouts;  // per layer; meaningful for anchors only
    std::vector<LayerCost> layers;
    std::vector<CommCall> calls;
    CostBreakdown cost;
};

// A segment's seconds with the weight-gradient synchronisation kept apart, so that searches can
// weigh the sync (how much of it the backward pass hides) without evaluating the segment again.
struct SegmentCost {
    double seconds = 0;  // forward + backward compute and blocking communication
    double sync_s = 0;   // weight-gradient all-reduce, in full
};

// Immutable context built once per (network, cluster, options): per-layer shapes and the
// segment structure. Plain data; cheap to query from the search's inner loops. Queries memoise
// collective choices and candidate lists internally, so one CostModel must not be shared
// between threads.
class CostModel {
public:
    CostModel(const networks::Network& network, const clusters::Cluster& cluster, const PlannerOptions& options);

    const networks::Network& network() const { return *network_; }
    const clusters::Cluster& cluster() const { return *cluster_; }
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
    SegmentCost segment_cost(int anchor, const Layout& layout) const;  // one evaluation, sync apart
    Dist segment_output_dist(int layer, const Layout& anchor_layout) const;  // dist of `layer`'s output
    Dist required_input_dist(int layer, const Layout& anchor_layout, int input_index) const;

    // Forward + backward seconds to move a tensor of `bytes` (whole batch) from one dist to another.
    double redistribution_seconds(const Dist& from, const Dist& to, double bytes) const;

    // Exact score of a full assignment (layouts of the anchors; others ignored).
    ScoredPlan score(const std::vector<Layout>& anchor_layouts) const;

private:
    struct Recorder;
    double evaluate_segment(int anchor, const Layout& layout, Recorder* recorder, double sync_weight = 1.0,
                            double* sync_out = nullptr) const;
    double layer_seconds(int layer, const Layout& anchor_layout, const Dist& in, const Dist& out,
                         Recorder* recorder, double sync_weight = 1.0, double* sync_out = nullptr) const;
    clusters::CollectiveChoice cheapest(clusters::Collective kind, const clusters::GroupPlacement& group,
                                        double bytes) const;
    double redistribute(const Dist& from, const Dist& to, double bytes, int layer, Recorder* recorder) const;
    double collective(clusters::Collective kind, const clusters::GroupPlacement& group, double bytes, int layer,
                      Phase phase, const char* what, Recorder* recorder) const;
    double compute_seconds(double flops, double bytes_moved) const;
    clusters::GroupPlacement placement(const Layout& layout, bool n, bool co, bool ci, bool h, bool w) const;
    clusters::GroupPlacement contiguous(std::int64_t size) const;

    const networks::Network* network_;
    const clusters::Cluster* cluster_;
    PlannerOptions options_;
    std::vector<int> anchor_of_;
    std::vector<int> anchors_;
    std::vector<std::vector<int>> segments_;  // indexed by anchor layer
    std::vector<std::int64_t> input_elements_; // per sample, first input of each layer
    double element_bytes_ = 4;
    double flops_rate_ = 1;
    clusters::LinkCost intra_{}, inter_{};

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
        bool operator==(const RedistributionKey&) const = default;
    };
    struct RedistributionKeyHash {
        std::uint64_t operator()(const RedistributionKey& k) const;
    };
    mutable FlatMemo<CollectiveKey, clusters::CollectiveChoice, CollectiveKeyHash> collective_memo_;
    mutable FlatMemo<RedistributionKey, double, RedistributionKeyHash> redistribution_memo_;
    // Candidate layouts depend only on what layout_problem reads (kind, shapes, groups, heads,
    // embedding size): layers alike share one list (ResNet-1001's 1004 anchors have a dozen kinds).
    mutable std::map<std::string, std::vector<Layout>> candidates_by_signature_;
};

}  // namespace dnnplan::planner
