// The layer-parallel replay without actors (simulator/README.md, "Event-driven replay"): the same
// program, messages and computes as LayerReplay's actors, but every rank's two streams are state
// machines advanced from SimGrid's activity-completion signal, in the engine's own context. A
// message is one host-to-host flow (Comm::sendto_init) started when both its sender and its
// receiver have posted it, as the mailboxes would match it; a compute is an Exec on the rank's host.
// No actor, no context switch, no mailbox: the flows, their start times and so their sharing are
// the actors' ones.
#include "simulator/replay_events.hpp"

#include <algorithm>
#include <deque>
#include <memory>

#include "simulator/child.hpp"

namespace dnnplan::simulator {

namespace {

struct EventReplay;

// What one rank's stream is doing: a program step (compute, call, optimizer) and, inside a call,
// its message step, waiting for `pending` activities.
struct Stream {
    int rank = 0;
    int track = 0;  // 0: main (forward, backward, deferred syncs), 1: the overlapped sync stream
    std::size_t pc = 0;      // main: index in program.main; sync: index of the layer's sync group
    std::size_t in_group = 0;  // sync: the call within the group
    std::size_t deferred_at = 0;  // main without overlap: the deferred group being run
    const CommCall* call = nullptr;
    int index = -1;  // the rank's member index in `call`'s group
    std::vector<clusters::RankStep> steps;
    std::size_t step = 0;
    int pending = 0;
    double started = 0;  // start of the current program step (call, sync call, compute)
    bool finished = false, waiting_for_sync = false;
    bool packing = false;  // main: the halo call's packing compute after its messages
    enum class Phase { program, deferred, optimizer, done } phase = Phase::program;
};

// A posted side of a message that its partner has not posted yet.
struct Posted {
    Stream* stream = nullptr;
    double bytes = 0;
};

// One started activity: a message between two streams, or a compute of one.
struct Event {
    Stream* sender = nullptr;  // the compute's stream for a compute
    Stream* receiver = nullptr;
    double bytes = 0;
    const CommCall* call = nullptr;
    sg4::ActivityPtr activity;
};

struct EventReplay : ReplayBase {
    const ReplayProgram& program;
    GroupMap map;
    std::vector<Stream> main_streams{}, sync_streams{};
    std::vector<std::size_t> sync_ready{};  // per rank: sync groups whose layer's backward is done
    std::vector<std::vector<std::size_t>> deferred{};
    // The unmatched post of (track, from, to): a stream's step posts one send and one receive at
    // most and waits for both, so a pair holds one unmatched post per direction and stream.
    std::unordered_map<std::uint64_t, Posted> sends_waiting{}, recvs_waiting{};
    std::deque<std::unique_ptr<Event>> finished{};  // freed outside the completion signal

    static std::uint64_t key(int track, int from, int to) {
        return (static_cast<std::uint64_t>(track) << 48) | (static_cast<std::uint64_t>(from) << 24) |
               static_cast<std::uint64_t>(to);
    }

    void start_compute(Stream& s, double seconds) {
        auto event = std::make_unique<Event>();
        event->sender = &s;
        auto exec = sg4::Exec::init();
        exec->set_flops_amount(seconds * speed);
        exec->set_host((*hosts)[s.rank]);
        exec->set_data(event.get());
        event->activity = exec;
        s.pending = 1;
        Event* raw = event.release();
        exec->start();
        (void)raw;  // owned through the activity's data until its completion
    }

    void start_message(Stream* sender, Stream* receiver, double bytes, const CommCall* call) {
        auto* event = new Event{sender, receiver, bytes, call, nullptr};
        auto comm = sg4::Comm::sendto_init((*hosts)[sender->rank], (*hosts)[receiver->rank]);
        comm->set_payload_size(static_cast<std::uint64_t>(std::llround(bytes)));
        comm->set_data(event);
        event->activity = comm;
        comm->start();
    }

    // Posts the stream's current message step; true when it has nothing to wait for.
    bool post_step(Stream& s) {
        const clusters::RankStep& step = s.steps[s.step];
        const auto member = [&](int i) { return map.member(s.call->group, s.rank, i); };
        s.pending = 0;
        if (step.send_to >= 0) {
            const int to = member(step.send_to);
            ++s.pending;
            count_message(clocks[s.rank]);
            auto it = recvs_waiting.find(key(s.track, s.rank, to));
            if (it != recvs_waiting.end()) {
                Stream* receiver = it->second.stream;
                recvs_waiting.erase(it);
                start_message(&s, receiver, step.send_bytes, s.call);
            } else {
                sends_waiting.emplace(key(s.track, s.rank, to), Posted{&s, step.send_bytes});
            }
        }
        if (step.recv_from >= 0) {
            const int from = member(step.recv_from);
            ++s.pending;
            auto it = sends_waiting.find(key(s.track, from, s.rank));
            if (it != sends_waiting.end()) {
                Posted sent = it->second;
                sends_waiting.erase(it);
                start_message(sent.stream, &s, sent.bytes, sent.stream->call);
            } else {
                recvs_waiting.emplace(key(s.track, from, s.rank), Posted{&s, step.recv_bytes});
            }
        }
        return s.pending == 0;
    }

