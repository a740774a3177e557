// What every dnnplan subcommand shares: where the built-in data lives, how output is emitted, and
// how a subcommand registers its options and its run function with the CLI11 application.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace dnnplan::cli {

// A registered subcommand: `app` is its CLI11 node, `run` executes it after parsing and returns
// the exit status (0 success, 1 no feasible result, 2 bad input; InputError may be thrown).
struct Command {
    CLI::App* app = nullptr;
    std::function<int()> run;
};

std::string data_dir();  // DNNPLAN_DATA_DIR, else the source tree
std::string networks_dir();
std::string clusters_dir();

// Emits to stdout or, with a non-empty out_path, writes the file whole (temporary + rename).
void emit(const std::string& content, const std::string& out_path);

// Each file cli/<name>_command.cpp defines one of these; main.cpp lists them.
Command add_inspect_command(CLI::App& app);
Command add_networks_command(CLI::App& app);
Command add_clusters_command(CLI::App& app);
Command add_plan_command(CLI::App& app);  // `plan` subcommand
Command add_default_plan(CLI::App& app);  // top-level --net/--procs: the same as `plan`

}  // namespace dnnplan::cli
