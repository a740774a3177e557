// Building a node's layers: its input tensors and attributes, the window geometry of convolution
// and pooling, inference through networks/infer.hpp with the JSON spec's limits, and adding a
// layer once its shape agrees with ONNX's.
#include <algorithm>
#include <tuple>

#include "networks/onnx/importer.hpp"

namespace dnnplan::networks::onnx_import {

const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const std::string& name) {
    for (const auto& a : node.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}

const Value& Importer::value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) fail_node("reads tensor \"" + name + "\", which no earlier node produces");
    return it->second;
}

// The full inferred dims of an output (every dimension known), else the "cannot infer" error.
Shape Importer::output_dims(const std::string& name) const {
    auto it = inferred_.find(name);
    if (it == inferred_.end() || !it->second.has_dims)
        fail_node("ONNX shape inference could not infer the shape of its output \"" + name + "\"");
    for (auto d : it->second.dims)
        if (d < 0)
            fail_node("ONNX shape inference could not infer every dimension of its output \"" + name + "\" (got " +
                      shape_string(it->second.dims) + ", -1 unknown)");
    return it->second.dims;
}

Shape Importer::per_sample(const Shape& full, const std::string& name) const {
    if (full.empty() || full[0] != batch_)
        fail_node("output \"" + name + "\" has shape " + shape_string(full) +
                  ": its first dimension is not the batch (" +
                  (static_batch_ ? std::to_string(batch_) : "dynamic") +
                  "); operators that mix the batch dimension are not supported");
    return Shape(full.begin() + 1, full.end());
}

std::vector<int> Importer::activation_inputs(const onnx::NodeProto& node) const {
    std::vector<int> layers;
    for (int i = 0; i < node.input_size(); ++i)
        if (!node.input(i).empty() && value(node.input(i)).activation) layers.push_back(value(node.input(i)).layer);
    return layers;
}

// The activation in slot `i`, or an error.
int Importer::activation_at(const onnx::NodeProto& node, int i, const char* what) const {
    if (!present(node, i) || !value(node.input(i)).activation)
        fail_node(std::string("expected ") + what + " (input " + std::to_string(i) +
                  ") to depend on the graph input");
    return value(node.input(i)).layer;
}

// The constant (initializer or folded) in slot `i` with known dims, or an error.
const Value& Importer::constant_at(const onnx::NodeProto& node, int i, const char* what) const {
    if (!present(node, i)) fail_node(std::string("missing ") + what + " (input " + std::to_string(i) + ")");
    const Value& v = value(node.input(i));
    if (v.activation)
        fail_node(std::string(what) + " \"" + node.input(i) +
                  "\" is computed from the graph input; only constant weights are supported");
    if (!v.has_dims) fail_node(std::string("the shape of ") + what + " \"" + node.input(i) + "\" is unknown");
    for (auto d : v.dims)
        if (d < 0) fail_node(std::string("the shape of ") + what + " \"" + node.input(i) + "\" is unknown");
    return v;
}

// Trainable parameters a layer owns: the initializers behind its weight inputs, each counted once
// in the whole graph (a tensor shared by several nodes belongs to its first user).
std::int64_t Importer::claim(const onnx::NodeProto& node, std::initializer_list<int> slots) {
    std::int64_t total = 0;
    for (int i : slots) {
        if (!present(node, i)) continue;
        const Value& v = value(node.input(i));
        if (v.activation) continue;
        for (const auto& name : v.sources) {
            const auto* t = values_.at(name).tensor;
            bool is_float =
                t && (t->data_type() == onnx::TensorProto::FLOAT || t->data_type() == onnx::TensorProto::FLOAT16 ||
                      t->data_type() == onnx::TensorProto::BFLOAT16 || t->data_type() == onnx::TensorProto::DOUBLE);
            if (!is_float || !claimed_.insert(name).second) continue;
            total += initializer_elements_.at(name);
        }
    }
    return total;
}

// Infers a layer of a kind the JSON spec has, reading `input_count` times one input of per-sample
// `shape` (token ids when `tokens`). The importer once inferred each node through a one-layer JSON
// spec; the spec's limits and its name "x" for the input are kept, so messages stay the same.
Layer Importer::infer(LayerKind kind, const std::string& kind_name, const LayerAttributes& attrs, const Shape& shape,
                      int input_count, bool tokens) {
    check_spec_limits(shape, kind, attrs, tokens);
    Layer input;
    input.name = tokens ? "input" : "x";
    input.kind = tokens ? LayerKind::input : LayerKind::layernorm;  // any kind but input reads floats
    input.output_shape = shape;
    Layer layer;
    layer.kind = kind;
    layer.attrs = attrs;
    try {
        infer_layer(layer, LayerContext{kind_name, std::vector<const Layer*>(input_count, &input), tokens, nullptr});
    } catch (const LayerError& e) {
        fail_node(e.what());
    }
    return layer;
}

Layer Importer::infer_activation(const std::string& function, const Shape& shape) {
    LayerAttributes a;
    a.function = function;
    return infer(LayerKind::activation, function, a, shape);
}

