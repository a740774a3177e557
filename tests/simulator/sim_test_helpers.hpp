// Shared by the simulator tests: their fixtures' folder, the clusters they build in code, and the
// figures of tests/data/simulator/four_linear.json that the hand calculations use.
#pragma once

#include <string>

#include "clusters/cluster.hpp"
#include "planner/cost_model.hpp"
#include "networks/network.hpp"

namespace dnnplan::simulator::test {

inline const std::string kData = std::string(DNNPLAN_SOURCE_DIR) + "/tests/data/simulator/";

inline networks::Network builtin_network(const std::string& name) {
    return networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json");
}
inline clusters::Cluster preset_cluster(const std::string& name) {
    return clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/" + name + ".json");
}

// Batch 256 over `procs`, the network's element type, the gradient sync overlapped or not: the
// folded-exchange and router-symmetry tests' planner options.
inline planner::PlannerOptions options_for(const networks::Network& network, int procs, bool overlap) {
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = 256;
    options.dtype = network.dtype;
    options.overlap_sync = overlap;
    return options;
}

// `nodes` x `devices` at 1 TFLOP/s fp32 on a crossbar (the simulator builds a star with private
// links): between nodes `inter` bandwidth and latency, inside a node `intra`. The spec, for tests
// that add fields to it, and the parsed cluster.
inline Json test_cluster_spec(const std::string& name, int nodes, int devices, clusters::Link inter,
                              clusters::Link intra) {
    Json spec = {{"name", name},
                 {"description", "simulator test cluster"},
                 {"nodes", nodes},
                 {"devices_per_node", devices},
                 {"device",
                  {{"name", "test device"},
                   {"peak_flops", {{"fp32", 1e12}}},
                   {"achievable_fraction", 1.0},
                   {"memory_bytes", 1LL << 34},
                   {"memory_bandwidth_Bps", 1e11}}},
                 {"inter_node",
                  {{"bandwidth_Bps", inter.bandwidth_Bps}, {"latency_s", inter.latency_s}, {"topology", "crossbar"}}}};
    if (devices > 1) spec["intra_node"] = {{"bandwidth_Bps", intra.bandwidth_Bps}, {"latency_s", intra.latency_s}};
    return spec;
}
inline clusters::Cluster test_cluster(const std::string& name, int nodes, int devices, clusters::Link inter,
                                      clusters::Link intra) {
    return clusters::parse_cluster(test_cluster_spec(name, nodes, devices, inter, intra), name);
}
// 10 GB/s and 1 us end to end, between and inside nodes: the pipeline and graph-partition tests'.
inline clusters::Cluster fast_cluster(int nodes, int devices = 1) {
    return test_cluster("fast", nodes, devices, {1e10, 1e-6}, {1e10, 1e-6});
}

// four_linear.json: 4 layers of 256 x 256 weights, no bias. With micro-batches of 16 samples:
// forward 2 x 16 x 256 x 256 = 2,097,152 FLOP = 2.097152 us per layer at 1 TFLOP/s (f), backward
// (input and weight gradients) twice that, except l1's: the network input needs no gradient, so
// l1's backward is its weight gradient alone, f. A tensor crossing devices: 16 x 256 x 4 B =
// 16384 B, 1 us + 16384 B / 10 GB/s = 2.6384 us (r).
constexpr double kF = 2.097152e-6, kB = 2 * kF, kR = 1e-6 + 1.6384e-6;

}  // namespace dnnplan::simulator::test
