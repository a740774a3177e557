#include "cost_model.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <numeric>
#include <utility>

#include "planner/stage_evaluator.hpp"

namespace dnnplan::planner {

using clusters::Collective;
using clusters::GroupPlacement;
using networks::Layer;
using networks::LayerKind;

std::string to_string(Infeasibility infeasibility) {
    switch (infeasibility) {
        case Infeasibility::none:
            return "none";
        case Infeasibility::layout:
            return "layout";
        case Infeasibility::configuration:
            return "configuration";
        case Infeasibility::memory:
            return "memory";
    }
    return "none";
}

namespace {
bool is_spatial(const Layer& layer) { return layer.output_shape.size() == 3; }

// A halo exchange reaches the adjacent tile only (as DistDL's): a halo wider than the smallest
// tile of the input (floor(extent / parts) rows or columns) would need the tile beyond.
std::string halo_problem(const Layer& layer, const networks::Shape& in, const Layout& l) {
    const auto& a = layer.attrs;
    auto check = [](std::int64_t halo, std::int64_t extent, int parts, const char* one, const char* many) {
        const std::int64_t tile = extent / parts;
        if (parts == 1 || halo <= tile) return std::string();
        return "a halo of " + std::to_string(halo) + " " + (halo == 1 ? one : many) + " is wider than the smallest tile (" +
               std::to_string(tile) + " " + (tile == 1 ? one : many) + " of " + std::to_string(extent) + " split " +
               std::to_string(parts) + " ways)";
    };
    std::string problem = check((a.kernel_h / 2) * a.dilation_h, in[1], l.h, "row", "rows");
    return problem.empty() ? check((a.kernel_w / 2) * a.dilation_w, in[2], l.w, "column", "columns") : problem;
}
}  // namespace

// Collects calls and per-kind seconds while scoring; the search passes nullptr.
struct CostModel::Recorder {
    std::vector<CommCall>* calls;
    CostBreakdown* cost;
    bool described = true;  // CallText::described: calls carry their text
    const char* text(const char* what) const { return described ? what : ""; }
    // By value: callers pass temporaries, moved in (one string allocation per call, not two).
    void add(CommCall call) {
        if (!described) call.what.clear();  // any call built with its text regardless
        if (call.phase != Phase::sync)  // sync is accounted separately (overlap)
            cost->comm_s[index_of(call.kind)] += call.seconds;
        calls->push_back(std::move(call));
    }
};

CostModel::CostModel(const networks::Network& network, const clusters::Cluster& cluster, const PlannerOptions& options)
    : network_(&network), cluster_(&cluster), node_cluster_(&cluster), options_(options) {
    // A model built on another model's cluster (micro-batch models) gets the view it already is.
    if (options.processes_per_node != cluster.processes_per_node) {
        view_ = std::make_shared<const clusters::Cluster>(clusters::processes_per_node_view(cluster, options.processes_per_node));
        cluster_ = view_.get();
    }
    const auto& layers = network.layers;
    anchor_of_.assign(layers.size(), 0);
    segments_.assign(layers.size(), {});
    for (std::size_t i = 1; i < layers.size(); ++i) {
        if (is_anchor_kind(layers[i].kind)) {
            anchor_of_[i] = static_cast<int>(i);
            anchors_.push_back(static_cast<int>(i));
        } else {
            anchor_of_[i] = anchor_of_[layers[i].inputs.front()];
        }
        segments_[anchor_of_[i]].push_back(static_cast<int>(i));
    }
    input_elements_.assign(layers.size(), 0);
    for (std::size_t i = 1; i < layers.size(); ++i)
        input_elements_[i] = layers[layers[i].inputs.front()].output_elements;
    element_bytes_ = static_cast<double>(dtype_bytes(options.dtype));
    links_ = clusters::LinkModel::of(*cluster_);
}

const std::vector<int>& CostModel::segment(int anchor) const { return segments_[anchor]; }

std::string CostModel::layout_problem(int layer_index, const Layout& l) const {
    const Layer& layer = network_->layers[layer_index];
    const std::int64_t p = options_.procs;
    if (l.procs() > p || p % l.procs() != 0)
        return "layout " + to_string(l) + " does not divide P = " + std::to_string(p);
    if (l.n > options_.batch)
        return "batch " + std::to_string(options_.batch) + " cannot be split " + std::to_string(l.n) + " ways";
    const networks::Shape& out = layer.output_shape;
    const networks::Shape& in = network_->layers[layer.inputs.front()].output_shape;
    // Splits are balanced (parts differ by at most one element): only more parts than elements
    // is impossible.
    auto need = [&](std::int64_t extent, int factor, const char* what) -> std::string {
        if (factor <= extent) return "";
        return std::string(what) + " " + std::to_string(extent) + " cannot be split " + std::to_string(factor) +
               " ways";
    };
    std::string problem;
    switch (layer.kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            if (layer.attrs.groups > 1 && l.ci > 1) return "grouped convolution cannot split input channels";
            if (!(problem = need(layer.attrs.groups > 1 ? layer.attrs.groups : out[0], l.co, "output channels"))
                     .empty())
                return problem;
            if (!(problem = need(in[0], l.ci, "input channels")).empty()) return problem;
            if (!(problem = need(out[1], l.h, "output height")).empty()) return problem;
            if (!(problem = need(out[2], l.w, "output width")).empty()) return problem;
            if (!(problem = need(in[1], l.h, "input height")).empty()) return problem;
            if (!(problem = need(in[2], l.w, "input width")).empty()) return problem;
            return halo_problem(layer, in, l);
        case LayerKind::linear:
            if (l.h > 1 || l.w > 1) return "linear layers have no spatial axes";
            // An output layer tied to the embedding splits the vocabulary, padded to a multiple of
            // T as Megatron-LM pads it (--make-vocab-size-divisible-by).
            if (layer.attrs.tied_to.empty() && !(problem = need(out.back(), l.co, "output features")).empty())
                return problem;
            // A flattened image's features are read by channel blocks (dist_shape): ci cuts the channels.
            if (const networks::Shape& view = dist_shape(*network_, layer.inputs.front()); view.size() == 3)
                return need(view[0], l.ci, "input channels (of the flattened image)");
            return need(in.back(), l.ci, "input features");
        case LayerKind::attention:
            if (l.h > 1 || l.w > 1 || l.ci > 1) return "attention splits by heads (co) only";
            return need(layer.attrs.heads, l.co, "heads");
        case LayerKind::embedding:
            // ci: the vocabulary (Megatron-LM's VocabParallelEmbedding, padded to a multiple of T);
            // co: the embedding dimension.
            if (l.h > 1 || l.w > 1 || (l.ci > 1 && l.co > 1)) return "embedding splits its vocabulary (ci) or dimension (co)";
            return need(layer.attrs.embedding_dim, l.co, "embedding dimension");
        default:
            return "";
    }
}

std::vector<Layout> CostModel::candidates(int layer_index) const {
    const Layer& layer = network_->layers[layer_index];
    CandidateSignature signature{layer.kind, layer.attrs.groups, layer.attrs.heads, layer.attrs.embedding_dim,
                                 layer.output_shape, dist_shape(*network_, layer.inputs.front())};
    auto [entry, fresh] = candidates_by_signature_.try_emplace(std::move(signature));
    if (!fresh) return entry->second;
    std::vector<Layout>& out = entry->second;
    const int p = static_cast<int>(options_.procs);
    std::vector<int> divisors;
    for (int d = 1; d <= p; ++d)
        if (p % d == 0) divisors.push_back(d);
    bool spatial = is_spatial(layer) && (layer.kind == LayerKind::conv2d || layer.kind == LayerKind::conv_transpose2d);
    bool has_ci =
        layer.kind == LayerKind::conv2d || layer.kind == LayerKind::conv_transpose2d || layer.kind == LayerKind::linear;
    // The layouts that use exactly q of the P processes (q divides P).
    auto enumerate = [&](int q) {
        for (int n : divisors) {
            for (int m : divisors) {
                if (q % (static_cast<std::int64_t>(n) * m) != 0) continue;
                int rest = q / (n * m);
                for (int h : divisors) {
                    if (rest % h != 0 || (!spatial && h > 1)) continue;
                    int w = rest / h;
                    if (!spatial && w > 1) continue;
                    // Near-square domain splits only (w = h or w = 2h), as Gholami's analysis assumes.
                    if (spatial && !(w == h || w == 2 * h)) continue;
                    Layout col{n, m, 1, h, w};
                    if (layout_problem(layer_index, col).empty()) out.push_back(col);
                    if (has_ci && m > 1) {
                        Layout row{n, 1, m, h, w};
                        if (layout_problem(layer_index, row).empty()) out.push_back(row);
                    }
                }
            }
        }
    };
    // Every process is used by the layer: replication only when the axes cannot absorb P.
    enumerate(p);
    if (out.empty()) {
        // Nothing uses all P processes: every smaller process count, over every axis the layer
        // has, with replicas over the remainder.
        for (int q : divisors)
            if (q < p) enumerate(q);
    }
    return out;
}

GroupPlacement CostModel::contiguous(std::int64_t size) const {
    int d = std::max(1, cluster_->devices_per_node);
    int per_node = static_cast<int>(std::gcd<std::int64_t>(size, d));
    return GroupPlacement{static_cast<int>(size), per_node};
}

// Ranks are numbered with w innermost, then h, ci, co, n outermost: model and domain groups,
// which communicate every layer, land inside a node first (as Megatron places tensor groups).
GroupPlacement CostModel::placement(const Layout& l, bool n, bool co, bool ci, bool h, bool w) const {
    const int factors[5] = {l.w, l.h, l.ci, l.co, l.n};
    const bool in_group[5] = {w, h, ci, co, n};
    std::int64_t size = 1;
    for (int a = 0; a < 5; ++a)
        if (in_group[a]) size *= factors[a];
    int d = std::max(1, cluster_->devices_per_node);
    int members_on_first_node = 0;
    for (int r = 0; r < d; ++r) {
        int rest = r;
        bool member = true;
        for (int a = 0; a < 5; ++a) {
            int coord = rest % factors[a];
            rest /= factors[a];
            if (!in_group[a] && coord != 0) member = false;
        }
        if (rest != 0) member = false;  // past the last process
        if (member) ++members_on_first_node;
    }
    int per_node = static_cast<int>(std::gcd<std::int64_t>(size, std::max(1, members_on_first_node)));
    return GroupPlacement{static_cast<int>(size), per_node};
}


double CostModel::collective(Collective kind, const GroupPlacement& group, double bytes, int layer, Phase phase,
                             const char* what, Recorder* recorder) const {
    if (group.size <= 1 || bytes <= 0) return 0;
    clusters::CollectiveChoice choice = cheapest(kind, group, bytes);
    if (recorder) recorder->add(collective_call(layer, phase, kind, choice, group, bytes, recorder->text(what)));
    return choice.seconds;
}

// One direction of a redistribution of `producer`'s whole-batch output (DistDL's repartition):
// free when the target needs no data it lacks, an all-gather when the target only merges splits,
// an all-to-all otherwise. Balanced splits nest when one count divides the other (block i of f
// starts at floor(E i / f), block k i of k f too), so "merges" and "slices" are decided on the counts.
double CostModel::redistribute(const Dist& from, const Dist& to, int producer, int layer, Phase phase,
                               Recorder* recorder) const {
    if (from == to) return 0;
    auto divides = [](int a, int b) { return b % a == 0; };
    bool target_coarser =
        divides(to.n, from.n) && divides(to.c, from.c) && divides(to.h, from.h) && divides(to.w, from.w);
    bool target_finer =
        divides(from.n, to.n) && divides(from.c, to.c) && divides(from.h, to.h) && divides(from.w, to.w);
    if (target_finer) return 0;  // a local slice
    const Collective kind = target_coarser ? Collective::all_gather : Collective::all_to_all;
    const networks::Shape& shape = dist_shape(*network_, producer);
    const GroupPlacement group = exchange_group(from, to, shape, options_.batch, links_.devices_per_node);
    // An all-gather of g balanced but uneven blocks: the busiest process sends its (largest) source
    // block to each of the g - 1 others, as a collective of g such blocks does (the byte ledger
    // measures it: lenet5's pool1 channels 1 + 2 + 1 + 2 gathered over 4 ranks send 3 x 2 channels).
    // An all-to-all: the coarser side's largest shard.
    double part_bytes =
        target_coarser ? group.size * output_bytes(producer) * largest_share(shape, options_.batch, from)
                       : output_bytes(producer) * largest_share(shape, options_.batch, to.parts() <= from.parts() ? to : from);
    // Every process holding its own block on both sides: the busiest sender as the ranks are
    // placed (busiest_sender), an all-to-all over its peers + 1 (the byte ledger measured smallcnn's
    // conv3 n2 x co2 read by fc1 as ci4: two ranks keep nothing and send 2 x 4096 B where the
    // exchange group's all-to-all over 2 charged 4096 B); up to kBusiestSenderMaxProcs processes (layout.hpp).
    GroupPlacement exchange = group;
    if (!target_coarser && from.parts() == options_.procs && to.parts() == options_.procs &&
        options_.procs <= kBusiestSenderMaxProcs) {
        const ExchangeLoad load = busiest_sender(from, to, shape, options_.batch, options_.procs);
        if (load.peers == 0) return 0;
        if (load.peers + 1 != group.size) {
            const int size = load.peers + 1;
            exchange = GroupPlacement{size, std::gcd(size, std::min(size, std::max(1, links_.devices_per_node)))};
        }
        part_bytes = output_bytes(producer) * load.share * exchange.size / load.peers;
    }
    const clusters::CollectiveChoice choice = cheapest(kind, exchange, part_bytes);
    // On a calibrated CPU the pieces are packed and unpacked (validators/primitives.hpp Repartition:
    // one message of part_bytes / size to each of the size - 1 others in both collectives).
    const double message = part_bytes / exchange.size;
    const double runs = message / element_bytes_ / run_elements(from, to, shape, options_.batch);
    const double seconds =
        choice.seconds > 0 ? choice.seconds + halo_pack_seconds(cluster_->device, message, exchange.size - 1, runs) : 0;
    if (recorder && seconds > 0) {
        CommCall call;
        call.layer = layer;
        call.phase = phase;
        call.kind = CommKind::redistribution;
        call.pattern = CommPattern::collective;
        call.collective = kind;
        call.group = exchange;
        call.bytes = part_bytes;
        call.algorithm = choice.algorithm;
        call.seconds = seconds;
        call.runs = runs;
        call.what = recorder->text(target_coarser ? "redistribution (all-gather)" : "redistribution (all-to-all)");
        recorder->add(std::move(call));
    }
    return seconds;
}

double CostModel::redistribution_seconds(const Dist& from, const Dist& to, int producer) const {
    const RedistributionKey key{from, to, output_bytes(producer), split_extents(dist_shape(*network_, producer))};
    if (const double* known = redistribution_memo_.find(key)) return *known;
    // Forward moves the activation; backward moves its gradient the opposite way.
    const double seconds = redistribute(from, to, producer, 0, Phase::forward, nullptr) +
                           redistribute(to, from, producer, 0, Phase::backward, nullptr);
    redistribution_memo_.insert(key, seconds);
    return seconds;
}

Dist CostModel::required_input_dist(int layer_index, const Layout& l, int input_index) const {
    const Layer& layer = network_->layers[layer_index];
    const Dist first_out = is_anchor_kind(layer.kind) ? Dist{} : segment_output_dist(layer.inputs.front(), l);
    return wanted_input_dist(*network_, layer_index, input_index, l, first_out);
}

// Recursive along the first inputs back to the segment's anchor: O(depth) per call. The loops over
// whole segments (evaluate_segment, score) keep each layer's output dist instead.
Dist CostModel::segment_output_dist(int layer_index, const Layout& l) const {
    if (layer_index == 0) return loader_dist(l);
    const Layer& layer = network_->layers[layer_index];
    const Dist first_out = is_anchor_kind(layer.kind) ? Dist{} : segment_output_dist(layer.inputs.front(), l);
    return layer_dists(*network_, layer_index, l, first_out).out;
}

// Per-layer communication of an anchor under its layout (DESIGN.md section 3a).
CostModel::LayerComm CostModel::anchor_communication(int index, const Layout& l, const LocalSizes& local,
                                                     Recorder* rec) const {
    const Layer& layer = network_->layers[index];
    const bool needs_input_grad = layer.bwd_input_flops > 0;
    LayerComm comm;
    // The tensor group's sums. Sequence parallelism (Korthikanti et al. 2022, section 4.2.2)
    // replaces each all-reduce by a reduce-scatter (into the sequence-split layernorm and dropout
    // region) and an all-gather (out of it) of the same buffer, in the same pass.
    auto collective = [&](Collective kind, const GroupPlacement& group, double bytes, int layer_index, Phase phase,
                          const char* what, Recorder* recorder) {
        if (kind != Collective::all_reduce || !options_.sequence_parallel)
            return this->collective(kind, group, bytes, layer_index, phase, what, recorder);
        return this->collective(Collective::reduce_scatter, group, bytes, layer_index, phase, what, recorder) +
               this->collective(Collective::all_gather, group, bytes, layer_index, phase, what, recorder);
    };
    if (layer.kind == LayerKind::attention) {
        // Megatron: heads split = column-parallel QKV + row-parallel output projection.
        comm.forward += collective(Collective::all_reduce, placement(l, false, true, false, false, false),
                                   local.batch * layer.output_elements * element_bytes_, index, Phase::forward,
                                   "attention output (row-parallel projection)", rec);
        if (needs_input_grad)
            comm.backward += collective(Collective::all_reduce, placement(l, false, true, false, false, false),
                                        local.batch * input_elements_[index] * element_bytes_, index, Phase::backward,
                                        "input gradient (column-parallel QKV)", rec);
        return comm;
    }
    if (layer.kind == LayerKind::embedding) {
        // Vocabulary split: each process looks up the tokens of its rows (zeros elsewhere) and the
        // partial outputs are summed (Megatron-LM's VocabParallelEmbedding); the output gradient
        // arrives whole, so the backward pass communicates nothing.
        if (l.ci > 1)
            comm.forward += collective(Collective::all_reduce, placement(l, false, false, true, false, false),
                                       local.output_bytes, index, Phase::forward,
                                       "embedding output partial sums (vocabulary split)", rec);
        return comm;
    }
    // Pci (row split): partial sums of the output are summed over the ci group.
    if (l.ci > 1)
        comm.forward += collective(Collective::all_reduce, placement(l, false, false, true, false, false),
                                   local.output_bytes, index, Phase::forward, "output partial sums (row split)", rec);
    // Pco (model): each output shard yields a partial input gradient (Gholami: AR over Pr).
    if (l.co > 1 && needs_input_grad)
        comm.backward += collective(Collective::all_reduce, placement(l, false, true, false, false, false),
                                    local.input_bytes, index, Phase::backward, "input gradient (model split)", rec);
    // Domain: the halo of the input forward; backward its adjoint (DistDL's halo exchange adjoint,
    // Hewett and Grady 2020, section 3): each rank returns the gradients of the ghost cells it
    // received to their owners, the same messages reversed, so the same call.
    if ((l.h > 1 || l.w > 1) && is_spatial(layer)) {
        const std::int64_t channels = largest_part(network_->layers[layer.inputs.front()].output_shape[0], l.ci);
        comm.forward += halo_exchange(index, l, local.batch, channels, Phase::forward, "halo of the input", rec);
        if (needs_input_grad)
            comm.backward +=
                halo_exchange(index, l, local.batch, channels, Phase::backward, "halo of the input gradient", rec);
    }
    return comm;
}

namespace {
// The halo of a balanced `parts`-way split along one dimension of a windowed layer (kernel k,
// stride s, padding p, dilation d; n_in input and n_out output rows). Blocks as
// validators/tensor.hpp splits them: block j is [floor(n j / parts), floor(n (j + 1) / parts)).
// Output block j reads input rows [o_lo s - p, (o_hi - 1) s - p + (k - 1) d] within the tensor, of
// which input block j is its own; the rest comes from the neighbours. For a padded stride-1
// convolution that is floor(k / 2) d rows each way; unpadded or strided windows differ (one-sided,
// wider or narrower), and so do windows that do not overlap when the output blocks do not align
// with the input's (lenet5's pool2: 10 rows split 5 + 5, 5 output rows 2 + 3, the second block's
// windows start at row 4). Per block: the rows it sends and receives along this dimension, the
// rows it owns, and the rows it reads (`extended`, within the tensor: what the exchange along the
// other dimension then carries, corners included; a strided window may leave the last rows unread
// even when this dimension is not split: resnet-small's 1 x 1 stride-2 down_conv reads rows 0..6
// of 8, so its column exchange on 3 ranks carries 7 rows, not 8).
struct HaloProfile {
    std::vector<std::int64_t> sent, received, owned, extended;
};
HaloProfile halo_profile(std::int64_t n_in, std::int64_t n_out, std::int64_t k, std::int64_t s, std::int64_t p,
                         std::int64_t d, std::int64_t parts) {
    const auto n = static_cast<std::size_t>(parts);
    HaloProfile out{std::vector<std::int64_t>(n, 0), std::vector<std::int64_t>(n, 0), std::vector<std::int64_t>(n, 0),
                    std::vector<std::int64_t>(n, 0)};
    for (std::int64_t j = 0; j < parts; ++j) {
        const auto b = static_cast<std::size_t>(j);
        const std::int64_t in_lo = n_in * j / parts, in_hi = n_in * (j + 1) / parts;
        out.owned[b] = out.extended[b] = in_hi - in_lo;
        const std::int64_t out_lo = n_out * j / parts, out_hi = n_out * (j + 1) / parts;
        if (out_hi <= out_lo) continue;
        const std::int64_t need_lo = std::max<std::int64_t>(0, out_lo * s - p);
        const std::int64_t need_hi = std::min(n_in, (out_hi - 1) * s - p + (k - 1) * d + 1);
        if (need_hi <= need_lo) continue;
        // A halo reaches the adjacent blocks only (layout_problem refuses wider ones).
        const std::int64_t below = std::max<std::int64_t>(0, in_lo - need_lo), above = std::max<std::int64_t>(0, need_hi - in_hi);
        out.received[b] += below + above;
        if (j > 0) out.sent[b - 1] += below;
        if (j + 1 < parts) out.sent[b + 1] += above;
        out.extended[b] = need_hi - need_lo;
    }
    return out;
}

// The busiest process of an h x w grid exchanging rows then columns (columns on the row-extended
// block, as DistDL and the validators' runner do): per process (i, j) the rows exchange moves
// rows_i x owned columns_j cells and the columns exchange columns_j x extended rows_i; the one that
// sends or receives the most in total (full-duplex links: each direction on its own), and its
// cells along each dimension. The byte ledger of validators/ measures exactly this busiest process.
struct BusiestHalo {
    double row_cells = 0, column_cells = 0;
    double block_rows = 0;  // rows of the (row-extended) block the column exchange packs, one run each
};
BusiestHalo busiest_halo(const HaloProfile& rows, const HaloProfile& cols) {
    BusiestHalo best;
    double best_total = -1;
    for (std::size_t i = 0; i < rows.owned.size(); ++i)
        for (std::size_t j = 0; j < cols.owned.size(); ++j)
            for (bool sending : {true, false}) {
                const auto& along_rows = sending ? rows.sent : rows.received;
                const auto& along_cols = sending ? cols.sent : cols.received;
                const double r = static_cast<double>(along_rows[i] * cols.owned[j]);
                const double c = static_cast<double>(along_cols[j] * rows.extended[i]);
                if (r + c > best_total) best_total = r + c, best = BusiestHalo{r, c, static_cast<double>(rows.extended[i])};
            }
    return best;
}
}  // namespace

// One halo exchange per split dimension of the layer's input [channels, rows, cols] (per sample;
// `l.h` x `l.w` splits its rows and columns): clusters::halo_exchange_seconds charges a message to
// each neighbour (one on a two-part line, two otherwise), so each carries the busiest process's
// cells along that dimension (busiest_halo: sent or received, the adjoint reverses them) spread
// over its neighbours; the byte ledger of validators/ measures the busiest rank's traffic.
// Convolutions and pooling windows alike. A transposed convolution with kernel == stride and no
// padding needs none (each input pixel owns a disjoint output patch); other transposed
// convolutions keep floor(k / 2) x dilation each way.
double CostModel::halo_exchange(int index, const Layout& l, double local_batch, std::int64_t channels, Phase phase,
                                const char* what, Recorder* rec) const {
    const Layer& layer = network_->layers[index];
    const auto& a = layer.attrs;
    const auto& x = network_->layers[layer.inputs.front()].output_shape;
    const auto& y = layer.output_shape;
    const std::int64_t rows = x[1], cols = x[2];
    // Cells (rows x columns of one channel of one sample) per neighbour message along each dimension.
    double cells_h = 0, cells_w = 0;
    // Contiguous runs per (sample, channel) of a message (halo_pack_seconds): the row exchange
    // sends whole rows of the block (its ghost rows are one run), the column exchange one run per
    // row of the row-extended block.
    double block_rows = static_cast<double>(largest_part(rows, l.h));
    if (layer.kind == LayerKind::conv_transpose2d || y.size() != 3) {
        // Columns are exchanged after rows, on the row-extended block (DistDL's order; corners travel).
        const bool disjoint_h = layer.kind == LayerKind::conv_transpose2d && a.kernel_h == a.stride_h && a.padding_h == 0;
        const bool disjoint_w = layer.kind == LayerKind::conv_transpose2d && a.kernel_w == a.stride_w && a.padding_w == 0;
        const double width_h = disjoint_h ? 0.0 : static_cast<double>((a.kernel_h / 2) * a.dilation_h);
        const double width_w = disjoint_w ? 0.0 : static_cast<double>((a.kernel_w / 2) * a.dilation_w);
        cells_h = width_h * static_cast<double>(largest_part(cols, l.w));
        cells_w = width_w * static_cast<double>(largest_part(rows, l.h));
    } else {
        const BusiestHalo busiest =
            busiest_halo(halo_profile(x[1], y[1], a.kernel_h, a.stride_h, a.padding_h, a.dilation_h, l.h),
                         halo_profile(x[2], y[2], a.kernel_w, a.stride_w, a.padding_w, a.dilation_w, l.w));
        cells_h = busiest.row_cells / std::min(2, std::max(1, l.h - 1));
        cells_w = busiest.column_cells / std::min(2, std::max(1, l.w - 1));
        block_rows = busiest.block_rows;
    }
    double t = 0;
    auto exchange = [&](double bytes, const GroupPlacement& line, double runs) {
        // The transfer, then on a calibrated CPU the packing of the strided ghost cells, which the
        // validator times with the messages.
        double s = clusters::halo_exchange_seconds(bytes, line, links_.intra, links_.inter);
        if (s > 0) s += halo_pack_seconds(cluster_->device, bytes, clusters::halo_neighbours(line.size), runs);
        if (rec && s > 0)
            rec->add(CommCall{index, phase, CommKind::halo, CommPattern::halo_exchange, Collective::all_reduce,
                              clusters::Algorithm::ring, line, bytes, s, rec->text(what), runs});
        t += s;
    };
    if (l.h > 1 && cells_h > 0)
        exchange(local_batch * channels * cells_h * element_bytes_, placement(l, false, false, false, true, false),
                 local_batch * channels);
    if (l.w > 1 && cells_w > 0)
        exchange(local_batch * channels * cells_w * element_bytes_, placement(l, false, false, false, false, true),
                 local_batch * channels * block_rows);
    return t;
}

// Per-layer communication of a follower under the dist it reads: batch-norm statistics when the
// batch or the image is split, global-pool sums and pooling halos when the image is split.
CostModel::LayerComm CostModel::follower_communication(int index, const Layout& anchor_layout, const Dist& in,
                                                       double local_batch, Recorder* rec) const {
    const Layer& layer = network_->layers[index];
    LayerComm comm;
    if (layer.kind == LayerKind::batchnorm2d) {
        // Batch norm's statistics are the whole batch's (the sequential layer's): sum and sum of
        // squares forward, sum dy and sum dy xhat backward, 2 C values each way, all-reduced over
        // the processes that hold the same channels but other samples or tiles (batch and spatial
        // splits alike; as the validators' DistBatchNorm and PyTorch's SyncBatchNorm).
        // Statistics are kept in fp32 whatever the dtype.
        const double stats = 2.0 * static_cast<double>(largest_part(layer.output_shape[0], in.c)) * 4;
        const GroupPlacement g = contiguous(static_cast<std::int64_t>(in.n) * in.h * in.w);
        comm.forward +=
            collective(Collective::all_reduce, g, stats, index, Phase::forward, "batch-norm statistics", rec);
        comm.backward +=
            collective(Collective::all_reduce, g, stats, index, Phase::backward, "batch-norm gradient statistics", rec);
    }
    if (layer.kind == LayerKind::concat && in.c > 1 && layer.output_shape.size() == 3) {
        // The inputs' channel blocks are not the output's (concat_exchange): an all-to-all over
        // the channel line, of which the busiest process sends (g - 1) / g of the call's bytes.
        const ConcatExchange moved = concat_exchange(*network_, index, in.c);
        const double pixel_bytes = local_batch * static_cast<double>(largest_part(layer.output_shape[1], in.h)) *
                                   static_cast<double>(largest_part(layer.output_shape[2], in.w)) * element_bytes_;
        const GroupPlacement line = contiguous(in.c);
        const double per_call = static_cast<double>(in.c) / (in.c - 1) * pixel_bytes;
        auto exchange = [&](std::int64_t channels, Phase phase, const char* what) {
            if (channels == 0) return 0.0;
            const double bytes = per_call * static_cast<double>(channels);
            const clusters::CollectiveChoice choice = cheapest(Collective::all_to_all, line, bytes);
            // Packed like any repartition (redistribute; run_elements' rule): per message (the
            // busiest process's pieces over its line.size - 1 peers) a sample's moved channels are
            // one run while its tile is whole rows, one per channel and row under a column split.
            const double message = bytes / line.size;
            const double runs =
                message / element_bytes_ / run_elements(in, in, layer.output_shape, options_.batch, channels);
            const double seconds = choice.seconds + halo_pack_seconds(cluster_->device, message, line.size - 1, runs);
            if (rec)
                rec->add(CommCall{index, phase, CommKind::redistribution, CommPattern::collective, Collective::all_to_all,
                                  choice.algorithm, line, bytes, seconds, rec->text(what), runs});
            return seconds;
        };
        comm.forward += exchange(moved.forward_channels, Phase::forward, "concat channel blocks");
        comm.backward += exchange(moved.backward_channels, Phase::backward, "concat channel blocks (gradient)");
    }
    if (in.h == 1 && in.w == 1) return comm;
    if (is_global_pool(layer)) {
        // Each process averages its own tile; the partial sums of its channels are all-reduced over
        // the tiles (a few bytes per sample, not the gather of the whole input). The backward pass
        // spreads the replicated gradient over each tile locally.
        const double sums = local_batch * static_cast<double>(largest_part(layer.output_shape[0], in.c)) * element_bytes_;
        comm.forward += collective(Collective::all_reduce, contiguous(static_cast<std::int64_t>(in.h) * in.w), sums,
                                   index, Phase::forward, "global pool partial sums", rec);
    }
    if (layer.kind == LayerKind::maxpool2d || layer.kind == LayerKind::avgpool2d) {
        // The halo of the pooling windows, as a convolution's (overlapping windows, or output
        // blocks that do not align with the input's), and its adjoint backward.
        Layout tiles = anchor_layout;
        tiles.h = in.h;
        tiles.w = in.w;
        const std::int64_t channels = largest_part(network_->layers[layer.inputs.front()].output_shape[0], in.c);
        comm.forward += halo_exchange(index, tiles, local_batch, channels, Phase::forward, "pooling halo", rec);
        comm.backward += halo_exchange(index, tiles, local_batch, channels, Phase::backward, "pooling halo gradient", rec);
    }
    return comm;
}

double CostModel::layer_seconds(int index, const Layout& l, const Dist& in, const Dist& out, Recorder* rec,
                                double sync_weight, SegmentCost* parts) const {
    const Layer& layer = network_->layers[index];
    const double eb = element_bytes_;
    LocalSizes local;
    const networks::Shape& input_shape = network_->layers[layer.inputs.front()].output_shape;
    local.batch = local_batch(options_.batch, in.n);
    // Shares of the shapes the dists cut (a flattened tensor keeps its [C, H, W] blocks).
    const networks::Shape& in_view = dist_shape(*network_, layer.inputs.front());
    const networks::Shape& out_view = dist_shape(*network_, index);
    local.input_bytes = local.batch * static_cast<double>(input_elements_[index]) * eb * largest_share(in_view, in);
    local.output_bytes = local.batch * static_cast<double>(layer.output_elements) * eb * largest_share(out_view, out);
    const bool anchor = is_anchor_kind(layer.kind);

    // The busiest process's share of the layer's FLOPs, and which processes share a weight shard.
    // A follower's work is split as finely as the finer of its input and output (a global pool
    // works on its input's tiles, a flatten on its input's splits).
    const double work_share = anchor ? anchor_work_share(layer, input_shape, l)
                                     : std::min(largest_share(out_view, out), largest_share(in_view, in));
    // Sequence parallelism: a follower on replicated tensors (layernorm, dropout, residual add)
    // works on 1/T of the sequence (Korthikanti et al. 2022, section 4.2.2): both its input and
    // output replicated, else its split already counts in work_share.
    const double sequence_split = anchor ? 1.0
                                         : std::min(sequence_parallel_split(l, in, options_.sequence_parallel),
                                                    sequence_parallel_split(l, out, options_.sequence_parallel));
    const GroupPlacement sync_group = anchor ? placement(l, true, false, false, true, true)
                                             : contiguous(static_cast<std::int64_t>(in.n) * in.h * in.w);
    const LayerComm comm =
        anchor ? anchor_communication(index, l, local, rec) : follower_communication(index, l, in, local.batch, rec);
    // Weight-gradient synchronisation over the processes that hold the same weight shard but see
    // different data (Gholami: AR(|W| / Pr, Pc)).
    const double weight_local = local_parameters(layer, input_shape, l, in) * eb;
    const double sync = layer.params > 0 ? collective(Collective::all_reduce, sync_group, weight_local, index,
                                                      Phase::sync, "weight gradient", rec)
                                         : 0.0;

    LocalLayer work;
    work.layout = l;
    work.in = in;
    work.out = out;
    work.batch = local.batch;
    work.fwd_flops = static_cast<double>(layer.fwd_flops) * local.batch * work_share / sequence_split;
    work.bwd_input_flops = static_cast<double>(layer.bwd_input_flops) * local.batch * work_share / sequence_split;
    work.bwd_weight_flops = static_cast<double>(layer.bwd_weight_flops) * local.batch * work_share / sequence_split;
    work.input_bytes = local.input_bytes / sequence_split;
    work.output_bytes = local.output_bytes / sequence_split;
    work.weight_bytes = weight_local;
    work.network_output = index + 1 == static_cast<int>(network_->layers.size());
    const ComputeTime compute = layer_compute_time(*network_, index, work, cluster_->device, options_.dtype,
                                                   options_.compute, options_.roofline);
    const double fwd_c = compute.forward_s, bwd_c = compute.backward_s;
    // Once per iteration: the search's one-stage objective counts it here, the stage evaluator
    // once per stage from LayerCost::optimizer_step_s.
    const double step =
        optimizer_step_seconds(cluster_->device, options_.dtype, options_.optimizer, weight_local / eb, options_.compute,
                               options_.mixed_precision_step);
    if (rec) {
        rec->cost->fwd_compute_s += fwd_c;
        rec->cost->bwd_compute_s += bwd_c;
        rec->cost->optimizer_step_s += step;
    }
    // The layout search's objective is one micro-batch's iteration: its gradient accumulation too
    // (M = 1; the stage evaluator adds it per stage from LayerCost::local_params, not recorded here).
    const double accumulate = accumulation_per_param(cluster_->device, options_, 1) * weight_local / eb;
    if (parts) {
        parts->sync_s += sync;
        parts->backward_s += bwd_c + comm.backward + accumulate;
    }
    return fwd_c + bwd_c + comm.forward + comm.backward + sync_weight * sync + step + accumulate;
}

double CostModel::evaluate_segment(int anchor, const Layout& l, Recorder* recorder, double sync_weight,
                                   SegmentCost* parts) const {
    double total = 0;
    // Output dists of the segment's layers, in segment order (increasing layer index): a follower's
    // first input is earlier in the same segment, so each dist is one step from a kept one
    // instead of a recursion back to the anchor (ResNet-1001's residual chains are 300 deep).
    const std::vector<int>& seg = segments_[anchor];
    Dist small[32];
    std::vector<Dist> large;
    Dist* outs = small;
    if (seg.size() > 32) {
        large.resize(seg.size());
        outs = large.data();
    }
    auto out_of = [&](int producer) { return outs[std::lower_bound(seg.begin(), seg.end(), producer) - seg.begin()]; };
    for (std::size_t s = 0; s < seg.size(); ++s) {
        const int index = seg[s];
        const Layer& layer = network_->layers[index];
        const int first = layer.inputs.front();
        const Dist first_out = is_anchor_kind(layer.kind) ? Dist{} : first == 0 ? loader_dist(l) : out_of(first);
        const LayerDists dists = layer_dists(*network_, index, l, first_out);
        outs[s] = dists.out;
        total += layer_seconds(index, l, dists.in, dists.out, recorder, sync_weight, parts);
        // Inputs produced inside this segment are redistributed here; others are edges.
        for (std::size_t k = 0; k < layer.inputs.size(); ++k) {
            int producer = layer.inputs[k];
            if (producer == 0 || anchor_of_[producer] != anchor) continue;
            Dist have = out_of(producer);
            Dist want = wanted_input_dist(*network_, index, static_cast<int>(k), l, first_out);
            const double forward = redistribute(have, want, producer, index, Phase::forward, recorder);
            const double backward = redistribute(want, have, producer, index, Phase::backward, recorder);
            total += forward + backward;
            if (parts) parts->backward_s += backward;
        }
    }
    return total;
}

double CostModel::segment_seconds(int anchor, const Layout& layout, double sync_weight) const {
    return evaluate_segment(anchor, layout, nullptr, sync_weight);
}

SegmentCost CostModel::segment_cost(int anchor, const Layout& layout) const {
    SegmentCost cost;
    cost.seconds = evaluate_segment(anchor, layout, nullptr, 0.0, &cost);
    return cost;
}

std::uint64_t CostModel::CollectiveKeyHash::operator()(const CollectiveKey& k) const {
    return mix64(std::bit_cast<std::uint64_t>(k.bytes) ^
                 mix64(static_cast<std::uint64_t>(k.kind) << 56 | static_cast<std::uint64_t>(k.size) << 24 |
                       static_cast<std::uint64_t>(k.per_node)));
}

std::uint64_t CostModel::RedistributionKeyHash::operator()(const RedistributionKey& k) const {
    auto pack = [](const Dist& d) {
        return static_cast<std::uint64_t>(d.n) << 48 ^ static_cast<std::uint64_t>(d.c) << 32 ^
               static_cast<std::uint64_t>(d.h) << 16 ^ static_cast<std::uint64_t>(d.w);
    };
    std::uint64_t shape = 0;
    for (std::int64_t extent : k.extents) shape = mix64(shape ^ static_cast<std::uint64_t>(extent));
    return mix64(std::bit_cast<std::uint64_t>(k.bytes) ^ mix64(pack(k.from) ^ mix64(pack(k.to) ^ shape)));
}

clusters::CollectiveChoice CostModel::cheapest(Collective kind, const GroupPlacement& group, double bytes) const {
    const CollectiveKey key{kind, group.size, group.per_node, bytes};
    if (const auto* known = collective_memo_.find(key)) return *known;
    const auto choice = clusters::cheapest(kind, group, bytes, links_.intra, links_.inter);
    collective_memo_.insert(key, choice);
    return choice;
}

Layout CostModel::layout_of(int layer, const std::vector<Layout>& anchor_layouts) const {
    const int a = anchor_of_[layer];
    if (a != 0) return anchor_layouts[a];
    // Followers of the raw input: batch split as far as the batch allows.
    Layout l;
    l.n = static_cast<int>(std::gcd(options_.procs, options_.batch));
    return l;
}

std::string CostModel::first_layout_problem(const std::vector<Layout>& anchor_layouts) const {
    for (int a : anchors_) {
        std::string problem = layout_problem(a, anchor_layouts[a]);
        if (!problem.empty()) return "layer " + network_->layers[a].name + ": " + problem;
    }
    return "";
}

void CostModel::layer_cost(int index, const Layout& l, std::vector<LayerCost>& layer_costs,
                           std::vector<CommCall>& calls, CostBreakdown& totals, CallText text) const {
    const Layer& layer = network_->layers[index];
    Recorder recorder{&calls, &totals, text == CallText::described};
    LayerCost& lc = layer_costs[index];
    lc = LayerCost{};
    lc.layout = l;
    // A follower shares its first input's layout: its dists follow from that input's output.
    const int first = layer.inputs.front();
    const Dist first_out = is_anchor_kind(layer.kind) ? Dist{}
                           : first == 0               ? loader_dist(l)
                                                      : layer_costs[first].out_dist;
    const LayerDists dists = layer_dists(*network_, index, l, first_out);
    lc.in_dist = dists.in;
    lc.out_dist = dists.out;
    const std::size_t calls_before = calls.size();
    const double fwd_before = totals.fwd_compute_s, bwd_before = totals.bwd_compute_s,
                 step_before = totals.optimizer_step_s;
    layer_seconds(index, l, lc.in_dist, lc.out_dist, &recorder);
    // Every input's redistribution, cross-segment or not, is charged to the consumer: the
    // activation forward, its gradient backward.
    for (std::size_t k = 0; k < layer.inputs.size(); ++k) {
        const int producer = layer.inputs[k];
        if (producer == 0) continue;
        const Dist have = layer_costs[producer].out_dist;
        const Dist want = wanted_input_dist(*network_, index, static_cast<int>(k), l, first_out);
        redistribute(have, want, producer, index, Phase::forward, &recorder);
        redistribute(want, have, producer, index, Phase::backward, &recorder);
    }
    lc.fwd_compute_s = totals.fwd_compute_s - fwd_before;
    lc.bwd_compute_s = totals.bwd_compute_s - bwd_before;
    lc.optimizer_step_s = totals.optimizer_step_s - step_before;
    for (std::size_t c = calls_before; c < calls.size(); ++c) {
        const CommCall& call = calls[c];
        if (call.phase == Phase::forward) lc.fwd_comm_s += call.seconds;
        if (call.phase == Phase::backward) {
            lc.bwd_comm_s += call.seconds;
            if (clusters::node_count(call.group) > 1) lc.bwd_comm_network_s += call.seconds;
        }
        if (call.phase == Phase::sync) {
            lc.sync_s += call.seconds;
            lc.sync_network = clusters::node_count(call.group) > 1;
        }
    }
    static_cast<LayerMemory&>(lc) = layer_memory(*network_, index, l, dists, local_batch(options_.batch, lc.in_dist.n),
                                                 element_bytes_, options_.sequence_parallel);
}

ScoredPlan CostModel::layer_costs(const std::vector<Layout>& anchor_layouts, CallText text) const {
    ScoredPlan plan;
    plan.anchor_layouts = anchor_layouts;
    const auto& layers = network_->layers;
    plan.layers.assign(layers.size(), LayerCost{});
    plan.calls.reserve(4 * layers.size());  // a few calls per layer: one allocation, not a doubling series
    // Problems with the layouts themselves make the plan infeasible, with the first reason.
    if (std::string problem = first_layout_problem(anchor_layouts); !problem.empty())
        plan.cost.set_infeasible(Infeasibility::layout, std::move(problem));
    for (std::size_t i = 1; i < layers.size(); ++i) {
        const int index = static_cast<int>(i);
        layer_cost(index, layout_of(index, anchor_layouts), plan.layers, plan.calls, plan.cost, text);
    }
    return plan;
}

ScoredPlan CostModel::score(const std::vector<Layout>& anchor_layouts, CallText text) const {
    return evaluate_one_stage(layer_costs(anchor_layouts, text));
}

ScoredPlan CostModel::evaluate_one_stage(ScoredPlan layer_plan) const {
    LayerTable table = make_layer_table(*this, std::move(layer_plan));
    PipelineSpec one_stage;
    one_stage.stage_first = {1};
    const std::vector<LayerSync> sync = replica_sync(*this, table, 1, 1, false);
    StageEvaluation evaluation = evaluate_stages(*this, table, one_stage, sync, false);
    ScoredPlan plan = std::move(table.plan);
    plan.cost = evaluation.cost;
    return plan;
}

std::string over_memory_reason(double needed_bytes, const clusters::Device& device, const std::string& where) {
    std::string reason =
        "needs " + human_bytes(needed_bytes) + " per process" + (where.empty() ? "" : " (" + where + ")");
    const double usable = static_cast<double>(device.usable_memory_bytes());
    if (device.reserved_bytes == 0) return reason + ", more than the device's " + human_bytes(usable);
    return reason + ", more than the " + human_bytes(usable) + " usable on the device (" +
           human_bytes(static_cast<double>(device.memory_bytes)) + " less " +
           human_bytes(static_cast<double>(device.reserved_bytes)) + " reserved)";
}

}  // namespace dnnplan::planner
