// The replay: schedule from the scored plan, one engine per simulation in a child process, one
// actor per rank (plus one per rank for the overlapped gradient synchronisation).
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xbt/log.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include "common/diagnostics.hpp"
#include "planner/graph_partition.hpp"
#include "planner/pipeline_program.hpp"
#include "simulator/platform.hpp"
#include "simulator/simulator.hpp"

namespace dnnplan::simulator {

namespace sg4 = simgrid::s4u;
using planner::CommCall;
using planner::CommKind;
using planner::Phase;

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

Schedule build_schedule(const planner::CostModel& model, const planner::ScoredPlan& plan) {
    std::vector<LayerSteps> layers = layer_steps(model.network(), plan);
    Schedule s;
    s.overlap_sync = model.options().overlap_sync;
    for (std::size_t i = 1; i < layers.size(); ++i)
        s.main.insert(s.main.end(), layers[i].forward.begin(), layers[i].forward.end());
    for (std::size_t i = layers.size(); i-- > 1;) {
        s.main.insert(s.main.end(), layers[i].backward.begin(), layers[i].backward.end());
        if (!layers[i].sync.empty()) {
            s.main.push_back({Step::Type::sync_ready, static_cast<int>(i), Phase::sync, 0, nullptr});
            s.sync.push_back(layers[i].sync);
        }
    }
    return s;
}

int GroupMap::my_index(const clusters::GroupPlacement& group, int rank) const {
    const int g = group.size, k = group.per_node, d = devices_per_node;
    if (g <= 1) return 0;
    if (d % k == 0 && g % k == 0) {
        const int node = rank / d, dev = rank % d, span = g / k;
        int index = (node % span) * k + dev % k;
        return member(group, rank, g - 1) < procs ? index : -1;
    }
    return (rank / g + 1) * g <= procs ? rank % g : -1;
}

int GroupMap::member(const clusters::GroupPlacement& group, int rank, int index) const {
    const int g = group.size, k = group.per_node, d = devices_per_node;
    if (d % k == 0 && g % k == 0) {
        const int node = rank / d, dev = rank % d, span = g / k;
        const int lane = dev / k, block = node / span;
        return (block * span + index / k) * d + lane * k + index % k;
    }
    return (rank / g) * g + index;
}

namespace {

// Accumulated seconds of one rank, by what it was doing.
struct RankClock {
    double fwd_compute = 0, bwd_compute = 0, sync_total = 0, backward_end = 0, end = 0;
    planner::PerCommKind by_kind{};  // indexed by CommKind, blocking calls only
    double idle = 0;  // pipelines: waiting for a neighbour stage's message that was not sent yet (the bubble)
    std::int64_t messages = 0;
    std::vector<Slice> slices;
};

using Boxes = std::unordered_map<long long, sg4::Mailbox*>;

// What both replays share: the message steps of a call, the timeline.
struct ReplayBase {
    const planner::CostModel& model;
    double speed = 1;
    bool timeline = false;
    std::vector<RankClock> clocks;
    int dummy = 0;  // Mailbox::put needs a non-null payload; nothing reads it

    std::string call_name(const CommCall& c) const {
        std::string what = model.network().layers[c.layer].name + " " + c.what;
        if (c.kind == CommKind::halo) return what;
        return what + " (" + clusters::to_string(c.collective) + ", " + clusters::to_string(c.algorithm) + ")";
    }

    static sg4::Mailbox* mailbox(Boxes& boxes, const std::string& channel, int from, int to) {
        long long key = (static_cast<long long>(from) << 32) | static_cast<unsigned>(to);
        auto it = boxes.find(key);
        if (it != boxes.end()) return it->second;
        auto* box = sg4::Mailbox::by_name(channel + ":" + std::to_string(from) + ">" + std::to_string(to));
        boxes.emplace(key, box);
        return box;
    }

