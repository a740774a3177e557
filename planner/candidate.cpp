#include "candidate.hpp"

#include <array>
#include <utility>

namespace dnnplan::planner {

namespace {
constexpr std::array<std::pair<Strategy, const char*>, 10> kStrategyNames{{
    {Strategy::batch, "batch"},
    {Strategy::model, "model"},
    {Strategy::domain, "domain"},
    {Strategy::grid_model, "grid-model"},
    {Strategy::grid_domain, "grid-domain"},
    {Strategy::per_layer, "per-layer"},
    {Strategy::pipeline, "pipeline"},
    {Strategy::tp_pp_dp, "tp-pp-dp"},
    {Strategy::graph_partition, "graph-partition"},
    {Strategy::hand_edited, "hand-edited"},
}};
}  // namespace

std::string to_string(Strategy strategy) {
    for (const auto& [value, name] : kStrategyNames)
        if (value == strategy) return name;
    return "hand-edited";
}

std::optional<Strategy> parse_strategy(const std::string& name) {
    for (const auto& [value, text] : kStrategyNames)
        if (name == text) return value;
    return std::nullopt;
}

bool is_grid(Strategy strategy) {
    return strategy == Strategy::batch || strategy == Strategy::model || strategy == Strategy::domain ||
           strategy == Strategy::grid_model || strategy == Strategy::grid_domain;
}

}  // namespace dnnplan::planner
