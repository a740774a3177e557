// Simulator tests on tiny platforms built in code (label sim): every collective algorithm's
// simulated time against its alpha-beta formula worked out by hand, a two-layer plan's timeline,
// a shared bottleneck link, the rank-to-group mapping, bad platform input, and the agreement of
// simulation and prediction for every strategy family of vgg16 and resnet50 at P = 64 on a star.
#include "simulator/simulator.hpp"
#include "sim_test_helpers.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <iostream>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/search.hpp"

using namespace dnnplan;
using namespace dnnplan::simulator::test;
using clusters::Algorithm;
using clusters::Collective;

namespace {

// A star of `nodes` x `devices` with inter-node links of 1 GB/s and 2 us end to end; inside a
// node 10 GB/s and 0.5 us. Devices compute at 1 TFLOP/s.
clusters::Cluster tiny_cluster(int nodes, int devices) {
    return test_cluster("tiny", nodes, devices, {1e9, 2e-6}, {1e10, 0.5e-6});
}

struct Fixture {
    networks::Network network = networks::load_network_file(kData + "two_linear.json");
    clusters::Cluster cluster;
    planner::PlannerOptions options;
    Fixture(int nodes, int devices) : cluster(tiny_cluster(nodes, devices)) {
        options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
        options.procs = nodes * devices;
        options.batch = 8;
    }
};

// Simulated seconds of one collective call alone (no compute) on the tiny star.
double simulate_call(int nodes, int devices, Collective collective, clusters::CollectiveAlgorithm algorithm,
                     int per_node, double bytes) {
    Fixture f(nodes, devices);
    planner::CostModel model(f.network, f.cluster, f.options);
    planner::ScoredPlan plan;
    plan.layers.resize(f.network.layers.size());
    planner::CommCall call;
    call.layer = 1;
    call.kind = planner::CommKind::all_reduce;
    call.collective = collective;
    call.algorithm = algorithm;
    call.group = clusters::GroupPlacement{nodes * devices, per_node};
    call.bytes = bytes;
    call.what = "test";
    plan.calls.push_back(call);
    simulator::SimOptions options;
    options.platform.topology = "star";
    return simulator::simulate(model, plan, options).simulated.iteration_s;
}

}  // namespace

