// The replay: schedule from the scored plan, one engine per simulation in a child process, one
// actor per rank (plus one per rank for the overlapped gradient synchronisation).
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xbt/log.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <unordered_map>

#include "common/diagnostics.hpp"
#include "simulator/platform.hpp"
#include "simulator/simulator.hpp"

namespace dnnplan::simulator {

namespace sg4 = simgrid::s4u;
using planner::CommCall;
using planner::CommKind;
using planner::Phase;

Schedule build_schedule(const planner::CostModel& model, const planner::ScoredPlan& plan) {
    const auto& layers = model.network().layers;
    std::vector<std::vector<const CommCall*>> by_layer(layers.size());
    for (const CommCall& call : plan.calls) by_layer[call.layer].push_back(&call);
    // Incoming data first (redistribution of the input, halos), then compute, then the rest.
    auto incoming = [](const CommCall* c) { return c->kind == CommKind::redistribution || c->kind == CommKind::halo; };
    Schedule s;
    s.overlap_sync = model.options().overlap_sync;
    for (std::size_t i = 1; i < layers.size() && i < plan.layers.size(); ++i) {
        const int layer = static_cast<int>(i);
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::forward && incoming(c))
                s.main.push_back({Step::Type::comm, layer, Phase::forward, 0, c});
        s.main.push_back({Step::Type::compute, layer, Phase::forward, plan.layers[i].fwd_compute_s, nullptr});
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::forward && !incoming(c))
                s.main.push_back({Step::Type::comm, layer, Phase::forward, 0, c});
    }
    for (std::size_t i = std::min(layers.size(), plan.layers.size()); i-- > 1;) {
        const int layer = static_cast<int>(i);
        // The output gradient's halo arrives before the backward compute; the input gradient's
        // reduction and its redistribution back to the producer follow it.
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::backward && c->kind == CommKind::halo)
                s.main.push_back({Step::Type::comm, layer, Phase::backward, 0, c});
        s.main.push_back({Step::Type::compute, layer, Phase::backward, plan.layers[i].bwd_compute_s, nullptr});
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::backward && c->kind != CommKind::halo)
                s.main.push_back({Step::Type::comm, layer, Phase::backward, 0, c});
        std::vector<const CommCall*> sync;
        for (const CommCall* c : by_layer[i])
            if (c->phase == Phase::sync) sync.push_back(c);
        if (!sync.empty()) {
            s.main.push_back({Step::Type::sync_ready, layer, Phase::sync, 0, nullptr});
            s.sync.push_back(std::move(sync));
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
    double by_kind[7] = {0, 0, 0, 0, 0, 0, 0};  // indexed by CommKind, blocking calls only
    std::int64_t messages = 0;
    std::vector<Slice> slices;
};

struct Replay {
    const planner::CostModel& model;
    const Schedule& schedule;
    GroupMap map;
    double speed = 1;
    bool timeline = false;
    std::vector<RankClock> clocks;
    int dummy = 0;  // Mailbox::put needs a non-null payload; nothing reads it

    std::string call_name(const CommCall& c) const {
        std::string what = model.network().layers[c.layer].name + " " + c.what;
        if (c.kind == CommKind::halo) return what;
        return what + " (" + clusters::to_string(c.collective) + ", " + clusters::to_string(c.algorithm) + ")";
    }

