// The JSON spec loader's private interface: the spec's layer objects and their expansion
// (spec_reader.cpp), and how layers refer to each other (spec_references.cpp); spec_loader.cpp
// runs parse_network's phases over them.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/diagnostics.hpp"
#include "networks/network.hpp"

namespace dnnplan::networks::spec {

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

// The `layers` tree read, checked and expanded into a flat list.
struct ExpandedLayers {
    std::vector<SpecLayer> specs;       // one per layer object of the file
    std::vector<Scope> scopes{Scope{"", -1}};  // scopes[0] is the global scope
    std::vector<RawLayer> raw;          // every layer, repeat blocks expanded
};
ExpandedLayers read_layers(const SpecNode& layers);

// The kind-specific attributes of a layer object, checked.
LayerAttributes parse_attributes(const SpecLayer& spec);
// A shape as a spec writes it: an array of one to kMaxRank sizes.
void expect_sizes(const SpecNode& shape);

// Resolves an `inputs` or `tied_to` reference to a file-order index (-1 when absent): "$in", then
// the copy's own layers, then each enclosing block's, then global names.
int resolve_reference(const std::string& ref, const RawLayer& raw, const std::vector<Scope>& scopes,
                      const std::unordered_map<std::string, int>& index);
// "no layer named X" with the valid names: all of them for a small network, else the closest name
// visible from the referring layer (a whole ResNet's names would not help).
std::string unknown_reference(const std::string& ref, const RawLayer& raw, const std::vector<Scope>& scopes,
                              const std::vector<RawLayer>& layers);
// "a -> b -> c -> a", shortened in the middle for long cycles.
std::string cycle_path(const std::vector<std::string>& names);

}  // namespace dnnplan::networks::spec
