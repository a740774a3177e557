// The layer-parallel replay: every rank runs the whole network's forward and backward steps (its
// part of each layer), and its weight-gradient syncs overlapped on a second actor or at the end.
#include <algorithm>
#include <memory>

#include "simulator/child.hpp"
#include "simulator/replay_base.hpp"
#include "simulator/replay_events.hpp"

namespace dnnplan::simulator {

std::vector<LayerSteps> layer_steps(const networks::Network& network, const planner::ScoredPlan& plan) {
    const std::size_t n = std::min(network.layers.size(), plan.layers.size());
    std::vector<LayerSteps> out(n);
    std::vector<std::vector<const CommCall*>> by_layer(n);
    for (const CommCall& call : plan.calls)
        if (call.layer >= 0 && static_cast<std::size_t>(call.layer) < n) by_layer[call.layer].push_back(&call);
    // Incoming data first (redistribution of the input, halos), then compute, then the rest.
    auto incoming = [](const CommCall* c) { return c->kind == CommKind::redistribution || c->kind == CommKind::halo; };
    for (std::size_t i = 1; i < n; ++i) {
        const int layer = static_cast<int>(i);
        LayerSteps& l = out[i];
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::forward && incoming(c))
                l.forward.push_back({Step::Type::comm, layer, Phase::forward, 0, c});
        l.forward.push_back({Step::Type::compute, layer, Phase::forward, plan.layers[i].fwd_compute_s, nullptr});
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::forward && !incoming(c))
                l.forward.push_back({Step::Type::comm, layer, Phase::forward, 0, c});
        // The output gradient's halo arrives before the backward compute; the input gradient's
        // reduction and its redistribution back to the producer follow it.
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::backward && c->kind == CommKind::halo)
                l.backward.push_back({Step::Type::comm, layer, Phase::backward, 0, c});
        l.backward.push_back({Step::Type::compute, layer, Phase::backward, plan.layers[i].bwd_compute_s, nullptr});
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::backward && c->kind != CommKind::halo)
                l.backward.push_back({Step::Type::comm, layer, Phase::backward, 0, c});
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::sync) l.sync.push_back(c);
    }
    return out;
}

ReplayProgram build_replay_program(const planner::CostModel& model, const planner::ScoredPlan& plan) {
    std::vector<LayerSteps> layers = layer_steps(model.network(), plan);
    ReplayProgram p;
    p.overlap_sync = model.options().overlap_sync;
    for (std::size_t i = 1; i < plan.layers.size(); ++i) p.optimizer_step_s += plan.layers[i].optimizer_step_s;
    for (std::size_t i = 1; i < layers.size(); ++i)
        p.main.insert(p.main.end(), layers[i].forward.begin(), layers[i].forward.end());
    for (std::size_t i = layers.size(); i-- > 1;) {
        p.main.insert(p.main.end(), layers[i].backward.begin(), layers[i].backward.end());
        if (!layers[i].sync.empty()) {
            p.main.push_back({Step::Type::sync_ready, static_cast<int>(i), Phase::sync, 0, nullptr});
            p.sync.push_back(layers[i].sync);
        }
    }
    return p;
}

namespace {

struct LayerReplay : ReplayBase {
    const ReplayProgram& program;
    GroupMap map;
    int stride = 1;  // the symmetric replay: rank 0 alone stands for every rank

    // Calls `body(index, member)` for `rank` in the call's group, unless the group is incomplete
    // (its size does not divide P): nothing to replay then.
    auto member_of(int rank) const {
        return [this, rank](const CommCall& call, const auto& body) {
            const int index = map.my_index(call.group, rank);
            if (index < 0) return;
            body(index, [&](int i) { return map.member(call.group, rank, i); });
        };
    }

