// The pipeline replay: rank t + T (s + S r) runs stage s of replica r, micro-batch by micro-batch
// in the schedule's order, and its gradient syncs over the replicas. Interleaved (V chunks), it
// runs virtual stages s, s + S, ..., each operation on the chunk pipeline_order() names.
#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <xbt/config.hpp>
#include <unordered_map>
#include <stdexcept>

#include "simulator/child.hpp"
#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

namespace {

struct PipelineReplay : ReplayBase {
    const planner::PipelineSpec& spec;
    const planner::PipelineProgram& program;
    std::vector<LayerSteps> layers;  // of one micro-batch on T ranks
    GroupMap inner;                  // the T ranks of a stage, numbered 0..T-1
    // When each rank posted its activations (direction 0) and gradients (1) of each micro-batch,
    // so that a receiver can tell waiting for the sender (bubble) from the transfer itself.
    std::vector<double> put_time;
    // The reduced replay (lanes = T > 1): one actor per stage stands for its T tensor ranks, and
    // each stage-internal call is the seconds isolated_call_seconds() gives it (simulator/README.md).
    int lanes = 1;
    std::unordered_map<const CommCall*, double> collapsed{};
    double intra_latency = 0, intra_bandwidth = 1;  // the message cost the timed calls were computed with
    std::vector<std::unordered_map<const CommCall*, std::int64_t>> timed_runs{};  // per rank: runs of each timed call

    int T() const { return spec.tensor; }
    int S() const { return spec.stages; }
    int M() const { return spec.micro_batches; }
    int V() const { return spec.interleave; }
    int virtual_stages() const { return spec.virtual_stages(); }
    // The rank of the same tensor position and replica on the device of virtual stage v.
    int rank_of(int rank, int v) const { return rank + T() * (v % S() - (rank / T()) % S()); }
    // The chunk's index is the sender's (its virtual stage over S).
    double& posted(int rank, int direction, int chunk, int micro) {
        return put_time[((rank * 2 + direction) * V() + chunk) * M() + micro];
    }

    // Stage-internal calls: the call's group inside the tensor group, shifted to its base rank.
    auto stage_members(int rank) const {
        const int t = rank % T(), base = rank - t;
        return [this, t, base](const CommCall& call, const auto& body) {
            const int index = inner.my_index(call.group, t);
            if (index < 0) return;
            body(index, [&, base](int i) { return base + inner.member(call.group, t, i); });
        };
    }

    // The replica sync group of `rank` for layer `layer`: the inner sync group's members in every
    // replica's copy of the stage, in rank order (a node's members are then consecutive, as the
    // collective's per_node placement assumes).
    std::vector<int> sync_members(int rank, int layer) const {
        const int t = rank % T(), s = (rank / T()) % S();
        const clusters::GroupPlacement& g = program.inner_sync_group[layer];
        std::vector<int> local;
        if (g.size <= 1) {
            local.push_back(t);
        } else {
            if (inner.my_index(g, t) < 0) return {};
            for (int i = 0; i < g.size; ++i) local.push_back(inner.member(g, t, i));
        }
        std::vector<int> out;
        for (int r = 0; r < spec.replicas; ++r)
            for (int l : local) out.push_back(T() * (s + S() * r) + l);
        std::sort(out.begin(), out.end());
        return out;
    }

    void run_sync(const CommCall& call, int rank, const std::string& channel, Boxes& boxes, RankClock& clock,
                  int track) {
        std::vector<int> members = sync_members(rank, call.layer);
        auto it = std::find(members.begin(), members.end(), rank);
        if (members.empty()) return;  // an incomplete inner group (its size does not divide T): nothing to replay
        // The model's group and the ranks found for it must agree, or the replay would cost another group.
        if (it == members.end() || static_cast<int>(members.size()) != call.group.size)
            throw std::logic_error("pipeline replay: the sync group of layer " + std::to_string(call.layer) + " has " +
                                   std::to_string(members.size()) + " ranks, the model's " +
                                   std::to_string(call.group.size));
        const double start = sg4::Engine::get_clock();
        run_call(
            call, rank, static_cast<int>(it - members.begin()), [&](int i) { return members[i]; }, channel, boxes,
            clock);
        clock.sync_total += sg4::Engine::get_clock() - start;
        record(clock, rank, track, "sync", start, call_name(call));
    }

