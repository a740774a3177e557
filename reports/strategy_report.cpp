#include "strategy_report.hpp"

#include "reports/candidate_fields.hpp"
#include "reports/candidate_text.hpp"

#include <cmath>
#include <cstdio>
#include <map>

#include "common/units.hpp"
#include "planner/plan.hpp"
#include "planner/software_options.hpp"
#include "reports/text.hpp"

namespace dnnplan::reports {

Cell text_cell(std::string text, bool user_text) {
    Cell c;
    c.text = std::move(text);
    c.user_text = user_text;
    return c;
}
Cell number_cell(double value, Unit unit) {
    Cell c;
    c.number = value;
    c.is_number = true;
    c.unit = unit;
    return c;
}
Cell empty_cell() {
    Cell c;
    c.empty = true;
    return c;
}

int ReportTable::column(const std::string& key) const {
    for (std::size_t i = 0; i < columns.size(); ++i)
        if (columns[i].key == key) return static_cast<int>(i);
    return -1;
}

const ReportTable* StrategyReport::table(const std::string& id) const {
    for (const auto& t : tables)
        if (t.id == id) return &t;
    return nullptr;
}

std::string format_value(double value, Unit unit) {
    char buffer[64];
    switch (unit) {
        case Unit::seconds:
            return human_seconds(value);
        case Unit::bytes:
            return human_bytes(value);
        case Unit::ratio:
            std::snprintf(buffer, sizeof buffer, "%.2fx", value);
            return buffer;
        case Unit::fraction:  // small shares keep two significant digits rather than read "0.0%"
            std::snprintf(buffer, sizeof buffer, value != 0 && std::abs(value) < 0.001 ? "%.2g%%" : "%.1f%%",
                          100 * value);
            return buffer;
        case Unit::flops:
            return human_count(value, "FLOP");
        case Unit::flops_per_s:
            return human_count(value, "FLOP/s");
        case Unit::bytes_per_s:
            return human_count(value, "B/s");
        case Unit::large_count:
            return human_count(value);
        case Unit::count:
        case Unit::none:
            if (std::abs(value) < 1e15 && value == std::floor(value)) {
                std::snprintf(buffer, sizeof buffer, "%.0f", value);
                return buffer;
            }
            std::snprintf(buffer, sizeof buffer, "%.6g", value);
            return buffer;
    }
    return "";
}

std::string format_cell_number(const Cell& cell, const Column& column) {
    return format_value(cell.number, cell.unit != Unit::none ? cell.unit : column.unit);
}

std::vector<std::int64_t> scaling_procs(std::int64_t procs) {
    std::vector<std::int64_t> out;
    for (std::int64_t p = 1; p < procs; p *= 2) out.push_back(p);
    out.push_back(procs);
    return out;
}

namespace {


std::vector<Cell> time_cells(const planner::CostBreakdown& k) {
    std::vector<Cell> cells;
    for (const auto& c : time_components()) cells.push_back(number_cell(c.of(k)));
    return cells;
}

ReportTable inputs_table(const ReportInput& in) {
    const auto& model = *in.model;
    const auto& net = model.network();
    const auto& cluster = model.cluster();
    const auto& o = model.options();
    networks::NetworkTotals t = networks::totals(net, o.batch);
    // Each value carries its unit, so HTML and Markdown show "7.9 TFLOP"; the unit column is for
    // CSV and JSON, which keep the exact number.
    ReportTable table{"inputs",
                      "Inputs",
                      "Network totals are for the whole batch of one iteration.",
                      {{"item", "item", Unit::none}, {"value", "value", Unit::none}, {"unit", "unit", Unit::none, true}},
                      {}};
    auto text = [&](const std::string& item, const std::string& value, bool user = false) {
        table.rows.push_back({text_cell(item), text_cell(value, user), text_cell("")});
    };
    auto number = [&](const std::string& item, double value, Unit unit, const std::string& unit_name) {
        table.rows.push_back({text_cell(item), number_cell(value, unit), text_cell(unit_name)});
    };
    text("network", net.name, true);
    text("network source", in.network_source, true);
    text("network description", net.description, true);
    number("layers", static_cast<double>(net.layers.size() - 1), Unit::count, "");
    number("parameters", static_cast<double>(t.params), Unit::large_count, "");
    number("forward FLOP", static_cast<double>(t.fwd_flops), Unit::flops, "FLOP");
    number("backward FLOP (input gradient)", static_cast<double>(t.bwd_input_flops), Unit::flops, "FLOP");
    number("backward FLOP (weight gradient)", static_cast<double>(t.bwd_weight_flops), Unit::flops, "FLOP");
    number("activations", static_cast<double>(t.activation_bytes), Unit::bytes, "bytes");
    number("weights", static_cast<double>(t.weight_bytes), Unit::bytes, "bytes");
    number("batch", static_cast<double>(o.batch), Unit::count, "samples");
    text("dtype", to_string(o.dtype));
    text("optimizer", planner::to_string(o.optimizer));
    text("gradient sync overlapped with backward", o.overlap_sync ? "yes" : "no");
    text("roofline compute", o.roofline ? "yes" : "no");
    text("compute model", planner::to_string(o.compute));
    // The training software's behaviour the plan is scored with (planner/software_options.hpp),
    // decided on the options' enums; the names are the CLI's and the plan file's spellings.
    const planner::GradAccumulation accumulation =
        o.grad_accumulation.value_or(planner::default_grad_accumulation(o.dtype));
    text("gradient accumulation", planner::to_string(accumulation) +
                                      (o.grad_accumulation ? "" : " (default for " + to_string(o.dtype) + ")"));
    text("mixed-precision optimizer step", o.dtype == DType::fp32
                                               ? "not used (fp32: one fused pass)"
                                               : planner::to_string(o.mixed_precision_step));
    text("pipeline boundary sends", planner::to_string(o.boundary_send));
    number("processes P", static_cast<double>(o.procs), Unit::count, "");
    text("cluster", cluster.name, true);
    text("cluster source", in.cluster_source, true);
    text("cluster description", cluster.description, true);
    number("nodes", static_cast<double>(cluster.nodes), Unit::count, "");
    number("devices per node", cluster.devices_per_node, Unit::count, "");
    text("device", cluster.device.name, true);
    number("peak rate (" + to_string(o.dtype) + ")", cluster.peak_flops(o.dtype), Unit::flops_per_s, "FLOP/s");
    number("achievable fraction of peak", cluster.device.achievable_fraction, Unit::fraction, "");
    number("device memory", static_cast<double>(cluster.device.memory_bytes), Unit::bytes, "bytes");
    number("reserved by driver and framework", static_cast<double>(cluster.device.reserved_bytes), Unit::bytes,
           "bytes");
    number("memory bandwidth", cluster.device.memory_bandwidth_Bps, Unit::bytes_per_s, "B/s");
    // A node of one device has no intra-node link (its file may still give one; it is never used).
    if (cluster.devices_per_node > 1) {
        number("intra-node bandwidth", cluster.intra_node.bandwidth_Bps, Unit::bytes_per_s, "B/s");
        number("intra-node latency", cluster.intra_node.latency_s, Unit::seconds, "s");
    }
    number("inter-node bandwidth per device", cluster.inter_node.bandwidth_Bps, Unit::bytes_per_s, "B/s");
    number("inter-node latency", cluster.inter_node.latency_s, Unit::seconds, "s");
    text("topology", clusters::to_string(cluster.topology.kind));
    return table;
}

ReportTable sources_table(const clusters::Cluster& cluster) {
    ReportTable table{
        "cluster_sources",
        "Cluster numbers and their sources",
        "Every number of the cluster file given with a source, as the file states it.",
        {{"field", "field", Unit::none}, {"value", "value", Unit::none}, {"source", "source", Unit::none}},
        {}};
    Json spec = clusters::to_json(cluster);
    for (const auto& [pointer, source] : cluster.sources) {
        Cell value = empty_cell();
        Json::json_pointer ptr(pointer);
        if (spec.contains(ptr)) {
            const Json& v = spec.at(ptr);
            const Json& x = v.is_object() && v.contains("value") ? v.at("value") : v;
            if (x.is_number())
                value = number_cell(x.get<double>());
            else if (x.is_string())
                value = text_cell(x.get<std::string>(), true);
        }
        table.rows.push_back({text_cell(pointer, true), value, text_cell(source, true)});
    }
    return table;
}

ReportTable ranked_table(const planner::SearchResult& r, std::int64_t global_batch) {
    ReportTable table{"ranked",
                      "Ranked strategies",
                      "Feasible strategies, fastest first. The time columns add up to the iteration time.",
                      {{"rank", "#", Unit::count},
                       {"strategy", "strategy", Unit::none},
                       {"pr", "Pr", Unit::count},
                       {"pc", "Pc", Unit::count}},
                      {}};
    // The family and its configuration as named fields (CSV and JSON only; people read the label).
    for (const auto& key : config_keys()) {
        if (key == "pr" || key == "pc") continue;
        Column column{key == "strategy" ? "family" : key, key, key == "strategy" || key == "schedule" || key == "zero" ||
                                                                   key == "recompute" || key == "sequence_parallel"
                                                               ? Unit::none
                                                               : Unit::count};
        column.data_only = true;
        table.columns.push_back(column);
    }
    table.columns.push_back({"iteration_s", "iteration", Unit::seconds});
    for (const auto& c : time_components()) table.columns.push_back({c.key, c.label, Unit::seconds});
    table.columns.push_back({"sync_total_s", "gradient sync (all)", Unit::seconds});
    table.columns.push_back({"memory_bytes", "memory/process", Unit::bytes});
    table.columns.push_back({"speedup_vs_batch_x", "vs pure batch", Unit::ratio});
    const auto* batch = r.find(planner::Strategy::batch);
    double batch_time = batch && batch->plan.cost.feasible ? batch->plan.cost.iteration_s : 0;
    int rank = 0;
    for (const auto& c : r.ranked) {
        const auto& k = c.plan.cost;
        if (!k.feasible) continue;
        // Pr and Pc only mean something for the grid families; the others leave them empty.
        Json config = candidate_config(c, global_batch);
        auto cell_of = [&](const std::string& key) {
            const Json& v = config.at(key);
            if (v.is_null()) return empty_cell();
            if (v.is_boolean()) return text_cell(v.get<bool>() ? "true" : "false");
            if (v.is_string()) return text_cell(v.get<std::string>());
            return number_cell(v.get<double>());
        };
        std::vector<Cell> row{number_cell(++rank), text_cell(candidate_label(c)), cell_of("pr"), cell_of("pc")};
        for (const auto& key : config_keys())
            if (key != "pr" && key != "pc") row.push_back(cell_of(key));
        row.push_back(number_cell(k.iteration_s));
        for (auto& cell : time_cells(k)) row.push_back(cell);
        row.push_back(number_cell(k.sync_total_s));
        row.push_back(number_cell(k.memory_bytes));
        row.push_back(batch_time > 0 ? number_cell(batch_time / k.iteration_s) : empty_cell());
        table.rows.push_back(std::move(row));
    }
    return table;
}

ReportTable infeasible_table(const planner::SearchResult& r) {
    ReportTable table{"infeasible",
                      "Infeasible strategies",
                      "Strategies the model rejects, with the reason.",
                      {{"strategy", "strategy", Unit::none}, {"reason", "reason", Unit::none}},
                      {}};
    for (const auto& c : r.ranked)
        if (!c.plan.cost.feasible) table.rows.push_back({text_cell(candidate_label(c)), text_cell(c.plan.cost.reason, true)});
    return table;
}

// The pipeline stage (or graph-partition device) of every layer; empty when the plan has none.
std::vector<int> stages_of(const planner::PipelineSpec& pipeline, std::size_t layers) {
    std::vector<int> out;
    if (!pipeline.active()) return out;
    if (!pipeline.device_of.empty()) return pipeline.device_of;
    out.assign(layers, 0);
    for (std::size_t i = 0; i < layers; ++i)
        for (std::size_t s = 0; s < pipeline.stage_first.size(); ++s)
            if (pipeline.stage_first[s] <= static_cast<int>(i)) out[i] = static_cast<int>(s);
    return out;
}

ReportTable layers_table(const planner::CostModel& model, const planner::Candidate& best) {
    const planner::ScoredPlan& plan = best.plan;
    ReportTable table{"best_plan_layers",
                      "Best plan, layer by layer",
                      "Anchor layers (convolution, linear, attention, embedding) choose a layout; the others "
                      "follow their input and are listed only when they hold weights or communicate.",
                      {{"layer", "layer", Unit::none},
                       {"kind", "kind", Unit::none},
                       {"stage", "stage", Unit::count},
                       {"layout", "layout", Unit::none},
                       {"n", "n", Unit::count},
                       {"co", "co", Unit::count},
                       {"ci", "ci", Unit::count},
                       {"h", "h", Unit::count},
                       {"w", "w", Unit::count},
                       {"fwd_compute_s", "fwd compute", Unit::seconds},
                       {"bwd_compute_s", "bwd compute", Unit::seconds},
                       {"fwd_comm_s", "fwd comm", Unit::seconds},
                       {"bwd_comm_s", "bwd comm", Unit::seconds},
                       {"sync_s", "grad sync", Unit::seconds},
                       {"activation_bytes", "activations", Unit::bytes},
                       {"weight_bytes", "weights", Unit::bytes}},
                      {}};
    const auto& layers = model.network().layers;
    std::vector<int> stage = stages_of(best.pipeline, layers.size());
    if (!stage.empty())
        table.note += " Pipeline and graph-partition plans: layouts are within the layer's stage (or device).";
    for (std::size_t i = 1; i < layers.size() && i < plan.layers.size(); ++i) {
        const auto& lc = plan.layers[i];
        const auto& layer = layers[i];
        bool anchor = model.is_anchor(static_cast<int>(i));
        if (!anchor && layer.params == 0 && lc.fwd_comm_s + lc.bwd_comm_s == 0) continue;
        std::string kind =
            layer.kind == networks::LayerKind::activation ? layer.attrs.function : networks::to_string(layer.kind);
        const auto& l = lc.layout;
        table.rows.push_back({text_cell(layer.name, true), text_cell(kind, true),
                              i < stage.size() ? number_cell(stage[i]) : empty_cell(),
                              text_cell(anchor ? planner::to_string(l) : "(follows)"), number_cell(l.n),
                              number_cell(l.co), number_cell(l.ci), number_cell(l.h), number_cell(l.w),
                              number_cell(lc.fwd_compute_s), number_cell(lc.bwd_compute_s), number_cell(lc.fwd_comm_s),
                              number_cell(lc.bwd_comm_s), number_cell(lc.sync_s), number_cell(lc.activation_bytes),
                              number_cell(lc.weight_bytes)});
    }
    return table;
}

ReportTable memory_table(const planner::SearchResult& r) {
    ReportTable table{"memory",
                      "Memory per process",
                      "Feasible strategies in rank order; capacity is the device memory of the cluster.",
                      {{"strategy", "strategy", Unit::none},
                       {"weights_bytes", "weights", Unit::bytes},
                       {"gradients_bytes", "gradients", Unit::bytes},
                       {"optimizer_bytes", "optimizer", Unit::bytes},
                       {"activations_bytes", "activations", Unit::bytes},
                       {"buffers_bytes", "buffers", Unit::bytes},
                       {"memory_bytes", "total", Unit::bytes},
                       {"memory_capacity_bytes", "capacity", Unit::bytes},
                       {"capacity_used_fraction", "of capacity", Unit::fraction}},
                      {}};
    for (const auto& c : r.ranked) {
        const auto& k = c.plan.cost;
        if (!k.feasible) continue;
        table.rows.push_back(
            {text_cell(candidate_label(c)), number_cell(k.weights_bytes), number_cell(k.gradients_bytes),
             number_cell(k.optimizer_bytes), number_cell(k.activations_bytes), number_cell(k.buffers_bytes),
             number_cell(k.memory_bytes), number_cell(k.memory_capacity_bytes),
             k.memory_capacity_bytes > 0 ? number_cell(k.memory_bytes / k.memory_capacity_bytes) : empty_cell()});
    }
    return table;
}

// Per family (strategy name), its best feasible member at every P of the study. Efficiency is
// P0 T(P0) / (P T(P)), T(P0) the best plan at the smallest P that has a feasible plan.
ReportTable scaling_table(const std::vector<ScalingRun>& runs) {
    ReportTable table{"scaling",
                      "Scaling",
                      "Each family's best feasible member at every P, same global batch (strong scaling). "
                      "Parallel efficiency = P0 T(P0) / (P T(P)), with T(P0) the best plan at the smallest P "
                      "that has a feasible plan.",
                      {{"procs", "P", Unit::count},
                       {"family", "family", Unit::none},
                       {"strategy", "best member", Unit::none},
                       {"iteration_s", "iteration", Unit::seconds},
                       {"efficiency_fraction", "parallel efficiency", Unit::fraction}},
                      {}};
    double reference = 0;  // P0 * T(P0)
    for (const auto& run : runs) {
        const auto* best = run.result.best();
        if (reference == 0 && best) reference = static_cast<double>(run.procs) * best->plan.cost.iteration_s;
        std::vector<std::string> order;
        std::map<std::string, const planner::Candidate*> family_best;
        for (const auto& c : run.result.ranked) {  // ranked: the first feasible of a family is its best
            const std::string family = planner::to_string(c.strategy);
            if (!family_best.count(family)) order.push_back(family);
            auto& slot = family_best[family];
            if (c.plan.cost.feasible && !slot) slot = &c;
        }
        for (const auto& family : order) {
            const auto* c = family_best[family];
            if (!c) continue;
            double t = c->plan.cost.iteration_s;
            table.rows.push_back({number_cell(static_cast<double>(run.procs)), text_cell(family), text_cell(candidate_label(*c)),
                                  number_cell(t),
                                  reference > 0 && t > 0 ? number_cell(reference / (static_cast<double>(run.procs) * t))
                                                         : empty_cell()});
        }
    }
    return table;
}

Cell optional_cell(const std::optional<double>& v) { return v ? number_cell(*v) : empty_cell(); }

void comparison_tables(const ReportInput& in, std::vector<ReportTable>& tables) {
    if (!in.simulated && !in.measured) return;
    ReportTable table{"comparison",
                      "Predicted, simulated and measured",
                      "Iteration times as the result files give them; relative differences as the files state them.",
                      {{"strategy", "strategy", Unit::none},
                       {"predicted_s", "predicted", Unit::seconds},
                       {"simulated_s", "simulated", Unit::seconds},
                       {"simulated_relative_difference", "sim. rel. diff.", Unit::fraction},
                       {"measured_s", "measured", Unit::seconds},
                       {"measured_relative_error", "meas. rel. error", Unit::fraction}},
                      {}};
    auto name = [](const std::string& strategy, const std::string& grid) {
        if (strategy.empty()) return std::string("(simulated plan)");
        return grid.empty() ? strategy : strategy + " " + grid;
    };
    std::vector<std::string> order;
    std::map<std::string, std::vector<Cell>> rows;
    auto row_for = [&](const std::string& key, double predicted) -> std::vector<Cell>& {
        if (!rows.count(key)) {
            order.push_back(key);
            rows[key] = {text_cell(key, true), number_cell(predicted), empty_cell(),
                         empty_cell(),         empty_cell(),           empty_cell()};
        }
        return rows[key];
    };
    if (in.simulated) {
        const auto& s = *in.simulated;
        auto& row = row_for(name(s.strategy, s.grid), s.predicted_s);
        row[2] = number_cell(s.simulated_s);
        row[3] = optional_cell(s.relative_difference);
    }
    if (in.measured)
        for (const auto& m : in.measured->plans) {
            auto& row = row_for(name(m.strategy, m.grid), m.predicted_s);
            row[4] = number_cell(m.measured_s);
            row[5] = optional_cell(m.relative_error);
        }
    for (const auto& key : order) table.rows.push_back(rows[key]);
    tables.push_back(std::move(table));
    if (in.simulated && !in.simulated->links.empty()) {  // where the contention is (issue 20, item 3)
        ReportTable links{"simulated_links",
                          "Most loaded links (simulated)",
                          "Bytes per iteration, the fraction of the iteration the link was busy, its utilisation "
                          "(bytes over bandwidth x iteration) and the collectives that put the most bytes on it.",
                          {{"link", "link", Unit::none},
                           {"bytes", "bytes", Unit::bytes},
                           {"busy_fraction", "busy", Unit::fraction},
                           {"utilisation_fraction", "utilisation", Unit::fraction},
                           {"senders", "crossed by", Unit::none}},
                          {}};
        for (const auto& l : in.simulated->links)
            links.rows.push_back({text_cell(l.link, true), number_cell(l.bytes), number_cell(l.busy_fraction),
                                  number_cell(l.utilisation), text_cell(l.senders, true)});
        tables.push_back(std::move(links));
    }

    if (in.simulated && !in.simulated->breakdown.empty()) {
        ReportTable b{"simulated_breakdown",
                      "Predicted beside simulated, by component",
                      "",
                      {{"component", "component", Unit::none},
                       {"predicted_s", "predicted", Unit::seconds},
                       {"simulated_s", "simulated", Unit::seconds}},
                      {}};
        for (const auto& p : in.simulated->breakdown)
            b.rows.push_back({text_cell(p.key, true), number_cell(p.predicted), number_cell(p.other)});
        tables.push_back(std::move(b));
    }
    if (in.measured) {
        ReportTable b{"measured_breakdown",
                      "Predicted beside measured, by component",
                      "",
                      {{"strategy", "strategy", Unit::none},
                       {"component", "component", Unit::none},
                       {"predicted_s", "predicted", Unit::seconds},
                       {"measured_s", "measured", Unit::seconds}},
                      {}};
        for (const auto& m : in.measured->plans)
            for (const auto& p : m.breakdown)
                b.rows.push_back({text_cell(name(m.strategy, m.grid), true), text_cell(p.key, true),
                                  number_cell(p.predicted), number_cell(p.other)});
        if (!b.rows.empty()) tables.push_back(std::move(b));
    }
}

}  // namespace

StrategyReport build_strategy_report(const ReportInput& in) {
    const auto& model = *in.model;
    const auto& o = model.options();
    StrategyReport report;
    report.chart_top = in.chart_top;
    report.procs = o.procs;
    report.title = "dnnplan report: " + model.network().name + " on " + model.cluster().name +
                   ", P = " + std::to_string(o.procs) + ", batch " + std::to_string(o.batch);
    if (const auto* best = in.result->best()) {
        report.best_label = candidate_label(*best);
        report.best_timeline = predicted_timeline(model, *best);  // the Gantt chart (reports/predicted_timeline.hpp)
    }
    report.tables.push_back(inputs_table(in));
    report.tables.push_back(sources_table(model.cluster()));
    report.tables.push_back(ranked_table(*in.result, o.batch));
    // No empty table: the HTML and Markdown forms leave it out, so the JSON and CSV do too.
    if (ReportTable infeasible = infeasible_table(*in.result); !infeasible.rows.empty())
        report.tables.push_back(std::move(infeasible));
    if (const auto* best = in.result->best()) report.tables.push_back(layers_table(model, *best));
    report.tables.push_back(memory_table(*in.result));
    if (!in.scaling.empty()) report.tables.push_back(scaling_table(in.scaling));
    comparison_tables(in, report.tables);
    return report;
}

// JSON: {"title", "best", "tables": {id: {"title", "columns": [keys], "rows": [{key: value}]}}}.
std::string report_json(const StrategyReport& report) {
    Json tables = Json::object();
    for (const auto& t : report.tables) {
        Json columns = Json::array(), rows = Json::array();
        for (const auto& c : t.columns) columns.push_back(c.key);
        for (const auto& row : t.rows) {
            Json r = Json::object();
            for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i) {
                const Cell& cell = row[i];
                r[t.columns[i].key] = cell.empty ? Json(nullptr) : cell.is_number ? Json(cell.number) : Json(cell.text);
            }
            rows.push_back(std::move(r));
        }
        tables[t.id] = Json{{"title", t.title}, {"columns", columns}, {"rows", rows}};
    }
    Json out{{"format", "dnnplan-report"},
             {"version", 1},
             {"title", report.title},
             {"best", report.best_label},
             {"tables", tables}};
    return json_text(out, 2) + "\n";
}

// CSV: one block per table, separated by an empty line; the first column names the table so a
// block can be selected with grep or a spreadsheet filter. Numbers keep 17 significant digits.
std::string report_csv(const StrategyReport& report) {
    std::string out;
    for (const auto& t : report.tables) {
        if (!out.empty()) out += "\n";
        std::vector<std::string> header{"table"};
        for (const auto& c : t.columns) header.push_back(c.key);
        out += csv_row(header);
        for (const auto& row : t.rows) {
            std::vector<std::string> fields{t.id};
            for (const auto& cell : row) {
                if (cell.empty) {
                    fields.emplace_back();
                } else if (cell.is_number) {
                    char buffer[40];
                    std::snprintf(buffer, sizeof buffer, "%.17g", cell.number);
                    fields.emplace_back(buffer);
                } else {
                    fields.push_back(cell.text);
                }
            }
            out += csv_row(fields);
        }
    }
    return out;
}

}  // namespace dnnplan::reports
