#include "network.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <unordered_map>

#include "graph.hpp"
#include "onnx_import.hpp"

namespace dnnplan::networks {

namespace {

// The spec's kind names, each mapped to an IR kind (activations share one IR kind).
struct KindName {
    const char* name;
    LayerKind kind;
};
constexpr KindName kKindNames[] = {
    {"conv2d", LayerKind::conv2d},
    {"conv_transpose2d", LayerKind::conv_transpose2d},
    {"linear", LayerKind::linear},
    {"maxpool2d", LayerKind::maxpool2d},
    {"avgpool2d", LayerKind::avgpool2d},
    {"adaptive_avgpool2d", LayerKind::adaptive_avgpool2d},
    {"global_avgpool2d", LayerKind::adaptive_avgpool2d},
    {"batchnorm2d", LayerKind::batchnorm2d},
    {"layernorm", LayerKind::layernorm},
    {"relu", LayerKind::activation},
    {"leaky_relu", LayerKind::activation},
    {"elu", LayerKind::activation},
    {"gelu", LayerKind::activation},
    {"sigmoid", LayerKind::activation},
    {"tanh", LayerKind::activation},
    {"silu", LayerKind::activation},
    {"hardswish", LayerKind::activation},
    {"dropout", LayerKind::dropout},
    {"flatten", LayerKind::flatten},
    {"reshape", LayerKind::reshape},
    {"softmax", LayerKind::softmax},
    {"add", LayerKind::add},
    {"concat", LayerKind::concat},
    {"embedding", LayerKind::embedding},
    {"position_embedding", LayerKind::position_embedding},
    {"attention", LayerKind::attention},
    {"upsample", LayerKind::upsample},
};

std::vector<std::string> kind_names() {
    std::vector<std::string> names;
    for (const auto& k : kKindNames) names.emplace_back(k.name);
    return names;
}

// Per-element FLOP conventions for elementwise layers (forward, input gradient); see README.
struct ElementwiseCost {
    const char* function;
    int forward;
    int backward;
};
constexpr ElementwiseCost kActivationCosts[] = {
    {"relu", 1, 1}, {"leaky_relu", 2, 2}, {"elu", 3, 3},  {"sigmoid", 4, 3},
    {"tanh", 4, 3}, {"silu", 5, 5},       {"hardswish", 4, 4}, {"gelu", 8, 12},
};
constexpr int kNormForward = 7, kNormInputGrad = 8, kNormWeightGrad = 3;
constexpr int kSoftmaxForward = 5, kSoftmaxBackward = 4;
constexpr int kDropoutForward = 2, kDropoutBackward = 1;
constexpr int kBilinearPerOutput = 8;

std::string shape_string(const Shape& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

// Limits that keep the cost of any input bounded: time and memory grow with the expanded layer
// count (about 0.8 KB and 1.3 us a layer), and scope names with the nesting depth. Real networks
// are far below both: ResNet-1001 is 3,341 layers and nests blocks 1 deep. At the cap a load
// takes about 0.17 s and 86 MB; a million layers took 1.3 s and 840 MB.
constexpr std::int64_t kMaxLayers = 100'000;
constexpr int kMaxBlockDepth = 16;
// Input references cost like layers (one edge, one lookup each) and a long `inputs` list in a block
// multiplies without adding layers. Real layers read 1 or 2 (a DenseNet concat a few dozen).
constexpr std::int64_t kMaxInputReferences = 1'000'000;
// Every layer stores its shape and full name, so both must be short for the layer cap to bound
// memory: per-sample tensors have rank 1 to 4 in practice, names a few dozen characters.
constexpr std::size_t kMaxRank = 16;
constexpr std::size_t kMaxNameLength = 256;

// One layer object of the spec. Every copy of a repeat block shares it, so its fields are read and
// checked once, not once per copy.
struct SpecLayer {
    SpecNode node;
    std::string kind_name;
    LayerKind kind = LayerKind::input;
    std::string local_name;            // its "name", or KIND_INDEX within its block
    bool has_inputs = false;
    std::vector<std::string> inputs;   // its "inputs" as written: short names, "$in" or full names
};

// The spec's layer list with repeat blocks kept as a tree; expanded once everything is checked.
struct SpecItem {
    int layer = -1;                    // index into the SpecLayer table, or -1 for a block
    std::string block_name;
    std::int64_t copies = 0;
    std::vector<SpecItem> body;
};

// What a layer list expands to: layers and `inputs` entries.
struct Expansion {
    std::int64_t layers = 0;
    std::int64_t references = 0;
};

// Reads and checks the `layers` tree in document order, counting what it expands to before
// anything is expanded, so a huge `repeat` fails at once instead of after filling memory.
class SpecReader {
public:
    std::vector<SpecLayer> layers;

    // Returns what `array` expands to (never more than kMaxLayers and kMaxInputReferences).
    Expansion read(const SpecNode& array, int depth, std::vector<SpecItem>& items) {
        array.expect_array("an array of layers");
        if (array.size() == 0) array.fail("expected at least one layer");
        std::map<std::string, int> kind_counts;
        Expansion total;
        for (std::size_t i = 0; i < array.size(); ++i) {
            SpecNode node = array.element(i);
            node.expect_object("a layer object");
            SpecItem item;
            Expansion expanded{1, 0};
            if (node.has("repeat")) {
                node.check_keys({"repeat", "name", "layers"});
                item.copies = node.get_int("repeat", 1);
                item.block_name = node.get_string("name");
                if (item.block_name.empty()) node.child("name").fail("block name must not be empty");
                if (depth >= kMaxBlockDepth)
                    node.fail("repeat blocks nest more than " + std::to_string(kMaxBlockDepth) + " levels deep");
                Expansion per_copy = read(node.child("layers"), depth + 1, item.body);
                auto check = [&](std::int64_t count, std::int64_t limit, const char* what) {
                    auto product = checked_mul(item.copies, count);
                    if (!product || *product > limit)
                        node.fail("repeat block \"" + item.block_name + "\" expands to " +
                                  (product ? std::to_string(*product) : std::string("more than 2^63")) + " " + what +
                                  ", more than the limit of " + std::to_string(limit));
                    return *product;
                };
                expanded.layers = check(per_copy.layers, kMaxLayers, "layers");
                expanded.references = check(per_copy.references, kMaxInputReferences, "input references");
            } else {
                item.layer = read_layer(node, kind_counts);
                expanded.references = static_cast<std::int64_t>(layers[item.layer].inputs.size());
            }
            // Each term is at most its limit: no overflow.
            total.layers += expanded.layers;
            total.references += expanded.references;
            if (total.layers > kMaxLayers)
                node.fail("the layers expand to more than the limit of " + std::to_string(kMaxLayers) + " layers");
            if (total.references > kMaxInputReferences)
                node.fail("the layers expand to more than the limit of " + std::to_string(kMaxInputReferences) +
                          " input references");
            items.push_back(std::move(item));
        }
        return total;
    }

private:
    int read_layer(const SpecNode& node, std::map<std::string, int>& kind_counts) {
        if (!node.has("kind")) node.fail("missing required field \"kind\" (or \"repeat\" for a block)");
        SpecNode kind_node = node.child("kind");
        SpecLayer layer{node, kind_node.as_string(), LayerKind::input, {}, false, {}};
        auto kind_it = std::find_if(std::begin(kKindNames), std::end(kKindNames),
                                    [&](const KindName& k) { return layer.kind_name == k.name; });
        if (kind_it == std::end(kKindNames))
            kind_node.fail("unknown layer kind \"" + layer.kind_name + "\" (valid kinds: " + join_choices(kind_names()) +
                           ")");
        layer.kind = kind_it->kind;
        int& seen = kind_counts[layer.kind_name];
        if (node.has("name")) {
            layer.local_name = node.get_string("name");
            if (layer.local_name.empty()) node.child("name").fail("layer name must not be empty");
        } else {
            layer.local_name = layer.kind_name + "_" + std::to_string(seen);
        }
        ++seen;
        if (node.has("inputs")) {
            SpecNode refs = node.child("inputs");
            refs.expect_array("an array of layer names");
            if (refs.size() == 0) refs.fail("expected at least one input layer name");
            layer.has_inputs = true;
            for (std::size_t k = 0; k < refs.size(); ++k) layer.inputs.push_back(refs.element(k).as_string());
        }
        layers.push_back(std::move(layer));
        return static_cast<int>(layers.size()) - 1;
    }
};

// A block copy's name prefix ("stage1.0.") and the scope enclosing it (-1 for the global scope).
struct Scope {
    std::string prefix;
    int parent = -1;
};

// A layer after expansion. Indices are in file order with 0 for the input, so raw layer i is i + 1.
struct RawLayer {
    std::string name;     // full name
    int spec = 0;         // its SpecLayer
    int scope = 0;        // innermost enclosing block copy (0: global)
    int block_input = 0;  // what "$in" stands for
    int previous = 0;     // the layer before it in file order
};

class Expander {
public:
    Expander(const std::vector<SpecLayer>& specs, std::vector<RawLayer>& out, std::vector<Scope>& scopes)
        : specs_(specs), out_(out), scopes_(scopes) {}

    void expand(const std::vector<SpecItem>& items, int scope, int block_input, int& previous) {
        for (const auto& item : items) {
            if (item.layer >= 0) {
                const SpecLayer& spec = specs_[item.layer];
                if (scopes_[scope].prefix.size() + spec.local_name.size() > kMaxNameLength)
                    (spec.node.has("name") ? spec.node.child("name") : spec.node)
                        .fail("layer name \"" + scopes_[scope].prefix + spec.local_name + "\" is longer than " +
                              std::to_string(kMaxNameLength) + " characters");
                out_.push_back(RawLayer{scopes_[scope].prefix + spec.local_name, item.layer, scope, block_input,
                                        previous});
                previous = static_cast<int>(out_.size());
                continue;
            }
            for (std::int64_t c = 0; c < item.copies; ++c) {
                scopes_.push_back(Scope{scopes_[scope].prefix + item.block_name + "." + std::to_string(c) + ".", scope});
                int copy_scope = static_cast<int>(scopes_.size()) - 1;
                int copy_input = previous;
                expand(item.body, copy_scope, copy_input, previous);
            }
        }
    }

private:
    const std::vector<SpecLayer>& specs_;
    std::vector<RawLayer>& out_;
    std::vector<Scope>& scopes_;
};

// Reads an integer-or-[h, w] field.
std::pair<std::int64_t, std::int64_t> read_pair(const SpecNode& node, const std::string& key, std::int64_t fallback,
                                                std::int64_t min) {
    if (!node.has(key)) return {fallback, fallback};
    SpecNode field = node.child(key);
    if (field.is_array()) {
        if (field.size() != 2) field.fail("expected an integer or a [height, width] pair");
        return {field.element(0).as_int(min), field.element(1).as_int(min)};
    }
    std::int64_t v = field.as_int(min);
    return {v, v};
}

std::vector<std::string> with_common(std::vector<std::string> keys) {
    keys.insert(keys.end(), {"name", "kind", "inputs"});
    return keys;
}

LayerAttributes parse_attributes(const SpecLayer& spec) {
    const SpecNode& n = spec.node;
    const LayerKind kind = spec.kind;
    LayerAttributes a;
    switch (kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d: {
            bool transposed = kind == LayerKind::conv_transpose2d;
            n.check_keys(with_common(transposed ? std::vector<std::string>{"out_channels", "kernel", "stride", "padding",
                                                                           "output_padding", "dilation", "groups", "bias"}
                                                : std::vector<std::string>{"out_channels", "kernel", "stride", "padding",
                                                                           "dilation", "groups", "bias"}));
            a.out_channels = n.get_int("out_channels", 1);
            if (!n.has("kernel")) n.fail("missing required field \"kernel\"");
            std::tie(a.kernel_h, a.kernel_w) = read_pair(n, "kernel", 1, 1);
            std::tie(a.stride_h, a.stride_w) = read_pair(n, "stride", 1, 1);
            std::tie(a.padding_h, a.padding_w) = read_pair(n, "padding", 0, 0);
            std::tie(a.dilation_h, a.dilation_w) = read_pair(n, "dilation", 1, 1);
            if (transposed) std::tie(a.output_padding_h, a.output_padding_w) = read_pair(n, "output_padding", 0, 0);
            a.groups = n.get_int_or("groups", 1, 1);
            a.bias = n.get_bool_or("bias", true);
            break;
        }
        case LayerKind::linear:
            n.check_keys(with_common({"out_features", "bias", "tied_to"}));
            a.out_features = n.get_int("out_features", 1);
            a.bias = n.get_bool_or("bias", true);
            a.tied_to = n.get_string_or("tied_to", "");
            break;
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d: {
            bool is_max = kind == LayerKind::maxpool2d;
            n.check_keys(with_common(is_max ? std::vector<std::string>{"kernel", "stride", "padding", "dilation", "ceil_mode"}
                                            : std::vector<std::string>{"kernel", "stride", "padding", "ceil_mode"}));
            if (!n.has("kernel")) n.fail("missing required field \"kernel\"");
            std::tie(a.kernel_h, a.kernel_w) = read_pair(n, "kernel", 1, 1);
            // PyTorch: stride defaults to the kernel size.
            if (n.has("stride"))
                std::tie(a.stride_h, a.stride_w) = read_pair(n, "stride", 1, 1);
            else
                std::tie(a.stride_h, a.stride_w) = std::make_pair(a.kernel_h, a.kernel_w);
            std::tie(a.padding_h, a.padding_w) = read_pair(n, "padding", 0, 0);
            if (is_max) std::tie(a.dilation_h, a.dilation_w) = read_pair(n, "dilation", 1, 1);
            a.ceil_mode = n.get_bool_or("ceil_mode", false);
            break;
        }
        case LayerKind::adaptive_avgpool2d:
            if (spec.kind_name == "global_avgpool2d") {
                n.check_keys(with_common({}));
                a.output_h = a.output_w = 1;
            } else {
                n.check_keys(with_common({"output_size"}));
                if (!n.has("output_size")) n.fail("missing required field \"output_size\"");
                std::tie(a.output_h, a.output_w) = read_pair(n, "output_size", 1, 1);
            }
            break;
        case LayerKind::activation:
            n.check_keys(with_common({}));
            a.function = spec.kind_name;
            break;
        case LayerKind::dropout:
            n.check_keys(with_common({"p"}));
            a.probability = n.get_number_or("p", 0.5, 0.0, 1.0);
            break;
        case LayerKind::reshape: {
            n.check_keys(with_common({"shape"}));
            SpecNode shape = n.child("shape");
            shape.expect_array("an array of sizes");
            if (shape.size() == 0) shape.fail("expected at least one size");
            if (shape.size() > kMaxRank)
                shape.fail("expected at most " + std::to_string(kMaxRank) + " sizes, got " + std::to_string(shape.size()));
            for (std::size_t i = 0; i < shape.size(); ++i) {
                std::int64_t v = shape.element(i).as_int(-1);
                if (v == 0) shape.element(i).fail("sizes must be positive (or -1 for one inferred size)");
                a.target_shape.push_back(v);
            }
            break;
        }
        case LayerKind::softmax:
            n.check_keys(with_common({"axis"}));
            a.axis = n.get_int_or("axis", -1, -64, 64);
            break;
        case LayerKind::concat:
            n.check_keys(with_common({"axis"}));
            a.axis = n.get_int_or("axis", 0, -64, 64);
            break;
        case LayerKind::embedding:
            n.check_keys(with_common({"num_embeddings", "dim"}));
            a.num_embeddings = n.get_int("num_embeddings", 1);
            a.embedding_dim = n.get_int("dim", 1);
            break;
        case LayerKind::position_embedding:
            n.check_keys(with_common({"num_positions"}));
            a.num_embeddings = n.get_int("num_positions", 1);
            break;
        case LayerKind::attention:
            n.check_keys(with_common({"heads", "causal", "bias"}));
            a.heads = n.get_int("heads", 1);
            a.causal = n.get_bool_or("causal", false);
            a.bias = n.get_bool_or("bias", true);
            break;
        case LayerKind::upsample:
            n.check_keys(with_common({"scale", "mode"}));
            a.scale = n.get_int_or("scale", 2, 1, 1 << 20);
            a.mode = n.get_choice_or("mode", {"nearest", "bilinear"}, "nearest");
            break;
        case LayerKind::batchnorm2d:
        case LayerKind::layernorm:
        case LayerKind::flatten:
        case LayerKind::add:
        case LayerKind::input:
            n.check_keys(with_common({}));
            break;
    }
    return a;
}

// Shape inference and counting for one layer; every overflow or misfit fails at the layer.
class LayerInference {
public:
    // `kind_name` is the spec's kind ("relu", "global_avgpool2d"), for messages; `tied` is the
    // embedding a linear layer's `tied_to` names (resolved by the caller), or null.
    LayerInference(Layer& layer, const std::vector<const Layer*>& inputs, const SpecNode& node,
                   const std::string& kind_name, bool token_input_feeds, const Layer* tied)
        : layer_(layer),
          inputs_(inputs),
          node_(node),
          kind_name_(kind_name),
          token_input_feeds_(token_input_feeds),
          tied_(tied) {}

    // The part of bwd_input_flops that autograd computes even when no input needs a gradient:
    // attention's internal gradients (dP, dS, dQ, dK, dV, d context) feed its weight gradients.
    std::int64_t internal_backward_flops() const { return internal_backward_flops_; }

    void run() {
        // Only an embedding turns token ids into something differentiable.
        if (token_input_feeds_ && layer_.kind != LayerKind::embedding)
            for (const Layer* in : inputs_)
                if (in->kind == LayerKind::input)
                    fail(kind_name_ + " cannot read integer token ids; add an embedding layer first");
        switch (layer_.kind) {
            case LayerKind::conv2d: conv(false); break;
            case LayerKind::conv_transpose2d: conv(true); break;
            case LayerKind::linear: linear(); break;
            case LayerKind::maxpool2d:
            case LayerKind::avgpool2d: pool(); break;
            case LayerKind::adaptive_avgpool2d: adaptive_pool(); break;
            case LayerKind::batchnorm2d: norm(true); break;
            case LayerKind::layernorm: norm(false); break;
            case LayerKind::activation: elementwise_activation(); break;
            case LayerKind::dropout: same_shape(kDropoutForward, kDropoutBackward); break;
            case LayerKind::flatten: flatten(); break;
            case LayerKind::reshape: reshape(); break;
            case LayerKind::softmax: softmax(); break;
            case LayerKind::add: add(); break;
            case LayerKind::concat: concat(); break;
            case LayerKind::embedding: embedding(); break;
            case LayerKind::position_embedding: position_embedding(); break;
            case LayerKind::attention: attention(); break;
            case LayerKind::upsample: upsample(); break;
            case LayerKind::input: break;
        }
        layer_.output_elements = product(layer_.output_shape);
    }

private:
    [[noreturn]] void fail(const std::string& message) const { node_.fail(message); }

    std::int64_t mul(std::int64_t a, std::int64_t b) const { return or_fail(checked_mul(a, b)); }
    std::int64_t add(std::int64_t a, std::int64_t b) const { return or_fail(checked_add(a, b)); }
    std::int64_t or_fail(std::optional<std::int64_t> r) const {
        if (!r) fail(kCountOverflow);
        return *r;
    }
    std::int64_t product(const Shape& shape) const {
        std::int64_t p = 1;
        for (auto d : shape) p = mul(p, d);
        return p;
    }

    const Layer& single_input() const {
        if (inputs_.size() != 1)
            fail(kind_name_ + " takes exactly one input, got " + std::to_string(inputs_.size()));
        return *inputs_.front();
    }
    std::string from(const Layer& in) const { return shape_string(in.output_shape) + " from layer \"" + in.name + "\""; }

    const Shape& image_input(const char* what) const {
        const Layer& in = single_input();
        if (in.output_shape.size() != 3)
            fail(std::string(what) + " needs a [C, H, W] input, got " + from(in));
        return in.output_shape;
    }

    // PyTorch's output size of a convolution or pooling window along one axis.
    std::int64_t window_output(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                               std::int64_t dilation, bool ceil_mode, const char* axis) const {
        std::int64_t effective = add(mul(dilation, kernel - 1), 1);
        std::int64_t padded = add(in, mul(2, pad));
        if (effective > padded)
            fail(std::string("kernel ") + std::to_string(kernel) +
                 (dilation > 1 ? " (dilated to " + std::to_string(effective) + ")" : std::string()) +
                 " is larger than the padded input " + axis + " " + std::to_string(padded) + " (" +
                 std::to_string(in) + " + 2x" + std::to_string(pad) + " padding)");
        std::int64_t span = padded - effective;
        std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
        // ceil_mode: the last window must start inside the input or the left padding.
        if (ceil_mode && (out - 1) * stride >= in + pad) --out;
        return out;
    }

    void conv(bool transposed) {
        const Shape& x = image_input(kind_name_.c_str());
        const auto& a = layer_.attrs;
        std::int64_t cin = x[0];
        if (cin % a.groups != 0)
            fail("input channels " + std::to_string(cin) + " are not divisible by groups " + std::to_string(a.groups));
        if (a.out_channels % a.groups != 0)
            fail("out_channels " + std::to_string(a.out_channels) + " is not divisible by groups " +
                 std::to_string(a.groups));
        std::int64_t oh, ow;
        if (!transposed) {
            oh = window_output(x[1], a.kernel_h, a.stride_h, a.padding_h, a.dilation_h, false, "height");
            ow = window_output(x[2], a.kernel_w, a.stride_w, a.padding_w, a.dilation_w, false, "width");
        } else {
            if (a.output_padding_h >= std::max(a.stride_h, a.dilation_h) ||
                a.output_padding_w >= std::max(a.stride_w, a.dilation_w))
                fail("output_padding must be smaller than the stride or the dilation");
            // PyTorch: (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1.
            // (The subtraction of two non-negative values cannot overflow; everything else is checked.)
            oh = add(add(mul(x[1] - 1, a.stride_h) - mul(2, a.padding_h), mul(a.dilation_h, a.kernel_h - 1)),
                     add(a.output_padding_h, 1));
            ow = add(add(mul(x[2] - 1, a.stride_w) - mul(2, a.padding_w), mul(a.dilation_w, a.kernel_w - 1)),
                     add(a.output_padding_w, 1));
            if (oh < 1 || ow < 1) fail("padding leaves no output (" + std::to_string(oh) + "x" + std::to_string(ow) + ")");
        }
        layer_.output_shape = {a.out_channels, oh, ow};
        std::int64_t kernel_area = mul(a.kernel_h, a.kernel_w);
        std::int64_t weights = transposed ? mul(mul(cin, a.out_channels / a.groups), kernel_area)
                                          : mul(mul(a.out_channels, cin / a.groups), kernel_area);
        layer_.params = add(weights, a.bias ? a.out_channels : 0);
        std::int64_t outputs = mul(mul(a.out_channels, oh), ow);
        // Multiply-adds: every output (conv) or every input (transposed conv) meets Cin/g x kh x kw weights.
        std::int64_t macs = transposed ? mul(mul(mul(x[0], x[1]), x[2]), mul(a.out_channels / a.groups, kernel_area))
                                       : mul(outputs, mul(cin / a.groups, kernel_area));
        std::int64_t bias_flops = a.bias ? outputs : 0;
        layer_.fwd_flops = add(mul(2, macs), bias_flops);
        layer_.bwd_input_flops = mul(2, macs);
        layer_.bwd_weight_flops = add(mul(2, macs), bias_flops);
    }

    void linear() {
        const Layer& in = single_input();
        if (in.output_shape.empty()) fail("linear needs an input with at least one dimension");
        std::int64_t features = in.output_shape.back();
        const auto& a = layer_.attrs;
        Shape out = in.output_shape;
        out.back() = a.out_features;
        std::int64_t rows = product(in.output_shape) / features;
        if (in.output_shape.size() > 2)
            fail("linear acts on [F] or [S, F]; got " + from(in) + " (add a flatten layer first)");
        layer_.output_shape = out;
        std::int64_t weights = mul(features, a.out_features);
        if (tied_) {
            const Layer& t = *tied_;
            if (t.kind != LayerKind::embedding || t.attrs.num_embeddings != a.out_features ||
                t.attrs.embedding_dim != features)
                node_.child("tied_to").fail("layer \"" + a.tied_to + "\" is not an embedding of " +
                                            std::to_string(a.out_features) + " x " + std::to_string(features));
            weights = 0;  // the shared weight is counted once, by the embedding
        }
        layer_.params = add(weights, a.bias ? a.out_features : 0);
        std::int64_t macs = mul(rows, mul(features, a.out_features));
        std::int64_t bias_flops = a.bias ? mul(rows, a.out_features) : 0;
        layer_.fwd_flops = add(mul(2, macs), bias_flops);
        layer_.bwd_input_flops = mul(2, macs);
        layer_.bwd_weight_flops = add(mul(2, macs), bias_flops);
    }

    void pool() {
        bool is_max = layer_.kind == LayerKind::maxpool2d;
        const Shape& x = image_input(kind_name_.c_str());
        const auto& a = layer_.attrs;
        // PyTorch: "pad should be at most half of effective kernel size" (kernel / 2, rounded down).
        if (a.padding_h > a.kernel_h / 2 || a.padding_w > a.kernel_w / 2)
            fail("padding " + std::to_string(a.padding_h > a.kernel_h / 2 ? a.padding_h : a.padding_w) +
                 " is more than half the kernel size " +
                 std::to_string(a.padding_h > a.kernel_h / 2 ? a.kernel_h : a.kernel_w));
        std::int64_t oh = window_output(x[1], a.kernel_h, a.stride_h, a.padding_h, a.dilation_h, a.ceil_mode, "height");
        std::int64_t ow = window_output(x[2], a.kernel_w, a.stride_w, a.padding_w, a.dilation_w, a.ceil_mode, "width");
        layer_.output_shape = {x[0], oh, ow};
        std::int64_t outputs = mul(mul(x[0], oh), ow);
        std::int64_t window = mul(a.kernel_h, a.kernel_w);
        layer_.fwd_flops = mul(outputs, window);
        layer_.bwd_input_flops = is_max ? outputs : mul(outputs, window);
    }

    void adaptive_pool() {
        const Shape& x = image_input(kind_name_.c_str());
        const auto& a = layer_.attrs;
        layer_.output_shape = {x[0], a.output_h, a.output_w};
        // PyTorch's adaptive windows are [floor(i*in/out), ceil((i+1)*in/out)) for i < out. Writing
        // ceil(y) = floor(y) + [y not an integer], the floors telescope to floor(out*in/out) = in, and
        // j*in/out (j = 1..out) is an integer for gcd(in, out) values of j: the window lengths sum to
        // in + out - gcd(in, out). O(1), so a huge output_size costs nothing.
        auto window_sum = [&](std::int64_t in, std::int64_t out) { return add(in, out) - std::gcd(in, out); };
        std::int64_t per_channel = mul(window_sum(x[1], a.output_h), window_sum(x[2], a.output_w));
        layer_.fwd_flops = mul(x[0], per_channel);
        layer_.bwd_input_flops = layer_.fwd_flops;
    }

    void norm(bool batch_norm) {
        const Layer& in = single_input();
        if (batch_norm && in.output_shape.size() != 3) fail("batchnorm2d needs a [C, H, W] input, got " + from(in));
        if (in.output_shape.empty()) fail("layernorm needs an input with at least one dimension");
        layer_.output_shape = in.output_shape;
        std::int64_t elements = product(in.output_shape);
        std::int64_t channels = batch_norm ? in.output_shape[0] : in.output_shape.back();
        layer_.params = mul(2, channels);
        layer_.fwd_flops = mul(kNormForward, elements);
        layer_.bwd_input_flops = mul(kNormInputGrad, elements);
        layer_.bwd_weight_flops = mul(kNormWeightGrad, elements);
    }

    void same_shape(int forward_per_element, int backward_per_element) {
        const Layer& in = single_input();
        layer_.output_shape = in.output_shape;
        std::int64_t elements = product(in.output_shape);
        layer_.fwd_flops = mul(forward_per_element, elements);
        layer_.bwd_input_flops = mul(backward_per_element, elements);
    }

    void elementwise_activation() {
        for (const auto& c : kActivationCosts)
            if (layer_.attrs.function == c.function) return same_shape(c.forward, c.backward);
        fail("unknown activation " + layer_.attrs.function);
    }

    void flatten() {
        const Layer& in = single_input();
        layer_.output_shape = {product(in.output_shape)};
    }

    void reshape() {
        const Layer& in = single_input();
        Shape target = layer_.attrs.target_shape;
        std::int64_t known = 1;
        int inferred = -1;
        for (std::size_t i = 0; i < target.size(); ++i) {
            if (target[i] == -1) {
                if (inferred >= 0) node_.child("shape").fail("at most one size may be -1");
                inferred = static_cast<int>(i);
            } else {
                known = mul(known, target[i]);
            }
        }
        std::int64_t elements = product(in.output_shape);
        if (inferred >= 0) {
            if (elements % known != 0)
                node_.child("shape").fail("cannot reshape " + from(in) + " to " + shape_string(target));
            target[inferred] = elements / known;
        } else if (known != elements) {
            node_.child("shape").fail("cannot reshape " + from(in) + " (" + std::to_string(elements) +
                                      " elements) to " + shape_string(target));
        }
        layer_.output_shape = target;
    }

    std::int64_t resolve_axis(std::int64_t axis, std::size_t rank, const char* field) const {
        std::int64_t r = static_cast<std::int64_t>(rank);
        std::int64_t resolved = axis < 0 ? axis + r : axis;
        if (resolved < 0 || resolved >= r)
            node_.child(field).fail("axis " + std::to_string(axis) + " is out of range for a per-sample shape of rank " +
                                    std::to_string(rank));
        return resolved;
    }

    void softmax() {
        same_shape(kSoftmaxForward, kSoftmaxBackward);
        if (layer_.output_shape.empty()) fail("softmax needs an input with at least one dimension");
        if (node_.has("axis")) resolve_axis(layer_.attrs.axis, layer_.output_shape.size(), "axis");
    }

    void add() {
        if (inputs_.size() < 2) fail("add needs at least two inputs, got " + std::to_string(inputs_.size()));
        for (const Layer* in : inputs_)
            if (in->output_shape != inputs_[0]->output_shape)
                fail("add inputs have different shapes: " + from(*inputs_[0]) + " and " + from(*in));
        layer_.output_shape = inputs_[0]->output_shape;
        layer_.fwd_flops = mul(static_cast<std::int64_t>(inputs_.size()) - 1, product(layer_.output_shape));
    }

    void concat() {
        if (inputs_.size() < 2) fail("concat needs at least two inputs, got " + std::to_string(inputs_.size()));
        const Shape& first = inputs_[0]->output_shape;
        if (first.empty()) fail("concat needs inputs with at least one dimension");
        std::int64_t axis = node_.has("axis") ? resolve_axis(layer_.attrs.axis, first.size(), "axis")
                                              : resolve_axis(layer_.attrs.axis, first.size(), "kind");
        Shape out = first;
        out[axis] = 0;
        for (const Layer* in : inputs_) {
            const Shape& s = in->output_shape;
            bool fits = s.size() == first.size();
            for (std::size_t d = 0; fits && d < s.size(); ++d)
                if (static_cast<std::int64_t>(d) != axis && s[d] != first[d]) fits = false;
            if (!fits)
                fail("concat inputs differ outside axis " + std::to_string(axis) + ": " + from(*inputs_[0]) +
                     " and " + from(*in));
            out[axis] = add(out[axis], s[axis]);
        }
        layer_.output_shape = out;
    }

    void embedding() {
        const Layer& in = single_input();
        if (!(token_input_feeds_ && in.kind == LayerKind::input))
            fail("embedding reads the token input ({\"tokens\": S}), got " + from(in));
        const auto& a = layer_.attrs;
        layer_.output_shape = {in.output_shape[0], a.embedding_dim};
        layer_.params = mul(a.num_embeddings, a.embedding_dim);
        layer_.bwd_weight_flops = product(layer_.output_shape);  // scatter-add of the output gradient
    }

    void position_embedding() {
        const Layer& in = single_input();
        if (in.output_shape.size() != 2) fail("position_embedding needs an [S, H] input, got " + from(in));
        if (in.output_shape[0] > layer_.attrs.num_embeddings)
            fail("sequence length " + std::to_string(in.output_shape[0]) + " exceeds num_positions " +
                 std::to_string(layer_.attrs.num_embeddings));
        layer_.output_shape = in.output_shape;
        layer_.params = mul(layer_.attrs.num_embeddings, in.output_shape[1]);
        layer_.fwd_flops = product(in.output_shape);
        layer_.bwd_weight_flops = product(in.output_shape);
    }

    void attention() {
        const Layer& in = single_input();
        if (in.output_shape.size() != 2) fail("attention needs an [S, H] input, got " + from(in));
        const auto& a = layer_.attrs;
        std::int64_t s = in.output_shape[0], h = in.output_shape[1];
        if (h % a.heads != 0)
            fail("hidden size " + std::to_string(h) + " is not divisible by heads " + std::to_string(a.heads));
        layer_.output_shape = in.output_shape;
        std::int64_t hh = mul(h, h);
        layer_.params = add(mul(4, hh), a.bias ? mul(4, h) : 0);
        std::int64_t projections = mul(2, mul(s, mul(4, hh)));  // QKV (3 H^2) and output (H^2) per token
        std::int64_t scores = mul(2, mul(mul(s, s), h));         // Q K^T, and separately P V
        std::int64_t score_elements = mul(a.heads, mul(s, s));
        std::int64_t bias_flops = a.bias ? mul(4, mul(s, h)) : 0;
        int per_score = 1 + kSoftmaxForward + (a.causal ? 1 : 0);  // scale, softmax, mask
        layer_.fwd_flops = add(add(add(projections, mul(2, scores)), bias_flops), mul(per_score, score_elements));
        // Backward: dX through both projections; dQ, dK, dV and dP are four S x S x H products.
        layer_.bwd_input_flops = add(add(projections, mul(4, scores)), mul(kSoftmaxBackward + 1, score_elements));
        // Without an input gradient autograd still needs everything but dX = dQKV x W_qkv^T (6 S H^2).
        internal_backward_flops_ = layer_.bwd_input_flops - mul(2, mul(s, mul(3, hh)));
        layer_.bwd_weight_flops = add(projections, bias_flops);
        // Kept for backward: Q, K, V, the probabilities and the context (input to the output projection).
        layer_.saved_elements = add(mul(4, mul(s, h)), score_elements);
    }

    void upsample() {
        const Shape& x = image_input("upsample");
        const auto& a = layer_.attrs;
        layer_.output_shape = {x[0], mul(x[1], a.scale), mul(x[2], a.scale)};
        std::int64_t outputs = product(layer_.output_shape);
        bool bilinear = a.mode == "bilinear";
        layer_.fwd_flops = bilinear ? mul(kBilinearPerOutput, outputs) : 0;
        layer_.bwd_input_flops = bilinear ? mul(kBilinearPerOutput, outputs) : outputs;
    }

    Layer& layer_;
    const std::vector<const Layer*>& inputs_;
    const SpecNode& node_;
    const std::string& kind_name_;
    bool token_input_feeds_;
    const Layer* tied_;
    std::int64_t internal_backward_flops_ = 0;
};

// Resolves an `inputs` or `tied_to` reference to a file-order index (-1 when absent): "$in", then
// the copy's own layers, then each enclosing block's, then global names.
int resolve_reference(const std::string& ref, const RawLayer& raw, const std::vector<Scope>& scopes,
                      const std::unordered_map<std::string, int>& index) {
    if (ref == "$in") return raw.block_input;
    std::string key;
    for (int s = raw.scope; s >= 0; s = scopes[s].parent) {
        key = scopes[s].prefix;
        key += ref;
        auto it = index.find(key);
        if (it != index.end()) return it->second;
    }
    return -1;
}

// Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`.
std::size_t edit_distance(const std::string& a, const std::string& b, std::size_t limit) {
    if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0], best = row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
            best = std::min(best, row[j]);
        }
        if (best > limit) return limit + 1;
    }
    return row[b.size()];
}