    // Tied weights on two devices (PipelineProgram::tied): the embedding group's all-reduce, tensor
    // rank t of both devices per replica, once both have run their syncs. Returns the rank's index
    // in the pair (-1 when its device holds neither) and sets `pair`.
    int tied_pair(const planner::PipelineProgram::TiedSync& tied, int rank, std::array<int, 2>& pair) const {
        const int s = (rank / T()) % S();
        if (s != tied.copy.device && s != tied.copy.embedding_device) return -1;
        pair = {rank_of(rank, tied.copy.embedding_device), rank_of(rank, tied.copy.device)};
        std::sort(pair.begin(), pair.end());
        return pair[0] == rank ? 0 : 1;
    }
    void run_tied_syncs(int rank, Boxes& boxes, RankClock& clock) {
        for (const auto& tied : program.tied) {
            std::array<int, 2> pair{};
            const int index = tied_pair(tied, rank, pair);
            if (index < 0) continue;
            const double start = sg4::Engine::get_clock();
            run_call(tied.all_reduce, rank, index, [&](int i) { return pair[i]; }, "c0", boxes, clock);
            clock.sync_total += sg4::Engine::get_clock() - start;
            record(clock, rank, 0, "sync", start, call_name(tied.all_reduce));
        }
    }

    // A step of the stage's layers: run as usual, or with the reduced replay a stage-internal call
    // as the time its isolated messages take.
    template <class Members>
    void stage_step(const Step& step, int rank, const Members& members, Boxes& boxes, RankClock& clock,
                    const std::string& suffix, bool as_backward) {
        if (lanes == 1 || step.type != Step::Type::comm) {
            run_step(step, rank, members, "c0", boxes, clock, suffix, as_backward);
            return;
        }
        const double start = sg4::Engine::get_clock();
        sg4::this_actor::sleep_for(collapsed.at(step.call));
        ++timed_runs[rank][step.call];
        count_shared_event();
        clock.by_kind[planner::index_of(step.call->kind)] += sg4::Engine::get_clock() - start;
        record(clock, rank, 0, "communication", start, call_name(*step.call) + suffix);
    }

    // The per-link report of the timed calls of `rank`'s stage: every tensor group's messages on
    // the node's intra links, each alone on its links (the reduction's condition), run after run.
    void report_timed_calls(int rank) {
        if (!hosts) return;
        for (const auto& [call, runs] : timed_runs[rank])
            for (int t = 0; t < T(); ++t) {
                if (inner.my_index(call->group, t) != 0) continue;  // once per group, from its first member
                for (int i = 0; i < call->group.size; ++i)
                    for (const auto& step : call_rank_steps(*call, i)) {
                        if (step.send_to < 0) continue;
                        const int from = rank + inner.member(call->group, t, i);
                        const int to = rank + inner.member(call->group, t, step.send_to);
                        const double seconds = intra_latency + step.send_bytes / intra_bandwidth;
                        link_stats.add((*hosts)[from], (*hosts)[to], runs * step.send_bytes,
                                       runs * seconds, label(*call));
                    }
            }
    }

    // The attention core's share of layer i's forward FLOPs (what selective recomputation redoes).
    double attention_core_share(int i) const {
        const networks::Layer& layer = model.network().layers[i];
        return layer.fwd_flops > 0 ? static_cast<double>(layer.attention_core_flops) / static_cast<double>(layer.fwd_flops)
                                   : 0.0;
    }