TEST_CASE("each collective algorithm's simulated time equals its formula on a star", "[sim]") {
    // p = 8 single-device nodes, n = 8 MB, a = 2 us, b = 1 ns/B (1 GB/s); log2 p = 3.
    const double a = 2e-6, b = 1e-9, n = 8e6;
    const int p = 8;
    struct Case {
        Collective collective;
        Algorithm algorithm;
        double expected;
    };
    const Case cases[] = {
        {Collective::all_reduce, Algorithm::ring, 2 * (p - 1) * (a + n / p * b)},  // 14 x 1.002 ms
        {Collective::all_reduce, Algorithm::recursive_doubling, 3 * (a + n * b)},  // full buffer per step
        {Collective::all_reduce, Algorithm::rabenseifner, 2 * 3 * a + 2.0 * (p - 1) / p * n * b},
        {Collective::all_reduce, Algorithm::binomial_tree, 2 * 3 * (a + n * b)},  // reduce + broadcast
        {Collective::all_gather, Algorithm::ring, (p - 1) * (a + n / p * b)},
        {Collective::all_gather, Algorithm::recursive_doubling, 3 * a + 1.0 * (p - 1) / p * n * b},
        {Collective::reduce_scatter, Algorithm::ring, (p - 1) * (a + n / p * b)},
        {Collective::reduce_scatter, Algorithm::recursive_halving, 3 * a + 1.0 * (p - 1) / p * n * b},
        {Collective::broadcast, Algorithm::binomial_tree, 3 * (a + n * b)},
        {Collective::reduce, Algorithm::binomial_tree, 3 * (a + n * b)},
        // van de Geijn: binomial scatter (log p steps, (p-1)/p n) + ring all-gather (p - 1 steps).
        {Collective::broadcast, Algorithm::scatter_allgather, (3 + p - 1) * a + 2.0 * (p - 1) / p * n * b},
        {Collective::reduce, Algorithm::reduce_scatter_gather, (3 + p - 1) * a + 2.0 * (p - 1) / p * n * b},
        {Collective::all_to_all, Algorithm::pairwise, (p - 1) * (a + n / p * b)},
    };
    for (const Case& c : cases) {
        INFO(clusters::to_string(c.collective) << " " << clusters::to_string(c.algorithm));
        double simulated = simulate_call(p, 1, c.collective, c.algorithm, 1, n);
        CHECK(simulated == Approx(c.expected).epsilon(1e-6));
    }
    SECTION("a ring over a group size that is not a power of two") {
        // p = 6, n = 6 MB: 2 x 5 x (2 us + 1 ms).
        double simulated = simulate_call(6, 1, Collective::all_reduce, Algorithm::ring, 1, 6e6);
        CHECK(simulated == Approx(2 * 5 * (a + 1e6 * b)).epsilon(1e-6));
    }
    SECTION("hierarchical all-reduce on 2 nodes of 4 devices") {
        // Intra: ring reduce-scatter + all-gather over d = 4: 2 x 3 x (0.5 us + (n/4) / 10 GB/s);
        // inter: ring all-reduce of n/4 over m = 2 lanes' nodes: 2 x 1 x (2 us + (n/8) / 1 GB/s).
        double intra = 2 * 3 * (0.5e-6 + n / 4 / 1e10);
        double inter = 2 * 1 * (2e-6 + n / 8 / 1e9);
        double simulated = simulate_call(2, 4, Collective::all_reduce,
                                         clusters::CollectiveAlgorithm(Algorithm::hierarchical, Algorithm::ring), 4, n);
        CHECK(simulated == Approx(intra + inter).epsilon(1e-6));
    }
}

TEST_CASE("a two-layer plan's timeline has the expected slices in order", "[sim]") {
    Fixture f(2, 1);
    planner::CostModel model(f.network, f.cluster, f.options);
    std::vector<planner::Layout> layouts(f.network.layers.size());
    for (int anchor : model.anchors()) layouts[anchor] = planner::Layout{2, 1, 1, 1, 1};
    planner::ScoredPlan plan = model.score(layouts);
    simulator::SimOptions options;
    options.platform.topology = "star";
    options.timeline = true;
    simulator::SimResult result = simulator::simulate(model, plan, options);

    std::vector<simulator::Slice> main, sync;
    for (const auto& s : result.slices)
        if (s.rank == 0) (s.track == 0 ? main : sync).push_back(s);
    REQUIRE(main.size() == 4);
    CHECK(main[0].name == "fc1 forward");
    CHECK(main[1].name == "fc2 forward");
    CHECK(main[2].name == "fc2 backward");
    CHECK(main[3].name == "fc1 backward");
    for (std::size_t i = 1; i < main.size(); ++i)
        CHECK(main[i].start_s == Approx(main[i - 1].start_s + main[i - 1].duration_s));
    // fc1 forward on a local batch of 4: 2 x 4 x 64 x 32 multiply-adds = 16384 FLOP (+ bias adds
    // if counted) at 1 TFLOP/s: the replay executes what the model charged.
    CHECK(main[0].duration_s == Approx(plan.layers[1].fwd_compute_s));
    CHECK(main[0].duration_s >= 16384e-12);
    REQUIRE(sync.size() == 2);
    CHECK(sync[0].name.rfind("fc2 weight gradient", 0) == 0);
    CHECK(sync[1].name.rfind("fc1 weight gradient", 0) == 0);
    // fc2's gradient all-reduce starts when its backward pass ends. Over two ranks the cheapest
    // all-reduce is one exchange of the whole buffer: fc2 has 32 x 16 + 16 = 528 fp32 parameters,
    // 2112 bytes: 2 us + 2112 ns.
    CHECK(sync[0].start_s == Approx(main[2].start_s + main[2].duration_s));
    CHECK(sync[0].duration_s == Approx(2e-6 + 2112e-9).epsilon(1e-6));
    // fc1: 64 x 32 + 32 = 2080 parameters, 8320 bytes, started after fc1's backward and fc2's sync.
    CHECK(sync[1].duration_s == Approx(2e-6 + 8320e-9).epsilon(1e-6));
    CHECK(result.simulated.iteration_s == Approx(plan.cost.iteration_s).epsilon(1e-6));

    Json trace = simulator::chrome_trace(result);
    REQUIRE(trace.contains("traceEvents"));
    int complete = 0;
    for (const auto& e : trace["traceEvents"]) {
        if (e["ph"] != "X") continue;
        ++complete;
        for (const char* key : {"name", "cat", "ph", "ts", "dur", "pid", "tid"}) CHECK(e.contains(key));
    }
    CHECK(complete == 12);  // 4 compute + 2 sync slices on each of 2 ranks
}

