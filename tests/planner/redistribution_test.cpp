// Redistributions between layouts: which processes exchange data, checked against first
// principles (tensor shapes and the two distributions, written here) and against the review's
// hand-computed probe. The simulator replays the model's own CommCalls, so it cannot catch a wrong
// group; these tests can (issue 16, item 7).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "planner/cost_model.hpp"
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

// The most shards of `from` that one shard of `to` meets, by enumerating every pair of shards of a
// tensor whose extents every factor divides.
int most_meeting(const Dist& from, const Dist& to) {
    const std::vector<int> f = factors(from), t = factors(to);
    std::vector<std::int64_t> extent(4);
    for (int k = 0; k < 4; ++k) extent[k] = std::int64_t{2} * f[k] * t[k];
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
    // sends 65,536 / 4 = 16,384 B per step, 3 steps on NVLink (1 us, 300 GB/s):
    //   3 x (1e-6 + 16384 / 3e11) = 3.163840e-6 s each way, 6.327680e-6 s forward and backward.
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
        CHECK(c.seconds == Approx(3.163840e-6).epsilon(1e-9));
    }
    CHECK(redistributions == 2);  // the activation forward, its gradient backward
    CHECK(plan.cost.comm(CommKind::redistribution) == Approx(6.327680e-6).epsilon(1e-9));
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