    // The messages the actors will send (the pre-run summary and the progress bar).
    std::int64_t count_messages() {
        std::int64_t total = 0;
        const int procs = static_cast<int>(clocks.size());
        for (int rank = 0; rank < procs; rank += lanes) {
            const int t = rank % T(), s = (rank / T()) % S();
            for (int v = s; v < virtual_stages(); v += S()) {
                const auto& stage = program.stages[v];
                std::int64_t per_micro = 0;
                if (lanes == 1)
                    for (int i = stage.first; i <= stage.last; ++i) {
                        for (const Step& step : layers[i].forward)
                            if (step.type == Step::Type::comm && inner.my_index(step.call->group, t) >= 0)
                                per_micro += sends(*step.call, inner.my_index(step.call->group, t)) *
                                             (spec.recompute == planner::Recompute::full ? 2 : 1);
                        for (const Step& step : layers[i].backward)
                            if (step.type == Step::Type::comm && inner.my_index(step.call->group, t) >= 0)
                                per_micro += sends(*step.call, inner.my_index(step.call->group, t));
                    }
                per_micro += (v > 0 ? 1 : 0) + (v + 1 < virtual_stages() ? 1 : 0);
                if (lanes == 1) {  // the boundary all-gathers after each receive
                    if (v > 0 && !stage.recv_gather.empty())
                        per_micro += sends(stage.recv_gather[0], inner.my_index(stage.recv_gather[0].group, t));
                    if (v + 1 < virtual_stages() && !program.stages[v + 1].recv_gather.empty()) {
                        const CommCall& g = program.stages[v + 1].recv_gather[1];
                        per_micro += sends(g, inner.my_index(g.group, t));
                    }
                }
                total += per_micro * M();
                if (v == s)  // the device's embedding-group all-reduces, once
                    for (const auto& tied : program.tied) {
                        std::array<int, 2> pair{};
                        if (const int index = tied_pair(tied, rank, pair); index >= 0)
                            total += sends(tied.all_reduce, index);
                    }
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const CommCall& call : program.sync[i]) {
                        const std::vector<int> members = sync_members(rank, i);
                        auto it = std::find(members.begin(), members.end(), rank);
                        if (it != members.end()) total += sends(call, static_cast<int>(it - members.begin()));
                    }
            }
        }
        return total;
    }

    // The computes, and with the reduced replay the timed calls, of the actors' stages.
    std::int64_t count_steps() const {
        std::int64_t total = 0;
        for (int rank = 0; rank < static_cast<int>(clocks.size()); rank += lanes) {
            std::int64_t forward = 0, backward = 0;
            for (int v = (rank / T()) % S(); v < virtual_stages(); v += S())
            for (int i = program.stages[v].first; i <= program.stages[v].last; ++i) {
                for (const Step& step : layers[i].forward) {
                    forward += step.type == Step::Type::compute ? (step.seconds > 0 ? 1 : 0) : (lanes > 1 ? 1 : 0);
                    if (spec.recompute == planner::Recompute::selective && step.type == Step::Type::compute &&
                        attention_core_share(i) > 0)
                        ++backward;
                }
                for (const Step& step : layers[i].backward)
                    backward += step.type == Step::Type::compute ? (step.seconds > 0 ? 1 : 0) : (lanes > 1 ? 1 : 0);
            }
            // With the reduced replay each boundary all-gather is a timed step too (not recomputed).
            for (int v = (rank / T()) % S(); lanes > 1 && v < virtual_stages(); v += S()) {
                backward += v > 0 && !program.stages[v].recv_gather.empty() ? 1 : 0;
                backward += v + 1 < virtual_stages() && !program.stages[v + 1].recv_gather.empty() ? 1 : 0;
            }
            total += M() * (forward * (spec.recompute == planner::Recompute::full ? 2 : 1) + backward);
        }
        return total;
    }

    // Blocking receive of micro-batch `micro` of `bytes` from `from`'s chunk `chunk` (direction 0:
    // activations, 1: gradients).
    void receive(int rank, int from, int direction, int chunk, int micro, double bytes, Boxes& boxes,
                 RankClock& clock) {
        const double posted_at = sg4::Engine::get_clock();
        int* received = nullptr;
        mailbox(boxes, direction == 0 ? "a" : "g", from, rank)->get_async<int>(&received)->wait();
        const double end = sg4::Engine::get_clock();
        // Rendezvous: the transfer starts when both sides have posted.
        const double start = std::max(posted_at, posted(from, direction, chunk, micro));
        clock.idle += start - posted_at;
        clock.by_kind[planner::index_of(CommKind::point_to_point)] += end - start;
        flow(from, rank, bytes, start, direction == 0 ? "activations (point_to_point)" : "gradients (point_to_point)");
        if (!timeline) return;
        const std::string what = std::string(direction == 0 ? "activations" : "gradients") + " mb" +
                                 std::to_string(micro) + " from rank " + std::to_string(from);
        if (start > posted_at)
            clock.slices.push_back(Slice{rank, "waiting for " + what, "idle", 0, posted_at, start - posted_at});
        clock.slices.push_back(Slice{rank, "receive " + what, "communication", 0, start, end - start});
    }

