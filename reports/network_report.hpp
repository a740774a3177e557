// Renders `dnnplan inspect`: the per-layer table and totals of a network, like torchinfo.
#pragma once

#include <cstdint>
#include <string>

#include "networks/network.hpp"

namespace dnnplan::reports {

// Identical numbered blocks collapsed (h.0 ... h.95 (x96)) unless `all_layers`; the description
// wrapped at `width` columns (0: no limit).
std::string network_text(const networks::Network& network, std::int64_t batch, bool all_layers = false, int width = 120);
std::string network_csv(const networks::Network& network, std::int64_t batch);
std::string network_json(const networks::Network& network, std::int64_t batch);

}  // namespace dnnplan::reports
