// How a ranked candidate is named in tables: its family and label.
#pragma once

#include <string>

#include "planner/candidate.hpp"

namespace dnnplan::reports {

// "grid-model Pr=8 x Pc=64", "batch", "tp-pp-dp TP=8 x PP=4 x DP=32, M=48, ..."
inline std::string candidate_label(planner::Strategy strategy, const std::string& label) {
    return label.empty() ? planner::to_string(strategy) : planner::to_string(strategy) + " " + label;
}
inline std::string candidate_label(const planner::Candidate& c) { return candidate_label(c.strategy, c.label); }

}  // namespace dnnplan::reports
