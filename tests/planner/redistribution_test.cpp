// Redistributions between layouts: which processes exchange data, checked against first
// principles (tensor shapes and the two distributions, written here) and against the review's
// hand-computed probe. The simulator replays the model's own CommCalls, so it cannot catch a wrong
// group; these tests can (issue 16, item 7).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "planner/compute.hpp"
#include "planner/cost_model.hpp"
#include "planner/search.hpp"
#include "planner_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;

namespace {
// The chunk [lo, hi) of an axis of `extent` cut into `parts` even parts.
std::pair<std::int64_t, std::int64_t> chunk(std::int64_t extent, int parts, int index) {
    return {extent / parts * index, extent / parts * (index + 1)};
}
bool overlaps(std::pair<std::int64_t, std::int64_t> a, std::pair<std::int64_t, std::int64_t> b) {
    return a.first < b.second && b.first < a.second;
}
std::vector<int> factors(const Dist& d) { return {d.n, d.c, d.h, d.w}; }

// The chunk of element owners of a balanced split (parts differ by at most one, DistDL's rule),
// written element by element: element e belongs to the part p with floor(E p / parts) <= e.
std::pair<std::int64_t, std::int64_t> balanced_chunk(std::int64_t extent, int parts, int index) {
    std::int64_t lo = -1, hi = -1;
    for (std::int64_t e = 0; e < extent; ++e) {
        int owner = 0;
        while (owner + 1 < parts && extent * (owner + 1) / parts <= e) ++owner;
        if (owner == index && lo < 0) lo = e;
        if (owner == index) hi = e + 1;
    }
    return {lo, hi};
}

// The most shards of `from` that one shard of `to` meets, by enumerating every pair of shards of a
// tensor: of extents every factor divides (even chunks), or of the given extents (balanced chunks).
int most_meeting(const Dist& from, const Dist& to, const std::vector<std::int64_t>& given = {}) {
    const std::vector<int> f = factors(from), t = factors(to);
    std::vector<std::int64_t> extent(4);
    for (int k = 0; k < 4; ++k) extent[k] = given.empty() ? std::int64_t{2} * f[k] * t[k] : given[k];
    auto chunk = [&](std::int64_t e, int parts, int index) {
        return given.empty() ? ::chunk(e, parts, index) : balanced_chunk(e, parts, index);
    };
    int most = 0;
    for (std::int64_t target = 0; target < to.parts(); ++target) {
        // Coordinates with w innermost: index = ((n c + c) h + h) w + w.
        std::vector<int> tc(4);
        std::int64_t rest = target;
        for (int k = 3; k >= 0; --k) tc[k] = static_cast<int>(rest % t[k]), rest /= t[k];
        int meeting = 0;
        for (std::int64_t source = 0; source < from.parts(); ++source) {
            std::int64_t r = source;
            bool meets = true;
            for (int k = 3; k >= 0; --k) {
                const int sc = static_cast<int>(r % f[k]);
                r /= f[k];
                meets = meets && overlaps(chunk(extent[k], f[k], sc), chunk(extent[k], t[k], tc[k]));
            }
            meeting += meets;
        }
        most = std::max(most, meeting);
    }
    return most;
}
// The plan's redistributions into `layer` (forward and backward).
std::vector<CommCall> redistributions_into(const ScoredPlan& plan, int layer) {
    std::vector<CommCall> out;
    for (const CommCall& c : plan.calls)
        if (c.kind == CommKind::redistribution && c.layer == layer) out.push_back(c);
    return out;
}

}  // namespace

TEST_CASE("a redistribution's group is the processes that exchange data (first principles)",
          "[planner][redistribution]") {
    std::mt19937 rng(20261206);
    const std::vector<int> choices{1, 2, 3, 4, 6, 8};
    auto pick = [&] { return choices[std::uniform_int_distribution<std::size_t>(0, choices.size() - 1)(rng)]; };
    int tested = 0;
    for (int trial = 0; trial < 400; ++trial) {
        const Dist from{pick(), pick(), pick(), pick()}, to{pick(), pick(), pick(), pick()};
        if (from.parts() > 256 || to.parts() > 256 || from == to) continue;
        ++tested;
        INFO("from n" << from.n << " c" << from.c << " h" << from.h << " w" << from.w << " to n" << to.n << " c" << to.c
                      << " h" << to.h << " w" << to.w);
        // A shard of `to` gathers from this many shards of `from`, and a shard of `from` feeds this many of
        // `to`: the exchange involves the larger number of processes.
        const int expected = std::max(most_meeting(from, to), most_meeting(to, from));
        CHECK(exchange_group(from, to, 8).size == expected);
    }
    CHECK(tested > 200);
}

