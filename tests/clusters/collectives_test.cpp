// Tests of the collective algorithms: closed forms against hand-derived formulas, closed form
// against the explicit per-rank steps, and the steps' own consistency.
#include "clusters/collectives.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using namespace dnnplan::clusters;

namespace {

bool rel_eq(double a, double b, double tol = 1e-12) {
    return std::abs(a - b) <= tol * std::max({std::abs(a), std::abs(b), 1e-300});
}

const std::vector<Collective> kAllCollectives{Collective::all_reduce,     Collective::all_gather,
                                              Collective::reduce_scatter, Collective::broadcast,
                                              Collective::reduce,         Collective::all_to_all};

// Every applicable algorithm of a collective, hierarchical once per inter-node algorithm.
std::vector<CollectiveAlgorithm> variants(Collective c) {
    std::vector<CollectiveAlgorithm> out;
    for (Algorithm a : applicable_algorithms(c)) {
        if (a != Algorithm::hierarchical) {
            out.emplace_back(a);
            continue;
        }
        for (Algorithm inner : applicable_algorithms(c)) {
            if (inner != Algorithm::hierarchical) out.emplace_back(Algorithm::hierarchical, inner);
        }
    }
    return out;
}

std::vector<int> divisors(int p) {
    std::vector<int> out;
    for (int d = 1; d <= p; ++d) {
        if (p % d == 0) out.push_back(d);
    }
    return out;
}

std::string label(Collective c, const CollectiveAlgorithm& a, const GroupPlacement& g, double n) {
    return to_string(c) + " " + to_string(a) + " p=" + std::to_string(g.size) +
           " per_node=" + std::to_string(g.per_node) + " n=" + std::to_string(n);
}

// One link kind everywhere: a = 1 us, 10 GB/s, so b = 1e-10 s/B.
constexpr double a = 1e-6;
constexpr double bw = 10e9;
constexpr double b = 1 / bw;
const LinkCost kLink{bw, a};
// Typical two-level machine: fast node, slower network.
const LinkCost kFastIntra{100e9, 1e-6};
const LinkCost kSlowInter{10e9, 5e-6};
// Inverted bandwidths (the network is faster but has more latency), so that which kind of link
// is slowest in a step depends on the message size: exercises the per-kind maxima.
const LinkCost kOddIntra{5e9, 0.2e-6};
const LinkCost kOddInter{50e9, 8e-6};

double flat(Collective c, CollectiveAlgorithm alg, int p, double n) {
    return collective_seconds(c, alg, GroupPlacement{p, 1}, n, kLink, kLink);
}

}  // namespace

TEST_CASE("collective and algorithm names round-trip", "[collectives]") {
    for (const std::string& name : collective_names()) REQUIRE(to_string(*parse_collective(name)) == name);
    for (const std::string& name : algorithm_names()) REQUIRE(to_string(*parse_algorithm(name)) == name);
    CHECK(collective_names().size() == 6);
    CHECK(algorithm_names().size() == 9);
    CHECK_FALSE(parse_collective("allreduce"));
    CHECK_FALSE(parse_algorithm("Ring"));

    const CollectiveAlgorithm h{Algorithm::hierarchical, Algorithm::rabenseifner};
    CHECK(to_string(h) == "hierarchical(rabenseifner)");
    CHECK(parse_collective_algorithm("hierarchical(rabenseifner)") == h);
    CHECK(parse_collective_algorithm("hierarchical") == CollectiveAlgorithm{Algorithm::hierarchical});
    CHECK(parse_collective_algorithm("ring") == CollectiveAlgorithm{Algorithm::ring});
    CHECK_FALSE(parse_collective_algorithm("hierarchical(hierarchical)"));
    CHECK_FALSE(parse_collective_algorithm("ring(ring)"));
    CHECK_FALSE(parse_collective_algorithm("hierarchical(ring"));
    CHECK_FALSE(parse_collective_algorithm("hierarchical(bogus)"));
}

TEST_CASE("applicability table", "[collectives]") {
    CHECK(applicable_algorithms(Collective::all_reduce) ==
          std::vector<Algorithm>{Algorithm::ring, Algorithm::recursive_doubling, Algorithm::rabenseifner,
                                 Algorithm::binomial_tree, Algorithm::hierarchical});
    CHECK(applicable_algorithms(Collective::all_gather) ==
          std::vector<Algorithm>{Algorithm::ring, Algorithm::recursive_doubling, Algorithm::hierarchical});
    CHECK(applicable_algorithms(Collective::reduce_scatter) ==
          std::vector<Algorithm>{Algorithm::ring, Algorithm::recursive_halving, Algorithm::hierarchical});
    CHECK(applicable_algorithms(Collective::broadcast) ==
          std::vector<Algorithm>{Algorithm::binomial_tree, Algorithm::scatter_allgather, Algorithm::hierarchical});
    CHECK(applicable_algorithms(Collective::reduce) ==
          std::vector<Algorithm>{Algorithm::binomial_tree, Algorithm::reduce_scatter_gather, Algorithm::hierarchical});
    CHECK(applicable_algorithms(Collective::all_to_all) == std::vector<Algorithm>{Algorithm::pairwise});
    CHECK(algorithm_applies(Collective::broadcast, CollectiveAlgorithm{Algorithm::hierarchical}));
    CHECK_FALSE(
        algorithm_applies(Collective::broadcast, CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::ring}));
}

