// Tests of the search: the dynamic programme against brute force on random small chains, the DP's
// objective against the exact score, the uniform families' bookkeeping, and two findings of the
// papers: on AlexNet the best uniform grid is neither pure batch nor pure model (Gholami et al.,
// SPAA'18), and domain splitting makes P > B feasible.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "planner/search.hpp"
#include "planner_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;

namespace {


// The DP's objective, written out independently of search.cpp: every segment at its layout
// (forward, backward and the whole gradient sync) plus every cross-segment edge's
// redistribution, forward and backward.
double objective(const CostModel& model, const std::vector<Layout>& layouts) {
    const auto& layers = model.network().layers;
    double t = 0;
    for (int a : model.anchors()) t += model.segment_seconds(a, layouts[a]);
    for (std::size_t x = 1; x < layers.size(); ++x)
        for (std::size_t k = 0; k < layers[x].inputs.size(); ++k) {
            int y = layers[x].inputs[k];
            int from = model.anchor_of(y), to = model.anchor_of(static_cast<int>(x));
            if (y == 0 || from == 0 || from == to) continue;
            Dist have = model.segment_output_dist(y, layouts[from]);
            Dist want = model.required_input_dist(static_cast<int>(x), layouts[to], static_cast<int>(k));
            if (have == want) continue;
            t += model.redistribution_seconds(have, want, y);
        }
    return t;
}

// Brute force over every per-layer assignment of the anchors' candidate layouts: the assignment
// of least objective() (the oracle the DP is checked against; it lived in search.cpp before).
std::vector<Layout> brute_force(const CostModel& model, double* best_seconds) {
    const auto& anchors = model.anchors();
    std::vector<std::vector<Layout>> candidates;
    for (int a : anchors) candidates.push_back(model.candidates(a));
    std::vector<std::size_t> index(anchors.size(), 0);
    std::vector<Layout> layouts(model.network().layers.size()), best_layouts;
    double best = std::numeric_limits<double>::infinity();
    while (true) {
        for (std::size_t i = 0; i < anchors.size(); ++i) layouts[anchors[i]] = candidates[i][index[i]];
        const double t = objective(model, layouts);
        if (t < best) best = t, best_layouts = layouts;
        std::size_t i = 0;  // the next assignment, as an odometer
        while (i < index.size() && ++index[i] == candidates[i].size()) index[i++] = 0;
        if (i == index.size()) break;
    }
    *best_seconds = best;
    return best_layouts;
}

// A small random chain: convolutions (with followers) then linear layers, or linear layers only.
struct RandomChain {
    Json spec;
    std::int64_t procs = 2, batch = 4;
};

RandomChain random_chain(std::mt19937& rng) {
    auto pick = [&](std::initializer_list<int> values) {
        std::vector<int> v(values);
        return v[rng() % v.size()];
    };
    RandomChain chain;
    Json layers = Json::array();
    int anchors = 0;
    const int max_anchors = pick({3, 4, 5, 6});
    if (rng() % 2 == 0) {
        chain.procs = pick({2, 4});
        chain.batch = pick({2, 4, 8});
        int c = pick({1, 2, 3}), h = pick({4, 6, 8});
        chain.spec["input"] = {{"shape", {c, h, h}}};
        const int convs = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < convs && anchors < max_anchors - 1; ++i, ++anchors) {
            int k = pick({1, 3});
            layers.push_back({{"kind", "conv2d"}, {"out_channels", pick({1, 2, 3, 4, 6})}, {"kernel", k}, {"padding", k / 2}});
            switch (rng() % 4) {
                case 0: layers.push_back({{"kind", "relu"}}); break;
                case 1: layers.push_back({{"kind", "batchnorm2d"}}); layers.push_back({{"kind", "relu"}}); break;
                case 2:
                    if (h % 2 == 0 && h >= 4) {
                        layers.push_back({{"kind", "maxpool2d"}, {"kernel", 2}});
                        h /= 2;
                    }
                    break;
                default: break;
            }
        }
        layers.push_back({{"kind", "flatten"}});
    } else {
        chain.procs = pick({4, 6});
        chain.batch = pick({3, 4, 8, 12});
        chain.spec["input"] = {{"shape", {pick({4, 6, 8, 12})}}};
    }
    while (anchors < max_anchors) {
        layers.push_back({{"kind", "linear"}, {"out_features", pick({2, 3, 4, 6, 8, 12})}, {"bias", rng() % 2 == 0}});
        if (rng() % 2 == 0) layers.push_back({{"kind", "relu"}});
        ++anchors;
    }
    chain.spec["name"] = "random_chain";
    chain.spec["layers"] = layers;
    return chain;
}

}  // namespace

