// Shared by the fuzz harnesses: reference inputs loaded once from the source tree, and the
// invariants every scored plan must satisfy (finite, non-negative costs).
#pragma once

#include <cmath>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/search.hpp"

namespace dnnplan::fuzz {

inline const networks::Network& lenet5() {
    static const networks::Network network = networks::load_network_file(DNNPLAN_SOURCE_DIR "/networks/lenet5.json");
    return network;
}

inline clusters::Cluster cori_knl() { return clusters::load_cluster_file(DNNPLAN_SOURCE_DIR "/clusters/cori-knl.json"); }

inline const clusters::Cluster& small_cluster() {
    static const clusters::Cluster cluster = cori_knl();
    return cluster;
}

// A violated invariant is a finding: trap so libFuzzer records the input.
inline void check_costs(const planner::CostBreakdown& c) {
    const double values[] = {c.iteration_s,  c.fwd_compute_s,   c.bwd_compute_s,    c.comm(dnnplan::planner::CommKind::all_reduce),
                             c.comm(dnnplan::planner::CommKind::all_gather), c.comm(dnnplan::planner::CommKind::reduce_scatter), c.comm(dnnplan::planner::CommKind::all_to_all),    c.comm(dnnplan::planner::CommKind::halo),
                             c.comm(dnnplan::planner::CommKind::point_to_point), c.comm(dnnplan::planner::CommKind::redistribution), c.sync_total_s, c.sync_exposed_s,
                             c.bubble_s,     c.memory_bytes};
    for (double v : values)
        if (!std::isfinite(v) || v < 0) __builtin_trap();
}

inline void check_search(const networks::Network& network, const clusters::Cluster& cluster, std::int64_t procs) {
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = network.default_batch;
    options.dtype = network.dtype;
    if (!cluster.supports(options.dtype)) return;
    planner::CostModel model(network, cluster, options);
    for (const auto& candidate : planner::search(model).ranked) check_costs(candidate.plan.cost);
}

}  // namespace dnnplan::fuzz