TEST_CASE("bad inputs are rejected with a reason", "[collectives]") {
    const GroupPlacement g{8, 2};
    try {
        collective_seconds(Collective::broadcast, Algorithm::ring, g, 1.0, kLink, kLink);
        FAIL("no throw");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) ==
              "ring does not apply to broadcast; applicable: binomial_tree, scatter_allgather, hierarchical");
    }
    try {
        collective_seconds(Collective::all_reduce, Algorithm::ring, GroupPlacement{6, 4}, 1.0, kLink, kLink);
        FAIL("no throw");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == "group placement: per_node 4 does not divide size 6");
    }
    try {
        rank_steps(Collective::reduce, CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::ring}, g, 1.0, 0);
        FAIL("no throw");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) ==
              "hierarchical reduce: the inter-node phase needs a flat algorithm that applies to reduce, not ring");
    }
    CHECK_THROWS_AS(rank_steps(Collective::all_reduce, Algorithm::ring, g, 1.0, 8), std::out_of_range);
    CHECK_THROWS_AS(collective_seconds(Collective::all_reduce, Algorithm::ring, g, -1.0, kLink, kLink),
                    std::invalid_argument);
    CHECK_THROWS_AS(
        collective_seconds(Collective::all_reduce, Algorithm::ring, GroupPlacement{0, 1}, 1.0, kLink, kLink),
        std::invalid_argument);
    CHECK_THROWS_AS(cheapest(Collective::broadcast, g, 1.0, kLink, kLink, AlgorithmSet::none().with(Algorithm::ring)),
                    std::invalid_argument);
}

TEST_CASE("one rank or no bytes costs nothing", "[collectives]") {
    for (Collective c : kAllCollectives) {
        for (const CollectiveAlgorithm& alg : variants(c)) {
            CHECK(collective_seconds(c, alg, GroupPlacement{1, 1}, 1e6, kLink, kLink) == 0);
            CHECK(collective_seconds(c, alg, GroupPlacement{8, 2}, 0, kLink, kLink) == 0);
            CHECK(rank_steps(c, alg, GroupPlacement{1, 1}, 1e6, 0).empty());
        }
    }
    CHECK(point_to_point_seconds(0, kLink) == 0);
}

TEST_CASE("a link kind no message uses is never read", "[collectives]") {
    // Clusters with one device per node may leave the intra-node link unset (bandwidth 0), and a
    // group on one node never uses the inter-node link: the result must not become inf or NaN.
    const LinkCost unset{};
    for (int p : {6, 8, 12, 16}) {
        for (Collective c : kAllCollectives) {
            for (const CollectiveAlgorithm& alg : variants(c)) {
                INFO(to_string(c) << " " << to_string(alg) << " p=" << p);
                const GroupPlacement spread{p, 1};
                const GroupPlacement packed{p, p};
                const double n = 1e6;
                CHECK(collective_seconds(c, alg, spread, n, unset, kSlowInter) ==
                      collective_seconds(c, alg, spread, n, kFastIntra, kSlowInter));
                CHECK(collective_seconds(c, alg, packed, n, kFastIntra, unset) ==
                      collective_seconds(c, alg, packed, n, kFastIntra, kSlowInter));
                CHECK(std::isfinite(collective_seconds_by_steps(c, alg, spread, n, unset, kSlowInter)));
                CHECK(cheapest(c, packed, n, kFastIntra, unset).seconds ==
                      cheapest(c, packed, n, kFastIntra, kSlowInter).seconds);
            }
        }
    }
}

TEST_CASE("ring all-reduce is 2(p-1)(a + n/(p bw)) for any p", "[collectives]") {
    const double n = 3e6;
    for (int p : {2, 3, 5, 7, 12, 100}) {
        INFO("p = " << p);
        const double expected = 2 * (p - 1) * (a + n / (p * bw));
        CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::ring, p, n), expected));
        // All on one node, on the intra link: the same formula.
        CHECK(rel_eq(
            collective_seconds(Collective::all_reduce, Algorithm::ring, GroupPlacement{p, p}, n, kLink, LinkCost{1, 1}),
            expected));
        CHECK(rel_eq(flat(Collective::all_gather, Algorithm::ring, p, n), (p - 1) * (a + n / (p * bw))));
        CHECK(rel_eq(flat(Collective::reduce_scatter, Algorithm::ring, p, n), (p - 1) * (a + n / (p * bw))));
    }
    // p = 3, n = 3e6: 2 * 2 * (1e-6 + 1e6 / 1e10) = 4 * 101e-6 = 404 us, written out.
    CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::ring, 3, n), 404e-6));
}

