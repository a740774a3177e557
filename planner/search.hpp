// The search: the uniform strategy families of Gholami et al. as baselines (pure batch, pure
// model, pure domain, every Pr x Pc grid) and per-layer layouts chosen by dynamic programming.
#pragma once

#include <string>
#include <vector>

#include "planner/cost_model.hpp"
#include "planner/pipeline.hpp"

namespace dnnplan::planner {

struct Candidate {
    std::string strategy;  // "batch", "model", "domain", "grid-model", "grid-domain", "per-layer"
    std::string grid;      // "Pr=8 x Pc=64", "" where not a grid
    int pr = 1, pc = 1;
    ScoredPlan plan;
    PipelineSpec pipeline;  // stages, micro-batches, replicas (planner/pipeline.hpp); default: none
};

struct SearchResult {
    std::vector<Candidate> ranked;  // feasible by iteration time, then infeasible ones
    int feasible_count = 0;
    int infeasible_count = 0;
    long long layout_evaluations = 0;  // segment-layout and edge evaluations in the search
    // The pipeline / 3-D search (planner/pipeline.hpp): configurations scored, skipped because S,
    // R, T or M do not divide P or the batch, and scored but over memory.
    long long pipeline_configurations = 0, pipeline_skipped = 0, pipeline_over_memory = 0;
    const Candidate* best() const { return feasible_count > 0 ? &ranked.front() : nullptr; }
    const Candidate* find(const std::string& strategy) const;
};

// Layouts of the uniform families, per anchor (non-anchor entries are ignored).
std::vector<Layout> uniform_layouts(const CostModel& model, const std::string& strategy, int pr, int pc);

// Per-layer layouts by dynamic programming (exact on chains; see planner/README.md for DAGs).
// `sync_weight` scales gradient synchronisation in the DP's additive objective: 1 counts it in
// full, 0 assumes the overlap with the backward pass hides it; search() runs both and keeps the
// plan whose exact score is better.
std::vector<Layout> dynamic_programme(const CostModel& model, long long* evaluations = nullptr,
                                      double sync_weight = 1.0);

// Which families search() ranks beyond the layer-parallel ones (uniform grids and per-layer).
struct SearchOptions {
    bool pipelines = true;  // pipeline, tp-pp-dp and graph-partition (planner/pipeline.hpp)
};

SearchResult search(const CostModel& model, const SearchOptions& options = {});

// Brute force over all per-layer assignments (tests compare the DP with it on small chains).
std::vector<Layout> brute_force(const CostModel& model, double* best_seconds = nullptr);

}  // namespace dnnplan::planner
