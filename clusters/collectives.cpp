#include "clusters/collectives.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numeric>
#include <stdexcept>

// Sources of the schedules and their costs:
// - Thakur, Rabenseifner, Gropp, "Optimization of collective communication operations in MPICH",
//   IJHPCA 19(1), 2005 (below "Thakur 2005"): ring, recursive doubling and halving, Rabenseifner's
//   all-reduce, binomial trees, scatter + all-gather broadcast, pairwise all-to-all, and the
//   MPICH handling of a non-power-of-two p.
// - Rabenseifner, "Optimization of collective reduction operations", ICCS 2004.
// - Chan, Heimlich, Purkayastha, van de Geijn, "Collective communication: theory, practice, and
//   experience", CCPE 19(13), 2007 (below "Chan 2007"): the lower bounds ceil(log2 p) a for
//   latency, (p-1)/p n b for all-gather / reduce-scatter and 2 (p-1)/p n b for all-reduce.
//
// Conventions: p ranks, d ranks per node, m = p / d nodes, n bytes, blk = n / p.
// Non-power-of-two p for the recursive algorithms: p2 = 2^floor(log2 p), r = p - p2. Like MPICH
// (Thakur 2005, all-reduce) the r extra ranks are folded into partners in a pre-step and unfolded
// in a post-step; unlike MPICH, whose partners are the even/odd neighbours among the first 2r
// ranks, the extra ranks are the tail [p2, p) and rank p2 + j folds into rank j. The surviving
// ranks then form the contiguous range [0, p2), and whether a step crosses a node boundary is
// decided in O(1) from d, which keeps the closed form exact and cheap for every placement. The
// price: with several nodes the fold steps always cross nodes (MPICH's neighbour pairs stay on a
// node when d is even); on one link kind both foldings cost the same.
//
// Each algorithm is written twice, next to each other: a closed form that knows, per step, whether
// some message is intra-node and whether some is inter-node and the largest message of each kind,
// and a per-rank expansion into RankSteps. The tests check that the two agree for every algorithm
// and placement.

