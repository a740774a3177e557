// `dnnplan inspect`, `dnnplan networks`, `dnnplan clusters`: what the inputs are, before planning.
#include <iostream>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "common/units.hpp"
#include "networks/network.hpp"
#include "reports/network_report.hpp"

namespace dnnplan::cli {
namespace {

struct InspectOptions {
    std::string net;
    std::int64_t batch = 0;
    std::string format = "text";
    std::string out;
    networks::LoadOptions load;  // --allow-unknown-ops
    std::string layers = "collapsed";  // or "all"
};

int run_inspect(const InspectOptions& o) {
    std::string path = networks::resolve_network_path(o.net, networks_dir());
    networks::Network network = networks::load_network_file(path, o.load);
    std::int64_t batch = o.batch > 0 ? o.batch : network.default_batch;
    networks::totals(network, batch, path);  // rejects a batch whose totals overflow, naming the layer
    std::string text = o.format == "json"  ? reports::network_json(network, batch)
                       : o.format == "csv" ? reports::network_csv(network, batch)
                                           : reports::network_text(network, batch, o.layers == "all", terminal_width());
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

}  // namespace

Command add_inspect_command(CLI::App& app) {
    auto o = std::make_shared<InspectOptions>();
    auto* cmd = app.add_subcommand("inspect", "per-layer shapes, parameters, FLOPs and activation bytes");
    cmd->add_option("--net", o->net, "network spec file or built-in name (see `dnnplan networks`)")->required();
    cmd->add_option("--batch", o->batch, "batch size (default: the spec's)")->check(positive_integer());
    cmd->add_option("--format", o->format, "text, json or csv")->check(CLI::IsMember({"text", "json", "csv"}));
    cmd->add_option("--out", o->out, "write to this file instead of standard output")->check(output_file());
    cmd->add_flag("--allow-unknown-ops", o->load.allow_unknown_ops, "ONNX: import unsupported operators as elementwise layers");
    cmd->add_option("--layers", o->layers, "text: all (every layer) or collapsed (identical numbered blocks once)")
        ->capture_default_str()
        ->check(CLI::IsMember({"all", "collapsed"}));
    return {cmd, [o] { return run_inspect(*o); }};
}

Command add_networks_command(CLI::App& app) {
    return {app.add_subcommand("networks", "list the built-in networks"), run_list_networks};
}

Command add_clusters_command(CLI::App& app) {
    return {app.add_subcommand("clusters", "list the cluster presets"), run_list_clusters};
}

}  // namespace dnnplan::cli