TEST_CASE("the dynamic programme equals brute force on random small chains", "[planner][search]") {
    std::mt19937 rng(20240601);  // fixed seed: the same chains every run
    clusters::Cluster slow = hand_cluster(1e9, 1e-6), fast_latency = hand_cluster(1e8, 1e-7);
    int tested = 0, skipped = 0;
    std::set<std::size_t> anchor_counts;
    std::size_t most_assignments = 0;
    for (int trial = 0; trial < 200 && tested < 60; ++trial) {
        RandomChain chain = random_chain(rng);
        networks::Network net = networks::parse_network(chain.spec, "inline.json");
        const clusters::Cluster& cluster = trial % 2 == 0 ? slow : fast_latency;
        CostModel model(net, cluster, options(chain.procs, chain.batch));
        std::size_t assignments = 1;
        bool small = true;
        for (int a : model.anchors()) {
            std::size_t n = model.candidates(a).size();
            REQUIRE(n >= 1);
            if (n > 6) small = false;
            assignments *= n;
        }
        if (!small) {
            ++skipped;
            continue;
        }
        ++tested;
        anchor_counts.insert(model.anchors().size());
        most_assignments = std::max(most_assignments, assignments);
        INFO("trial " << trial << ": " << chain.spec.dump() << " P = " << chain.procs << ", B = " << chain.batch);

        double brute = 0;
        std::vector<Layout> brute_layouts = brute_force(model, &brute);
        long long evaluations = 0;
        std::vector<Layout> dp = dynamic_programme(model, &evaluations);
        CHECK(objective(model, brute_layouts) == Approx(brute).epsilon(1e-12));
        CHECK(objective(model, dp) == Approx(brute).epsilon(1e-12));
        CHECK(evaluations > 0);
        // Every anchor got one of its own candidates.
        for (int a : model.anchors()) {
            auto cs = model.candidates(a);
            CHECK(std::find(cs.begin(), cs.end(), dp[a]) != cs.end());
        }
    }
    INFO("tested " << tested << ", skipped " << skipped << ", largest search " << most_assignments);
    CHECK(tested >= 40);
    CHECK(anchor_counts.count(6) == 1);  // chains of 6 anchors were among them
    CHECK(most_assignments >= 1000);     // and some searches were not trivial
}

TEST_CASE("on chains without overlap the DP's objective is the exact iteration time, and beats every uniform family",
          "[planner][search]") {
    // With overlap off, the score's iteration time (compute + blocking communication + the whole
    // sync) decomposes into segments plus edges, which is exactly what the DP minimises; so on a
    // chain its plan is at least as fast as any uniform plan whose layouts are among the candidates.
    clusters::Cluster cori = preset("cori-knl");
    struct Case {
        std::string net;
        std::int64_t procs, batch;
    };
    for (const Case& c : {Case{"lenet5", 4, 64}, Case{"lenet5", 8, 64}, Case{"alexnet", 16, 256},
                          Case{"vgg16", 8, 64}, Case{"alexnet", 64, 128}}) {
        networks::Network net = builtin(c.net);
        CostModel model(net, cori, options(c.procs, c.batch, false));
        INFO(c.net << " P = " << c.procs << " B = " << c.batch);
        std::vector<Layout> dp = dynamic_programme(model);
        ScoredPlan scored = model.score(dp);
        CHECK(scored.cost.iteration_s == Approx(objective(model, dp)).epsilon(1e-9));
        SearchResult result = search(model);
        const Candidate* per_layer = result.find(Strategy::per_layer);
        REQUIRE(per_layer != nullptr);
        CHECK(per_layer->plan.anchor_layouts == dp);
        for (const Candidate& u : result.ranked) {
            // Pipelines and graph partitions are other families (tests/planner/pipeline_test.cpp).
            if (u.strategy == Strategy::per_layer || u.pipeline.active()) continue;
            bool valid = true;
            for (int a : model.anchors()) valid = valid && model.layout_problem(a, u.plan.anchor_layouts[a]).empty();
            if (!valid) continue;
            INFO(to_string(u.strategy) << " " << u.label);
            CHECK(per_layer->plan.cost.iteration_s <= u.plan.cost.iteration_s * (1 + 1e-12));
        }
    }
}

