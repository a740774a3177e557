// Operator translation: each ONNX node that depends on the graph input becomes layers, inferred
// by networks/infer.hpp where the JSON spec has a kind for the operator and counted here otherwise
// (networks/README.md, "ONNX"); ONNX's inferred shapes cross-check every layer.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "networks/onnx/importer.hpp"

namespace dnnplan::networks::onnx_import {

namespace {

// FLOP conventions for the operators the JSON spec has no kind for (networks/README.md, "ONNX").
constexpr int kClipForward = 2, kClipBackward = 1;                // max and min; a mask
constexpr int kHardSigmoidForward = 4, kHardSigmoidBackward = 2;  // a multiply-add and a clamp
constexpr int kPReluForward = 2, kPReluBackward = 2;              // like leaky_relu

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

const std::map<std::string, OpClass>& op_classes() {
    static const std::map<std::string, OpClass> table = {
        {"Conv", OpClass::conv},
        {"ConvTranspose", OpClass::conv_transpose},
        {"Gemm", OpClass::gemm},
        {"MatMul", OpClass::matmul},
        {"Add", OpClass::binary},
        {"Sub", OpClass::binary},
        {"Mul", OpClass::binary},
        {"Div", OpClass::binary},
        {"Sum", OpClass::binary},
        {"Max", OpClass::binary},
        {"Min", OpClass::binary},
        {"Pow", OpClass::binary},
        {"Mean", OpClass::binary},
        {"Relu", OpClass::activation},
        {"LeakyRelu", OpClass::activation},
        {"Elu", OpClass::activation},
        {"Sigmoid", OpClass::activation},
        {"Tanh", OpClass::activation},
        {"HardSwish", OpClass::activation},
        {"Gelu", OpClass::activation},
        {"Clip", OpClass::activation},
        {"HardSigmoid", OpClass::activation},
        {"PRelu", OpClass::activation},
        {"Softmax", OpClass::softmax},
        {"LogSoftmax", OpClass::softmax},
        {"MaxPool", OpClass::pool},
        {"AveragePool", OpClass::pool},
        {"GlobalAveragePool", OpClass::global_pool},
        {"GlobalMaxPool", OpClass::global_pool},
        {"BatchNormalization", OpClass::batchnorm},
        {"InstanceNormalization", OpClass::instancenorm},
        {"LayerNormalization", OpClass::layernorm},
        {"Concat", OpClass::concat},
        {"Flatten", OpClass::flatten},
        {"Reshape", OpClass::view},
        {"Transpose", OpClass::view},
        {"Squeeze", OpClass::view},
        {"Unsqueeze", OpClass::view},
        {"Pad", OpClass::movement},
        {"Slice", OpClass::movement},
        {"Split", OpClass::movement},
        {"Expand", OpClass::movement},
        {"Tile", OpClass::movement},
        {"Dropout", OpClass::dropout},
        {"Identity", OpClass::alias},
        {"Cast", OpClass::alias},
        {"Gather", OpClass::gather},
        {"Resize", OpClass::resize},
        {"Upsample", OpClass::resize},
        {"Neg", OpClass::unary_math},
        {"Abs", OpClass::unary_math},
        {"Exp", OpClass::unary_math},
        {"Log", OpClass::unary_math},
        {"Sqrt", OpClass::unary_math},
        {"Reciprocal", OpClass::unary_math},
        {"Erf", OpClass::unary_math},
        {"ReduceMean", OpClass::reduce},
        {"ReduceSum", OpClass::reduce},
        {"ReduceMax", OpClass::reduce},
        {"Shape", OpClass::shape},
        {"Size", OpClass::shape},
        {"Constant", OpClass::constant},
    };
    return table;
}

}  // namespace

OpClass classify(const onnx::NodeProto& node) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") return OpClass::unknown;
    auto it = op_classes().find(node.op_type());
    return it == op_classes().end() ? OpClass::unknown : it->second;
}

