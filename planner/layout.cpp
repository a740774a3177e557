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

// Keeps only the splits a tensor of this shape can take evenly; the rest become replication.
Dist fit(Dist d, const networks::Shape& shape) {
    if (channel_extent(shape) % d.c != 0) d.c = 1;
    if (height_extent(shape) % d.h != 0) d.h = 1;
    if (width_extent(shape) % d.w != 0) d.w = 1;
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
    const Layer& input = network.layers[layer.inputs[input_index]];
    if (is_global_pool(layer)) return fit(d, input.output_shape);  // pools its own tile as it arrives
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
            d = fit(fit(d, layer.output_shape), input.output_shape);
            break;
        default:
            d = fit(d, input.output_shape);
            break;
    }
    return d;
}
Dist follower_output_dist(const Layer& layer, const Dist& in) {
    if (layer.kind == LayerKind::flatten) return Dist{in.n, in.c * in.h * in.w, 1, 1};
    if (is_global_pool(layer)) return Dist{in.n, in.c, 1, 1};  // the all-reduced means, on every tile's process
    return in;
}
}  // namespace

namespace {
// The ranks of `side`'s grid that meet (or feed) one shard of `other`, at most, counted on the
// first node. Along an axis cut f ways on this side and t ways on the other, with a = f / g and
// b = t / g (g = gcd(f, t)), a chunk of the other side spans a units of 1 / lcm and one of this
// side b units; starting at offset r (mod b) it meets floor((r + a - 1) / b) + 1 of them, most for
// r = b - 1: m = floor((a + b - 2) / b) + 1 (f / t when t divides f, 1 when f divides t).
clusters::GroupPlacement meeting_shards(const Dist& side, const Dist& other, int devices_per_node) {
    const std::int64_t f[4] = {side.n, side.c, side.h, side.w};
    const std::int64_t t[4] = {other.n, other.c, other.h, other.w};
    std::int64_t m[4], size = 1;
    for (int k = 0; k < 4; ++k) {
        const std::int64_t g = std::gcd(f[k], t[k]), a = f[k] / g, b = t[k] / g;
        m[k] = (a + b - 2) / b + 1;
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
}  // namespace

clusters::GroupPlacement exchange_group(const Dist& from, const Dist& to, int devices_per_node) {
    const clusters::GroupPlacement gather = meeting_shards(from, to, devices_per_node);
    const clusters::GroupPlacement scatter = meeting_shards(to, from, devices_per_node);
    if (gather.size != scatter.size) return gather.size > scatter.size ? gather : scatter;
    return gather.per_node <= scatter.per_node ? gather : scatter;
}

bool is_global_pool(const Layer& layer) {
    return layer.kind == LayerKind::adaptive_avgpool2d && layer.output_shape.size() == 3 &&
           layer.output_shape[1] == 1 && layer.output_shape[2] == 1;
}

double weight_shards(LayerKind kind, const Layout& layout, const Dist& in) {
    if (is_anchor_kind(kind)) return static_cast<double>(layout.co) * layout.ci;
    return kind == LayerKind::batchnorm2d ? in.c : 1.0;
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
