// Pooling under a domain split (issue 16, item 3): a global pool averages each tile and
// all-reduces the small partial sums; overlapping pooling windows exchange their one-sided halos
// on the link the neighbours are on. Hand calculations in the comments.
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "planner/cost_model.hpp"
#include "planner_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;
using clusters::Algorithm;
using clusters::Collective;

TEST_CASE("a global pool under a 2 x 2 split pools its tile and all-reduces 128 B, not the whole input",
          "[planner][pooling]") {
    // conv (4 -> 8 channels, 3x3, padding 1) on 8 x 8 images split 2 x 2 over P = 4, B = 4 (every
    // process holds all 4 samples); the global pool then reads the conv's tiles as they are. Its
    // partial sums: 4 samples x 8 channels x 4 B = 128 B, all-reduced over the 4 tiles (one
    // device per node, a = 1 us, 1 GB/s): recursive doubling 2 (1e-6 + 128 / 1e9) = 2.256e-6 s
    // (ring 6 (1e-6 + 32e-9) = 6.192e-6, Rabenseifner 4e-6 + 1.5 x 0.128e-6 = 4.192e-6). The
    // linear head on one process reads the replicated means: no redistribution anywhere. (Before:
    // the pool asked for its whole 4 x 8 x 8 x 8 x 4 B = 8 KiB input on every process.)
    networks::Network net = networks::parse_network(Json::parse(R"({
        "name": "pool_head", "batch": 4, "input": {"shape": [4, 8, 8]},
        "layers": [
            {"name": "conv", "kind": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1, "bias": false},
            {"name": "pool", "kind": "global_avgpool2d"},
            {"name": "flat", "kind": "flatten"},
            {"name": "fc", "kind": "linear", "out_features": 10}
        ]})"),
                                                    "inline.json");
    const clusters::Cluster cluster = hand_cluster();  // the model keeps a reference: not a temporary
    CostModel model(net, cluster, options(4, 4));
    std::vector<Layout> layouts(net.layers.size());
    layouts[1] = Layout{1, 1, 1, 2, 2};
    layouts[4] = Layout{1, 1, 1, 1, 1};
    ScoredPlan plan = model.score(layouts);
    REQUIRE(plan.cost.feasible);
    CHECK(plan.layers[2].in_dist == Dist{1, 1, 2, 2});
    CHECK(plan.layers[2].out_dist == Dist{1, 1, 1, 1});
    const CommCall* sums = nullptr;
    for (const CommCall& c : plan.calls) {
        CHECK(c.kind != CommKind::redistribution);
        if (c.layer == 2) sums = &c;
    }
    REQUIRE(sums != nullptr);
    CHECK(sums->phase == Phase::forward);
    CHECK(sums->collective == Collective::all_reduce);
    CHECK(sums->algorithm == clusters::CollectiveAlgorithm(Algorithm::recursive_doubling));
    CHECK(sums->group == clusters::GroupPlacement{4, 1});
    CHECK(sums->bytes == 128);
    CHECK(sums->seconds == Approx(2.256e-6).epsilon(1e-12));
    CHECK(plan.layers[2].bwd_comm_s == 0);  // the gradient of a mean is spread over each tile locally
    // The pool's work splits over the 4 tiles: its FLOPs per sample x 4 samples / 4 tiles, at 1e12
    // FLOP/s.
    CHECK(plan.layers[2].fwd_compute_s == Approx(net.layers[2].fwd_flops * 4.0 / 4 / 1e12).epsilon(1e-12));
}