TEST_CASE("a transpose inside a node's four GPUs is costed on NVLink, not as a 64-rank all-to-all",
          "[planner][redistribution]") {
    // The code review's probe (problem 1): dgx-a100, P = 64, B = 64, conv1 n16 x co4 then conv2
    // n16 x h2 x w2. conv1's output [16, 32, 32] leaves split 16 (batch) x 4 (channels); conv2 reads
    // it split 16 x (2 x 2 spatial). Each batch group of 4 ranks (consecutive ranks: the batch
    // factor is outermost) transposes channels into tiles among itself: a pairwise all-to-all over
    // 4 ranks on one node (8 GPUs per node).
    // Tensor: 64 x 16 x 32 x 32 x 4 B = 4,194,304 B; each rank holds 1/64: 65,536 B; pairwise
    // sends 65,536 / 4 = 16,384 B per step, 3 steps on NVLink (1 us, 300 GB/s at the preset's NCCL
    // efficiency 0.7667: 2.3001e11 B/s):
    //   3 x (1e-6 + 16384 / 2.3001e11) = 3.2136952e-6 s each way, 6.4273904e-6 s forward and backward.
    // (Before the fix: a 64-rank pairwise all-to-all, 49 of its 63 steps over InfiniBand,
    // about 128 us each way.)
    networks::Network net = networks::parse_network(Json::parse(R"({
        "name": "transpose", "batch": 64, "input": {"shape": [3, 32, 32]},
        "layers": [
            {"name": "conv1", "kind": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1, "bias": false},
            {"name": "conv2", "kind": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1, "bias": false}
        ]})"),
                                                    "inline.json");
    clusters::Cluster dgx = preset("dgx-a100");
    CostModel model(net, dgx, options(64, 64));
    std::vector<Layout> layouts(net.layers.size());
    layouts[1] = Layout{16, 4, 1, 1, 1};
    layouts[2] = Layout{16, 1, 1, 2, 2};
    ScoredPlan plan = model.score(layouts);
    int redistributions = 0;
    for (const CommCall& c : plan.calls) {
        if (c.kind != CommKind::redistribution) continue;
        ++redistributions;
        CHECK(c.layer == 2);
        CHECK(c.collective == clusters::Collective::all_to_all);
        CHECK(c.group == clusters::GroupPlacement{4, 4});
        CHECK(c.bytes == 65536);
        CHECK(c.seconds == Approx(3.2136952e-6).epsilon(1e-7));
    }
    CHECK(redistributions == 2);  // the activation forward, its gradient backward
    CHECK(plan.cost.comm(CommKind::redistribution) == Approx(6.4273904e-6).epsilon(1e-7));
}

TEST_CASE("gathering a model split: the group is the shards one target merges, placed where they are",
          "[planner][redistribution]") {
    // From n2 x c4 to n2 (all channels on every rank of a batch half): a target shard merges the 4
    // channel shards of its batch half, consecutive ranks; with 2 devices per node they span 2 nodes.
    CHECK(exchange_group(Dist{2, 4, 1, 1}, Dist{2, 1, 1, 1}, 2) == clusters::GroupPlacement{4, 2});
    CHECK(exchange_group(Dist{2, 4, 1, 1}, Dist{2, 1, 1, 1}, 8) == clusters::GroupPlacement{4, 4});
    // From n4 x c4 to n1 x c16 (a transpose of batch into channels): a target shard needs every
    // batch quarter of its channel slice, held by ranks 0, 4, 8 and 12 of the source grid; with 8
    // devices per node two of them share node 0.
    CHECK(exchange_group(Dist{4, 4, 1, 1}, Dist{1, 16, 1, 1}, 8) == clusters::GroupPlacement{4, 2});
}