    // The messages the actors will send (the pre-run summary and the progress bar).
    std::int64_t count_messages() {
        std::int64_t total = 0;
        for (int rank = 0; rank < static_cast<int>(clocks.size()); rank += stride) {
            auto add = [&](const CommCall& call) {
                const int index = map.my_index(call.group, rank);
                if (index >= 0) total += sends(call, index);
            };
            for (const Step& step : program.main)
                if (step.type == Step::Type::comm) add(*step.call);
            for (const auto& group : program.sync)
                for (const CommCall* call : group) add(*call);
        }
        return total;
    }

    // The computes: every rank's forward and backward of every layer.
    std::int64_t count_steps() const {
        std::int64_t n = 0;
        for (const Step& step : program.main) n += step.type == Step::Type::compute && step.seconds > 0 ? 1 : 0;
        return n * ((static_cast<std::int64_t>(clocks.size()) + stride - 1) / stride);
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        std::vector<std::size_t> deferred;  // sync groups run after the backward pass (no overlap)
        std::size_t sync_index = 0;
        const auto members = member_of(rank);
        for (const Step& step : program.main) {
            if (step.type == Step::Type::sync_ready) {
                if (program.overlap_sync)
                    ready->release();
                else
                    deferred.push_back(sync_index);
                ++sync_index;
                continue;
            }
            run_step(step, rank, members, "c0", boxes, clock, "", step.phase != Phase::forward);
        }
        clock.backward_end = sg4::Engine::get_clock();
        if (program.overlap_sync) {
            done->acquire();
        } else {
            for (std::size_t k : deferred)
                for (const CommCall* call : program.sync[k]) run_sync(*call, rank, "c0", boxes, clock, 0);
        }
        run_optimizer_step(program.optimizer_step_s, rank, clock);
        clock.end = sg4::Engine::get_clock();
    }

    // The gradient all-reduces of one rank, one at a time in backward order, each started once
    // its layer's backward pass is done (the cost model's overlap rule).
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        for (const auto& group : program.sync) {
            ready->acquire();
            for (const CommCall* call : group) run_sync(*call, rank, "c1", boxes, clock, 1);
        }
        done->release();
    }

    void run_sync(const CommCall& call, int rank, const std::string& channel, Boxes& boxes, RankClock& clock,
                  int track) {
        const double start = sg4::Engine::get_clock();
        member_of(rank)(
            call, [&](int index, const auto& member) { run_call(call, rank, index, member, channel, boxes, clock); });
        clock.sync_total += sg4::Engine::get_clock() - start;
        record(clock, rank, track, "sync", start, call_name(call));
    }
};

// The symmetric replay's conditions (simulator/README.md, "Reduced replay"): a built star of private
// links with one device per node under CM02 (every rank's links alike, nothing shared between
// ranks), every call's group complete on every rank, and every call lockstep-symmetric. Then
// every rank runs the same program at the same times, and one rank exchanging with a mirror host
// stands for all.
bool symmetric_layers(const planner::CostModel& model, const ReplayProgram& program, const SimOptions& options) {
    const auto& cluster = model.cluster();
    const int procs = static_cast<int>(model.options().procs);
    const bool star = options.platform.topology == "star" || cluster.topology.kind == clusters::TopologyKind::crossbar;
    if (!options.reduce || !star || !options.platform.platform_file.empty() ||
        options.platform.network_model != NetworkModel::cm02 || procs < 2 || std::min(cluster.devices_per_node, procs) != 1)
        return false;
    std::vector<const CommCall*> calls;
    for (const Step& step : program.main)
        if (step.type == Step::Type::comm) calls.push_back(step.call);
    for (const auto& group : program.sync) calls.insert(calls.end(), group.begin(), group.end());
    const GroupMap map{procs, 1};
    for (const CommCall* call : calls) {
        for (int r = 0; r < procs; ++r)
            if (map.my_index(call->group, r) < 0) return false;
        if (!lockstep_symmetric(*call)) return false;
    }
    return true;
}