TEST_CASE("search lists every uniform family and the per-layer plan", "[planner][search]") {
    networks::Network net = builtin("alexnet");
    clusters::Cluster cori = preset("cori-knl");
    CostModel model(net, cori, options(12, 96));
    SearchResult result = search(model);
    CHECK(result.feasible_count + result.infeasible_count == static_cast<int>(result.ranked.size()));
    // The layer-parallel families (pipelines and graph partitions are tested on their own): P = 12
    // gives batch, model, domain, then Pr in {2, 3, 4, 6} twice (model, domain), then per-layer.
    std::erase_if(result.ranked, [](const Candidate& c) { return c.pipeline.active(); });
    CHECK(result.ranked.size() == 3 + 2 * 4 + 1);
    std::set<std::string> grids;
    for (const Candidate& c : result.ranked) {
        if (c.strategy == Strategy::grid_model || c.strategy == Strategy::grid_domain) {
            CHECK(c.grid.pr * c.grid.pc == 12);
            CHECK(c.label == "Pr=" + std::to_string(c.grid.pr) + " x Pc=" + std::to_string(c.grid.pc));
            grids.insert(to_string(c.strategy) + c.label);
        }
    }
    CHECK(grids.size() == 8);
    CHECK(result.ranked.front().plan.cost.feasible);
    CHECK(result.find(Strategy::batch)->grid.pc == 12);
    CHECK(result.find(Strategy::model)->grid.pr == 12);
    CHECK(result.layout_evaluations > static_cast<long long>(result.ranked.size() * model.anchors().size()));
    // Every candidate uses all 12 processes in every anchor layer.
    for (const Candidate& c : result.ranked)
        for (int a : model.anchors()) CHECK(c.plan.anchor_layouts[a].procs() == 12);
}

TEST_CASE("AlexNet, B = 2048, P = 512 on Cori KNL: the best uniform grid has 1 < Pr < P (SPAA'18)", "[planner][search][paper]") {
    networks::Network net = builtin("alexnet");
    clusters::Cluster cori = preset("cori-knl");
    const int p = 512;
    CostModel model(net, cori, options(p, 2048));
    SearchResult result = search(model);
    const Candidate* best = nullptr;
    for (const Candidate& c : result.ranked) {
        if (c.strategy != Strategy::batch && c.strategy != Strategy::model && c.strategy != Strategy::grid_model) continue;
        if (!c.plan.cost.feasible) continue;
        if (!best || c.plan.cost.iteration_s < best->plan.cost.iteration_s) best = &c;
    }
    REQUIRE(best != nullptr);
    INFO("best uniform: " << to_string(best->strategy) << " " << best->label);
    CHECK(best->strategy == Strategy::grid_model);
    CHECK(best->grid.pr > 1);
    CHECK(best->grid.pr < p);
    CHECK(best->grid.pr * best->grid.pc == p);
    const Candidate* batch = result.find(Strategy::batch);
    REQUIRE(batch != nullptr);
    CHECK(batch->plan.cost.feasible);
    CHECK(best->plan.cost.iteration_s < batch->plan.cost.iteration_s);
    // Pure model is not even possible: conv1's 64 output channels cannot be split 512 ways.
    const Candidate* model_only = result.find(Strategy::model);
    REQUIRE(model_only != nullptr);
    CHECK_FALSE(model_only->plan.cost.feasible);
    CHECK(model_only->plan.cost.reason == "layer conv1: output channels 64 cannot be split 512 ways");
}

TEST_CASE("domain splitting makes P = 4096 feasible for a batch of 256", "[planner][search][paper]") {
    // U-Net on 3 x 1024 x 1024 images: pure batch needs n = 4096 > B = 256. The grid-domain
    // Pr = 16 x Pc = 256 splits every image 4 x 4 (square_split(16)); U-Net's spatial extents are
    // 1024 / 2^k for k <= 4 (64 x 64 at the bottom), all divisible by 4, and its 1x1 head conv is
    // spatial too, so every anchor can take the layout; memory is far below Cori's 96 GiB.
    networks::Network net = builtin("unet");
    clusters::Cluster cori = preset("cori-knl");
    CostModel model(net, cori, options(4096, 256));
    SearchResult result = search(model);
    const Candidate* batch = result.find(Strategy::batch);
    REQUIRE(batch != nullptr);
    CHECK_FALSE(batch->plan.cost.feasible);
    CHECK(batch->plan.cost.reason == "layer enc1_conv1: batch 256 cannot be split 4096 ways");
    const Candidate* grid = nullptr;
    for (const Candidate& c : result.ranked)
        if (c.strategy == Strategy::grid_domain && c.grid.pr == 16) grid = &c;
    REQUIRE(grid != nullptr);
    CHECK(grid->plan.cost.feasible);
    for (int a : model.anchors()) {
        const Layout& l = grid->plan.anchor_layouts[a];
        CHECK(l == Layout{256, 1, 1, 4, 4});
    }
    CHECK(grid->plan.cost.comm(CommKind::halo) > 0);
    REQUIRE(result.best() != nullptr);
    CHECK(result.best()->strategy != Strategy::batch);

    // VGG-16 (224 x 224) with a uniform domain grid: Pc <= 256 forces Pr >= 16, a 4 x 4 split, and
    // conv5's 14 x 14 maps do not divide by 4. Balanced splits cut them into tiles of 3 or 4 rows
    // (floor(14 k / 4) = 0, 3, 7, 10, 14), wider than the 1-row halo of a 3 x 3 kernel, so the
    // grid is feasible as a layout (before uneven splits it was refused); per-layer layouts too.
    networks::Network vgg = builtin("vgg16");
    CostModel vgg_model(vgg, cori, options(4096, 256));
    SearchResult vgg_result = search(vgg_model);
    CHECK_FALSE(vgg_result.find(Strategy::batch)->plan.cost.feasible);
    // Finer grids are really impossible: Pr = 128 splits conv5's 14 columns 16 ways.
    int domain_grids = 0;
    for (const Candidate& c : vgg_result.ranked)
        if (c.strategy == Strategy::grid_domain && c.grid.pc <= 256) {
            INFO(c.label << ": " << c.plan.cost.reason);
            if (c.grid.pr == 16) {
                CHECK(c.plan.cost.infeasibility != Infeasibility::layout);
                ++domain_grids;
            } else if (c.grid.pr == 128) {
                CHECK(c.plan.cost.reason == "layer conv5_1: output width 14 cannot be split 16 ways");
            }
        }
    CHECK(domain_grids == 1);
    const Candidate* per_layer = vgg_result.find(Strategy::per_layer);
    REQUIRE(per_layer != nullptr);
    CHECK(per_layer->plan.cost.feasible);
}