TEST_CASE("uneven splits: the group is counted on the real balanced blocks (brute force)", "[planner][redistribution]") {
    // Issue 16 item 2: axes of any extent split into parts that differ by at most one. The oracle
    // assigns every element to its part and counts, for each target shard, the source shards
    // owning any of its elements (both directions); the model scans block boundaries instead.
    std::mt19937 rng(20261207);
    const std::vector<int> choices{1, 2, 3, 4, 5, 6, 8};
    auto pick = [&] { return choices[std::uniform_int_distribution<std::size_t>(0, choices.size() - 1)(rng)]; };
    auto extent_at_least = [&](int a, int b) {
        return std::uniform_int_distribution<std::int64_t>(std::max(a, b), 3 * std::max(a, b) + 2)(rng);
    };
    int tested = 0, uneven = 0;
    for (int trial = 0; trial < 600; ++trial) {
        const Dist from{pick(), pick(), pick(), pick()}, to{pick(), pick(), pick(), pick()};
        if (from.parts() > 200 || to.parts() > 200 || from == to) continue;
        const std::vector<std::int64_t> e{extent_at_least(from.n, to.n), extent_at_least(from.c, to.c),
                                          extent_at_least(from.h, to.h), extent_at_least(from.w, to.w)};
        ++tested;
        if (e[1] % from.c != 0 || e[1] % to.c != 0 || e[2] % from.h != 0 || e[2] % to.h != 0) ++uneven;
        INFO("from n" << from.n << " c" << from.c << " h" << from.h << " w" << from.w << " to n" << to.n << " c" << to.c
                      << " h" << to.h << " w" << to.w << ", extents " << e[0] << " " << e[1] << " " << e[2] << " "
                      << e[3]);
        const int expected = std::max(most_meeting(from, to, e), most_meeting(to, from, e));
        const networks::Shape shape{e[1], e[2], e[3]};  // per sample [C, H, W]; the batch is e[0]
        CHECK(exchange_group(from, to, shape, e[0], 8).size == expected);
    }
    CHECK(tested > 150);
    CHECK(uneven > 50);
}

TEST_CASE("uneven splits: a layer's cost is taken on its largest part (hand-computed)", "[planner][redistribution]") {
    // A linear layer 84 -> 10 (no bias) at batch 6 on the hand cluster (1 TFLOP/s, 1 GB/s,
    // 1 us), fp32, P = 4 as co4: the 10 output features split 2, 3, 2, 3 (floor(10 k / 4) = 0, 2,
    // 5, 7, 10): the busiest process computes 3 features.
    //   forward FLOPs 2 x 84 x 3 x 6 = 3,024 -> 3.024e-9 s; backward: the weight gradient only (the
    //   input is data, autograd computes no input gradient), 2 x 84 x 3 x 6 = 3,024 -> 3.024e-9 s.
    //   weights on the busiest process: 84 x 3 = 252 parameters, 1,008 bytes.
    // The batch of 6 split n4 (a second layout): parts 1, 2, 1, 2: the busiest holds 2 samples,
    //   forward 2 x 84 x 10 x 2 = 3,360 FLOPs -> 3.36e-9 s.
    networks::Network net = networks::parse_network(Json::parse(R"({
        "name": "uneven", "batch": 6, "input": {"shape": [84]},
        "layers": [{"name": "fc", "kind": "linear", "out_features": 10, "bias": false}]})"),
                                                    "inline.json");
    clusters::Cluster cluster = hand_cluster();
    CostModel model(net, cluster, options(4, 6));
    std::vector<Layout> layouts(net.layers.size());
    layouts[1] = Layout{1, 4, 1, 1, 1};
    REQUIRE(model.layout_problem(1, layouts[1]).empty());
    ScoredPlan plan = model.score(layouts);
    CHECK(plan.cost.feasible);
    CHECK(plan.layers[1].fwd_compute_s == Approx(3.024e-9).epsilon(1e-12));
    CHECK(plan.layers[1].bwd_compute_s == Approx(3.024e-9).epsilon(1e-12));
    CHECK(plan.layers[1].local_params == 252);
    CHECK(plan.layers[1].weight_bytes == 1008);

    layouts[1] = Layout{4, 1, 1, 1, 1};
    REQUIRE(model.layout_problem(1, layouts[1]).empty());
    plan = model.score(layouts);
    CHECK(plan.layers[1].fwd_compute_s == Approx(3.36e-9).epsilon(1e-12));

    // More parts than elements is the one impossible split: 10 features cannot go 16 ways.
    CostModel wide(net, cluster, options(16, 6));
    CHECK(wide.layout_problem(1, Layout{1, 16, 1, 1, 1}) == "output features 10 cannot be split 16 ways");
    CHECK(wide.layout_problem(1, Layout{16, 1, 1, 1, 1}) == "batch 6 cannot be split 16 ways");
}