void Importer::import_node(const onnx::NodeProto& node) {
    if (node.output_size() == 0) return;  // nothing reads what it does
    OpClass cls = classify(node);
    if (cls == OpClass::constant) return constant_node(node);
    bool any_activation = false;
    for (int i = 0; i < node.input_size(); ++i)
        if (!node.input(i).empty() && value(node.input(i)).activation) any_activation = true;
    // Shape-only subgraphs fold: a node of constants (or reading only a shape) has no layer.
    if (!any_activation || cls == OpClass::shape) return fold(node);
    switch (cls) {
        case OpClass::conv:
            return conv(node);
        case OpClass::conv_transpose:
            return conv_transpose(node);
        case OpClass::gemm:
            return gemm(node);
        case OpClass::matmul:
            return matmul(node);
        case OpClass::binary:
            return binary(node);
        case OpClass::activation:
            return activation(node);
        case OpClass::softmax:
            return softmax(node);
        case OpClass::pool:
            return pool(node);
        case OpClass::global_pool:
            return global_pool(node);
        case OpClass::batchnorm:
        case OpClass::instancenorm:
            return batchnorm(node);
        case OpClass::layernorm:
            return layernorm(node);
        case OpClass::concat:
            return concat(node);
        case OpClass::flatten:
            return flatten(node);
        case OpClass::view:
            return view(node);
        case OpClass::movement:
            return movement(node);
        case OpClass::dropout:
            return dropout(node);
        case OpClass::alias:
            return alias(node);
        case OpClass::gather:
            return gather(node);
        case OpClass::resize:
            return resize(node);
        case OpClass::unary_math:
            return unary_math(node);
        case OpClass::reduce:
            return reduce(node);
        case OpClass::unknown:
            return unknown(node);
        case OpClass::shape:
        case OpClass::constant:
            break;
    }
}

void Importer::constant_node(const onnx::NodeProto& node) {
    for (const auto& out : node.output()) {
        Value v = inferred_.count(out) ? inferred_.at(out) : Value{};
        if (const auto* a = attribute(node, "value"); a && a->has_t()) {
            v.tensor = &a->t();
            v.has_dims = true;
            v.dims.assign(a->t().dims().begin(), a->t().dims().end());
        }
        values_[out] = v;
    }
}

void Importer::fold(const onnx::NodeProto& node) {
    std::set<std::string> sources;
    if (classify(node) != OpClass::shape)
        for (int i = 0; i < node.input_size(); ++i)
            if (!node.input(i).empty()) {
                const Value& in = value(node.input(i));
                sources.insert(in.sources.begin(), in.sources.end());
            }
    for (const auto& out : node.output()) {
        if (out.empty()) continue;
        Value v = inferred_.count(out) ? inferred_.at(out) : Value{};
        v.sources = sources;
        values_[out] = v;
    }
}

void Importer::conv(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Value& weight = constant_at(node, 1, "the weight");
    const Shape& in = in_shape(x);
    if (in.size() < 2 || weight.dims.size() != in.size() + 1)
        fail_node("weight " + shape_string(weight.dims) + " does not fit the per-sample input " + shape_string(in));
    std::int64_t groups = int_attr(node, "group", 1);
    Shape spatial(in.begin() + 1, in.end());
    Window w = window(node, spatial, std::vector<std::int64_t>(weight.dims.begin() + 2, weight.dims.end()));
    // Leading spatial axes of a 3-D conv fold into the channels: a [Cin*kd, H, W] conv2d has the
    // weights of the [Cin, D, H, W] conv3d, and each of its OD output planes costs one conv2d.
    const PlanarWindow p = planar(w, spatial);
    LayerAttributes a;
    a.out_channels = weight.dims[0];
    std::tie(a.kernel_h, a.kernel_w, a.stride_h, a.stride_w) = std::tuple(p.kh, p.kw, p.sh, p.sw);
    std::tie(a.padding_h, a.padding_w, a.dilation_h, a.dilation_w) = std::tuple(p.ph, p.pw, p.dh, p.dw);
    a.groups = groups;
    a.bias = present(node, 2);
    Layer layer =
        infer(LayerKind::conv2d, "conv2d", a, {mul(in[0], p.folded_kernel), add(p.ih, p.gh), add(p.iw, p.gw)});
    auto [out, planes] = planes_of(node, layer);
    layer.fwd_flops = mul(layer.fwd_flops, planes);
    layer.bwd_input_flops = mul(layer.bwd_input_flops, planes);
    layer.bwd_weight_flops = mul(layer.bwd_weight_flops, planes);
    layer.output_shape = out;
    layer.params = claim(node, {1, 2});
    add_layer(node, std::move(layer), {x});
}

