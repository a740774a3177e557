#include "layout.hpp"

#include <algorithm>
#include <numeric>

namespace dnnplan::planner {

std::string to_string(const Layout& layout) {
    std::string out;
    auto part = [&](const char* axis, int factor) {
        if (factor == 1) return;
        if (!out.empty()) out += " x ";
        out += axis + std::to_string(factor);
    };
    part("n", layout.n);
    part("co", layout.co);
    part("ci", layout.ci);
    part("h", layout.h);
    part("w", layout.w);
    return out.empty() ? "1" : out;
}

Json to_json(const Layout& layout) {
    return Json{{"n", layout.n}, {"co", layout.co}, {"ci", layout.ci}, {"h", layout.h}, {"w", layout.w}};
}

Layout layout_from_json(const SpecNode& node) {
    node.expect_object("a layout object");
    node.check_keys({"n", "co", "ci", "h", "w"});
    constexpr std::int64_t max_factor = 1 << 22;
    Layout layout;
    layout.n = static_cast<int>(node.get_int_or("n", 1, 1, max_factor));
    layout.co = static_cast<int>(node.get_int_or("co", 1, 1, max_factor));
    layout.ci = static_cast<int>(node.get_int_or("ci", 1, 1, max_factor));
    layout.h = static_cast<int>(node.get_int_or("h", 1, 1, max_factor));
    layout.w = static_cast<int>(node.get_int_or("w", 1, 1, max_factor));
    return layout;
}

}  // namespace dnnplan::planner

