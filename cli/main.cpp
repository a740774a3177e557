// The dnnplan executable: argument wiring over the library, nothing else. Exit status 0 on
// success, 1 when no candidate plan is feasible, 2 on bad input or usage.
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/diagnostics.hpp"
#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/network_report.hpp"
#include "reports/plan_report.hpp"

namespace {

using namespace dnnplan;

std::string data_dir() {
    if (const char* env = std::getenv("DNNPLAN_DATA_DIR"); env && *env) return env;
    return DNNPLAN_SOURCE_DIR;
}
std::string networks_dir() { return data_dir() + "/networks"; }
std::string clusters_dir() { return data_dir() + "/clusters"; }

// Emits to stdout or, with --out, writes the file whole.
void emit(const std::string& content, const std::string& out_path) {
    if (out_path.empty())
        std::cout << content;
    else
        write_file_atomically(out_path, content);
}

struct InspectOptions {
    std::string net;
    std::int64_t batch = 0;
    std::string format = "text";
    std::string out;
};

int run_inspect(const InspectOptions& o) {
    std::string path = networks::resolve_network_path(o.net, networks_dir());
    networks::Network network = networks::load_network_file(path);
    std::int64_t batch = o.batch > 0 ? o.batch : network.default_batch;
    networks::totals(network, batch, path);  // rejects a batch whose totals overflow, naming the layer
    std::string text = o.format == "json"  ? reports::network_json(network, batch)
                       : o.format == "csv" ? reports::network_csv(network, batch)
                                           : reports::network_text(network, batch);
    emit(text, o.out);
    return 0;
}

int run_list_networks() {
    for (const auto& name : networks::builtin_network_names(networks_dir())) {
        std::string path = networks_dir() + "/" + name + ".json";
        networks::Network network = networks::load_network_file(path);
        auto t = networks::totals(network, network.default_batch, path);
        std::cout << name << "  " << human_count(static_cast<double>(t.params)) << " params, "
                  << human_count(static_cast<double>(t.fwd_flops) / network.default_batch, "FLOP")
                  << " forward per sample  " << network.description << "\n";
    }
    return 0;
}

int run_list_clusters() {
    for (const auto& name : clusters::builtin_cluster_names(clusters_dir())) {
        clusters::Cluster c = clusters::load_cluster_file(clusters_dir() + "/" + name + ".json");
        std::cout << name << "  " << c.nodes << " nodes x " << c.devices_per_node << " " << c.device.name << ", "
                  << human_bytes(static_cast<double>(c.device.memory_bytes)) << ", "
                  << human_count(c.achievable_flops(DType::fp32), "FLOP/s") << " fp32 achievable  " << c.description
                  << "\n";
    }
    return 0;
}

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

int main(int argc, char** argv) {
    CLI::App app{"dnnplan: plan, simulate and validate the parallel training of a deep neural network"};
    app.require_subcommand(0, 1);

    InspectOptions inspect;
    auto* inspect_cmd = app.add_subcommand("inspect", "per-layer shapes, parameters, FLOPs and activation bytes");
    inspect_cmd->add_option("--net", inspect.net, "network spec file or built-in name (see `dnnplan networks`)")
        ->required();
    inspect_cmd->add_option("--batch", inspect.batch, "batch size (default: the spec's)")->check(CLI::PositiveNumber);
    inspect_cmd->add_option("--format", inspect.format, "text, json or csv")
        ->check(CLI::IsMember({"text", "json", "csv"}));
    inspect_cmd->add_option("--out", inspect.out, "write to this file instead of standard output");

    auto* networks_cmd = app.add_subcommand("networks", "list the built-in networks");
    auto* clusters_cmd = app.add_subcommand("clusters", "list the cluster presets");
    PlanOptions top_plan, sub_plan;
    add_plan_options(&app, top_plan, false);
    auto* plan_cmd = app.add_subcommand("plan", "rank the parallelization strategies (the default command), or re-score --plan FILE");
    add_plan_options(plan_cmd, sub_plan, true);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "dnnplan: " << e.what() << "\n";
        return 2;
    }

    try {
        if (*inspect_cmd) return run_inspect(inspect);
        if (*networks_cmd) return run_list_networks();
        if (*clusters_cmd) return run_list_clusters();
        if (*plan_cmd) return run_plan(sub_plan);
        if (!top_plan.net.empty() || top_plan.procs > 0) return run_plan(top_plan);
        std::cout << app.help();
        return 0;
    } catch (const InputError& e) {
        std::cerr << e.what() << "\n";
        return 2;
    } catch (const std::bad_alloc&) {
        std::cerr << "dnnplan: out of memory\n";
        return 2;
    } catch (const std::exception& e) {
        // Anything else is a bug in dnnplan, but still one line and no abort.
        std::cerr << "dnnplan: internal error: " << e.what() << "\n";
        return 2;
    }
}