void Importer::conv_transpose(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Value& weight = constant_at(node, 1, "the weight");
    const Shape& in = in_shape(x);
    if (in.size() != 3 && in.size() != 2)
        fail_node("only 1-D and 2-D ConvTranspose are supported, got the per-sample input " + shape_string(in));
    if (weight.dims.size() != in.size() + 1)
        fail_node("weight " + shape_string(weight.dims) + " does not fit the per-sample input " + shape_string(in));
    std::int64_t groups = int_attr(node, "group", 1);
    Shape spatial(in.begin() + 1, in.end());
    Window w = window(node, spatial, std::vector<std::int64_t>(weight.dims.begin() + 2, weight.dims.end()));
    for (auto g : w.grow)
        if (g) fail_node("uneven ConvTranspose padding is not supported");
    auto op = ints_attr(node, "output_padding", spatial.size(), 0);
    auto [kh, kw] = hw(w.kernel, 1);
    auto [sh, sw] = hw(w.stride, 1);
    auto [dh, dw] = hw(w.dilation, 1);
    auto [ph, pw] = hw(w.pad, 0);
    auto [oph, opw] = hw(op, 0);
    auto [ih, iw] = hw(spatial, 1);
    LayerAttributes a;
    a.out_channels = weight.dims[1] * groups;
    std::tie(a.kernel_h, a.kernel_w, a.stride_h, a.stride_w) = std::tuple(kh, kw, sh, sw);
    std::tie(a.padding_h, a.padding_w, a.output_padding_h, a.output_padding_w) = std::tuple(ph, pw, oph, opw);
    std::tie(a.dilation_h, a.dilation_w) = std::tuple(dh, dw);
    a.groups = groups;
    a.bias = present(node, 2);
    Layer layer = infer(LayerKind::conv_transpose2d, "conv_transpose2d", a, {in[0], ih, iw});
    if (in.size() == 2) layer.output_shape = {layer.output_shape[0], layer.output_shape[2]};
    layer.params = claim(node, {1, 2});
    add_layer(node, std::move(layer), {x});
}

// A linear layer on [F] or [rows..., F] (rows folded into one sequence axis for the JSON layer).
Layer Importer::linear(const Shape& in, std::int64_t out_features, bool bias) {
    if (in.empty()) fail_node("a linear layer needs an input with at least one dimension");
    Shape view = in.size() == 1 ? in : Shape{product(Shape(in.begin(), in.end() - 1)), in.back()};
    LayerAttributes a;
    a.out_features = out_features;
    a.bias = bias;
    return infer(LayerKind::linear, "linear", a, view);
}

// A product of two activations (attention scores): 2 FLOPs per multiply-add, both operands get
// a gradient of the same cost, no weight.
void Importer::activation_matmul(const onnx::NodeProto& node, const std::vector<int>& inputs, std::int64_t k,
                                 std::int64_t params) {
    Shape out = per_sample(output_dims(node.output(0)), node.output(0));
    std::int64_t elements = product(out);
    Layer layer =
        elementwise("matmul", elements, mul(2, k), mul(mul(2, k), static_cast<std::int64_t>(inputs.size())));
    layer.params = params;
    if (params > 0) layer.bwd_weight_flops = mul(mul(2, k), elements);
    add_layer(node, std::move(layer), inputs, 0, false);
}

void Importer::gemm(const onnx::NodeProto& node) {
    if (int_attr(node, "transA", 0) != 0) fail_node("Gemm with transA=1 is not supported");
    int x = activation_at(node, 0, "A");
    const Shape& in = in_shape(x);
    if (present(node, 1) && value(node.input(1)).activation) {
        return activation_matmul(node, activation_inputs(node), in.empty() ? 1 : in.back(), claim(node, {2}));
    }
    const Value& b = constant_at(node, 1, "B");
    if (b.dims.size() != 2) fail_node("B must be a matrix, got " + shape_string(b.dims));
    std::int64_t out_features = int_attr(node, "transB", 0) ? b.dims[0] : b.dims[1];
    bool bias = present(node, 2) && float_attr(node, "beta", 1.0f) != 0.0f;
    if (bias && value(node.input(2)).activation)
        fail_node("a bias C computed from the graph input is not supported");
    Layer layer = linear(in, out_features, bias);
    layer.params = claim(node, {1, bias ? 2 : 1});
    add_layer(node, std::move(layer), {x});
}