TEST_CASE("hand-worked example: p = 8, n = 1 MiB, a = 1 us, 10 GB/s", "[collectives]") {
    // n b = 1048576 B / 1e10 B/s = 104.8576 us; one block n/8 takes 13.1072 us to move.
    const double n = 1048576;
    const double us = 1e-6;
    // Ring all-gather / reduce-scatter: 7 steps of (1 + 13.1072) = 98.7504 us.
    CHECK(rel_eq(flat(Collective::all_gather, Algorithm::ring, 8, n), 98.7504 * us));
    CHECK(rel_eq(flat(Collective::reduce_scatter, Algorithm::ring, 8, n), 98.7504 * us));
    // Ring all-reduce: 14 steps of 14.1072 us = 197.5008 us.
    CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::ring, 8, n), 197.5008 * us));
    // Recursive doubling all-gather: distances 4, 2, 1 move 1, 2, 4 blocks:
    // (1 + 13.1072) + (1 + 26.2144) + (1 + 52.4288) = 94.7504 us = 3a + 7/8 n b.
    CHECK(rel_eq(flat(Collective::all_gather, Algorithm::recursive_doubling, 8, n), 94.7504 * us));
    // Recursive halving reduce-scatter: 4, 2, 1 blocks, the same 94.7504 us.
    CHECK(rel_eq(flat(Collective::reduce_scatter, Algorithm::recursive_halving, 8, n), 94.7504 * us));
    // Rabenseifner all-reduce: twice that, 189.5008 us = 6a + 2 * 7/8 n b.
    CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::rabenseifner, 8, n), 189.5008 * us));
    // Recursive doubling all-reduce: 3 (1 + 104.8576) = 317.5728 us.
    CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::recursive_doubling, 8, n), 317.5728 * us));
    // Binomial broadcast and reduce: ceil(log2 8) = 3 rounds of the whole buffer, 317.5728 us;
    // binomial all-reduce is both, 635.1456 us.
    CHECK(rel_eq(flat(Collective::broadcast, Algorithm::binomial_tree, 8, n), 317.5728 * us));
    CHECK(rel_eq(flat(Collective::reduce, Algorithm::binomial_tree, 8, n), 317.5728 * us));
    CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::binomial_tree, 8, n), 635.1456 * us));
    // Scatter (4, 2, 1 blocks: 94.7504) + ring all-gather (98.7504) = 193.5008 us; the reduce
    // mirror is the same.
    CHECK(rel_eq(flat(Collective::broadcast, Algorithm::scatter_allgather, 8, n), 193.5008 * us));
    CHECK(rel_eq(flat(Collective::reduce, Algorithm::reduce_scatter_gather, 8, n), 193.5008 * us));
    // Pairwise all-to-all: 7 (1 + 13.1072) = 98.7504 us.
    CHECK(rel_eq(flat(Collective::all_to_all, Algorithm::pairwise, 8, n), 98.7504 * us));
    // Hierarchical with one rank per node is its inter-node algorithm over 8 nodes.
    CHECK(rel_eq(
        flat(Collective::all_reduce, CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::rabenseifner}, 8, n),
        189.5008 * us));
    // Point to point: 1 + 104.8576 = 105.8576 us.
    CHECK(rel_eq(point_to_point_seconds(n, kLink), 105.8576 * us));
}

