// Graph-partition replay tests (label sim): a tiny partition of four equal linear layers on two
// devices whose simulated iteration equals the list schedule worked out by hand and
// score_graph_partition's prediction, graph_partition_program() against the model's inputs, and
// the agreement table of simulator/README.md ("Graph partitions": every candidate
// search_graph_partitions returns for vgg16 and resnet50 at P = 64 on cori-knl, on a star).
#include "planner/graph_partition.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using namespace dnnplan::simulator::test;

namespace {

// kF and kR: four_linear's f and r at micro-batches of 16 (sim_test_helpers.hpp).

planner::PipelineSpec partition(int devices, int micro, int replicas, std::vector<int> device_of) {
    planner::PipelineSpec spec;
    spec.stages = devices;
    spec.micro_batches = micro;
    spec.replicas = replicas;
    spec.device_of = std::move(device_of);
    return spec;
}

simulator::SimResult simulate_star(const planner::CostModel& model, const planner::PipelineSpec& spec,
                                   bool timeline = false) {
    simulator::SimOptions options;
    options.platform.topology = "star";
    options.timeline = timeline;
    return simulator::simulate_graph_partition(model, spec, std::vector<planner::Layout>(model.network().layers.size()),
                                               options);
}

// Whether two transfers of the list schedule (R = 1) share a device's outgoing or incoming link
// at the same time: the replay then shares the link's bandwidth, the model does not. Walks the
// schedule score_graph_partition describes (brute force over the program's operations).
bool transfers_overlap(const planner::CostModel& model, const planner::PipelineSpec& spec,
                       const planner::GraphPartitionProgram& program) {
    const auto& layers = model.network().layers;
    const int n = static_cast<int>(layers.size()), M = spec.micro_batches;
    std::vector<std::vector<std::pair<double, double>>> out(spec.stages), in(spec.stages);
    std::vector<double> free(spec.stages, 0.0), fwd(n * M, 0.0), bwd(n * M, 0.0);
    auto arrive = [&](const planner::GraphPartitionProgram::Transfer& t, int from, int to, double sent) {
        out[from].push_back({sent, sent + t.seconds});
        in[to].push_back({sent, sent + t.seconds});
        return sent + t.seconds;
    };
    for (int m = 0; m < M; ++m)
        for (int i = 1; i < n; ++i) {
            double ready = 0;
            for (int p : layers[i].inputs)
                if (p > 0) ready = std::max(ready, fwd[m * n + p]);
            for (const auto& t : program.transfers)
                if (t.consumer == i)
                    ready = std::max(ready,
                                     arrive(t, spec.device_of[t.producer], spec.device_of[i], fwd[m * n + t.producer]));
            int d = spec.device_of[i];
            free[d] = fwd[m * n + i] = std::max(free[d], ready) + program.forward_s[i];
        }
    for (int m = 0; m < M; ++m)
        for (int i = n - 1; i >= 1; --i) {
            double ready = 0;
            for (int c = i + 1; c < n; ++c)
                for (int p : layers[c].inputs)
                    if (p == i) ready = std::max(ready, bwd[m * n + c]);
            for (const auto& t : program.transfers)
                if (t.producer == i)
                    ready = std::max(ready,
                                     arrive(t, spec.device_of[t.consumer], spec.device_of[i], bwd[m * n + t.consumer]));
            int d = spec.device_of[i];
            free[d] = bwd[m * n + i] = std::max(free[d], ready) + program.backward_s[i];
        }
    for (auto* links : {&out, &in})
        for (auto& intervals : *links) {
            std::sort(intervals.begin(), intervals.end());
            for (std::size_t j = 1; j < intervals.size(); ++j)
                if (intervals[j].first < intervals[j - 1].second - 1e-12) return true;
        }
    return false;
}

}  // namespace

