// The replay charges a calibrated CPU's halo packing (CpuKernel::halo_pack) as the cost model does:
// planner::halo_pack_seconds after the exchange's messages (simulator/README.md, "The replay").
#include <catch2/catch.hpp>

#include "planner/cost_model.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using simulator::test::test_cluster;

namespace {

// Two 3x3 convolutions (padding 1, no bias) on 4 x 8 x 8 images, 8 output channels each, batch 4:
// the network of the cost model's hand-computed halo test (tests/planner/cost_model_test.cpp).
networks::Network two_conv() {
    return networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/tests/data/planner/two_conv.json");
}

struct Replays {
    double predicted_halo = 0, predicted = 0, actors = 0, events = 0;
};

// Every layer split 1 x 4 by columns (a four-part line: inner parts have two neighbours), sync
// after the backward pass (every message sequential), on the contention-free star.
Replays replay(const networks::Network& net, const clusters::Cluster& cluster,
               const planner::Layout& second = planner::Layout{1, 1, 1, 1, 4}) {
    planner::PlannerOptions options;
    options.procs = 4;
    options.batch = 4;
    options.overlap_sync = false;
    planner::CostModel model(net, cluster, options);
    std::vector<planner::Layout> layouts(net.layers.size());
    for (int a : model.anchors()) layouts[a] = a == model.anchors().back() ? second : planner::Layout{1, 1, 1, 1, 4};
    const planner::ScoredPlan plan = model.score(layouts);
    REQUIRE(plan.cost.feasible);
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    Replays r{plan.cost.comm(planner::CommKind::halo), plan.cost.iteration_s, 0, 0};
    r.actors = simulator::simulate(model, plan, sim).simulated.iteration_s;
    sim.event_driven = true;
    r.events = simulator::simulate(model, plan, sim).simulated.iteration_s;
    return r;
}

// 4 nodes on a star, 1 GB/s and 1 us end to end per message (the cost model test's links), of a
// calibrated CPU: im2col lowering and BLAS calls fitted (round constants); with packing, halo_pack
// at 0.5 ns per byte and 1 ns per contiguous run.
clusters::Cluster calibrated_cpu(bool with_packing) {
    clusters::Cluster cluster = test_cluster("calibrated", 4, 1, {1e9, 1e-6}, {1e9, 1e-6});
    using clusters::CpuKernel;
    cluster.device.cpu_kernels[CpuKernel::lowering_forward] = {1e-9, 0};
    cluster.device.cpu_kernels[CpuKernel::lowering_backward] = {0.5e-9, 0};
    cluster.device.cpu_kernels[CpuKernel::gemm_call] = {0, 2e-6};
    if (with_packing) cluster.device.cpu_kernels[CpuKernel::halo_pack] = {0.5e-9, 1e-9};
    return cluster;
}

}  // namespace

TEST_CASE("a calibrated CPU's halo packing is replayed as the cost model charges it", "[sim][halo_pack]") {
    const clusters::Cluster plain = calibrated_cpu(false), packing = calibrated_cpu(true);
    const networks::Network net = two_conv();
    const Replays without = replay(net, plain), with = replay(net, packing);
    // The transfers alone (cost model test, by hand): conv1 forward 512 B messages, 2 (1 us +
    // 0.512 us) = 3.024 us; conv2 forward and backward 1024 B, 2 (1 + 1.024) = 4.048 us each:
    // 11.12 us. The busiest (inner) part packs 2 copies per neighbour, 4 per exchange, each one
    // run per sample, channel and row (4 x 4 x 8 = 128 for conv1, 4 x 8 x 8 = 256 for conv2):
    // conv1 4 x 512 x 0.5 ns + 4 x 128 x 1 ns = 1.536 us, conv2 2.048 + 1.024 = 3.072 us twice:
    // 7.68 us more.
    CHECK(without.predicted_halo == Approx(11.12e-6).epsilon(1e-9));
    CHECK(with.predicted_halo == Approx(18.8e-6).epsilon(1e-9));
    // Contention-free and sequential: the replay is the model, with the packing and without.
    CHECK(without.actors == Approx(without.predicted).epsilon(1e-9));
    CHECK(with.actors == Approx(with.predicted).epsilon(1e-9));
    CHECK(with.events == Approx(with.predicted).epsilon(1e-9));
    // And the packing is what moved the simulated iteration: 7.68 us, as by hand.
    CHECK(with.actors - without.actors == Approx(7.68e-6).epsilon(1e-6));
    CHECK(with.events - without.events == Approx(7.68e-6).epsilon(1e-6));
}

TEST_CASE("a calibrated CPU's redistribution packing is replayed as the cost model charges it", "[sim][halo_pack]") {
    const clusters::Cluster plain = calibrated_cpu(false), packing = calibrated_cpu(true);
    const networks::Network net = two_conv();
    // conv1 split by columns 4 ways, conv2 by output channels (co4): conv2 reads conv1's whole
    // output, an all-gather over 4 of 4 samples x 8 channels x 8 rows x 2 columns x 4 B = 2048 B
    // blocks (backward the gradient is sliced locally). Each process packs its block for and
    // unpacks one from each of 3 peers, in runs of 2 columns: 2048 / 4 / 2 = 256 runs a message,
    // 2 x 3 x 2048 x 0.5 ns + 2 x 3 x 256 x 1 ns = 6.144 + 1.536 = 7.68 us. With conv1's forward
    // halo packing (1.536 us, the test above) the packing adds 9.216 us.
    const planner::Layout co4{1, 4, 1, 1, 1};
    const Replays without = replay(net, plain, co4), with = replay(net, packing, co4);
    CHECK(with.predicted - without.predicted == Approx(9.216e-6).epsilon(1e-6));
    CHECK(with.actors == Approx(with.predicted).epsilon(1e-9));
    CHECK(with.events == Approx(with.predicted).epsilon(1e-9));
    CHECK(with.actors - without.actors == Approx(9.216e-6).epsilon(1e-6));
}