TEST_CASE("uneven splits: AlexNet takes domain splits, VGG-16's fc8 splits 16 and 32 ways", "[planner][redistribution]") {
    // AlexNet's conv1 (11 x 11, stride 4) turns 227 (or 224) pixel images into 55 x 55 maps and its
    // later maps are 27 and 13 wide: no power of two above 1 divides them, so before balanced
    // splits no domain layout existed at any P. conv2 (5 x 5 on 27 x 27, halo 2) split h2 x w2
    // gives tiles of 13 or 14 rows.
    networks::Network alexnet = builtin("alexnet");
    clusters::Cluster cori = preset("cori-knl");
    CostModel model(alexnet, cori, options(512, 2048));
    const int conv2 = alexnet.find("conv2");
    REQUIRE(conv2 > 0);
    CHECK(model.layout_problem(conv2, Layout{128, 1, 1, 2, 2}).empty());
    const std::vector<Layout> conv2_candidates = model.candidates(conv2);
    CHECK(std::any_of(conv2_candidates.begin(), conv2_candidates.end(),
                      [](const Layout& l) { return l.domain() > 1; }));

    // The SPAA'18 claims on the paper's own example (Gholami et al., section 5): at P = 512 and
    // B = 2048 neither pure batch nor pure model is best, and domain splits lift P <= B: at
    // P = 4096 > B = 2048 pure batch is impossible but grid-domain plans are feasible.
    CostModel paper_case(alexnet, cori, options(512, 2048));
    SearchResult at512 = search(paper_case);
    REQUIRE(at512.best() != nullptr);
    CHECK(at512.best()->strategy != Strategy::batch);
    CHECK(at512.best()->strategy != Strategy::model);
    CostModel beyond_batch(alexnet, cori, options(4096, 2048));
    SearchResult at4096 = search(beyond_batch);
    CHECK_FALSE(at4096.find(Strategy::batch)->plan.cost.feasible);
    int feasible_domain_grids = 0;
    for (const Candidate& c : at4096.ranked)
        feasible_domain_grids += c.strategy == Strategy::grid_domain && c.plan.cost.feasible;
    CHECK(feasible_domain_grids >= 2);

    // VGG-16's fc8 has 1000 outputs: 16 parts of 62 or 63, 32 parts of 31 or 32.
    networks::Network vgg = builtin("vgg16");
    CostModel vgg_model(vgg, cori, options(512, 512));
    const int fc8 = vgg.find("fc8");
    REQUIRE(fc8 > 0);
    CHECK(vgg_model.layout_problem(fc8, Layout{32, 16, 1, 1, 1}).empty());
    CHECK(vgg_model.layout_problem(fc8, Layout{16, 32, 1, 1, 1}).empty());
}