TEST_CASE("a shared bottleneck link doubles the time of two concurrent transfers", "[sim]") {
    // Two ranks exchange 1 MB each way (recursive-doubling all-gather of 2 MB over 2 ranks).
    // Split-duplex link of 1 GB/s, no latency: 1 ms. One shared link: each direction gets half: 2 ms.
    Fixture f(2, 1);
    planner::CostModel model(f.network, f.cluster, f.options);
    planner::ScoredPlan plan;
    plan.layers.resize(f.network.layers.size());
    planner::CommCall call;
    call.layer = 1;
    call.kind = planner::CommKind::all_gather;
    call.collective = Collective::all_gather;
    call.algorithm = Algorithm::recursive_doubling;
    call.group = clusters::GroupPlacement{2, 1};
    call.bytes = 2e6;
    call.what = "test";
    plan.calls.push_back(call);
    simulator::SimOptions options;
    options.platform.platform_file = kData + "duplex_link.xml";
    double duplex = simulator::simulate(model, plan, options).simulated.iteration_s;
    options.platform.platform_file = kData + "shared_link.xml";
    double shared = simulator::simulate(model, plan, options).simulated.iteration_s;
    CHECK(duplex == Approx(1e-3).epsilon(1e-6));
    CHECK(shared == Approx(2e-3).epsilon(1e-6));
}

TEST_CASE("group members are placed as the cost model assumes", "[sim]") {
    // 4 nodes x 4 devices, P = 16.
    simulator::GroupMap map{16, 4};
    // A group of 4 with 4 per node: one node (ranks 4..7 for rank 5).
    clusters::GroupPlacement node_group{4, 4};
    CHECK(map.my_index(node_group, 5) == 1);
    CHECK(map.member(node_group, 5, 3) == 7);
    // A group of 4 with 1 per node: the same device on each node (rank 6 = node 1, device 2):
    // members 2, 6, 10, 14.
    clusters::GroupPlacement lane{4, 1};
    CHECK(map.my_index(lane, 6) == 1);
    CHECK(map.member(lane, 6, 0) == 2);
    CHECK(map.member(lane, 6, 3) == 14);
    // A group of 8 with 2 per node: devices {0,1} or {2,3} on nodes 0-3... 8 / 2 = 4 nodes.
    clusters::GroupPlacement pairs{8, 2};
    CHECK(map.my_index(pairs, 11) == 5);  // node 2, device 3: lane 1, member 2 x 2 + 1
    CHECK(map.member(pairs, 11, 0) == 2);
    CHECK(map.member(pairs, 11, 7) == 15);
    // One device per node: contiguous blocks.
    simulator::GroupMap flat{12, 1};
    CHECK(flat.my_index({4, 1}, 9) == 1);
    CHECK(flat.member({4, 1}, 9, 0) == 8);
}

