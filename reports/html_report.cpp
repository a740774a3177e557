// The HTML form of the strategy report: one self-contained page (inline CSS and SVG, no script,
// nothing fetched), readable on screen and printed. Every number cell carries its exact value in
// data-value so the page can be checked against the JSON form.
#include <cmath>
#include <cstdio>

#include "reports/plan_report.hpp"
#include "reports/strategy_report.hpp"
#include "reports/svg_chart.hpp"
#include "reports/text.hpp"

namespace dnnplan::reports {

namespace {

const char* kStyle =
    R"(body{font-family:sans-serif;margin:2em auto;max-width:1200px;color:#111;background:#fff;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:2em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.85em}
caption{text-align:left;font-weight:bold;padding:0.3em 0}
th,td{border:1px solid #bbb;padding:2px 6px;vertical-align:top}th{background:#eee}
td.num{text-align:right;white-space:nowrap}td.empty{text-align:center;color:#777}
p.note{font-size:0.85em;color:#333;margin:0.2em 0}figure{margin:1em 0}svg{max-width:100%;height:auto}
div.scroll{overflow-x:auto}td{max-width:40em;overflow-wrap:anywhere}th{font-size:0.9em}
#t-ranked td:nth-child(2),#t-memory td:first-child,#t-scaling td:nth-child(3),#t-infeasible td:first-child{min-width:12em}
#t-ranked{font-size:0.75em}#t-ranked th{white-space:normal}
@media print{@page{size:auto;margin:12mm}body{margin:0;max-width:none;padding:0}h2{page-break-after:avoid}
figure{page-break-inside:avoid}tr{page-break-inside:avoid}div.scroll{overflow:visible}table{font-size:0.62em;width:100%}
td.num{white-space:normal}th,td{padding:1px 2px}#t-ranked{font-size:0.58em}#t-ranked td:nth-child(2),#t-memory td:first-child,#t-scaling td:nth-child(3),
#t-infeasible td:first-child{min-width:8em}}
)";

std::string exact(double v) {
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%.17g", v);
    return buffer;
}

// Columns a person need not see: empty in every row, or a time that is 0 s in every row (the
// all-to-all of a CNN); CSV and JSON keep them. Their labels go into a note under the table.
std::vector<bool> shown_columns(const ReportTable& t, std::string& omitted) {
    std::vector<bool> shown(t.columns.size(), true);
    for (std::size_t i = 0; i < t.columns.size(); ++i) {
        if (t.columns[i].data_only) {
            shown[i] = false;
            continue;
        }
        if (t.rows.empty()) continue;
        bool nothing = true;
        for (const auto& row : t.rows)
            nothing = nothing && i < row.size() &&
                      (row[i].empty || (row[i].is_number && row[i].number == 0 && t.columns[i].unit == Unit::seconds));
        if (nothing) {
            shown[i] = false;
            omitted += (omitted.empty() ? "" : ", ") + t.columns[i].label;
        }
    }
    return shown;
}

std::string table_html(const ReportTable& t) {
    std::string omitted;
    const std::vector<bool> shown = shown_columns(t, omitted);
    std::string out = "<div class=\"scroll\">\n<table id=\"t-" + t.id + "\">\n<caption>" + html_escape(t.title) +
                      "</caption>\n<thead><tr>";
    for (std::size_t i = 0; i < t.columns.size(); ++i)
        if (shown[i]) out += "<th>" + html_escape(t.columns[i].label) + "</th>";
    out += "</tr></thead>\n<tbody>\n";
    for (const auto& row : t.rows) {
        out += "<tr>";
        for (std::size_t i = 0; i < row.size() && i < t.columns.size(); ++i) {
            const Cell& cell = row[i];
            if (!shown[i]) continue;
            if (cell.empty)
                out += "<td class=\"empty\">-</td>";
            else if (cell.is_number)
                out += "<td class=\"num\" data-key=\"" + t.columns[i].key + "\" data-value=\"" + exact(cell.number) +
                       "\">" + html_escape(format_cell_number(cell, t.columns[i])) + "</td>";
            else
                out += "<td>" + html_escape(cell.text) + "</td>";
        }
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n</div>\n";
    if (!t.note.empty()) out += "<p class=\"note\">" + html_escape(t.note) + "</p>\n";
    if (!omitted.empty())
        out += "<p class=\"note\">Not shown (empty or 0 s in every row; in the CSV and JSON forms): " +
               html_escape(omitted) + ".</p>\n";
    return out;
}

double number_at(const std::vector<Cell>& row, int column) {
    return column >= 0 && static_cast<std::size_t>(column) < row.size() && row[column].is_number ? row[column].number
                                                                                                 : 0;
}
std::string text_at(const std::vector<Cell>& row, int column) {
    return column >= 0 && static_cast<std::size_t>(column) < row.size() ? row[column].text : "";
}

ValueFormat unit_format(Unit unit) {
    return [unit](double v) { return format_value(v, unit); };
}

std::string figure(const std::string& svg, const std::string& caption) {
    return "<figure>\n" + svg + "<figcaption class=\"note\">" + html_escape(caption) + "</figcaption>\n</figure>\n";
}

// Stacked bars of the time components of the first `top` ranked strategies.
std::string time_chart_svg(const ReportTable& ranked, int top) {
    StackedBarChart chart;
    chart.title = "Time per iteration by component";
    chart.value_label = "seconds per iteration";
    chart.format = unit_format(Unit::seconds);
    int strategy = ranked.column("strategy");
    std::size_t shown = std::min<std::size_t>(ranked.rows.size(), static_cast<std::size_t>(top));
    for (std::size_t r = 0; r < shown; ++r) chart.categories.push_back(text_at(ranked.rows[r], strategy));
    // The columns between iteration_s and sync_total_s are the stacked components.
    int first = ranked.column("iteration_s") + 1, last = ranked.column("sync_total_s");
    for (int c = first; c < last; ++c) {
        BarSeries s{ranked.columns[c].label, {}};
        bool any = false;
        for (std::size_t r = 0; r < shown; ++r) {
            s.values.push_back(number_at(ranked.rows[r], c));
            any = any || s.values.back() > 0;
        }
        if (any) chart.series.push_back(std::move(s));  // components that are zero everywhere stay out of the legend
    }
    return stacked_bar_svg(chart);
}
std::string time_chart(const ReportTable& ranked, int top) {
    std::size_t shown = std::min<std::size_t>(ranked.rows.size(), static_cast<std::size_t>(top));
    return figure(time_chart_svg(ranked, top), "The fastest " + std::to_string(shown) +
                                                   " feasible strategies; the bar's length is the iteration time.");
}

std::string memory_chart_svg(const ReportTable& memory, int top) {
    StackedBarChart chart;
    chart.title = "Memory per process against capacity";
    chart.value_label = "bytes per process";
    chart.format = unit_format(Unit::bytes);
    chart.binary_ticks = true;
    std::size_t shown = std::min<std::size_t>(memory.rows.size(), static_cast<std::size_t>(top));
    for (std::size_t r = 0; r < shown; ++r) chart.categories.push_back(text_at(memory.rows[r], 0));
    for (const char* key :
         {"weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "buffers_bytes"}) {
        int c = memory.column(key);
        BarSeries s{memory.columns[c].label, {}};
        for (std::size_t r = 0; r < shown; ++r) s.values.push_back(number_at(memory.rows[r], c));
        chart.series.push_back(std::move(s));
    }
    if (!memory.rows.empty()) {
        chart.limit = number_at(memory.rows[0], memory.column("memory_capacity_bytes"));
        chart.limit_label = "capacity " + format_value(chart.limit, Unit::bytes);
    }
    return stacked_bar_svg(chart);
}
std::string memory_chart(const ReportTable& memory, int top) {
    return figure(memory_chart_svg(memory, top), "Dashed line: the device memory (named at the top when far beyond the bars).");
}

// Compact picture of the best plan: one strip per anchor layer, split into the log2 share of P
// each axis takes (batch, channels, reduction, height, width; grey for replicas). Identical
// numbered blocks are drawn once under a title line ("h.0 ... h.95 (x96):", as in the text
// table); a dashed line marks where a pipeline's next stage (a graph partition's next device)
// starts, and the stage is named beside the layout.
std::string layout_picture(const ReportTable& layers, std::int64_t procs) {
    const double label_width = 170, strip = 420, row = 14, top = 36;
    const char* axes[] = {"n", "co", "ci", "h", "w"};
    const int stage_column = layers.column("stage");
    std::vector<LayerRow> rows;  // cells: stage, layout, then the five axes' factors
    bool staged = false;
    for (const auto& r : layers.rows) {
        if (text_at(r, layers.column("layout")) == "(follows)") continue;
        const bool has_stage = stage_column >= 0 && r[stage_column].is_number;
        staged = staged || has_stage;
        LayerRow row{text_at(r, layers.column("layer")),
                     {has_stage ? format_value(r[stage_column].number, Unit::count) : "",
                      text_at(r, layers.column("layout"))}};
        for (const char* axis : axes) row.cells.push_back(format_value(number_at(r, layers.column(axis)), Unit::count));
        rows.push_back(std::move(row));
    }
    rows = collapse_repeated_blocks(rows, 0);
    double height = top + static_cast<double>(rows.size()) * (row + 3) + 40;
    double width = label_width + strip + 150;
    char buffer[256];
    std::string out =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(static_cast<int>(width)) +
        "\" height=\"" + std::to_string(static_cast<int>(height)) + "\" viewBox=\"0 0 " +
        std::to_string(static_cast<int>(width)) + " " + std::to_string(static_cast<int>(height)) +
        "\" font-family=\"sans-serif\" role=\"img\">\n<title>Layouts of the best plan</title>\n"
        "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        "<text x=\"" +
        std::to_string(static_cast<int>(width / 2)) +
        "\" y=\"18\" font-size=\"13\" font-weight=\"bold\" text-anchor=\"middle\">Layouts of the best plan "
        "(share of log2 P per axis)</text>\n";
    const char* names[] = {"batch n",  "out channels co", "in channels ci",
                           "height h", "width w",         "other processes (replicas, other stages)"};
    double total = std::log2(static_cast<double>(std::max<std::int64_t>(procs, 2)));
    std::string previous_stage;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        double y = top + static_cast<double>(i) * (row + 3);
        if (r.cells.empty()) {  // a collapsed block's title
            std::snprintf(buffer, sizeof buffer, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" font-style=\"italic\">", 6.0,
                          y + row - 3);
            out += buffer + html_escape(r.name) + "</text>\n";
            continue;
        }
        const std::string& stage = r.cells[0];
        if (staged && !previous_stage.empty() && stage != previous_stage) {
            std::snprintf(buffer, sizeof buffer,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\" "
                          "stroke-dasharray=\"3 2\"/>\n",
                          6.0, y - 1.5, label_width + strip + 140, y - 1.5);
            out += buffer;
        }
        previous_stage = stage;
        std::snprintf(buffer, sizeof buffer, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">",
                      label_width - 6, y + row - 3);
        out += buffer + html_escape(r.name) + "</text>\n";
        double x = label_width, used = 1;
        for (int a = 0; a < 5; ++a) {
            double f = std::stod(r.cells[2 + a]);
            used *= std::max(f, 1.0);
            if (f <= 1) continue;
            double w = strip * std::log2(f) / total;
            std::snprintf(buffer, sizeof buffer,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s = "
                          "%.0f</title></rect>\n",
                          x, y, w, row, chart_colour(a).c_str(), axes[a], f);
            out += buffer;
            x += w;
        }
        if (static_cast<double>(procs) > used) {
            double w = strip * std::log2(static_cast<double>(procs) / used) / total;
            std::snprintf(buffer, sizeof buffer,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"#cccccc\"><title>replicas</title></rect>\n",
                          x, y, w, row);
            out += buffer;
        }
        std::snprintf(buffer, sizeof buffer, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">", label_width + strip + 6,
                      y + row - 3);
        out += buffer + html_escape(r.cells[1] + (staged && !stage.empty() ? "  stage " + stage : "")) + "</text>\n";
    }
    double x = 10, y = height - 12;
    for (int a = 0; a < 6; ++a) {
        std::snprintf(buffer, sizeof buffer,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" "
                      "font-size=\"11\">%s</text>\n",
                      x, y - 9, a < 5 ? chart_colour(a).c_str() : "#cccccc", x + 14, y, names[a]);
        out += buffer;
        x += 24 + 6.5 * static_cast<double>(std::string(names[a]).size());
    }
    return figure(out + "</svg>\n", std::string("Each strip is one anchor layer; its full length is log2 P.") +
                                        (staged ? " Dashed lines: where the next pipeline stage (or device) starts." : ""));
}

std::pair<std::string, std::string> scaling_chart_svgs(const ReportTable& scaling) {
    XYChart time, efficiency;
    time.title = "Iteration time against P";
    time.x_label = efficiency.x_label = "processes P";
    time.y_label = "seconds per iteration";
    time.log_x = time.log_y = efficiency.log_x = true;
    time.x_format = efficiency.x_format = unit_format(Unit::count);
    time.y_format = unit_format(Unit::seconds);
    efficiency.title = "Parallel efficiency against P";
    efficiency.y_label = "parallel efficiency";
    efficiency.y_format = unit_format(Unit::fraction);
    int procs = scaling.column("procs"), family = scaling.column("family"), t = scaling.column("iteration_s"),
        e = scaling.column("efficiency_fraction");
    std::vector<std::string> families;
    for (const auto& r : scaling.rows) {
        std::string f = text_at(r, family);
        std::size_t i = 0;
        while (i < families.size() && families[i] != f) ++i;
        if (i == families.size()) {
            families.push_back(f);
            time.series.push_back({f, {}});
            efficiency.series.push_back({f, {}});
        }
        double p = number_at(r, procs);
        time.series[i].points.push_back({p, number_at(r, t)});
        if (r[e].is_number) efficiency.series[i].points.push_back({p, r[e].number});
        bool seen = false;
        for (double x : time.x_ticks) seen = seen || x == p;
        if (!seen) time.x_ticks.push_back(p);
    }
    efficiency.x_ticks = time.x_ticks;
    return {xy_chart_svg(time), xy_chart_svg(efficiency)};
}
std::string scaling_charts(const ReportTable& scaling) {
    auto [time, efficiency] = scaling_chart_svgs(scaling);
    return figure(time, "Each family's best member at every P (log-log).") +
           figure(efficiency, "Efficiency relative to the smallest P that has a feasible plan.");
}

std::string comparison_chart(const ReportTable& comparison) {
    XYChart chart;
    chart.title = "Predicted against simulated and measured";
    chart.x_label = "predicted seconds per iteration";
    chart.y_label = "simulated or measured seconds";
    chart.log_x = chart.log_y = true;
    chart.lines = false;
    chart.diagonal = true;
    chart.x_format = chart.y_format = unit_format(Unit::seconds);
    LineSeries simulated{"simulated", {}}, measured{"measured", {}};
    int p = comparison.column("predicted_s"), s = comparison.column("simulated_s"), m = comparison.column("measured_s");
    for (const auto& r : comparison.rows) {
        if (r[s].is_number) simulated.points.push_back({number_at(r, p), r[s].number});
        if (r[m].is_number) measured.points.push_back({number_at(r, p), r[m].number});
    }
    chart.series = {simulated, measured};
    return figure(xy_chart_svg(chart), "Dashed: perfect agreement (y = x).");
}

// The most loaded links' busy fraction as bars (the table below gives bytes and senders).
std::string link_chart(const ReportTable& links) {
    StackedBarChart chart;
    chart.title = "Most loaded links: busy fraction of the simulated iteration";
    chart.value_label = "fraction of the iteration the link carries data";
    chart.format = unit_format(Unit::fraction);
    BarSeries busy{"busy", {}};
    for (const auto& r : links.rows) {
        chart.categories.push_back(text_at(r, links.column("link")));
        busy.values.push_back(number_at(r, links.column("busy_fraction")));
    }
    chart.series.push_back(std::move(busy));
    chart.limit = 1;
    chart.limit_label = "the whole iteration";
    return figure(stacked_bar_svg(chart), "Links from the simulation's per-link report (dnnplan simulate --top-links).");
}

}  // namespace

std::vector<ReportChart> report_charts(const StrategyReport& report) {
    std::vector<ReportChart> charts;
    if (const auto* ranked = report.table("ranked"); ranked && !ranked->rows.empty())
        charts.push_back({"time", "Time per iteration by component", time_chart_svg(*ranked, report.chart_top)});
    if (!report.best_timeline.events.empty())
        charts.push_back({"timeline", "Predicted iteration of the best plan",
                          timeline_svg(report.best_timeline, "Predicted iteration of the best plan")});
    if (const auto* memory = report.table("memory"); memory && !memory->rows.empty())
        charts.push_back({"memory", "Memory per process against capacity", memory_chart_svg(*memory, report.chart_top)});
    if (const auto* scaling = report.table("scaling"); scaling && !scaling->rows.empty()) {
        auto [time, efficiency] = scaling_chart_svgs(*scaling);
        charts.push_back({"scaling", "Iteration time against P", time});
        charts.push_back({"efficiency", "Parallel efficiency against P", efficiency});
    }
    return charts;
}

std::string report_html(const StrategyReport& report) {
    std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                      html_escape(report.title) + "</title>\n<style>\n" + kStyle + "</style>\n</head>\n<body>\n";
    out += "<h1>" + html_escape(report.title) + "</h1>\n";
    out += report.best_label.empty() ? "<p>No strategy is feasible.</p>\n"
                                     : "<p>Best strategy: <b>" + html_escape(report.best_label) + "</b>.</p>\n";
    auto section = [&](const std::string& heading) { out += "<h2>" + html_escape(heading) + "</h2>\n"; };
    auto table = [&](const std::string& id) {
        if (const auto* t = report.table(id)) out += table_html(*t);
    };

    section("Inputs");
    table("inputs");
    table("cluster_sources");

    section("Strategies");
    if (const auto* ranked = report.table("ranked"); ranked && !ranked->rows.empty())
        out += time_chart(*ranked, report.chart_top);
    table("ranked");
    if (const auto* infeasible = report.table("infeasible"); infeasible && !infeasible->rows.empty())
        table("infeasible");

    if (const auto* layers = report.table("best_plan_layers")) {
        section("Best plan: " + report.best_label);
        if (!report.best_timeline.events.empty())
            out += figure(timeline_svg(report.best_timeline, "Predicted iteration of the best plan"),
                          "From the planner's own costs and schedule (" +
                              std::string(report.best_timeline.lanes > 1 ? "each stage runs its micro-batches in the "
                                                                          "schedule's order; grey lines: stage boundaries"
                                                                        : "forward layer by layer, backward in reverse, "
                                                                          "gradient sync on its own lane") +
                              "). dnnplan --trace FILE writes it in the Chrome trace format." +
                              (report.best_timeline.note.empty() ? "" : " Not drawn: " + report.best_timeline.note + "."));
        out += layout_picture(*layers, report.procs);
        table("best_plan_layers");
    }

    section("Memory");
    if (const auto* memory = report.table("memory"); memory && !memory->rows.empty())
        out += memory_chart(*memory, report.chart_top);
    table("memory");

    if (const auto* scaling = report.table("scaling")) {
        section("Scaling");
        out += scaling_charts(*scaling);
        table("scaling");
    }

    section("Predicted, simulated and measured");
    if (const auto* comparison = report.table("comparison")) {
        out += comparison_chart(*comparison);
        table("comparison");
        table("simulated_breakdown");
        if (const auto* links = report.table("simulated_links")) out += link_chart(*links);
        table("simulated_links");
        table("measured_breakdown");
    } else {
        out +=
            "<p>No simulation or measurement given. Pass the JSON of <code>dnnplan simulate --format json</code> "
            "with <code>--simulated FILE</code> and of <code>dnnplan validate --format json</code> with "
            "<code>--measured FILE</code> to put them beside the prediction.</p>\n";
    }

    section("Formulas and assumptions");
    out += "<ul>\n";
    for (const auto& paragraph : formulas_and_assumptions()) out += "<li>" + html_escape(paragraph) + "</li>\n";
    out += "</ul>\n</body>\n</html>\n";
    return out;
}

}  // namespace dnnplan::reports
