// How one layer's work is split over its processes: a factor of the layer's process count per
// tensor axis (DESIGN.md section 3a). Batch is Gholami's Pc; channels/features and the spatial
// axes are Pr (model or domain); the input-feature axis is the reduction (Megatron's row split).
#pragma once

#include <cstdint>
#include <string>

#include "common/diagnostics.hpp"

namespace dnnplan::planner {

struct Layout {
    int n = 1;   // batch (data parallelism)
    int co = 1;  // output channels / features / attention heads (model, column split)
    int ci = 1;  // input channels / features: the reduction axis (row split, partial sums)
    int h = 1;   // height (domain)
    int w = 1;   // width (domain)

    std::int64_t procs() const { return std::int64_t{n} * co * ci * h * w; }
    int model() const { return co * ci; }
    int domain() const { return h * w; }
    bool operator==(const Layout&) const = default;
    auto operator<=>(const Layout&) const = default;
};

// "n64 x co8", "n512" (batch only), "1" for a single process.
std::string to_string(const Layout& layout);
Json to_json(const Layout& layout);
// Reads {"n": .., "co": .., "ci": .., "h": .., "w": ..}; missing factors are 1.
Layout layout_from_json(const SpecNode& node);

}  // namespace dnnplan::planner
