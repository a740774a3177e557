// `dnnplan inspect`, `dnnplan networks`, `dnnplan clusters`: what the inputs are, before planning.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "common/units.hpp"
#include "networks/network.hpp"
#include "reports/network_report.hpp"
#include "reports/text.hpp"

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

// A free text cut to `room` characters ("..." when cut).
std::string summary(const std::string& text, std::size_t room) {
    const std::string safe = reports::terminal_safe(text);
    if (room < 8) return "";
    return safe.size() <= room ? safe : safe.substr(0, room - 3) + "...";
}

// Aligned tables (issue 18): the last column, free text, cut to the width.
std::string listing(reports::TextTable table, const std::string& title, const std::vector<std::string>& texts) {
    std::string bare = table.render();
    std::size_t used = 0;
    for (std::size_t start = 0, end; (end = bare.find('\n', start)) != std::string::npos; start = end + 1)
        used = std::max(used, end - start);
    const int width = terminal_width();
    const std::size_t room = static_cast<std::size_t>(width) > used + 2 ? width - used - 2 : 0;
    table.header.push_back(title);
    for (std::size_t i = 0; i < table.rows.size(); ++i) table.rows[i].push_back(summary(texts[i], room));
    return table.render();
}

int run_list_networks() {
    reports::TextTable table;
    table.header = {"name", "layers", "params", "fwd/sample", "input", "dtype", "batch"};
    std::vector<std::string> descriptions;
    for (const auto& name : networks::builtin_network_names(networks_dir())) {
        std::string path = networks_dir() + "/" + name + ".json";
        networks::Network network = networks::load_network_file(path);
        auto t = networks::totals(network, network.default_batch, path);
        std::string input;
        for (auto d : network.layers.front().output_shape) {
            if (!input.empty()) input += 'x';  // piecewise: GCC 12's false -Wrestrict (PR 105329)
            input += std::to_string(d);
        }
        table.rows.push_back({name, std::to_string(network.layers.size() - 1), human_count(static_cast<double>(t.params)),
                              human_count(static_cast<double>(t.fwd_flops) / network.default_batch, "FLOP"), input,
                              to_string(network.dtype), std::to_string(network.default_batch)});
        descriptions.push_back(network.description);
    }
    std::cout << listing(table, "description", descriptions);
    return 0;
}

int run_list_clusters() {
    reports::TextTable table;
    table.header = {"name", "nodes x dev", "memory", "TFLOP/s fp32", "fp16", "bf16", "GB/s intra", "inter"};
    std::vector<std::string> devices;
    auto number = [](double v) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.1f", v);
        return std::string(buffer);
    };
    for (const auto& name : clusters::builtin_cluster_names(clusters_dir())) {
        clusters::Cluster c = clusters::load_cluster_file(clusters_dir() + "/" + name + ".json");
        auto rate = [&](DType d) { return c.supports(d) ? number(c.achievable_flops(d) / 1e12) : "-"; };
        table.rows.push_back({name, std::to_string(c.nodes) + " x " + std::to_string(c.devices_per_node),
                              human_bytes(static_cast<double>(c.device.memory_bytes)), rate(DType::fp32),
                              rate(DType::fp16), rate(DType::bf16),
                              c.devices_per_node > 1 ? number(c.intra_node.bandwidth_Bps / 1e9) : "-",
                              number(c.inter_node.bandwidth_Bps / 1e9)});
        devices.push_back(c.device.name);
    }
    std::cout << listing(table, "device", devices)
              << "(achievable TFLOP/s per device by dtype; GB/s per device inside a node and between nodes)\n";
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
    add_input_shape_option(cmd, o->load);
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