void Importer::matmul(const onnx::NodeProto& node) {
    if (!present(node, 0) || !present(node, 1)) fail_node("MatMul needs two inputs");
    const Value& a = value(node.input(0));
    const Value& b = value(node.input(1));
    if (a.activation && !b.activation && b.has_dims && b.dims.size() == 2) {
        constant_at(node, 1, "the weight");
        Layer layer = linear(in_shape(a.layer), b.dims[1], false);
        layer.params = claim(node, {1});
        return void(add_layer(node, std::move(layer), {a.layer}));
    }
    std::int64_t k = 1;
    if (a.activation)
        k = in_shape(a.layer).empty() ? 1 : in_shape(a.layer).back();
    else if (a.has_dims && !a.dims.empty())
        k = a.dims.back();
    activation_matmul(node, activation_inputs(node), k, claim(node, {0, 1}));
}

void Importer::binary(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    std::vector<int> inputs = activation_inputs(node);
    bool all_activations = static_cast<int>(inputs.size()) == node.input_size();
    bool same_shape = true;
    for (int i : inputs) same_shape = same_shape && in_shape(i) == in_shape(inputs[0]);
    Shape out = per_sample(output_dims(node.output(0)), node.output(0));
    if ((op == "Add" || op == "Sub" || op == "Sum") && all_activations && inputs.size() >= 2 && same_shape &&
        in_shape(inputs[0]) == out && !out.empty()) {
        Layer layer = infer(LayerKind::add, "add", {}, out, static_cast<int>(inputs.size()));
        return void(add_layer(node, std::move(layer), inputs));
    }
    // Broadcast or with a constant: one FLOP per output element and operand pair; Add and Sub
    // pass the gradient through like the JSON add, the others cost one FLOP per element for each
    // operand that needs a gradient.
    std::int64_t elements = product(out);
    std::int64_t operands = node.input_size();
    bool pass_through = op == "Add" || op == "Sub" || op == "Sum";
    Layer layer = elementwise(lower(op), elements, std::max<std::int64_t>(1, operands - 1),
                              pass_through ? 0 : static_cast<std::int64_t>(inputs.size()));
    layer.params = 0;
    for (int i = 0; i < node.input_size(); ++i) {
        // A float initializer operand (a learned scale, bias or position table) is a parameter.
        if (!present(node, i) || value(node.input(i)).activation || !values_.count(node.input(i)) ||
            !values_.at(node.input(i)).tensor || !values_.at(node.input(i)).sources.count(node.input(i)))
            continue;
        layer.params += claim(node, {i});
    }
    if (layer.params > 0) layer.bwd_weight_flops = elements;
    add_layer(node, std::move(layer), inputs, 0, false);
}

void Importer::activation(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    static const std::map<std::string, std::string> json_kinds = {
        {"Relu", "relu"}, {"LeakyRelu", "leaky_relu"}, {"Elu", "elu"},   {"Sigmoid", "sigmoid"},
        {"Tanh", "tanh"}, {"HardSwish", "hardswish"},  {"Gelu", "gelu"},
    };
    if (auto it = json_kinds.find(op); it != json_kinds.end() && !in.empty()) {
        Layer layer = infer_activation(it->second, in);
        return void(add_layer(node, std::move(layer), {x}));
    }
    std::int64_t elements = product(in);
    Layer layer;
    if (op == "Clip") {
        layer = elementwise("clip", elements, kClipForward, kClipBackward);
    } else if (op == "HardSigmoid") {
        layer = elementwise("hardsigmoid", elements, kHardSigmoidForward, kHardSigmoidBackward);
    } else if (op == "PRelu") {
        layer = elementwise("prelu", elements, kPReluForward, kPReluBackward);
        layer.params = claim(node, {1});
        if (layer.params > 0) layer.bwd_weight_flops = elements;
    } else {
        // A rank-0 per-sample tensor (a scalar per sample) has no JSON layer; one FLOP per element.
        layer = elementwise(lower(op), elements, 1, 1);
    }
    layer.output_shape = in;
    add_layer(node, std::move(layer), {x});
}

