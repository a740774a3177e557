// Point-to-point messages on the message link (simulator/message_link.hpp): on a cluster spec with
// a calibrated ping-pong fit (message_bandwidth_Bps, message_latency_s) the pipeline and
// graph-partition replays send their boundaries and cut tensors at that fit, as the cost model
// prices them, while the collectives keep the link's own figures. Hand-computed schedules of
// four_linear (sim_test_helpers.hpp: f, and the tensor of 16384 B between two devices).
#include "simulator/message_link.hpp"

#include <catch2/catch.hpp>

#include "planner/graph_partition.hpp"
#include "planner/pipeline.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using namespace dnnplan::simulator::test;

namespace {

// fast_cluster's figures (10 GB/s and 1 us, 1 TFLOP/s devices) plus a ping-pong fit of 20 GB/s
// and 3 us on the link named (`on_intra`: inside a node, else between nodes), written as
// `dnnplan calibrate` writes it.
clusters::Cluster calibrated_cluster(int nodes, int devices, bool on_intra) {
    const clusters::Link link{1e10, 1e-6};
    Json spec = test_cluster_spec("calibrated", nodes, devices, link, link);
    spec["description"] = "simulator test cluster with a point-to-point message fit";
    Json& fitted = spec[on_intra ? "intra_node" : "inter_node"];
    fitted["message_bandwidth_Bps"] = {{"value", 2e10}, {"source", "ping-pong fit (test)"}};
    fitted["message_latency_s"] = {{"value", 3e-6}, {"source", "ping-pong fit (test)"}};
    return clusters::parse_cluster(spec, "calibrated.json");
}

// One cut tensor or boundary of 16384 B on the fit: 3 us + 16384 B / 20 GB/s = 3.8192 us
// (kR, on the link's own 10 GB/s and 1 us, is 2.6384 us).
constexpr double kMessage = 3e-6 + 0.8192e-6;

planner::PlannerOptions uniform_options(int procs, int batch) {
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // one rate, no optimizer step: the hand figures
    options.procs = procs;
    options.batch = batch;
    return options;
}

// four_linear's l1, l2 on device 0 and l3, l4 on device 1: the program, whose one cut tensor takes
// kMessage on the fit.
planner::GraphPartitionProgram split_after_l2(const planner::CostModel& model, planner::PipelineSpec& spec,
                                              const std::vector<planner::Layout>& layouts) {
    spec.device_of = {0, 0, 0, 1, 1};
    planner::GraphPartitionProgram program = planner::graph_partition_program(model, spec, layouts);
    REQUIRE(program.transfers.size() == 1);
    CHECK(program.transfers[0].seconds == Approx(kMessage).epsilon(1e-12));
    return program;
}

simulator::SimOptions on_star() {
    simulator::SimOptions options;
    options.platform.topology = "star";
    return options;
}

}  // namespace

TEST_CASE("message factors are the message link's latency and bandwidth over the built link's",
          "[sim][message_link]") {
    const clusters::LinkModel links = clusters::LinkModel::of(calibrated_cluster(2, 2, true));
    // Ranks 0 and 1 share node 0: 3 us / 1 us and 20 GB/s / 10 GB/s.
    const simulator::MessageFactors inside = simulator::message_factors(links, 0, 1);
    CHECK(inside.latency == Approx(3.0).epsilon(1e-12));
    CHECK(inside.bandwidth == Approx(2.0).epsilon(1e-12));
    // Ranks 1 and 2 are on nodes 0 and 1: the inter-node link has no fit, nothing changes.
    const simulator::MessageFactors across = simulator::message_factors(links, 1, 2);
    CHECK(across.latency == 1.0);
    CHECK(across.bandwidth == 1.0);
}

TEST_CASE("a graph partition's cut tensors are replayed on the calibrated message link",
          "[sim][graph_partition][message_link]") {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    clusters::Cluster cluster = calibrated_cluster(2, 1, false);
    const planner::PlannerOptions options = uniform_options(2, 32);
    planner::CostModel model(network, cluster, options);
    // l1, l2 on device 0, l3, l4 on device 1, M = 2, R = 1: the schedule of graph_partition_test.cpp's
    // first case with r = kMessage: 17 f + 2 r = 35.651584 + 7.6384 us. (Each transfer, 3.8 us, ends
    // before the next one on its link starts 2f = 4.2 us later: no sharing.)
    planner::PipelineSpec spec;
    spec.stages = 2;
    spec.micro_batches = 2;
    const std::vector<planner::Layout> ones(network.layers.size());
    split_after_l2(model, spec, ones);  // sets the placement, checks the cut tensor
    const double hand = 17 * kF + 2 * kMessage;
    CHECK(hand == Approx(43.289984e-6).epsilon(1e-9));
    CHECK(planner::score_graph_partition(model, spec, ones).plan.cost.iteration_s == Approx(hand).epsilon(1e-9));
    const simulator::SimResult r = simulator::simulate_graph_partition(model, spec, ones, on_star());
    CHECK(r.simulated.iteration_s == Approx(hand).epsilon(1e-6));
    CHECK(r.messages == 4);
}