TEST_CASE("non-power-of-two recursive algorithms match their hand-derived formulas", "[collectives]") {
    const double n = 1048576;
    const double nb = n * b;
    SECTION("p = 6: p2 = 4, r = 2") {
        // RD all-reduce: fold in + 2 exchanges + fold out, all of n: 4 (a + n b).
        CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::recursive_doubling, 6, n), 4 * (a + nb)));
        // Rabenseifner: fold (a + n b) twice; reduce-scatter moves n/2 then n/4, the all-gather
        // the reverse: 2 (a + n b) + 4a + 2 (3/4) n b = 6a + 3.5 n b.
        CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::rabenseifner, 6, n), 6 * a + 3.5 * nb));
        // RD all-gather, blocks of n/6, surviving ranks 0 and 1 also stand for 4 and 5: fold in
        // 1 block; distance 2 moves the class 0 mod 4 = {rank 0, doubled}: 2 blocks; distance 1
        // moves the class 0 mod 2 = {0 (doubled), 2}: 3 blocks; fold out the 5 blocks rank 4
        // lacks: 4a + (1 + 2 + 3 + 5)/6 n b.
        CHECK(rel_eq(flat(Collective::all_gather, Algorithm::recursive_doubling, 6, n), 4 * a + 11.0 / 6 * nb));
        // RH reduce-scatter: fold in n; distance 1 moves 3 blocks, distance 2 moves 2; fold out
        // 1 block: 4a + (1 + (3 + 2 + 1)/6) n b = 4a + 2 n b.
        CHECK(rel_eq(flat(Collective::reduce_scatter, Algorithm::recursive_halving, 6, n), 4 * a + 2 * nb));
        // Binomial broadcast: ceil(log2 6) = 3 rounds.
        CHECK(rel_eq(flat(Collective::broadcast, Algorithm::binomial_tree, 6, n), 3 * (a + nb)));
        // Scatter from 0: distance 1 hands rank 1 the odd blocks {1, 3, 5} (3 blocks); distance 2
        // hands ranks 2 and 3 the classes 2 and 3 mod 4, {2} and {3} (1 each); distance 4 hands
        // ranks 4 and 5 their own block. Then a ring all-gather of 5 steps of one block:
        // 3a + (3 + 1 + 1)/6 n b + 5 (a + n/6 b) = 8a + 10/6 n b.
        CHECK(rel_eq(flat(Collective::broadcast, Algorithm::scatter_allgather, 6, n), 8 * a + 10.0 / 6 * nb));
    }
    SECTION("p = 12: p2 = 8, r = 4") {
        // RD all-reduce: (3 + 2)(a + n b).
        CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::recursive_doubling, 12, n), 5 * (a + nb)));
        // Rabenseifner: 2 (a + n b) + 2 (3a + 7/8 n b) = 8a + 3.75 n b.
        CHECK(rel_eq(flat(Collective::all_reduce, Algorithm::rabenseifner, 12, n), 8 * a + 3.75 * nb));
        // RD all-gather, blocks n/12, ranks 0..3 doubled: fold in 1; distance 4: class 0 mod 8 =
        // {0} doubled -> 2; distance 2: class 0 mod 4 = {0, 4} -> 3; distance 1: class 0 mod 2 =
        // {0, 2, 4, 6} with 0, 2 doubled -> 6; fold out 11: 5a + 23/12 n b.
        CHECK(rel_eq(flat(Collective::all_gather, Algorithm::recursive_doubling, 12, n), 5 * a + 23.0 / 12 * nb));
        // RH reduce-scatter: fold in n; distances 1, 2, 4 move 6, 3, 2 blocks; fold out 1:
        // 5a + (1 + 12/12) n b = 5a + 2 n b.
        CHECK(rel_eq(flat(Collective::reduce_scatter, Algorithm::recursive_halving, 12, n), 5 * a + 2 * nb));
        // Binomial reduce: ceil(log2 12) = 4 rounds.
        CHECK(rel_eq(flat(Collective::reduce, Algorithm::binomial_tree, 12, n), 4 * (a + nb)));
    }
}

TEST_CASE("closed form equals the step walk for every algorithm and placement", "[collectives]") {
    std::vector<int> sizes;
    for (int p = 1; p <= 33; ++p) sizes.push_back(p);
    // Non-power-of-two ranks per node with several nodes (6 GPUs per node, 12, 5, ...). 57 = 3 x 19
    // and 105 = 3 x 35 are the smallest placements where, in the recursive all-gather and
    // reduce-scatter, the largest node-crossing message is not the largest message of the step.
    for (int p : {36, 40, 48, 57, 60, 72, 96, 100, 105}) sizes.push_back(p);
    for (int p : sizes) {
        for (int d : divisors(p)) {
            const GroupPlacement g{p, d};
            for (Collective c : kAllCollectives) {
                for (const CollectiveAlgorithm& alg : variants(c)) {
                    for (double n : {1048576.0, 1000.0}) {
                        for (const auto& [intra, inter] :
                             {std::pair{kFastIntra, kSlowInter}, std::pair{kOddIntra, kOddInter}}) {
                            const double closed = collective_seconds(c, alg, g, n, intra, inter);
                            const double walked = collective_seconds_by_steps(c, alg, g, n, intra, inter);
                            if (!rel_eq(closed, walked)) {
                                FAIL(label(c, alg, g, n) << ": closed " << closed << " walked " << walked);
                            }
                        }
                    }
                }
            }
        }
    }
    SUCCEED();
}

