// `dnnplan report`: one table model of a planning run (inputs, ranked strategies, the best plan's
// layers, memory, scaling, predicted/simulated/measured) rendered as HTML (with inline SVG charts),
// Markdown, CSV and JSON. Every renderer reads the same tables, so the formats agree number for
// number; the numbers themselves all come from the planner's results (or the given result files).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "planner/search.hpp"
#include "reports/predicted_timeline.hpp"
#include "reports/result_files.hpp"

namespace dnnplan::reports {

// How a number is shown; the column key carries the unit for CSV and JSON ("iteration_s").
// `count` is shown exact ("9216"), `large_count` with an SI prefix ("138.4 M").
enum class Unit { none, count, seconds, bytes, ratio, fraction, flops, flops_per_s, bytes_per_s, large_count };

struct Column {
    std::string key;    // CSV/JSON name, unit in the name
    std::string label;  // HTML/Markdown header
    Unit unit = Unit::none;
    bool data_only = false;  // in CSV and JSON only (HTML and Markdown leave it out)
};

struct Cell {
    std::string text;   // for text cells
    double number = 0;  // for numeric cells
    bool is_number = false;
    bool user_text = false;  // a user-provided string (names, reasons): escaped for Markdown too
    bool empty = false;      // no value (e.g. not measured): "-" in text, null in JSON, "" in CSV
    // The number's own unit in a column of mixed units (the Inputs table's values); none: the
    // column's unit.
    Unit unit = Unit::none;
};
Cell text_cell(std::string text, bool user_text = false);
Cell number_cell(double value, Unit unit = Unit::none);
// How the HTML and Markdown forms show a number cell of column `column`.
std::string format_cell_number(const Cell& cell, const Column& column);
Cell empty_cell();

struct ReportTable {
    std::string id;  // stable name: "ranked", "best_plan_layers", ...
    std::string title;
    std::string note;  // one sentence under the title (our own words, not user text)
    std::vector<Column> columns;
    std::vector<std::vector<Cell>> rows;
    int column(const std::string& key) const;  // -1 when absent
};

// The planner run at one P of the scaling study.
struct ScalingRun {
    std::int64_t procs = 1;
    planner::SearchResult result;
};

struct ReportInput {
    const planner::CostModel* model = nullptr;
    const planner::SearchResult* result = nullptr;
    std::string network_source;       // as given (--net)
    std::string cluster_source;       // as given (--cluster)
    std::vector<ScalingRun> scaling;  // ascending P, ending at the requested P (may be empty)
    std::optional<SimulatedResult> simulated;
    std::optional<MeasuredResult> measured;
    int chart_top = 15;  // strategies drawn in the time and memory charts
};

struct StrategyReport {
    std::string title;
    std::string best_label;  // "per-layer", "grid-model Pr=8 x Pc=64"; empty when none is feasible
    std::int64_t procs = 1;
    std::vector<ReportTable> tables;
    const ReportTable* table(const std::string& id) const;
    int chart_top = 15;
    PredictedTimeline best_timeline;  // the best plan's predicted iteration (empty when none is feasible)
};

// The "formulas and assumptions" section: paragraphs of plain text citing the papers.
const std::vector<std::string>& formulas_and_assumptions();

// The processes of the scaling study: 1, 2, 4, ... below `procs`, then `procs` itself.
std::vector<std::int64_t> scaling_procs(std::int64_t procs);

StrategyReport build_strategy_report(const ReportInput& input);

// The shown form of a number in a column of this unit ("12.3 ms", "1.5 GiB", "2.50x", "87.5%").
std::string format_value(double value, Unit unit);

std::string report_html(const StrategyReport& report);
// The report's charts as standalone SVG documents (the Markdown form links them as files beside it).
struct ReportChart {
    std::string name;   // "time", "timeline", "memory", "scaling", "efficiency": the file's suffix
    std::string title;  // the image's alt text
    std::string svg;
};
std::vector<ReportChart> report_charts(const StrategyReport& report);
// `chart_files` (title, relative file name) are embedded as images after the title; none: a
// pointer to the HTML form.
std::string report_markdown(const StrategyReport& report,
                            const std::vector<std::pair<std::string, std::string>>& chart_files = {});
std::string report_json(const StrategyReport& report);
std::string report_csv(const StrategyReport& report);

}  // namespace dnnplan::reports