    void send(int rank, int to, int direction, int chunk, int micro, double bytes, Boxes& boxes, RankClock& clock,
              std::vector<sg4::CommPtr>& pending) {
        posted(rank, direction, chunk, micro) = sg4::Engine::get_clock();
        pending.push_back(
            mailbox(boxes, direction == 0 ? "a" : "g", rank, to)->put_async(&dummy, message_bytes(rank, to, bytes)));
        count_message(clock);
    }

    // Megatron's scatter/gather: the 1/T slices just received (direction 0: of the activations
    // into `boundary`, 1: of their gradients out of it) all-gathered over the receiving stage's
    // tensor group, with the model's algorithm (PipelineProgram::Stage::recv_gather).
    template <class Members>
    void gather_boundary(const planner::PipelineProgram::Stage& boundary, int direction, int rank,
                         const Members& members, Boxes& boxes, RankClock& clock, const std::string& suffix) {
        if (boundary.recv_gather.empty()) return;
        Step step;
        step.type = Step::Type::comm;
        step.call = &boundary.recv_gather[direction];
        step.layer = step.call->layer;
        step.phase = step.call->phase;
        stage_step(step, rank, members, boxes, clock, suffix, direction == 1);
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        std::vector<sg4::CommPtr> pending;
        const int s = (rank / T()) % S(), n = virtual_stages();
        const auto members = stage_members(rank);
        const bool overlap = model.options().overlap_sync;
        std::vector<const CommCall*> deferred;
        const std::vector<PipelineOp> ops = pipeline_order(spec.schedule, S(), s, M(), V());
        for (std::size_t k = 0; k < ops.size(); ++k) {
            const PipelineOp& op = ops[k];
            const int v = op.chunk * S() + s;
            const auto& stage = program.stages[v];
            const std::string mb = " mb" + std::to_string(op.micro) + (V() > 1 ? " c" + std::to_string(op.chunk) : "");
            if (op.forward) {
                if (v > 0) {
                    receive(rank, rank_of(rank, v - 1), 0, (v - 1) / S(), op.micro, stage.recv_bytes, boxes, clock);
                    gather_boundary(stage, 0, rank, members, boxes, clock, mb);
                }
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward) stage_step(step, rank, members, boxes, clock, mb, false);
                if (v + 1 < n)
                    send(rank, rank_of(rank, v + 1), 0, op.chunk, op.micro, program.stages[v + 1].recv_bytes, boxes,
                         clock, pending);
                continue;
            }
            if (v + 1 < n) {
                receive(rank, rank_of(rank, v + 1), 1, (v + 1) / S(), op.micro, program.stages[v + 1].recv_bytes, boxes,
                        clock);
                gather_boundary(program.stages[v + 1], 1, rank, members, boxes, clock, mb);
            }
            // Recomputation: only the stage's input was kept; its forward runs again first.
            if (spec.recompute == planner::Recompute::full)
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward)
                        stage_step(step, rank, members, boxes, clock, mb + " (recomputed)", true);
            // Selective recomputation: the attention cores' share of their layers' forward compute.
            if (spec.recompute == planner::Recompute::selective)
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward)
                        if (const double share = attention_core_share(i); step.type == Step::Type::compute && share > 0) {
                            Step core = step;
                            core.seconds = step.seconds * share;
                            stage_step(core, rank, members, boxes, clock, mb + " (attention core recomputed)", true);
                        }
            const bool last = op.micro == M() - 1;  // the chunk's last backward (the stage's last operation when V = 1)
            for (int i = stage.last; i >= stage.first; --i) {
                for (const Step& step : layers[i].backward) stage_step(step, rank, members, boxes, clock, mb, true);
                // The micro-batch's weight gradients added into the accumulated ones (compute.hpp).
                if (const double add = program.accumulate_s[static_cast<std::size_t>(i)]; add > 0) {
                    Step accumulate;
                    accumulate.layer = i;
                    accumulate.phase = planner::Phase::backward;
                    accumulate.seconds = add;
                    stage_step(accumulate, rank, members, boxes, clock, mb + " (gradient accumulation)", true);
                }
                // The layer's gradients are complete after its last micro-batch: its sync may start.
                if (last && !program.sync[i].empty()) {
                    if (overlap)
                        ready->release();
                    else
                        for (const CommCall& call : program.sync[i]) deferred.push_back(&call);
                }
            }
            if (v > 0) send(rank, rank_of(rank, v - 1), 1, op.chunk, op.micro, stage.recv_bytes, boxes, clock, pending);
        }
        clock.backward_end = sg4::Engine::get_clock();
        if (overlap)
            done->acquire();
        else
            for (const CommCall* call : deferred) run_sync(*call, rank, "c0", boxes, clock, 0);
        run_tied_syncs(rank, boxes, clock);
        for (auto& comm : pending) comm->wait();
        // The device's update over all its chunks' layers (ZeRO-1: its shard of the replicas').
        double step = 0;
        for (int v = s; v < n; v += S())
            for (int i = program.stages[v].first; i <= program.stages[v].last; ++i)
                step += program.micro.layers[i].optimizer_step_s;
        for (const auto& tied : program.tied) step += tied.copy.device == s ? tied.copy.optimizer_step_s : 0.0;
        run_optimizer_step(planner::optimizer_step_share(step, spec), rank, clock);
        clock.end = sg4::Engine::get_clock();
        if (lanes > 1) report_timed_calls(rank);
    }

    // The stage's gradient syncs, last layer first, each once its layer's last backward is done.
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        // Chunks finish their last backward last chunk first (pipeline_order's cool-down).
        for (int v = (rank / T()) % S() + (V() - 1) * S(); v >= 0; v -= S()) {
            const auto& stage = program.stages[v];
            for (int i = stage.last; i >= stage.first; --i) {
                if (program.sync[i].empty()) continue;
                ready->acquire();
                for (const CommCall& call : program.sync[i]) run_sync(call, rank, "c1", boxes, clock, 1);
            }
        }
        done->release();
    }
};