void Importer::unary_math(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    Layer layer = elementwise(lower(node.op_type()), product(in_shape(x)), 1, 1);
    layer.output_shape = in_shape(x);
    add_layer(node, std::move(layer), {x});
}

void Importer::reduce(const onnx::NodeProto& node) {
    // One FLOP per input element forward; the gradient broadcasts back to every input element.
    int x = activation_at(node, 0, "the data");
    std::int64_t elements = product(in_shape(x));
    Layer layer = elementwise(lower(node.op_type()), 1, elements, elements);
    add_layer(node, std::move(layer), {x}, 0, false);
}

std::int64_t Importer::sample_axis(std::int64_t axis, std::size_t full_rank) const {
    std::int64_t r = static_cast<std::int64_t>(full_rank);
    std::int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a >= r)
        fail_node("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
    if (a == 0) fail_node("axis 0 is the batch dimension; operators across the batch are not supported");
    return a - 1;
}

void Importer::softmax(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    std::int64_t axis = sample_axis(int_attr(node, "axis", opset_ >= 13 ? -1 : 1), in.size() + 1);
    LayerAttributes a;
    a.axis = axis;
    Layer layer = infer(LayerKind::softmax, "softmax", a, in);
    add_layer(node, std::move(layer), {x});
}

void Importer::pool(const onnx::NodeProto& node) {
    bool is_max = node.op_type() == "MaxPool";
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    if (in.size() < 2) fail_node("pooling needs a [C, spatial...] input, got " + shape_string(in));
    Shape spatial(in.begin() + 1, in.end());
    const auto* k = attribute(node, "kernel_shape");
    if (!k || static_cast<std::size_t>(k->ints_size()) != spatial.size())
        fail_node("kernel_shape must give one size per spatial axis");
    Window w = window(node, spatial, std::vector<std::int64_t>(k->ints().begin(), k->ints().end()));
    // Leading axes of a 3-D pool: every output plane costs one 2-D pool, each of whose windows is
    // kd times longer.
    const PlanarWindow p = planar(w, spatial);
    LayerAttributes a;
    std::tie(a.kernel_h, a.kernel_w, a.stride_h, a.stride_w) = std::tuple(p.kh, p.kw, p.sh, p.sw);
    std::tie(a.padding_h, a.padding_w) = std::tuple(p.ph, p.pw);
    a.ceil_mode = int_attr(node, "ceil_mode", 0) != 0;
    if (is_max)
        std::tie(a.dilation_h, a.dilation_w) = std::tuple(p.dh, p.dw);
    else if (p.dh != 1 || p.dw != 1)
        fail_node("dilated average pooling is not supported");
    const LayerKind kind = is_max ? LayerKind::maxpool2d : LayerKind::avgpool2d;
    Layer layer = infer(kind, is_max ? "maxpool2d" : "avgpool2d", a, {in[0], p.ih + p.gh, p.iw + p.gw});
    auto [out, planes] = planes_of(node, layer);
    layer.fwd_flops = mul(layer.fwd_flops, mul(planes, p.folded_kernel));
    layer.bwd_input_flops = mul(layer.bwd_input_flops, mul(planes, is_max ? 1 : p.folded_kernel));
    layer.output_shape = out;
    add_layer(node, std::move(layer), {x});
}

void Importer::global_pool(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    if (in.size() < 2) fail_node("global pooling needs a [C, spatial...] input, got " + shape_string(in));
    // Every spatial position is in the one window: the [C, positions, 1] view has the same counts.
    std::int64_t positions = product(in, 1);
    const Shape view{in[0], positions, 1};
    LayerAttributes a;
    Layer layer;
    if (node.op_type() == "GlobalMaxPool") {
        std::tie(a.kernel_h, a.kernel_w, a.stride_h, a.stride_w) = std::tuple(positions, 1, positions, 1);
        layer = infer(LayerKind::maxpool2d, "maxpool2d", a, view);
    } else {
        a.output_h = a.output_w = 1;
        layer = infer(LayerKind::adaptive_avgpool2d, "global_avgpool2d", a, view);
    }
    layer.output_shape = per_sample(output_dims(node.output(0)), node.output(0));
    add_layer(node, std::move(layer), {x});
}

