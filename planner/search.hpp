// The search: every strategy family's candidates (planner/families.hpp), ranked.
#pragma once

#include <vector>

#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"
#include "planner/schedule.hpp"

namespace dnnplan::planner {

struct SearchResult {
    std::vector<Candidate> ranked;  // feasible by iteration time, then infeasible ones
    int feasible_count = 0;
    int infeasible_count = 0;
    long long layout_evaluations = 0;  // segment-layout and edge evaluations in the search
    // The pipeline / 3-D search (planner/pipeline.hpp): configurations scored, skipped because S,
    // R, T or M do not divide P or the batch, and scored but over memory.
    long long pipeline_configurations = 0, pipeline_skipped = 0, pipeline_over_memory = 0;
    const Candidate* best() const { return feasible_count > 0 ? &ranked.front() : nullptr; }
    const Candidate* find(Strategy strategy) const;  // the best-ranked of the family
};

// Which families search() ranks beyond the layer-parallel ones (uniform grids and per-layer).
struct SearchOptions {
    bool pipelines = true;  // pipeline, tp-pp-dp and graph-partition
    // Only pipeline and tp-pp-dp plans have these dimensions: when any is set, the layer-parallel
    // and graph-partition families are left out and the pipeline search keeps only matching ones.
    PipelineNarrowing narrowing;
};

SearchResult search(const CostModel& model, const SearchOptions& options = {});

}  // namespace dnnplan::planner
