// Property tests: random valid networks (chains and residual CNNs, MLPs), random clusters and P up
// to 2^20. Whatever the input, every cost is finite and non-negative, every count is exact or the
// input is rejected, and two monotonicity facts hold: more bandwidth never makes a plan slower, and
// pure batch's communication does not depend on the batch size. Seeded, so failures reproduce.
#include <cmath>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/pipeline.hpp"
#include "planner/search.hpp"
#include "planner_test_helpers.hpp"

namespace dnnplan::planner {
namespace {

using Rng = std::mt19937_64;

std::int64_t pick(Rng& rng, std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

// A random CNN: conv blocks (optionally with batch norm, pooling and a residual add), then an MLP
// head. Sizes are chosen so that every layer fits (the loader would reject one that does not).
Json random_network(Rng& rng, int index) {
    Json layers = Json::array();
    std::int64_t channels = pick(rng, 1, 16), size = std::int64_t{1} << pick(rng, 3, 7);
    const Json input{{"shape", {channels, size, size}}};
    const int blocks = static_cast<int>(pick(rng, 0, 5));
    std::string last = "input";
    for (int b = 0; b < blocks; ++b) {
        const std::string conv = "conv" + std::to_string(b);
        const std::int64_t out = std::int64_t{1} << pick(rng, 0, 8);
        const std::int64_t kernel = size >= 5 ? 2 * pick(rng, 0, 2) + 1 : 1;
        layers.push_back({{"name", conv}, {"kind", "conv2d"}, {"out_channels", out}, {"kernel", kernel},
                          {"padding", kernel / 2}, {"inputs", {last}}});
        last = conv;
        if (pick(rng, 0, 1)) {
            layers.push_back({{"name", conv + "_bn"}, {"kind", "batchnorm2d"}});
            last = conv + "_bn";
        }
        layers.push_back({{"name", conv + "_relu"}, {"kind", "relu"}});
        last = conv + "_relu";
        if (pick(rng, 0, 1)) {  // a residual unit on the same shape
            layers.push_back({{"name", conv + "_r"}, {"kind", "conv2d"}, {"out_channels", out}, {"kernel", 1}});
            layers.push_back({{"name", conv + "_sum"}, {"kind", "add"}, {"inputs", {conv + "_r", last}}});
            last = conv + "_sum";
        }
        channels = out;
        if (size >= 4 && pick(rng, 0, 1)) {
            layers.push_back({{"name", conv + "_pool"}, {"kind", "maxpool2d"}, {"kernel", 2}});
            last = conv + "_pool";
            size /= 2;
        }
    }
    layers.push_back({{"name", "flat"}, {"kind", "flatten"}, {"inputs", {last}}});
    for (int f = 0, heads = static_cast<int>(pick(rng, 1, 3)); f < heads; ++f) {
        layers.push_back({{"name", "fc" + std::to_string(f)}, {"kind", "linear"}, {"out_features", pick(rng, 1, 4096)}});
        if (f + 1 < heads) layers.push_back({{"name", "fc" + std::to_string(f) + "_relu"}, {"kind", "relu"}});
    }
    return Json{{"name", "random" + std::to_string(index)}, {"dtype", "fp32"}, {"batch", 1},
                {"input", input}, {"layers", layers}};
}

// A preset with its numbers scaled at random, and enough nodes for P.
clusters::Cluster random_cluster(Rng& rng, const std::string& preset, std::int64_t procs) {
    clusters::Cluster c = clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/" + preset + ".json");
    std::uniform_real_distribution<double> scale(0.01, 100.0);
    c.inter_node.bandwidth_Bps *= scale(rng);
    c.inter_node.latency_s *= scale(rng);
    c.intra_node.bandwidth_Bps *= scale(rng);
    c.intra_node.latency_s *= scale(rng);
    c.device.memory_bytes = static_cast<std::int64_t>(static_cast<double>(c.device.memory_bytes) * scale(rng));
    c.nodes = std::max<std::int64_t>(c.nodes, (procs + c.devices_per_node - 1) / c.devices_per_node);
    return c;
}


}  // namespace

TEST_CASE("property: random networks, clusters and P give finite, non-negative, monotone costs", "[planner][property][slow]") {
    Rng rng(20261123);
    const char* presets[] = {"cori-knl", "frontera", "dgx-a100"};
    for (int trial = 0; trial < 200; ++trial) {
        const Json spec = random_network(rng, trial);
        networks::Network net = networks::parse_network(spec, "random.json");
        // P: a power of two up to 2^20, or a random composite up to 10^4.
        const std::int64_t procs = pick(rng, 0, 1) ? std::int64_t{1} << pick(rng, 0, 20) : pick(rng, 1, 10000);
        const std::int64_t batch = pick(rng, 0, 1) ? procs * pick(rng, 1, 4) : pick(rng, 1, 1 << 20);
        clusters::Cluster cluster = random_cluster(rng, presets[trial % 3], procs);
        PlannerOptions o;
        o.procs = procs;
        o.batch = batch;
        o.optimizer = pick(rng, 0, 1) ? Optimizer::adam : Optimizer::sgd;
        INFO("trial " << trial << ": " << spec.dump() << " on " << cluster.name << ", P = " << procs << ", B = " << batch);
        CostModel model(net, cluster, o);
        SearchResult result = search(model);
        REQUIRE(!result.ranked.empty());
        for (const Candidate& c : result.ranked) {
            INFO(to_string(c.strategy) << " " << c.label);
            test::check_sane(c.plan.cost);
            if (!c.plan.cost.feasible) CHECK_FALSE(c.plan.cost.reason.empty());
        }

        // More bandwidth on both links never makes the same layouts slower.
        clusters::Cluster faster = cluster;
        faster.inter_node.bandwidth_Bps *= 2;
        faster.intra_node.bandwidth_Bps *= 2;
        CostModel fast_model(net, faster, o);
        for (const Candidate& c : result.ranked) {
            if (c.plan.anchor_layouts.empty()) continue;
            INFO(to_string(c.strategy) << " " << c.label << " with twice the bandwidth");
            const CostBreakdown faster_cost = c.pipeline.active()
                                                  ? score_pipeline(fast_model, c.pipeline, c.plan.anchor_layouts).plan.cost
                                                  : fast_model.score(c.plan.anchor_layouts).cost;
            CHECK(faster_cost.iteration_s <= c.plan.cost.iteration_s * (1 + 1e-12));
        }

        // Pure batch (B divisible by P, so it can run): the same communication at batch B and 2B,
        // only |W| is all-reduced.
        if (o.batch % procs == 0) {
            PlannerOptions doubled = o;
            doubled.batch = o.batch * 2;
            CostModel big_batch(net, cluster, doubled);
            ScoredPlan x = model.score(uniform_layouts(model, Strategy::batch, {1, static_cast<int>(procs)}));
            ScoredPlan y = big_batch.score(uniform_layouts(big_batch, Strategy::batch, {1, static_cast<int>(procs)}));
            CHECK(x.calls == y.calls);
            CHECK(x.cost.sync_total_s == y.cost.sync_total_s);
            CHECK(x.cost.blocking_comm_s() == y.cost.blocking_comm_s());
        }
    }
}

TEST_CASE("property: tensors of 10^15 elements and P = 2^20 stay finite", "[planner][property]") {
    // The conv's output: 64 channels of 2^14 x 2^14 pixels at batch 2^16, 64 x 2^28 x 2^16 =
    // 1.13e15 elements, over P = 2^20 processes (batch alone cannot split 2^20 ways: the image must).
    const Json spec{{"name", "huge"}, {"dtype", "fp32"}, {"batch", 1},
                    {"input", {{"shape", {3, 16384, 16384}}}},
                    {"layers", {{{"name", "conv"}, {"kind", "conv2d"}, {"out_channels", 64}, {"kernel", 3}, {"padding", 1}},
                                {{"name", "pool"}, {"kind", "global_avgpool2d"}},
                                {{"name", "flat"}, {"kind", "flatten"}},
                                {{"name", "fc"}, {"kind", "linear"}, {"out_features", 1000}}}}};
    networks::Network net = networks::parse_network(spec, "huge.json");
    const std::int64_t procs = std::int64_t{1} << 20;
    clusters::Cluster cluster = clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/frontera.json");
    cluster.nodes = procs;
    PlannerOptions o;
    o.procs = procs;
    o.batch = std::int64_t{1} << 16;
    REQUIRE_NOTHROW(networks::totals(net, o.batch, "huge.json"));
    CostModel model(net, cluster, o);
    SearchResult result = search(model);
    for (const Candidate& c : result.ranked) {
        INFO(to_string(c.strategy) << " " << c.label);
        test::check_sane(c.plan.cost);
    }
    // Some plan fits: with one sample per 16 processes split 4 x 4 over the image, each process
    // holds a 4096 x 4096 tile of the 64-channel output, 2^30 x 4 B = 4 GiB, within 192 GB.
    CHECK(result.feasible_count > 0);
    // A batch whose counts overflow 64 bits is rejected by name, not wrapped.
    CHECK_THROWS_AS(networks::totals(net, std::int64_t{1} << 40, "huge.json"), InputError);
}

}  // namespace dnnplan::planner
