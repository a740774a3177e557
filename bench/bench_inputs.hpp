// The inputs of one planner benchmark: a built-in network and cluster preset, and the options of
// one search over P processes at a global batch (the network's own dtype).
#pragma once

#include <cstdint>
#include <string>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"

namespace dnnplan::bench {

struct BenchInputs {
    networks::Network net;
    clusters::Cluster cluster;
    planner::PlannerOptions options;
};

inline BenchInputs bench_inputs(const std::string& net_name, const std::string& cluster_name, std::int64_t procs,
                                std::int64_t batch) {
    const std::string source = DNNPLAN_SOURCE_DIR;
    BenchInputs in{networks::load_network_file(source + "/networks/" + net_name + ".json"),
                   clusters::load_cluster_file(source + "/clusters/" + cluster_name + ".json"),
                   {}};
    in.options.procs = procs;
    in.options.batch = batch;
    in.options.dtype = in.net.dtype;
    return in;
}

}  // namespace dnnplan::bench