namespace dnnplan::clusters {
namespace {

constexpr std::array<Collective, 6> kCollectives{
    Collective::all_reduce, Collective::all_gather, Collective::reduce_scatter,
    Collective::broadcast,  Collective::reduce,     Collective::all_to_all,
};

// Enumerator order, which is also cheapest()'s tie-break order.
constexpr std::array<Algorithm, 9> kAlgorithms{
    Algorithm::ring,          Algorithm::recursive_doubling, Algorithm::recursive_halving,     Algorithm::rabenseifner,
    Algorithm::binomial_tree, Algorithm::scatter_allgather,  Algorithm::reduce_scatter_gather, Algorithm::pairwise,
    Algorithm::hierarchical,
};

const char* name_of(Collective collective) {
    switch (collective) {
        case Collective::all_reduce:
            return "all_reduce";
        case Collective::all_gather:
            return "all_gather";
        case Collective::reduce_scatter:
            return "reduce_scatter";
        case Collective::broadcast:
            return "broadcast";
        case Collective::reduce:
            return "reduce";
        case Collective::all_to_all:
            return "all_to_all";
    }
    return "all_reduce";
}

const char* name_of(Algorithm algorithm) {
    switch (algorithm) {
        case Algorithm::ring:
            return "ring";
        case Algorithm::recursive_doubling:
            return "recursive_doubling";
        case Algorithm::recursive_halving:
            return "recursive_halving";
        case Algorithm::rabenseifner:
            return "rabenseifner";
        case Algorithm::binomial_tree:
            return "binomial_tree";
        case Algorithm::scatter_allgather:
            return "scatter_allgather";
        case Algorithm::reduce_scatter_gather:
            return "reduce_scatter_gather";
        case Algorithm::pairwise:
            return "pairwise";
        case Algorithm::hierarchical:
            return "hierarchical";
    }
    return "ring";
}

bool applies(Collective c, Algorithm a) {
    using C = Collective;
    switch (a) {
        case Algorithm::ring:
            return c == C::all_reduce || c == C::all_gather || c == C::reduce_scatter;
        case Algorithm::recursive_doubling:
            return c == C::all_reduce || c == C::all_gather;
        case Algorithm::recursive_halving:
            return c == C::reduce_scatter;
        case Algorithm::rabenseifner:
            return c == C::all_reduce;
        case Algorithm::binomial_tree:
            return c == C::broadcast || c == C::reduce || c == C::all_reduce;
        case Algorithm::scatter_allgather:
            return c == C::broadcast;
        case Algorithm::reduce_scatter_gather:
            return c == C::reduce;
        case Algorithm::pairwise:
            return c == C::all_to_all;
        case Algorithm::hierarchical:
            return c != C::all_to_all;
    }
    return false;
}

std::string applicable_list(Collective c) {
    std::string out;
    for (Algorithm a : kAlgorithms) {
        if (!applies(c, a)) continue;
        if (!out.empty()) out += ", ";
        out += name_of(a);
    }
    return out;
}

// The flat algorithm of a hierarchical collective's inter-node phase.
Algorithm default_inter_node(Collective c) {
    return c == Collective::broadcast || c == Collective::reduce ? Algorithm::binomial_tree : Algorithm::ring;
}

// Checks an algorithm against a collective; returns the resolved inter-node algorithm (only
// meaningful for hierarchical).
Algorithm require_applicable(Collective c, const CollectiveAlgorithm& a) {
    if (!applies(c, a.algorithm)) {
        throw std::invalid_argument(std::string(name_of(a.algorithm)) + " does not apply to " + name_of(c) +
                                    "; applicable: " + applicable_list(c));
    }
    if (a.algorithm != Algorithm::hierarchical) return a.algorithm;
    const Algorithm inner = a.inter_node.value_or(default_inter_node(c));
    if (inner == Algorithm::hierarchical || !applies(c, inner)) {
        throw std::invalid_argument("hierarchical " + std::string(name_of(c)) +
                                    ": the inter-node phase needs a flat algorithm that applies to " + name_of(c) +
                                    ", not " + name_of(inner));
    }
    return inner;
}

void require_bytes(double bytes) {
    if (!(bytes >= 0) || !std::isfinite(bytes)) {
        throw std::invalid_argument("collective bytes must be finite and >= 0");
    }
}

// ---------------------------------------------------------------------------------------------
// Costing primitives shared by the closed forms and the step walk, so both compute a message's
// time with the very same expression.

// A link kind as the cost expression uses it, with the inverse bandwidth taken once per call
// (divisions were most of a closed form's time). The step walk uses this very expression too.
struct LinkTerms {
    double latency_s;
    double seconds_per_byte;
};

struct Links {
    LinkTerms intra;
    LinkTerms inter;
    Links(const LinkCost& intra_link, const LinkCost& inter_link)
        : intra{intra_link.latency_s, 1 / intra_link.bandwidth_Bps},
          inter{inter_link.latency_s, 1 / inter_link.bandwidth_Bps} {}
};

double transfer_seconds(const LinkTerms& link, double bytes) { return link.latency_s + bytes * link.seconds_per_byte; }

// A step whose intra-node messages carry at most `intra_bytes` and inter-node ones at most
// `inter_bytes` lasts as long as the slowest of the two (each is latency + bytes / bandwidth,
// increasing in bytes, so the largest message of a kind is its slowest).
double step_seconds(bool has_intra, double intra_bytes, bool has_inter, double inter_bytes, const Links& links) {
    double t = 0;
    if (has_intra) t = transfer_seconds(links.intra, intra_bytes);
    if (has_inter) t = std::max(t, transfer_seconds(links.inter, inter_bytes));
    return t;
}

int floor_pow2(int p) { return static_cast<int>(std::bit_floor(static_cast<unsigned>(p))); }
// ceil(log2 p) for p >= 1.
int ceil_log2(int p) { return static_cast<int>(std::bit_width(static_cast<unsigned>(p - 1))); }

RankStep idle() { return RankStep{}; }
RankStep exchange(int partner, double send, double recv, double reduce) {
    return RankStep{partner, send, partner, recv, reduce};
}
RankStep send_only(int to, double bytes) { return RankStep{to, bytes, -1, 0, 0}; }
RankStep recv_only(int from, double bytes, double reduce) { return RankStep{-1, 0, from, bytes, reduce}; }

// Power-of-two fast paths. When p is a power of two so is d (it divides p), and the recursive
// algorithms' and binomial trees' step at distance s stays on a node for s < d and crosses for
// s >= d: log2(d) intra-node steps, then log2(m) inter-node ones. The per-step sums then collapse:
// every step moving n bytes gives log2(d)(a_i + n b_i) + log2(m)(a_e + n b_e), and steps moving
// n/2s give log2(d) a_i + (1 - 1/d) n b_i + log2(m) a_e + (1/d - 1/p) n b_e. Equal to the
// per-step loop up to rounding; a link kind that no step uses is never read (an unset bandwidth
// of 0 must not turn 0 x inf into NaN).
bool is_pow2(int p) { return std::has_single_bit(static_cast<unsigned>(p)); }
int log2_exact(int p) { return std::countr_zero(static_cast<unsigned>(p)); }

double pow2_whole_buffer_seconds(int p, int d, double n, const Links& links) {
    const int intra_steps = log2_exact(d);
    const int inter_steps = log2_exact(p / d);
    double t = 0;
    if (intra_steps > 0) t += intra_steps * transfer_seconds(links.intra, n);
    if (inter_steps > 0) t += inter_steps * transfer_seconds(links.inter, n);
    return t;
}

double pow2_halving_seconds(int p, int d, double n, const Links& links) {
    const int intra_steps = log2_exact(d);
    const int inter_steps = log2_exact(p / d);
    double t = 0;
    if (intra_steps > 0) t += intra_steps * links.intra.latency_s + n * (1 - 1.0 / d) * links.intra.seconds_per_byte;
    if (inter_steps > 0)
        t += inter_steps * links.inter.latency_s + n * (1.0 / d - 1.0 / p) * links.inter.seconds_per_byte;
    return t;
}

// ---------------------------------------------------------------------------------------------
// Ring (Thakur 2005, all-gather and reduce-scatter; Patarasuk and Yuan 2009 for all-reduce): p - 1 steps, rank x
// sends one n/p chunk to x + 1 and receives one from x - 1 (mod p). The ring is in rank order, so
// with several nodes one pair of neighbours per node boundary crosses nodes (and the wrap-around
// pair), and with d > 1 the others do not.

double ring_step_seconds(int p, int d, double n, const Links& links) {
    const double chunk = n / p;
    return step_seconds(d > 1, chunk, p / d > 1, chunk, links);
}

void ring_pass(int p, double n, int x, bool reduce, std::vector<RankStep>& out) {
    const double chunk = n / p;
    const int right = (x + 1) % p;
    const int left = (x + p - 1) % p;
    for (int t = 0; t + 1 < p; ++t) out.push_back(RankStep{right, chunk, left, chunk, reduce ? chunk : 0});
}

// ---------------------------------------------------------------------------------------------
// Folding the r = p - p2 extra ranks (see the top of the file). Fold steps pair j with p2 + j at
// distance p2: with one node they are intra-node; with several, p2 > p / 2 >= d, so they cross.

struct Fold {
    int p2;
    int r;
};
Fold fold_of(int p) {
    const int p2 = floor_pow2(p);
    return Fold{p2, p - p2};
}

double fold_step_seconds(int p, int d, double bytes, const Links& links) {
    const bool crosses = p / d > 1;
    return step_seconds(!crosses, bytes, crosses, bytes, links);
}

// Pre-step: the extra rank sends `bytes` to its partner, which reduces `reduce` of them.
void fold_in(const Fold& f, int x, double bytes, double reduce, std::vector<RankStep>& out) {
    if (f.r == 0) return;
    if (x >= f.p2)
        out.push_back(send_only(x - f.p2, bytes));
    else if (x < f.r)
        out.push_back(recv_only(x + f.p2, bytes, reduce));
    else
        out.push_back(idle());
}

// Post-step: the partner sends `bytes` of the result back to the extra rank.
void fold_out(const Fold& f, int x, double bytes, std::vector<RankStep>& out) {
    if (f.r == 0) return;
    if (x >= f.p2)
        out.push_back(recv_only(x - f.p2, bytes, 0));
    else if (x < f.r)
        out.push_back(send_only(x + f.p2, bytes));
    else
        out.push_back(idle());
}

// Core step at distance s (a power of two < p2) pairs i with i ^ s over [0, p2). With s >= d
// every pair is at least d apart, so crosses. With s < d the pair (0, s) is on node 0, and a pair
// (i, i + s) (bit s of i clear) straddles the node boundary b iff i is in [b - s, b - 1]; that
// window of s ranks misses every i with bit s clear only when b is a multiple of 2s. The boundaries
// below p2 are multiples of d, so some pair crosses iff d < p2 and d is not a multiple of 2s.
bool core_has_intra(int s, int d) { return s < d; }
bool core_has_inter(int s, int d, int p2) { return s >= d || (d < p2 && d % (2 * s) != 0); }

// The smallest residue i mod 2s over the lower ranks i of the core pairs (i, i + s) that cross
// nodes, -1 if none (the recursive all-gather and reduce-scatter send more from low residues,
// see fold_block_count). For s < d, the window [b - s, b - 1] of boundary b (phase
// phi = (b - s) mod 2s) holds residues phi .. phi + s - 1 (mod 2s); those below s start at 0 when
// phi == 0 or phi > s (it wraps), at phi when 0 < phi < s, and there are none when phi == s. The
// phases of b = t d repeat with period 2s / gcd(d, 2s), which is 1 when d is a power of two.
int min_crossing_residue(int s, int d, int p2) {
    if (s >= d) return 0;
    const long two_s = 2L * s;
    const long period = two_s / std::gcd(static_cast<long>(d), two_s);
    int best = -1;
    for (long t = 1; t <= period && t * d < p2; ++t) {
        const long phi = (t * d - s) % two_s;
        if (phi == s) continue;
        const int f = (phi == 0 || phi > s) ? 0 : static_cast<int>(phi);
        if (best < 0 || f < best) best = f;
        if (best == 0) break;
    }
    return best;
}

// Recursive all-gather / reduce-scatter over the folded ranks: surviving rank i stands for its
// own block and, when i < r, for the extra rank p2 + i's block too. At distance s a rank moves the
// blocks of the 2s-residue class rho of [0, p2): p2 / 2s ranks, of which count(rho) are doubled.
// The count does not grow with rho, so in a pair (residues rho < s and rho + s) the rank with the
// lower residue class moves the most.
int fold_block_count(const Fold& f, int s, int rho) {
    const int two_s = 2 * s;
    const int doubled = f.r > rho ? (f.r - rho - 1) / two_s + 1 : 0;
    return f.p2 / two_s + doubled;
}
double fold_block_bytes(const Fold& f, int s, int rho, double blk) {
    return static_cast<double>(fold_block_count(f, s, rho)) * blk;
}
double fold_core_step_seconds(const Fold& f, int s, int d, double blk, const Links& links) {
    const int rho = min_crossing_residue(s, d, f.p2);
    return step_seconds(core_has_intra(s, d), fold_block_bytes(f, s, 0, blk), rho >= 0,
                        rho >= 0 ? fold_block_bytes(f, s, rho, blk) : 0.0, links);
}

// ---------------------------------------------------------------------------------------------
// Recursive doubling all-reduce (Thakur 2005, short-message all-reduce): log2(p) (a + n b) for a
// power of two; otherwise fold in (n, reduced), log2(p2) exchanges of the whole buffer, fold out
// (n): (floor(log2 p) + 2)(a + n b).

double rd_allreduce_seconds(int p, int d, double n, const Links& links) {
    if (is_pow2(p)) return pow2_whole_buffer_seconds(p, d, n, links);
    const Fold f = fold_of(p);
    double t = f.r > 0 ? 2 * fold_step_seconds(p, d, n, links) : 0.0;
    for (int s = 1; s < f.p2; s *= 2) {
        t += step_seconds(core_has_intra(s, d), n, core_has_inter(s, d, f.p2), n, links);
    }
    return t;
}

void rd_allreduce_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const Fold f = fold_of(p);
    fold_in(f, x, n, n, out);
    for (int s = 1; s < f.p2; s *= 2) out.push_back(x < f.p2 ? exchange(x ^ s, n, n, n) : idle());
    fold_out(f, x, n, out);
}

// ---------------------------------------------------------------------------------------------
// Rabenseifner's all-reduce (Rabenseifner 2004; Thakur 2005, long-message all-reduce):
// reduce-scatter by recursive halving at distances 1, 2, ..., p2/2 moving n/2, n/4, ..., n/p2,
// then all-gather by recursive doubling at distances p2/2, ..., 1 moving n/p2, ..., n/2. Power of
// two: 2 log2(p) a + 2 (p-1)/p n b, the bandwidth lower bound of Chan 2007. Otherwise fold in and
// out with the whole buffer (n) around the p2-rank algorithm. Nearest partners carry the largest
// halves, which keeps the big messages on a node.

double rabenseifner_bytes(const Fold& f, int s, double n) { return static_cast<double>(f.p2 / (2 * s)) * (n / f.p2); }

double rabenseifner_seconds(int p, int d, double n, const Links& links) {
    if (is_pow2(p)) return 2 * pow2_halving_seconds(p, d, n, links);
    const Fold f = fold_of(p);
    double t = f.r > 0 ? 2 * fold_step_seconds(p, d, n, links) : 0.0;
    for (int s = 1; s < f.p2; s *= 2) {
        const double bytes = rabenseifner_bytes(f, s, n);
        // once in the reduce-scatter, once in the all-gather
        t += 2 * step_seconds(core_has_intra(s, d), bytes, core_has_inter(s, d, f.p2), bytes, links);
    }
    return t;
}

void rabenseifner_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const Fold f = fold_of(p);
    fold_in(f, x, n, n, out);
    for (int s = 1; s < f.p2; s *= 2) {
        const double bytes = rabenseifner_bytes(f, s, n);
        out.push_back(x < f.p2 ? exchange(x ^ s, bytes, bytes, bytes) : idle());
    }
    for (int s = f.p2 / 2; s >= 1; s /= 2) {
        const double bytes = rabenseifner_bytes(f, s, n);
        out.push_back(x < f.p2 ? exchange(x ^ s, bytes, bytes, 0) : idle());
    }
    fold_out(f, x, n, out);
}

