// Builds the SimGrid platform of a simulation (private to simulator/: SimGrid headers stay here).
#pragma once

#include <simgrid/s4u.hpp>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "simulator/simulator.hpp"

namespace dnnplan::simulator {

struct BuiltPlatform {
    std::vector<simgrid::s4u::Host*> hosts;  // rank r runs on hosts[r]
    std::string kind, summary;
    double link_bandwidth_Bps = 0, link_latency_s = 0;
};

// Sets the network model on `engine` and builds (or loads) the platform for `procs` ranks.
// `host_speed` is the device's achievable FLOP/s (the replay executes seconds x speed).
// InputError on bad platform input.
BuiltPlatform build_platform(simgrid::s4u::Engine& engine, const clusters::Cluster& cluster, int procs,
                             double host_speed, const PlatformOptions& options);

}  // namespace dnnplan::simulator