// True when member i ^ k runs member i's steps mapped by ^ k (partners i ^ k's, the same bytes) for
// every k below min(group size, lanes): recursive doubling and halving, Rabenseifner on a power of
// two, any pair exchange over 2 ranks; not rings, shifts or halos over more than 2 parts.
bool xor_symmetric(const CommCall& call, int lanes) {
    const int g = std::max(1, call.group.size);
    const int k_end = std::min(g, lanes);
    std::vector<std::vector<clusters::RankStep>> steps(static_cast<std::size_t>(g));
    for (int i = 0; i < g; ++i) steps[i] = ReplayBase::call_rank_steps(call, i);
    auto image = [](int partner, int k) { return partner < 0 ? -1 : partner ^ k; };
    for (int k = 1; k < k_end; ++k)
        for (int i = 0; i < g; ++i) {
            const auto& mine = steps[i];
            const auto& theirs = steps[i ^ k];
            if (mine.size() != theirs.size()) return false;
            for (std::size_t s = 0; s < mine.size(); ++s)
                if (theirs[s].send_to != image(mine[s].send_to, k) || theirs[s].recv_from != image(mine[s].recv_from, k) ||
                    theirs[s].send_bytes != mine[s].send_bytes || theirs[s].recv_bytes != mine[s].recv_bytes)
                    return false;
        }
    return true;
}

// The router-symmetric replay's conditions (simulator/README.md, "Router symmetry"): CM02 on a built
// dragonfly with one device per node, R = nodes per router a power of two dividing P, every call's
// groups contiguous blocks that lie inside one router (g < R) or are whole routers (R | g), and every
// partner of a member either in its router or in its lane (i % R, so a partner of a replayed rank
// is replayed or in its router). Exact when every call is also xor-symmetric and made of pair
// exchanges; otherwise approximate (lone flows inside a router).
enum class RouterSymmetry { none, exact, approximate };
RouterSymmetry router_symmetry(const planner::CostModel& model, const ReplayProgram& program, const SimOptions& options) {
    const auto& cluster = model.cluster();
    const int procs = static_cast<int>(model.options().procs);
    const int R = cluster.topology.dragonfly_nodes_per_router;
    const bool dragonfly =
        options.platform.topology == "cluster" && cluster.topology.kind == clusters::TopologyKind::dragonfly;
    if (!options.reduce || !options.router_symmetry || !dragonfly || options.event_driven ||
        !options.platform.platform_file.empty() || options.platform.network_model != NetworkModel::cm02 ||
        std::min(cluster.devices_per_node, procs) != 1 || R < 2 || (R & (R - 1)) != 0 || procs % R != 0)
        return RouterSymmetry::none;
    std::vector<const CommCall*> calls;
    for (const Step& step : program.main)
        if (step.type == Step::Type::comm) calls.push_back(step.call);
    for (const auto& group : program.sync) calls.insert(calls.end(), group.begin(), group.end());
    std::unordered_map<const CommCall*, bool> seen;
    bool exact = true;
    for (const CommCall* call : calls) {
        if (!seen.emplace(call, true).second) continue;
        const int g = std::max(1, call->group.size);
        if (procs % g != 0 || (g < R ? R % g != 0 : g % R != 0)) return RouterSymmetry::none;
        for (int i = 0; i < g; ++i)
            for (const auto& step : ReplayBase::call_rank_steps(*call, i))
                for (int j : {step.send_to, step.recv_from})
                    if (j >= 0 && i / R != j / R && i % R != j % R) return RouterSymmetry::none;
        if (exact && !(pair_exchanges_only(*call) && xor_symmetric(*call, R))) exact = false;
    }
    return exact ? RouterSymmetry::exact : RouterSymmetry::approximate;
}

// True when every call of the program is made of pair exchanges (pair_exchanges_only).
bool pair_exchanges_everywhere(const ReplayProgram& program) {
    for (const Step& step : program.main)
        if (step.type == Step::Type::comm && !pair_exchanges_only(*step.call)) return false;
    for (const auto& group : program.sync)
        for (const CommCall* call : group)
            if (!pair_exchanges_only(*call)) return false;
    return true;
}