TEST_CASE("a flattened tensor keeps the blocks it was flattened from (byte ledger, lenet5 domain)",
          "[planner][redistribution]") {
    // lenet5 at batch 32 on 2 ranks, conv1 and conv2 split by columns (w2), the linear layers co2.
    // pool2's output [16, 5, 5] keeps conv2's column split: 5 columns in balanced blocks
    // floor(5 k / 2) = 0, 2, 5: 2 + 3. flatten keeps that split (its Dist cuts [16, 5, 5], not
    // [400]), and fc1 (co2) reads all 400 features on both ranks: an all-gather over 2 of the
    // largest block twice, 2 x 32 x 16 x 5 x 3 x 4 B = 61,440 B, the busiest rank sending its
    // 30,720 B (what the validators' ledger measures; before: 2 x 200 of the 400 features,
    // 51,200 B, 25,600 B sent). Backward the gradient is sliced locally (no call).
    networks::Network net = builtin("lenet5");
    clusters::Cluster cori = preset("cori-knl");
    CostModel model(net, cori, options(2, 32));
    const int fc1 = net.find("fc1");
    REQUIRE(fc1 > 0);
    const int flatten = net.layers[fc1].inputs.front();
    REQUIRE(net.layers[flatten].kind == networks::LayerKind::flatten);
    CHECK(dist_shape(net, flatten) == networks::Shape{16, 5, 5});
    std::vector<Layout> layouts(net.layers.size());
    for (int a : model.anchors()) layouts[a] = Layout{1, 2, 1, 1, 1};
    layouts[net.find("conv1")] = layouts[net.find("conv2")] = Layout{1, 1, 1, 1, 2};
    ScoredPlan plan = model.score(layouts);
    REQUIRE(plan.cost.feasible);
    CHECK(plan.layers[flatten].out_dist == Dist{1, 1, 1, 2});
    const std::vector<CommCall> into = redistributions_into(plan, fc1);
    CHECK(into.size() == 1);
    for (const CommCall& c : into) {
        CHECK(c.phase == Phase::forward);
        CHECK(c.collective == clusters::Collective::all_gather);
        CHECK(c.group.size == 2);
        CHECK(c.bytes == 61440);
    }
}

