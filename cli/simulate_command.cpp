// `dnnplan simulate`: replay a plan file on a SimGrid platform and set the simulated iteration
// beside the analytical prediction.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "simulator/simulator.hpp"
#include "sweep/sweep.hpp"

namespace dnnplan::cli {
namespace {

struct SimulateOptions {
    std::string plan_file;
    std::string net;
    std::string cluster;
    std::string platform;
    std::string hosts;
    std::string topology = "cluster";
    double oversubscription = 0;
    std::string network_model = "cm02";
    std::string format = "text";
    std::string trace;
    std::string out;
    double max_seconds = 0;
    bool full = false;
    bool fold_lone_flows = false;
    bool router_symmetry = false;
    int top_links = 10;
};

// CPU seconds SimGrid spends per message (bench/simulator_bench: vgg16 at P = 512 on a star,
// 4.4 us) and per compute or timed call (the gpt3-175b plan's reduced replay); the estimate
// before a run, which contention and a loaded machine can make several times longer.
constexpr double seconds_per_message = 5e-6, seconds_per_step = 3e-6;

std::string with_commas(std::int64_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// The pre-run summary (once the actors exist), then a progress bar on a terminal.
struct SimulateProgress {
    bool terminal = sweep::stderr_is_terminal();
    bool announced = false, drawn = false;
    bool approximating = false;  // --router-symmetry and --fold-lone-flows both given

    void operator()(const simulator::SimProgress& p) {
        if (!p.started) return;
        if (!announced) {
            announced = true;
            char line[200];
            const double estimate = std::max(1.0, static_cast<double>(p.expected_messages) * seconds_per_message +
                                                      static_cast<double>(p.expected_steps) * seconds_per_step);
            std::snprintf(line, sizeof line,
                          "simulate: %s ranks, %s actors, %s messages and %s compute steps to replay; estimated "
                          "%.0f s\n",
                          with_commas(p.ranks).c_str(), with_commas(p.actors).c_str(),
                          with_commas(p.expected_messages).c_str(), with_commas(p.expected_steps).c_str(), estimate);
            std::cerr << line << std::flush;
            // A long exact replay: say which approximations exist (measured within 0.5% of the full
            // replay on the dragonfly cases of simulator/README.md) rather than let the user wait.
            if (estimate > 60 && !approximating)
                std::cerr << "simulate: on a dragonfly, --router-symmetry --fold-lone-flows replay this approximately "
                             "in a fraction of the time (simulator/README.md, \"Router symmetry\")\n"
                          << std::flush;
        }
        const std::int64_t total = p.expected_messages + p.expected_steps;
        if (!terminal || total <= 0) return;
        const double done = std::min(1.0, static_cast<double>(p.events) / static_cast<double>(total));
        const int width = 30;
        const double left = done > 0 ? p.wall_s * (1 - done) / done : 0;
        char line[200];
        std::snprintf(line, sizeof line, "\r[%-*s] %3.0f%% of messages and steps, %.0f s elapsed, about %.0f s left ",
                      width, std::string(static_cast<std::size_t>(width * done), '#').c_str(), 100 * done, p.wall_s,
                      left);
        std::cerr << line << std::flush;
        drawn = true;
    }
    void finish() {
        if (drawn) std::cerr << "\r" << std::string(110, ' ') << "\r" << std::flush;
        drawn = false;
    }
};

std::vector<std::string> read_host_list(const std::string& path) {
    std::istringstream in(read_text_file(path));
    std::vector<std::string> hosts;
    std::string line;
    while (std::getline(in, line)) {
        std::size_t begin = line.find_first_not_of(" \t\r");
        if (begin == std::string::npos || line[begin] == '#') continue;
        std::size_t end = line.find_last_not_of(" \t\r");
        hosts.push_back(line.substr(begin, end - begin + 1));
    }
    return hosts;
}

// The plan document `json` (from `source`) replayed with `options`: the planner's own functions
// load it (parse_plan_request, layouts_for, pipeline_for), so the replay is the scored plan itself.
struct LoadedPlan {
    networks::Network network;
    clusters::Cluster cluster;
    planner::PlanRequest request;
};

simulator::SimResult simulate_document(const Json& json, const std::string& source, const std::string& net,
                                       const std::string& cluster_override, const simulator::SimOptions& options,
                                       planner::CostBreakdown& predicted, Json* identity = nullptr) {
    auto loaded = std::make_unique<LoadedPlan>();
    loaded->request = planner::parse_plan_request(json, source);
    planner::PlanRequest& request = loaded->request;
    PlanSources sources = load_plan_sources(request, source, net, cluster_override);
    loaded->network = std::move(sources.network);
    loaded->cluster = std::move(sources.cluster);
    const clusters::Cluster& cluster = loaded->cluster;
    const simulator::PlatformOptions& platform = options.platform;
    if (platform.oversubscription > 0 && (!platform.platform_file.empty() || platform.topology == "star"))
        throw InputError("dnnplan", "--oversubscription",
                         "does not apply with " +
                             std::string(platform.platform_file.empty() ? "--topology star" : "--platform") +
                             " (no fat tree is built)");
    if (platform.oversubscription > 0 && cluster.topology.kind != clusters::TopologyKind::fat_tree)
        throw InputError("dnnplan", "--oversubscription",
                         "applies to fat-tree clusters only; " + cluster.name + "'s topology is " +
                             clusters::to_string(cluster.topology.kind));
    // --cluster replays the plan's layouts on another cluster on purpose: the plan's cluster name
    // (checked by layouts_for against the cluster file) is then the chosen one's.
    if (!cluster_override.empty()) request.cluster_name = cluster.name;
    if (!cluster.supports(request.options.dtype))
        throw InputError(source, "/dtype",
                         "cluster " + cluster.name + " has no peak rate for " + to_string(request.options.dtype));
    planner::check_request_fits_cluster(request, cluster, source);  // P and processes per node
    planner::CostModel model(loaded->network, cluster, request.options);
    std::vector<planner::Layout> layouts = planner::layouts_for(request, model, source);
    // Pipelines (stages, micro-batches, replicas, ZeRO, recomputation) are predicted by
    // score_pipeline and replayed stage by stage; graph partitions (device_of) by
    // score_graph_partition (score_pipeline dispatches) and replayed device by device; single-stage
    // plans by score and the plain replay.
    planner::PipelineSpec spec = planner::pipeline_for(request, model, source);
    planner::ScoredPlan scored =
        spec.active() ? planner::score_pipeline(model, spec, layouts).plan : model.score(layouts);
    predicted = scored.cost;
    // The replay times communication and compute only: say when the plan could not run at all.
    if (!scored.cost.feasible)
        std::cerr << "dnnplan: warning: " << one_line(source) << ": the plan is infeasible ("
                  << one_line(scored.cost.reason) << "); the replay times it all the same\n";
    if (identity)
        *identity = Json{{"file", source},
                         {"network", loaded->network.name},
                         {"fingerprint", planner::network_fingerprint(loaded->network)},
                         {"procs", request.options.procs},
                         {"batch", request.options.batch},
                         {"cluster", cluster.name},
                         {"strategy", planner::to_string(request.strategy)},
                         {"label", request.label}};
    try {
        return !spec.device_of.empty() ? simulator::simulate_graph_partition(model, spec, layouts, options)
               : spec.active()         ? simulator::simulate_pipeline(model, spec, layouts, options)
                                       : simulator::simulate(model, scored, options);
    } catch (const InputError& e) {
        // The simulator names its problems with the plan's pointers (/pipeline...) but not the file.
        if (e.file() != "simulate") throw;
        throw InputError(source, e.location(), e.message());
    }
}

int run_simulate(const SimulateOptions& o) {
    simulator::SimOptions options;
    options.platform.network_model = simulator::parse_network_model(o.network_model, "dnnplan", "--network-model");
    options.platform.topology = o.topology;
    options.platform.oversubscription = o.oversubscription;
    options.platform.platform_file = o.platform;
    // A FIFO, device or directory is refused here (a missing file by the simulator's own message).
    std::error_code ec;
    if (!o.platform.empty() && std::filesystem::exists(o.platform, ec)) check_input_file(o.platform);
    if (!o.hosts.empty()) {
        if (o.platform.empty())
            throw InputError("dnnplan", "--hosts",
                             "--hosts maps ranks onto the hosts of --platform FILE.xml; give --platform too");
        options.platform.hosts = read_host_list(o.hosts);
        options.platform.hosts_source = o.hosts;
    }
    options.timeline = !o.trace.empty();
    options.max_seconds = o.max_seconds;
    options.reduce = !o.full;
    options.fold_lone_flows = o.fold_lone_flows;
    options.router_symmetry = o.router_symmetry;
    options.top_links = o.top_links;
    auto progress = std::make_shared<SimulateProgress>();
    progress->approximating = o.router_symmetry && o.fold_lone_flows;
    options.on_progress = [progress](const simulator::SimProgress& p) { (*progress)(p); };

    simulator::SimResult result;
    planner::CostBreakdown predicted;
    Json identity;
    try {
        result = simulate_document(load_json_file(o.plan_file), o.plan_file, o.net, o.cluster, options, predicted,
                                   &identity);
    } catch (const simulator::SimulationStopped& e) {
        progress->finish();
        std::cerr << "dnnplan simulate: " << e.what() << "\n";
        return 3;
    } catch (...) {
        progress->finish();  // the error's one line starts on a clean line
        throw;
    }
    progress->finish();
    if (!o.trace.empty()) write_file_atomically(o.trace, json_text(simulator::chrome_trace(result)) + "\n");
    // What the result is about (issue 18, item 4): `report --simulated` refuses a result for
    // another network, P, batch or cluster than the report's.
    Json identified = simulator::result_to_json(result, predicted, options);
    identified["strategy"] = identity["strategy"];
    identified["grid"] = identity["label"];
    identified["plan"] = identity;
    std::string text = o.format == "json"  ? json_text(identified, 2) + "\n"
                       : o.format == "csv" ? simulator::result_csv(result, predicted)
                                           : simulator::result_text(result, predicted, options);
    emit(text, o.out);
    return 0;
}

}  // namespace

SimulatedPlan simulate_plan_document(const Json& plan, const std::string& source) {
    simulator::SimOptions options;  // the cluster's own topology, CM02
    SimulatedPlan out;
    planner::CostBreakdown predicted;
    simulator::SimResult result = simulate_document(plan, source, "", "", options, predicted);
    out.predicted_s = predicted.iteration_s;
    out.simulated_s = result.simulated.iteration_s;
    out.wall_s = result.wall_s;
    return out;
}

Command add_simulate_command(CLI::App& app) {
    auto o = std::make_shared<SimulateOptions>();
    auto* cmd = app.add_subcommand(
        "simulate", "replay a plan file on a simulated cluster (SimGrid) and compare with the prediction");
    cmd->add_option("--plan", o->plan_file, "plan file written by `dnnplan ... --out plan.json`")->required();
    cmd->add_option("--net", o->net, "the network (spec, .onnx or built-in name) when not the plan's network.source");
    cmd->add_option("--cluster", o->cluster, "replay on this cluster file or preset instead of the plan's");
    cmd->add_option("--platform", o->platform, "a SimGrid platform XML file instead of the cluster's topology");
    cmd->add_option("--hosts", o->hosts, "with --platform: file naming the host of rank 0, 1, ... one per line");
    cmd->add_option("--topology", o->topology, "cluster: the cluster's own network; star: private links, no contention")
        ->capture_default_str()
        ->check(CLI::IsMember({"cluster", "star"}));
    cmd->add_option("--oversubscription", o->oversubscription, "override the fat tree's leaf oversubscription (e.g. 4)")
        ->check(number_within(1, 1024, "(1 is full bisection)"));
    cmd->add_option("--network-model", o->network_model,
                    "cm02 (alpha-beta, default), lv08 (SimGrid's TCP default) or smpi")
        ->capture_default_str();
    cmd->add_option("--format", o->format, "text, json or csv")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json", "csv"}));
    cmd->add_option("--trace", o->trace,
                    "write the timeline in the Chrome trace event format (Perfetto, chrome://tracing)")
        ->check(output_file());
    cmd->add_option("--out", o->out, "write the report to this file instead of stdout")->check(output_file());
    cmd->add_option("--max-seconds", o->max_seconds,
                    "stop the simulation after this many wall seconds: exit 3, one line on stderr, no output file")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--top-links", o->top_links, "how many of the most loaded links to report (bytes, busy, senders)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--full", o->full,
                  "replay every rank even where the reduced replay applies (simulator/README.md, \"Reduced replay\")");
    cmd->add_flag("--fold-lone-flows", o->fold_lone_flows,
                  "fold pair exchanges even when halos or rings send lone flows (an approximation; simulator/README.md, "
                  "\"Folded exchanges\")");
    cmd->add_flag("--router-symmetry", o->router_symmetry,
                  "on a dragonfly, replay one node per router: exact for xor-symmetric pair exchanges, approximate "
                  "with halos or shifts inside a router (simulator/README.md, \"Router symmetry\")");
    return {cmd, [o] { return run_simulate(*o); }};
}

}  // namespace dnnplan::cli
