// Turning the planner's command-line options into a network, a cluster and PlannerOptions,
// shared by `plan`, `report` and `sweep` so they check their inputs the same way.
#include "cli/commands.hpp"
#include "common/diagnostics.hpp"

namespace dnnplan::cli {

planner::PlannerOptions planner_options(const PlanningArgs& args, const networks::Network& network,
                                        const clusters::Cluster& cluster, const std::string& net_path,
                                        const std::string& cluster_path) {
    if (args.procs < 1) throw InputError("dnnplan", "", "--procs must be a positive number of processes");
    planner::PlannerOptions options;
    options.procs = args.procs;
    options.batch = args.batch > 0 ? args.batch : network.default_batch;
    options.dtype = args.dtype.empty() ? network.dtype : *parse_dtype(args.dtype);
    options.optimizer = args.optimizer == "adam" ? planner::Optimizer::adam : planner::Optimizer::sgd;
    options.overlap_sync = !args.no_overlap;
    options.roofline = args.roofline;
    if (args.procs > cluster.total_devices())
        throw InputError(cluster_path, "/nodes",
                         "P = " + std::to_string(args.procs) + " exceeds the cluster's " +
                             std::to_string(cluster.total_devices()) + " devices");
    if (args.procs > (1 << 22)) throw InputError("dnnplan", "", "--procs above 4194304 is not supported");
    if (!cluster.supports(options.dtype))
        throw InputError(cluster_path, "/device/peak_flops", "no peak rate for " + to_string(options.dtype));
    networks::totals(network, options.batch, net_path);  // counts that overflow are an input error
    return options;
}

PlanningInputs load_planning_inputs(const PlanningArgs& args) {
    if (args.net.empty()) throw InputError("dnnplan", "", "--net is required (a spec file or a built-in name)");
    if (args.procs < 1) throw InputError("dnnplan", "", "--procs must be a positive number of processes");
    PlanningInputs in;
    in.net_path = networks::resolve_network_path(args.net, networks_dir());
    in.network = networks::load_network_file(in.net_path, args.load);
    in.cluster_path = clusters::resolve_cluster_path(args.cluster, clusters_dir());
    in.cluster = clusters::load_cluster_file(in.cluster_path);
    in.options = planner_options(args, in.network, in.cluster, in.net_path, in.cluster_path);
    return in;
}

void add_model_options(CLI::App* cmd, PlanningArgs& p, bool each) {
    const std::string whose = each ? "each network's" : "the network's";
    cmd->add_option("--batch", p.batch, "global batch size (default: " + whose + ")")->check(positive_integer());
    cmd->add_option("--dtype", p.dtype, "fp32, fp16 or bf16 (default: " + whose + ")")
        ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
    cmd->add_option("--optimizer", p.optimizer, "sgd (with momentum) or adam")
        ->capture_default_str()
        ->check(CLI::IsMember({"sgd", "adam"}));
    cmd->add_flag("--no-overlap", p.no_overlap, "do not overlap gradient all-reduce with the backward pass");
    cmd->add_flag("--roofline", p.roofline, "compute time is the max of FLOPs/rate and bytes/memory bandwidth");
}

}  // namespace dnnplan::cli
