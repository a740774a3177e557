// What every dnnplan subcommand shares: where the built-in data lives, how output is emitted, and
// how a subcommand registers its options and its run function with the CLI11 application.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "planner/plan.hpp"

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

// A CLI11 check: a positive integer, explained as such ("--batch: must be a positive integer, got 0").
CLI::Validator positive_integer();
// An integer in [min, max] ("--iterations: must be an integer from 1 to 1000000, got 0").
CLI::Validator integer_within(long long min, long long max);
// A finite number in [min, max] (no NaN, no inf), the range written readably
// ("--timeout: must be a number between 0.001 and 86400 s, got 0").
CLI::Validator number_within(double min, double max, const std::string& unit);
// --input-shape NAME=DxDx... (repeatable): fixes an ONNX graph input's symbolic dimensions.
void add_input_shape_option(CLI::App* app, networks::LoadOptions& load);

// An output file name: not empty, not a directory, in a directory that exists (checked before
// any work, so a long run does not end in "cannot be written").
CLI::Validator output_file();
// One of `choices` (a CLI11 transform, not a check: it rewrites the value), matched in any case and rewritten to the listed spelling; `aliases` maps other
// common spellings ("bfloat16") to a choice. A miss names the choices and the closest one
// ("--dtype: must be fp32, fp16 or bf16, got fp61 (did you mean fp16?)").
CLI::Validator one_of(const std::vector<std::string>& choices,
                      const std::vector<std::pair<std::string, std::string>>& aliases = {});

// Emits to stdout or, with a non-empty out_path, writes the file whole (temporary + rename).
// A file written is confirmed on stderr: "wrote plan.json (best: per-layer, 18.6 ms)".
void emit(const std::string& content, const std::string& out_path, const std::string& what = "");
void confirm_written(const std::string& path, const std::string& what = "");
// The text output's width: $COLUMNS when set, else the terminal's, else 120 (cli/plan_command.cpp).
int terminal_width();
// Examples and exit codes at the end of `--help`, for the main command and each subcommand.
void add_help_footers(CLI::App& app);

// Each file cli/<name>_command.cpp defines one of these; main.cpp lists them.
Command add_inspect_command(CLI::App& app);
Command add_networks_command(CLI::App& app);
Command add_clusters_command(CLI::App& app);
Command add_plan_command(CLI::App& app);  // `plan` subcommand
Command add_simulate_command(CLI::App& app);  // `simulate`: SimGrid replay of a plan file
// A plan document replayed as `dnnplan simulate` does on the cluster's own topology (CM02), for
// `--simulate-top K` (cli/simulate_command.cpp).
struct SimulatedPlan {
    double predicted_s = 0, simulated_s = 0, wall_s = 0;
};
SimulatedPlan simulate_plan_document(const Json& plan, const std::string& source);
Command add_default_plan(CLI::App& app);  // top-level --net/--procs: the same as `plan`
Command add_report_command(CLI::App& app);  // `report`: HTML/Markdown/CSV/JSON strategy report
Command add_sweep_command(CLI::App& app);   // `sweep`: every network x cluster x P, serial or under mpirun
Command add_validate_command(CLI::App& app);   // `validate`: run plans under MPI (cli/validate_command.cpp)
Command add_calibrate_command(CLI::App& app);  // `calibrate`: measure this machine under MPI

// The planner's options as given on the command line (cli/planning_inputs.cpp), shared by plan,
// report and sweep so they check inputs identically.
struct PlanningArgs {
    std::string net;
    std::string cluster = "cori-knl";
    std::int64_t procs = 0;
    std::int64_t batch = 0;  // 0: the network's default
    std::string dtype;       // "": the network's
    std::string optimizer;   // "": planner::default_optimizer(network)
    bool no_overlap = false;
    bool roofline = false;
    std::string compute = "per-operation";  // planner/compute.hpp
    // The training software's behaviour (planner/software_options.hpp); "" for the accumulation:
    // the dtype's default (planner::default_grad_accumulation).
    std::string grad_accumulation;
    std::string mixed_precision_step = "megatron";
    std::string boundary_send = "scatter-gather";
    // --processes-per-node K (plan only); 0: 1, or searched when search_processes_per_node is set
    // (plan without an explicit pipeline, on a cluster that describes its cores).
    int processes_per_node = 0;
    bool search_processes_per_node = false;
    networks::LoadOptions load;  // --allow-unknown-ops (ONNX import)
};
// One search candidate replayed so: {predicted_s, simulated_s, wall_s}, or {error} when the replay
// cannot take it (cli/plan_command.cpp; `--simulate-top` of plan and sweep).
Json simulate_candidate(const planner::CostModel& model, const planner::Candidate& candidate, const PlanningArgs& p);
// The options shared by report and sweep that shape the model: --batch, --dtype, --optimizer,
// --no-overlap, --roofline, --compute, --grad-accumulation, --mixed-precision-step, --boundary-send
// (`each` words the defaults for a list of networks).
void add_model_options(CLI::App* cmd, PlanningArgs& p, bool each = false);
// Owns the network and cluster a CostModel built from it refers to: keep it alive as long.
struct PlanningInputs {
    std::string net_path, cluster_path;
    networks::Network network;
    clusters::Cluster cluster;
    planner::PlannerOptions options;
};
// Checks P, the cluster's size and dtype and the network's counts; InputError otherwise.
planner::PlannerOptions planner_options(const PlanningArgs& args, const networks::Network& network,
                                        const clusters::Cluster& cluster, const std::string& net_path,
                                        const std::string& cluster_path);
PlanningInputs load_planning_inputs(const PlanningArgs& args);

// The network and cluster a plan file names (network.source and cluster.source, unless `net` or
// `cluster` overrides them). A relative source is looked up in the current directory, else beside
// the plan; one that names no file or built-in is reported on the plan
// ("PLAN: /network/source: \"x\": no such file ..."), and so is a batch whose counts overflow.
struct PlanSources {
    std::string net_path, cluster_path;
    networks::Network network;
    clusters::Cluster cluster;
};
PlanSources load_plan_sources(const planner::PlanRequest& request, const std::string& plan_file,
                              const std::string& net = "", const std::string& cluster = "",
                              const networks::LoadOptions& load = {});

}  // namespace dnnplan::cli
