// The exchange group's fast path (planner/layout.cpp: most_blocks_met in closed form when both
// splits divide the extent, else scanned over one period of the two splits' boundaries) against the
// computation it replaced, kept here as the reference: every target block of the t-way split
// scanned, and the exchange group built from it exactly as before. Equal over many random shapes,
// splits and node sizes, so the layout search's costs (and plans) cannot have moved.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <numeric>
#include <random>

#include "planner/layout.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;

namespace {
// The former most_blocks_met: position x lies in block ceil((x + 1) f / extent) - 1 of the f-way
// split; each of the t target blocks [floor(extent j / t), floor(extent (j + 1) / t)) is scanned.
std::int64_t reference_most_blocks_met(std::int64_t extent, std::int64_t f, std::int64_t t) {
    if (f <= 1) return 1;
    auto block_of = [&](std::int64_t x) { return ((x + 1) * f + extent - 1) / extent - 1; };
    std::int64_t most = 1;
    for (std::int64_t j = 0; j < t; ++j) {
        const std::int64_t begin = extent * j / t, end = extent * (j + 1) / t;
        if (end > begin) most = std::max(most, block_of(end - 1) - block_of(begin) + 1);
    }
    return most;
}

// The most blocks met written element by element, independent of both formulas: the owner of
// every position under each split, and per target block the distinct source owners.
std::int64_t brute_most_blocks_met(std::int64_t extent, std::int64_t f, std::int64_t t) {
    auto owner = [&](std::int64_t x, std::int64_t parts) {
        std::int64_t p = 0;
        while (p + 1 < parts && extent * (p + 1) / parts <= x) ++p;
        return p;
    };
    std::int64_t most = 1;
    for (std::int64_t j = 0; j < t; ++j) {
        std::int64_t distinct = 0, last = -1;
        for (std::int64_t x = 0; x < extent; ++x) {
            if (owner(x, t) != j) continue;
            const std::int64_t s = owner(x, f);
            if (s != last) ++distinct, last = s;  // owners grow with x: a change is a new block
        }
        most = std::max(most, distinct);
    }
    return most;
}

// The former meeting_shards and exchange_group, on the reference count.
clusters::GroupPlacement reference_meeting_shards(const Dist& side, const Dist& other, const std::int64_t (&extent)[4],
                                                  int devices_per_node) {
    const std::int64_t f[4] = {side.n, side.c, side.h, side.w};
    const std::int64_t t[4] = {other.n, other.c, other.h, other.w};
    std::int64_t m[4], size = 1;
    for (int k = 0; k < 4; ++k) {
        m[k] = reference_most_blocks_met(extent[k], f[k], t[k]);
        size *= m[k];
    }
    const std::int64_t d = std::max(1, devices_per_node);
    std::int64_t on_first_node = 0;
    for (std::int64_t n = 0; n < m[0] && n * f[1] * f[2] * f[3] < d; ++n)
        for (std::int64_t c = 0; c < m[1] && (n * f[1] + c) * f[2] * f[3] < d; ++c)
            for (std::int64_t h = 0; h < m[2] && ((n * f[1] + c) * f[2] + h) * f[3] < d; ++h)
                for (std::int64_t w = 0; w < m[3] && ((n * f[1] + c) * f[2] + h) * f[3] + w < d; ++w) ++on_first_node;
    return clusters::GroupPlacement{static_cast<int>(size), static_cast<int>(std::gcd(size, on_first_node))};
}

clusters::GroupPlacement reference_exchange_group(const Dist& from, const Dist& to, const std::int64_t (&extent)[4],
                                                  int devices_per_node) {
    const clusters::GroupPlacement gather = reference_meeting_shards(from, to, extent, devices_per_node);
    const clusters::GroupPlacement scatter = reference_meeting_shards(to, from, extent, devices_per_node);
    if (gather.size != scatter.size) return gather.size > scatter.size ? gather : scatter;
    return gather.per_node <= scatter.per_node ? gather : scatter;
}

// A split count as the layout search makes them: mostly divisors of a power-of-two or 3 x 2^k
// process count, sometimes any count up to the extent.
int random_parts(std::mt19937_64& rng, std::int64_t extent) {
    const int kind = static_cast<int>(rng() % 4);
    std::int64_t parts = 1;
    if (kind == 0)
        parts = std::int64_t{1} << (rng() % 10);
    else if (kind == 1)
        parts = 3 * (std::int64_t{1} << (rng() % 8));
    else if (kind == 2)
        parts = 1 + static_cast<std::int64_t>(rng() % 64);
    else
        parts = 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(extent));
    return static_cast<int>(std::min(parts, extent));  // fit(): no more parts than elements
}

// Extents like the networks': batches, channel counts, feature maps (7, 14, 28, 56, 112, 224,
// 13, 27, 55 ...), vocabularies; and arbitrary ones.
std::int64_t random_extent(std::mt19937_64& rng) {
    static constexpr std::int64_t typical[] = {1,  3,   7,   13,  14,   27,   28,   55,   56,    64,   96,   112,
                                               128, 192, 224, 256, 384,  480,  512,  832,  1000,  1024, 2048, 4096};
    if (rng() % 2 == 0) return typical[rng() % std::size(typical)];
    return 1 + static_cast<std::int64_t>(rng() % 5000);
}
}  // namespace