// The reduced replay's conditions (simulator/README.md, "Reduced replay"): CM02 on a built platform,
// each stage's T tensor ranks fill a node exactly (so the links inside a node carry the stage's own
// calls only, and the stage boundaries and the syncs leave through the devices' own NICs), no sync
// group mixes tensor ranks, and every stage-internal call is symmetric (its members finish
// together, so that the T ranks stay in step). Returns the seconds of each stage-internal call and
// the message cost they were computed with, or nothing when a condition fails.
struct TimedCalls {
    std::unordered_map<const CommCall*, double> seconds;
    double latency = 0, bandwidth = 1;
};
std::optional<TimedCalls> collapsible_calls(const planner::CostModel& model, const planner::PipelineSpec& spec,
                                            const planner::PipelineProgram& program,
                                            const std::vector<LayerSteps>& layers, const SimOptions& options) {
    const auto& cluster = model.cluster();
    const int T = spec.tensor;
    if (!options.reduce || options.platform.network_model != NetworkModel::cm02 ||
        !options.platform.platform_file.empty() || T <= 1 || cluster.devices_per_node != T)
        return std::nullopt;
    for (const auto& g : program.inner_sync_group)
        if (g.size > 1) return std::nullopt;
    const GroupMap inner{T, T};
    // The route between two devices of a node: two intra-node links of half the latency each;
    // CM02 also bounds a flow's rate by TCP-gamma / (2 x latency).
    const double latency = cluster.intra_node.latency_s;
    const double gamma = simgrid::config::get_value<double>("network/TCP-gamma");
    const double bandwidth =
        gamma > 0 && latency > 0 ? std::min(cluster.intra_node.effective_bandwidth_Bps(), gamma / (2 * latency))
                                 : cluster.intra_node.effective_bandwidth_Bps();
    std::unordered_map<const CommCall*, double> seconds;
    auto time_call = [&](const CommCall* call) {
        if (seconds.count(call)) return true;
        for (int t = 0; t < T; ++t)
            if (inner.my_index(call->group, t) < 0) return false;
        const double s = isolated_call_seconds(*call, latency, bandwidth);
        if (s < 0) return false;
        // A symmetric halo (two parts) packs the same on both members.
        seconds[call] = s + halo_pack_seconds(model, *call, 0);
        return true;
    };
    for (const auto& layer : layers)
        for (const auto* part : {&layer.forward, &layer.backward})
            for (const Step& step : *part)
                if (step.type == Step::Type::comm && !time_call(step.call)) return std::nullopt;
    for (const auto& stage : program.stages)  // the boundary all-gathers, inside the receiving node too
        for (const CommCall& call : stage.recv_gather)
            if (!time_call(&call)) return std::nullopt;
    return TimedCalls{std::move(seconds), latency, bandwidth};
}

}  // namespace