    // Starts `call` on the stream; false when the rank is not in a complete group (nothing to do).
    bool begin_call(Stream& s, const CommCall& call) {
        s.index = map.my_index(call.group, s.rank);
        if (s.index < 0) return false;
        s.call = &call;
        s.steps = call_rank_steps(call, s.index);
        s.step = 0;
        return true;
    }

    // Runs the stream's message steps from the current one until one has to wait; true when the
    // call is over.
    bool run_steps(Stream& s) {
        while (s.step < s.steps.size()) {
            if (!post_step(s)) return false;
            ++s.step;
        }
        return true;
    }

    void on_completion(const sg4::Activity& activity) {
        auto* event = activity.get_data<Event>();
        if (event == nullptr) return;
        const_cast<sg4::Activity&>(activity).set_data(nullptr);
        std::unique_ptr<Event> owned(event);
        if (event->receiver == nullptr) {  // a compute
            event->sender->pending = 0;
            advance(*event->sender, true);
        } else {
            flow(event->sender->rank, event->receiver->rank, event->bytes, activity.get_start_time(), label(*event->call));
            for (Stream* s : {event->sender, event->receiver})
                if (--s->pending == 0) {
                    ++s->step;
                    if (run_steps(*s)) advance(*s, true);
                }
        }
        finished.push_back(std::move(owned));
        while (finished.size() > 64) finished.pop_front();
    }

    // The stream finished what it waited for (`resumed`) or starts: account for it and run on
    // until it has to wait again.
    void advance(Stream& s, bool resumed) {
        if (s.track == 1)
            advance_sync(s, resumed);
        else
            advance_main(s, resumed);
    }

    void end_main_step(Stream& s) {
        RankClock& clock = clocks[s.rank];
        const Step& step = program.main[s.pc];
        const double now = sg4::Engine::get_clock();
        const auto& layers = model.network().layers;
        if (step.type == Step::Type::compute) {
            (step.phase != Phase::forward ? clock.bwd_compute : clock.fwd_compute) += now - s.started;
            record(clock, s.rank, 0, "compute", s.started,
                   layers[step.layer].name + (step.phase == Phase::forward ? " forward" : " backward"));
        } else {
            clock.by_kind[planner::index_of(step.call->kind)] += now - s.started;
            record(clock, s.rank, 0, "communication", s.started, call_name(*step.call));
        }
        ++s.pc;
    }

    // After a halo call's messages, its packing compute (halo_pack_seconds, as the actors' replay);
    // true when it started, false when there is none or it has just ended.
    bool start_packing(Stream& s) {
        if (s.packing) {
            s.packing = false;
            return false;
        }
        const Step& step = program.main[s.pc];
        if (step.type != Step::Type::comm || s.index < 0) return false;
        const double pack = halo_pack_seconds(model, *step.call, s.index);
        if (pack <= 0) return false;
        s.packing = true;
        start_compute(s, pack);
        return true;
    }

    void advance_main(Stream& s, bool resumed) {
        RankClock& clock = clocks[s.rank];
        if (s.phase == Stream::Phase::program) {
            if (resumed) {
                if (start_packing(s)) return;
                end_main_step(s);
            }
            for (; s.pc < program.main.size();) {
                const Step& step = program.main[s.pc];
                s.started = sg4::Engine::get_clock();
                if (step.type == Step::Type::sync_ready) {
                    if (program.overlap_sync) {
                        ++sync_ready[s.rank];
                        Stream& sync = sync_streams[s.rank];
                        if (sync.waiting_for_sync) {
                            sync.waiting_for_sync = false;
                            advance_sync(sync, false);
                        }
                    } else {
                        deferred[s.rank].push_back(deferred[s.rank].size());
                    }
                    ++s.pc;
                    continue;
                }
                if (step.type == Step::Type::compute) {
                    if (step.seconds <= 0) {
                        ++s.pc;
                        continue;
                    }
                    count_shared_event();
                    start_compute(s, step.seconds);
                    return;
                }
                if (begin_call(s, *step.call) && !run_steps(s)) return;
                if (start_packing(s)) return;
                end_main_step(s);
            }
            clock.backward_end = sg4::Engine::get_clock();
            s.phase = Stream::Phase::deferred;
            s.deferred_at = 0;
            s.in_group = 0;
            resumed = false;
            if (program.overlap_sync && !sync_streams[s.rank].finished) {
                s.waiting_for_sync = true;
                return;
            }
        }
        if (s.phase == Stream::Phase::deferred) {
            if (!program.overlap_sync && run_deferred(s, resumed)) return;
            s.phase = Stream::Phase::optimizer;
            if (program.optimizer_step_s > 0) {
                s.started = sg4::Engine::get_clock();
                start_compute(s, program.optimizer_step_s);
                return;
            }
            resumed = false;
        }
        if (s.phase == Stream::Phase::optimizer) {
            if (resumed) {
                clock.optimizer_step += sg4::Engine::get_clock() - s.started;
                record(clock, s.rank, 0, "compute", s.started, "optimizer step");
            }
            s.phase = Stream::Phase::done;
            clock.end = sg4::Engine::get_clock();
        }
    }