// "no layer named X" with the valid names: all of them for a small network, else the closest name
// visible from the referring layer (a whole ResNet's names would not help).
std::string unknown_reference(const std::string& ref, const RawLayer& raw, const std::vector<Scope>& scopes,
                              const std::vector<RawLayer>& layers) {
    std::string message = "no layer named \"" + ref + "\"";
    constexpr std::size_t kListAll = 12;
    if (layers.size() + 1 <= kListAll) {
        std::vector<std::string> names{"input"};
        for (const auto& l : layers) names.push_back(l.name);
        return message + " (layers: " + join_choices(names) + ")";
    }
    // Long references are not typos of a name, and would make the search quadratic in their length.
    if (ref.size() > 64) return message;
    const std::size_t limit = std::max<std::size_t>(1, ref.size() / 3);
    std::string best;
    std::size_t best_distance = limit + 1;
    auto consider = [&](const std::string& candidate) {
        std::size_t d = edit_distance(ref, candidate, std::min(limit, best_distance));
        if (d < best_distance) best_distance = d, best = candidate;
    };
    consider("input");
    for (int s = raw.scope; s >= 0; s = scopes[s].parent) {
        const std::string& prefix = scopes[s].prefix;
        for (const auto& l : layers)
            if (l.name.size() > prefix.size() && l.name.compare(0, prefix.size(), prefix) == 0)
                consider(l.name.substr(prefix.size()));
    }
    if (best_distance <= limit) message += " (did you mean \"" + best + "\"?)";
    return message;
}

