// Renders `dnnplan inspect`: the per-layer table and totals of a network, like torchinfo.
#pragma once

#include <cstdint>
#include <string>

#include "networks/network.hpp"

namespace dnnplan::reports {

std::string network_text(const networks::Network& network, std::int64_t batch);
std::string network_csv(const networks::Network& network, std::int64_t batch);
std::string network_json(const networks::Network& network, std::int64_t batch);

}  // namespace dnnplan::reports
