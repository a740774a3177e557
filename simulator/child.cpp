// The child process of a simulation: fork, the engine's run, and the result as JSON over a pipe.
#include "simulator/child.hpp"

#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <csignal>
#include <atomic>
#include <new>
#include <sys/wait.h>
#include <unistd.h>
#include <xbt/log.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "common/diagnostics.hpp"
#include "simulator/platform.hpp"

namespace dnnplan::simulator {

using planner::CommKind;

namespace {

// Shared between the parent and its child (an anonymous shared mapping made before the fork): the
// child writes, the parent reads for its progress bar and its --max-seconds.
struct SharedProgress {
    std::atomic<std::int64_t> ranks{0}, actors{0}, expected_messages{0}, expected_steps{0}, events{0};
    std::atomic<int> started{0};
};
SharedProgress* shared_progress = nullptr;  // set in the child only

double peak_rss_bytes() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
}

Json slice_to_json(const Slice& s) {
    return Json{{"rank", s.rank},   {"name", s.name},       {"cat", s.cat},
                {"track", s.track}, {"start_s", s.start_s}, {"duration_s", s.duration_s}};
}

Slice slice_from_json(const Json& s) {
    return Slice{s.at("rank").get<int>(),  s.at("name").get<std::string>(), s.at("cat").get<std::string>(),
                 s.at("track").get<int>(), s.at("start_s").get<double>(),   s.at("duration_s").get<double>()};
}

// What the child sends back: the critical rank's clock (the rank whose iteration ended last), the
// message count, the platform and every rank's slices. `clocks` holds one clock per rank.
Json encode_result(const std::vector<RankClock>& clocks, const BuiltPlatform& platform, std::int64_t platform_hosts,
                   double wall, double cpu, std::int64_t actors, const std::string& reduction, Json links) {
    int critical = 0;
    std::int64_t messages = 0;
    for (int r = 0; r < static_cast<int>(clocks.size()); ++r) {
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
                {"sync_exposed_s", c.end - c.backward_end - c.optimizer_step},
                {"optimizer_step_s", c.optimizer_step},
                {"bubble_s", c.idle},
                {"iteration_s", c.end},
                {"messages", messages},
                {"wall_s", wall},
                {"cpu_s", cpu},
                {"peak_rss_bytes", peak_rss_bytes()},
                {"platform_kind", platform.kind},
                {"platform_summary", platform.summary},
                {"platform_hosts", platform_hosts},
                {"link_bandwidth_Bps", platform.link_bandwidth_Bps},
                {"link_latency_s", platform.link_latency_s},
                {"rank_mapping", mapping},
                {"ranks", clocks.size()},
                {"actors", actors},
                {"reduction", reduction},
                {"links", std::move(links)},
                {"slices", slices}};
}

SimResult decode_result(const Json& j) {
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
    s.optimizer_step_s = j.value("optimizer_step_s", 0.0);
    s.iteration_s = j.at("iteration_s").get<double>();
    r.messages = j.at("messages").get<std::int64_t>();
    r.wall_s = j.at("wall_s").get<double>();
    r.cpu_s = j.at("cpu_s").get<double>();
    r.peak_rss_bytes = j.at("peak_rss_bytes").get<double>();
    r.platform_kind = j.at("platform_kind").get<std::string>();
    r.platform_summary = j.at("platform_summary").get<std::string>();
    r.platform_hosts = j.at("platform_hosts").get<std::int64_t>();
    r.link_bandwidth_Bps = j.at("link_bandwidth_Bps").get<double>();
    r.link_latency_s = j.at("link_latency_s").get<double>();
    r.rank_mapping = j.at("rank_mapping").get<std::string>();
    r.ranks = j.at("ranks").get<std::int64_t>();
    r.actors = j.at("actors").get<std::int64_t>();
    r.reduction = j.at("reduction").get<std::string>();
    r.links = j.at("links");
    for (const auto& slice : j.at("slices")) r.slices.push_back(slice_from_json(slice));
    return r;
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

// The child: SimGrid's own messages go to the error pipe, the result (or the error) to the output pipe.
[[noreturn]] void child_main(const std::function<Json()>& body, int out_pipe[2], int err_pipe[2]) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::dup2(err_pipe[1], 2);
    Json result;
    try {
        result = body();
    } catch (const InputError& e) {
        result = Json{
            {"error", {{"type", "input"}, {"file", e.file()}, {"location", e.location()}, {"message", e.message()}}}};
    } catch (const std::exception& e) {
        result = Json{{"error", {{"type", "internal"}, {"message", e.what()}}}};
    }
    write_all(out_pipe[1], result.dump());
    ::close(out_pipe[1]);
    ::_exit(0);
}

// Reads both pipes until the child closes them; polling both, so that neither fills up and blocks
// the child. `tick` runs about five times a second; false stops the reading (the child is killed).
bool read_until_closed(int out_fd, int err_fd, std::string& out, std::string& err, const std::function<bool()>& tick) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int open = 2;
    char buffer[65536];
    auto last_tick = std::chrono::steady_clock::now();
    while (open > 0) {
        if (std::chrono::steady_clock::now() - last_tick >= std::chrono::milliseconds(200)) {
            last_tick = std::chrono::steady_clock::now();
            if (!tick()) {
                for (auto& fd : fds)
                    if (fd.fd >= 0) ::close(fd.fd);
                return false;
            }
        }
        if (::poll(fds, 2, 200) < 0) {
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
    return true;
}

std::string last_line(const std::string& text) {
    std::size_t end = text.find_last_not_of("\n ");
    if (end == std::string::npos) return "no message";
    std::size_t begin = text.rfind('\n', end);
    begin = begin == std::string::npos ? 0 : begin + 1;
    return text.substr(begin, end - begin + 1);
}

// The parent's reading of what the child left: its exit status, its output and its error stream.
SimResult result_or_throw(int status, const std::string& out, const std::string& err) {
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
    return decode_result(result);
}

}  // namespace

void replicate_slices(SimResult& result, int copies, int step) {
    const std::size_t n = result.slices.size();
    result.slices.reserve(n * static_cast<std::size_t>(std::max(1, copies)));
    for (int k = 1; k < copies; ++k)
        for (std::size_t i = 0; i < n; ++i) {
            Slice s = result.slices[i];
            s.rank += k * step;
            result.slices.push_back(std::move(s));
        }
    std::stable_sort(result.slices.begin(), result.slices.end(),
                     [](const Slice& a, const Slice& b) { return a.rank < b.rank; });
}

void count_shared_event() {
    if (shared_progress) shared_progress->events.fetch_add(1, std::memory_order_relaxed);
}

Json run_simulation(const planner::CostModel& model, const SimOptions& given, const StartActors& start,
                    const Configure& configure) {
    const auto& cluster = model.cluster();
    const int procs = static_cast<int>(model.options().procs);
    int argc = 1;
    char program[] = "dnnplan-simulate";
    char* argv[] = {program, nullptr};
    sg4::Engine engine(&argc, argv);
    xbt_log_control_set("xbt_cfg.thres:warning");
    xbt_log_control_set("root.thres:critical");
    SimOptions options = given;
    if (configure) configure(options);
    const double speed = cluster.achievable_flops(model.options().dtype);
    BuiltPlatform platform = build_platform(engine, cluster, procs, speed, options.platform);
    const ReplayStart started = start(platform.hosts, speed);
    const std::vector<RankClock>& clocks = started.clocks;
    const auto actors =
        started.streams >= 0 ? started.streams : static_cast<std::int64_t>(engine.get_actor_count());
    if (shared_progress) {
        shared_progress->ranks = procs;
        shared_progress->actors = actors;
        shared_progress->expected_messages = started.expected_messages;
        shared_progress->expected_steps = started.expected_steps;
        shared_progress->started = 1;
    }

    auto wall_start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    engine.run();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    // CPU seconds too: on a shared machine the wall time also measures the other processes.
    double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    double iteration = 0;
    for (const auto& c : clocks) iteration = std::max(iteration, c.end);
    Json links = started.links ? started.links->to_json(iteration, options.top_links, options.platform.lanes,
                                                             options.platform.router_lanes) : Json();
    return encode_result(clocks, platform, static_cast<std::int64_t>(engine.get_host_count()), wall, cpu, actors,
                         started.reduction, std::move(links));
}

SimResult run_in_child(const planner::CostModel& model, const SimOptions& options, const std::function<Json()>& body) {
    if (model.options().procs > (1 << 20)) throw InputError("simulate", "", "more than 2^20 ranks cannot be simulated");
    int out_pipe[2], err_pipe[2];
    if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("simulate: cannot create a pipe");
    void* mapped = ::mmap(nullptr, sizeof(SharedProgress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw std::runtime_error("simulate: cannot map the progress block");
    auto* progress = new (mapped) SharedProgress;
    ::fflush(nullptr);
    const auto begin = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("simulate: cannot fork");
    if (pid == 0) {
        shared_progress = progress;
        if (options.memory_pool) enable_memory_pool();
        child_main(body, out_pipe, err_pipe);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    auto snapshot = [&] {
        SimProgress p;
        p.started = progress->started.load() != 0;
        p.ranks = progress->ranks.load();
        p.actors = progress->actors.load();
        p.expected_messages = progress->expected_messages.load();
        p.expected_steps = progress->expected_steps.load();
        p.events = progress->events.load();
        p.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        return p;
    };
    std::string out, err;
    const bool finished = read_until_closed(out_pipe[0], err_pipe[0], out, err, [&] {
        const SimProgress p = snapshot();
        if (options.on_progress) options.on_progress(p);
        return options.max_seconds <= 0 || p.wall_s < options.max_seconds;
    });
    const SimProgress last = snapshot();
    if (!finished) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::munmap(mapped, sizeof(SharedProgress));
    if (!finished) {
        std::string done = last.started ? std::to_string(last.events) + " of " +
                                              std::to_string(last.expected_messages + last.expected_steps) +
                                              " messages and steps replayed"
                                        : "the platform was still being built";
        char limit[32];
        std::snprintf(limit, sizeof limit, "%g", options.max_seconds);
        throw SimulationStopped("the simulation was stopped after " + std::string(limit) +
                                " s (--max-seconds): " + done + "; no result");
    }
    if (options.on_progress) options.on_progress(last);
    return result_or_throw(status, out, err);
}

}  // namespace dnnplan::simulator
