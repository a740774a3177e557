// Reading the spec's `layers` tree: layer objects and their attributes, checked with exact
// JSON-pointer diagnostics, and repeat blocks counted, then expanded into a flat list.
#include <algorithm>
#include <map>

#include "networks/infer.hpp"
#include "networks/spec.hpp"

namespace dnnplan::networks {

namespace spec {

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

// Limits that keep the cost of any input bounded: time and memory grow with the expanded layer
// count (about 0.8 KB and 1.3 us a layer), and scope names with the nesting depth. Real networks
// are far below both: ResNet-1001 is 3,341 layers and nests blocks 1 deep. At the cap a load
// takes about 0.17 s and 86 MB; a million layers took 1.3 s and 840 MB.
constexpr std::int64_t kMaxLayers = 100'000;
constexpr int kMaxBlockDepth = 16;
// Input references cost like layers (one edge, one lookup each) and a long `inputs` list in a block
// multiplies without adding layers. Real layers read 1 or 2 (a DenseNet concat a few dozen).
constexpr std::int64_t kMaxInputReferences = 1'000'000;
// Every layer stores its full name, so it must be short for the layer cap to bound memory (shapes
// likewise, kMaxRank); names are a few dozen characters in practice.
constexpr std::size_t kMaxNameLength = 256;

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
            kind_node.fail("unknown layer kind \"" + layer.kind_name +
                           "\" (valid kinds: " + join_choices(kind_names()) + ")");
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
                scopes_.push_back(
                    Scope{scopes_[scope].prefix + item.block_name + "." + std::to_string(c) + ".", scope});
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

LayerAttributes conv_attributes(const SpecNode& n, bool transposed) {
    LayerAttributes a;
    n.check_keys(with_common(transposed
                                 ? std::vector<std::string>{"out_channels", "kernel", "stride", "padding",
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
    return a;
}

LayerAttributes pool_attributes(const SpecNode& n, bool is_max) {
    LayerAttributes a;
    n.check_keys(
        with_common(is_max ? std::vector<std::string>{"kernel", "stride", "padding", "dilation", "ceil_mode"}
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
    return a;
}

Shape reshape_target(const SpecNode& shape) {
    expect_sizes(shape);
    Shape target;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        std::int64_t v = shape.element(i).as_int(-1);
        if (v == 0) shape.element(i).fail("sizes must be positive (or -1 for one inferred size)");
        target.push_back(v);
    }
    return target;
}

}  // namespace

ExpandedLayers read_layers(const SpecNode& layers) {
    ExpandedLayers out;
    SpecReader reader;
    std::vector<SpecItem> items;
    Expansion expanded = reader.read(layers, 0, items);
    out.raw.reserve(static_cast<std::size_t>(expanded.layers));
    int previous = 0;
    Expander(reader.layers, out.raw, out.scopes).expand(items, 0, 0, previous);
    out.specs = std::move(reader.layers);
    return out;
}

void expect_sizes(const SpecNode& shape) {
    shape.expect_array("an array of sizes");
    if (shape.size() == 0) shape.fail("expected at least one size");
    if (shape.size() > kMaxRank)
        shape.fail("expected at most " + std::to_string(kMaxRank) + " sizes, got " + std::to_string(shape.size()));
}

LayerAttributes parse_attributes(const SpecLayer& spec) {
    const SpecNode& n = spec.node;
    const LayerKind kind = spec.kind;
    LayerAttributes a;
    switch (kind) {
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            return conv_attributes(n, kind == LayerKind::conv_transpose2d);
        case LayerKind::linear:
            n.check_keys(with_common({"out_features", "bias", "tied_to"}));
            a.out_features = n.get_int("out_features", 1);
            a.bias = n.get_bool_or("bias", true);
            a.tied_to = n.get_string_or("tied_to", "");
            break;
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d:
            return pool_attributes(n, kind == LayerKind::maxpool2d);
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
        case LayerKind::reshape:
            n.check_keys(with_common({"shape"}));
            a.target_shape = reshape_target(n.child("shape"));
            break;
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
            n.check_keys(with_common({"heads", "causal", "bias", "dropout"}));
            a.heads = n.get_int("heads", 1);
            a.causal = n.get_bool_or("causal", false);
            a.probability = n.get_number_or("dropout", 0.0, 0.0, 1.0);  // on the attention probabilities
            a.bias = n.get_bool_or("bias", true);
            break;
        case LayerKind::upsample:
            n.check_keys(with_common({"scale", "mode"}));
            a.scale = n.get_int_or("scale", 2, 1, kMaxUpsampleScale);
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

}  // namespace spec

std::string to_string(LayerKind kind) {
    switch (kind) {
        case LayerKind::input: return "input";
        case LayerKind::adaptive_avgpool2d: return "adaptive_avgpool2d";
        case LayerKind::activation: return "activation";
        default:
            for (const auto& k : spec::kKindNames)
                if (k.kind == kind) return k.name;
    }
    return "unknown";
}

}  // namespace dnnplan::networks