TEST_CASE("bad platform input is an InputError, not a SimGrid abort", "[sim]") {
    Fixture f(2, 2);  // P = 4
    planner::CostModel model(f.network, f.cluster, f.options);
    std::vector<planner::Layout> layouts(f.network.layers.size());
    for (int anchor : model.anchors()) layouts[anchor] = planner::Layout{4, 1, 1, 1, 1};
    planner::ScoredPlan plan = model.score(layouts);
    simulator::SimOptions options;
    options.platform.platform_file = kData + "shared_link.xml";
    CHECK_THROWS_WITH(simulator::simulate(model, plan, options),
                      Catch::Contains("the platform has 2 hosts, fewer than the plan's P = 4 ranks"));
    options.platform.platform_file = kData + "broken.xml";
    CHECK_THROWS_WITH(simulator::simulate(model, plan, options), Catch::Contains("broken.xml"));
    options.platform.platform_file = kData + "no_such_platform.xml";
    CHECK_THROWS_WITH(simulator::simulate(model, plan, options), Catch::Contains("no such file"));
    CHECK_THROWS_WITH(simulator::parse_network_model("ns3", "cli", "--network-model"),
                      Catch::Contains("unknown network model \"ns3\"; valid: cm02, lv08 or smpi"));
}

TEST_CASE("simulation agrees with the prediction for every strategy family at P = 64 on a star", "[sim][agreement]") {
    // The agreement figure: contention-free star (private split-duplex links), CM02, every
    // feasible single-stage family that search() ranks for vgg16 and resnet50 on cori-knl at P = 64.
    // Without overlap every message of a rank is sequential, so nothing shares a link and the
    // simulation must reproduce the model (within 1%, in practice to 1e-6). With the gradient
    // all-reduce overlapping the backward pass, the sync stream and the backward pass's blocking
    // collectives share the rank's own link, which the model charges as fair sharing
    // (sync_contention_s). The table printed is the one in simulator/README.md.
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/cori-knl.json");
    std::printf(
        "| network | strategy | overlap | predicted (ms) | simulated (ms) | difference |\n|---|---|---|---|---|---|\n");
    for (const char* name : {"vgg16", "resnet50"}) {
        networks::Network network =
            networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json");
        for (bool overlap : {false, true}) {
            planner::PlannerOptions options;
            options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
            options.procs = 64;
            options.batch = network.default_batch;
            options.dtype = network.dtype;
            options.overlap_sync = overlap;
            planner::CostModel model(network, cluster, options);
            planner::SearchResult result = planner::search(model);
            REQUIRE(result.feasible_count >= 3);
            for (int i = 0; i < result.feasible_count; ++i) {
                const planner::Candidate& c = result.ranked[i];
                // Pipeline candidates are replayed by simulate_pipeline and have their own table
                // (pipeline_test.cpp: their schedule formulas are exact only in some cases);
                // graph partitions are not replayed.
                if (c.pipeline.active()) continue;
                simulator::SimOptions sim;
                sim.platform.topology = "star";
                simulator::SimResult r = simulator::simulate(model, c.plan, sim);
                double rel = (r.simulated.iteration_s - c.plan.cost.iteration_s) / c.plan.cost.iteration_s;
                std::printf("| %s | %s%s%s | %s | %.3f | %.3f | %+.3f%% |\n", name, planner::to_string(c.strategy).c_str(),
                            c.label.empty() ? "" : " ", c.label.c_str(), overlap ? "yes" : "no",
                            1e3 * c.plan.cost.iteration_s, 1e3 * r.simulated.iteration_s, 100 * rel);
                INFO(name << " " << to_string(c.strategy) << " " << c.label << (overlap ? " overlapped" : " not overlapped"));
                // Within 1% with and without overlap: the cost model charges the fair sharing of a
                // rank's link between the overlapped gradient sync and the backward pass's blocking
                // communication (CostBreakdown::sync_contention_s), which this replay exhibits.
                // Known gap: with overlap, plans with halo exchanges (the domain grids that balanced
                // splits made feasible: vgg16's 14 x 14 and resnet50's 7 x 7 maps in uneven tiles)
                // differ by up to 3.8% (simulator/README.md, "Agreement"); bounded at 5% here.
                // Likewise batch norm's statistics all-reduces (resnet50, every family since the
                // byte ledger: 2 C values each way per layer, latency-bound): the model's fair
                // sharing charges their whole time, latency included, as sharing the link with the
                // sync; the replay shares only the bytes (predicted up to 3.3% slower).
                bool statistics = false;
                for (const planner::CommCall& call : c.plan.calls)
                    statistics = statistics || (call.phase != planner::Phase::sync &&
                                                network.layers[call.layer].kind == networks::LayerKind::batchnorm2d);
                const bool halo_under_overlap =
                    overlap && (c.plan.cost.comm(planner::CommKind::halo) > 0 || statistics);
                CHECK(std::fabs(rel) < (halo_under_overlap ? 0.05 : 0.01));
            }
        }
    }
}

