// Processes per node as a plan dimension (issue 16, item 5): the cluster seen by k processes per
// node (clusters/processes_per_node.hpp) worked out by hand for frontera at k = 4, a two-process
// plan's cost at k = 1 and k = 2 by hand, the search over k against a brute force over every k, and
// the plan document's round trip.
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "clusters/processes_per_node.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "planner_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;

namespace {

const std::string kSourceDir = DNNPLAN_SOURCE_DIR;

// The best feasible iteration of a full search at k processes per node (0: none feasible).
double best_at(const networks::Network& net, const clusters::Cluster& cluster, PlannerOptions options, int k) {
    options.processes_per_node = k;
    CostModel model(net, cluster, options);
    SearchResult result = search(model);
    return result.best() ? result.best()->plan.cost.iteration_s : 0;
}

// hand_cluster with two cores per node and 8 GB/s of memory bandwidth.
clusters::Cluster two_core_cluster() {
    clusters::Cluster c = hand_cluster(1e9, 1e-6);
    c.device.cores = 2;
    c.device.memory_bandwidth_Bps = 8e9;
    return c;
}

}  // namespace

TEST_CASE("frontera seen by 4 processes per node: each process a quarter of the node", "[planner][ppn]") {
    const clusters::Cluster node = preset("frontera");
    REQUIRE(node.device.cores == 56);
    REQUIRE(node.device.gemm.units == 56);  // the cores, given once (device.cores)
    const clusters::Cluster v = clusters::processes_per_node_view(node, 4);
    CHECK(v.name == "frontera");  // plan documents name the cluster file, not the view
    CHECK(v.nodes == 8008);
    CHECK(v.devices_per_node == 4);
    CHECK(v.total_devices() == 32032);  // 8,008 nodes x 4
    // 6.4512e12 FLOP/s / 4 (56 cores x 1.8 GHz x 64 / 4 = 14 cores' worth)
    CHECK(v.peak_flops(DType::fp32) == Approx(1.6128e12).epsilon(1e-12));
    CHECK(v.device.achievable_fraction == 0.5);
    CHECK(v.device.memory_bytes == 51539607552);                          // 192 GiB / 4 = 48 GiB
    CHECK(v.device.memory_bandwidth_Bps == Approx(7.0392e10).epsilon(1e-12));  // 281.568 GB/s / 4
    CHECK(v.device.cores == 14);
    CHECK(v.device.gemm.units == 14);  // a process's GEMMs quantise on its 14 cores
    CHECK(v.device.gemm.tile_m == 28);
    CHECK(v.device.gemm.tile_n == 16);
    // Shared memory: 281.568 GB/s / (2 x 4) = 35.196 GB/s per process and direction, 0.5 us.
    CHECK(v.intra_node.bandwidth_Bps == Approx(3.5196e10).epsilon(1e-12));
    CHECK(v.intra_node.latency_s == 0.5e-6);
    // HDR100's 12.5 GB/s shared by 4 processes: 3.125 GB/s each; the latency is the network's.
    CHECK(v.inter_node.bandwidth_Bps == Approx(3.125e9).epsilon(1e-12));
    CHECK(v.inter_node.latency_s == 1.0e-6);
    CHECK(v.topology == node.topology);
    CHECK(v.sources.at("/intra_node/bandwidth_Bps").find("derived") != std::string::npos);
    CHECK(clusters::processes_per_node_view(node, 1) == node);
}

TEST_CASE("which k each cluster allows", "[planner][ppn]") {
    using V = std::vector<int>;
    CHECK(clusters::processes_per_node_choices(preset("frontera")) == V{1, 2, 4, 8, 56});       // 56 = 2^3 x 7
    CHECK(clusters::processes_per_node_choices(preset("stampede2-skx")) == V{1, 2, 4, 8, 16, 48});  // 48 = 2^4 x 3
    CHECK(clusters::processes_per_node_choices(preset("cori-knl")) == V{1, 2, 4, 68});          // 68 = 2^2 x 17
    CHECK(clusters::processes_per_node_choices(preset("dgx-a100")) == V{1});  // no cores: GPUs
    CHECK(clusters::processes_per_node_problem(preset("frontera"), 7) == "");  // any divisor can be asked for
    CHECK(clusters::processes_per_node_problem(preset("frontera"), 3) ==
          "3 processes per node do not divide the 56 cores of a frontera node");
    CHECK(clusters::processes_per_node_problem(preset("dgx-a100"), 2) ==
          "cluster dgx-a100 does not describe its cores (device.cores), so its nodes cannot be shared by 2 "
          "processes; only 1 process per device");
    CHECK_THROWS_AS(clusters::processes_per_node_view(preset("dgx-a100"), 2), std::invalid_argument);
}