TEST_CASE("overlapping pooling windows exchange their halo on the intra-node link when the tiles share a node",
          "[planner][pooling]") {
    // conv then maxpool 3x3 stride 2 padding 1 (windows overlap by one row and one column) on 8 x 8
    // maps of 8 channels, split 2 x 2 over P = 4 on nodes of 4 devices. Input rows [0,4) [4,8),
    // output rows (8 + 2 - 3) / 2 + 1 = 4: [0,2) [2,4). Output block [0,2) reads input rows
    // [max(0, 0 - 1), 1 x 2 - 1 + 3) = [0,4): its own; [2,4) reads [3,8): one row before [4,8).
    // The same along columns. As a convolution's halo (rows, then columns on the row-extended
    // block of 5 rows): rows 4 samples x 8 channels x 1 row x 4 columns x 4 B = 512 B, columns
    // 4 x 8 x 1 x 5 x 4 = 640 B, each on a two-part line inside the node (0.5 us, 10 GB/s):
    // 0.5e-6 + 512 / 1e10 = 0.5512e-6 s and 0.5640e-6 s; backward the adjoint, the same.
    // (Before: one one-sided message of 1024 B on the inter-node link, then on the intra-node one.)
    networks::Network net = networks::parse_network(Json::parse(R"({
        "name": "pool_halo", "batch": 4, "input": {"shape": [8, 8, 8]},
        "layers": [
            {"name": "conv", "kind": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1, "bias": false},
            {"name": "pool", "kind": "maxpool2d", "kernel": 3, "stride": 2, "padding": 1}
        ]})"),
                                                    "inline.json");
    clusters::Cluster cluster = hand_cluster(1e9, 2e-6);
    cluster.devices_per_node = 4;
    cluster.intra_node = clusters::Link{1e10, 0.5e-6};
    CostModel model(net, cluster, options(4, 4));
    std::vector<Layout> layouts(net.layers.size());
    layouts[1] = Layout{1, 1, 1, 2, 2};
    ScoredPlan plan = model.score(layouts);
    std::multiset<double> bytes, seconds;
    for (const CommCall& c : plan.calls) {
        if (c.layer != 2) continue;
        CHECK(c.pattern == CommPattern::halo_exchange);
        CHECK(c.group.size == 2);
        bytes.insert(c.bytes);
        seconds.insert(std::round(c.seconds * 1e16) / 1e16);
    }
    CHECK(bytes == std::multiset<double>{512, 512, 640, 640});  // forward and backward
    CHECK(seconds == std::multiset<double>{0.5512e-6, 0.5512e-6, 0.5640e-6, 0.5640e-6});
}

TEST_CASE("pooling windows that do not overlap still need a row when the output blocks do not align",
          "[planner][pooling]") {
    // lenet5's pool2 (2 x 2, stride 2) on a 16 x 10 x 10 map split 2 ways along rows, B = 8: input
    // rows [0,5) [5,10), output rows [0,2) [2,5); output row 2 reads input rows [4,6), and row 4 is
    // the first block's: a one-row halo, 8 x 16 x 1 row x 10 columns x 4 B = 5120 B (the byte
    // ledger measures this in tests/validators/ledger_test.sh), forward and (adjoint) backward.
    networks::Network net = networks::parse_network(Json::parse(R"({
        "name": "pool_misaligned", "batch": 8, "input": {"shape": [6, 14, 14]},
        "layers": [
            {"name": "conv", "kind": "conv2d", "out_channels": 16, "kernel": 5, "bias": false},
            {"name": "pool", "kind": "maxpool2d", "kernel": 2, "stride": 2}
        ]})"),
                                                    "inline.json");
    const clusters::Cluster cluster = hand_cluster();
    CostModel model(net, cluster, options(2, 8));
    std::vector<Layout> layouts(net.layers.size());
    layouts[1] = Layout{1, 1, 1, 2, 1};
    ScoredPlan plan = model.score(layouts);
    std::vector<std::pair<Phase, double>> pool;
    for (const CommCall& c : plan.calls)
        if (c.layer == 2) pool.push_back({c.phase, c.bytes});
    CHECK(pool == std::vector<std::pair<Phase, double>>{{Phase::forward, 5120}, {Phase::backward, 5120}});
}
