#include "clusters/processes_per_node.hpp"

#include <stdexcept>

namespace dnnplan::clusters {

std::string processes_per_node_problem(const Cluster& node, int k) {
    if (k < 1) return "processes per node must be at least 1, got " + std::to_string(k);
    if (k == node.processes_per_node) return "";  // 1, or a view with k already
    const int cores = node.device.cores;
    if (cores == 0)
        return "cluster " + node.name + " does not describe its cores (device.cores), so its nodes cannot be shared by " +
               std::to_string(k) + " processes; only 1 process per device";
    if (node.devices_per_node != 1)
        return "cluster " + node.name + " has " + std::to_string(node.devices_per_node) +
               " devices per node; processes per node applies to clusters whose device is the whole node";
    if (cores % k != 0)
        return std::to_string(k) + " processes per node do not divide the " + std::to_string(cores) + " cores of a " +
               node.name + " node";
    return "";
}

std::vector<int> processes_per_node_choices(const Cluster& node) {
    std::vector<int> ks{1};
    if (node.processes_per_node != 1 || !processes_per_node_problem(node, node.device.cores).empty() ||
        node.device.cores <= 1)
        return ks;
    const int cores = node.device.cores;
    for (int k = 2; k < cores; k *= 2)
        if (cores % k == 0) ks.push_back(k);
    ks.push_back(cores);
    return ks;
}

Cluster processes_per_node_view(const Cluster& node, int k) {
    if (std::string problem = processes_per_node_problem(node, k); !problem.empty()) throw std::invalid_argument(problem);
    if (k == node.processes_per_node) return node;
    Cluster view = node;
    view.processes_per_node = k;
    const double share = 1.0 / k;
    const std::string of_node = " / " + std::to_string(k) + " (derived: " + std::to_string(k) + " processes per node)";
    view.description = node.description + " Viewed as " + std::to_string(k) + " processes per node.";
    view.devices_per_node = k;
    view.sources["/devices_per_node"] = "derived: " + std::to_string(k) + " processes per node, each a device";
    Device& d = view.device;
    d.name = node.device.name + ", 1/" + std::to_string(k) + " (" + std::to_string(node.device.cores / k) + " cores)";
    for (auto& [dtype, flops] : d.peak_flops) {
        flops *= share;
        view.sources["/device/peak_flops/" + to_string(dtype)] = "the node's peak" + of_node;
    }
    d.memory_bytes = node.device.memory_bytes / k;
    d.reserved_bytes = node.device.reserved_bytes / k;
    d.memory_bandwidth_Bps = node.device.memory_bandwidth_Bps * share;
    d.elementwise_bandwidth_Bps = node.device.elementwise_bandwidth_Bps * share;
    d.gemm_operand_bandwidth_Bps = node.device.gemm_operand_bandwidth_Bps * share;
    d.cores = node.device.cores / k;
    d.gemm.units = d.cores;
    view.sources["/device/memory_bytes"] = "the node's memory" + of_node;
    view.sources["/device/memory_bandwidth_Bps"] = "the node's memory bandwidth" + of_node;
    view.sources["/device/cores"] = "the node's cores" + of_node;
    view.intra_node = Link{node.device.memory_bandwidth_Bps / (2.0 * k), kSharedMemoryLatency_s};
    view.sources["/intra_node/bandwidth_Bps"] =
        "derived: shared memory, the node's memory bandwidth / (2 x " + std::to_string(k) +
        "): a single-copy transfer reads and writes each byte, and the node's " + std::to_string(k) +
        " processes send at once";
    view.sources["/intra_node/latency_s"] = "intra-node MPI latency across sockets, OSU micro-benchmarks [recalled]";
    view.inter_node.bandwidth_Bps = node.inter_node.bandwidth_Bps * share;
    view.sources["/inter_node/bandwidth_Bps"] = "the node's injection bandwidth" + of_node;
    return view;
}

}  // namespace dnnplan::clusters