TEST_CASE("a tiny graph partition's simulated iteration equals the list schedule worked out by hand",
          "[sim][graph_partition]") {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    clusters::Cluster cluster = fast_cluster(2);
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 2;
    options.batch = 32;
    planner::CostModel model(network, cluster, options);
    // l1, l2 on device 0; l3, l4 on device 1; M = 2 micro-batches of 16, one replica.
    planner::PipelineSpec spec = partition(2, 2, 1, {0, 0, 0, 1, 1});
    const std::vector<planner::Layout> ones(network.layers.size());

    // The program's inputs are the hand calculation's.
    planner::GraphPartitionProgram program = planner::graph_partition_program(model, spec, ones);
    REQUIRE(program.micro_batch == 16);
    CHECK(program.forward_s[1] == Approx(kF).epsilon(1e-12));
    CHECK(program.backward_s[1] == Approx(kF).epsilon(1e-12));
    CHECK(program.backward_s[4] == Approx(2 * kF).epsilon(1e-12));
    REQUIRE(program.transfers.size() == 1);  // l2 -> l3, the only tensor between the devices
    CHECK(program.transfers[0].producer == 2);
    CHECK(program.transfers[0].consumer == 3);
    CHECK(program.transfers[0].bytes == 16384);
    CHECK(program.transfers[0].seconds == Approx(kR).epsilon(1e-12));
    for (const auto& calls : program.sync) CHECK(calls.empty());  // R = 1: nothing to synchronise

    // Device 0 forwards l1, l2 of mb0 in [0, 2f], of mb1 in [2f, 4f]; the activations arrive at
    // device 1 at 2f + r and 4f + r. Device 1: l3, l4 mb0 in [2f + r, 4f + r], mb1 in
    // [4f + r, 6f + r]; backwards l4, l3 of mb0 in [6f + r, 10f + r] (the gradient reaches device 0
    // at 10f + 2r), of mb1 in [10f + r, 14f + r] (arrives 14f + 2r). Device 0: l2, l1 of mb0 in
    // [10f + 2r, 13f + 2r], then l2 of mb1 waits for its gradient: [14f + 2r, 16f + 2r], l1 to
    // 17f + 2r = 35.651584 + 5.2768 us.
    const double hand = 17 * kF + 2 * kR;
    CHECK(hand == Approx(40.928384e-6).epsilon(1e-9));
    const planner::PipelineScore score = planner::score_graph_partition(model, spec, ones);
    CHECK(score.plan.cost.iteration_s == Approx(hand).epsilon(1e-9));
    simulator::SimResult r = simulate_star(model, spec, true);
    CHECK(r.simulated.iteration_s == Approx(hand).epsilon(1e-6));
    CHECK(r.messages == 4);  // 2 activations, 2 gradients
    // Device 0 is the last: it computed 2 x (f + f) forward and 2 x (2f + f) backward.
    CHECK(r.critical_rank == 0);
    CHECK(r.simulated.fwd_compute_s == Approx(4 * kF).epsilon(1e-6));
    CHECK(r.simulated.bwd_compute_s == Approx(6 * kF).epsilon(1e-6));
    // The timeline names its slices as the pipeline replay does.
    bool compute = false, receive = false;
    for (const auto& s : r.slices) {
        compute = compute || (s.rank == 1 && s.name == "l3 forward mb1");
        receive = receive || (s.rank == 0 && s.name == "receive gradients mb0 from rank 1");
    }
    CHECK(compute);
    CHECK(receive);
}

TEST_CASE("a tiny graph partition with two replicas overlaps each layer's gradient sync", "[sim][graph_partition]") {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    // Two devices per node: rank dev + 2 r puts replica r on node r, so the gradient between the
    // devices crosses the intra-node link while the replicas' all-reduces use the network cards
    // (on one device per node both would share rank 1's link, which the model does not charge).
    clusters::Cluster cluster = fast_cluster(2, 2);
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 4;
    options.batch = 32;
    planner::CostModel model(network, cluster, options);
    // R = 2, M = 1: micro-batches of 16 again, the same schedule with one micro-batch, then the
    // all-reduce of every layer's 256 x 256 x 4 B = 262144 B gradient between ranks dev and dev + 2.
    planner::PipelineSpec spec = partition(2, 1, 2, {0, 0, 0, 1, 1});
    const std::vector<planner::Layout> ones(network.layers.size());
    planner::GraphPartitionProgram program = planner::graph_partition_program(model, spec, ones);
    for (int i = 1; i <= 4; ++i) {
        REQUIRE(program.sync[i].size() == 1);
        CHECK(program.sync[i][0].bytes == 262144);
        CHECK(program.sync[i][0].group.size == 2);
        CHECK(program.sync[i][0].group.per_node == 1);  // one replica per node
    }
    REQUIRE(program.transfers.size() == 1);
    CHECK(program.transfers[0].seconds == Approx(kR).epsilon(1e-12));  // intra-node, same link figures
    const double a = program.sync[1][0].seconds;
    // Device 0: forwards in [0, 2f]; device 1: [2f + r, 4f + r], backwards l4 to 6f + r (its sync
    // a starts), l3 to 8f + r (its sync waits for l4's: starts at max(8f + r, 6f + r + a)). The
    // gradient reaches device 0 at 8f + 2r: l2 to 10f + 2r, l1 to 11f + 2r; their syncs run one at
    // a time from there. a (a 2-rank all-reduce of 256 KiB at 10 GB/s, > 26 us) is far longer than
    // 2f, so the syncs dominate: device 1 ends at 6f + r + 2a, device 0 at 10f + 2r + 2a
    // (l1's sync waits for l2's, which ends after l1's backward).
    REQUIRE(a > 2 * kF);
    const double hand = 10 * kF + 2 * kR + 2 * a;
    const planner::PipelineScore score = planner::score_graph_partition(model, spec, ones);
    CHECK(score.plan.cost.iteration_s == Approx(hand).epsilon(1e-9));
    simulator::SimResult r = simulate_star(model, spec);
    CHECK(r.simulated.iteration_s == Approx(hand).epsilon(1e-6));

    // --no-overlap (issue 16, item 4): a device's syncs wait for its last operation. Device 1's
    // backwards end at 8f + r, its syncs at 8f + r + 2a; device 0's l1 backward ends at 11f + 2r,
    // then its two syncs: 11f + 2r + 2a, all of the sync exposed (2a past a schedule of 11f + 2r).
    options.overlap_sync = false;
    planner::CostModel serial(network, cluster, options);
    const double hand_serial = 11 * kF + 2 * kR + 2 * a;
    const planner::PipelineScore serial_score = planner::score_graph_partition(serial, spec, ones);
    CHECK(serial_score.plan.cost.iteration_s == Approx(hand_serial).epsilon(1e-9));
    CHECK(serial_score.plan.cost.sync_exposed_s == Approx(2 * a).epsilon(1e-9));
    simulator::SimResult rs = simulate_star(serial, spec);
    CHECK(rs.simulated.iteration_s == Approx(hand_serial).epsilon(1e-6));
}

