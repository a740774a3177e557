// Turning the planner's command-line options into a network, a cluster and PlannerOptions,
// shared by `plan`, `report` and `sweep` so they check their inputs the same way.
#include <algorithm>
#include <filesystem>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"
#include "planner/plan.hpp"

namespace dnnplan::cli {

namespace {
// --processes-per-node K fits the cluster and P; P fits the nodes at the largest k tried.
void check_processes_per_node(const PlanningArgs& args, const clusters::Cluster& cluster, const std::string& cluster_path) {
    const int fixed = args.processes_per_node;
    if (fixed > 0) {
        if (std::string problem = clusters::processes_per_node_problem(cluster, fixed); !problem.empty())
            throw InputError("dnnplan", "--processes-per-node", problem);
        if (args.procs % fixed != 0)
            throw InputError("dnnplan", "--processes-per-node",
                             std::to_string(fixed) + " processes per node do not divide P = " + std::to_string(args.procs));
    }
    // The k that may be used: the one given, the search's choices, or 1.
    std::vector<int> ks{std::max(1, fixed)};
    if (fixed == 0 && args.search_processes_per_node) ks = clusters::processes_per_node_choices(cluster);
    std::string tried;
    for (int k : ks) {
        if (k == 1 ? args.procs <= cluster.total_devices() : args.procs % k == 0 && args.procs / k <= cluster.nodes)
            return;
        tried += (tried.empty() ? "" : ", ") + std::to_string(k);
    }
    if (ks == std::vector<int>{1})
        throw InputError(cluster_path, "/nodes",
                         "P = " + std::to_string(args.procs) + " exceeds the cluster's " +
                             std::to_string(cluster.total_devices()) + " devices");
    throw InputError(cluster_path, "/nodes",
                     "P = " + std::to_string(args.procs) + " does not fit the cluster's " + std::to_string(cluster.nodes) +
                         " nodes at any processes per node k that divides it (k = " + tried + ": P / k nodes)");
}
}  // namespace

planner::PlannerOptions planner_options(const PlanningArgs& args, const networks::Network& network,
                                        const clusters::Cluster& cluster, const std::string& net_path,
                                        const std::string& cluster_path) {
    if (args.procs < 1) throw InputError("dnnplan", "", "--procs must be a positive number of processes");
    planner::PlannerOptions options;
    options.procs = args.procs;
    options.batch = args.batch > 0 ? args.batch : network.default_batch;
    options.dtype = args.dtype.empty() ? network.dtype : *parse_dtype(args.dtype);
    options.optimizer_defaulted = args.optimizer.empty();
    options.optimizer = args.optimizer.empty()    ? planner::default_optimizer(network)
                        : args.optimizer == "adam" ? planner::Optimizer::adam
                                                   : planner::Optimizer::sgd;
    options.overlap_sync = !args.no_overlap;
    options.roofline = args.roofline;
    options.compute = planner::parse_compute_model(args.compute).value_or(planner::ComputeModel::per_operation);
    if (!args.grad_accumulation.empty()) options.grad_accumulation = planner::parse_grad_accumulation(args.grad_accumulation);
    options.mixed_precision_step =
        planner::parse_mixed_precision_step(args.mixed_precision_step).value_or(planner::MixedPrecisionStep::megatron_lm);
    options.boundary_send =
        planner::parse_boundary_send(args.boundary_send).value_or(planner::PipelineBoundarySend::scatter_gather);
    check_processes_per_node(args, cluster, cluster_path);
    options.processes_per_node = std::max(1, args.processes_per_node);
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

namespace {
// `source` as written in `plan_file`: relative to the current directory, else to the plan's.
std::string beside_plan(const std::string& source, const std::string& plan_file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path p(source);
    if (p.is_absolute() || fs::exists(p, ec)) return source;
    fs::path beside = fs::path(plan_file).parent_path() / p;
    return fs::exists(beside, ec) ? beside.string() : source;
}

// Resolves a source named in the plan; a name that resolves to nothing is the plan's error.
template <typename Resolve>
std::string resolve_source(const std::string& source, const std::string& plan_file, const std::string& pointer,
                           Resolve resolve) {
    try {
        return resolve(beside_plan(source, plan_file));
    } catch (const InputError& e) {
        throw InputError(plan_file, pointer, "\"" + source + "\": " + e.message());
    }
}
}  // namespace

PlanSources load_plan_sources(const planner::PlanRequest& request, const std::string& plan_file,
                              const std::string& net, const std::string& cluster,
                              const networks::LoadOptions& load) {
    PlanSources s;
    s.net_path = !net.empty() ? networks::resolve_network_path(net, networks_dir())
                              : resolve_source(request.network_source, plan_file, "/network/source",
                                               [](const std::string& n) {
                                                   return networks::resolve_network_path(n, networks_dir());
                                               });
    s.network = networks::load_network_file(s.net_path, load);
    s.cluster_path = !cluster.empty() ? clusters::resolve_cluster_path(cluster, clusters_dir())
                                      : resolve_source(request.cluster_source, plan_file, "/cluster/source",
                                                       [](const std::string& c) {
                                                           return clusters::resolve_cluster_path(c, clusters_dir());
                                                       });
    s.cluster = clusters::load_cluster_file(s.cluster_path);
    try {
        networks::totals(s.network, request.options.batch, s.net_path);
    } catch (const InputError& e) {
        throw InputError(plan_file, "/batch", e.message() + " (network " + s.network.name + ")");
    }
    return s;
}

void add_model_options(CLI::App* cmd, PlanningArgs& p, bool each) {
    const std::string whose = each ? "each network's" : "the network's";
    cmd->add_option("--batch", p.batch, "global batch size (default: " + whose + ")")->check(positive_integer());
    cmd->add_option("--dtype", p.dtype, "fp32, fp16 or bf16 (default: " + whose + ")")
        ->transform(one_of({"fp32", "fp16", "bf16"},
                       {{"float32", "fp32"}, {"float", "fp32"}, {"float16", "fp16"}, {"half", "fp16"}, {"bfloat16", "bf16"}}));
    cmd->add_option("--optimizer", p.optimizer,
                    "sgd (with momentum) or adam (default: adam, mixed precision, for networks with attention; "
                    "sgd otherwise)")
        ->transform(one_of({"sgd", "adam"}));
    cmd->add_flag("--no-overlap", p.no_overlap, "do not overlap gradient all-reduce with the backward pass");
    cmd->add_flag("--roofline", p.roofline,
                  "with --compute uniform: compute time is the max of FLOPs/rate and bytes/memory bandwidth");
    cmd->add_option("--compute", p.compute,
                    "per-operation (GEMMs by shape, memory-bound operations by bytes, loss and optimizer step) or "
                    "uniform (one rate for every layer)")
        ->capture_default_str()
        ->check(CLI::IsMember(planner::compute_model_names()));
    cmd->add_option("--grad-accumulation", p.grad_accumulation,
                    "how the training software adds each micro-batch's weight gradients: hook (Megatron-LM's "
                    "main_grad buffer, every micro-batch), autograd (PyTorch's .grad, every micro-batch after the "
                    "first) or in-gemm (fused into the weight-gradient GEMM, free) (default: hook in 16 bits, "
                    "in-gemm in fp32)")
        ->check(CLI::IsMember(planner::grad_accumulation_names()));
    cmd->add_option("--mixed-precision-step", p.mixed_precision_step,
                    "the 16-bit optimizer step's passes over the parameters: megatron (Megatron-LM, Adam 52 B per "
                    "parameter) or deepspeed (DeepSpeed's fp16 ZeRO, 80 B)")
        ->capture_default_str()
        ->check(CLI::IsMember(planner::mixed_precision_step_names()));
    cmd->add_option("--boundary-send", p.boundary_send,
                    "how pipeline-stage boundary tensors cross between tensor groups: scatter-gather (Megatron-LM: "
                    "1/T per rank, all-gathered), whole-tensor (every rank sends all of it) or deepspeed "
                    "(DeepSpeed's engine: 1/T, blocking sends and receives one after the other, the output "
                    "gathered again before its backward)")
        ->capture_default_str()
        ->check(CLI::IsMember(planner::boundary_send_names()));
}

void add_input_shape_option(CLI::App* app, networks::LoadOptions& load) {
    app->add_option_function<std::vector<std::string>>(
           "--input-shape",
           [&load](const std::vector<std::string>& items) {
               for (const std::string& item : items) {
                   const auto equals = item.rfind('=');
                   std::vector<std::int64_t> dims;
                   std::string rest = equals == std::string::npos ? "" : item.substr(equals + 1) + "x";
                   for (std::size_t at = 0; !rest.empty() && at < rest.size();) {
                       const std::size_t x = rest.find('x', at);
                       const std::string digits = rest.substr(at, x - at);
                       if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos ||
                           std::stoll(digits) < 1 || std::stoll(digits) > (std::int64_t{1} << 31)) {
                           dims.clear();
                           break;
                       }
                       dims.push_back(std::stoll(digits));
                       at = x + 1;
                   }
                   if (equals == std::string::npos || equals == 0 || dims.empty())
                       throw CLI::ValidationError("--input-shape",
                                                  "expected NAME=DxDx... with sizes from 1 to 2^31 (e.g. images=1x3x640x640), got \"" +
                                            item + "\"");
                   load.input_shapes[item.substr(0, equals)] = dims;
               }
           },
           "ONNX: NAME=1x3x640x640 fixes the symbolic sizes of graph input NAME (repeatable; dimension 0 is the "
           "batch, set by --batch)")
        ->type_name("NAME=DxD...");
}

}  // namespace dnnplan::cli
