// Processes per node: several processes sharing one CPU node's cores, as HyPar-Flow (Awan et al.,
// ISC 2020) placed its model partitions and replicas. A cluster whose device describes its cores
// (Device::cores) can be viewed as one where each of k processes is a device with 1/k of the node.
#pragma once

#include <string>
#include <vector>

#include "clusters/cluster.hpp"

namespace dnnplan::clusters {

// Intra-node MPI latency between processes of one node through shared memory: about 0.2 us within a
// socket and 0.4-0.5 us across the two sockets of a Xeon node in the OSU micro-benchmarks
// (osu_latency, MVAPICH2 intra-node figures) [recalled]; the cross-socket end is taken because the
// k processes of a node span both sockets. Not fitted to any paper's figure.
inline constexpr double kSharedMemoryLatency_s = 0.5e-6;

// "" when `node` can run k processes per node, else why not: k must be >= 1 and, above 1, the
// cluster must describe its cores (Device::cores) with one device per node and k must divide them
// ("" too for a cluster that is already the view with k processes per node).
std::string processes_per_node_problem(const Cluster& node, int k);

// The values of k the search tries, ascending: 1, the powers of two that divide the cores, and the
// core count itself (one process per core). {1} for a cluster without cores (GPU clusters).
std::vector<int> processes_per_node_choices(const Cluster& node);

// The cluster seen by k processes per node (k = 1, or `node` already that view: `node` unchanged). Each process is a device with
// 1/k of the node: its cores (gemm.units = cores / k, so each process's GEMMs quantise on fewer
// cores), peak FLOP/s, memory and memory bandwidth. The k devices of a node are joined by shared
// memory: a large message is copied once (kernel-assisted single copy, as MVAPICH2's CMA path),
// reading and writing each byte, so with all k processes sending at once each gets
// memory_bandwidth / (2 k) per direction, at kSharedMemoryLatency_s. The node's injection bandwidth
// is shared by its k processes (inter_node.bandwidth_Bps / k, the spec's per-device convention); the
// topology and node count are the node's. Every derived number has a "derived" note in `sources`.
// std::invalid_argument when processes_per_node_problem(node, k) is not "" (input edges check first).
Cluster processes_per_node_view(const Cluster& node, int k);

}  // namespace dnnplan::clusters