    // One call of `rank`, member `index` of its group (member(i) is the rank of member i): the
    // steps of its algorithm, each a full-duplex exchange with asynchronous put and get, as
    // clusters::rank_steps defines them.
    template <class Member>
    void run_call(const CommCall& call, int rank, int index, const Member& member, const std::string& channel,
                  Boxes& boxes, RankClock& clock) {
        std::vector<clusters::RankStep> steps;
        if (call.kind == CommKind::halo) {
            if (call.pattern == planner::CommPattern::one_sided_halo) {
                // The model costs a pooling halo as one point-to-point message to the next part.
                clusters::RankStep step;
                if (index + 1 < call.group.size) step.send_to = index + 1, step.send_bytes = call.bytes;
                if (index > 0) step.recv_from = index - 1, step.recv_bytes = call.bytes;
                steps.push_back(step);
            } else {
                steps = clusters::halo_rank_steps(call.group, call.bytes, index);
            }
        } else {
            steps = clusters::rank_steps(call.collective, call.algorithm, call.group, call.bytes, index);
        }
        for (const auto& step : steps) {
            sg4::CommPtr send, recv;
            int* received = nullptr;
            if (step.send_to >= 0) {
                send = mailbox(boxes, channel, rank, member(step.send_to))
                           ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(step.send_bytes)));
                ++clock.messages;
            }
            if (step.recv_from >= 0)
                recv = mailbox(boxes, channel, member(step.recv_from), rank)->template get_async<int>(&received);
            if (send) send->wait();
            if (recv) recv->wait();
        }
    }

    void record(RankClock& clock, int rank, int track, const std::string& cat, double start, const std::string& name) {
        if (!timeline) return;
        clock.slices.push_back(Slice{rank, name, cat, track, start, sg4::Engine::get_clock() - start});
    }

    // A compute or stage-internal communication step; `member` maps the call's group onto ranks.
    template <class MemberOf>
    void run_step(const Step& step, int rank, const MemberOf& member_of, const std::string& channel, Boxes& boxes,
                  RankClock& clock, const std::string& suffix, bool as_backward) {
        const double start = sg4::Engine::get_clock();
        const auto& layers = model.network().layers;
        if (step.type == Step::Type::compute) {
            if (step.seconds <= 0) return;
            sg4::this_actor::execute(step.seconds * speed);
            (as_backward ? clock.bwd_compute : clock.fwd_compute) += sg4::Engine::get_clock() - start;
            record(clock, rank, 0, "compute", start,
                   layers[step.layer].name + (step.phase == Phase::forward ? " forward" : " backward") + suffix);
        } else if (step.type == Step::Type::comm) {
            member_of(*step.call, [&](int index, const auto& member) {
                run_call(*step.call, rank, index, member, channel, boxes, clock);
            });
            clock.by_kind[planner::index_of(step.call->kind)] += sg4::Engine::get_clock() - start;
            record(clock, rank, 0, "communication", start, call_name(*step.call) + suffix);
        }
    }
};

struct Replay : ReplayBase {
    const Schedule& schedule;
    GroupMap map;

    // Calls `body(index, member)` for `rank` in the call's group, unless the group is incomplete
    // (its size does not divide P): nothing to replay then.
    auto member_of(int rank) const {
        return [this, rank](const CommCall& call, const auto& body) {
            const int index = map.my_index(call.group, rank);
            if (index < 0) return;
            body(index, [&](int i) { return map.member(call.group, rank, i); });
        };
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        std::vector<std::size_t> deferred;  // sync groups run after the backward pass (no overlap)
        std::size_t sync_index = 0;
        const auto members = member_of(rank);
        for (const Step& step : schedule.main) {
            if (step.type == Step::Type::sync_ready) {
                if (schedule.overlap_sync)
                    ready->release();
                else
                    deferred.push_back(sync_index);
                ++sync_index;
                continue;
            }
            run_step(step, rank, members, "c0", boxes, clock, "", step.phase != Phase::forward);
        }
        clock.backward_end = sg4::Engine::get_clock();
        if (schedule.overlap_sync) {
            done->acquire();
        } else {
            for (std::size_t k : deferred)
                for (const CommCall* call : schedule.sync[k]) {
                    const double start = sg4::Engine::get_clock();
                    members(*call, [&](int index, const auto& member) {
                        run_call(*call, rank, index, member, "c0", boxes, clock);
                    });
                    clock.sync_total += sg4::Engine::get_clock() - start;
                    record(clock, rank, 0, "sync", start, call_name(*call));
                }
        }
        clock.end = sg4::Engine::get_clock();
    }

