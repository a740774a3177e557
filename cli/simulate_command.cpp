// `dnnplan simulate`: replay a plan file on a SimGrid platform and set the simulated iteration
// beside the analytical prediction.
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "simulator/simulator.hpp"

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

    Json json = load_json_file(o.plan_file);
    planner::PlanRequest request = planner::parse_plan_request(json, o.plan_file);
    PlanSources sources = load_plan_sources(request, o.plan_file, o.net, o.cluster);
    const networks::Network& network = sources.network;
    const clusters::Cluster& cluster = sources.cluster;
    if (o.oversubscription > 0 && (!o.platform.empty() || o.topology == "star"))
        throw InputError("dnnplan", "--oversubscription",
                         "does not apply with " + std::string(o.platform.empty() ? "--topology star" : "--platform") +
                             " (no fat tree is built)");
    if (o.oversubscription > 0 && cluster.topology.kind != clusters::TopologyKind::fat_tree)
        throw InputError("dnnplan", "--oversubscription",
                         "applies to fat-tree clusters only; " + cluster.name + "'s topology is " +
                             clusters::to_string(cluster.topology.kind));
    // --cluster replays the plan's layouts on another cluster on purpose: the plan's cluster name
    // (checked by layouts_for against the cluster file) is then the chosen one's.
    if (!o.cluster.empty()) request.cluster_name = cluster.name;
    if (!cluster.supports(request.options.dtype))
        throw InputError(o.plan_file, "/dtype",
                         "cluster " + cluster.name + " has no peak rate for " + to_string(request.options.dtype));
    planner::CostModel model(network, cluster, request.options);
    std::vector<planner::Layout> layouts = planner::layouts_for(request, model, o.plan_file);
    // Pipelines (stages, micro-batches, replicas, ZeRO, recomputation) are predicted by
    // score_pipeline and replayed stage by stage; graph partitions (device_of) by
    // score_graph_partition (score_pipeline dispatches) and replayed device by device; single-stage
    // plans by score and the plain replay.
    planner::PipelineSpec spec = planner::pipeline_for(request, model, o.plan_file);
    planner::ScoredPlan scored =
        spec.active() ? planner::score_pipeline(model, spec, layouts).plan : model.score(layouts);
    simulator::SimResult result;
    try {
        result = !spec.device_of.empty() ? simulator::simulate_graph_partition(model, spec, layouts, options)
                 : spec.active()         ? simulator::simulate_pipeline(model, spec, layouts, options)
                                         : simulator::simulate(model, scored, options);
    } catch (const InputError& e) {
        // The simulator names its problems with the plan's pointers (/pipeline...) but not the file.
        if (e.file() != "simulate") throw;
        throw InputError(o.plan_file, e.location(), e.message());
    }
    if (!o.trace.empty()) write_file_atomically(o.trace, json_text(simulator::chrome_trace(result)) + "\n");
    // What the result is about (issue 18, item 4): `report --simulated` refuses a result for
    // another network, P, batch or cluster than the report's.
    Json identified = simulator::result_to_json(result, scored.cost, options);
    identified["strategy"] = planner::to_string(request.strategy);
    identified["grid"] = request.label;
    identified["plan"] = Json{{"file", o.plan_file},
                              {"network", network.name},
                              {"fingerprint", planner::network_fingerprint(network)},
                              {"procs", request.options.procs},
                              {"batch", request.options.batch},
                              {"cluster", cluster.name},
                              {"strategy", planner::to_string(request.strategy)},
                              {"label", request.label}};
    std::string text = o.format == "json"  ? json_text(identified, 2) + "\n"
                       : o.format == "csv" ? simulator::result_csv(result, scored.cost)
                                           : simulator::result_text(result, scored.cost, options);
    emit(text, o.out);
    return 0;
}

}  // namespace

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
    return {cmd, [o] { return run_simulate(*o); }};
}

}  // namespace dnnplan::cli
