// The dnnplan executable: argument wiring over the library, nothing else. Exit status 0 on
// success, 1 when no candidate plan is feasible, 2 on bad input or usage.
#include <cstdlib>
#include <iostream>
#include <vector>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"

namespace dnnplan::cli {

std::string data_dir() {
    if (const char* env = std::getenv("DNNPLAN_DATA_DIR"); env && *env) return env;
    return DNNPLAN_SOURCE_DIR;
}
std::string networks_dir() { return data_dir() + "/networks"; }
std::string clusters_dir() { return data_dir() + "/clusters"; }

CLI::Validator positive_integer() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            try {
                std::size_t used = 0;
                long long value = std::stoll(text, &used);
                if (used == text.size() && value >= 1) return "";
            } catch (const std::exception&) {
            }
            return "must be a positive integer, got " + text;
        },
        "POSITIVE");
}

void emit(const std::string& content, const std::string& out_path) {
    if (out_path.empty())
        std::cout << content;
    else
        write_file_atomically(out_path, content);
}

}  // namespace dnnplan::cli

int main(int argc, char** argv) {
    using namespace dnnplan;
    CLI::App app{"dnnplan: plan, simulate and validate the parallel training of a deep neural network"};
    app.require_subcommand(0, 1);

    // Subcommands first, the top-level default (plain `dnnplan --net ... --procs ...`) last.
    std::vector<cli::Command> commands{cli::add_inspect_command(app), cli::add_networks_command(app),
                                       cli::add_clusters_command(app), cli::add_plan_command(app), cli::add_simulate_command(app),
                                       cli::add_report_command(app), cli::add_sweep_command(app),
                                       cli::add_validate_command(app), cli::add_calibrate_command(app)};
    cli::Command default_plan = cli::add_default_plan(app);

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
        for (const auto& command : commands)
            if (command.app->parsed()) return command.run();
        return default_plan.run();
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