    // The gradient all-reduces of one rank, one at a time in backward order, each started once
    // its layer's backward pass is done (the cost model's overlap rule).
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        const auto members = member_of(rank);
        for (const auto& group : schedule.sync) {
            ready->acquire();
            for (const CommCall* call : group) {
                const double start = sg4::Engine::get_clock();
                members(*call, [&](int index, const auto& member) {
                    run_call(*call, rank, index, member, "c1", boxes, clock);
                });
                clock.sync_total += sg4::Engine::get_clock() - start;
                record(clock, rank, 1, "sync", start, call_name(*call));
            }
        }
        done->release();
    }
};

// The pipeline replay: rank = t + T (s + S r).
struct PipelineReplay : ReplayBase {
    const planner::PipelineSpec& spec;
    const planner::PipelineProgram& program;
    std::vector<LayerSteps> layers;  // of one micro-batch on T ranks
    GroupMap inner;                  // the T ranks of a stage, numbered 0..T-1
    // When each rank posted its activations (direction 0) and gradients (1) of each micro-batch,
    // so that a receiver can tell waiting for the sender (bubble) from the transfer itself.
    std::vector<double> put_time;

    int T() const { return spec.tensor; }
    int S() const { return spec.stages; }
    int M() const { return spec.micro_batches; }
    double& posted(int rank, int direction, int micro) { return put_time[(rank * 2 + direction) * M() + micro]; }

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

    // Blocking receive of micro-batch `micro` from `from` (direction 0: activations, 1: gradients).
    void receive(int rank, int from, int direction, int micro, Boxes& boxes, RankClock& clock) {
        const double posted_at = sg4::Engine::get_clock();
        int* received = nullptr;
        mailbox(boxes, direction == 0 ? "a" : "g", from, rank)->get_async<int>(&received)->wait();
        const double end = sg4::Engine::get_clock();
        // Rendezvous: the transfer starts when both sides have posted.
        const double start = std::max(posted_at, posted(from, direction, micro));
        clock.idle += start - posted_at;
        clock.by_kind[planner::index_of(CommKind::point_to_point)] += end - start;
        if (!timeline) return;
        const std::string what = std::string(direction == 0 ? "activations" : "gradients") + " mb" +
                                 std::to_string(micro) + " from rank " + std::to_string(from);
        if (start > posted_at)
            clock.slices.push_back(Slice{rank, "waiting for " + what, "idle", 0, posted_at, start - posted_at});
        clock.slices.push_back(Slice{rank, "receive " + what, "communication", 0, start, end - start});
    }