// The folded replay's conditions (simulator/README.md, "Folded exchanges"): CM02 (no cross traffic,
// both directions of a link alike), a built star or dragonfly (every route the reverse of the
// opposite one, link by link), the actors' replay, and every call made of pair exchanges (unless
// the options accept lone flows, an approximation).
bool foldable_layers(const planner::CostModel& model, bool pairs_only, const SimOptions& options) {
    const auto& cluster = model.cluster();
    const bool star = options.platform.topology == "star" || cluster.topology.kind == clusters::TopologyKind::crossbar;
    const bool dragonfly = options.platform.topology == "cluster" && cluster.topology.kind == clusters::TopologyKind::dragonfly;
    if (!options.reduce || !options.fold_exchanges || options.event_driven || !options.platform.platform_file.empty() ||
        options.platform.network_model != NetworkModel::cm02 || !(star || dragonfly))
        return false;
    return pairs_only || options.fold_lone_flows;
}

}  // namespace

SimResult simulate(const planner::CostModel& model, const planner::ScoredPlan& plan, const SimOptions& given) {
    const ReplayProgram program = build_replay_program(model, plan);
    const bool symmetric = symmetric_layers(model, program, given);
    const RouterSymmetry routers = symmetric ? RouterSymmetry::none : router_symmetry(model, program, given);
    const int router_lanes = routers == RouterSymmetry::none ? 1 : model.cluster().topology.dragonfly_nodes_per_router;
    const bool pairs_only = pair_exchanges_everywhere(program);
    const bool fold = !symmetric && foldable_layers(model, pairs_only, given);
    SimOptions options = given;
    options.platform.shared_duplex = fold;
    options.platform.router_lanes = router_lanes;
    SimResult result = run_in_child(model, options, [&] {
        const int procs = static_cast<int>(model.options().procs);
        const int d = std::max(1, std::min(model.cluster().devices_per_node, procs));
        std::unique_ptr<LayerReplay> replay;
        std::shared_ptr<void> events;  // the event-driven replay, alive through the run
        return run_simulation(
            model, options, [&](const std::vector<sg4::Host*>& hosts, double speed) -> ReplayStart {
                replay.reset(new LayerReplay{
                    {model, speed, options.timeline, std::vector<RankClock>(procs)}, program, GroupMap{procs, d}});
                std::string reduction;
                if (symmetric) {
                    replay->stride = procs;
                    replay->mirror = hosts[1];
                    reduction = "every rank runs the same lockstep-symmetric program on a star of private links: "
                                "rank 0 alone is replayed, its partners' side of each exchange on one mirror host";
                }
                if (fold) {
                    replay->folded = true;
                    reduction = "each pair exchange is one flow on links shared by both directions (folded exchanges" +
                                std::string(pairs_only ? ")" : "; lone flows approximated)");
                }
                if (router_lanes > 1) {
                    replay->stride = router_lanes;
                    replay->router_lanes = router_lanes;
                    reduction = (reduction.empty() ? "" : reduction + "; ") +
                                "one node per dragonfly router replayed (router symmetry: rank xor 1 .. " +
                                std::to_string(router_lanes - 1) + " maps the plan and the topology onto themselves" +
                                std::string(routers == RouterSymmetry::exact ? ")" : "; lone flows approximated)");
                }
                if (!symmetric && options.event_driven) {
                    replay->hosts = &hosts;
                    return start_event_replay(events, model, program, options, hosts, speed,
                                              replay->count_messages(), replay->count_steps());
                }
                spawn_rank_actors(replay.get(), hosts, procs, program.overlap_sync, replay->stride);
                return {replay->clocks, replay->count_messages(), replay->count_steps(), reduction, &replay->link_stats};
            });
    });
    // The symmetric replay: every rank's timeline is rank 0's.
    if (symmetric) replicate_slices(result, static_cast<int>(model.options().procs), 1);
    // Router symmetry: rank r + k's timeline is rank r's (r a replayed rank, k below the lanes).
    if (router_lanes > 1) replicate_slices(result, router_lanes, 1);
    return result;
}

}  // namespace dnnplan::simulator
