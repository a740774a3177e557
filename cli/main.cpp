// The dnnplan executable: argument wiring over the library, nothing else. Exit status 0 on
// success, 1 when no candidate plan is feasible, 2 on bad input or usage.
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "reports/network_report.hpp"

namespace {

using namespace dnnplan;

std::string data_dir() {
    if (const char* env = std::getenv("DNNPLAN_DATA_DIR"); env && *env) return env;
    return DNNPLAN_SOURCE_DIR;
}
std::string networks_dir() { return data_dir() + "/networks"; }

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
        std::cout << app.help();
        return 0;
    } catch (const InputError& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
}
