// The simulator's input for a pipeline plan, taken from the stage evaluator's own pieces so that
// nothing is derived twice.
#pragma once

#include <cstdint>
#include <vector>

#include "planner/pipeline.hpp"

namespace dnnplan::planner {

// What a replay of the pipeline (simulator/) needs, straight from the model so that nothing is
// derived twice: the plan of ONE micro-batch on the T processes of a stage (per-layer compute
// seconds and the stage-internal CommCalls, groups within those T ranks; its own phase-sync calls
// cover the inner batch group only), each stage's layer range and the point-to-point bytes per
// rank it receives from the previous stage per micro-batch (the activations forward; the gradients
// travel back with the same size) on `link` (stage_link: the one link the model charges every
// boundary on), and per layer the gradient synchronisation over the R replicas x the inner batch
// group as the calls score_pipeline() costs (clusters::cheapest; ZeRO-1: reduce-scatter, then
// all-gather). Rank t + T (s + S r) is tensor rank t of stage s of replica r.
// Throws std::invalid_argument when pipeline_problem() is not empty or for a graph partition.
struct PipelineProgram {
    std::int64_t micro_batch = 1;  // B / (R M)
    ScoredPlan micro;              // one micro-batch on T processes
    struct Stage {
        int first = 1, last = 1;  // layer range [first, last]
        double recv_bytes = 0;    // per rank per micro-batch from stage s - 1 (0 for stage 0)
        // Megatron-LM's scatter/gather (LayerTable::boundary_send_bytes): when recv_bytes is a 1/T
        // slice of a tensor whole on every tensor rank, the T ranks all-gather the whole tensor,
        // these bytes, per micro-batch; the same for its gradient backward into stage s - 1. 0 when
        // the boundary crosses whole (T = 1, split tensors) or under sequence parallelism. The
        // validator's pipeline runner runs and ledgers it; simulator/replay_pipeline.cpp replays it
        // after each receive.
        double recv_gather_bytes = 0;
        // That all-gather as the model costs it (its algorithm, over the stage's tensor group, layer
        // `first`), [0] after the activations arrive, [1] after their gradients arrive in stage
        // s - 1; empty when recv_gather_bytes is 0. Its kind is point_to_point: the model books
        // its seconds inside recv_s, with the boundary's transfer.
        std::vector<CommCall> recv_gather;
        double recv_s = 0;  // the seconds the model charges for it (on the boundary's link: intra-node when both ranks
                            // share a node)
    };
    std::vector<Stage> stages;  // S x V: chunk c of device d (interleaving) is stages[c S + d]
    std::vector<clusters::GroupPlacement> inner_sync_group;  // per layer: the sync group inside the T ranks
    std::vector<std::vector<CommCall>> sync;                 // per layer (index 0 unused), in the order run
    // Per layer: the seconds of adding one micro-batch's weight gradients into the accumulated ones
    // (accumulation_per_param() x the layer's local parameters), after the layer's backward in every
    // micro-batch, as evaluate_stages() charges it.
    std::vector<double> accumulate_s;
    // Tied weights on two devices (planner/stage_evaluator.hpp, TiedCopy): the tied layer's sync[]
    // holds its copy's replica sync (the embedding's calls), and after every sync of both devices
    // tensor rank t of `device` and of `embedding_device` (per replica) run `all_reduce`, the
    // embedding group's; the copy's update takes `copy.optimizer_step_s` on `device`.
    struct TiedSync {
        TiedCopy copy;
        CommCall all_reduce;
    };
    std::vector<TiedSync> tied;
};
PipelineProgram pipeline_program(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts);

}  // namespace dnnplan::planner