// ---------------------------------------------------------------------------------------------
// Recursive doubling all-gather (Thakur 2005): power of two log2(p) a + (p-1)/p n b.
// Distances p2/2, ..., 1 so that the small early messages take the long (inter-node) hops and the
// large late ones stay on a node; before the step at distance s, rank i holds the blocks of the
// ranks j = i (mod 2s) and sends them all. Non-power-of-two: the extra rank sends its block in
// (n/p), the core runs with doubled blocks for j < r (fold_block_count), and the partner sends
// the extra rank the (p-1) blocks it lacks. MPICH orders the distances the other way round
// (1, 2, ...); on one link kind the cost is the same.

double rd_allgather_seconds(int p, int d, double n, const Links& links) {
    if (is_pow2(p)) return pow2_halving_seconds(p, d, n, links);
    const Fold f = fold_of(p);
    const double blk = n / p;
    double t = 0;
    if (f.r > 0) {
        t += fold_step_seconds(p, d, blk, links);
        t += fold_step_seconds(p, d, static_cast<double>(p - 1) * blk, links);
    }
    for (int s = f.p2 / 2; s >= 1; s /= 2) t += fold_core_step_seconds(f, s, d, blk, links);
    return t;
}

void rd_allgather_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const Fold f = fold_of(p);
    const double blk = n / p;
    fold_in(f, x, blk, 0, out);
    for (int s = f.p2 / 2; s >= 1; s /= 2) {
        if (x >= f.p2) {
            out.push_back(idle());
            continue;
        }
        const int two_s = 2 * s;
        out.push_back(
            exchange(x ^ s, fold_block_bytes(f, s, x % two_s, blk), fold_block_bytes(f, s, (x ^ s) % two_s, blk), 0));
    }
    fold_out(f, x, static_cast<double>(p - 1) * blk, out);
}

