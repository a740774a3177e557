// What the three replays (layers, pipeline, graph partition) share: a rank's clock, the message
// steps of one CommCall, the timeline slices, and the spawning of the rank and sync actors.
// Private to simulator/ (SimGrid headers stay out of simulator.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <simgrid/s4u.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "simulator/link_stats.hpp"
#include "simulator/message_link.hpp"
#include "simulator/simulator.hpp"

namespace dnnplan::simulator {
void count_shared_event();  // simulator/child.hpp
}

namespace dnnplan::simulator {

namespace sg4 = simgrid::s4u;
// The plan vocabulary every replay file speaks.
using planner::CommCall;
using planner::CommKind;
using planner::Phase;

// Accumulated seconds of one rank, by what it was doing.
struct RankClock {
    double fwd_compute = 0, bwd_compute = 0, sync_total = 0, backward_end = 0, end = 0;
    double optimizer_step = 0;  // the update after the synchronisation, before `end`
    planner::PerCommKind by_kind{};  // indexed by CommKind, blocking calls only
    double idle = 0;  // pipelines: waiting for a neighbour stage's message that was not sent yet (the bubble)
    std::int64_t messages = 0;
    std::vector<Slice> slices;
};

// One more message sent by the clock's rank (its count, and the running child's shared one).
void count_message(RankClock& clock);

bool pair_exchanges_only(const CommCall& call);  // below

// The packing and unpacking of member `index`'s ghost cells in a halo exchange on a calibrated
// CPU: planner::halo_pack_seconds, the cost model's own charge, for the member's neighbours (its
// sends: 2 inside a line, 1 at its ends or on a two-part line; the model charges its busiest
// member, clusters::halo_neighbours). The replays run it as compute after the call's messages; 0
// for other calls and on devices without the kernel (simulator/README.md, "The replay"). A
// redistribution's pieces likewise: packed for, and unpacked from, each other member.
double halo_pack_seconds(const planner::CostModel& model, const CommCall& call, int index);

// An actor's mailboxes by (from, to): looked up once, since by_name hashes a string each time.
// Open addressing in one array (linear probing, at most half full): every message looks its
// mailbox up, and a node-based map cost 5% of resnet50's best plan at P = 4,096 in cache misses.
class Boxes {
public:
    sg4::Mailbox* find(long long key) const {
        if (slots_.empty()) return nullptr;
        for (std::size_t i = slot(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].box == nullptr) return nullptr;
            if (slots_[i].key == key) return slots_[i].box;
        }
    }
    void insert(long long key, sg4::Mailbox* box) {
        if (2 * (used_ + 1) > slots_.size()) grow();
        std::size_t i = slot(key);
        while (slots_[i].box != nullptr) i = (i + 1) & (slots_.size() - 1);
        slots_[i] = {key, box};
        ++used_;
    }

private:
    struct Slot {
        long long key = 0;
        sg4::Mailbox* box = nullptr;
    };
    std::vector<Slot> slots_;
    std::size_t used_ = 0;
    std::size_t slot(long long key) const {
        return static_cast<std::size_t>((static_cast<unsigned long long>(key) * 0x9E3779B97F4A7C15ULL) >> 20) &
               (slots_.size() - 1);
    }
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 32 : 2 * old.size(), Slot{});
        used_ = 0;
        for (const Slot& s : old)
            if (s.box != nullptr) insert(s.key, s.box);
    }
};

