// Helpers shared by the planner tests.
#pragma once

#include <cmath>

#include <catch2/catch.hpp>

#include <string>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "planner/families.hpp"
#include "planner/stage_evaluator.hpp"

namespace dnnplan::planner::test {

inline networks::Network builtin(const std::string& name) {
    return networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json");
}

// Three linear layers without bias: 64 -> 96 -> 48 -> 24. fc1 reads the data, so it has no input
// gradient (DESIGN: the first layer's input gradient is skipped); fc2 and fc3 have one.
inline networks::Network three_linear() {
    return networks::parse_network(nlohmann::json::parse(R"({
        "name": "three_linear", "batch": 1, "input": {"shape": [64]},
        "layers": [
            {"name": "fc1", "kind": "linear", "out_features": 96, "bias": false},
            {"name": "fc2", "kind": "linear", "out_features": 48, "bias": false},
            {"name": "fc3", "kind": "linear", "out_features": 24, "bias": false}
        ]})"),
                                   "inline.json");
}

inline clusters::Cluster preset(const std::string& name) {
    return clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/" + name + ".json");
}

// One device per node, 1 TFLOP/s fp32 at full efficiency, 2^50 bytes of memory unless given, and
// the same alpha-beta link inside and between nodes: the figures the hand calculations use.
inline clusters::Cluster hand_cluster(double bandwidth = 1e9, double latency = 1e-6,
                                      std::int64_t memory = std::int64_t{1} << 50) {
    clusters::Cluster c;
    c.name = "hand";
    c.nodes = 1 << 22;
    c.devices_per_node = 1;
    c.device.name = "hand device";
    c.device.peak_flops[DType::fp32] = 1e12;
    c.device.achievable_fraction = 1.0;
    c.device.memory_bytes = memory;
    c.inter_node = clusters::Link{bandwidth, latency};
    c.intra_node = clusters::Link{bandwidth, latency};
    return c;
}

// The hand calculations of these tests are written for one rate per device (FLOPs / achievable
// FLOP/s, no loss or optimizer step): ComputeModel::uniform. The per-operation model has its own
// hand-computed tests (compute_test.cpp) and end-to-end checks that set it explicitly.
inline PlannerOptions options(std::int64_t procs, std::int64_t batch, bool overlap = true) {
    PlannerOptions o;
    o.procs = procs;
    o.batch = batch;
    o.overlap_sync = overlap;
    o.compute = ComputeModel::uniform;
    return o;
}
inline PlannerOptions options(std::int64_t procs, std::int64_t batch, DType dtype) {
    PlannerOptions o = options(procs, batch);
    o.dtype = dtype;
    return o;
}

// Field by field, so a failure names the field that differs.
inline void check_equal(const CostBreakdown& x, const CostBreakdown& y) {
    CHECK(x.fwd_compute_s == y.fwd_compute_s);
    CHECK(x.bwd_compute_s == y.bwd_compute_s);
    CHECK(x.comm(CommKind::all_reduce) == y.comm(CommKind::all_reduce));
    CHECK(x.comm(CommKind::all_gather) == y.comm(CommKind::all_gather));
    CHECK(x.comm(CommKind::reduce_scatter) == y.comm(CommKind::reduce_scatter));
    CHECK(x.comm(CommKind::all_to_all) == y.comm(CommKind::all_to_all));
    CHECK(x.comm(CommKind::halo) == y.comm(CommKind::halo));
    CHECK(x.comm(CommKind::point_to_point) == y.comm(CommKind::point_to_point));
    CHECK(x.comm(CommKind::redistribution) == y.comm(CommKind::redistribution));
    CHECK(x.sync_total_s == y.sync_total_s);
    CHECK(x.sync_exposed_s == y.sync_exposed_s);
    CHECK(x.sync_contention_s == y.sync_contention_s);
    CHECK(x.bubble_s == y.bubble_s);
    CHECK(x.iteration_s == y.iteration_s);
    CHECK(x.weights_bytes == y.weights_bytes);
    CHECK(x.gradients_bytes == y.gradients_bytes);
    CHECK(x.optimizer_bytes == y.optimizer_bytes);
    CHECK(x.activations_bytes == y.activations_bytes);
    CHECK(x.buffers_bytes == y.buffers_bytes);
    CHECK(x.memory_bytes == y.memory_bytes);
    CHECK(x.memory_capacity_bytes == y.memory_capacity_bytes);
    CHECK(x.feasible == y.feasible);
    CHECK(x.reason == y.reason);
}

// Every figure finite and non-negative; exposed sync within the total; the iteration at least
// its compute.
inline void check_sane(const CostBreakdown& c) {
    const double values[] = {c.fwd_compute_s,   c.bwd_compute_s,  c.comm(CommKind::all_reduce),     c.comm(CommKind::all_gather),
                             c.comm(CommKind::reduce_scatter), c.comm(CommKind::all_to_all),  c.comm(CommKind::halo),           c.comm(CommKind::point_to_point),
                             c.comm(CommKind::redistribution), c.sync_total_s,  c.sync_exposed_s,   c.sync_contention_s, c.bubble_s,
                             c.iteration_s,      c.weights_bytes, c.gradients_bytes,  c.optimizer_bytes,
                             c.activations_bytes, c.buffers_bytes, c.memory_bytes,    c.memory_capacity_bytes};
    for (double v : values) {
        CHECK(std::isfinite(v));
        CHECK(v >= 0);
    }
    CHECK(c.sync_exposed_s <= c.sync_total_s * (1 + 1e-12));
    CHECK(c.iteration_s >= (c.fwd_compute_s + c.bwd_compute_s) * (1 - 1e-12));  // sums in another order
}

}  // namespace dnnplan::planner::test