namespace {

// collective_seconds_by_steps for a schedule that every node runs alike: rank x + s runs rank x's
// steps with each peer moved by s (mod p), for s = one node's d ranks (any s on a single node).
// Such a shift keeps which pairs share a node and every message's bytes, so each step's slowest
// transfer is found among ranks 0..s-1: s walked ranks stand for all p (a ring of 4,096 ranks is
// 16.7 M steps to walk in full). The shift is checked on the walked ranks' images.
double step_walk_by_node_symmetry(Collective c, const CollectiveAlgorithm& alg, const GroupPlacement& g, double n,
                                  const LinkCost& intra, const LinkCost& inter) {
    const int p = g.size;
    const int shift = g.per_node == p ? 1 : g.per_node;
    REQUIRE(shift < p);
    auto moved = [&](int rank) { return rank < 0 ? rank : (rank + shift) % p; };
    auto seconds = [](const LinkCost& link, double bytes) { return link.latency_s + bytes * (1 / link.bandwidth_Bps); };
    std::vector<double> step_time;
    for (int x = 0; x < shift; ++x) {
        const std::vector<RankStep> steps = rank_steps(c, alg, g, n, x);
        const std::vector<RankStep> image = rank_steps(c, alg, g, n, x + shift);
        if (x == 0) step_time.assign(steps.size(), 0.0);
        REQUIRE(steps.size() == step_time.size());
        REQUIRE(image.size() == steps.size());
        bool image_is_shifted = true;
        for (std::size_t k = 0; k < steps.size(); ++k) {
            const RankStep& st = steps[k];
            image_is_shifted = image_is_shifted && image[k] == RankStep{moved(st.send_to), st.send_bytes,
                                                                        moved(st.recv_from), st.recv_bytes,
                                                                        st.reduce_bytes};
            if (st.send_to < 0) continue;
            const bool same_node = node_of(g, x) == node_of(g, st.send_to);
            step_time[k] = std::max(step_time[k], seconds(same_node ? intra : inter, st.send_bytes));
        }
        INFO("rank " << x + shift << " does not run rank " << x << "'s steps shifted by " << shift);
        REQUIRE(image_is_shifted);
    }
    // Long double keeps the sum of thousands of steps within 1e-15 of the compensated one.
    long double total = 0;
    for (double t : step_time) total += t;
    return static_cast<double>(total);
}

}  // namespace

TEST_CASE("closed form equals the step walk at large p", "[collectives][slow]") {
    const std::vector<std::pair<Collective, CollectiveAlgorithm>> cases{
        {Collective::all_reduce, Algorithm::ring},
        {Collective::all_reduce, Algorithm::rabenseifner},
        {Collective::all_reduce, Algorithm::recursive_doubling},
        {Collective::all_gather, Algorithm::recursive_doubling},
        {Collective::reduce_scatter, Algorithm::recursive_halving},
        {Collective::broadcast, Algorithm::binomial_tree},
        {Collective::broadcast, Algorithm::scatter_allgather},
        {Collective::all_reduce, CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::rabenseifner}},
        {Collective::all_gather, CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::ring}},
    };
    for (const GroupPlacement& g : {GroupPlacement{1000, 8}, GroupPlacement{1000, 1}, GroupPlacement{4096, 8},
                                    GroupPlacement{4096, 4096}, GroupPlacement{1536, 6}}) {
        for (const auto& [c, alg] : cases) {
            const double n = 256e6;
            const double closed = collective_seconds(c, alg, g, n, kFastIntra, kSlowInter);
            // The ring, and a hierarchical schedule on one node (two intra-node rings), look the
            // same from every node; the others (trees, recursive doubling, folds) are walked in full.
            const bool node_symmetric =
                alg.algorithm == Algorithm::ring || (alg.algorithm == Algorithm::hierarchical && g.per_node == g.size);
            const double walked =
                node_symmetric ? step_walk_by_node_symmetry(c, alg, g, n, kFastIntra, kSlowInter)
                               : collective_seconds_by_steps(c, alg, g, n, kFastIntra, kSlowInter);
            INFO(label(c, alg, g, n));
            CHECK(rel_eq(closed, walked));
        }
    }
    const GroupPlacement g{1000, 8};
    CHECK(rel_eq(
        collective_seconds(Collective::all_to_all, Algorithm::pairwise, g, 1e8, kFastIntra, kSlowInter),
        collective_seconds_by_steps(Collective::all_to_all, Algorithm::pairwise, g, 1e8, kFastIntra, kSlowInter)));
}