SimResult simulate_pipeline(const planner::CostModel& model, const planner::PipelineSpec& spec,
                            const std::vector<planner::Layout>& layouts, const SimOptions& options) {
    if (!spec.device_of.empty()) return simulate_graph_partition(model, spec, layouts, options);
    std::string problem = planner::pipeline_problem(model, spec);
    if (!problem.empty()) throw InputError("simulate", "/pipeline", problem);
    const planner::PipelineProgram program = planner::pipeline_program(model, spec, layouts);
    SimResult result = run_in_child(model, options, [&] {
        const int procs = static_cast<int>(model.options().procs);
        const int d = std::max(1, std::min(model.cluster().devices_per_node, spec.tensor));
        std::unique_ptr<PipelineReplay> replay;
        const bool overlap = model.options().overlap_sync;
        std::vector<LayerSteps> layers = layer_steps(model.network(), program.micro);
        std::optional<TimedCalls> collapsed;
        std::string reduction;
        // Decided in the child, once the engine exists: the TCP-gamma bound is its configuration.
        return run_simulation(
            model, options,
            [&](const std::vector<sg4::Host*>& hosts, double speed) -> ReplayStart {
                replay.reset(new PipelineReplay{{model, speed, options.timeline, std::vector<RankClock>(procs)},
                                                spec,
                                                program,
                                                layers,
                                                GroupMap{spec.tensor, d},
                                                std::vector<double>(static_cast<std::size_t>(procs) * 2 * spec.micro_batches * spec.interleave, 0.0)});
                replay->timed_runs.resize(procs);
                if (collapsed) {
                    replay->lanes = spec.tensor;
                    replay->collapsed = collapsed->seconds;
                    replay->intra_latency = collapsed->latency;
                    replay->intra_bandwidth = collapsed->bandwidth;
                }
                replay->message_links = MessageLinks::install(model.cluster(), hosts, options.platform);
                spawn_rank_actors(replay.get(), hosts, procs, overlap, replay->lanes);
                return {replay->clocks, replay->count_messages(), replay->count_steps(), reduction, &replay->link_stats};
            },
            [&](SimOptions& o) {
                collapsed = collapsible_calls(model, spec, program, layers, o);
                if (!collapsed) return;
                o.platform.lanes = spec.tensor;
                reduction = "one actor per stage stands for its " + std::to_string(spec.tensor) +
                            " tensor ranks (one node); their calls inside the node are timed without SimGrid, the "
                            "topology's links carry 1/" + std::to_string(spec.tensor) + " of the node's bandwidth";
            });
    });
    // The reduced replay: tensor rank t's timeline is its stage's rank 0's.
    if (!result.reduction.empty()) replicate_slices(result, spec.tensor, 1);
    return result;
}

}  // namespace dnnplan::simulator