struct ReplayBase {
    const planner::CostModel& model;
    double speed = 1;
    bool timeline = false;
    std::vector<RankClock> clocks;
    int dummy = 0;  // Mailbox::put needs a non-null payload; nothing reads it
    // The symmetric replay (simulator/README.md, "Reduced replay"): one rank stands for all, and
    // each step's partner is this host, whose links carry the partner's side of the exchange.
    sg4::Host* mirror = nullptr;
    const std::vector<sg4::Host*>* hosts = nullptr;  // rank r's host (set by spawn_rank_actors)
    // The folded replay (simulator/README.md, "Folded exchanges"): the links are SHARED, and each
    // pair exchange of a call made only of pair exchanges is one flow from the lower rank.
    bool folded = false;
    // The router-symmetric replay (simulator/README.md, "Router symmetry"): only ranks r with
    // r % router_lanes == 0 have actors; a partner of another lane (in the same router) is not
    // replayed, and its side of each step is a flow from its host started with the rank's own.
    int router_lanes = 1;
    std::unordered_map<const CommCall*, bool> pair_calls{};  // memo of pair_exchanges_only()
    LinkStats link_stats{};
    std::unordered_map<const CommCall*, std::string> labels{};  // "<what> (<collective>)" per call

    // A flow between two hosts that started at `start` and ends now, for the per-link report.
    void flow(sg4::Host* from, sg4::Host* to, double bytes, double start, const std::string& what) {
        link_stats.record(from, to, bytes, start, what);
    }
    void flow(int from, int to, double bytes, double start, const std::string& what) {
        if (hosts) flow((*hosts)[from], (*hosts)[to], bytes, start, what);
    }
    const std::string& label(const CommCall& call);

    // Point-to-point messages on the cost model's message link (message_link.hpp); null when the
    // cluster's message link is its collective link (every preset) or the platform is not built.
    std::unique_ptr<MessageLinks> message_links{};
    // The simulated size of a point-to-point message of `bytes` from rank `from` to rank `to`
    // (a pipeline boundary, a cut tensor), announced to the message link: call it just before the put.
    std::uint64_t message_bytes(int from, int to, double bytes) {
        const auto size = static_cast<std::uint64_t>(std::llround(bytes));
        if (message_links) message_links->expect(from, to, size);
        return size;
    }

    // "<layer> <what> (<collective>, <algorithm>)"; a halo has no collective.
    std::string call_name(const CommCall& call) const;

    static sg4::Mailbox* mailbox(Boxes& boxes, const std::string& channel, int from, int to);