TEST_CASE("a repartition's pieces are packed in contiguous runs (run_elements, hand-computed)",
          "[planner][redistribution]") {
    // Row-major [B, C, H, W] blocks (validators/tensor.hpp): innermost first, unsplit axes join
    // the run, the first split one ends it with the finer side's largest block along it.
    // lenet5's pool2 [16, 5, 5] from a column split (w2) to whole: 5 columns in blocks 2 + 3, runs
    // of at most 3 elements (one per sample, channel and row).
    CHECK(run_elements(Dist{1, 1, 1, 2}, Dist{1, 1, 1, 1}, networks::Shape{16, 5, 5}, 32) == 3);
    // smallcnn's conv2 output [32, 32, 32] from co2 to whole: a sample's 16 channels of 32 x 32
    // pixels, 16 x 1024 = 16,384 elements per run.
    CHECK(run_elements(Dist{1, 2, 1, 1}, Dist{1, 1, 1, 1}, networks::Shape{32, 32, 32}, 32) == 16384);
    // Batch split to channel split of [32, 8, 8]: 4 of 32 channels (8-way) of 64 pixels: 256.
    CHECK(run_elements(Dist{2, 1, 1, 1}, Dist{1, 8, 1, 1}, networks::Shape{32, 8, 8}, 4) == 256);
    // Rows split 3 ways on 10 rows of 7 columns: blocks of up to 4 rows, 4 x 7 = 28.
    CHECK(run_elements(Dist{1, 1, 3, 1}, Dist{1, 1, 1, 1}, networks::Shape{2, 10, 7}, 1) == 28);
    // Tokens [S, H] = [64, 128]: hidden split 2 ways gives runs of 64 hidden units; a batch
    // split of the whole sequence runs over all tokens of a sample and the batch's half: 64 x 128
    // x 16 = 131,072 (batch 32).
    CHECK(run_elements(Dist{2, 1, 1, 1}, Dist{1, 2, 1, 1}, networks::Shape{64, 128}, 32) == 64);
    // A channel concat's exchange (CostModel's concat channel blocks): the pieces are the moved
    // channels, not blocks of the split. inception-small's concat [16, 7, 7] over c2, 3 channels
    // moved: whole tiles, one run of 3 x 49 = 147 elements per sample; under rows h2 the tile's
    // 4 rows of 7 columns (28) end the run first, under columns w2 its 4 columns.
    CHECK(run_elements(Dist{1, 2, 1, 1}, Dist{1, 2, 1, 1}, networks::Shape{16, 7, 7}, 32, 3) == 147);
    CHECK(run_elements(Dist{1, 2, 2, 1}, Dist{1, 2, 2, 1}, networks::Shape{16, 7, 7}, 32, 3) == 28);
    CHECK(run_elements(Dist{1, 2, 1, 2}, Dist{1, 2, 1, 2}, networks::Shape{16, 7, 7}, 32, 3) == 4);
    CHECK(run_elements(Dist{2, 1, 1, 1}, Dist{1, 1, 1, 1}, networks::Shape{64, 128}, 32) == 131072);

    // halo_pack_seconds: 2 x messages copies of the message, each of runs_per_message runs: at
    // 0.5 ns per byte and 1 ns per run, one 8192 B message of 1024 runs costs
    // 2 x 8192 x 0.5e-9 + 2 x 1024 x 1e-9 = 8.192e-6 + 2.048e-6 = 10.24e-6 s.
    clusters::Cluster cluster = hand_cluster();
    cluster.device.cpu_kernels[clusters::CpuKernel::halo_pack] = {0.5e-9, 1e-9};
    CHECK(halo_pack_seconds(cluster.device, 8192, 1, 1024) == Approx(10.24e-6).epsilon(1e-12));
    // Three peers of 100 B in 10 runs: 6 x 100 x 0.5e-9 + 6 x 10 x 1e-9 = 0.3e-6 + 0.06e-6.
    CHECK(halo_pack_seconds(cluster.device, 100, 3, 10) == Approx(0.36e-6).epsilon(1e-12));

    // lenet5 domain's fc1 all-gather (the test above: 61,440 B over 2, 30,720 B sent) on a 1 GB/s,
    // 1 us link: transfer 1e-6 + 30720 / 1e9 = 31.72e-6 s; one 30,720 B message of 3-element runs,
    // 30720 / 4 / 3 = 2560 runs (32 samples x 16 channels x 5 rows), packed and unpacked:
    // 2 x 30720 x 0.5e-9 + 2 x 2560 x 1e-9 = 30.72e-6 + 5.12e-6 = 35.84e-6 s; 67.56e-6 s in all.
    networks::Network net = builtin("lenet5");
    CostModel model(net, cluster, options(2, 32));
    std::vector<Layout> layouts(net.layers.size());
    for (int a : model.anchors()) layouts[a] = Layout{1, 2, 1, 1, 1};
    layouts[net.find("conv1")] = layouts[net.find("conv2")] = Layout{1, 1, 1, 1, 2};
    ScoredPlan plan = model.score(layouts);
    REQUIRE(plan.cost.feasible);
    const std::vector<CommCall> into = redistributions_into(plan, net.find("fc1"));
    CHECK(into.size() == 1);
    for (const CommCall& c : into) {
        CHECK(c.bytes == 61440);
        CHECK(c.runs == Approx(2560));
        CHECK(c.seconds == Approx(67.56e-6).epsilon(1e-12));
    }
    // A device without the kernel (every preset) pays the transfer only.
    clusters::Cluster plain = hand_cluster();
    CostModel plain_model(net, plain, options(2, 32));
    ScoredPlan plain_plan = plain_model.score(layouts);
    const std::vector<CommCall> plain_into = redistributions_into(plain_plan, net.find("fc1"));
    CHECK(plain_into.size() == 1);
    for (const CommCall& c : plain_into) CHECK(c.seconds == Approx(31.72e-6).epsilon(1e-12));
}