void Importer::batchnorm(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    if (in.empty()) fail_node("normalization needs a [C, ...] input");
    // The same per-element costs for every rank: view [C, spatial...] as [C, positions, 1].
    Layer layer = infer(LayerKind::batchnorm2d, "batchnorm2d", {}, {in[0], product(in, 1), 1});
    layer.output_shape = in;
    layer.params = claim(node, {1, 2});  // scale and bias; running mean and variance are not trained
    add_layer(node, std::move(layer), {x});
    // Training-mode outputs (running and saved statistics) are not activations.
    for (int i = 1; i < node.output_size(); ++i)
        if (!node.output(i).empty()) values_[node.output(i)] = Value{};
}

void Importer::layernorm(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    std::int64_t axis = sample_axis(int_attr(node, "axis", -1), in.size() + 1);
    // Normalized over the trailing axes: the [rows, features] view has the same counts.
    std::int64_t features = product(in, static_cast<std::size_t>(axis));
    std::int64_t rows = product(Shape(in.begin(), in.begin() + axis));
    Layer layer = infer(LayerKind::layernorm, "layernorm", {}, rows == 1 ? Shape{features} : Shape{rows, features});
    layer.output_shape = in;
    layer.params = claim(node, {1, 2});
    add_layer(node, std::move(layer), {x});
    for (int i = 1; i < node.output_size(); ++i)
        if (!node.output(i).empty()) values_[node.output(i)] = Value{};
}

void Importer::concat(const onnx::NodeProto& node) {
    std::vector<int> inputs = activation_inputs(node);
    Shape out = per_sample(output_dims(node.output(0)), node.output(0));
    std::int64_t axis = sample_axis(int_attr(node, "axis", 0), out.size() + 1);
    // Concatenation moves data only (no FLOPs), as the JSON concat.
    Layer layer;
    layer.kind = LayerKind::concat;
    layer.attrs.axis = axis;
    add_layer(node, std::move(layer), inputs, 0, false);
}

void Importer::flatten(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    std::int64_t axis = int_attr(node, "axis", 1);
    if (axis < 0) axis += static_cast<std::int64_t>(in.size()) + 1;
    if (axis == 1 && !in.empty()) return void(add_layer(node, infer(LayerKind::flatten, "flatten", {}, in), {x}));
    return view(node);
}

// Same elements, new shape (Reshape, Transpose, Squeeze, Unsqueeze, Flatten not at axis 1).
void Importer::view(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    if (node.op_type() == "Transpose") {
        const auto* perm = attribute(node, "perm");
        if (perm && perm->ints_size() > 0 && perm->ints(0) != 0)
            fail_node("the permutation moves the batch dimension");
    }
    Shape out = per_sample(output_dims(node.output(0)), node.output(0));
    if (out.empty() || in_shape(x).empty()) {
        Layer layer;
        layer.kind = LayerKind::reshape;
        layer.attrs.target_shape = out;
        return void(add_layer(node, std::move(layer), {x}, 0, false));
    }
    LayerAttributes a;
    a.target_shape = out;
    Layer layer = infer(LayerKind::reshape, "reshape", a, in_shape(x));
    add_layer(node, std::move(layer), {x});
}

// Pad, Slice, Split, Expand, Tile, Gather of an activation: data movement without FLOPs; one
// layer per output, shaped by ONNX's inference.
void Importer::movement(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    for (int i = 0; i < node.output_size(); ++i) {
        if (node.output(i).empty()) continue;
        Layer layer = elementwise(lower(node.op_type()), 0, 0, 0);
        add_layer(node, std::move(layer), {x}, i, false);
    }
}

