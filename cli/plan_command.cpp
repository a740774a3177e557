// `dnnplan plan` (also the default command): rank the strategies for a network on a cluster, or
// re-score a saved plan file.
#include <iostream>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/plan_report.hpp"

namespace dnnplan::cli {
namespace {

struct PlanOptions {
    std::string net;
    std::string cluster = "cori-knl";
    std::int64_t procs = 0;
    std::int64_t batch = 0;
    std::string dtype;
    std::string optimizer = "sgd";
    bool no_overlap = false;
    bool roofline = false;
    int top = 10;
    std::string format = "text";
    std::string out;
    std::string plan_file;
};

void add_plan_options(CLI::App* app, PlanOptions& o, bool with_plan_file) {
    app->add_option("--net", o.net, "network spec file or built-in name (see `dnnplan networks`)");
    app->add_option("--procs,-p", o.procs, "number of processes P");
    app->add_option("--cluster", o.cluster, "cluster file or preset name (see `dnnplan clusters`)")->capture_default_str();
    app->add_option("--batch", o.batch, "global batch size (default: the network's)");
    app->add_option("--dtype", o.dtype, "fp32, fp16 or bf16 (default: the network's)")
        ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
    app->add_option("--optimizer", o.optimizer, "sgd (with momentum) or adam")->capture_default_str()->check(CLI::IsMember({"sgd", "adam"}));
    app->add_flag("--no-overlap", o.no_overlap, "do not overlap gradient all-reduce with the backward pass");
    app->add_flag("--roofline", o.roofline, "compute time is the max of FLOPs/rate and bytes/memory bandwidth");
    app->add_option("--top", o.top, "how many ranked strategies to show")->capture_default_str()->check(CLI::PositiveNumber);
    app->add_option("--format", o.format, "text, json or csv")->capture_default_str()->check(CLI::IsMember({"text", "json", "csv"}));
    app->add_option("--out", o.out, "write the best plan as JSON to this file");
    if (with_plan_file) app->add_option("--plan", o.plan_file, "re-score a saved (or hand-edited) plan file");
}

int run_plan_file(const PlanOptions& o) {
    Json json = load_json_file(o.plan_file);
    planner::PlanRequest request = planner::parse_plan_request(json, o.plan_file);
    std::string net_path = networks::resolve_network_path(o.net.empty() ? request.network_source : o.net, networks_dir());
    networks::Network network = networks::load_network_file(net_path);
    std::string cluster_path = clusters::resolve_cluster_path(request.cluster_source, clusters_dir());
    clusters::Cluster cluster = clusters::load_cluster_file(cluster_path);
    if (!cluster.supports(request.options.dtype))
        throw InputError(o.plan_file, "/dtype", "cluster " + cluster.name + " has no peak rate for " + to_string(request.options.dtype));
    planner::CostModel model(network, cluster, request.options);
    std::vector<planner::Layout> layouts = planner::layouts_for(request, model, o.plan_file);
    planner::Plan plan{network.name, request.network_source, planner::network_fingerprint(network), cluster.name,
                       request.cluster_source, request.options, request.strategy, request.grid, request.layouts,
                       model.score(layouts)};
    if (o.format == "json")
        emit(planner::plan_to_json(plan, model).dump(2) + "\n", o.out);
    else
        emit(reports::scored_plan_text(model, plan), o.out);
    return plan.scored.cost.feasible ? 0 : 1;
}

int run_plan(const PlanOptions& o) {
    if (!o.plan_file.empty()) return run_plan_file(o);
    if (o.net.empty()) throw InputError("dnnplan", "", "--net is required (a spec file or a built-in name)");
    if (o.procs < 1) throw InputError("dnnplan", "", "--procs must be a positive number of processes");
    std::string net_path = networks::resolve_network_path(o.net, networks_dir());
    networks::Network network = networks::load_network_file(net_path);
    std::string cluster_path = clusters::resolve_cluster_path(o.cluster, clusters_dir());
    clusters::Cluster cluster = clusters::load_cluster_file(cluster_path);
    planner::PlannerOptions options;
    options.procs = o.procs;
    options.batch = o.batch > 0 ? o.batch : network.default_batch;
    options.dtype = o.dtype.empty() ? network.dtype : *parse_dtype(o.dtype);
    options.optimizer = o.optimizer == "adam" ? planner::Optimizer::adam : planner::Optimizer::sgd;
    options.overlap_sync = !o.no_overlap;
    options.roofline = o.roofline;
    if (o.procs > cluster.total_devices())
        throw InputError(cluster_path, "/nodes", "P = " + std::to_string(o.procs) + " exceeds the cluster's " +
                                                     std::to_string(cluster.total_devices()) + " devices");
    if (o.procs > (1 << 22)) throw InputError("dnnplan", "", "--procs above 4194304 is not supported");
    if (!cluster.supports(options.dtype))
        throw InputError(cluster_path, "/device/peak_flops", "no peak rate for " + to_string(options.dtype));
    networks::totals(network, options.batch, net_path);
    planner::CostModel model(network, cluster, options);
    planner::SearchResult result = planner::search(model);
    reports::PlanReportInput input{&model, &result, o.top};
    const planner::Candidate* best = result.best();
    planner::Plan plan;
    if (best) {
        plan = planner::Plan{network.name, o.net, planner::network_fingerprint(network), cluster.name, o.cluster,
                             options, best->strategy, best->grid, {}, best->plan};
        for (int a : model.anchors()) plan.layouts.emplace_back(network.layers[a].name, best->plan.anchor_layouts[a]);
    }
    std::string text = o.format == "json"  ? reports::plan_json(input, plan)
                       : o.format == "csv" ? reports::plan_csv(input)
                                           : reports::plan_text(input);
    std::cout << text;
    if (!best) {
        std::cerr << "dnnplan: no feasible plan: " << (result.ranked.empty() ? "" : result.ranked.front().plan.cost.reason) << "\n";
        return 1;
    }
    if (!o.out.empty()) write_file_atomically(o.out, planner::plan_to_json(plan, model).dump(2) + "\n");
    return 0;
}

}  // namespace

Command add_plan_command(CLI::App& app) {
    auto o = std::make_shared<PlanOptions>();
    auto* cmd = app.add_subcommand("plan", "rank the parallelization strategies (the default command), or re-score --plan FILE");
    add_plan_options(cmd, *o, true);
    return {cmd, [o] { return run_plan(*o); }};
}

Command add_default_plan(CLI::App& app) {
    auto o = std::make_shared<PlanOptions>();
    add_plan_options(&app, *o, false);
    return {&app, [o, &app]() -> int {
                if (!o->net.empty() || o->procs > 0) return run_plan(*o);
                std::cout << app.help();
                return 0;
            }};
}

}  // namespace dnnplan::cli
