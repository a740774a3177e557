// Renders the planner's ranked strategies and the best plan's per-layer layouts.
#pragma once

#include <string>
#include <vector>

#include "planner/plan.hpp"
#include "planner/search.hpp"

namespace dnnplan::reports {

// How the text form fits a terminal: at most `width` columns (columns that are zero in every row
// left out, then the least needed ones until the table fits), repeated blocks of the layer table
// collapsed (`h.0 ... h.95 (x96)`). `wide`: every column, no width limit; `all_layers`: every layer.
struct TextOptions {
    int width = 120;
    bool wide = false;
    bool all_layers = false;
};

struct PlanReportInput {
    const planner::CostModel* model;
    const planner::SearchResult* result;
    int top = 10;
    TextOptions text = {};
};

std::string plan_text(const PlanReportInput& input);
// Machine-readable rankings: every candidate with its configuration fields and every time
// component (reports/candidate_fields.hpp); columns in ranking_columns() order.
std::vector<std::string> ranking_columns();
std::string plan_csv(const PlanReportInput& input);
std::string plan_json(const PlanReportInput& input, const planner::Plan& best);
// One scored plan (re-scoring of a saved plan).
std::string scored_plan_text(const planner::CostModel& model, const planner::Plan& plan, const TextOptions& text = {});

// Text building blocks (exposed for tests): the short configuration of a candidate from its typed
// fields ("TP=8 x PP=4 x DP=32, M=48, 1f1b, zero-1", "PP=4 x DP=16, M=8, gpipe", "Pr=8 x Pc=64", "k=8 x DP=64, M=16", "" per layer);
// `text` wrapped at `width` columns, continuation lines indented by `indent` spaces; the layer
// table's rows with runs of identical numbered blocks collapsed.
std::string short_configuration(const planner::Candidate& candidate);
std::string wrap(const std::string& text, int width, int indent);
struct LayerRow {
    std::string name;
    std::vector<std::string> cells;  // every column after the name; none: a collapsed block's title line
};
std::vector<LayerRow> collapse_repeated_blocks(const std::vector<LayerRow>& rows, int stage_cell = -1);
// A table of layer rows under `header` (the name's column first), blocks collapsed unless
// `all_layers`, with a note of how many rows the collapse saved. Names too long for the table to
// fit `width` columns (0: no limit) continue on the lines below, whole.
std::string render_layer_rows(const std::vector<std::string>& header, std::vector<LayerRow> rows, bool all_layers,
                              int stage_cell = -1, int width = 0);

}  // namespace dnnplan::reports