namespace dnnplan::planner {

using networks::Layer;
using networks::LayerKind;

bool is_anchor_kind(LayerKind kind) {
    return kind == LayerKind::conv2d || kind == LayerKind::conv_transpose2d || kind == LayerKind::linear ||
           kind == LayerKind::attention || kind == LayerKind::embedding;
}

namespace {
// The extent of the dimension a dist's c / h / w split applies to, for a per-sample shape.
std::int64_t channel_extent(const networks::Shape& s) { return s.empty() ? 1 : (s.size() == 3 ? s[0] : s.back()); }
std::int64_t height_extent(const networks::Shape& s) { return s.size() == 3 ? s[1] : 1; }
std::int64_t width_extent(const networks::Shape& s) { return s.size() == 3 ? s[2] : 1; }

// Keeps only the splits a tensor of this shape can take (no more parts than elements: balanced
// splits otherwise); the rest become replication.
Dist fit(Dist d, const networks::Shape& shape) {
    if (channel_extent(shape) < d.c) d.c = 1;
    if (height_extent(shape) < d.h) d.h = 1;
    if (width_extent(shape) < d.w) d.w = 1;
    return d;
}

Dist anchor_input_dist(LayerKind kind, const Layout& l) {
    switch (kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            return Dist{l.n, l.ci, l.h, l.w};
        case LayerKind::linear:
            return Dist{l.n, l.ci, 1, 1};
        default:
            return Dist{l.n, 1, 1, 1};  // attention, embedding
    }
}
Dist anchor_output_dist(LayerKind kind, const Layout& l) {
    switch (kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            return Dist{l.n, l.co, l.h, l.w};
        case LayerKind::linear:
        case LayerKind::embedding:
            return Dist{l.n, l.co, 1, 1};
        default:
            return Dist{l.n, 1, 1, 1};  // attention
    }
}
// Followers take what their first input delivers (`d`), as far as the layer allows.
Dist follower_input_dist(const networks::Network& network, const Layer& layer, int input_index, Dist d) {
    const networks::Shape& input_shape = dist_shape(network, layer.inputs[input_index]);
    if (is_global_pool(layer)) return fit(d, input_shape);  // pools its own tile as it arrives
    switch (layer.kind) {
        case LayerKind::layernorm:
        case LayerKind::softmax:
            d.c = 1;
            break;  // normalise over the whole feature axis
        case LayerKind::reshape:
            d = Dist{d.n, 1, 1, 1};
            break;
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d:
        case LayerKind::adaptive_avgpool2d:
        case LayerKind::upsample:
            d = fit(fit(d, layer.output_shape), input_shape);
            break;
        default:
            d = fit(d, input_shape);
            break;
    }
    return d;
}
// A flatten keeps its input's splits (dist_shape: its Dist still cuts the [C, H, W] it came from).
Dist follower_output_dist(const Layer& layer, const Dist& in) {
    if (is_global_pool(layer)) return Dist{in.n, in.c, 1, 1};  // the all-reduced means, on every tile's process
    return in;
}
}  // namespace

namespace {
// The block of a balanced `parts`-way split of [0, extent) holding position x: block i starts at
// floor(extent i / parts) (validators/tensor.hpp), so x lies in block ceil((x + 1) parts / extent) - 1.
std::int64_t block_holding(std::int64_t x, std::int64_t extent, std::int64_t parts) {
    return ((x + 1) * parts + extent - 1) / extent - 1;
}
}  // namespace

// When f and t divide the extent the blocks are uniform: m = floor((a + b - 2) / b) + 1 with
// a = f / g, b = t / g, g = gcd(f, t) (f / t when t divides f, 1 when f divides t). Otherwise the
// target blocks are scanned over one period of the two splits' boundaries: with G = gcd(extent, f, t),
// moving t / G target blocks on moves every boundary of both splits by extent / G positions
// (floor(extent (j + t / G) / t) = floor(extent j / t) + extent / G, and the block holding
// x + extent / G is f / G further on), so blocks j and j + t / G meet equally many.
std::int64_t most_blocks_met(std::int64_t extent, std::int64_t f, std::int64_t t) {
    if (f <= 1) return 1;
    if (extent % f == 0 && extent % t == 0) {
        const std::int64_t g = std::gcd(f, t), a = f / g, b = t / g;
        return (a + b - 2) / b + 1;
    }
    const std::int64_t period = t / std::gcd(std::gcd(extent, f), t);
    std::int64_t most = 1;
    for (std::int64_t j = 0; j < period; ++j) {
        const std::int64_t begin = extent * j / t, end = extent * (j + 1) / t;
        if (end > begin)
            most = std::max(most, block_holding(end - 1, extent, f) - block_holding(begin, extent, f) + 1);
    }
    return most;
}

namespace {
// The ranks of `side`'s grid that meet (or feed) one shard of `other`, at most, counted on the
// first node (the product over the axes of most_blocks_met).
clusters::GroupPlacement meeting_shards(const Dist& side, const Dist& other, const std::int64_t (&extent)[4],
                                        int devices_per_node) {
    const std::int64_t f[4] = {side.n, side.c, side.h, side.w};
    const std::int64_t t[4] = {other.n, other.c, other.h, other.w};
    std::int64_t m[4], size = 1;
    for (int k = 0; k < 4; ++k) {
        m[k] = most_blocks_met(extent[k], f[k], t[k]);
        size *= m[k];
    }
    // Members in rank order ((i_n f_c + i_c) f_h + i_h) f_w + i_w, which grows with the
    // coordinates taken lexicographically: stop at the first past the node.
    const std::int64_t d = std::max(1, devices_per_node);
    std::int64_t on_first_node = 0;
    for (std::int64_t n = 0; n < m[0] && n * f[1] * f[2] * f[3] < d; ++n)
        for (std::int64_t c = 0; c < m[1] && (n * f[1] + c) * f[2] * f[3] < d; ++c)
            for (std::int64_t h = 0; h < m[2] && ((n * f[1] + c) * f[2] + h) * f[3] < d; ++h)
                for (std::int64_t w = 0; w < m[3] && ((n * f[1] + c) * f[2] + h) * f[3] + w < d; ++w) ++on_first_node;
    return clusters::GroupPlacement{static_cast<int>(size), static_cast<int>(std::gcd(size, on_first_node))};
}

clusters::GroupPlacement exchange_group(const Dist& from, const Dist& to, const std::int64_t (&extent)[4],
                                        int devices_per_node) {
    const clusters::GroupPlacement gather = meeting_shards(from, to, extent, devices_per_node);
    const clusters::GroupPlacement scatter = meeting_shards(to, from, extent, devices_per_node);
    if (gather.size != scatter.size) return gather.size > scatter.size ? gather : scatter;
    return gather.per_node <= scatter.per_node ? gather : scatter;
}
}  // namespace

clusters::GroupPlacement exchange_group(const Dist& from, const Dist& to, int devices_per_node) {
    // Extents both splits divide: the closed form's case.
    const std::int64_t extent[4] = {std::lcm<std::int64_t>(from.n, to.n), std::lcm<std::int64_t>(from.c, to.c),
                                    std::lcm<std::int64_t>(from.h, to.h), std::lcm<std::int64_t>(from.w, to.w)};
    return exchange_group(from, to, extent, devices_per_node);
}

clusters::GroupPlacement exchange_group(const Dist& from, const Dist& to, const networks::Shape& shape,
                                        std::int64_t batch, int devices_per_node) {
    const std::int64_t extent[4] = {batch, channel_extent(shape), height_extent(shape), width_extent(shape)};
    return exchange_group(from, to, extent, devices_per_node);
}

const networks::Shape& dist_shape(const networks::Network& network, int index) {
    const Layer& layer = network.layers[static_cast<std::size_t>(index)];
    const bool keeps_view = layer.kind == LayerKind::flatten || layer.kind == LayerKind::dropout ||
                            layer.kind == LayerKind::activation;
    if (index > 0 && keeps_view && !layer.inputs.empty()) return dist_shape(network, layer.inputs.front());
    return layer.output_shape;
}

ExchangeLoad busiest_sender(const Dist& from, const Dist& to, const networks::Shape& shape, std::int64_t batch,
                            std::int64_t procs) {
    const std::int64_t extent[4] = {batch, channel_extent(shape), height_extent(shape), width_extent(shape)};
    const std::int64_t f[4] = {from.n, from.c, from.h, from.w}, t[4] = {to.n, to.c, to.h, to.w};
    ExchangeLoad out;
    for (std::int64_t rank = 0; rank < procs; ++rank) {
        std::int64_t fi = rank, ti = rank;  // block numbers, w fastest
        double own = 1, kept = 1;
        std::int64_t met = 1;
        for (int k = 3; k >= 0; --k) {
            const std::int64_t a = fi % f[k], b = ti % t[k], e = extent[k];
            fi /= f[k];
            ti /= t[k];
            const std::int64_t lo = e * a / f[k], hi = e * (a + 1) / f[k];  // balanced blocks (block_begin)
            const std::int64_t to_lo = e * b / t[k], to_hi = e * (b + 1) / t[k];
            own *= static_cast<double>(hi - lo) / static_cast<double>(e);
            kept *= static_cast<double>(std::max<std::int64_t>(0, std::min(hi, to_hi) - std::max(lo, to_lo))) /
                    static_cast<double>(e);
            met *= hi > lo ? block_holding(hi - 1, e, t[k]) - block_holding(lo, e, t[k]) + 1 : 0;
        }
        out.share = std::max(out.share, own - kept);
        out.peers = std::max(out.peers, static_cast<int>(met - (kept > 0 ? 1 : 0)));
    }
    return out;
}

double run_elements(const Dist& from, const Dist& to, const networks::Shape& shape, std::int64_t batch,
                    std::int64_t channel_piece) {
    const std::int64_t extent[4] = {batch, channel_extent(shape), height_extent(shape), width_extent(shape)};
    const int f[4] = {from.n, from.c, from.h, from.w}, t[4] = {to.n, to.c, to.h, to.w};
    double run = 1;
    for (int k = 3; k >= 0; --k) {
        const int parts = std::max(f[k], t[k]);
        if (parts > 1)
            return run * static_cast<double>(k == 1 && channel_piece > 0 ? channel_piece : largest_part(extent[k], parts));
        run *= static_cast<double>(extent[k]);
        // [S, H] (tokens, hidden) and the like: the axes before the split one are whole too.
        if (k == 1 && shape.size() != 3)
            for (std::size_t a = 0; a + 1 < shape.size(); ++a) run *= static_cast<double>(shape[a]);
    }
    return run;
}

std::array<std::int64_t, 3> split_extents(const networks::Shape& shape) {
    return {channel_extent(shape), height_extent(shape), width_extent(shape)};
}

double largest_share(const networks::Shape& shape, const Dist& d) {
    // An unsplit axis holds its whole extent: E / E is exactly 1 (IEEE division), so it is skipped.
    auto share = [](std::int64_t extent, int parts) {
        if (parts == 1 && extent > 0) return 1.0;
        return static_cast<double>(largest_part(extent, parts)) / static_cast<double>(extent);
    };
    return share(channel_extent(shape), d.c) * share(height_extent(shape), d.h) * share(width_extent(shape), d.w);
}

double largest_share(const networks::Shape& shape, std::int64_t batch, const Dist& d) {
    return local_batch(batch, d.n) / static_cast<double>(batch) * largest_share(shape, d);
}

namespace {
// The extents an anchor's co, ci, h and w split (0: the layer has no such axis).
struct AnchorExtents {
    std::int64_t co = 0, ci = 0, h = 0, w = 0;
};
AnchorExtents anchor_extents(const Layer& layer, const networks::Shape& input_shape) {
    const networks::Shape& out = layer.output_shape;
    switch (layer.kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            // Grouped convolutions split whole groups (layout_problem keeps ci = 1 for them).
            return {layer.attrs.groups > 1 ? layer.attrs.groups : out[0], input_shape[0], out[1], out[2]};
        case LayerKind::linear:
            return {out.back(), input_shape.back(), 0, 0};
        case LayerKind::attention:
            return {layer.attrs.heads, 0, 0, 0};
        case LayerKind::embedding:  // co: the embedding dimension; ci: the vocabulary (Megatron-LM's split)
            return {layer.attrs.embedding_dim, layer.attrs.num_embeddings, 0, 0};
        default:
            return {};
    }
}
// The busiest process's fraction of an axis of `extent` cut `parts` ways (1 / parts without one).
double part_share(std::int64_t extent, int parts) {
    return extent > 0 ? static_cast<double>(largest_part(extent, parts)) / static_cast<double>(extent) : 1.0 / parts;
}
}  // namespace

double anchor_work_share(const Layer& layer, const networks::Shape& input_shape, const Layout& l) {
    const AnchorExtents e = anchor_extents(layer, input_shape);
    return part_share(e.co, l.co) * part_share(e.ci, l.ci) * part_share(e.h, l.h) * part_share(e.w, l.w);
}

bool is_global_pool(const Layer& layer) {
    return layer.kind == LayerKind::adaptive_avgpool2d && layer.output_shape.size() == 3 &&
           layer.output_shape[1] == 1 && layer.output_shape[2] == 1;
}

double local_parameters(const Layer& layer, const networks::Shape& input_shape, const Layout& layout, const Dist& in) {
    const double params = static_cast<double>(layer.params);
    // Per-channel parameters of a follower: as its input's channels (or hidden units) arrive split.
    if (layer.kind == LayerKind::batchnorm2d || layer.kind == LayerKind::position_embedding)
        return params * part_share(channel_extent(input_shape), in.c);
    if (!is_anchor_kind(layer.kind)) return params;
    // Weights split over co x ci only (the spatial axes hold replicas of them). A bias is added
    // once, after the partial sums over ci, so every ci shard keeps its co rows of it whole
    // (Megatron-LM's RowParallelLinear keeps the whole bias on every rank); attention's output
    // projection is row-parallel over the heads, so its bias (the hidden size) is whole on every
    // head shard while the QKV biases split with their heads.
    const AnchorExtents e = anchor_extents(layer, input_shape);
    const double co = part_share(e.co, layout.co), ci = part_share(e.ci, layout.ci);
    double bias = 0, whole_bias = 0;
    if (layer.attrs.bias) {
        switch (layer.kind) {
            case LayerKind::conv2d:
            case LayerKind::conv_transpose2d:
            case LayerKind::linear:
                bias = static_cast<double>(layer.output_shape.size() == 3 ? layer.output_shape[0] : layer.output_shape.back());
                break;
            case LayerKind::attention:
                bias = 3.0 * static_cast<double>(input_shape.back());
                whole_bias = static_cast<double>(input_shape.back());
                break;
            default:
                break;
        }
    }
    return (params - bias - whole_bias) * co * ci + bias * co + whole_bias;
}

ConcatExchange concat_exchange(const networks::Network& network, int index, int parts) {
    const Layer& layer = network.layers[index];
    const std::int64_t total = layer.output_shape[0];
    auto begin = [](std::int64_t extent, std::int64_t j, std::int64_t n) { return extent * j / n; };
    ConcatExchange out;
    for (std::int64_t j = 0; j < parts; ++j) {
        const std::int64_t need_lo = begin(total, j, parts), need_hi = begin(total, j + 1, parts);
        std::int64_t sent = 0, received = 0, offset = 0;
        for (int input : layer.inputs) {
            const std::int64_t c = network.layers[input].output_shape[0];
            const std::int64_t own_lo = offset + begin(c, j, parts), own_hi = offset + begin(c, j + 1, parts);
            const std::int64_t in_lo = std::max(need_lo, offset), in_hi = std::min(need_hi, offset + c);
            const std::int64_t kept = std::max<std::int64_t>(0, std::min(own_hi, need_hi) - std::max(own_lo, need_lo));
            sent += (own_hi - own_lo) - kept;
            received += std::max<std::int64_t>(0, in_hi - in_lo) - kept;
            offset += c;
        }
        out.forward_channels = std::max(out.forward_channels, sent);
        out.backward_channels = std::max(out.backward_channels, received);
    }
    return out;
}

LayerDists layer_dists(const networks::Network& network, int index, const Layout& layout, const Dist& first_input_out) {
    const Layer& layer = network.layers[index];
    if (is_anchor_kind(layer.kind))
        return LayerDists{anchor_input_dist(layer.kind, layout), anchor_output_dist(layer.kind, layout)};
    const Dist in = follower_input_dist(network, layer, 0, first_input_out);
    return LayerDists{in, follower_output_dist(layer, in)};
}

Dist wanted_input_dist(const networks::Network& network, int index, int input_index, const Layout& layout,
                       const Dist& first_input_out) {
    const Layer& layer = network.layers[index];
    if (is_anchor_kind(layer.kind)) return anchor_input_dist(layer.kind, layout);
    return follower_input_dist(network, layer, input_index, first_input_out);
}

}  // namespace dnnplan::planner