// ---------------------------------------------------------------------------------------------
// Recursive halving reduce-scatter (Thakur 2005): power of two log2(p) a + (p-1)/p n b.
// Distances 1, 2, ..., p2/2 (the large early halves stay on a node): before the step at distance
// s, rank i holds partial sums of the blocks j = i (mod s); it keeps j = i (mod 2s) and sends the
// others, receiving and reducing its partner's contribution to its own. Non-power-of-two: the
// extra rank sends its whole input in (n, reduced), and gets its finished block back (n/p).

double rh_reduce_scatter_seconds(int p, int d, double n, const Links& links) {
    if (is_pow2(p)) return pow2_halving_seconds(p, d, n, links);
    const Fold f = fold_of(p);
    const double blk = n / p;
    double t = 0;
    if (f.r > 0) {
        t += fold_step_seconds(p, d, n, links);
        t += fold_step_seconds(p, d, blk, links);
    }
    for (int s = 1; s < f.p2; s *= 2) t += fold_core_step_seconds(f, s, d, blk, links);
    return t;
}

void rh_reduce_scatter_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const Fold f = fold_of(p);
    const double blk = n / p;
    fold_in(f, x, n, n, out);
    for (int s = 1; s < f.p2; s *= 2) {
        if (x >= f.p2) {
            out.push_back(idle());
            continue;
        }
        const int two_s = 2 * s;
        const double recv = fold_block_bytes(f, s, x % two_s, blk);
        out.push_back(exchange(x ^ s, fold_block_bytes(f, s, (x ^ s) % two_s, blk), recv, recv));
    }
    fold_out(f, x, blk, out);
}

// ---------------------------------------------------------------------------------------------
// Binomial trees rooted at rank 0 (Thakur 2005, short-message broadcast and reduce):
// ceil(log2 p)(a + n b) for any p, the latency lower bound of Chan 2007. Broadcast round at distance s = 1, 2, 4, ...:
// every rank x < s that has the data sends it to x + s (< p); reduce runs the same tree backwards. MPICH walks the
// distances from the largest down; the round count and the single-link cost are the same, and nearest-first makes the
// node crossing of a round O(1) to decide: the pairs (x, x + s), x < min(s, p - s), include (0, s), on node 0 iff s <
// d, and reach past node 0 iff their largest receiver min(2s, p) - 1 does.