// The limits a JSON spec puts on an input shape and on attributes (spec_loader.cpp), in the order
// the spec loader checks them.
void Importer::check_spec_limits(const Shape& shape, LayerKind kind, const LayerAttributes& a, bool tokens) const {
    auto at_least = [&](std::int64_t value, std::int64_t min) {
        if (value >= min) return;
        if (min == 1) fail_node("must be a positive integer, got " + std::to_string(value));
        if (min == 0) fail_node("must be a non-negative integer, got " + std::to_string(value));
        fail_node("must be at least " + std::to_string(min) + ", got " + std::to_string(value));
    };
    auto at_most_rank = [&](const Shape& sizes) {
        if (sizes.size() > kMaxRank)
            fail_node("expected at most " + std::to_string(kMaxRank) + " sizes, got " + std::to_string(sizes.size()));
    };
    if (tokens) {
        at_least(shape.at(0), 1);
    } else {
        at_most_rank(shape);
        for (auto d : shape) at_least(d, 1);
        if (!checked_elements(shape))
            fail_node("input shape " + shape_string(shape) + " has too many elements for 64-bit counts");
    }
    switch (kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            at_least(a.out_channels, 1);
            for (auto [value, min] : {std::pair{a.kernel_h, 1}, {a.kernel_w, 1}, {a.stride_h, 1}, {a.stride_w, 1},
                                      {a.padding_h, 0}, {a.padding_w, 0}, {a.dilation_h, 1}, {a.dilation_w, 1}})
                at_least(value, min);
            if (kind == LayerKind::conv_transpose2d) {
                at_least(a.output_padding_h, 0);
                at_least(a.output_padding_w, 0);
            }
            at_least(a.groups, 1);
            break;
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d:
            for (auto [value, min] : {std::pair{a.kernel_h, 1}, {a.kernel_w, 1}, {a.stride_h, 1}, {a.stride_w, 1},
                                      {a.padding_h, 0}, {a.padding_w, 0}})
                at_least(value, min);
            if (kind == LayerKind::maxpool2d) {
                at_least(a.dilation_h, 1);
                at_least(a.dilation_w, 1);
            }
            break;
        case LayerKind::linear:
            at_least(a.out_features, 1);
            break;
        case LayerKind::embedding:
            at_least(a.num_embeddings, 1);
            at_least(a.embedding_dim, 1);
            break;
        case LayerKind::upsample:
            at_least(a.scale, 1);
            if (a.scale > kMaxUpsampleScale)
                fail_node("must be at most " + std::to_string(kMaxUpsampleScale) + ", got " + std::to_string(a.scale));
            break;
        case LayerKind::reshape:
            at_most_rank(a.target_shape);
            for (auto d : a.target_shape) {
                at_least(d, -1);
                if (d == 0) fail_node("sizes must be positive (or -1 for one inferred size)");
            }
            break;
        default:
            break;
    }
}

// Adds a layer for `node`'s output `output` reading `inputs`; checks its shape against ONNX's.
int Importer::add_layer(const onnx::NodeProto& node, Layer layer, const std::vector<int>& inputs, int output,
                        bool check_shape) {
    const std::string& out_name = node.output(output);
    Shape expected = per_sample(output_dims(out_name), out_name);
    if (check_shape && layer.output_shape != expected)
        fail_node("dnnplan infers the output shape " + shape_string(layer.output_shape) +
                  " but ONNX shape inference gives " + shape_string(expected) +
                  " (per sample); this attribute combination is not supported");
    layer.output_shape = expected;
    layer.output_elements = product(expected);
    std::string base = node.name().empty() ? out_name : node.name();
    if (node.output_size() > 1 && output > 0) base += ":" + std::to_string(output);
    if (base.empty()) base = node.op_type() + "_" + std::to_string(node_index_);
    std::string name = base;
    for (int k = 1; !used_names_.insert(name).second; ++k) name = base + "#" + std::to_string(k);
    layer.name = name;
    layer.inputs = inputs;
    layer.spec_pointer = node_location();
    autograd_.add(layer);  // no ONNX layer has internal backward work (attention is MatMuls there)
    network_.layers.push_back(std::move(layer));
    int index = static_cast<int>(network_.layers.size()) - 1;
    Value v = inferred_.count(out_name) ? inferred_.at(out_name) : Value{};
    v.activation = true;
    v.layer = index;
    values_[out_name] = v;
    return index;
}

// A layer the JSON spec has no kind for: elementwise (IR kind activation, named by its op) with
// the given per-output-element costs, or zero-cost data movement when both are 0.
Layer Importer::elementwise(const std::string& function, std::int64_t elements, std::int64_t forward,
                            std::int64_t backward) {
    Layer l;
    l.kind = LayerKind::activation;
    l.attrs.function = function;
    l.fwd_flops = mul(forward, elements);
    l.bwd_input_flops = mul(backward, elements);
    return l;
}

