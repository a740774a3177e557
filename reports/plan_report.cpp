#include "plan_report.hpp"

#include "reports/candidate_fields.hpp"
#include "reports/candidate_text.hpp"

#include <algorithm>
#include <cstdio>

#include "text.hpp"

namespace dnnplan::reports {

namespace {
std::string seconds(double s) { return human_seconds(s); }

std::string fixed(double v, const char* format) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, v);
    return buffer;
}

std::string header(const planner::CostModel& model) {
    const auto& o = model.options();
    return "dnnplan: " + terminal_safe(model.network().name) + " on " + terminal_safe(model.cluster().name) +
           ", P = " + std::to_string(o.procs) + ", batch " + std::to_string(o.batch) + " (" + to_string(o.dtype) +
           ", " + planner::to_string(o.optimizer) + (o.overlap_sync ? ", gradient sync overlapped" : "") + ")\n";
}


std::string layer_table(const planner::CostModel& model, const planner::ScoredPlan& plan) {
    TextTable table;
    table.header = {"layer",    "kind",     "layout",    "fwd compute", "bwd compute",
                    "fwd comm", "bwd comm", "grad sync", "activations"};
    const auto& layers = model.network().layers;
    for (std::size_t i = 1; i < layers.size(); ++i) {
        const auto& lc = plan.layers[i];
        const auto& layer = layers[i];
        if (!model.is_anchor(static_cast<int>(i)) && layer.params == 0 && lc.fwd_comm_s + lc.bwd_comm_s == 0)
            continue;  // followers without communication add nothing to read
        table.rows.push_back(
            {terminal_safe(layer.name),
             layer.kind == networks::LayerKind::activation ? layer.attrs.function : networks::to_string(layer.kind),
             model.is_anchor(static_cast<int>(i)) ? planner::to_string(lc.layout) : "(follows)",
             seconds(lc.fwd_compute_s), seconds(lc.bwd_compute_s), seconds(lc.fwd_comm_s), seconds(lc.bwd_comm_s),
             seconds(lc.sync_s), human_bytes(lc.activation_bytes)});
    }
    return table.render();
}

std::string breakdown(const planner::CostBreakdown& c) {
    std::string out;
    out += "  iteration " + seconds(c.iteration_s) + " = compute " + seconds(c.fwd_compute_s) + " fwd + " +
           seconds(c.bwd_compute_s) + " bwd; communication " + seconds(c.blocking_comm_s()) + " (all-reduce " +
           seconds(c.comm(planner::CommKind::all_reduce)) + ", all-gather " + seconds(c.comm(planner::CommKind::all_gather)) + ", halo " + seconds(c.comm(planner::CommKind::halo)) +
           ", redistribution " + seconds(c.comm(planner::CommKind::redistribution)) + "); gradient sync " + seconds(c.sync_total_s) +
           " of which exposed " + seconds(c.sync_exposed_s) + ", contention with it " + seconds(c.sync_contention_s) +
           "\n";
    out += "  memory per process " + human_bytes(c.memory_bytes) + " of " + human_bytes(c.memory_capacity_bytes) +
           " (weights " + human_bytes(c.weights_bytes) + ", gradients " + human_bytes(c.gradients_bytes) +
           ", optimizer " + human_bytes(c.optimizer_bytes) + ", activations " + human_bytes(c.activations_bytes) +
           ", buffers " + human_bytes(c.buffers_bytes) + ")\n";
    return out;
}
}  // namespace

std::string plan_text(const PlanReportInput& in) {
    const auto& r = *in.result;
    const auto* batch = r.find(planner::Strategy::batch);
    double batch_time = batch && batch->plan.cost.feasible ? batch->plan.cost.iteration_s : 0;
    std::string out = header(*in.model);
    out += std::to_string(r.ranked.size()) + " strategies scored (" + std::to_string(r.infeasible_count) +
           " infeasible), " + std::to_string(r.layout_evaluations) + " layer-layout evaluations\n";
    if (r.pipeline_configurations + r.pipeline_skipped > 0)
        out += "pipeline search: " + std::to_string(r.pipeline_configurations) + " configurations scored (" +
               std::to_string(r.pipeline_over_memory) + " over memory), " + std::to_string(r.pipeline_skipped) +
               " skipped (stages, replicas, tensor groups or micro-batches not dividing P or the batch)\n";
    out += "\n";
    // One column per communication kind that any shown strategy uses; gradient sync in full and
    // the part the backward pass does not hide.
    std::vector<const planner::Candidate*> shown;
    for (const auto& c : r.ranked)
        if (c.plan.cost.feasible && static_cast<int>(shown.size()) < in.top) shown.push_back(&c);
    struct Column {
        const char* title;
        double (*field)(const planner::CostBreakdown&);
    };
    const Column kinds[] = {{"all-reduce", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::all_reduce); }},
                            {"all-gather", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::all_gather); }},
                            {"reduce-scatter", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::reduce_scatter); }},
                            {"all-to-all", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::all_to_all); }},
                            {"halo", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::halo); }},
                            {"point-to-point", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::point_to_point); }},
                            {"redistrib.", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::redistribution); }},
                            {"sync contention", [](const planner::CostBreakdown& c) { return c.sync_contention_s; }},
                            {"bubble", [](const planner::CostBreakdown& c) { return c.bubble_s; }}};
    std::vector<Column> used;
    for (const auto& k : kinds)
        if (std::any_of(shown.begin(), shown.end(), [&](const auto* c) { return k.field(c->plan.cost) > 0; }))
            used.push_back(k);
    TextTable table;
    table.header = {"#", "strategy", "grid", "iteration", "compute"};
    for (const auto& k : used) table.header.push_back(k.title);
    for (const char* h : {"grad sync", "exposed sync", "memory/proc", "vs batch"}) table.header.push_back(h);
    int rank = 0;
    for (const auto* c : shown) {
        const auto& k = c->plan.cost;
        std::vector<std::string> row{std::to_string(++rank), planner::to_string(c->strategy), c->label.empty() ? "-" : c->label,
                                     seconds(k.iteration_s), seconds(k.fwd_compute_s + k.bwd_compute_s)};
        for (const auto& column : used) row.push_back(seconds(column.field(k)));
        row.push_back(seconds(k.sync_total_s));
        row.push_back(seconds(k.sync_exposed_s));
        row.push_back(human_bytes(k.memory_bytes));
        row.push_back(batch_time > 0 ? fixed(batch_time / k.iteration_s, "%.2fx") : "-");
        table.rows.push_back(std::move(row));
    }
    out += table.render();
    if (r.infeasible_count > 0) {
        out += "\ninfeasible (" + std::to_string(r.infeasible_count) + "):\n";
        int listed = 0;
        for (const auto& c : r.ranked)
            if (!c.plan.cost.feasible && listed++ < in.top)
                out += "  " + candidate_label(c) + ": " + terminal_safe(c.plan.cost.reason) + "\n";
        if (listed > in.top) out += "  ... and " + std::to_string(listed - in.top) + " more\n";
    }
    if (const auto* best = r.best()) {
        out += "\nbest: " + candidate_label(*best) +
               (batch_time > 0 ? fixed(batch_time / best->plan.cost.iteration_s, ", %.2fx faster than pure batch")
                               : std::string(", pure batch is infeasible")) +
               "\n";
        out += breakdown(best->plan.cost) + "\n";
        out += layer_table(*in.model, best->plan);
    } else {
        out += "\nno feasible plan\n";
    }
    return out;
}