bool tree_has_intra(int s, int d) { return s < d; }
bool tree_has_inter(int s, int p, int d) { return std::min(2 * s, p) - 1 >= d; }

double binomial_seconds(int p, int d, double n, const Links& links) {
    if (is_pow2(p)) return pow2_whole_buffer_seconds(p, d, n, links);
    double t = 0;
    for (int s = 1; s < p; s *= 2) t += step_seconds(tree_has_intra(s, d), n, tree_has_inter(s, p, d), n, links);
    return t;
}

void binomial_broadcast_steps(int p, double n, int x, std::vector<RankStep>& out) {
    for (int s = 1; s < p; s *= 2) {
        if (x < s && x + s < p)
            out.push_back(send_only(x + s, n));
        else if (x >= s && x < 2 * s)
            out.push_back(recv_only(x - s, n, 0));
        else
            out.push_back(idle());
    }
}

void binomial_reduce_steps(int p, double n, int x, std::vector<RankStep>& out) {
    for (int s = p > 1 ? 1 << (ceil_log2(p) - 1) : 0; s >= 1; s /= 2) {
        if (x >= s && x < 2 * s)
            out.push_back(send_only(x - s, n));
        else if (x < s && x + s < p)
            out.push_back(recv_only(x + s, n, n));
        else
            out.push_back(idle());
    }
}

// ---------------------------------------------------------------------------------------------
// Binomial scatter and gather on the same tree: in the round at distance s, x < s holds the blocks
// of the ranks j = x (mod s) and hands those with j = x + s (mod 2s) to x + s; that is
// ceil((p - x - s) / 2s) blocks, largest for x = 0, and for the crossing pairs largest at the
// smallest crossing sender max(0, d - s). Power of two: log2(p) a + (p-1)/p n b.

int subtree_blocks(int p, int s, int x) { return (p - x - s - 1) / (2 * s) + 1; }

double binomial_scatter_seconds(int p, int d, double n, const Links& links) {
    if (is_pow2(p)) return pow2_halving_seconds(p, d, n, links);
    const double blk = n / p;
    double t = 0;
    for (int s = 1; s < p; s *= 2) {
        const bool has_intra = tree_has_intra(s, d);
        const int first_crossing = std::max(0, d - s);
        const bool has_inter = first_crossing < std::min(s, p - s);
        t += step_seconds(has_intra, static_cast<double>(subtree_blocks(p, s, 0)) * blk, has_inter,
                          has_inter ? static_cast<double>(subtree_blocks(p, s, first_crossing)) * blk : 0.0, links);
    }
    return t;
}

void binomial_scatter_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const double blk = n / p;
    for (int s = 1; s < p; s *= 2) {
        if (x < s && x + s < p)
            out.push_back(send_only(x + s, static_cast<double>(subtree_blocks(p, s, x)) * blk));
        else if (x >= s && x < 2 * s)
            out.push_back(recv_only(x - s, static_cast<double>(subtree_blocks(p, s, x - s)) * blk, 0));
        else
            out.push_back(idle());
    }
}

void binomial_gather_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const double blk = n / p;
    for (int s = p > 1 ? 1 << (ceil_log2(p) - 1) : 0; s >= 1; s /= 2) {
        if (x >= s && x < 2 * s)
            out.push_back(send_only(x - s, static_cast<double>(subtree_blocks(p, s, x - s)) * blk));
        else if (x < s && x + s < p)
            out.push_back(recv_only(x + s, static_cast<double>(subtree_blocks(p, s, x)) * blk, 0));
        else
            out.push_back(idle());
    }
}

// ---------------------------------------------------------------------------------------------
// Pairwise all-to-all (Thakur 2005): step k = 1, ..., p-1 sends n/p to x + k and
// receives from x - k (mod p): (p-1)(a + n/p b). With several nodes every shift crosses some
// boundary; shift k also keeps some pair on a node iff k < d or k > p - d, i.e. in 2(d-1) of the
// p - 1 steps.

double pairwise_seconds(int p, int d, double n, const Links& links) {
    const double chunk = n / p;
    if (p / d == 1) return (p - 1) * step_seconds(true, chunk, false, 0, links);
    const int mixed = 2 * (d - 1);
    const double inter_only = (p - 1 - mixed) * step_seconds(false, 0, true, chunk, links);
    // Not 0 x (a step that reads the intra link): that link may be unset when d == 1.
    return mixed > 0 ? mixed * step_seconds(true, chunk, true, chunk, links) + inter_only : inter_only;
}

void pairwise_steps(int p, double n, int x, std::vector<RankStep>& out) {
    const double chunk = n / p;
    for (int k = 1; k < p; ++k) out.push_back(RankStep{(x + k) % p, chunk, (x - k + p) % p, chunk, 0});
}

// ---------------------------------------------------------------------------------------------
// Flat algorithms: p ranks, d per node.

double flat_seconds(Collective c, Algorithm a, int p, int d, double n, const Links& links) {
    if (p == 1 || n == 0) return 0;
    switch (a) {
        case Algorithm::ring:
            return (c == Collective::all_reduce ? 2 * (p - 1) : p - 1) * ring_step_seconds(p, d, n, links);
        case Algorithm::recursive_doubling:
            return c == Collective::all_reduce ? rd_allreduce_seconds(p, d, n, links)
                                               : rd_allgather_seconds(p, d, n, links);
        case Algorithm::recursive_halving:
            return rh_reduce_scatter_seconds(p, d, n, links);
        case Algorithm::rabenseifner:
            return rabenseifner_seconds(p, d, n, links);
        case Algorithm::binomial_tree:
            return (c == Collective::all_reduce ? 2 : 1) * binomial_seconds(p, d, n, links);
        case Algorithm::scatter_allgather:
        case Algorithm::reduce_scatter_gather:
            return binomial_scatter_seconds(p, d, n, links) + (p - 1) * ring_step_seconds(p, d, n, links);
        case Algorithm::pairwise:
            return pairwise_seconds(p, d, n, links);
        case Algorithm::hierarchical:
            break;
    }
    throw std::logic_error("flat_seconds: hierarchical is not flat");
}