TEST_CASE("device.cores is the gemm units, given once, and round-trips", "[planner][ppn]") {
    const clusters::Cluster node = preset("stampede2-skx");
    CHECK(clusters::parse_cluster(clusters::to_json(node), "x.json") == node);
    Json spec = clusters::to_json(node);
    CHECK_FALSE(spec["device"]["gemm"].contains("units"));
    spec["device"]["gemm"]["units"] = 48;
    try {
        clusters::parse_cluster(spec, "x.json");
        FAIL("expected an InputError");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()) ==
              "x.json: /device/gemm/units: is device.cores (48) on a device that gives its cores; leave it out");
    }
}

TEST_CASE("two processes of one node against two nodes: compute share and link by hand", "[planner][ppn]") {
    // two_linear (64 -> 32 -> 16, bias), batch 8, pure batch over P = 2, one rate per device
    // (uniform), no overlap. Per sample: fc1 forward 2 x 64 x 32 + 32 = 4,128 FLOPs, input gradient
    // 4,096, weight gradient 4,128; fc2 forward 2 x 32 x 16 + 16 = 1,040, 1,024, 1,040. Parameters:
    // fc1 2,080 (8,320 bytes), fc2 528 (2,112 bytes).
    // Each process has 4 samples: forward 4 x 5,168 = 20,672 FLOPs, backward 4 x (1,024 + 4,128 +
    // 1,040) = 24,768 FLOPs (fc1 reads the network's input, so it computes no input gradient).
    // k = 1 (two nodes, 1 TFLOP/s each): forward 20.672 ns, backward 24.768 ns. Each layer's
    // gradient all-reduce over 2 ranks on different nodes, cheapest as recursive doubling (one
    // exchange of the whole buffer, alpha + n / beta) on the 1 GB/s, 1 us network:
    // fc1 1 us + 8.32 us, fc2 1 us + 2.112 us: 12.432 us in all.
    // k = 2 (one node, 0.5 TFLOP/s per process): forward 41.344 ns, backward 49.536 ns; the all-reduce
    // on shared memory: 8 GB/s / (2 x 2) = 2 GB/s at 0.5 us: fc1 0.5 + 4.16 us, fc2 0.5 + 1.056 us:
    // 6.216 us.
    networks::Network net = networks::load_network_file(kSourceDir + "/tests/data/simulator/two_linear.json");
    clusters::Cluster cluster = two_core_cluster();
    struct Expect {
        int k;
        double fwd_s, bwd_s, sync_s;
    };
    for (const Expect& e : {Expect{1, 20.672e-9, 24.768e-9, 12.432e-6}, Expect{2, 41.344e-9, 49.536e-9, 6.216e-6}}) {
        PlannerOptions o = options(2, 8, /*overlap=*/false);
        o.processes_per_node = e.k;
        CostModel model(net, cluster, o);
        const CostBreakdown c = model.score(std::vector<Layout>(net.layers.size(), Layout{2, 1, 1, 1, 1})).cost;
        INFO("k = " << e.k);
        REQUIRE(c.feasible);
        CHECK(c.fwd_compute_s == Approx(e.fwd_s).epsilon(1e-9));
        CHECK(c.bwd_compute_s == Approx(e.bwd_s).epsilon(1e-9));
        CHECK(c.sync_total_s == Approx(e.sync_s).epsilon(1e-9));
        CHECK(c.iteration_s == Approx(e.fwd_s + e.bwd_s + e.sync_s).epsilon(1e-9));
    }
}