TEST_CASE("candidates: every factorisation the layer can take, all P when possible, else fewer with replicas",
          "[planner][search]") {
    clusters::Cluster cluster = hand_cluster();
    networks::Network net = builtin("lenet5");
    SECTION("P = 4: every candidate uses all 4 processes") {
        CostModel model(net, cluster, options(4, 64));
        // conv1 (1 -> 6 channels, 32x32 -> 28x28): n x co x (h, w) with w = h or 2h, ci impossible
        // (one input channel): n4; n2 co2; n2 w2; n1 co4 (6 channels in balanced parts 1, 2, 1, 2);
        // n1 co2 w2; n1 h2 w2.
        std::vector<Layout> expected{{4, 1, 1, 1, 1}, {2, 2, 1, 1, 1}, {2, 1, 1, 1, 2},
                                     {1, 4, 1, 1, 1}, {1, 2, 1, 1, 2}, {1, 1, 1, 2, 2}};
        std::vector<Layout> got = model.candidates(1);
        std::sort(expected.begin(), expected.end());
        std::sort(got.begin(), got.end());
        CHECK(got == expected);
    }
    SECTION("P = 4096, B = 64: balanced splits let conv1 use all 4096 processes") {
        // n64 x co4 x h4 x w4: 6 channels in parts of 1 or 2, 28 output rows and columns in parts
        // of 7, 32 input rows in parts of 8 (halo 2). n64 x h8 x w8: output tiles of 3 or 4 rows,
        // input tiles of 4 >= the halo of 2. n16 x h16 x w16: input tiles of 2 rows, just the halo.
        // n2 x h32 x w64: more parts than the 28 output rows, refused.
        CostModel model(net, cluster, options(4096, 64));
        std::vector<Layout> got = model.candidates(1);
        CHECK(std::find(got.begin(), got.end(), Layout{64, 4, 1, 4, 4}) != got.end());
        CHECK(std::find(got.begin(), got.end(), Layout{64, 1, 1, 8, 8}) != got.end());
        CHECK(std::find(got.begin(), got.end(), Layout{16, 1, 1, 16, 16}) != got.end());
        CHECK(std::find(got.begin(), got.end(), Layout{2, 1, 1, 32, 64}) == got.end());
        for (const Layout& l : got) CHECK(l.procs() == 4096);
    }
    SECTION("P = 4096, B = 1: fc3 cannot absorb 4096, the candidates use fewer with replicas") {
        // fc3 (84 -> 10 features): co <= 10 or ci <= 84, one of them, batch 1: the largest power of
        // two it can take is ci64; co8 too; every candidate a divisor of 4096 below it.
        CostModel model(net, cluster, options(4096, 1));
        const int fc3 = net.find("fc3");
        REQUIRE(fc3 > 0);
        std::vector<Layout> got = model.candidates(fc3);
        CHECK(std::find(got.begin(), got.end(), Layout{1, 1, 64, 1, 1}) != got.end());
        CHECK(std::find(got.begin(), got.end(), Layout{1, 8, 1, 1, 1}) != got.end());
        CHECK(std::find(got.begin(), got.end(), Layout{1, 1, 1, 1, 1}) != got.end());
        for (const Layout& l : got) {
            CHECK(4096 % l.procs() == 0);
            CHECK(model.layout_problem(fc3, l).empty());
        }
    }
}