void flat_steps(Collective c, Algorithm a, int p, double n, int x, std::vector<RankStep>& out) {
    if (p == 1) return;
    switch (a) {
        case Algorithm::ring:
            if (c != Collective::all_gather) ring_pass(p, n, x, true, out);
            if (c != Collective::reduce_scatter) ring_pass(p, n, x, false, out);
            return;
        case Algorithm::recursive_doubling:
            if (c == Collective::all_reduce)
                rd_allreduce_steps(p, n, x, out);
            else
                rd_allgather_steps(p, n, x, out);
            return;
        case Algorithm::recursive_halving:
            rh_reduce_scatter_steps(p, n, x, out);
            return;
        case Algorithm::rabenseifner:
            rabenseifner_steps(p, n, x, out);
            return;
        case Algorithm::binomial_tree:
            if (c != Collective::broadcast) binomial_reduce_steps(p, n, x, out);
            if (c != Collective::reduce) binomial_broadcast_steps(p, n, x, out);
            return;
        case Algorithm::scatter_allgather:
            binomial_scatter_steps(p, n, x, out);
            ring_pass(p, n, x, false, out);
            return;
        case Algorithm::reduce_scatter_gather:
            ring_pass(p, n, x, true, out);
            binomial_gather_steps(p, n, x, out);
            return;
        case Algorithm::pairwise:
            pairwise_steps(p, n, x, out);
            return;
        case Algorithm::hierarchical:
            break;
    }
    throw std::logic_error("flat_steps: hierarchical is not flat");
}

// ---------------------------------------------------------------------------------------------
// Hierarchical collectives (the two-level, SMP-aware schemes of MVAPICH and NCCL's 2D
// all-reduce). Local rank l of node j is rank j d + l; "lane" l is the m ranks with
// local rank l, one per node, so the inter-node phase only uses inter-node links and all d lanes
// run it at the same time on their share of the data:
// - all_reduce: ring reduce-scatter of n over the node (each keeps n/d), all-reduce of n/d over
//   each lane (inter-node algorithm), ring all-gather of n over the node:
//   2(d-1)(a_intra + n/d b_intra) + T_inter(all_reduce, m, n/d);
// - all_gather: all-gather of n/d over each lane, then ring all-gather of n over the node:
//   T_inter(all_gather, m, n/d) + (d-1)(a_intra + n/d b_intra);
// - reduce_scatter: the mirror, ring reduce-scatter of n over the node then reduce-scatter of
//   n/d over each lane;
// - broadcast: broadcast of n over lane 0 (the node leaders), then binomial broadcast of n in
//   every node: T_inter(broadcast, m, n) + ceil(log2 d)(a_intra + n b_intra);
// - reduce: the mirror, binomial reduce in every node, then reduce over lane 0.
// Lanes other than 0 idle during the inter-node phase of broadcast and reduce. The intra-node
// phases are fixed (rings, binomial trees); only the inter-node algorithm is chosen.

bool lanes_split_data(Collective c) { return c != Collective::broadcast && c != Collective::reduce; }

// The intra-node phases' time, the same for every inter-node algorithm.
double hierarchical_intra_seconds(Collective c, int d, double n, const Links& links) {
    switch (c) {
        case Collective::all_reduce:
            return 2 * flat_seconds(Collective::all_gather, Algorithm::ring, d, d, n, links);
        case Collective::all_gather:
        case Collective::reduce_scatter:
            return flat_seconds(c, Algorithm::ring, d, d, n, links);
        case Collective::broadcast:
        case Collective::reduce:
            return flat_seconds(c, Algorithm::binomial_tree, d, d, n, links);
        case Collective::all_to_all:
            break;
    }
    throw std::logic_error("hierarchical all_to_all");
}

double hierarchical_lane_seconds(Collective c, Algorithm inner, int p, int d, double n, const Links& links) {
    return flat_seconds(c, inner, p / d, 1, lanes_split_data(c) ? n / d : n, links);
}

double hierarchical_seconds(Collective c, Algorithm inner, int p, int d, double n, const Links& links) {
    if (p == 1 || n == 0) return 0;
    return hierarchical_intra_seconds(c, d, n, links) + hierarchical_lane_seconds(c, inner, p, d, n, links);
}

void hierarchical_steps(Collective c, Algorithm inner, int p, int d, double n, int x, std::vector<RankStep>& out) {
    const int m = p / d;
    const int node = x / d;
    const int local = x % d;
    std::vector<RankStep> phase;
    // Renumbers a phase's partners from node-local (or lane) ranks to group ranks.
    auto append = [&](auto&& to_group, bool active) {
        for (const RankStep& st : phase) {
            if (!active) {
                out.push_back(idle());
                continue;
            }
            RankStep g = st;
            if (g.send_to >= 0) g.send_to = to_group(g.send_to);
            if (g.recv_from >= 0) g.recv_from = to_group(g.recv_from);
            out.push_back(g);
        }
        phase.clear();
    };
    auto intra = [&](Collective ic, Algorithm ia) {
        flat_steps(ic, ia, d, n, local, phase);
        append([&](int l) { return node * d + l; }, true);
    };
    auto lane = [&](bool active) {
        flat_steps(c, inner, m, lanes_split_data(c) ? n / d : n, node, phase);
        append([&](int j) { return j * d + local; }, active);
    };
    switch (c) {
        case Collective::all_reduce:
            intra(Collective::reduce_scatter, Algorithm::ring);
            lane(true);
            intra(Collective::all_gather, Algorithm::ring);
            return;
        case Collective::all_gather:
            lane(true);
            intra(Collective::all_gather, Algorithm::ring);
            return;
        case Collective::reduce_scatter:
            intra(Collective::reduce_scatter, Algorithm::ring);
            lane(true);
            return;
        case Collective::broadcast:
            lane(local == 0);
            intra(Collective::broadcast, Algorithm::binomial_tree);
            return;
        case Collective::reduce:
            intra(Collective::reduce, Algorithm::binomial_tree);
            lane(local == 0);
            return;
        case Collective::all_to_all:
            break;
    }
    throw std::logic_error("hierarchical all_to_all");
}

