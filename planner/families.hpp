// The strategy families (DESIGN.md section 5). Each returns its candidates, scored by the one
// stage evaluator; search() only ranks them.
#pragma once

#include <vector>

#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"
#include "planner/schedule.hpp"

namespace dnnplan::planner {

// Uniform grids (families/grid.cpp): layouts of a grid strategy per anchor (non-anchor entries
// are ignored), and the baselines: pure batch, pure model, pure domain and every Pr x Pc grid.
std::vector<Layout> uniform_layouts(const CostModel& model, Strategy strategy, GridShape grid);
std::vector<Candidate> grid_candidates(const CostModel& model, long long* evaluations = nullptr);

// Per-layer layouts (families/per_layer.cpp) by dynamic programming (exact on chains; see
// planner/README.md for DAGs). `sync_weight` scales gradient synchronisation in the DP's additive
// objective: 1 counts it in full, 0 assumes the overlap with the backward pass hides it.
std::vector<Layout> dynamic_programme(const CostModel& model, long long* evaluations = nullptr,
                                      double sync_weight = 1.0);
// How the per-layer search's local improvement scores its trials (the same scores either way).
enum class TrialScoring { incremental, full };
// The best of the DP runs (sync weighted 1, 1/2, 1/4, 0) and of the feasible `baselines`, by exact
// score, improved by single-anchor changes, each scored by planner/rescore.hpp (incremental) or by
// CostModel::score (full; the same scores, slower).
Candidate per_layer_candidate(const CostModel& model, const std::vector<Candidate>& baselines,
                              long long* evaluations = nullptr, TrialScoring scoring = TrialScoring::incremental);

// Pipelines and 3-D parallelism (pipeline_search.cpp): the best configuration per (T, S).
struct PipelineSearchStats {
    long long configurations = 0;  // (T, S, R, M, schedule, ZeRO, recompute) combinations scored
    long long skipped = 0;         // combinations that do not divide P or the batch
    long long infeasible = 0;      // scored but over memory
};
std::vector<Candidate> pipeline_candidates(const CostModel& model, PipelineSearchStats* stats = nullptr,
                                           const PipelineNarrowing& narrowing = {});

// Dataflow-graph partitions (graph_partition.cpp): the best micro-batch count per k.
std::vector<Candidate> graph_partition_candidates(const CostModel& model);

}  // namespace dnnplan::planner
