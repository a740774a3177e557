// The JSON spec loader: reads and checks a spec (with exact JSON-pointer diagnostics), expands its
// repeat blocks, resolves layer references, orders the layers topologically and infers each one.
#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>

#include "graph.hpp"
#include "infer.hpp"
#include "network.hpp"

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

// A shape as a spec writes it: an array of one to kMaxRank sizes.
void expect_sizes(const SpecNode& shape) {
    shape.expect_array("an array of sizes");
    if (shape.size() == 0) shape.fail("expected at least one size");
    if (shape.size() > kMaxRank)
        shape.fail("expected at most " + std::to_string(kMaxRank) + " sizes, got " + std::to_string(shape.size()));
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
            n.check_keys(with_common({"heads", "causal", "bias"}));
            a.heads = n.get_int("heads", 1);
            a.causal = n.get_bool_or("causal", false);
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

// Reports a shape whose element count does not fit 64 bits at `where`.
void check_elements(const Shape& shape, const SpecNode& where, const std::string& what) {
    if (!checked_elements(shape))
        where.fail(what + " " + shape_string(shape) + " has too many elements for 64-bit counts");
}

// parse_network's phases, in order, over the state they hand on.
class NetworkBuilder {
public:
    NetworkBuilder(const Json& spec_json, const std::string& file) : spec_(spec_json, file), file_(file) {}

    Network build() {
        read_header();
        Layer input = read_input();
        expand_layers();
        index_names();
        resolve_inputs();
        order_topologically();
        infer_layers(std::move(input));
        // Totals must be representable for the default batch.
        totals(network_, network_.default_batch, file_);
        return std::move(network_);
    }

private:
    void read_header() {
        spec_.expect_object("a network object");
        spec_.check_keys({"name", "description", "dtype", "batch", "input", "layers"});
        network_.name = spec_.get_string("name");
        if (network_.name.empty()) spec_.child("name").fail("network name must not be empty");
        network_.description = spec_.get_string_or("description", "");
        network_.dtype = *parse_dtype(spec_.get_choice_or("dtype", dtype_names(), "fp32"));
        network_.default_batch = spec_.get_int_or("batch", 1, 1);
    }

    Layer read_input() {
        SpecNode input = spec_.child("input");
        input.expect_object("an input object");
        input.check_keys({"shape", "tokens"});
        Layer layer;
        layer.name = "input";
        layer.kind = LayerKind::input;
        layer.spec_pointer = input.pointer();
        if (input.has("tokens") == input.has("shape")) input.fail("give exactly one of \"shape\" or \"tokens\"");
        if (input.has("tokens")) {
            network_.token_input = true;
            layer.output_shape = {input.get_int("tokens", 1)};
        } else {
            SpecNode shape = input.child("shape");
            expect_sizes(shape);
            for (std::size_t i = 0; i < shape.size(); ++i) layer.output_shape.push_back(shape.element(i).as_int(1));
        }
        check_elements(layer.output_shape, input.has("shape") ? input.child("shape") : input, "input shape");
        layer.output_elements = *checked_elements(layer.output_shape);
        return layer;
    }

    // Reads and checks the layer tree, then expands repeat blocks into a flat list.
    void expand_layers() {
        std::vector<SpecItem> items;
        Expansion expanded = reader_.read(spec_.child("layers"), 0, items);
        raw_.reserve(static_cast<std::size_t>(expanded.layers));
        int previous = 0;
        Expander(reader_.layers, raw_, scopes_).expand(items, 0, 0, previous);
    }
    const SpecLayer& spec_of(const RawLayer& raw) const { return reader_.layers[raw.spec]; }
    std::size_t count() const { return raw_.size() + 1; }

    // Indexes names; duplicates are an error at the second definition.
    void index_names() {
        index_.reserve(count());
        index_.emplace("input", 0);
        for (std::size_t i = 0; i < raw_.size(); ++i) {
            auto [it, inserted] = index_.emplace(raw_[i].name, static_cast<int>(i) + 1);
            if (inserted) continue;
            const SpecNode& node = spec_of(raw_[i]).node;
            SpecNode where = node.has("name") ? node.child("name") : node;
            if (it->second == 0) where.fail("the name \"input\" is reserved for the network's input");
            where.fail("duplicate layer name \"" + raw_[i].name + "\" (first defined at " +
                       spec_of(raw_[it->second - 1]).node.pointer() + ")");
        }
    }

    // Resolves inputs to file-order indices (0 = input).
    void resolve_inputs() {
        inputs_of_.resize(count());
        for (std::size_t i = 0; i < raw_.size(); ++i) {
            const RawLayer& r = raw_[i];
            const SpecLayer& s = spec_of(r);
            const int self = static_cast<int>(i) + 1;
            if (!s.has_inputs) {
                inputs_of_[self].push_back(r.previous);
                continue;
            }
            for (std::size_t k = 0; k < s.inputs.size(); ++k) {
                int target = resolve_reference(s.inputs[k], r, scopes_, index_);
                if (target < 0)
                    s.node.child("inputs").element(k).fail(unknown_reference(s.inputs[k], r, scopes_, raw_));
                if (target == self) s.node.child("inputs").element(k).fail("layer \"" + r.name + "\" reads itself");
                file_order_is_topological_ = file_order_is_topological_ && target < self;
                inputs_of_[self].push_back(target);
            }
        }
    }

    // With only backward references the file order is already topological (and acyclic); otherwise
    // the Boost.Graph view finds a cycle or a topological order that keeps file order where it can.
    void order_topologically() {
        order_.resize(count());
        for (std::size_t v = 0; v < count(); ++v) order_[v] = static_cast<int>(v);
        if (!file_order_is_topological_) {
            LayerGraph graph = make_graph(static_cast<int>(count()), inputs_of_);
            if (auto cycle = find_cycle(graph)) report_cycle(*cycle);
            order_ = topological_order(graph);
        }
        position_.resize(count());
        for (std::size_t p = 0; p < order_.size(); ++p) position_[order_[p]] = static_cast<int>(p);
    }

    // The cycle closes through a reference to a later layer (implicit inputs only look back): report
    // it at the `inputs` entry that makes it, with the cycle starting at its reader.
    [[noreturn]] void report_cycle(const std::vector<int>& c) const {
        std::size_t start = 0;
        while (start < c.size() && c[(start + c.size() - 1) % c.size()] < c[start]) ++start;
        start %= c.size();
        int reader_index = c[start], producer = c[(start + c.size() - 1) % c.size()];
        std::vector<std::string> names;
        for (std::size_t k = 0; k < c.size(); ++k) names.push_back(raw_[c[(start + k) % c.size()] - 1].name);
        const RawLayer& r = raw_[reader_index - 1];
        const SpecLayer& s = spec_of(r);
        std::size_t entry = 0;
        while (entry + 1 < inputs_of_[reader_index].size() && inputs_of_[reader_index][entry] != producer) ++entry;
        SpecNode where = s.has_inputs ? s.node.child("inputs").element(entry) : s.node;
        where.fail("reading \"" + (s.has_inputs ? s.inputs[entry] : raw_[producer - 1].name) +
                   "\" makes a cycle: " + cycle_path(names));
    }

    // Builds the layers in topological order and infers them. Attributes are read once per spec
    // layer and shared by the copies of its block.
    void infer_layers(Layer input) {
        network_.layers.reserve(count());
        network_.layers.push_back(std::move(input));
        autograd_.add(network_.layers.back());
        attributes_.resize(reader_.layers.size());
        for (std::size_t p = 1; p < order_.size(); ++p) {
            Layer layer = infer_layer_at(p);
            network_.layers.push_back(std::move(layer));
        }
    }

    Layer infer_layer_at(std::size_t p) {
        const int v = order_[p];
        const RawLayer& r = raw_[v - 1];
        const SpecLayer& s = spec_of(r);
        if (!attributes_[r.spec]) attributes_[r.spec] = parse_attributes(s);
        Layer layer;
        layer.name = r.name;
        layer.kind = s.kind;
        layer.spec_pointer = s.node.pointer();
        layer.attrs = *attributes_[r.spec];
        LayerContext context{s.kind_name, {}, network_.token_input, nullptr};
        for (int u : inputs_of_[v]) {
            layer.inputs.push_back(position_[u]);
            context.inputs.push_back(&network_.layers[position_[u]]);
        }
        try {
            if (!layer.attrs.tied_to.empty()) context.tied = resolve_tie(layer, r, s, static_cast<int>(p));
            std::int64_t internal_backward_flops = 0;
            try {
                internal_backward_flops = infer_layer(layer, context);
            } catch (const LayerError& e) {
                (e.field().empty() || !s.node.has(e.field()) ? s.node : s.node.child(e.field())).fail(e.what());
            }
            autograd_.add(layer, internal_backward_flops);
        } catch (const InputError& e) {
            // Copies of a block share their spec's pointer; say which copy went wrong.
            if (r.scope == 0) throw;
            throw InputError(e.file(), e.location(), e.message() + " (in layer \"" + r.name + "\")");
        }
        return layer;
    }

    // Resolves a `tied_to` by scope, so blocks can refer to short names; renames it to the full name.
    const Layer* resolve_tie(Layer& layer, const RawLayer& r, const SpecLayer& s, int p) const {
        const std::string& ref = layer.attrs.tied_to;
        SpecNode field = s.node.child("tied_to");
        int target = resolve_reference(ref, r, scopes_, index_);
        if (target < 0) field.fail(unknown_reference(ref, r, scopes_, raw_));
        if (target == order_[p]) field.fail("a layer cannot be tied to itself");
        if (position_[target] > p) field.fail("tied layer \"" + ref + "\" must come before this layer");
        const Layer* tied = &network_.layers[position_[target]];
        layer.attrs.tied_to = tied->name;
        return tied;
    }

    SpecNode spec_;
    std::string file_;
    Network network_;
    SpecReader reader_;
    std::vector<Scope> scopes_{Scope{"", -1}};
    std::vector<RawLayer> raw_;
    std::unordered_map<std::string, int> index_;
    std::vector<std::vector<int>> inputs_of_;
    bool file_order_is_topological_ = true;
    std::vector<int> order_, position_;
    std::vector<std::optional<LayerAttributes>> attributes_;
    Autograd autograd_;
};

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

Network parse_network(const Json& spec, const std::string& file) { return NetworkBuilder(spec, file).build(); }

}  // namespace dnnplan::networks