TEST_CASE("graph partitions: simulation against the list schedule at P = 64 on a star",
          "[sim][graph_partition][agreement]") {
    // The table of simulator/README.md ("Graph partitions"). vgg16 and resnet50 (batch 256) on
    // cori-knl, star, CM02: every candidate search_graph_partitions returns at P = 64 (k devices x
    // R = 64 / k replicas), and the same partitions with one replica (P = k, the batch of one
    // replica, so that the schedule is the same) to isolate the list schedule from the replicas'
    // sync.
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/cori-knl.json");
    std::printf(
        "| network | P | k | M | R | balance | cut | transfers overlap | predicted (ms) | simulated (ms) | difference "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const char* name : {"vgg16", "resnet50"}) {
        networks::Network network =
            networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json");
        planner::PlannerOptions options;
        options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
        options.procs = 64;
        options.batch = 256;
        planner::CostModel model(network, cluster, options);
        std::vector<planner::GraphPartitionCandidate> candidates = planner::search_graph_partitions(model);
        REQUIRE(!candidates.empty());
        for (const auto& c : candidates) {
            for (bool one_replica : {true, false}) {
                planner::PipelineSpec spec = c.spec;
                planner::PlannerOptions o = options;
                if (one_replica) {
                    o.procs = spec.stages;
                    o.batch = options.batch / spec.replicas;
                    spec.replicas = 1;
                }
                planner::CostModel m(network, cluster, o);
                const std::vector<planner::Layout> ones(network.layers.size());
                const double predicted = planner::score_graph_partition(m, spec, ones).plan.cost.iteration_s;
                simulator::SimResult r = simulate_star(m, spec);
                const double rel = (r.simulated.iteration_s - predicted) / predicted;
                planner::PipelineSpec alone = spec;
                alone.replicas = 1;
                planner::PlannerOptions o1 = o;
                o1.procs = spec.stages;
                o1.batch = o.batch / spec.replicas;
                planner::CostModel m1(network, cluster, o1);
                const bool overlap = transfers_overlap(m1, alone, planner::graph_partition_program(m1, alone, ones));
                std::printf("| %s | %d | %d | %d | %d | %.2f | %s | %s | %.3f | %.3f | %+.3f%% |\n", name,
                            static_cast<int>(o.procs), spec.stages, spec.micro_batches, spec.replicas,
                            c.partition.balance, human_bytes(c.partition.cut_bytes).c_str(), overlap ? "yes" : "no",
                            1e3 * predicted, 1e3 * r.simulated.iteration_s, 100 * rel);
                INFO(name << " P=" << o.procs << " k=" << spec.stages << " M=" << spec.micro_batches);
                // The model shares each link equally among the transfers in flight, as the replay's
                // max-min sharing does on a star: exact with one replica, overlapping transfers or
                // not. With replicas the sync is one flow of its seconds on the device's links,
                // while the replay runs its collective's messages: within 1%.
                if (spec.replicas == 1) CHECK(std::fabs(rel) < 1e-6);
                CHECK(std::fabs(rel) < 0.01);
            }
        }
    }
}