TEST_CASE("a graph partition's cut tensor inside a node takes the intra-node fit, the syncs keep the network's link",
          "[sim][graph_partition][message_link]") {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    // Two devices per node, the fit on the intra-node link only: the gradient between the devices
    // is a message inside node r, the replicas' all-reduces (ranks dev and dev + 2) cross the
    // network on its own figures.
    clusters::Cluster cluster = calibrated_cluster(2, 2, true);
    planner::CostModel model(network, cluster, uniform_options(4, 32));
    planner::PipelineSpec spec;
    spec.stages = 2;
    spec.micro_batches = 1;
    spec.replicas = 2;
    const std::vector<planner::Layout> ones(network.layers.size());
    const planner::GraphPartitionProgram program = split_after_l2(model, spec, ones);
    // a: the 2-rank all-reduce of 262144 B on the network's 10 GB/s and 1 us. graph_partition_test.cpp's
    // second case with r = kMessage: 10 f + 2 r + 2 a (the syncs, a > 2 f, dominate).
    const double a = program.sync[1][0].seconds;
    REQUIRE(a > 2 * kF);
    const double hand = 10 * kF + 2 * kMessage + 2 * a;
    CHECK(planner::score_graph_partition(model, spec, ones).plan.cost.iteration_s == Approx(hand).epsilon(1e-9));
    const simulator::SimResult r = simulator::simulate_graph_partition(model, spec, ones, on_star());
    CHECK(r.simulated.iteration_s == Approx(hand).epsilon(1e-6));
}

TEST_CASE("a pipeline's boundaries are replayed on the calibrated message link", "[sim][pipeline][message_link]") {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    clusters::Cluster cluster = calibrated_cluster(2, 1, false);
    planner::CostModel model(network, cluster, uniform_options(2, 64));
    planner::PipelineSpec spec;
    spec.stages = 2;
    spec.micro_batches = 4;
    spec.stage_first = {1, 3};
    const std::vector<planner::Layout> ones(network.layers.size());
    // pipeline_test.cpp's tiny pipeline with r = kMessage (r > f, so 3f + r > 4f still): GPipe
    // 26 f + 8 r = 54.525952 + 30.5536 us; 1F1B (stage 1 the slower) 29 f + 5 r = 60.817408 + 19.096 us.
    REQUIRE(3 * kF + kMessage > 4 * kF);
    for (auto [schedule, hand] : {std::pair{planner::Schedule::gpipe, 85.079552e-6},
                                  std::pair{planner::Schedule::one_f_one_b, 79.913408e-6}}) {
        spec.schedule = schedule;
        const double by_formula =
            schedule == planner::Schedule::gpipe ? 26 * kF + 8 * kMessage : 29 * kF + 5 * kMessage;
        CHECK(by_formula == Approx(hand).epsilon(1e-9));
        CHECK(planner::score_pipeline(model, spec, ones).plan.cost.iteration_s == Approx(hand).epsilon(1e-9));
        const simulator::SimResult r = simulator::simulate_pipeline(model, spec, ones, on_star());
        CHECK(r.simulated.iteration_s == Approx(hand).epsilon(1e-6));
    }
}

TEST_CASE("a calibrated CPU copies each received cut tensor in step, in the list schedule and the replay",
          "[sim][graph_partition]") {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    // fast_cluster's figures on a calibrated CPU (any device.cpu_kernels entry makes it one): the
    // receiving device copies each cut tensor at its copy rate, 16384 B / 100 GB/s = 0.16384 us (c).
    Json spec_json = {{"name", "calibrated-cpu"},
                      {"description", "simulator test cluster: a calibrated CPU"},
                      {"nodes", 2},
                      {"devices_per_node", 1},
                      {"device",
                       {{"name", "test CPU"},
                        {"peak_flops", {{"fp32", 1e12}}},
                        {"achievable_fraction", 1.0},
                        {"memory_bytes", 1LL << 34},
                        {"memory_bandwidth_Bps", 1e11},
                        {"cpu_kernels", {{"halo_pack", {{"per_unit_s", 1e-10}, {"per_call_s", 0.0}}}}}}},
                      {"inter_node", {{"bandwidth_Bps", 1e10}, {"latency_s", 1e-6}, {"topology", "crossbar"}}}};
    clusters::Cluster cluster = clusters::parse_cluster(spec_json, "calibrated-cpu.json");
    planner::CostModel model(network, cluster, uniform_options(2, 32));
    planner::PipelineSpec spec;
    spec.stages = 2;
    spec.micro_batches = 2;
    spec.device_of = {0, 0, 0, 1, 1};
    const std::vector<planner::Layout> ones(network.layers.size());
    const planner::GraphPartitionProgram program = planner::graph_partition_program(model, spec, ones);
    REQUIRE(program.transfers.size() == 1);
    constexpr double c = 0.16384e-6;
    CHECK(program.transfers[0].receive_copy_s == Approx(c).epsilon(1e-12));
    // graph_partition_test.cpp's first schedule with each receiving operation c longer: device 1
    // l3 mb0 from 2f + r (copy, then 2f with l4) to 4f + r + c, mb1 (arrived at 4f + r) to
    // 6f + r + 2c; backwards to 10f + r + 2c (gradient mb0 at device 0: 10f + 2r + 2c) and
    // 14f + r + 2c (mb1: 14f + 2r + 2c). Device 0: l2, l1 of mb0 from 10f + 2r + 2c to
    // 13f + 2r + 3c, l2 of mb1 waits for 14f + 2r + 2c, then c + 2f + f: 17f + 2r + 3c =
    // 35.651584 + 5.2768 + 0.49152 us.
    const double hand = 17 * kF + 2 * kR + 3 * c;
    CHECK(hand == Approx(41.419904e-6).epsilon(1e-9));
    const planner::PipelineScore score = planner::score_graph_partition(model, spec, ones);
    CHECK(score.plan.cost.iteration_s == Approx(hand).epsilon(1e-9));
    // Device 0 (the busiest: 2 x (2f) forward, 2 x (3f) backward) copied 2 gradients: 2c of its
    // point-to-point time, the rest the transfers it waited for.
    CHECK(score.plan.cost.comm(planner::CommKind::point_to_point) >= 2 * c);
    const simulator::SimResult r = simulator::simulate_graph_partition(model, spec, ones, on_star());
    CHECK(r.simulated.iteration_s == Approx(hand).epsilon(1e-6));
}
