// How a ranked candidate is named in tables: its family and label, and the two process counts the
// Pr and Pc columns show.
#pragma once

#include <string>

#include "planner/candidate.hpp"

namespace dnnplan::reports {

// "grid-model Pr=8 x Pc=64", "batch", "tp-pp-dp TP=8 x PP=4 x DP=32, M=48, ..."
inline std::string candidate_label(planner::Strategy strategy, const std::string& label) {
    return label.empty() ? planner::to_string(strategy) : planner::to_string(strategy) + " " + label;
}
inline std::string candidate_label(const planner::Candidate& c) { return candidate_label(c.strategy, c.label); }

// The grid's Pr x Pc; T x S and R for pipelines; k and R for graph partitions; 0 x 0 (no columns)
// for per-layer plans.
inline planner::GridShape shown_grid(const planner::Candidate& c) {
    switch (c.strategy) {
        case planner::Strategy::pipeline:
        case planner::Strategy::tp_pp_dp:
            return {c.pipeline.tensor * c.pipeline.stages, c.pipeline.replicas};
        case planner::Strategy::graph_partition:
            return {c.pipeline.stages, c.pipeline.replicas};
        case planner::Strategy::per_layer:
        case planner::Strategy::hand_edited:
            return {0, 0};
        default:
            return c.grid;
    }
}

}  // namespace dnnplan::reports