TEST_CASE("a 4:1 oversubscribed fat tree slows an all-reduce the star does not", "[sim]") {
    // tests/data/simulator/fat_tree_4to1.json: 64 nodes, leaf switches of 8 nodes with 2 up-links,
    // 8 GB/s links, 3.7 us end to end (3.7 / 4 us per link on a two-level tree).
    // Rabenseifner all-reduce of n = 64 MiB over 64 ranks (contiguous ranks, 8 per leaf switch):
    // recursive halving at distances 1, 2, 4, 8, 16, 32 with n/2, n/4, ..., n/64 bytes, then the
    // mirror all-gather.
    // Star: 2 x 6 latencies + 2 x (63/64) n / bw.
    // Fat tree: the distance 1, 2 and 4 steps stay under the leaf (2 links, 1.85 us); the distance
    // 8, 16 and 32 steps leave it, its 8 nodes share 2 up-links, so each flow gets bw / 4 and the
    // route has 4 links (3.7 us): 2 x [(n/2 + n/4 + n/8) + 4 (n/16 + n/32 + n/64)] / bw
    // + 2 x (3 x 1.85 + 3 x 3.7) us = 2.625 n / bw + 33.3 us, 1.33x the star.
    const double n = 64.0 * 1024 * 1024, bw = 8e9, lat = 3.7e-6;
    const double star = 2 * 6 * lat + 2 * (63.0 / 64) * n / bw;
    const double tree =
        2 * ((n / 2 + n / 4 + n / 8) + 4 * (n / 16 + n / 32 + n / 64)) / bw + 2 * (3 * lat + 3 * lat / 2);
    networks::Network network = networks::load_network_file(kData + "two_linear.json");
    clusters::Cluster cluster = clusters::load_cluster_file(kData + "fat_tree_4to1.json");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 64;
    options.batch = 64;
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan;
    plan.layers.resize(network.layers.size());
    planner::CommCall call;
    call.layer = 1;
    call.phase = planner::Phase::backward;
    call.kind = planner::CommKind::all_reduce;
    call.collective = Collective::all_reduce;
    call.algorithm = Algorithm::rabenseifner;
    call.group = clusters::GroupPlacement{64, 1};
    call.bytes = n;
    call.what = "test";
    plan.calls.push_back(call);
    simulator::SimOptions options_star;
    options_star.platform.topology = "star";
    CHECK(simulator::simulate(model, plan, options_star).simulated.iteration_s == Approx(star).epsilon(1e-6));
    simulator::SimOptions options_tree;
    simulator::SimResult r = simulator::simulate(model, plan, options_tree);
    CHECK(r.platform_kind == "fat_tree");
    CHECK(r.simulated.iteration_s == Approx(tree).epsilon(1e-3));
    // The same tree without oversubscription (8 up-links): no sharing, only the latencies differ.
    options_tree.platform.oversubscription = 1;
    const double full = 2 * (63.0 / 64) * n / bw + 2 * (3 * lat + 3 * lat / 2);
    CHECK(simulator::simulate(model, plan, options_tree).simulated.iteration_s == Approx(full).epsilon(1e-3));
}

