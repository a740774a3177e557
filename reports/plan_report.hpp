// Renders the planner's ranked strategies and the best plan's per-layer layouts.
#pragma once

#include <string>
#include <vector>

#include "planner/plan.hpp"
#include "planner/search.hpp"

namespace dnnplan::reports {

struct PlanReportInput {
    const planner::CostModel* model;
    const planner::SearchResult* result;
    int top = 10;
};

std::string plan_text(const PlanReportInput& input);
// Machine-readable rankings: every candidate with its configuration fields and every time
// component (reports/candidate_fields.hpp); columns in ranking_columns() order.
std::vector<std::string> ranking_columns();
std::string plan_csv(const PlanReportInput& input);
std::string plan_json(const PlanReportInput& input, const planner::Plan& best);
// One scored plan (re-scoring of a saved plan).
std::string scored_plan_text(const planner::CostModel& model, const planner::Plan& plan);

}  // namespace dnnplan::reports