// "a -> b -> c -> a", shortened in the middle for long cycles.
std::string cycle_path(const std::vector<std::string>& names) {
    constexpr std::size_t kHead = 5, kTail = 4;
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names.size() > kHead + kTail + 1 && i == kHead) {
            out += "... (" + std::to_string(names.size() - kHead - kTail) + " more) -> ";
            i = names.size() - kTail;
        }
        out += names[i] + " -> ";
    }
    return out + names.front();
}

}  // namespace

std::string to_string(LayerKind kind) {
    switch (kind) {
        case LayerKind::input: return "input";
        case LayerKind::adaptive_avgpool2d: return "adaptive_avgpool2d";
        case LayerKind::activation: return "activation";
        default:
            for (const auto& k : kKindNames)
                if (k.kind == kind) return k.name;
    }
    return "unknown";
}

int Network::find(const std::string& layer_name) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
        if (layers[i].name == layer_name) return static_cast<int>(i);
    return -1;
}

Network parse_network(const Json& spec_json, const std::string& file) {
    SpecNode spec(spec_json, file);
    spec.expect_object("a network object");
    spec.check_keys({"name", "description", "dtype", "batch", "input", "layers"});
    Network network;
    network.name = spec.get_string("name");
    if (network.name.empty()) spec.child("name").fail("network name must not be empty");
    network.description = spec.get_string_or("description", "");
    network.dtype = *parse_dtype(spec.get_choice_or("dtype", dtype_names(), "fp32"));
    network.default_batch = spec.get_int_or("batch", 1, 1);

    // The input layer.
    SpecNode input = spec.child("input");
    input.expect_object("an input object");
    input.check_keys({"shape", "tokens"});
    Layer input_layer;
    input_layer.name = "input";
    input_layer.kind = LayerKind::input;
    input_layer.spec_pointer = input.pointer();
    if (input.has("tokens") == input.has("shape")) input.fail("give exactly one of \"shape\" or \"tokens\"");
    if (input.has("tokens")) {
        network.token_input = true;
        input_layer.output_shape = {input.get_int("tokens", 1)};
    } else {
        SpecNode shape = input.child("shape");
        shape.expect_array("an array of sizes");
        if (shape.size() == 0) shape.fail("expected at least one size");
        if (shape.size() > kMaxRank)
            shape.fail("expected at most " + std::to_string(kMaxRank) + " sizes, got " + std::to_string(shape.size()));
        for (std::size_t i = 0; i < shape.size(); ++i) input_layer.output_shape.push_back(shape.element(i).as_int(1));
    }
    {
        std::int64_t elements = 1;
        for (auto d : input_layer.output_shape) {
            auto r = checked_mul(elements, d);
            if (!r)
                (input.has("shape") ? input.child("shape") : input)
                    .fail("input shape " + shape_string(input_layer.output_shape) +
                          " has too many elements for 64-bit counts");
            elements = *r;
        }
        input_layer.output_elements = elements;
    }

    // Read and check the layer tree, then expand repeat blocks into a flat list.
    SpecReader reader;
    std::vector<SpecItem> items;
    Expansion expanded = reader.read(spec.child("layers"), 0, items);
    std::vector<Scope> scopes{Scope{"", -1}};
    std::vector<RawLayer> raw;
    raw.reserve(static_cast<std::size_t>(expanded.layers));
    int previous = 0;
    Expander(reader.layers, raw, scopes).expand(items, 0, 0, previous);
    auto spec_of = [&](const RawLayer& r) -> const SpecLayer& { return reader.layers[r.spec]; };

    // Index names; duplicates are an error at the second definition.
    const std::size_t count = raw.size() + 1;
    std::unordered_map<std::string, int> index;
    index.reserve(count);
    index.emplace("input", 0);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        auto [it, inserted] = index.emplace(raw[i].name, static_cast<int>(i) + 1);
        if (!inserted) {
            const SpecNode& node = spec_of(raw[i]).node;
            SpecNode where = node.has("name") ? node.child("name") : node;
            if (it->second == 0) where.fail("the name \"input\" is reserved for the network's input");
            where.fail("duplicate layer name \"" + raw[i].name + "\" (first defined at " +
                       spec_of(raw[it->second - 1]).node.pointer() + ")");
        }
    }

    // Resolve inputs (file order indices, 0 = input).
    std::vector<std::vector<int>> inputs_of(count);
    bool file_order_is_topological = true;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const RawLayer& r = raw[i];
        const SpecLayer& s = spec_of(r);
        const int self = static_cast<int>(i) + 1;
        if (!s.has_inputs) {
            inputs_of[self].push_back(r.previous);
            continue;
        }
        for (std::size_t k = 0; k < s.inputs.size(); ++k) {
            int target = resolve_reference(s.inputs[k], r, scopes, index);
            if (target < 0) s.node.child("inputs").element(k).fail(unknown_reference(s.inputs[k], r, scopes, raw));
            if (target == self) s.node.child("inputs").element(k).fail("layer \"" + r.name + "\" reads itself");
            file_order_is_topological = file_order_is_topological && target < self;
            inputs_of[self].push_back(target);
        }
    }

    // With only backward references the file order is already topological (and acyclic); otherwise
    // the Boost.Graph view finds a cycle or a topological order that keeps file order where it can.
    std::vector<int> order(count);
    for (std::size_t v = 0; v < count; ++v) order[v] = static_cast<int>(v);
    if (!file_order_is_topological) {
        LayerGraph graph = make_graph(static_cast<int>(count), inputs_of);
        if (auto cycle = find_cycle(graph)) {
            // The cycle closes through a reference to a later layer (implicit inputs only look back):
            // report it at the `inputs` entry that makes it, with the cycle starting at its reader.
            const std::vector<int>& c = *cycle;
            std::size_t start = 0;
            while (start < c.size() && c[(start + c.size() - 1) % c.size()] < c[start]) ++start;
            start %= c.size();
            int reader_index = c[start], producer = c[(start + c.size() - 1) % c.size()];
            std::vector<std::string> names;
            for (std::size_t k = 0; k < c.size(); ++k) names.push_back(raw[c[(start + k) % c.size()] - 1].name);
            const RawLayer& r = raw[reader_index - 1];
            const SpecLayer& s = spec_of(r);
            std::size_t entry = 0;
            while (entry + 1 < inputs_of[reader_index].size() && inputs_of[reader_index][entry] != producer) ++entry;
            SpecNode where = s.has_inputs ? s.node.child("inputs").element(entry) : s.node;
            where.fail("reading \"" + (s.has_inputs ? s.inputs[entry] : raw[producer - 1].name) +
                       "\" makes a cycle: " + cycle_path(names));
        }
        order = topological_order(graph);
    }
    std::vector<int> position(count);
    for (std::size_t p = 0; p < order.size(); ++p) position[order[p]] = static_cast<int>(p);

    // Build layers in topological order and infer them. Attributes are read once per spec layer
    // and shared by the copies of its block.
    network.layers.reserve(count);
    network.layers.push_back(std::move(input_layer));
    std::vector<bool> requires_grad(count, false);
    std::vector<std::optional<LayerAttributes>> attributes(reader.layers.size());
    std::vector<const Layer*> inputs;
    for (std::size_t p = 1; p < order.size(); ++p) {
        int v = order[p];
        const RawLayer& r = raw[v - 1];
        const SpecLayer& s = spec_of(r);
        if (!attributes[r.spec]) attributes[r.spec] = parse_attributes(s);
        Layer layer;
        layer.name = r.name;
        layer.kind = s.kind;
        layer.spec_pointer = s.node.pointer();
        layer.attrs = *attributes[r.spec];
        inputs.clear();
        bool any_input_requires_grad = false;
        for (int u : inputs_of[v]) {
            layer.inputs.push_back(position[u]);
            inputs.push_back(&network.layers[position[u]]);
            any_input_requires_grad = any_input_requires_grad || requires_grad[position[u]];
        }
        try {
            const Layer* tied = nullptr;
            if (!layer.attrs.tied_to.empty()) {
                // Resolve the tie by scope so blocks can refer to short names.
                const std::string& ref = layer.attrs.tied_to;
                SpecNode field = s.node.child("tied_to");
                int target = resolve_reference(ref, r, scopes, index);
                if (target < 0) field.fail(unknown_reference(ref, r, scopes, raw));
                if (target == v) field.fail("a layer cannot be tied to itself");
                if (position[target] > static_cast<int>(p))
                    field.fail("tied layer \"" + ref + "\" must come before this layer");
                tied = &network.layers[position[target]];
                layer.attrs.tied_to = tied->name;
            }
            LayerInference inference(layer, inputs, s.node, s.kind_name, network.token_input, tied);
            inference.run();
            // Autograd computes an input gradient only for inputs that depend on parameters.
            if (!any_input_requires_grad) layer.bwd_input_flops = inference.internal_backward_flops();
        } catch (const InputError& e) {
            // Copies of a block share their spec's pointer; say which copy went wrong.
            if (r.scope == 0) throw;
            throw InputError(e.file(), e.location(), e.message() + " (in layer \"" + r.name + "\")");
        }
        requires_grad[p] = any_input_requires_grad || layer.params > 0 || !layer.attrs.tied_to.empty();
        network.layers.push_back(std::move(layer));
    }
    // Totals must be representable for the default batch.
    totals(network, network.default_batch, file);
    return network;
}

