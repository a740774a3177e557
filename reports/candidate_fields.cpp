#include "candidate_fields.hpp"

#include <algorithm>

#include "planner/pipeline.hpp"

namespace dnnplan::reports {

const std::vector<std::string>& config_keys() {
    static const std::vector<std::string> keys{"strategy", "pr",           "pc",               "tensor",
                                               "stages",   "replicas",     "micro_batches",    "micro_batch_size",
                                               "schedule", "interleave",   "zero",             "recompute",
                                               "sequence_parallel", "processes_per_node"};
    return keys;
}

Json candidate_config(const planner::Candidate& c, std::int64_t batch) {
    Json j = Json::object();
    for (const auto& key : config_keys()) j[key] = nullptr;
    j["strategy"] = planner::to_string(c.strategy);
    j["processes_per_node"] = c.processes_per_node;  // every family
    const auto& p = c.pipeline;
    const bool pipeline = c.strategy == planner::Strategy::pipeline || c.strategy == planner::Strategy::tp_pp_dp ||
                          (c.strategy == planner::Strategy::hand_edited && p.active());
    const bool graph = c.strategy == planner::Strategy::graph_partition;
    if (planner::is_grid(c.strategy)) {
        j["pr"] = c.grid.pr;
        j["pc"] = c.grid.pc;
    } else if (pipeline || graph) {
        j["tensor"] = p.tensor;
        j["stages"] = p.stages;
        j["replicas"] = p.replicas;
        j["micro_batches"] = p.micro_batches;
        const std::int64_t split = std::int64_t{p.replicas} * p.micro_batches;
        if (split > 0 && batch % split == 0) j["micro_batch_size"] = batch / split;
        j["schedule"] = planner::to_string(p.schedule);
        if (pipeline) {
            j["interleave"] = p.interleave;
            j["zero"] = p.zero;
            j["recompute"] = planner::to_string(p.recompute);
            j["sequence_parallel"] = p.sequence_parallel;
        }
    }
    return j;
}

std::vector<std::string> candidate_config_cells(const planner::Candidate& c, std::int64_t batch) {
    Json j = candidate_config(c, batch);
    std::vector<std::string> cells;
    for (const auto& key : config_keys()) {
        const Json& v = j.at(key);
        if (v.is_null())
            cells.emplace_back();
        else if (v.is_string())
            cells.push_back(v.get<std::string>());
        else if (v.is_boolean())
            cells.emplace_back(v.get<bool>() ? "true" : "false");
        else
            cells.push_back(std::to_string(v.get<long long>()));
    }
    return cells;
}

const std::vector<TimeComponent>& time_components() {
    using K = planner::CostBreakdown;
    static const std::vector<TimeComponent> components = [] {
        std::vector<TimeComponent> out{
            {"fwd_compute_s", "forward compute", [](const K& c) { return c.fwd_compute_s; }},
            {"bwd_compute_s", "backward compute", [](const K& c) { return c.bwd_compute_s; }}};
        for (planner::CommKind kind : planner::kAllCommKinds) {
            std::string name = planner::to_string(kind);  // "all_reduce"
            std::string label = name;
            std::replace(label.begin(), label.end(), '_', '-');
            out.push_back({name + "_s", label, nullptr, kind, true});
        }
        out.push_back({"sync_contention_s", "contention with gradient sync", [](const K& c) { return c.sync_contention_s; }});
        out.push_back({"sync_exposed_s", "exposed gradient sync", [](const K& c) { return c.sync_exposed_s; }});
        out.push_back({"bubble_s", "pipeline bubble", [](const K& c) { return c.bubble_s; }});
        out.push_back({"optimizer_step_s", "optimizer step", [](const K& c) { return c.optimizer_step_s; }});
        return out;
    }();
    return components;
}

Throughput throughput(const planner::CostModel& model, const planner::Candidate& c) {
    const double seconds = c.plan.cost.iteration_s;
    if (!(seconds > 0)) return {};
    return {planner::model_flops_per_device(model) / seconds,
            planner::hardware_flops_per_device(model, c.pipeline.recompute) / seconds};
}

}  // namespace dnnplan::reports