TEST_CASE("every message sent is received in the same step, and the data suffices", "[collectives]") {
    using Message = std::tuple<int, int, double>;  // from, to, bytes
    for (int p = 1; p <= 20; ++p) {
        for (int d : divisors(p)) {
            const GroupPlacement g{p, d};
            for (Collective c : kAllCollectives) {
                for (const CollectiveAlgorithm& alg : variants(c)) {
                    const double n = 1048576;
                    INFO(label(c, alg, g, n));
                    std::vector<std::vector<RankStep>> prog;
                    for (int x = 0; x < p; ++x) prog.push_back(rank_steps(c, alg, g, n, x));
                    const std::size_t steps = prog[0].size();
                    for (int x = 0; x < p; ++x) REQUIRE(prog[x].size() == steps);
                    std::vector<double> sent(p, 0.0);
                    std::vector<double> received(p, 0.0);
                    for (std::size_t k = 0; k < steps; ++k) {
                        std::vector<Message> sends;
                        std::vector<Message> recvs;
                        for (int x = 0; x < p; ++x) {
                            const RankStep& st = prog[x][k];
                            REQUIRE(st.send_to < p);
                            REQUIRE(st.recv_from < p);
                            REQUIRE(st.send_to != x);
                            REQUIRE(st.recv_from != x);
                            REQUIRE(st.reduce_bytes <= st.recv_bytes);
                            if (st.send_to >= 0) {
                                REQUIRE(st.send_bytes > 0);
                                sends.emplace_back(x, st.send_to, st.send_bytes);
                                sent[x] += st.send_bytes;
                            } else {
                                REQUIRE(st.send_bytes == 0);
                            }
                            if (st.recv_from >= 0) {
                                recvs.emplace_back(st.recv_from, x, st.recv_bytes);
                                received[x] += st.recv_bytes;
                            } else {
                                REQUIRE(st.recv_bytes == 0);
                                REQUIRE(st.reduce_bytes == 0);
                            }
                            if (c == Collective::all_gather || c == Collective::broadcast ||
                                c == Collective::all_to_all) {
                                REQUIRE(st.reduce_bytes == 0);
                            }
                        }
                        std::sort(sends.begin(), sends.end());
                        std::sort(recvs.begin(), recvs.end());
                        REQUIRE(sends == recvs);
                    }
                    // Information lower bounds (Chan 2007): everyone must receive the (p-1)/p n it
                    // lacks (all-gather, all-reduce, all-to-all) or the whole buffer (broadcast,
                    // but the root), and send its (p-1)/p n of contributions (reduce-scatter,
                    // all-to-all) or something (reduce, but the root).
                    const double share = (p - 1) * (n / p) * (1 - 1e-12);
                    for (int x = 0; x < p; ++x) {
                        switch (c) {
                            case Collective::all_reduce:
                            case Collective::all_gather:
                                CHECK(received[x] >= share);
                                break;
                            case Collective::all_to_all:
                                CHECK(received[x] >= share);
                                CHECK(sent[x] >= share);
                                break;
                            case Collective::reduce_scatter:
                                CHECK(sent[x] >= share);
                                break;
                            case Collective::broadcast:
                                CHECK((x == 0 || received[x] >= n * (1 - 1e-12)));
                                break;
                            case Collective::reduce:
                                CHECK((x == 0 || sent[x] >= share));
                                break;
                        }
                    }
                }
            }
        }
    }
}

TEST_CASE("no algorithm beats the lower bounds of Chan et al. 2007", "[collectives]") {
    // On one link kind: latency >= ceil(log2 p) a; bandwidth >= (p-1)/p n b (all-gather,
    // reduce-scatter, reduce, all-to-all), 2 (p-1)/p n b (all-reduce), n b (broadcast).
    const double n = 1e6;
    for (int p = 2; p <= 40; ++p) {
        const double log_p = std::ceil(std::log2(p));
        for (Collective c : kAllCollectives) {
            double bw_factor = (p - 1.0) / p;
            if (c == Collective::all_reduce) bw_factor *= 2;
            if (c == Collective::broadcast) bw_factor = 1;
            for (const CollectiveAlgorithm& alg : variants(c)) {
                INFO(to_string(c) << " " << to_string(alg) << " p=" << p);
                const double t = flat(c, alg, p, n);
                CHECK(t >= log_p * a * (1 - 1e-12));
                CHECK(t >= bw_factor * n * b * (1 - 1e-12));
            }
        }
    }
}