Network load_network_file(const std::string& path, const LoadOptions& options) {
    if (std::filesystem::path(path).extension() == ".onnx") {
        check_input_file(path);  // the common checks (a FIFO, device or directory) before the importer opens it
        return load_onnx_file(path, options);
    }
    Json spec = load_json_file(path);
    return parse_network(spec, path);
}

NetworkTotals totals(const Network& network, std::int64_t batch, const std::string& file) {
    NetworkTotals t;
    auto fail = [&](const Layer& layer) -> std::int64_t {
        throw InputError(file, layer.spec_pointer.empty() ? "/" : layer.spec_pointer,
                         "counts for batch " + std::to_string(batch) + " overflow 64-bit integers");
    };
    auto acc = [&](std::int64_t& total, std::int64_t per_sample, std::int64_t factor, const Layer& layer) {
        auto scaled = checked_mul(per_sample, factor);
        if (!scaled) fail(layer);
        auto sum = checked_add(total, *scaled);
        if (!sum) fail(layer);
        total = *sum;
    };
    std::int64_t element_bytes = dtype_bytes(network.dtype);
    for (const auto& layer : network.layers) {
        acc(t.params, layer.params, 1, layer);
        acc(t.fwd_flops, layer.fwd_flops, batch, layer);
        acc(t.bwd_input_flops, layer.bwd_input_flops, batch, layer);
        acc(t.bwd_weight_flops, layer.bwd_weight_flops, batch, layer);
        std::int64_t bytes_per_element = (layer.kind == LayerKind::input && network.token_input) ? 8 : element_bytes;
        auto per_sample = checked_add(layer.output_elements, layer.saved_elements);
        if (!per_sample) fail(layer);
        auto bytes = checked_mul(*per_sample, bytes_per_element);
        if (!bytes) fail(layer);
        acc(t.activation_bytes, *bytes, batch, layer);
    }
    auto weight_bytes = checked_mul(t.params, element_bytes);
    if (!weight_bytes) fail(network.layers.front());
    t.weight_bytes = *weight_bytes;
    return t;
}