    // The syncs after the backward pass (no overlap), on the main stream; true while one waits.
    bool run_deferred(Stream& s, bool resumed) {
        RankClock& clock = clocks[s.rank];
        const auto& groups = deferred[s.rank];
        for (; s.deferred_at < groups.size(); ++s.deferred_at, s.in_group = 0) {
            const auto& group = program.sync[groups[s.deferred_at]];
            for (; s.in_group < group.size(); ++s.in_group) {
                if (!resumed) {
                    s.started = sg4::Engine::get_clock();
                    if (begin_call(s, *group[s.in_group]) && !run_steps(s)) return true;
                }
                resumed = false;
                clock.sync_total += sg4::Engine::get_clock() - s.started;
                record(clock, s.rank, 0, "sync", s.started, call_name(*group[s.in_group]));
            }
        }
        return false;
    }

    // The overlapped sync stream: the layers' all-reduces one at a time, each once its layer's
    // backward is done.
    void advance_sync(Stream& s, bool resumed) {
        RankClock& clock = clocks[s.rank];
        for (; s.pc < program.sync.size(); ++s.pc, s.in_group = 0) {
            if (!resumed && s.in_group == 0 && sync_ready[s.rank] <= s.pc) {
                s.waiting_for_sync = true;
                return;
            }
            const auto& group = program.sync[s.pc];
            for (; s.in_group < group.size(); ++s.in_group) {
                if (!resumed) {
                    s.started = sg4::Engine::get_clock();
                    if (begin_call(s, *group[s.in_group]) && !run_steps(s)) return;
                }
                resumed = false;
                clock.sync_total += sg4::Engine::get_clock() - s.started;
                record(clock, s.rank, 1, "sync", s.started, call_name(*group[s.in_group]));
            }
        }
        s.finished = true;
        Stream& main = main_streams[s.rank];
        if (main.waiting_for_sync) {
            main.waiting_for_sync = false;
            advance_main(main, false);
        }
    }
};

}  // namespace

ReplayStart start_event_replay(std::shared_ptr<void>& holder, const planner::CostModel& model,
                               const ReplayProgram& program, const SimOptions& options,
                               const std::vector<sg4::Host*>& hosts, double speed, std::int64_t messages,
                               std::int64_t steps) {
    const int procs = static_cast<int>(model.options().procs);
    const int d = std::max(1, std::min(model.cluster().devices_per_node, procs));
    auto owned = std::make_shared<EventReplay>(
        EventReplay{{model, speed, options.timeline, std::vector<RankClock>(procs)}, program, GroupMap{procs, d}});
    EventReplay* replay = owned.get();
    holder = owned;
    replay->hosts = &hosts;
    replay->main_streams.resize(procs);
    replay->sync_streams.resize(procs);
    replay->sync_ready.assign(procs, 0);
    replay->deferred.resize(procs);
    sg4::Activity::on_completion_cb([replay](const sg4::Activity& a) { replay->on_completion(a); });
    for (int r = 0; r < procs; ++r) {
        replay->main_streams[r].rank = r;
        replay->sync_streams[r].rank = r;
        replay->sync_streams[r].track = 1;
        if (!program.overlap_sync) replay->sync_streams[r].finished = true;
    }
    for (int r = 0; r < procs; ++r) {
        replay->advance_main(replay->main_streams[r], false);
        if (program.overlap_sync) replay->advance_sync(replay->sync_streams[r], false);
    }
    ReplayStart start{replay->clocks, messages, steps, "", &replay->link_stats};
    start.streams = static_cast<std::int64_t>(procs) * (program.overlap_sync ? 2 : 1);
    return start;
}

}  // namespace dnnplan::simulator
