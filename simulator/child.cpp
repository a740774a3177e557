// The child process of a simulation: fork, the engine's run, and the result as JSON over a pipe.
#include "simulator/child.hpp"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xbt/log.h>

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
                   double wall, double cpu) {
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
                {"sync_exposed_s", c.end - c.backward_end},
                {"bubble_s", c.idle},
                {"iteration_s", c.end},
                {"messages", messages},
                {"wall_s", wall},
                {"cpu_s", cpu},
                {"platform_kind", platform.kind},
                {"platform_summary", platform.summary},
                {"platform_hosts", platform_hosts},
                {"link_bandwidth_Bps", platform.link_bandwidth_Bps},
                {"link_latency_s", platform.link_latency_s},
                {"rank_mapping", mapping},
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

// Reads both pipes until the child closes them; polling both, so that neither fills up and blocks the child.
void read_until_closed(int out_fd, int err_fd, std::string& out, std::string& err) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
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

Json run_simulation(const planner::CostModel& model, const SimOptions& options, const StartActors& start) {
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
    return encode_result(clocks, platform, static_cast<std::int64_t>(engine.get_host_count()), wall, cpu);
}

SimResult run_in_child(const planner::CostModel& model, const std::function<Json()>& body) {
    if (model.options().procs > (1 << 20)) throw InputError("simulate", "", "more than 2^20 ranks cannot be simulated");
    int out_pipe[2], err_pipe[2];
    if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("simulate: cannot create a pipe");
    ::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("simulate: cannot fork");
    if (pid == 0) child_main(body, out_pipe, err_pipe);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    std::string out, err;
    read_until_closed(out_pipe[0], err_pipe[0], out, err);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return result_or_throw(status, out, err);
}

}  // namespace dnnplan::simulator
