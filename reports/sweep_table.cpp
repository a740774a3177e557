#include "sweep_table.hpp"

#include "reports/candidate_fields.hpp"
#include "reports/candidate_text.hpp"

#include <cstdio>

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

}  // namespace dnnplan::reports
