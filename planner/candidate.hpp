// A ranked candidate: its strategy family, the family's configuration and its scored plan.
// Decisions read the enum and the typed configuration; the strings are for people only.
#pragma once

#include <optional>
#include <string>

#include "planner/cost_model.hpp"
#include "planner/schedule.hpp"

namespace dnnplan::planner {

enum class Strategy {
    batch,            // every layer n = P (Gholami's Pc = P)
    model,            // every layer split over features/channels (Pr = P)
    domain,           // convolutions split over height x width (Pr = P), the rest over features
    grid_model,       // Gholami's integrated Pr x Pc grid, model along Pr
    grid_domain,      // ... domain along Pr
    per_layer,        // a layout per layer (dynamic programme + local descent)
    pipeline,         // stages x replicas (HyPar-Flow, GPipe, 1F1B), T = 1
    tp_pp_dp,         // tensor x pipeline x data (Megatron-LM), T > 1
    graph_partition,  // dataflow-graph partition over k devices x R replicas
    hand_edited,      // a plan file's layouts, as written
};
// "batch", "grid-model", "per-layer", "tp-pp-dp", "graph-partition", "hand-edited", ...
std::string to_string(Strategy strategy);
std::optional<Strategy> parse_strategy(const std::string& name);
bool is_grid(Strategy strategy);  // batch, model, domain and the two grids: a Pr x Pc shape

// Gholami et al.'s integrated grid: Pr processes split each layer, Pc copies split the batch.
struct GridShape {
    int pr = 1, pc = 1;
    bool operator==(const GridShape&) const = default;
};

struct Candidate {
    Strategy strategy = Strategy::batch;
    GridShape grid;         // the grid strategies' Pr x Pc
    PipelineSpec pipeline;  // pipeline, tp-pp-dp: T, S, R, M, schedule, ZeRO, recomputation; graph-partition: k
                            // (stages), R, M, device_of
    ScoredPlan plan;
    int processes_per_node = 1;  // the k of the CostModel that scored it (PlannerOptions::processes_per_node)
    std::string
        label;  // for people: "Pr=8 x Pc=64", "TP=8 x PP=4 x DP=32, M=48, 1f1b, ...", "" for the corner families
};

}  // namespace dnnplan::planner