// The header of the CSV ranking and the keys of each JSON `ranked[]` entry (planner/README.md,
// "Machine-readable rankings"; docs/plan-ranking.schema.json).
std::vector<std::string> ranking_columns() {
    std::vector<std::string> columns{"rank"};
    for (const auto& key : config_keys()) columns.push_back(key);
    for (const char* key : {"label", "feasible", "iteration_s"}) columns.emplace_back(key);
    for (const auto& c : time_components()) columns.push_back(c.key);
    for (const char* key : {"sync_total_s", "memory_bytes", "memory_capacity_bytes", "reason"}) columns.emplace_back(key);
    return columns;
}

std::string plan_csv(const PlanReportInput& in) {
    std::string out = csv_row(ranking_columns());
    const std::int64_t batch = in.model->options().batch;
    int rank = 0;
    for (const auto& c : in.result->ranked) {
        const auto& k = c.plan.cost;
        std::vector<std::string> row{std::to_string(++rank)};
        for (auto& cell : candidate_config_cells(c, batch)) row.push_back(std::move(cell));
        row.push_back(c.label);
        row.push_back(k.feasible ? "true" : "false");
        row.push_back(fixed(k.iteration_s, "%.17g"));
        for (const auto& component : time_components()) row.push_back(fixed(component.of(k), "%.17g"));
        row.push_back(fixed(k.sync_total_s, "%.17g"));
        row.push_back(fixed(k.memory_bytes, "%.17g"));
        row.push_back(fixed(k.memory_capacity_bytes, "%.17g"));
        row.push_back(k.reason);
        out += csv_row(row);
    }
    return out;
}

std::string plan_json(const PlanReportInput& in, const planner::Plan& best) {
    Json ranked = Json::array();
    const std::int64_t batch = in.model->options().batch;
    int rank = 0;
    for (const auto& c : in.result->ranked) {
        const auto& k = c.plan.cost;
        Json entry{{"rank", ++rank}};
        entry.update(candidate_config(c, batch));
        entry["label"] = c.label;
        entry["feasible"] = k.feasible;
        entry["iteration_s"] = k.iteration_s;
        for (const auto& component : time_components()) entry[component.key] = component.of(k);
        entry["sync_total_s"] = k.sync_total_s;
        entry["memory_bytes"] = k.memory_bytes;
        entry["memory_capacity_bytes"] = k.memory_capacity_bytes;
        entry["reason"] = k.reason;
        entry["cost"] = planner::cost_to_json(k);  // the plan document's breakdown, memory parts included
        ranked.push_back(std::move(entry));
    }
    Json out{{"format", "dnnplan-ranking"},
             {"version", 2},
             {"ranked", ranked},
             {"feasible_count", in.result->feasible_count},
             {"infeasible_count", in.result->infeasible_count},
             {"pipeline_search", {{"configurations", in.result->pipeline_configurations},
                                  {"skipped", in.result->pipeline_skipped},
                                  {"over_memory", in.result->pipeline_over_memory}}},
             // null when nothing is feasible: there is no plan to write.
             {"best", in.result->best() ? planner::plan_to_json(best, *in.model) : Json(nullptr)}};
    return json_text(out, 2) + "\n";
}

std::string scored_plan_text(const planner::CostModel& model, const planner::Plan& plan) {
    std::string out = header(model) + "plan: " + candidate_label(plan.strategy, plan.label) + "\n";
    out += breakdown(plan.scored.cost);
    if (!plan.scored.cost.feasible) out += "  infeasible: " + terminal_safe(plan.scored.cost.reason) + "\n";
    return out + "\n" + layer_table(model, plan.scored);
}

}  // namespace dnnplan::reports
