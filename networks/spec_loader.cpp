// The JSON spec loader: reads and checks a spec (networks/spec.hpp), resolves layer references,
// orders the layers topologically and infers each one (networks/infer.hpp).
#include <optional>
#include <unordered_map>

#include "networks/graph.hpp"
#include "networks/infer.hpp"
#include "networks/network.hpp"
#include "networks/spec.hpp"

namespace dnnplan::networks {

namespace {

using namespace spec;

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
    void expand_layers() { layers_ = read_layers(spec_.child("layers")); }
    const SpecLayer& spec_of(const RawLayer& raw) const { return layers_.specs[raw.spec]; }
    std::size_t count() const { return layers_.raw.size() + 1; }

    // Indexes names; duplicates are an error at the second definition.
    void index_names() {
        index_.reserve(count());
        index_.emplace("input", 0);
        for (std::size_t i = 0; i < layers_.raw.size(); ++i) {
            auto [it, inserted] = index_.emplace(layers_.raw[i].name, static_cast<int>(i) + 1);
            if (inserted) continue;
            const SpecNode& node = spec_of(layers_.raw[i]).node;
            SpecNode where = node.has("name") ? node.child("name") : node;
            if (it->second == 0) where.fail("the name \"input\" is reserved for the network's input");
            where.fail("duplicate layer name \"" + layers_.raw[i].name + "\" (first defined at " +
                       spec_of(layers_.raw[it->second - 1]).node.pointer() + ")");
        }
    }

    // Resolves inputs to file-order indices (0 = input).
    void resolve_inputs() {
        inputs_of_.resize(count());
        for (std::size_t i = 0; i < layers_.raw.size(); ++i) {
            const RawLayer& r = layers_.raw[i];
            const SpecLayer& s = spec_of(r);
            const int self = static_cast<int>(i) + 1;
            if (!s.has_inputs) {
                inputs_of_[self].push_back(r.previous);
                continue;
            }
            for (std::size_t k = 0; k < s.inputs.size(); ++k) {
                int target = resolve_reference(s.inputs[k], r, layers_.scopes, index_);
                if (target < 0)
                    s.node.child("inputs").element(k).fail(
                        unknown_reference(s.inputs[k], r, layers_.scopes, layers_.raw));
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
        for (std::size_t k = 0; k < c.size(); ++k) names.push_back(layers_.raw[c[(start + k) % c.size()] - 1].name);
        const RawLayer& r = layers_.raw[reader_index - 1];
        const SpecLayer& s = spec_of(r);
        std::size_t entry = 0;
        while (entry + 1 < inputs_of_[reader_index].size() && inputs_of_[reader_index][entry] != producer) ++entry;
        SpecNode where = s.has_inputs ? s.node.child("inputs").element(entry) : s.node;
        where.fail("reading \"" + (s.has_inputs ? s.inputs[entry] : layers_.raw[producer - 1].name) +
                   "\" makes a cycle: " + cycle_path(names));
    }

    // Builds the layers in topological order and infers them. Attributes are read once per spec
    // layer and shared by the copies of its block.
    void infer_layers(Layer input) {
        network_.layers.reserve(count());
        network_.layers.push_back(std::move(input));
        autograd_.add(network_.layers.back());
        attributes_.resize(layers_.specs.size());
        for (std::size_t p = 1; p < order_.size(); ++p) {
            Layer layer = infer_layer_at(p);
            network_.layers.push_back(std::move(layer));
        }
    }

    Layer infer_layer_at(std::size_t p) {
        const int v = order_[p];
        const RawLayer& r = layers_.raw[v - 1];
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
        int target = resolve_reference(ref, r, layers_.scopes, index_);
        if (target < 0) field.fail(unknown_reference(ref, r, layers_.scopes, layers_.raw));
        if (target == order_[p]) field.fail("a layer cannot be tied to itself");
        if (position_[target] > p) field.fail("tied layer \"" + ref + "\" must come before this layer");
        const Layer* tied = &network_.layers[position_[target]];
        layer.attrs.tied_to = tied->name;
        return tied;
    }

    SpecNode spec_;
    std::string file_;
    Network network_;
    ExpandedLayers layers_;
    std::unordered_map<std::string, int> index_;
    std::vector<std::vector<int>> inputs_of_;
    bool file_order_is_topological_ = true;
    std::vector<int> order_, position_;
    std::vector<std::optional<LayerAttributes>> attributes_;
    Autograd autograd_;
};

}  // namespace

Network parse_network(const Json& spec, const std::string& file) { return NetworkBuilder(spec, file).build(); }

}  // namespace dnnplan::networks