std::int64_t Importer::or_fail(std::optional<std::int64_t> r) const {
    if (!r) fail_node(kCountOverflow);
    return *r;
}

std::int64_t Importer::int_attr(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback) const {
    const auto* a = attribute(node, name);
    return a ? a->i() : fallback;
}

float Importer::float_attr(const onnx::NodeProto& node, const std::string& name, float fallback) const {
    const auto* a = attribute(node, name);
    return a ? a->f() : fallback;
}

std::string Importer::string_attr(const onnx::NodeProto& node, const std::string& name,
                                  const std::string& fallback) const {
    const auto* a = attribute(node, name);
    return a ? a->s() : fallback;
}

std::vector<std::int64_t> Importer::ints_attr(const onnx::NodeProto& node, const std::string& name, std::size_t count,
                                              std::int64_t fallback) const {
    const auto* a = attribute(node, name);
    if (!a || a->ints_size() == 0) return std::vector<std::int64_t>(count, fallback);
    std::vector<std::int64_t> v(a->ints().begin(), a->ints().end());
    if (v.size() != count)
        fail_node("attribute \"" + name + "\" has " + std::to_string(v.size()) + " values, expected " +
                  std::to_string(count));
    return v;
}

Importer::Window Importer::window(const onnx::NodeProto& node, const Shape& spatial,
                                  std::vector<std::int64_t> kernel) const {
    std::size_t n = spatial.size();
    Window w;
    w.kernel = std::move(kernel);
    w.stride = ints_attr(node, "strides", n, 1);
    w.dilation = ints_attr(node, "dilations", n, 1);
    std::vector<std::int64_t> pads = ints_attr(node, "pads", 2 * n, 0);
    std::string auto_pad = string_attr(node, "auto_pad", "NOTSET");
    for (std::size_t i = 0; i < n; ++i) {
        if (w.stride[i] < 1 || w.dilation[i] < 1 || w.kernel[i] < 1)
            fail_node("kernel, strides and dilations must be positive");
        if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
            std::int64_t out = (spatial[i] + w.stride[i] - 1) / w.stride[i];
            std::int64_t total = std::max<std::int64_t>(
                0, add(mul(out - 1, w.stride[i]), mul(w.kernel[i] - 1, w.dilation[i])) + 1 - spatial[i]);
            pads[i] = total / 2;
            pads[i + n] = total - total / 2;
        } else if (auto_pad == "VALID") {
            pads[i] = pads[i + n] = 0;
        } else if (auto_pad != "NOTSET") {
            fail_node("unknown auto_pad \"" + auto_pad + "\"");
        }
        if (pads[i] < 0 || pads[i + n] < 0) fail_node("negative pads are not supported");
        if (pads[i] == pads[i + n]) {
            w.pad.push_back(pads[i]);
            w.grow.push_back(0);
        } else {
            w.pad.push_back(0);
            w.grow.push_back(add(pads[i], pads[i + n]));
        }
    }
    return w;
}

// The 2-D view of an N-d tensor [C, *spatial] for the JSON conv and pooling layers: the last two
// spatial axes (1-D gets height 1); leading spatial axes (3-D and up) are handled by the caller.
std::pair<std::int64_t, std::int64_t> Importer::hw(const std::vector<std::int64_t>& v, std::int64_t one) {
    if (v.size() == 1) return {one, v[0]};
    return {v[v.size() - 2], v[v.size() - 1]};
}

Importer::PlanarWindow Importer::planar(const Window& w, const Shape& spatial) const {
    PlanarWindow p{};
    p.folded_kernel = 1;
    for (std::size_t i = 0; i + 2 < spatial.size(); ++i) p.folded_kernel = mul(p.folded_kernel, w.kernel[i]);
    std::tie(p.kh, p.kw) = hw(w.kernel, 1);
    std::tie(p.sh, p.sw) = hw(w.stride, 1);
    std::tie(p.dh, p.dw) = hw(w.dilation, 1);
    std::tie(p.ph, p.pw) = hw(w.pad, 0);
    std::tie(p.gh, p.gw) = hw(w.grow, 0);
    std::tie(p.ih, p.iw) = hw(spatial, 1);
    return p;
}

// The node's ONNX output shape after checking that its last two axes are the 2-D layer's, and
// the number of 2-D planes (the leading spatial axes) each costing one 2-D layer.
std::pair<Shape, std::int64_t> Importer::planes_of(const onnx::NodeProto& node, const Layer& layer) const {
    Shape out = per_sample(output_dims(node.output(0)), node.output(0));
    std::size_t tail = std::min<std::size_t>(2, out.size() - 1);
    if (Shape(out.end() - tail, out.end()) != Shape(layer.output_shape.end() - tail, layer.output_shape.end()))
        fail_node("dnnplan infers the output shape " + shape_string(layer.output_shape) +
                  " but ONNX shape inference gives " + shape_string(out));
    std::int64_t planes = product(Shape(out.begin() + 1, out.end() - tail));
    return {out, planes};
}

}  // namespace dnnplan::networks::onnx_import