    void send(int rank, int to, int direction, int micro, double bytes, Boxes& boxes, RankClock& clock,
              std::vector<sg4::CommPtr>& pending) {
        posted(rank, direction, micro) = sg4::Engine::get_clock();
        pending.push_back(mailbox(boxes, direction == 0 ? "a" : "g", rank, to)
                              ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(bytes))));
        ++clock.messages;
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        std::vector<sg4::CommPtr> pending;
        const int s = (rank / T()) % S();
        const auto& stage = program.stages[s];
        const auto members = stage_members(rank);
        const bool overlap = model.options().overlap_sync;
        std::vector<const CommCall*> deferred;
        const std::vector<PipelineOp> ops = pipeline_order(spec.schedule, S(), s, M());
        for (std::size_t k = 0; k < ops.size(); ++k) {
            const PipelineOp& op = ops[k];
            const std::string mb = " mb" + std::to_string(op.micro);
            if (op.forward) {
                if (s > 0) receive(rank, rank - T(), 0, op.micro, boxes, clock);
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward)
                        run_step(step, rank, members, "c0", boxes, clock, mb, false);
                if (s + 1 < S())
                    send(rank, rank + T(), 0, op.micro, program.stages[s + 1].recv_bytes, boxes, clock, pending);
                continue;
            }
            if (s + 1 < S()) receive(rank, rank + T(), 1, op.micro, boxes, clock);
            // Recomputation: only the stage's input was kept; its forward runs again first.
            if (spec.recompute)
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward)
                        run_step(step, rank, members, "c0", boxes, clock, mb + " (recomputed)", true);
            const bool last = k + 1 == ops.size();
            for (int i = stage.last; i >= stage.first; --i) {
                for (const Step& step : layers[i].backward) run_step(step, rank, members, "c0", boxes, clock, mb, true);
                // The layer's gradients are complete after its last micro-batch: its sync may start.
                if (last && !program.sync[i].empty()) {
                    if (overlap)
                        ready->release();
                    else
                        for (const CommCall& call : program.sync[i]) deferred.push_back(&call);
                }
            }
            if (s > 0) send(rank, rank - T(), 1, op.micro, stage.recv_bytes, boxes, clock, pending);
        }
        clock.backward_end = sg4::Engine::get_clock();
        if (overlap)
            done->acquire();
        else
            for (const CommCall* call : deferred) run_sync(*call, rank, "c0", boxes, clock, 0);
        for (auto& comm : pending) comm->wait();
        clock.end = sg4::Engine::get_clock();
    }

    // The stage's gradient syncs, last layer first, each once its layer's last backward is done.
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        const auto& stage = program.stages[(rank / T()) % S()];
        for (int i = stage.last; i >= stage.first; --i) {
            if (program.sync[i].empty()) continue;
            ready->acquire();
            for (const CommCall& call : program.sync[i]) run_sync(call, rank, "c1", boxes, clock, 1);
        }
        done->release();
    }
};

// The graph-partition replay: rank = dev + k r runs device dev of replica r.
struct GraphReplay : ReplayBase {
    const planner::PipelineSpec& spec;
    const planner::GraphPartitionProgram& program;
    std::vector<std::vector<int>> in_edges, out_edges;  // per layer: indices into program.transfers
    std::vector<double> put_time;                       // per (replica, direction, transfer, micro-batch)

    int k() const { return spec.stages; }
    int M() const { return spec.micro_batches; }
    int E() const { return static_cast<int>(program.transfers.size()); }
    std::size_t message(int replica, int direction, int edge, int micro) const {
        return ((static_cast<std::size_t>(replica) * 2 + direction) * E() + edge) * M() + micro;
    }
    // One mailbox per message: the devices' list orders do not send and receive a pair's messages
    // in the same order, so a shared FIFO mailbox would match the wrong ones.
    static sg4::Mailbox* box(int replica, int direction, int edge, int micro) {
        return sg4::Mailbox::by_name("gp" + std::to_string(direction) + ":" + std::to_string(replica) + ":" +
                                     std::to_string(edge) + ":" + std::to_string(micro));
    }
    int rank_of(int layer, int replica) const { return spec.device_of[layer] + k() * replica; }

    void compute(int rank, RankClock& clock, int layer, int micro, bool forward) {
        const double seconds = forward ? program.forward_s[layer] : program.backward_s[layer];
        if (seconds <= 0) return;
        const double start = sg4::Engine::get_clock();
        sg4::this_actor::execute(seconds * speed);
        (forward ? clock.fwd_compute : clock.bwd_compute) += sg4::Engine::get_clock() - start;
        record(
            clock, rank, 0, "compute", start,
            model.network().layers[layer].name + (forward ? " forward" : " backward") + " mb" + std::to_string(micro));
    }