TEST_CASE("a repartition whose ranks keep nothing: the busiest sender and its peers (byte ledger, smallcnn)",
          "[planner][redistribution]") {
    // smallcnn at batch 4 on 4 ranks: conv3 n2 x co2, fc1 ci4. pool2's output [32, 8, 8] is split
    // n2 x c2: rank r = 2 n + c holds samples [2n, 2n + 2) and channels [16c, 16c + 16), 2 x 16 x 64
    // x 4 = 8192 B. fc1 reads channels [8r, 8r + 8) of all 4 samples (8192 B). Rank 1 (samples 0-1,
    // channels 16-31) keeps nothing: it sends channels 16-23 to rank 2 and 24-31 to rank 3, 2 x 8 x
    // 64 x 4 = 4096 B each, 8192 B to 2 peers (rank 2 likewise; ranks 0 and 3 send 4096 B to 1).
    // As an all-to-all: over 3 processes, 3 x 4096 = 12,288 B (each sends 2/3 of it). Backward,
    // rank 1 (channels 8-15, samples 0-3) sends samples 0-1 to rank 0 and 2-3 to rank 2: the same.
    const ExchangeLoad load = busiest_sender(Dist{2, 2, 1, 1}, Dist{1, 4, 1, 1}, networks::Shape{32, 8, 8}, 4, 4);
    CHECK(load.peers == 2);
    CHECK(load.share == Approx(0.25));  // 8192 of 32,768 B
    networks::Network net = builtin("smallcnn");
    clusters::Cluster cori = preset("cori-knl");
    CostModel model(net, cori, options(4, 4));
    std::vector<Layout> layouts(net.layers.size());
    layouts[net.find("conv1")] = layouts[net.find("conv2")] = Layout{4, 1, 1, 1, 1};
    layouts[net.find("conv3")] = Layout{2, 2, 1, 1, 1};
    layouts[net.find("fc1")] = Layout{1, 1, 4, 1, 1};
    layouts[net.find("fc2")] = Layout{1, 4, 1, 1, 1};
    ScoredPlan plan = model.score(layouts);
    REQUIRE(plan.cost.feasible);
    const std::vector<CommCall> into = redistributions_into(plan, net.find("fc1"));
    CHECK(into.size() == 2);
    for (const CommCall& c : into) {
        CHECK(c.collective == clusters::Collective::all_to_all);
        CHECK(c.group.size == 3);
        CHECK(c.bytes == Approx(12288));
    }
}

TEST_CASE("the busiest sender of a repartition equals an element-by-element count (brute force)",
          "[planner][redistribution]") {
    // Every rank r holds block r of `from` and block r of `to` (w fastest); it sends to each other
    // rank q the elements of its block that q's `to` block holds. The oracle counts them per pair
    // from the balanced chunks, the model per rank from block bounds.
    std::mt19937 rng(20261207);
    const std::vector<int> choices{1, 2, 3, 4};
    auto pick = [&] { return choices[std::uniform_int_distribution<std::size_t>(0, choices.size() - 1)(rng)]; };
    int tested = 0;
    for (int trial = 0; trial < 3000 && tested < 150; ++trial) {
        const Dist from{pick(), pick(), pick(), pick()};
        Dist to{pick(), pick(), pick(), pick()};
        if (from.parts() != to.parts() || from.parts() > 24 || from == to) continue;
        const std::vector<std::int64_t> e{std::max(from.n, to.n) + 1, 2 * std::max(from.c, to.c) + 1,
                                          std::max(from.h, to.h) + 2, std::max(from.w, to.w)};
        ++tested;
        const std::vector<int> f = factors(from), t = factors(to);
        auto coords = [](std::int64_t r, const std::vector<int>& parts) {
            std::vector<int> c(4);
            for (int k = 3; k >= 0; --k) c[k] = static_cast<int>(r % parts[k]), r /= parts[k];
            return c;
        };
        double total = static_cast<double>(e[0] * e[1] * e[2] * e[3]), most = 0;
        int most_peers = 0;
        for (std::int64_t r = 0; r < from.parts(); ++r) {
            double sent = 0;
            int peers = 0;
            for (std::int64_t q = 0; q < to.parts(); ++q) {
                if (q == r) continue;
                const std::vector<int> a = coords(r, f), b = coords(q, t);
                double common = 1;
                for (int k = 0; k < 4; ++k) {
                    auto x = balanced_chunk(e[k], f[k], a[k]), y = balanced_chunk(e[k], t[k], b[k]);
                    common *= static_cast<double>(std::max<std::int64_t>(0, std::min(x.second, y.second) -
                                                                           std::max(x.first, y.first)));
                }
                sent += common;
                peers += common > 0;
            }
            most = std::max(most, sent);
            most_peers = std::max(most_peers, peers);
        }
        INFO("from n" << from.n << " c" << from.c << " h" << from.h << " w" << from.w << " to n" << to.n << " c" << to.c
                      << " h" << to.h << " w" << to.w);
        const ExchangeLoad load = busiest_sender(from, to, networks::Shape{e[1], e[2], e[3]}, e[0], from.parts());
        CHECK(load.share * total == Approx(most));
        CHECK(load.peers == most_peers);
    }
    CHECK(tested >= 100);
}