std::vector<std::string> builtin_network_names(const std::string& networks_dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(networks_dir, ec))
        if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

std::string resolve_network_path(const std::string& name_or_path, const std::string& networks_dir) {
    namespace fs = std::filesystem;
    fs::path p(name_or_path);
    std::error_code ec;  // an unusable path (too long, no permission) is reported when it is read
    if (fs::exists(p, ec) || p.extension() == ".json" || p.extension() == ".onnx" ||
        name_or_path.find('/') != std::string::npos)
        return name_or_path;
    fs::path builtin = fs::path(networks_dir) / (name_or_path + ".json");
    if (fs::exists(builtin, ec)) return builtin.string();
    throw InputError(name_or_path, "", "no such file or built-in network (built-ins: " +
                                           join_choices(builtin_network_names(networks_dir)) + ")");
}

Json to_json(const Network& network, std::int64_t batch) {
    NetworkTotals t = totals(network, batch);
    Json layers = Json::array();
    std::int64_t element_bytes = dtype_bytes(network.dtype);
    for (const auto& layer : network.layers) {
        Json inputs = Json::array();
        for (int i : layer.inputs) inputs.push_back(network.layers[i].name);
        std::int64_t bytes_per_element = (layer.kind == LayerKind::input && network.token_input) ? 8 : element_bytes;
        Json entry{{"name", layer.name},
                   {"kind", layer.kind == LayerKind::activation ? layer.attrs.function : to_string(layer.kind)},
                   {"inputs", inputs},
                   {"output_shape", layer.output_shape},
                   {"params", layer.params},
                   {"fwd_flops", layer.fwd_flops * batch},
                   {"bwd_input_flops", layer.bwd_input_flops * batch},
                   {"bwd_weight_flops", layer.bwd_weight_flops * batch},
                   {"activation_bytes", (layer.output_elements + layer.saved_elements) * bytes_per_element * batch}};
        layers.push_back(std::move(entry));
    }
    return Json{{"name", network.name},
                {"description", network.description},
                {"dtype", to_string(network.dtype)},
                {"batch", batch},
                {"layers", layers},
                {"totals",
                 {{"params", t.params},
                  {"weight_bytes", t.weight_bytes},
                  {"fwd_flops", t.fwd_flops},
                  {"bwd_input_flops", t.bwd_input_flops},
                  {"bwd_weight_flops", t.bwd_weight_flops},
                  {"activation_bytes", t.activation_bytes}}}};
}

}  // namespace dnnplan::networks