    // Waits for a message whose receive was posted at the start (the model's transfers do not wait
    // for the receiving device: data arrive while it computes). Waiting before the sender has put
    // the message is idle (the bubble); after, the transfer.
    void receive(int rank, int replica, int direction, int edge, int micro, const sg4::CommPtr& comm,
                 RankClock& clock) {
        const double posted_at = sg4::Engine::get_clock();
        comm->wait();
        const double end = sg4::Engine::get_clock();
        const double sent = put_time[message(replica, direction, edge, micro)];
        const double start = std::min(end, std::max(posted_at, sent));
        clock.idle += start - posted_at;
        clock.by_kind[planner::index_of(CommKind::point_to_point)] += end - start;
        if (!timeline || end <= posted_at) return;
        const auto& t = program.transfers[edge];
        const int from = rank_of(direction == 0 ? t.producer : t.consumer, replica);
        const std::string what = std::string(direction == 0 ? "activations" : "gradients") + " mb" +
                                 std::to_string(micro) + " from rank " + std::to_string(from);
        if (start > posted_at)
            clock.slices.push_back(Slice{rank, "waiting for " + what, "idle", 0, posted_at, start - posted_at});
        if (end > start) clock.slices.push_back(Slice{rank, "receive " + what, "communication", 0, start, end - start});
    }

    void send(int replica, int direction, int edge, int micro, RankClock& clock, std::vector<sg4::CommPtr>& pending) {
        put_time[message(replica, direction, edge, micro)] = sg4::Engine::get_clock();
        pending.push_back(
            box(replica, direction, edge, micro)
                ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(program.transfers[edge].bytes))));
        ++clock.messages;
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        const int dev = rank % k(), replica = rank / k();
        const int n = static_cast<int>(program.forward_s.size());
        // Every receive posted now, so that a transfer starts when its sender puts it.
        std::vector<std::vector<sg4::CommPtr>> incoming(static_cast<std::size_t>(2) * E());
        int* received = nullptr;
        for (int e = 0; e < E(); ++e) {
            const auto& t = program.transfers[e];
            const int direction = spec.device_of[t.consumer] == dev ? 0 : spec.device_of[t.producer] == dev ? 1 : -1;
            if (direction < 0) continue;
            for (int m = 0; m < M(); ++m)
                incoming[direction * E() + e].push_back(box(replica, direction, e, m)->get_async<int>(&received));
        }
        std::vector<sg4::CommPtr> pending;
        // The model's list order: all forwards (micro-batch by micro-batch, layers ascending), then
        // all backwards (layers descending).
        for (int m = 0; m < M(); ++m)
            for (int i = 1; i < n; ++i) {
                if (spec.device_of[i] != dev) continue;
                for (int e : in_edges[i]) receive(rank, replica, 0, e, m, incoming[e][m], clock);
                compute(rank, clock, i, m, true);
                for (int e : out_edges[i]) send(replica, 0, e, m, clock, pending);
            }
        for (int m = 0; m < M(); ++m)
            for (int i = n - 1; i >= 1; --i) {
                if (spec.device_of[i] != dev) continue;
                for (int e : out_edges[i]) receive(rank, replica, 1, e, m, incoming[E() + e][m], clock);
                compute(rank, clock, i, m, false);
                for (int e : in_edges[i]) send(replica, 1, e, m, clock, pending);
                // The layer's gradients are complete after its last micro-batch: its sync may start.
                if (m + 1 == M() && !program.sync[i].empty()) ready->release();
            }
        clock.backward_end = sg4::Engine::get_clock();
        done->acquire();
        for (auto& comm : pending) comm->wait();
        clock.end = sg4::Engine::get_clock();
    }

    // The device's gradient syncs over the replicas (ranks dev + k r), last layer first, one at a
    // time, each once its layer's last backward is done: the model always overlaps them.
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        const int dev = rank % k(), replica = rank / k();
        for (int i = static_cast<int>(program.sync.size()) - 1; i >= 1; --i) {
            if (spec.device_of[i] != dev || program.sync[i].empty()) continue;
            ready->acquire();
            for (const CommCall& call : program.sync[i]) {
                if (call.group.size != spec.replicas)
                    throw std::logic_error("graph-partition replay: the sync group of layer " + std::to_string(i) +
                                           " has " + std::to_string(call.group.size) + " ranks, not R");
                const double start = sg4::Engine::get_clock();
                run_call(
                    call, rank, replica, [&](int r) { return dev + k() * r; }, "c1", boxes, clock);
                clock.sync_total += sg4::Engine::get_clock() - start;
                record(clock, rank, 1, "sync", start, call_name(call));
            }
        }
        done->release();
    }
};