TEST_CASE("the search over processes per node keeps the k a brute force over every k finds", "[planner][ppn]") {
    struct Case {
        std::string what;
        networks::Network net;
        clusters::Cluster cluster;
        PlannerOptions options;
        int expected_k;  // 0: whatever the brute force finds
    };
    std::vector<Case> cases;
    {
        // Communication-bound: the hand calculation above makes one node of two processes (6.31 us)
        // beat two nodes (12.48 us) for pure batch, and every other family is at least as
        // communication-bound, so k = 2 must win.
        PlannerOptions o = options(2, 8, false);
        cases.push_back({"two_linear on two cores", networks::load_network_file(kSourceDir +
                                                                               "/tests/data/simulator/two_linear.json"),
                         two_core_cluster(), o, 2});
    }
    {
        PlannerOptions o;
        o.procs = 8;
        o.batch = 64;
        cases.push_back({"lenet5 on frontera, P = 8", builtin("lenet5"), preset("frontera"), o, 0});
        o.procs = 16;
        o.batch = 256;
        cases.push_back({"smallcnn on stampede2-skx, P = 16", builtin("smallcnn"), preset("stampede2-skx"), o, 0});
    }
    for (const Case& c : cases) {
        INFO(c.what);
        PlacementSearch found = search_processes_per_node(c.net, c.cluster, c.options);
        int brute_k = 0;
        double brute_best = 0;
        for (int k : clusters::processes_per_node_choices(c.cluster)) {
            if (c.options.procs % k != 0 || c.options.procs / k > c.cluster.nodes) continue;
            const double best = best_at(c.net, c.cluster, c.options, k);
            INFO("k = " << k << ": " << best);
            // No plan beats the compute lower bound that lets the search skip a k.
            CHECK(best >= compute_lower_bound(c.net, c.cluster, c.options, k));
            if (best > 0 && (brute_best == 0 || best < brute_best)) {
                brute_best = best;
                brute_k = k;
            }
        }
        REQUIRE(found.result.best() != nullptr);
        CHECK(found.model->options().processes_per_node == brute_k);
        CHECK(found.result.best()->processes_per_node == brute_k);
        CHECK(found.result.best()->plan.cost.iteration_s == Approx(brute_best).epsilon(1e-12));
        if (c.expected_k > 0) CHECK(brute_k == c.expected_k);
    }
}

TEST_CASE("a plan at 2 processes per node round-trips through its document", "[planner][ppn][plan]") {
    networks::Network net = builtin("lenet5");
    clusters::Cluster frontera = preset("frontera");
    PlannerOptions o;
    o.procs = 8;
    o.batch = 64;
    o.processes_per_node = 2;
    CostModel model(net, frontera, o);
    SearchResult result = search(model);
    REQUIRE(result.best() != nullptr);
    const Candidate& best = *result.best();
    CHECK(best.processes_per_node == 2);
    Json json = plan_to_json(make_plan(model, best, {"lenet5", "frontera"}), model);
    CHECK(json.at("processes_per_node") == 2);
    PlanRequest request = parse_plan_request(json, "p.json");
    CHECK(request.options.processes_per_node == 2);
    check_request_fits_cluster(request, frontera, "p.json");
    CostModel again(net, frontera, request.options);
    CHECK(again.cluster().devices_per_node == 2);
    Candidate c;
    c.pipeline = pipeline_for(request, again, "p.json");
    std::vector<Layout> layouts = layouts_for(request, again, "p.json");
    const double rescored = c.pipeline.active() ? score_pipeline(again, c.pipeline, layouts).plan.cost.iteration_s
                                                : again.score(layouts).cost.iteration_s;
    CHECK(rescored == Approx(best.plan.cost.iteration_s).epsilon(1e-12));

    // On a cluster without cores the document's k is refused at its pointer.
    try {
        check_request_fits_cluster(request, preset("dgx-a100"), "p.json");
        FAIL("expected an InputError");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()) ==
              "p.json: /processes_per_node: cluster dgx-a100 does not describe its cores (device.cores), so its "
              "nodes cannot be shared by 2 processes; only 1 process per device");
    }
    // Plans written before the field existed ran one process per device.
    json.erase("processes_per_node");
    CHECK(parse_plan_request(json, "p.json").options.processes_per_node == 1);
}