// Neumaier's compensated sum, so that summing thousands of equal step times matches the closed
// form's single multiplication to well below 1e-12.
double compensated_sum(const std::vector<double>& values) {
    double sum = 0;
    double carry = 0;
    for (double v : values) {
        const double t = sum + v;
        carry += std::abs(sum) >= std::abs(v) ? (sum - t) + v : (v - t) + sum;
        sum = t;
    }
    return sum + carry;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string to_string(Collective collective) { return name_of(collective); }
std::string to_string(Algorithm algorithm) { return name_of(algorithm); }

std::optional<Collective> parse_collective(const std::string& name) {
    for (Collective c : kCollectives) {
        if (name == name_of(c)) return c;
    }
    return std::nullopt;
}

std::optional<Algorithm> parse_algorithm(const std::string& name) {
    for (Algorithm a : kAlgorithms) {
        if (name == name_of(a)) return a;
    }
    return std::nullopt;
}

const std::vector<std::string>& collective_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (Collective c : kCollectives) v.emplace_back(name_of(c));
        return v;
    }();
    return names;
}

const std::vector<std::string>& algorithm_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (Algorithm a : kAlgorithms) v.emplace_back(name_of(a));
        return v;
    }();
    return names;
}

void validate(const GroupPlacement& placement) {
    if (placement.size < 1) {
        throw std::invalid_argument("group placement: size must be >= 1, got " + std::to_string(placement.size));
    }
    if (placement.per_node < 1) {
        throw std::invalid_argument("group placement: per_node must be >= 1, got " +
                                    std::to_string(placement.per_node));
    }
    if (placement.size % placement.per_node != 0) {
        throw std::invalid_argument("group placement: per_node " + std::to_string(placement.per_node) +
                                    " does not divide size " + std::to_string(placement.size));
    }
}

std::string to_string(const CollectiveAlgorithm& algorithm) {
    std::string out = name_of(algorithm.algorithm);
    if (algorithm.algorithm == Algorithm::hierarchical && algorithm.inter_node) {
        // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "(" + std::string(...).
        out += '(';
        out += name_of(*algorithm.inter_node);
        out += ')';
    }
    return out;
}

std::optional<CollectiveAlgorithm> parse_collective_algorithm(const std::string& text) {
    const auto open = text.find('(');
    if (open == std::string::npos) {
        const auto a = parse_algorithm(text);
        if (!a) return std::nullopt;
        return CollectiveAlgorithm{*a};
    }
    if (text.back() != ')' || text.substr(0, open) != name_of(Algorithm::hierarchical)) return std::nullopt;
    const auto inner = parse_algorithm(text.substr(open + 1, text.size() - open - 2));
    if (!inner || *inner == Algorithm::hierarchical) return std::nullopt;
    return CollectiveAlgorithm{Algorithm::hierarchical, *inner};
}

bool algorithm_applies(Collective collective, Algorithm algorithm) { return applies(collective, algorithm); }

bool algorithm_applies(Collective collective, const CollectiveAlgorithm& algorithm) {
    if (!applies(collective, algorithm.algorithm)) return false;
    if (algorithm.algorithm != Algorithm::hierarchical) return true;
    const Algorithm inner = algorithm.inter_node.value_or(default_inter_node(collective));
    return inner != Algorithm::hierarchical && applies(collective, inner);
}

std::vector<Algorithm> applicable_algorithms(Collective collective) {
    std::vector<Algorithm> out;
    for (Algorithm a : kAlgorithms) {
        if (applies(collective, a)) out.push_back(a);
    }
    return out;
}

std::vector<RankStep> rank_steps(Collective collective, const CollectiveAlgorithm& algorithm,
                                 const GroupPlacement& placement, double bytes, int rank) {
    validate(placement);
    require_bytes(bytes);
    const Algorithm resolved = require_applicable(collective, algorithm);
    if (rank < 0 || rank >= placement.size) {
        throw std::out_of_range("rank " + std::to_string(rank) + " outside a group of " +
                                std::to_string(placement.size));
    }
    std::vector<RankStep> out;
    if (placement.size == 1 || bytes == 0) return out;
    if (algorithm.algorithm == Algorithm::hierarchical) {
        hierarchical_steps(collective, resolved, placement.size, placement.per_node, bytes, rank, out);
    } else {
        flat_steps(collective, resolved, placement.size, bytes, rank, out);
    }
    return out;
}

double collective_seconds(Collective collective, const CollectiveAlgorithm& algorithm, const GroupPlacement& placement,
                          double bytes, const LinkCost& intra, const LinkCost& inter) {
    validate(placement);
    require_bytes(bytes);
    const Algorithm resolved = require_applicable(collective, algorithm);
    const Links links{intra, inter};
    if (algorithm.algorithm == Algorithm::hierarchical) {
        return hierarchical_seconds(collective, resolved, placement.size, placement.per_node, bytes, links);
    }
    return flat_seconds(collective, resolved, placement.size, placement.per_node, bytes, links);
}