TEST_CASE("cheapest picks latency-bound algorithms for small messages, bandwidth-bound for large", "[collectives]") {
    const GroupPlacement g8{8, 1};
    // All-reduce, p = 8: ring 14a + 1.75 n b, recursive doubling 3a + 3 n b, Rabenseifner
    // 6a + 1.75 n b, binomial 6a + 6 n b. Rabenseifner never loses to ring at a power of two;
    // recursive doubling beats it while 3a + 3 n b < 6a + 1.75 n b, i.e. n < 2.4 a/b = 24000 B.
    CHECK(cheapest(Collective::all_reduce, g8, 1024, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::recursive_doubling});
    CHECK(cheapest(Collective::all_reduce, g8, 23000, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::recursive_doubling});
    CHECK(cheapest(Collective::all_reduce, g8, 25000, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::rabenseifner});
    CHECK(cheapest(Collective::all_reduce, g8, 1 << 20, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::rabenseifner});
    // p = 6: ring 10a + 10/6 n b, RD 4a + 4 n b, Rabenseifner 6a + 3.5 n b (folding costs 2 n b).
    // Tiny: RD (4a). Large: ring, which beats Rabenseifner once 4a < (3.5 - 10/6) n b, i.e.
    // n > 2.18 a/b = 21.8 kB, and RD once 6a < (4 - 10/6) n b, n > 25.7 kB.
    const GroupPlacement g6{6, 1};
    CHECK(cheapest(Collective::all_reduce, g6, 8, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::recursive_doubling});
    CHECK(cheapest(Collective::all_reduce, g6, 1 << 20, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::ring});
    // Broadcast, p = 8: binomial 3a + 3 n b against scatter + all-gather 10a + 1.75 n b; the
    // crossover is 7a = 1.25 n b, n = 5.6 a/b = 56 kB.
    CHECK(cheapest(Collective::broadcast, g8, 50000, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::binomial_tree});
    CHECK(cheapest(Collective::broadcast, g8, 60000, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::scatter_allgather});
    // All-gather, p = 6: ring 5a + 5/6 n b, RD 4a + 11/6 n b: RD while n b < a (n < 10 kB).
    CHECK(cheapest(Collective::all_gather, g6, 9000, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::recursive_doubling});
    CHECK(cheapest(Collective::all_gather, g6, 11000, kLink, kLink).algorithm == CollectiveAlgorithm{Algorithm::ring});
    // At a power of two the recursive all-gather is never worse: 3a against 7a, same n b.
    CHECK(cheapest(Collective::all_gather, g8, 1 << 24, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::recursive_doubling});
    // Only one all-to-all algorithm.
    CHECK(cheapest(Collective::all_to_all, g8, 1 << 20, kLink, kLink).algorithm ==
          CollectiveAlgorithm{Algorithm::pairwise});
    // A restricted set is honoured.
    CHECK(cheapest(Collective::all_reduce, g8, 1024, kLink, kLink, AlgorithmSet::none().with(Algorithm::ring))
              .algorithm == CollectiveAlgorithm{Algorithm::ring});
    // On one node hierarchical all-reduce is a ring; with ring itself not allowed it is still a
    // candidate. p = 6 on one node, 1 MiB: ring 10a + 10/6 n b beats Rabenseifner 6a + 3.5 n b.
    const auto no_ring = AlgorithmSet::none().with(Algorithm::rabenseifner).with(Algorithm::hierarchical);
    const CollectiveChoice one_node =
        cheapest(Collective::all_reduce, GroupPlacement{6, 6}, 1 << 20, kLink, kLink, no_ring);
    CHECK(one_node.algorithm == CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::rabenseifner});
    CHECK(rel_eq(one_node.seconds, 10 * a + 10.0 / 6 * (1 << 20) * b));
    // The reported seconds are collective_seconds' bit for bit, for every choice.
    for (int p : {2, 6, 8, 18, 32}) {
        for (int d : divisors(p)) {
            for (Collective c : kAllCollectives) {
                for (double n : {100.0, 1e5, 1e8}) {
                    const CollectiveChoice choice = cheapest(c, GroupPlacement{p, d}, n, kFastIntra, kSlowInter);
                    CHECK(choice.seconds ==
                          collective_seconds(c, choice.algorithm, GroupPlacement{p, d}, n, kFastIntra, kSlowInter));
                    for (const CollectiveAlgorithm& alg : variants(c)) {
                        CHECK(choice.seconds <=
                              collective_seconds(c, alg, GroupPlacement{p, d}, n, kFastIntra, kSlowInter));
                    }
                }
            }
        }
    }
}

TEST_CASE("hierarchical all-reduce beats the flat ring on multi-GPU nodes", "[collectives]") {
    // 32 ranks, 8 per node (4 nodes); intra 100 GB/s, 1 us; inter 10 GB/s, 5 us; n = 64 MiB.
    const double n = 64.0 * 1048576;
    const GroupPlacement g{32, 8};
    // Flat ring: every step has a node-crossing pair, so 62 steps of 5 us + (n/32) / 10 GB/s
    // = 5 + 209.7152 = 214.7152 us: 13312.3424 us.
    const double ring = collective_seconds(Collective::all_reduce, Algorithm::ring, g, n, kFastIntra, kSlowInter);
    CHECK(rel_eq(ring, 13312.3424e-6));
    // Hierarchical(Rabenseifner): ring reduce-scatter and all-gather in the node, 14 steps of
    // 1 + (n/8) / 100 GB/s = 84.88608 us = 1188.40512 us; Rabenseifner over the 4 nodes on n/8 =
    // 8 MiB: 4 x 5 us + 2 (3/4) 8388608 / 1e10 = 20 + 1258.2912 = 1278.2912 us. Total 2466.69632 us.
    const double hier = collective_seconds(Collective::all_reduce,
                                           CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::rabenseifner}, g, n,
                                           kFastIntra, kSlowInter);
    CHECK(rel_eq(hier, 2466.69632e-6));
    CHECK(hier < ring / 5);
    // Flat Rabenseifner is as node-friendly at powers of two (its distances 1, 2, 4 stay on a node
    // and carry n/2, n/4, n/8; distances 8, 16 carry n/16, n/32 across): 2 (3 + 587.20256 +
    // 10 + 629.1456) = 2458.69632 us, 8 intra-node latencies less than hierarchical.
    const double rab =
        collective_seconds(Collective::all_reduce, Algorithm::rabenseifner, g, n, kFastIntra, kSlowInter);
    CHECK(rel_eq(rab, 2458.69632e-6));
    CHECK(cheapest(Collective::all_reduce, g, n, kFastIntra, kSlowInter).algorithm ==
          CollectiveAlgorithm{Algorithm::rabenseifner});

    // 18 ranks, 6 per node (3 nodes): the fold of flat Rabenseifner (p2 = 16) moves the whole
    // buffer across nodes twice, so hierarchical wins outright.
    const GroupPlacement g18{18, 6};
    const double ai = 1e-6, bi = 1e-11, ae = 5e-6, be = 1e-10;
    // Ring over 18: 34 (ae + n/18 be).
    const double ring18 = 34 * (ae + n / 18 * be);
    CHECK(rel_eq(collective_seconds(Collective::all_reduce, Algorithm::ring, g18, n, kFastIntra, kSlowInter), ring18));
    // Hierarchical(ring): 10 (ai + n/6 bi) in the node + ring over 3 nodes of n/6:
    // 4 (ae + n/18 be).
    const double hier18 = 10 * (ai + n / 6 * bi) + 4 * (ae + n / 18 * be);
    const CollectiveChoice best = cheapest(Collective::all_reduce, g18, n, kFastIntra, kSlowInter);
    CHECK(best.algorithm == CollectiveAlgorithm{Algorithm::hierarchical, Algorithm::ring});
    CHECK(rel_eq(best.seconds, hier18));
    CHECK(hier18 < ring18 / 4);
}