    // One call of `rank`, member `index` of its group (member(i) is the rank of member i): the
    // steps of its algorithm, each a full-duplex exchange with asynchronous put and get, as
    // clusters::rank_steps defines them.
    template <class Member>
    void run_call(const CommCall& call, int rank, int index, const Member& member, const std::string& channel,
                  Boxes& boxes, RankClock& clock) {
        if (mirror) {
            run_mirrored(call, index, clock);
            return;
        }
        if (folded && pair_call(call)) {
            run_folded(call, rank, index, member, channel, boxes, clock);
            return;
        }
        if (router_lanes > 1) {
            run_router(call, rank, index, member, channel, boxes, clock);
            return;
        }
        for (const auto& step : call_rank_steps(call, index)) {
            sg4::CommPtr send, recv;
            int* received = nullptr;
            if (step.send_to >= 0) {
                send = mailbox(boxes, channel, rank, member(step.send_to))
                           ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(step.send_bytes)));
                count_message(clock);
            }
            if (step.recv_from >= 0)
                recv = mailbox(boxes, channel, member(step.recv_from), rank)->template get_async<int>(&received);
            if (send) {
                send->wait();
                flow(rank, member(step.send_to), step.send_bytes, send->get_start_time(), label(call));
            }
            if (recv) recv->wait();
        }
    }

    // Member `index` of a call made of pair exchanges on the folded platform: at each step the
    // pair's two messages are one flow, put by the lower rank and got by the higher one; each
    // rank still counts the message it sends in the plan.
    template <class Member>
    void run_folded(const CommCall& call, int rank, int index, const Member& member, const std::string& channel,
                    Boxes& boxes, RankClock& clock) {
        for (const auto& step : call_rank_steps(call, index)) {
            if (step.send_to < 0) continue;
            const int partner = member(step.send_to);
            count_message(clock);
            if (router_lanes > 1 && partner % router_lanes != 0) {
                // Router symmetry: the partner is not replayed; the exchange is one flow to its host.
                sg4::CommPtr send = sg4::Comm::sendto_async(
                    (*hosts)[rank], (*hosts)[partner], std::max<std::uint64_t>(1, std::llround(step.send_bytes)));
                send->wait();
                flow(rank, partner, 2 * step.send_bytes, send->get_start_time(), label(call));
            } else if (rank < partner) {
                sg4::CommPtr send = mailbox(boxes, channel, rank, partner)
                                        ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(step.send_bytes)));
                send->wait();
                // Both directions' bytes: the folded links carry both.
                flow(rank, partner, 2 * step.send_bytes, send->get_start_time(), label(call));
            } else {
                int* received = nullptr;
                mailbox(boxes, channel, partner, rank)->template get_async<int>(&received)->wait();
            }
        }
    }
    // Member `index` under router symmetry: a replayed partner (same lane) through the mailboxes as
    // usual; a partner of another lane of the rank's router is not replayed but runs the same step
    // at the same time (the symmetry), so the rank's send is a flow to its host and its receive a
    // flow from it, both started at once.
    template <class Member>
    void run_router(const CommCall& call, int rank, int index, const Member& member, const std::string& channel,
                    Boxes& boxes, RankClock& clock) {
        sg4::Host* self = (*hosts)[rank];
        // A host-to-host flow of 0 bytes would never start (SimGrid 3.32); 1 byte costs 0.1 ns.
        auto size = [](double bytes) { return std::max<std::uint64_t>(1, std::llround(bytes)); };
        for (const auto& step : call_rank_steps(call, index)) {
            sg4::CommPtr send, recv;
            int* received = nullptr;
            const int to = step.send_to >= 0 ? member(step.send_to) : -1;
            const int from = step.recv_from >= 0 ? member(step.recv_from) : -1;
            if (to >= 0) {
                send = to % router_lanes == 0
                           ? mailbox(boxes, channel, rank, to)
                                 ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(step.send_bytes)))
                           : sg4::Comm::sendto_async(self, (*hosts)[to], size(step.send_bytes));
                count_message(clock);
            }
            if (from >= 0)
                recv = from % router_lanes == 0 ? mailbox(boxes, channel, from, rank)->template get_async<int>(&received)
                                                : sg4::Comm::sendto_async((*hosts)[from], self, size(step.recv_bytes));
            if (send) {
                send->wait();
                flow(rank, to, step.send_bytes, send->get_start_time(), label(call));
            }
            if (recv) {
                recv->wait();
                if (from % router_lanes != 0) flow(from, rank, step.recv_bytes, recv->get_start_time(), label(call));
            }
        }
    }

    bool pair_call(const CommCall& call) {
        auto [it, inserted] = pair_calls.try_emplace(&call, false);
        if (inserted) it->second = pair_exchanges_only(call);
        return it->second;
    }

    // The messages member `index` of `call`'s group sends (memoised: the counts before a run).
    std::int64_t sends(const CommCall& call, int index);
    std::map<std::pair<const CommCall*, int>, std::int64_t> send_counts{};

    // The steps of member `index` against the mirror host: its send goes out on the rank's up link
    // and the mirror's down link, its receive comes in on the mirror's up link and its down link,
    // both started at once (every partner posts at the same time in a lockstep-symmetric call).
    void run_mirrored(const CommCall& call, int index, RankClock& clock);

    // Appends a slice that started at `start` and ends now (with SimOptions::timeline only).
    void record(RankClock& clock, int rank, int track, const std::string& cat, double start, const std::string& name);

    // The optimizer's update once the rank's gradients are synchronised: the step the cost model
    // adds to the iteration after the sync (planner/stage_evaluator.cpp, planner/compute.hpp).
    void run_optimizer_step(double seconds, int rank, RankClock& clock) {
        if (seconds <= 0) return;
        const double start = sg4::Engine::get_clock();
        sg4::this_actor::execute(seconds * speed);
        clock.optimizer_step += sg4::Engine::get_clock() - start;
        record(clock, rank, 0, "compute", start, "optimizer step");
    }

    // A compute or stage-internal communication step; `member_of(call, body)` calls
    // body(index, member) with the rank's place in the call's group.
    template <class MemberOf>
    void run_step(const Step& step, int rank, const MemberOf& member_of, const std::string& channel, Boxes& boxes,
                  RankClock& clock, const std::string& suffix, bool as_backward) {
        const double start = sg4::Engine::get_clock();
        const auto& layers = model.network().layers;
        if (step.type == Step::Type::compute) {
            if (step.seconds <= 0) return;
            sg4::this_actor::execute(step.seconds * speed);
            count_shared_event();
            (as_backward ? clock.bwd_compute : clock.fwd_compute) += sg4::Engine::get_clock() - start;
            record(clock, rank, 0, "compute", start,
                   layers[step.layer].name + (step.phase == Phase::forward ? " forward" : " backward") + suffix);
        } else if (step.type == Step::Type::comm) {
            member_of(*step.call, [&](int index, const auto& member) {
                run_call(*step.call, rank, index, member, channel, boxes, clock);
                if (const double pack = halo_pack_seconds(model, *step.call, index); pack > 0)
                    sg4::this_actor::execute(pack * speed);
            });
            clock.by_kind[planner::index_of(step.call->kind)] += sg4::Engine::get_clock() - start;
            record(clock, rank, 0, "communication", start, call_name(*step.call) + suffix);
        }
    }

    // The message steps of member `index`: the collective's algorithm, a halo exchange, or the
    // model's single message for a pooling halo.
    static std::vector<clusters::RankStep> call_rank_steps(const CommCall& call, int index);
};