Json slice_to_json(const Slice& s) {
    return Json{{"rank", s.rank},   {"name", s.name},       {"cat", s.cat},
                {"track", s.track}, {"start_s", s.start_s}, {"duration_s", s.duration_s}};
}

// Runs in the child: builds the engine and the platform, lets `start` create the actors (it
// returns the clocks they fill), runs, and returns the result as JSON.
template <class Start>
Json run_simulation(const planner::CostModel& model, const SimOptions& options, const Start& start) {
    const auto& cluster = model.cluster();
    const int procs = static_cast<int>(model.options().procs);
    int argc = 1;
    char program[] = "dnnplan-simulate";
    char* argv[] = {program, nullptr};
    sg4::Engine engine(&argc, argv);
    xbt_log_control_set("xbt_cfg.thres:warning");
    xbt_log_control_set("root.thres:critical");
    const double speed = cluster.achievable_flops(model.options().dtype);
    BuiltPlatform platform = build_platform(engine, cluster, procs, speed, options.platform);
    const std::vector<RankClock>& clocks = start(platform.hosts, speed);

    auto wall_start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    engine.run();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    // CPU seconds too: on a shared machine the wall time also measures the other processes.
    double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;

    int critical = 0;
    std::int64_t messages = 0;
    for (int r = 0; r < procs; ++r) {
        messages += clocks[r].messages;
        if (clocks[r].end > clocks[critical].end) critical = r;
    }
    const RankClock& c = clocks[critical];
    Json slices = Json::array();
    for (const auto& clock : clocks)
        for (const auto& s : clock.slices) slices.push_back(slice_to_json(s));
    std::string mapping =
        "rank r = node x devices_per_node + device; a group of size g with k members per node takes k consecutive "
        "devices (a lane) on g/k consecutive nodes, as the cost model's placement assumes";
    return Json{{"critical_rank", critical},
                {"fwd_compute_s", c.fwd_compute},
                {"bwd_compute_s", c.bwd_compute},
                {"by_kind", std::vector<double>(std::begin(c.by_kind), std::end(c.by_kind))},
                {"sync_total_s", c.sync_total},
                {"sync_exposed_s", c.end - c.backward_end},
                {"bubble_s", c.idle},
                {"iteration_s", c.end},
                {"messages", messages},
                {"wall_s", wall},
                {"cpu_s", cpu},
                {"platform_kind", platform.kind},
                {"platform_summary", platform.summary},
                {"platform_hosts", static_cast<std::int64_t>(engine.get_host_count())},
                {"link_bandwidth_Bps", platform.link_bandwidth_Bps},
                {"link_latency_s", platform.link_latency_s},
                {"rank_mapping", mapping},
                {"slices", slices}};
}

void write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