void Importer::dropout(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    double p = float_attr(node, "ratio", 0.5f);
    if (present(node, 1)) {
        const Value& ratio = value(node.input(1));
        if (const auto* t = ratio.tensor; t && t->data_type() == onnx::TensorProto::FLOAT) {
            if (t->float_data_size() == 1)
                p = t->float_data(0);
            else if (t->raw_data().size() == sizeof(float)) {
                float f;
                std::memcpy(&f, t->raw_data().data(), sizeof f);
                p = f;
            }
        }
    }
    if (!(p >= 0.0 && p <= 1.0)) fail_node("dropout ratio " + std::to_string(p) + " is outside [0, 1]");
    const Shape& in = in_shape(x);
    if (in.empty()) fail_node("dropout of a per-sample scalar is not supported");
    LayerAttributes a;
    a.probability = p;
    Layer layer = infer(LayerKind::dropout, "dropout", a, in);
    add_layer(node, std::move(layer), {x});
    // The mask output, if read, stands for the dropout layer.
    for (int i = 1; i < node.output_size(); ++i)
        if (!node.output(i).empty()) values_[node.output(i)] = values_.at(node.output(0));
}

void Importer::alias(const onnx::NodeProto& node) {
    Value v = value(node.input(0));
    values_[node.output(0)] = v;
}

void Importer::gather(const onnx::NodeProto& node) {
    if (!present(node, 0) || !present(node, 1)) fail_node("Gather needs data and indices");
    const Value& data = value(node.input(0));
    const Value& indices = value(node.input(1));
    if (data.activation) return movement(node);
    // A table of rows indexed by token ids: an embedding.
    const Value& table = constant_at(node, 0, "the embedding table");
    if (table.dims.size() != 2 || int_attr(node, "axis", 0) != 0)
        fail_node("only Gather of rows of a 2-D table (an embedding) is supported for a constant table");
    std::int64_t tokens = product(in_shape(indices.layer));
    LayerAttributes a;
    a.num_embeddings = table.dims[0];
    a.embedding_dim = table.dims[1];
    Layer layer = infer(LayerKind::embedding, "embedding", a, {tokens}, 1, true);
    layer.params = claim(node, {0});
    add_layer(node, std::move(layer), {indices.layer}, 0, false);
}

void Importer::resize(const onnx::NodeProto& node) {
    int x = activation_at(node, 0, "the data");
    const Shape& in = in_shape(x);
    Shape out = per_sample(output_dims(node.output(0)), node.output(0));
    std::string mode = string_attr(node, "mode", "nearest");
    bool linear = mode == "linear" || mode == "bilinear";
    if (!linear && mode != "nearest") fail_node("Resize mode \"" + mode + "\" is not supported");
    if (in.size() == 3 && out.size() == 3 && out[0] == in[0] && out[1] % in[1] == 0 &&
        out[1] / in[1] == out[2] / in[2] && out[2] % in[2] == 0) {
        LayerAttributes a;
        a.scale = out[1] / in[1];
        a.mode = linear ? "bilinear" : "nearest";
        Layer layer = infer(LayerKind::upsample, "upsample", a, in);
        return void(add_layer(node, std::move(layer), {x}));
    }
    // Any other scale: the JSON upsample's per-output-element costs.
    std::int64_t outputs = product(out);
    Layer layer;
    layer.kind = LayerKind::upsample;
    layer.attrs.mode = linear ? "bilinear" : "nearest";
    layer.fwd_flops = linear ? mul(kBilinearFlopsPerOutput, outputs) : 0;
    layer.bwd_input_flops = linear ? mul(kBilinearFlopsPerOutput, outputs) : outputs;
    add_layer(node, std::move(layer), {x}, 0, false);
}

void Importer::unknown(const onnx::NodeProto& node) {
    // --allow-unknown-ops: elementwise, one FLOP per output element each way, no parameters.
    std::vector<int> inputs = activation_inputs(node);
    std::string type = (node.domain().empty() ? "" : node.domain() + ".") + node.op_type();
    for (int i = 0; i < node.output_size(); ++i) {
        if (node.output(i).empty()) continue;
        Shape out = per_sample(output_dims(node.output(i)), node.output(i));
        Layer layer = elementwise("unknown:" + type, product(out), 1, 1);
        add_layer(node, std::move(layer), inputs, i, false);
    }
}

}  // namespace dnnplan::networks::onnx_import