// True when every member of `call`'s group runs the same steps in lockstep: the same number of
// steps, and at each step every member sends and receives, or none does, the same bytes both ways
// (ring, recursive halving and doubling, pairwise exchange on a power of two; not halos or trees).
bool lockstep_symmetric(const CommCall& call);

// True when every step of every member of `call`'s group is a pair exchange or idle: the member
// sends to and receives from the same partner the same bytes, and the partner's step of the same
// index is the same exchange back (recursive doubling and halving, Rabenseifner on a power of two,
// anything over 2 ranks, the halo of 2 parts; not rings, shifts or halos over more ranks). Such a
// step's two messages start together and, on routes that are each other's reverse, stay mirror
// images of each other (simulator/README.md, "Folded exchanges").
bool pair_exchanges_only(const CommCall& call);

// The seconds from a common start until the members of `call`'s group have finished, when every
// message costs `latency + bytes / bandwidth` and no two of its messages ever share a link (each
// member has its own up and down link, as inside a built node): the replay's own rules (a message
// starts when its sender and its receiver have both posted it, FIFO per ordered pair, a member's
// next step waits for its send and its receive), evaluated without SimGrid. Returns a negative
// value when the members finish at different times (halos, trees): such a call is not symmetric
// and cannot stand for all its members (simulator/README.md, "Reduced replay").
double isolated_call_seconds(const CommCall& call, double latency, double bandwidth);

// One actor per rank running the replay's main program on its host, and beside it (when the
// gradient sync overlaps) one running its sync stream; the pair shares two semaphores.
// With `stride` > 1 only ranks 0, stride, 2 stride, ... get actors (the reduced replay).
template <class ReplayType>
void spawn_rank_actors(ReplayType* replay, const std::vector<sg4::Host*>& hosts, int procs, bool with_sync,
                       int stride = 1) {
    replay->hosts = &hosts;
    for (int r = 0; r < procs; r += stride) {
        auto ready = sg4::Semaphore::create(0);
        auto done = sg4::Semaphore::create(0);
        sg4::Actor::create("rank" + std::to_string(r), hosts[r],
                           [replay, r, ready, done] { replay->main_actor(r, ready, done); });
        if (with_sync)
            sg4::Actor::create("sync" + std::to_string(r), hosts[r],
                               [replay, r, ready, done] { replay->sync_actor(r, ready, done); });
    }
}

}  // namespace dnnplan::simulator