double collective_seconds_by_steps(Collective collective, const CollectiveAlgorithm& algorithm,
                                   const GroupPlacement& placement, double bytes, const LinkCost& intra,
                                   const LinkCost& inter) {
    validate(placement);
    const Links links{intra, inter};
    std::vector<double> step_time;
    for (int x = 0; x < placement.size; ++x) {
        const std::vector<RankStep> steps = rank_steps(collective, algorithm, placement, bytes, x);
        if (x == 0) step_time.assign(steps.size(), 0.0);
        if (steps.size() != step_time.size()) {
            throw std::logic_error("rank_steps: rank " + std::to_string(x) + " has " + std::to_string(steps.size()) +
                                   " steps, rank 0 has " + std::to_string(step_time.size()));
        }
        for (std::size_t k = 0; k < steps.size(); ++k) {
            const RankStep& st = steps[k];
            if (st.send_to < 0) continue;
            const bool same_node = node_of(placement, x) == node_of(placement, st.send_to);
            step_time[k] =
                std::max(step_time[k], transfer_seconds(same_node ? links.intra : links.inter, st.send_bytes));
        }
    }
    return compensated_sum(step_time);
}

CollectiveChoice cheapest(Collective collective, const GroupPlacement& placement, double bytes, const LinkCost& intra,
                          const LinkCost& inter, AlgorithmSet allowed) {
    validate(placement);
    require_bytes(bytes);
    const Links links{intra, inter};
    const int p = placement.size;
    const int d = placement.per_node;
    bool found = false;
    CollectiveChoice best;
    // Hierarchical on one rank per node is its inter-node algorithm, and on one node it is the
    // flat ring (binomial tree for broadcast and reduce): bit for bit the same times, so when that
    // flat algorithm is a candidate anyway hierarchical can only tie, and the tie goes to flat.
    const bool try_hierarchical =
        allowed.contains(Algorithm::hierarchical) && applies(collective, Algorithm::hierarchical) && d > 1 &&
        !(p == d && allowed.contains(collective == Collective::broadcast || collective == Collective::reduce
                                         ? Algorithm::binomial_tree
                                         : Algorithm::ring));
    bool found_inner = false;
    Algorithm best_inner = Algorithm::ring;
    double best_inner_seconds = 0;
    for (Algorithm a : kAlgorithms) {
        if (a == Algorithm::hierarchical || !allowed.contains(a) || !applies(collective, a)) continue;
        const double t = flat_seconds(collective, a, p, d, bytes, links);
        if (!found || t < best.seconds) {
            best = CollectiveChoice{a, t};
            found = true;
        }
        if (!try_hierarchical) continue;
        const double lane = p == 1 || bytes == 0 ? 0.0 : hierarchical_lane_seconds(collective, a, p, d, bytes, links);
        if (!found_inner || lane < best_inner_seconds) {
            best_inner = a;
            best_inner_seconds = lane;
            found_inner = true;
        }
    }
    if (found_inner) {
        // Recomputed through hierarchical_seconds so that `seconds` is collective_seconds' value bit for bit.
        const double t = hierarchical_seconds(collective, best_inner, p, d, bytes, links);
        if (!found || t < best.seconds) {
            best = CollectiveChoice{CollectiveAlgorithm{Algorithm::hierarchical, best_inner}, t};
            found = true;
        }
    }
    if (!found) {
        throw std::invalid_argument("no allowed algorithm applies to " + std::string(name_of(collective)) +
                                    "; applicable: " + applicable_list(collective));
    }
    return best;
}

double point_to_point_seconds(double bytes, const LinkCost& link) {
    require_bytes(bytes);
    return bytes == 0 ? 0.0 : link.latency_s + bytes / link.bandwidth_Bps;
}

std::vector<RankStep> halo_rank_steps(const GroupPlacement& line, double halo_bytes, int rank) {
    validate(line);
    require_bytes(halo_bytes);
    const int parts = line.size;
    if (rank < 0 || rank >= parts) {
        throw std::out_of_range("rank " + std::to_string(rank) + " outside a line of " + std::to_string(parts));
    }
    std::vector<RankStep> out;
    if (parts == 1 || halo_bytes == 0) return out;
    if (parts == 2) {
        out.push_back(exchange(1 - rank, halo_bytes, halo_bytes, 0));
        return out;
    }
    const int right = rank + 1 < parts ? rank + 1 : -1;
    const int left = rank - 1;
    out.push_back(RankStep{right, right >= 0 ? halo_bytes : 0, left, left >= 0 ? halo_bytes : 0, 0});
    out.push_back(RankStep{left, left >= 0 ? halo_bytes : 0, right, right >= 0 ? halo_bytes : 0, 0});
    return out;
}

double halo_exchange_seconds(double halo_bytes, const GroupPlacement& line, const LinkCost& intra,
                             const LinkCost& inter) {
    validate(line);
    require_bytes(halo_bytes);
    const int parts = line.size;
    if (parts == 1 || halo_bytes == 0) return 0;
    // Neighbour pairs (x, x + 1): some share a node iff per_node > 1, some cross iff the line
    // spans more than one node.
    const double step =
        step_seconds(line.per_node > 1, halo_bytes, node_count(line) > 1, halo_bytes, Links{intra, inter});
    return halo_neighbours(parts) * step;
}

int halo_neighbours(int parts) { return parts <= 1 ? 0 : parts == 2 ? 1 : 2; }

double halo_exchange_seconds(double halo_bytes, int parts, const LinkCost& link) {
    if (parts < 1) throw std::invalid_argument("halo exchange: parts must be >= 1, got " + std::to_string(parts));
    return halo_exchange_seconds(halo_bytes, GroupPlacement{parts, 1}, link, link);
}

}  // namespace dnnplan::clusters
