#include "sweep_table.hpp"

#include "reports/candidate_fields.hpp"
#include "reports/candidate_text.hpp"

#include <cstdio>
#include <map>

#include "common/units.hpp"
#include "reports/svg_chart.hpp"

#include "reports/plan_report.hpp"
#include "reports/text.hpp"

namespace dnnplan::reports {

const std::vector<std::string>& sweep_columns() {
    static const std::vector<std::string> columns{"network",
                                                  "cluster",
                                                  "procs",
                                                  "batch",
                                                  "dtype",
                                                  "status",
                                                  "best_strategy",
                                                  "best_grid",
                                                  "pr",
                                                  "pc",
                                                  "tensor",
                                                  "stages",
                                                  "replicas",
                                                  "micro_batches",
                                                  "micro_batch_size",
                                                  "schedule",
                                                  "zero",
                                                  "recompute",
                                                  "sequence_parallel",
                                                  "iteration_s",
                                                  "fwd_compute_s",
                                                  "bwd_compute_s",
                                                  "all_reduce_s",
                                                  "all_gather_s",
                                                  "reduce_scatter_s",
                                                  "all_to_all_s",
                                                  "halo_s",
                                                  "point_to_point_s",
                                                  "redistribution_s",
                                                  "sync_contention_s",
                                                  "sync_total_s",
                                                  "sync_exposed_s",
                                                  "bubble_s",
                                                  "optimizer_step_s",
                                                  "memory_bytes",
                                                  "memory_capacity_bytes",
                                                  "batch_iteration_s",
                                                  "speedup_vs_batch_x",
                                                  "feasible_strategies",
                                                  "infeasible_strategies",
                                                  "reason"};
    return columns;
}

namespace {
Json base_row(const std::string& network, const std::string& cluster, std::int64_t procs) {
    Json row = Json::object();
    for (const auto& c : sweep_columns()) row[c] = nullptr;
    row["network"] = network;
    row["cluster"] = cluster;
    row["procs"] = procs;
    row["reason"] = "";
    return row;
}
}  // namespace

Json sweep_row(const std::string& network, const std::string& cluster, std::int64_t procs,
               const planner::PlannerOptions& options, const planner::SearchResult& result) {
    Json row = base_row(network, cluster, procs);
    row["batch"] = options.batch;
    row["dtype"] = to_string(options.dtype);
    row["feasible_strategies"] = result.feasible_count;
    row["infeasible_strategies"] = result.infeasible_count;
    const auto* batch = result.find(planner::Strategy::batch);
    if (batch && batch->plan.cost.feasible) row["batch_iteration_s"] = batch->plan.cost.iteration_s;
    const auto* best = result.best();
    if (!best) {
        row["status"] = "infeasible";
        row["reason"] = result.ranked.empty() ? "no candidate" : result.ranked.front().plan.cost.reason;
        return row;
    }
    const auto& k = best->plan.cost;
    row["status"] = "ok";
    row["best_strategy"] = planner::to_string(best->strategy);
    row["best_grid"] = best->label;
    // The configuration as named fields (reports/candidate_fields.hpp); null where it does not apply.
    const Json config = candidate_config(*best, options.batch);
    for (const auto& [key, value] : config.items())
        if (key != "strategy") row[key] = value;
    row["iteration_s"] = k.iteration_s;
    row["fwd_compute_s"] = k.fwd_compute_s;
    row["bwd_compute_s"] = k.bwd_compute_s;
    row["all_reduce_s"] = k.comm(planner::CommKind::all_reduce);
    row["all_gather_s"] = k.comm(planner::CommKind::all_gather);
    row["reduce_scatter_s"] = k.comm(planner::CommKind::reduce_scatter);
    row["all_to_all_s"] = k.comm(planner::CommKind::all_to_all);
    row["halo_s"] = k.comm(planner::CommKind::halo);
    row["point_to_point_s"] = k.comm(planner::CommKind::point_to_point);
    row["redistribution_s"] = k.comm(planner::CommKind::redistribution);
    row["sync_contention_s"] = k.sync_contention_s;
    row["sync_total_s"] = k.sync_total_s;
    row["sync_exposed_s"] = k.sync_exposed_s;
    row["bubble_s"] = k.bubble_s;
    row["optimizer_step_s"] = k.optimizer_step_s;
    row["memory_bytes"] = k.memory_bytes;
    row["memory_capacity_bytes"] = k.memory_capacity_bytes;
    if (batch && batch->plan.cost.feasible) row["speedup_vs_batch_x"] = batch->plan.cost.iteration_s / k.iteration_s;
    return row;
}

Json invalid_sweep_row(const std::string& network, const std::string& cluster, std::int64_t procs,
                       const std::string& reason) {
    Json row = base_row(network, cluster, procs);
    row["status"] = "invalid";
    row["reason"] = reason;
    return row;
}

std::string sweep_csv(const std::vector<Json>& rows) {
    std::string out = csv_row(sweep_columns());
    for (const auto& row : rows) {
        std::vector<std::string> fields;
        for (const auto& c : sweep_columns()) {
            const Json& v = row.contains(c) ? row.at(c) : Json(nullptr);
            if (v.is_null()) {
                fields.emplace_back();
            } else if (v.is_string()) {
                fields.push_back(v.get<std::string>());
            } else if (v.is_boolean()) {
                fields.emplace_back(v.get<bool>() ? "true" : "false");
            } else if (v.is_number_integer()) {
                fields.push_back(std::to_string(v.get<long long>()));
            } else {
                char buffer[40];
                std::snprintf(buffer, sizeof buffer, "%.10g", v.get<double>());
                fields.emplace_back(buffer);
            }
        }
        out += csv_row(fields);
    }
    return out;
}

std::string sweep_json(const std::vector<Json>& rows) {
    Json out{{"format", "dnnplan-sweep"}, {"version", 1}, {"columns", sweep_columns()}, {"rows", rows}};
    return json_text(out, 2) + "\n";
}

namespace {
std::string text_of(const Json& row, const char* key) {
    const Json& v = row.contains(key) ? row.at(key) : Json(nullptr);
    return v.is_string() ? v.get<std::string>() : "";
}
double number_of(const Json& row, const char* key) {
    const Json& v = row.contains(key) ? row.at(key) : Json(nullptr);
    return v.is_number() ? v.get<double>() : 0;
}
bool has_number(const Json& row, const char* key) { return row.contains(key) && row.at(key).is_number(); }

std::vector<std::string> summary_cells(const Json& row) {
    std::string status = text_of(row, "status");
    bool ok = status == "ok";
    std::string best = ok ? text_of(row, "best_strategy") : text_of(row, "reason");
    if (ok && !text_of(row, "best_grid").empty()) best += " " + text_of(row, "best_grid");
    char speedup[32] = "-";
    if (has_number(row, "speedup_vs_batch_x")) std::snprintf(speedup, sizeof speedup, "%.2fx", number_of(row, "speedup_vs_batch_x"));
    return {text_of(row, "network"),
            text_of(row, "cluster"),
            std::to_string(static_cast<long long>(number_of(row, "procs"))),
            status,
            ok ? human_seconds(number_of(row, "iteration_s")) : "-",
            speedup,
            ok ? human_bytes(number_of(row, "memory_bytes")) : "-",
            best};
}
const std::vector<std::string> kSummaryHeader{"network", "cluster",   "P",      "status",
                                              "iteration", "vs batch", "memory", "best plan (or why none)"};
}  // namespace

std::string sweep_summary(const std::vector<Json>& rows) {
    int ok = 0, infeasible = 0, invalid = 0;
    for (const auto& r : rows) {
        std::string status = text_of(r, "status");
        (status == "ok" ? ok : status == "infeasible" ? infeasible : invalid)++;
    }
    return std::to_string(rows.size()) + " configurations: " + std::to_string(ok) + " ok, " +
           std::to_string(infeasible) + " infeasible, " + std::to_string(invalid) + " invalid";
}

std::string sweep_text(const std::vector<Json>& rows, int width) {
    TextTable table;
    table.header = kSummaryHeader;
    for (const auto& r : rows) {
        std::vector<std::string> cells = summary_cells(r);
        for (auto& c : cells) c = terminal_safe(c);
        table.rows.push_back(std::move(cells));
    }
    const std::string rendered = table.render();
    // The best plan's label is the last column: past `width` it continues on the next lines,
    // under itself (the label of a 3-D plan is 80 characters).
    const std::size_t last = rendered.find(kSummaryHeader.back());
    if (width <= 0 || last == std::string::npos || last + 20 > static_cast<std::size_t>(width))
        return rendered + sweep_summary(rows) + "\n";
    std::string out;
    for (std::size_t start = 0, end; (end = rendered.find('\n', start)) != std::string::npos; start = end + 1) {
        const std::string line = rendered.substr(start, end - start);
        if (line.size() <= static_cast<std::size_t>(width))
            out += line + "\n";
        else if (line.find_first_not_of('-') == std::string::npos)
            out += std::string(static_cast<std::size_t>(width), '-') + "\n";
        else {
            const std::string cell = wrap(line.substr(last), width - static_cast<int>(last), 0);
            std::size_t from = 0;
            for (std::size_t nl; (nl = cell.find('\n', from)) != std::string::npos; from = nl + 1)
                out += (from == 0 ? line.substr(0, last) : std::string(last, ' ')) + cell.substr(from, nl + 1 - from);
        }
    }
    return out + sweep_summary(rows) + "\n";
}

std::string sweep_html(const std::vector<Json>& rows) {
    std::string out =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>dnnplan sweep</title>\n"
        "<style>\nbody{font-family:sans-serif;margin:2em auto;max-width:1200px;color:#111;background:#fff;padding:0 1em}\n"
        "h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:2em}svg{max-width:100%;height:auto}\n"
        "table{border-collapse:collapse;font-size:0.8em;width:100%}th,td{border:1px solid #bbb;padding:2px 5px}"
        "th{background:#eee}td:nth-child(n+3):nth-child(-n+7){text-align:right;white-space:nowrap}"
        "td:last-child{overflow-wrap:anywhere}\n"
        "figure{display:inline-block;margin:0.5em;width:560px;max-width:100%}"
        "@media print{body{margin:0;max-width:none}figure{page-break-inside:avoid}}\n</style>\n</head>\n<body>\n"
        "<h1>dnnplan sweep</h1>\n<p>" + html_escape(sweep_summary(rows)) + ".</p>\n<h2>Scaling</h2>\n";
    // One pair of charts per (network, cluster), in the sweep's order.
    std::vector<std::pair<std::string, std::string>> groups;
    std::map<std::pair<std::string, std::string>, std::vector<const Json*>> members;
    for (const auto& r : rows) {
        auto key = std::make_pair(text_of(r, "network"), text_of(r, "cluster"));
        if (members[key].empty()) groups.push_back(key);
        members[key].push_back(&r);
    }
    for (const auto& key : groups) {
        XYChart time, efficiency;
        time.title = key.first + " on " + key.second + ": iteration time";
        efficiency.title = key.first + " on " + key.second + ": parallel efficiency";
        time.x_label = efficiency.x_label = "processes P";
        time.y_label = "seconds per iteration";
        efficiency.y_label = "efficiency (vs smallest feasible P)";
        time.log_x = time.log_y = efficiency.log_x = true;
        time.x_format = efficiency.x_format = [](double v) { return human_count(v); };
        time.y_format = [](double v) { return human_seconds(v); };
        efficiency.y_format = [](double v) {
            char b[16];
            std::snprintf(b, sizeof b, "%.0f%%", 100 * v);
            return std::string(b);
        };
        LineSeries best{"best plan", {}}, batch{"pure batch", {}}, eff{"best plan", {}};
        double base = 0;  // P x T at the smallest feasible P: efficiency = base / (P T)
        for (const Json* r : members[key]) {
            double p = number_of(*r, "procs");
            if (text_of(*r, "status") == "ok") {
                double t = number_of(*r, "iteration_s");
                best.points.push_back({p, t});
                if (base == 0) base = p * t;
                eff.points.push_back({p, base / (p * t)});
                time.x_ticks.push_back(p);
            }
            if (has_number(*r, "batch_iteration_s")) batch.points.push_back({p, number_of(*r, "batch_iteration_s")});
        }
        if (best.points.empty()) continue;
        efficiency.x_ticks = time.x_ticks;
        time.series = {best, batch};
        efficiency.series = {eff};
        out += "<figure>" + xy_chart_svg(time) + "</figure>\n<figure>" + xy_chart_svg(efficiency) + "</figure>\n";
    }
    out += "<h2>Every configuration</h2>\n<table>\n<thead><tr>";
    for (const auto& h : kSummaryHeader) out += "<th>" + html_escape(h) + "</th>";
    out += "</tr></thead>\n<tbody>\n";
    for (const auto& r : rows) {
        out += "<tr>";
        for (const auto& c : summary_cells(r)) out += "<td>" + html_escape(c) + "</td>";
        out += "</tr>\n";
    }
    return out + "</tbody>\n</table>\n</body>\n</html>\n";
}

}  // namespace dnnplan::reports