SimResult result_from_json(const Json& j) {
    SimResult r;
    r.critical_rank = j.at("critical_rank").get<int>();
    auto& s = r.simulated;
    s.fwd_compute_s = j.at("fwd_compute_s").get<double>();
    s.bwd_compute_s = j.at("bwd_compute_s").get<double>();
    const auto kinds = j.at("by_kind").get<std::vector<double>>();
    for (std::size_t k = 0; k < kinds.size() && k < s.comm_s.size(); ++k) s.comm_s[k] = kinds[k];
    s.sync_total_s = j.at("sync_total_s").get<double>();
    s.sync_exposed_s = j.at("sync_exposed_s").get<double>();
    s.bubble_s = j.at("bubble_s").get<double>();
    s.iteration_s = j.at("iteration_s").get<double>();
    r.messages = j.at("messages").get<std::int64_t>();
    r.wall_s = j.at("wall_s").get<double>();
    r.cpu_s = j.at("cpu_s").get<double>();
    r.platform_kind = j.at("platform_kind").get<std::string>();
    r.platform_summary = j.at("platform_summary").get<std::string>();
    r.platform_hosts = j.at("platform_hosts").get<std::int64_t>();
    r.link_bandwidth_Bps = j.at("link_bandwidth_Bps").get<double>();
    r.link_latency_s = j.at("link_latency_s").get<double>();
    r.rank_mapping = j.at("rank_mapping").get<std::string>();
    for (const auto& s : j.at("slices"))
        r.slices.push_back(Slice{s.at("rank").get<int>(), s.at("name").get<std::string>(),
                                 s.at("cat").get<std::string>(), s.at("track").get<int>(),
                                 s.at("start_s").get<double>(), s.at("duration_s").get<double>()});
    return r;
}

