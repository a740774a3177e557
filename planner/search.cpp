#include "search.hpp"

#include <algorithm>
#include <stdexcept>

#include "planner/families.hpp"

namespace dnnplan::planner {

const Candidate* SearchResult::find(Strategy strategy) const {
    for (const auto& c : ranked)
        if (c.strategy == strategy) return &c;
    return nullptr;
}

SearchResult search(const CostModel& model, const SearchOptions& options) {
    SearchResult result;
    const bool narrowed = options.narrowing.any();
    if (!narrowed) {
        result.ranked = grid_candidates(model, &result.layout_evaluations);
        result.ranked.push_back(
            per_layer_candidate(model, result.ranked, &result.layout_evaluations, options.trial_scoring));
    }
    if (options.pipelines || narrowed) {
        PipelineSearchStats stats;
        for (Candidate& c : pipeline_candidates(model, &stats, options.narrowing)) result.ranked.push_back(std::move(c));
        result.pipeline_configurations = stats.configurations;
        result.pipeline_skipped = stats.skipped;
        result.pipeline_over_memory = stats.infeasible;
        if (!narrowed)
            for (Candidate& c : graph_partition_candidates(model)) result.ranked.push_back(std::move(c));
    }
    std::stable_sort(result.ranked.begin(), result.ranked.end(), [](const Candidate& a, const Candidate& b) {
        if (a.plan.cost.feasible != b.plan.cost.feasible) return a.plan.cost.feasible;
        return a.plan.cost.iteration_s < b.plan.cost.iteration_s;
    });
    for (auto& c : result.ranked) {
        c.processes_per_node = model.options().processes_per_node;
        (c.plan.cost.feasible ? result.feasible_count : result.infeasible_count)++;
    }
    return result;
}

std::string to_string(PlacementOutcome outcome) {
    switch (outcome) {
        case PlacementOutcome::searched:
            return "searched";
        case PlacementOutcome::not_divisible:
            return "P not a multiple";
        case PlacementOutcome::too_few_nodes:
            return "too few nodes";
        case PlacementOutcome::bounded_out:
            return "compute bound";
    }
    return "searched";
}

double compute_lower_bound(const networks::Network& network, const clusters::Cluster& cluster,
                           const PlannerOptions& options, int processes_per_node) {
    const networks::NetworkTotals t = networks::totals(network, options.batch);
    const double peak_per_process = cluster.peak_flops(options.dtype) / processes_per_node;
    return (t.fwd_flops + t.bwd_weight_flops) / (static_cast<double>(options.procs) * peak_per_process);
}

PlacementSearch search_processes_per_node(const networks::Network& network, const clusters::Cluster& cluster,
                                          PlannerOptions options, const SearchOptions& search_options) {
    PlacementSearch out;
    double best = 0;  // the fastest feasible plan so far (0: none yet)
    for (int k : clusters::processes_per_node_choices(cluster)) {
        PlacementTrial trial{k, PlacementOutcome::searched, compute_lower_bound(network, cluster, options, k), 0};
        if (options.procs % k != 0)
            trial.outcome = PlacementOutcome::not_divisible;
        else if (k == 1 ? options.procs > cluster.total_devices() : options.procs / k > cluster.nodes)
            trial.outcome = PlacementOutcome::too_few_nodes;
        else if (best > 0 && trial.lower_bound_s >= best)
            trial.outcome = PlacementOutcome::bounded_out;
        out.trials.push_back(trial);
        if (trial.outcome != PlacementOutcome::searched) continue;
        options.processes_per_node = k;
        auto model = std::make_unique<CostModel>(network, cluster, options);
        SearchResult result = search(*model, search_options);
        const Candidate* found = result.best();
        out.trials.back().best_iteration_s = found ? found->plan.cost.iteration_s : 0;
        const bool better = found && (best == 0 || found->plan.cost.iteration_s < best);
        if (better || !out.model) {
            if (found) best = found->plan.cost.iteration_s;
            out.model = std::move(model);
            out.result = std::move(result);
        }
    }
    if (!out.model) throw std::invalid_argument("no processes per node fits P = " + std::to_string(options.procs));
    return out;
}

}  // namespace dnnplan::planner