TEST_CASE("most_blocks_met: the fast path equals the former scan and an element-by-element count",
          "[planner][redistribution]") {
    // Every (extent, f, t) with extent <= 48 and f, t <= extent: all three agree.
    for (std::int64_t e = 1; e <= 48; ++e)
        for (std::int64_t f = 1; f <= e; ++f)
            for (std::int64_t t = 1; t <= e; ++t) {
                const std::int64_t fast = most_blocks_met(e, f, t);
                REQUIRE(fast == reference_most_blocks_met(e, f, t));
                REQUIRE(fast == brute_most_blocks_met(e, f, t));
            }
    // Hand-computed: 14 rows in 4 blocks (3, 4, 3, 4 rows: starts 0, 3, 7, 10) read as 8 blocks
    // (1, 2, 2, 2, 1, 2, 2, 2 rows: starts 0, 1, 3, 5, 7, 8, 10, 12): target [3, 7) of the 4-way split
    // meets blocks 2 ([3, 5)) and 3 ([5, 7)) of the 8-way split; no 4-way block meets more than 2.
    CHECK(most_blocks_met(14, 8, 4) == 2);
    // 7 columns in 2 blocks ([0, 3), [3, 7)) read as 3 ([0, 2), [2, 4), [4, 7)): [2, 4) meets both.
    CHECK(most_blocks_met(7, 2, 3) == 2);
    // Dividing counts: 256 samples from 64 blocks into 4 meet 16 each; from 4 into 64 meet 1.
    CHECK(most_blocks_met(256, 64, 4) == 16);
    CHECK(most_blocks_met(256, 4, 64) == 1);
    // Large random extents and counts (the closed form and the period against the full scan).
    std::mt19937_64 rng(20261207);
    for (int trial = 0; trial < 50000; ++trial) {
        const std::int64_t e = random_extent(rng);
        const std::int64_t f = random_parts(rng, e), t = random_parts(rng, e);
        INFO("extent " << e << ", f " << f << ", t " << t);
        REQUIRE(most_blocks_met(e, f, t) == reference_most_blocks_met(e, f, t));
    }
}

TEST_CASE("exchange_group: the fast path equals the former computation over random shapes and splits",
          "[planner][redistribution]") {
    std::mt19937_64 rng(7122026);
    for (int trial = 0; trial < 20000; ++trial) {
        const std::int64_t batch = random_extent(rng);
        const networks::Shape shape = rng() % 4 == 0 ? networks::Shape{random_extent(rng)}
                                                     : networks::Shape{random_extent(rng), random_extent(rng) % 230 + 1,
                                                                       random_extent(rng) % 230 + 1};
        const std::array<std::int64_t, 3> e3 = split_extents(shape);
        const std::int64_t extent[4] = {batch, e3[0], e3[1], e3[2]};
        auto random_dist = [&] {
            return Dist{random_parts(rng, extent[0]), random_parts(rng, extent[1]), random_parts(rng, extent[2]),
                        random_parts(rng, extent[3])};
        };
        const Dist from = random_dist(), to = random_dist();
        const int per_node = std::array{1, 2, 4, 6, 8, 16, 64, 68}[rng() % 8];
        INFO("batch " << batch << ", extents " << e3[0] << " x " << e3[1] << " x " << e3[2] << ", from " << from.n
                      << "/" << from.c << "/" << from.h << "/" << from.w << ", to " << to.n << "/" << to.c << "/"
                      << to.h << "/" << to.w << ", per node " << per_node);
        REQUIRE(exchange_group(from, to, shape, batch, per_node) ==
                reference_exchange_group(from, to, extent, per_node));
        // The shape-free overload: extents both splits divide.
        const std::int64_t common[4] = {std::lcm<std::int64_t>(from.n, to.n), std::lcm<std::int64_t>(from.c, to.c),
                                        std::lcm<std::int64_t>(from.h, to.h), std::lcm<std::int64_t>(from.w, to.w)};
        REQUIRE(exchange_group(from, to, per_node) == reference_exchange_group(from, to, common, per_node));
    }
}

TEST_CASE("largest_share: skipping unsplit axes gives the former product bit for bit", "[planner][redistribution]") {
    // The former: every axis's largest part over its extent, multiplied in the order c, h, w.
    auto reference = [](const networks::Shape& shape, const Dist& d) {
        const std::array<std::int64_t, 3> e = split_extents(shape);
        auto share = [](std::int64_t extent, int parts) {
            return static_cast<double>(largest_part(extent, parts)) / static_cast<double>(extent);
        };
        return share(e[0], d.c) * share(e[1], d.h) * share(e[2], d.w);
    };
    std::mt19937_64 rng(1207);
    for (int trial = 0; trial < 20000; ++trial) {
        const networks::Shape shape = rng() % 4 == 0 ? networks::Shape{random_extent(rng)}
                                                     : networks::Shape{random_extent(rng), random_extent(rng) % 230 + 1,
                                                                       random_extent(rng) % 230 + 1};
        const std::array<std::int64_t, 3> e = split_extents(shape);
        const std::int64_t batch = random_extent(rng);
        auto sometimes_one = [&](std::int64_t extent) { return rng() % 2 == 0 ? 1 : random_parts(rng, extent); };
        const Dist d{sometimes_one(batch), sometimes_one(e[0]), sometimes_one(e[1]), sometimes_one(e[2])};
        REQUIRE(largest_share(shape, d) == reference(shape, d));
        REQUIRE(largest_share(shape, batch, d) ==
                local_batch(batch, d.n) / static_cast<double>(batch) * reference(shape, d));
    }
}