// Runs `body` (which builds an engine) in a child process and returns its JSON result.
template <class Body>
SimResult in_child(const planner::CostModel& model, const Body& body) {
    if (model.options().procs > (1 << 20)) throw InputError("simulate", "", "more than 2^20 ranks cannot be simulated");
    int out_pipe[2], err_pipe[2];
    if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("simulate: cannot create a pipe");
    ::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("simulate: cannot fork");
    if (pid == 0) {
        // The child: SimGrid's own messages go to the error pipe, the result to the output pipe.
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        ::dup2(err_pipe[1], 2);
        Json result;
        try {
            result = body();
        } catch (const InputError& e) {
            result =
                Json{{"error",
                      {{"type", "input"}, {"file", e.file()}, {"location", e.location()}, {"message", e.message()}}}};
        } catch (const std::exception& e) {
            result = Json{{"error", {{"type", "internal"}, {"message", e.what()}}}};
        }
        write_all(out_pipe[1], result.dump());
        ::close(out_pipe[1]);
        ::_exit(0);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    std::string out, err;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open = 2;
    char buffer[65536];
    while (open > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
            if (n > 0) {
                (i == 0 ? out : err).append(buffer, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open;
            }
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    auto last_line = [](const std::string& text) {
        std::size_t end = text.find_last_not_of("\n ");
        if (end == std::string::npos) return std::string("no message");
        std::size_t begin = text.rfind('\n', end);
        return text.substr(begin == std::string::npos ? 0 : begin + 1,
                           end - (begin == std::string::npos ? 0 : begin + 1) + 1);
    };
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) {
        // SimGrid aborted (xbt_die): report its last line, never its backtrace.
        std::string first = err.substr(0, err.find('\n'));
        throw std::runtime_error("the SimGrid simulation failed: " + (first.empty() ? last_line(err) : first));
    }
    Json result = Json::parse(out);
    if (result.contains("error")) {
        const Json& e = result["error"];
        if (e.at("type") == "input")
            throw InputError(e.at("file").get<std::string>(), e.at("location").get<std::string>(),
                             e.at("message").get<std::string>());
        throw std::runtime_error("simulation failed: " + e.at("message").get<std::string>());
    }
    return result_from_json(result);
}

// One actor per rank running the replay's main program on its host, and beside it (when the
// gradient sync overlaps) one running its sync stream; the pair shares two semaphores.
template <class ReplayType>
void spawn_rank_actors(ReplayType* replay, const std::vector<sg4::Host*>& hosts, int procs, bool with_sync) {
    for (int r = 0; r < procs; ++r) {
        auto ready = sg4::Semaphore::create(0);
        auto done = sg4::Semaphore::create(0);
        sg4::Actor::create("rank" + std::to_string(r), hosts[r],
                           [replay, r, ready, done] { replay->main_actor(r, ready, done); });
        if (with_sync)
            sg4::Actor::create("sync" + std::to_string(r), hosts[r],
                               [replay, r, ready, done] { replay->sync_actor(r, ready, done); });
    }
}

}  // namespace

SimResult simulate(const planner::CostModel& model, const planner::ScoredPlan& plan, const SimOptions& options) {
    return in_child(model, [&] {
        const int procs = static_cast<int>(model.options().procs);
        const int d = std::max(1, std::min(model.cluster().devices_per_node, procs));
        Schedule schedule = build_schedule(model, plan);
        std::unique_ptr<Replay> replay;
        return run_simulation(
            model, options, [&](const std::vector<sg4::Host*>& hosts, double speed) -> const std::vector<RankClock>& {
                replay.reset(new Replay{
                    {model, speed, options.timeline, std::vector<RankClock>(procs)}, schedule, GroupMap{procs, d}});
                spawn_rank_actors(replay.get(), hosts, procs, schedule.overlap_sync);
                return replay->clocks;
            });
    });
}

SimResult simulate_pipeline(const planner::CostModel& model, const planner::PipelineSpec& spec,
                            const std::vector<planner::Layout>& layouts, const SimOptions& options) {
    if (!spec.device_of.empty()) return simulate_graph_partition(model, spec, layouts, options);
    std::string problem = planner::pipeline_problem(model, spec);
    if (!problem.empty()) throw InputError("simulate", "/pipeline", problem);
    const planner::PipelineProgram program = planner::pipeline_program(model, spec, layouts);
    return in_child(model, [&] {
        const int procs = static_cast<int>(model.options().procs);
        const int d = std::max(1, std::min(model.cluster().devices_per_node, spec.tensor));
        std::unique_ptr<PipelineReplay> replay;
        const bool overlap = model.options().overlap_sync;
        return run_simulation(
            model, options, [&](const std::vector<sg4::Host*>& hosts, double speed) -> const std::vector<RankClock>& {
                replay.reset(new PipelineReplay{
                    {model, speed, options.timeline, std::vector<RankClock>(procs)},
                    spec,
                    program,
                    layer_steps(model.network(), program.micro),
                    GroupMap{spec.tensor, d},
                    std::vector<double>(static_cast<std::size_t>(procs) * 2 * spec.micro_batches, 0.0)});
                spawn_rank_actors(replay.get(), hosts, procs, overlap);
                return replay->clocks;
            });
    });
}

SimResult simulate_graph_partition(const planner::CostModel& model, const planner::PipelineSpec& spec,
                                   const std::vector<planner::Layout>& layouts, const SimOptions& options) {
    if (spec.device_of.empty())
        throw InputError("simulate", "/pipeline/device_of", "not a graph partition (no device_of)");
    planner::GraphPartitionProgram program;
    try {
        program = planner::graph_partition_program(model, spec, layouts);
    } catch (const std::invalid_argument& e) {
        std::string why = e.what();
        const std::string prefix = "graph_partition_program: ";
        if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
        throw InputError("simulate", "/pipeline", why);
    }
    return in_child(model, [&] {
        const int procs = static_cast<int>(model.options().procs);
        std::unique_ptr<GraphReplay> replay;
        return run_simulation(
            model, options, [&](const std::vector<sg4::Host*>& hosts, double speed) -> const std::vector<RankClock>& {
                const std::size_t n = program.forward_s.size();
                replay.reset(new GraphReplay{{model, speed, options.timeline, std::vector<RankClock>(procs)},
                                             spec,
                                             program,
                                             std::vector<std::vector<int>>(n),
                                             std::vector<std::vector<int>>(n),
                                             {}});
                for (int e = 0; e < static_cast<int>(program.transfers.size()); ++e) {
                    replay->in_edges[program.transfers[e].consumer].push_back(e);
                    replay->out_edges[program.transfers[e].producer].push_back(e);
                }
                replay->put_time.assign(
                    static_cast<std::size_t>(spec.replicas) * 2 * program.transfers.size() * spec.micro_batches, 0.0);
                spawn_rank_actors(replay.get(), hosts, procs, true);  // the model always overlaps this family's sync
                return replay->clocks;
            });
    });
}

}  // namespace dnnplan::simulator