    // One call of `rank`: the steps of its algorithm, each a full-duplex exchange with
    // asynchronous put and get, as clusters::rank_steps defines them.
    void run_call(const CommCall& call, int rank, int channel, std::unordered_map<long long, sg4::Mailbox*>& boxes,
                  RankClock& clock) {
        const int index = map.my_index(call.group, rank);
        if (index < 0) return;  // an incomplete group (size does not divide P): nothing to replay
        std::vector<clusters::RankStep> steps;
        if (call.kind == CommKind::halo) {
            if (call.what.rfind("pooling", 0) == 0) {
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
        auto mailbox = [&](int from, int to) {
            long long key = (static_cast<long long>(from) << 32) | static_cast<unsigned>(to);
            auto it = boxes.find(key);
            if (it != boxes.end()) return it->second;
            auto* box = sg4::Mailbox::by_name("c" + std::to_string(channel) + ":" + std::to_string(from) + ">" +
                                              std::to_string(to));
            boxes.emplace(key, box);
            return box;
        };
        for (const auto& step : steps) {
            sg4::CommPtr send, recv;
            int* received = nullptr;
            if (step.send_to >= 0) {
                int peer = map.member(call.group, rank, step.send_to);
                send =
                    mailbox(rank, peer)->put_async(&dummy, static_cast<std::uint64_t>(std::llround(step.send_bytes)));
                ++clock.messages;
            }
            if (step.recv_from >= 0) {
                int peer = map.member(call.group, rank, step.recv_from);
                recv = mailbox(peer, rank)->get_async<int>(&received);
            }
            if (send) send->wait();
            if (recv) recv->wait();
        }
    }

    void record(RankClock& clock, int rank, int track, const std::string& cat, double start, const std::string& name) {
        if (!timeline) return;
        clock.slices.push_back(Slice{rank, name, cat, track, start, sg4::Engine::get_clock() - start});
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        std::unordered_map<long long, sg4::Mailbox*> boxes;
        std::vector<std::size_t> deferred;  // sync groups run after the backward pass (no overlap)
        std::size_t sync_index = 0;
        const auto& layers = model.network().layers;
        for (const Step& step : schedule.main) {
            const double start = sg4::Engine::get_clock();
            switch (step.type) {
                case Step::Type::compute:
                    if (step.seconds <= 0) break;
                    sg4::this_actor::execute(step.seconds * speed);
                    (step.phase == Phase::forward ? clock.fwd_compute : clock.bwd_compute) +=
                        sg4::Engine::get_clock() - start;
                    record(clock, rank, 0, "compute", start,
                           layers[step.layer].name + (step.phase == Phase::forward ? " forward" : " backward"));
                    break;
                case Step::Type::comm:
                    run_call(*step.call, rank, 0, boxes, clock);
                    clock.by_kind[static_cast<int>(step.call->kind)] += sg4::Engine::get_clock() - start;
                    record(clock, rank, 0, "communication", start, call_name(*step.call));
                    break;
                case Step::Type::sync_ready:
                    if (schedule.overlap_sync)
                        ready->release();
                    else
                        deferred.push_back(sync_index);
                    ++sync_index;
                    break;
            }
        }
        clock.backward_end = sg4::Engine::get_clock();
        if (schedule.overlap_sync) {
            done->acquire();
        } else {
            for (std::size_t k : deferred)
                for (const CommCall* call : schedule.sync[k]) {
                    const double start = sg4::Engine::get_clock();
                    run_call(*call, rank, 0, boxes, clock);
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
        std::unordered_map<long long, sg4::Mailbox*> boxes;
        for (const auto& group : schedule.sync) {
            ready->acquire();
            for (const CommCall* call : group) {
                const double start = sg4::Engine::get_clock();
                run_call(*call, rank, 1, boxes, clock);
                clock.sync_total += sg4::Engine::get_clock() - start;
                record(clock, rank, 1, "sync", start, call_name(*call));
            }
        }
        done->release();
    }
};

Json slice_to_json(const Slice& s) {
    return Json{{"rank", s.rank},   {"name", s.name},       {"cat", s.cat},
                {"track", s.track}, {"start_s", s.start_s}, {"duration_s", s.duration_s}};
}

// Runs in the child: builds the platform, replays, returns the result as JSON.
Json run_simulation(const planner::CostModel& model, const planner::ScoredPlan& plan, const SimOptions& options) {
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

    Schedule schedule = build_schedule(model, plan);
    Replay replay{model, schedule,         GroupMap{procs, std::max(1, std::min(cluster.devices_per_node, procs))},
                  speed, options.timeline, std::vector<RankClock>(procs)};
    for (int r = 0; r < procs; ++r) {
        auto ready = sg4::Semaphore::create(0);
        auto done = sg4::Semaphore::create(0);
        sg4::Actor::create("rank" + std::to_string(r), platform.hosts[r],
                           [&replay, r, ready, done] { replay.main_actor(r, ready, done); });
        if (schedule.overlap_sync)
            sg4::Actor::create("sync" + std::to_string(r), platform.hosts[r],
                               [&replay, r, ready, done] { replay.sync_actor(r, ready, done); });
    }
    auto wall_start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    engine.run();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    // CPU seconds too: on a shared machine the wall time also measures the other processes.
    double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;

    int critical = 0;
    std::int64_t messages = 0;
    for (int r = 0; r < procs; ++r) {
        messages += replay.clocks[r].messages;
        if (replay.clocks[r].end > replay.clocks[critical].end) critical = r;
    }
    const RankClock& c = replay.clocks[critical];
    Json slices = Json::array();
    for (const auto& clock : replay.clocks)
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
    auto kinds = j.at("by_kind").get<std::vector<double>>();
    s.all_reduce_s = kinds[static_cast<int>(CommKind::all_reduce)];
    s.all_gather_s = kinds[static_cast<int>(CommKind::all_gather)];
    s.reduce_scatter_s = kinds[static_cast<int>(CommKind::reduce_scatter)];
    s.all_to_all_s = kinds[static_cast<int>(CommKind::all_to_all)];
    s.halo_s = kinds[static_cast<int>(CommKind::halo)];
    s.point_to_point_s = kinds[static_cast<int>(CommKind::point_to_point)];
    s.redistribution_s = kinds[static_cast<int>(CommKind::redistribution)];
    s.sync_total_s = j.at("sync_total_s").get<double>();
    s.sync_exposed_s = j.at("sync_exposed_s").get<double>();
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

}  // namespace

SimResult simulate(const planner::CostModel& model, const planner::ScoredPlan& plan, const SimOptions& options) {
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
            result = run_simulation(model, plan, options);
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

}  // namespace dnnplan::simulator