TEST_CASE("node crossings make a step run at the inter-node speed", "[collectives]") {
    const double n = 8e6;
    // Ring all-gather on 8 ranks, 4 per node: the pairs (3, 4) and (7, 0) cross, so all 7 steps
    // take 5 us + 1e6 B / 10 GB/s = 105 us.
    CHECK(rel_eq(
        collective_seconds(Collective::all_gather, Algorithm::ring, GroupPlacement{8, 4}, n, kFastIntra, kSlowInter),
        7 * 105e-6));
    // Recursive doubling all-gather on the same placement: distance 4 crosses (1 block: 105 us),
    // distances 2 and 1 stay on a node (2 and 4 blocks: 1 + 20 and 1 + 40 us).
    CHECK(rel_eq(collective_seconds(Collective::all_gather, Algorithm::recursive_doubling, GroupPlacement{8, 4}, n,
                                    kFastIntra, kSlowInter),
                 (105 + 21 + 41) * 1e-6));
    // Binomial broadcast, 8 ranks, 2 per node: round 1 is on a node (1 + 80 us), rounds 2 and 4
    // cross (5 + 800 us each).
    CHECK(rel_eq(collective_seconds(Collective::broadcast, Algorithm::binomial_tree, GroupPlacement{8, 2}, n,
                                    kFastIntra, kSlowInter),
                 (81 + 2 * 805) * 1e-6));
    // Pairwise all-to-all, 8 ranks, 4 per node: shifts 1..3 and 5..7 keep some pair on a node but
    // all shifts cross, so 7 x (5 + 100) us.
    CHECK(rel_eq(collective_seconds(Collective::all_to_all, Algorithm::pairwise, GroupPlacement{8, 4}, n, kFastIntra,
                                    kSlowInter),
                 7 * 105e-6));
}

TEST_CASE("halo exchange: two full-duplex steps per split dimension", "[collectives]") {
    const double h = 4e5;  // h b = 40 us
    CHECK(halo_exchange_seconds(h, 1, kLink) == 0);
    CHECK(rel_eq(halo_exchange_seconds(h, 2, kLink), 41e-6));
    CHECK(rel_eq(halo_exchange_seconds(h, 3, kLink), 82e-6));
    CHECK(rel_eq(halo_exchange_seconds(h, 16, kLink), 82e-6));
    // Four parts on one node: intra link, 2 (1 + 4) us; on two nodes: the (1, 2) pair crosses,
    // 2 (5 + 40) us.
    CHECK(rel_eq(halo_exchange_seconds(h, GroupPlacement{4, 4}, kFastIntra, kSlowInter), 10e-6));
    CHECK(rel_eq(halo_exchange_seconds(h, GroupPlacement{4, 2}, kFastIntra, kSlowInter), 90e-6));
    // The steps agree with the closed form and pair up.
    for (int parts = 1; parts <= 9; ++parts) {
        for (int d : divisors(parts)) {
            const GroupPlacement line{parts, d};
            std::vector<double> step_time;
            for (int x = 0; x < parts; ++x) {
                const auto steps = halo_rank_steps(line, h, x);
                REQUIRE(steps.size() == (parts == 1 ? 0u : parts == 2 ? 1u : 2u));
                step_time.resize(steps.size(), 0.0);
                for (std::size_t k = 0; k < steps.size(); ++k) {
                    const RankStep& st = steps[k];
                    if (st.send_to < 0) continue;
                    const RankStep peer = halo_rank_steps(line, h, st.send_to)[k];
                    CHECK(peer.recv_from == x);
                    CHECK(peer.recv_bytes == st.send_bytes);
                    const LinkCost& link = x / d == st.send_to / d ? kFastIntra : kSlowInter;
                    step_time[k] = std::max(step_time[k], link.latency_s + st.send_bytes / link.bandwidth_Bps);
                }
            }
            double total = 0;
            for (double t : step_time) total += t;
            CHECK(rel_eq(total, halo_exchange_seconds(h, line, kFastIntra, kSlowInter)));
        }
    }
}
