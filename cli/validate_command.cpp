// `dnnplan validate` and `dnnplan calibrate`: launch the MPI worker (build/dnnplan-validate, which
// links MPI; dnnplan itself does not) under mpirun, or print the exact mpirun line (--dry-run).
// Checks what can be checked before starting anything (plan files, P against --np), and turns a
// rank's death or a hang into one message naming the rank and the step (validators/README.md).
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <chrono>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"
#include "planner/plan.hpp"
#include "sweep/sweep.hpp"
#include "validators/image.hpp"

namespace dnnplan::cli {
namespace {

struct LaunchOptions {
    int np = 2;
    bool dry_run = false;
    double timeout = 120;
    std::string mpirun;
};

struct ValidateOptions {
    LaunchOptions launch;
    std::vector<std::string> plans;
    std::string net, cluster, strategies, format = "text", out, trace, inject, image;
    std::int64_t batch = 0;
    int warmup = -1, iterations = -1, sgd_steps = -1;
    bool no_check = false;
};

struct CalibrateOptions {
    LaunchOptions launch;
    std::string out, name, report, format = "text", networks;
    std::int64_t batch = 0;
    bool quick = false;
};

void add_launch_options(CLI::App* app, LaunchOptions& o) {
    app->add_option("--np", o.np, "number of MPI ranks")->capture_default_str()->check(integer_within(1, 4096));
    app->add_flag("--dry-run", o.dry_run, "print the mpirun command line instead of running it");
    // 0, negative or NaN would switch the watchdog off without a word.
    app->add_option("--timeout", o.timeout, "seconds one step may take before the run is ended")
        ->capture_default_str()
        ->check(number_within(0.001, 86400, "s"));
    app->add_option("--mpirun", o.mpirun, "the mpirun to use (default: $DNNPLAN_MPIRUN, else mpirun on the PATH)");
}

// The worker sits next to this executable (both are built into the build directory's root).
std::string worker_path() {
    if (const char* env = std::getenv("DNNPLAN_VALIDATE_WORKER"); env && *env) return env;
    std::error_code ec;
    std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return (ec ? std::filesystem::path(".") : self.parent_path()) / "dnnplan-validate";
}

std::string shell_quote(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") ==
                          std::string::npos)
        return s;
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::vector<std::string> mpirun_prefix(const LaunchOptions& o) {
    std::string mpirun = o.mpirun;
    if (mpirun.empty()) {
        const char* env = std::getenv("DNNPLAN_MPIRUN");
        mpirun = env && *env ? env : "mpirun";
    }
    std::vector<std::string> argv{mpirun};
    if (geteuid() == 0) argv.push_back("--allow-run-as-root");  // Open MPI refuses root otherwise
    // Open MPI counts slots in cores, not hardware threads, and refuses more ranks than slots;
    // allowing oversubscription is harmless when there are enough.
    argv.push_back("--oversubscribe");
    argv.insert(argv.end(), {"-np", std::to_string(o.np)});
    return argv;
}

std::string read_step(const std::string& dir, int rank) {
    std::ifstream in(dir + "/rank" + std::to_string(rank) + ".step", std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s.substr(0, s.find('\0'));
}

// The running mpirun, and the first termination signal dnnplan received while it ran.
volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_signal = 0;

// SIGINT, SIGTERM or SIGHUP to dnnplan is passed on to mpirun, which ends its ranks; dnnplan then
// cleans up and dies of the same signal, so the MPI job is never orphaned.
extern "C" void forward_signal(int sig) {
    if (g_signal == 0) g_signal = sig;
    if (g_child > 0) ::kill(static_cast<pid_t>(g_child), sig);
}

// The mpirun to run: a path must be an executable file, a name must be found on the PATH.
void check_launcher(const std::string& mpirun) {
    auto executable = [](const std::string& path) {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
    };
    if (mpirun.find('/') != std::string::npos) {
        if (!executable(mpirun)) throw InputError("dnnplan", "--mpirun", mpirun + " is not an executable file");
        return;
    }
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "");
    for (std::string dir; std::getline(dirs, dir, ':');)
        if (executable((dir.empty() ? "." : dir) + "/" + mpirun)) return;
    throw InputError("dnnplan", "--mpirun",
                     mpirun + " is not on the PATH (install Open MPI, or give --mpirun PATH or $DNNPLAN_MPIRUN)");
}

// Runs argv with stderr copied through and kept; returns the exit status (128 + signal if killed).
// `tick(pid)` is called about every 200 ms while it runs (to end a run that is stuck).
int run_and_watch(const std::vector<std::string>& argv, std::string& stderr_text,
                  const std::function<void(pid_t)>& tick) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("cannot create a pipe");
    struct sigaction forward {}, previous[3];
    forward.sa_handler = forward_signal;
    sigemptyset(&forward.sa_mask);
    const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; ++i) sigaction(signals[i], &forward, &previous[i]);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("cannot fork");
    if (pid == 0) {
        for (int i = 0; i < 3; ++i) sigaction(signals[i], &previous[i], nullptr);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        std::fprintf(stderr, "dnnplan: cannot run %s: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
    g_child = pid;
    if (g_signal != 0) ::kill(pid, g_signal);  // a signal that came before g_child was set
    close(fds[1]);
    // Open MPI's boxed banners ("-----" lines around "Primary job terminated ...") are kept for
    // the fault analysis but not echoed: dnnplan prints its own one-line summary instead.
    char buf[4096];
    std::string line;
    bool in_banner = false;
    auto echo = [&](const std::string& l) {
        if (l.rfind("-----", 0) == 0) {
            in_banner = !in_banner;
            return;
        }
        // Open MPI's help aggregation notes after an MPI_Abort ("1 more process has sent help
        // message ...", "Set MCA parameter orte_base_help_aggregate ...") say nothing to a user.
        if (l.find("has sent help message") != std::string::npos ||
            l.find("orte_base_help_aggregate") != std::string::npos)
            return;
        if (!in_banner) std::cerr << l;
    };
    for (;;) {
        pollfd readable{fds[0], POLLIN, 0};
        int ready = ::poll(&readable, 1, 200);
        if (tick) tick(pid);
        if (ready == 0 || (ready < 0 && errno == EINTR)) continue;
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        stderr_text.append(buf, static_cast<std::size_t>(n));
        for (ssize_t i = 0; i < n; ++i) {
            line += buf[i];
            if (buf[i] == '\n') {
                echo(line);
                line.clear();
            }
        }
        std::cerr.flush();
    }
    if (!line.empty()) echo(line);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    g_child = 0;
    for (int i = 0; i < 3; ++i) sigaction(signals[i], &previous[i], nullptr);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Launches the worker; on a fault (not 0, 1 = checks failed, 2 = bad input) names the rank and step.
int launch(const LaunchOptions& o, std::vector<std::string> worker_args, bool with_status) {
    std::vector<std::string> argv = mpirun_prefix(o);
    argv.push_back(worker_path());
    argv.insert(argv.end(), worker_args.begin(), worker_args.end());
    if (o.dry_run) {
        std::string line;
        for (const auto& a : argv) line += (line.empty() ? "" : " ") + shell_quote(a);
        std::cout << line << "\n";
        return 0;
    }
    if (!std::filesystem::exists(worker_path()))
        throw InputError(worker_path(), "",
                         "the MPI worker is not built (cmake --build BUILD --target dnnplan-validate)");
    check_launcher(argv.front());
    // The status directory goes where temporary files go ($TMPDIR, else /tmp, as mkstemp(3) users
    // do), so concurrent runs with their own TMPDIR never see each other's rank files.
    const char* tmp_env = std::getenv("TMPDIR");
    const std::string tmp_root = tmp_env && *tmp_env ? tmp_env : "/tmp";
    std::string dir_template = tmp_root + "/dnnplan-validate.XXXXXX";
    char* dir = mkdtemp(dir_template.data());
    if (!dir) throw std::runtime_error("cannot create a status directory in " + tmp_root);
    if (with_status) argv.insert(argv.end(), {"--status-dir", dir});
    std::string err;
    // The ranks' watchdogs (validators/faults.hpp) start once MPI_Init, loading the plans and the
    // check that every rank has the same ones are over, when each rank writes its status file; a
    // rank frozen or dead before that would hold the others for ever, so dnnplan ends a run whose
    // ranks have not all started within the timeout, naming the ranks it finds stopped.
    const auto launched = std::chrono::steady_clock::now();
    std::string startup_failure;
    bool all_started = !with_status;
    auto watch_startup = [&](pid_t mpirun) {
        if (all_started || !startup_failure.empty() ||
            std::chrono::steady_clock::now() - launched < std::chrono::duration<double>(o.timeout))
            return;
        std::vector<int> missing;
        for (int r = 0; r < o.np; ++r)
            if (!std::filesystem::exists(std::string(dir) + "/rank" + std::to_string(r) + ".step")) missing.push_back(r);
        if (missing.empty()) {
            all_started = true;
            return;
        }
        const std::vector<int> stopped = sweep::stopped_ranks("", mpirun);
        std::ostringstream message;
        message << "the MPI start-up (MPI_Init, loading and checking the plans) did not finish within " << o.timeout
                << " s (" << (static_cast<int>(missing.size()) == o.np ? "no rank started" : sweep::rank_list(missing) + " not started")
                << (stopped.empty() ? "" : "; " + sweep::rank_list(stopped) + (stopped.size() == 1 ? " is" : " are") +
                                               " stopped (SIGSTOP or a debugger)")
                << "; --timeout sets the limit)";
        startup_failure = message.str();
        ::kill(mpirun, SIGTERM);  // mpirun ends its ranks, stopped ones included
    };
    int status = run_and_watch(argv, err, watch_startup);
    if (g_signal != 0) {
        // Interrupted: mpirun has ended its ranks; clean up, then die of the same signal.
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        int sig = g_signal;
        std::cerr << "dnnplan: interrupted (" << strsignal(sig) << "); the MPI run was ended\n";
        std::signal(sig, SIG_DFL);
        std::raise(sig);
        return 128 + sig;
    }
    // Status 1 (checks failed) and 2 (bad input) are the worker's, which always says why; the same
    // status with no word and no rank known to have started (calibrate records no steps) is
    // mpirun's own failure.
    const bool worker_started = with_status && std::filesystem::exists(std::string(dir) + "/rank0.step");
    if (!startup_failure.empty()) {
        std::cerr << "dnnplan: " << startup_failure << "; the run was ended\n";
        status = 3;
    } else if ((status == 1 || status == 2) && !worker_started && err.find_first_not_of(" \t\r\n") == std::string::npos) {
        std::cerr << "dnnplan: " << argv.front() << " exited with status " << status
                  << " without starting the worker and without a message; the run was ended\n";
        status = 3;
    } else if (status != 0 && status != 1 && status != 2) {
        std::smatch m;
        std::string what;
        if (std::regex_search(err, m,
                              std::regex("rank ([0-9]+) stopped responding \\(no heartbeat for ([0-9.]+) s\\) in step "
                                         "'([^']*)'; rank ([0-9]+) waited"))) {
            what = "rank " + m[1].str() + " stopped responding (frozen: no heartbeat for " + m[2].str() +
                   " s) in step '" + m[3].str() + "'; rank " + m[4].str() + " waited for it past the timeout of " +
                   std::to_string(static_cast<int>(o.timeout)) + " s";
        } else if (std::regex_search(err, m, std::regex("rank ([0-9]+) (made no progress|waited)[^']*'([^']*)'"))) {
            what = "rank " + m[1].str() + (m[2] == "waited" ? " waited for other ranks" : " hung") + " in step '" +
                   m[3].str() + "' past the timeout of " + std::to_string(static_cast<int>(o.timeout)) + " s";
        } else if (std::regex_search(err, m,
                                     std::regex("process rank ([0-9]+)[^\\n]*(exited on signal [0-9]+[^\\n]*)"))) {
            int rank = std::stoi(m[1]);
            std::string step = read_step(dir, rank);
            what = "rank " + m[1].str() + " died (" + m[2].str() + ") during step '" +
                   (step.empty() ? "start-up" : step) + "'";
        } else {
            what = "the MPI run failed with status " + std::to_string(status);
        }
        std::cerr << "dnnplan: " << what << "; the run was ended\n";
        status = 3;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return status;
}

// Why the cluster at `cluster_source` does not describe this machine, or "" when it does: only a
// spec that `dnnplan calibrate` measured here (its typed measured_on.host is this host) predicts
// what the validator will measure.
std::string foreign_cluster_reason(const std::string& cluster_source, const std::string& plan_file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::string path = cluster_source;
    if (!plan_file.empty() && !fs::path(path).is_absolute() && !fs::exists(path, ec)) {
        fs::path beside = fs::path(plan_file).parent_path() / path;
        if (fs::exists(beside, ec)) path = beside.string();
    }
    clusters::Cluster cluster;
    try {
        cluster = clusters::load_cluster_file(clusters::resolve_cluster_path(path, data_dir() + "/clusters"));
    } catch (const InputError&) {
        return "";  // the worker reports a cluster that does not exist or is malformed
    }
    if (cluster.measured_on.empty()) return "not this machine";
    if (cluster.measured_on.host != clusters::local_host_name())
        return "measured by dnnplan calibrate on host " + one_line(cluster.measured_on.host) + ", not on this one (" +
               one_line(clusters::local_host_name()) + ")";
    return "";
}

// The predictions are for the plan's cluster; a preset (a KNL supercomputer, a DGX) predicts
// nothing about this machine, so a large error there is expected, not a finding (issue 18, item 4).
void note_foreign_cluster(const ValidateOptions& o) {
    std::vector<std::pair<std::string, std::string>> clusters;  // (source, plan file)
    if (!o.cluster.empty())
        clusters.push_back({o.cluster, ""});
    else
        for (const std::string& f : o.plans)
            clusters.push_back({planner::parse_plan_request(load_json_file(f), f).cluster_source, f});
    for (const auto& [source, file] : clusters)
        if (std::string reason = foreign_cluster_reason(source, file); !reason.empty()) {
            std::cerr << "dnnplan validate: note: the predictions are for cluster " << one_line(source)
                      << (file.empty() ? "" : " (" + one_line(file) + "'s)") << ", " << reason
                      << "; for predictions of this machine run `dnnplan calibrate --out "
                         "this-machine.json` and add --cluster this-machine.json\n";
            return;
        }
}

int run_validate(const ValidateOptions& o) {
    // What can be checked without MPI is checked before anything starts.
    if (o.plans.empty() && o.net.empty())
        throw InputError("validate", "", "give --plan FILE (one or more) or --net NAME");
    if (!o.inject.empty() && !std::regex_match(o.inject, std::regex("(kill|hang):[0-9]{1,6}:.+")))
        throw InputError("dnnplan", "--inject-fault",
                         "expected kill:RANK:STEP or hang:RANK:STEP (RANK a number), got \"" + o.inject + "\"");
    for (const std::string& f : o.plans) {
        planner::PlanRequest request = planner::parse_plan_request(load_json_file(f), f);
        if (request.options.procs != o.launch.np)
            throw InputError(f, "/procs",
                             "the plan is for P = " + std::to_string(request.options.procs) +
                                 " processes, but --np is " + std::to_string(o.launch.np));
    }
    // A network that no longer fits the --image size is refused here, naming the layer.
    const validators::ImageSize image = validators::parse_image_size(o.image);
    if (image.given()) {
        const std::string networks_dir = data_dir() + "/networks";
        if (!o.net.empty())
            validators::load_network_at_image(networks::resolve_network_path(o.net, networks_dir), image);
        for (const std::string& f : o.plans)
            validators::load_network_at_image(
                networks::resolve_network_path(planner::parse_plan_request(load_json_file(f), f).network_source,
                                               networks_dir),
                image);
    }
    std::vector<std::string> args{"validate"};
    for (const std::string& f : o.plans) args.insert(args.end(), {"--plan", f});
    auto opt = [&](const char* flag, const std::string& v) {
        if (!v.empty()) args.insert(args.end(), {flag, v});
    };
    auto num = [&](const char* flag, long long v) {
        if (v >= 0) args.insert(args.end(), {flag, std::to_string(v)});
    };
    opt("--net", o.net);
    if (o.batch > 0) num("--batch", o.batch);
    opt("--strategies", o.strategies);
    opt("--image", o.image);
    opt("--cluster", o.cluster);
    opt("--format", o.format);
    opt("--out", o.out);
    opt("--trace", o.trace);
    opt("--inject-fault", o.inject);
    num("--warmup", o.warmup);
    num("--iterations", o.iterations);
    num("--sgd-steps", o.sgd_steps);
    if (o.no_check) args.push_back("--no-check");
    std::ostringstream t;
    t << o.launch.timeout;
    args.insert(args.end(), {"--timeout", t.str()});
    int status = launch(o.launch, args, true);
    if (status == 0 && !o.launch.dry_run) note_foreign_cluster(o);  // after the results it explains
    return status;
}

int run_calibrate(const CalibrateOptions& o) {
    std::vector<std::string> args{"calibrate", "--out", o.out, "--format", o.format};
    if (!o.name.empty()) args.insert(args.end(), {"--name", o.name});
    if (!o.report.empty()) args.insert(args.end(), {"--report", o.report});
    if (o.quick) args.push_back("--quick");
    if (o.batch > 0) args.insert(args.end(), {"--batch", std::to_string(o.batch)});
    if (!o.networks.empty()) args.insert(args.end(), {"--networks", o.networks});
    return launch(o.launch, args, false);
}

}  // namespace

Command add_validate_command(CLI::App& app) {
    auto o = std::make_shared<ValidateOptions>();
    CLI::App* sub = app.add_subcommand("validate", "run plans for real under MPI and compare with the cost model");
    add_launch_options(sub, o->launch);
    sub->add_option("--plan", o->plans, "plan file written by `dnnplan plan --out` (repeat for several)");
    sub->add_option("--net", o->net, "instead of plan files: every feasible candidate of the search for this network");
    sub->add_option("--batch", o->batch, "global batch with --net (default: the network's)")->check(positive_integer());
    sub->add_option("--image", o->image,
                    "input image N or HxW: the network re-inferred at that size (refused if a layer no longer fits)");
    sub->add_option("--strategies", o->strategies, "with --net: comma-separated strategy names (default: all)");
    sub->add_option("--cluster", o->cluster,
                    "cluster for the predictions, e.g. from `dnnplan calibrate` (default: the plan's)");
    sub->add_option("--warmup", o->warmup, "warm-up iterations (default 2)")->check(integer_within(0, 1000000));
    sub->add_option("--iterations", o->iterations, "measured iterations (default 10)")->check(integer_within(1, 1000000));
    sub->add_option("--sgd-steps", o->sgd_steps, "SGD steps compared with the sequential run (default 3)")->check(integer_within(0, 1000000));
    sub->add_flag("--no-check", o->no_check, "skip the comparison with the sequential network");
    sub->add_option("--format", o->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    sub->add_option("--out", o->out, "also write the JSON results to this file")->check(output_file());
    sub->add_option("--trace", o->trace, "write the last iteration's per-rank timeline (Chrome trace format)")->check(output_file());
    sub->add_option("--inject-fault", o->inject, "kill:RANK:STEP or hang:RANK:STEP, to test fault handling");
    return Command{sub, [o] { return run_validate(*o); }};
}

Command add_calibrate_command(CLI::App& app) {
    auto o = std::make_shared<CalibrateOptions>();
    CLI::App* sub = app.add_subcommand("calibrate", "measure this machine under MPI and write a cluster spec");
    add_launch_options(sub, o->launch);
    sub->add_option("--out", o->out, "cluster spec to write (JSON, clusters/README.md format)")->required()->check(output_file());
    sub->add_option("--name", o->name, "the cluster's name (default this-machine)");
    sub->add_option("--report", o->report, "also write every measurement as JSON")->check(output_file());
    sub->add_flag("--quick", o->quick, "fewer message sizes and repetitions");
    sub->add_option("--batch", o->batch,
                    "global batch of the runs to predict (default 8): the training step is timed at batch / ranks")
        ->check(positive_integer());
    sub->add_option("--networks", o->networks,
                    "networks whose training step measures the achievable FLOP/s (default lenet5,smallcnn)");
    sub->add_option("--format", o->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    return Command{sub, [o] { return run_calibrate(*o); }};
}

}  // namespace dnnplan::cli
