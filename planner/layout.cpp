#include "layout.hpp"

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
    return in;
}
}  // namespace

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