TEST_CASE("platforms with several devices per node, a torus and a dragonfly replay a plan", "[sim]") {
    // Pure batch over 8 ranks on 2 nodes x 4 devices: the gradient all-reduces are the only
    // messages; on the star every device has its own NIC, so the replay equals the model.
    Fixture f(2, 4);
    planner::CostModel model(f.network, f.cluster, f.options);
    std::vector<planner::Layout> layouts(f.network.layers.size());
    for (int anchor : model.anchors()) layouts[anchor] = planner::Layout{8, 1, 1, 1, 1};
    planner::ScoredPlan plan = model.score(layouts);
    simulator::SimOptions options;
    options.platform.topology = "star";
    simulator::SimResult r = simulator::simulate(model, plan, options);
    CHECK(r.simulated.iteration_s == Approx(plan.cost.iteration_s).epsilon(1e-6));
    CHECK(r.platform_hosts == 8);

    for (const char* file : {"torus_4x4x4.json"}) {
        clusters::Cluster torus = clusters::load_cluster_file(kData + file);
        planner::PlannerOptions o;
        o.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
        o.procs = 64;
        o.batch = 64;
        planner::CostModel m(f.network, torus, o);
        std::vector<planner::Layout> l(f.network.layers.size());
        for (int anchor : m.anchors()) l[anchor] = planner::Layout{64, 1, 1, 1, 1};
        planner::ScoredPlan p = m.score(l);
        simulator::SimResult t = simulator::simulate(m, p, simulator::SimOptions{});
        CHECK(t.platform_kind == "torus");
        CHECK(t.platform_hosts == 64);
        // Compute is replayed exactly; messages pay latency per hop (half the spec's latency for a
        // neighbour, more for distant nodes), so only the communication differs.
        CHECK(t.simulated.fwd_compute_s == Approx(p.cost.fwd_compute_s).epsilon(1e-9));
        CHECK(t.simulated.bwd_compute_s == Approx(p.cost.bwd_compute_s).epsilon(1e-9));
        CHECK(t.simulated.sync_total_s != Approx(p.cost.sync_total_s).epsilon(1e-3));
    }
    clusters::Cluster cori = clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/cori-knl.json");
    planner::PlannerOptions o;
    o.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    o.procs = 16;
    o.batch = 16;
    planner::CostModel m(f.network, cori, o);
    std::vector<planner::Layout> l(f.network.layers.size());
    for (int anchor : m.anchors()) l[anchor] = planner::Layout{16, 1, 1, 1, 1};
    planner::ScoredPlan p = m.score(l);
    simulator::SimResult d = simulator::simulate(m, p, simulator::SimOptions{});
    CHECK(d.platform_kind == "dragonfly");
    CHECK(d.simulated.fwd_compute_s == Approx(p.cost.fwd_compute_s).epsilon(1e-9));
    CHECK(d.simulated.bwd_compute_s == Approx(p.cost.bwd_compute_s).epsilon(1e-9));
}

TEST_CASE("the optimizer step of the per-operation model is replayed after the sync", "[sim]") {
    // planner/compute.hpp times the optimizer's update (weights, gradients and momentum read and
    // written once, at memory bandwidth) and the stage evaluator adds it after the gradient
    // synchronisation; the replay runs the same seconds as compute on every rank then, so on a
    // contention-free platform the simulated step equals the predicted one and the iteration
    // agrees as it does without it.
    networks::Network network = builtin_network("vgg16");
    clusters::Cluster cluster = preset_cluster("cori-knl");
    planner::PlannerOptions options;
    options.procs = 8;
    options.batch = 64;
    options.overlap_sync = false;  // every message sequential: the replay is the model exactly
    planner::CostModel model(network, cluster, options);
    std::vector<planner::Layout> layouts(network.layers.size(), planner::Layout{8, 1, 1, 1, 1});
    const planner::ScoredPlan plan = model.score(layouts);
    REQUIRE(plan.cost.feasible);
    REQUIRE(plan.cost.optimizer_step_s > 0);
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    const simulator::SimResult r = simulator::simulate(model, plan, sim);
    CHECK(r.simulated.optimizer_step_s == Approx(plan.cost.optimizer_step_s).epsilon(1e-6));
    CHECK(r.simulated.iteration_s == Approx(plan.cost.iteration_s).epsilon(1e-5));
}
