#include "search.hpp"

#include <algorithm>

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
        result.ranked.push_back(per_layer_candidate(model, result.ranked, &result.layout_evaluations));
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
    for (const auto& c : result.ranked) (c.plan.cost.feasible ? result.feasible_count : result.infeasible_count)++;
    return result;
}

}  // namespace dnnplan::planner
