// Collective algorithms' step structure under the alpha-beta model: the one definition of every
// ring, tree and recursive-doubling schedule, costed in closed form for the planner and expanded
// step by step for the simulator, so that both mean the same messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dnnplan::clusters {

enum class Collective { all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all };

// Which algorithm applies to which collective (algorithm_applies() is the table):
// - ring: all_reduce (ring reduce-scatter then ring all-gather), all_gather, reduce_scatter.
// - recursive_doubling: all_gather, all_reduce (full buffer exchanged every step).
// - recursive_halving: reduce_scatter.
// - rabenseifner: all_reduce (recursive-halving reduce-scatter + recursive-doubling all-gather).
// - binomial_tree: broadcast, reduce, all_reduce (= binomial reduce + binomial broadcast).
// - scatter_allgather: broadcast (binomial scatter + ring all-gather, van de Geijn; MPICH's
//   long-message broadcast).
// - reduce_scatter_gather: reduce (ring reduce-scatter + binomial gather; the mirror of the
//   above, Rabenseifner's long-message reduce with a ring first phase).
// - pairwise: all_to_all (p - 1 shifted exchanges).
// - hierarchical: all_reduce, all_gather, reduce_scatter, broadcast, reduce (intra-node phase,
//   inter-node phase over one rank per node and lane, intra-node phase).
// A pipelined ring broadcast and the "direct" all-to-all (all p - 1 messages in flight at once)
// are not modelled: neither fits the one-send-one-receive-per-step model below.
enum class Algorithm {
    ring,
    recursive_doubling,
    recursive_halving,
    rabenseifner,
    binomial_tree,
    scatter_allgather,
    reduce_scatter_gather,
    pairwise,
    hierarchical,
};

std::string to_string(Collective collective);
std::string to_string(Algorithm algorithm);
std::optional<Collective> parse_collective(const std::string& name);
std::optional<Algorithm> parse_algorithm(const std::string& name);
const std::vector<std::string>& collective_names();
const std::vector<std::string>& algorithm_names();

// One link kind of the two-level machine. Field order and units match clusters::Link, so a
// Link's values initialise a LinkCost as {link.bandwidth_Bps, link.latency_s}.
struct LinkCost {
    double bandwidth_Bps = 0;  // must be > 0 wherever a message uses the link
    double latency_s = 0;
    bool operator==(const LinkCost&) const = default;
};

// Where a group's ranks live: `size` ranks, `per_node` of them on each node (per_node divides
// size), rank r on node r / per_node. The caller numbers the group so that node-mates are
// consecutive and, for broadcast and reduce, so that the root is rank 0.
struct GroupPlacement {
    int size = 1;
    int per_node = 1;
    bool operator==(const GroupPlacement&) const = default;
};

// Throws std::invalid_argument unless size >= 1, per_node >= 1 and per_node divides size.
void validate(const GroupPlacement& placement);
inline int node_count(const GroupPlacement& placement) { return placement.size / placement.per_node; }
inline int node_of(const GroupPlacement& placement, int rank) { return rank / placement.per_node; }

// An algorithm with, for `hierarchical`, the flat algorithm of its inter-node phase (nullopt:
// ring, or binomial_tree for broadcast and reduce). Implicit from Algorithm on purpose, so that
// flat algorithms read as plain enumerators at call sites.
struct CollectiveAlgorithm {
    Algorithm algorithm = Algorithm::ring;
    std::optional<Algorithm> inter_node;

    CollectiveAlgorithm() = default;
    CollectiveAlgorithm(Algorithm algorithm_, std::optional<Algorithm> inter_node_ = std::nullopt)
        : algorithm(algorithm_), inter_node(inter_node_) {}
    bool operator==(const CollectiveAlgorithm&) const = default;
};

// "ring", "hierarchical(rabenseifner)"; parse accepts both forms and a bare "hierarchical".
std::string to_string(const CollectiveAlgorithm& algorithm);
std::optional<CollectiveAlgorithm> parse_collective_algorithm(const std::string& text);

bool algorithm_applies(Collective collective, Algorithm algorithm);
// Also checks the inter-node algorithm of a hierarchical one (flat and applicable).
bool algorithm_applies(Collective collective, const CollectiveAlgorithm& algorithm);
// In tie-break order (the order of the Algorithm enumerators).
std::vector<Algorithm> applicable_algorithms(Collective collective);

// One rank's action in one step: send `send_bytes` to `send_to` and, concurrently (full duplex,
// like MPI_Sendrecv), receive `recv_bytes` from `recv_from` (-1 = none), then reduce
// `reduce_bytes` of the received data into the local buffer. A step with neither is idle; every
// rank of a collective has the same number of steps, and step k of one rank matches step k of
// its partners (a send from r to s in step k is received by s from r in step k, same bytes).
struct RankStep {
    int send_to = -1;
    double send_bytes = 0;
    int recv_from = -1;
    double recv_bytes = 0;
    double reduce_bytes = 0;
    bool operator==(const RankStep&) const = default;
};

// The whole program of `rank` for a collective over `bytes`, the full buffer size n as in MPI:
// all-reduce, broadcast and reduce of n bytes; all-gather producing n bytes in total (n/p from
// each rank); reduce-scatter of an n-byte input (n/p left on each rank); all-to-all of the n bytes
// each rank holds (n/p to each rank). Empty when size == 1 or bytes == 0. Throws
// std::invalid_argument for an inapplicable algorithm, a bad placement or negative bytes, and
// std::out_of_range for a rank outside [0, size).
// The steps of one rank are O(steps) memory (ring all-reduce: 2(p - 1)); expand one rank at a
// time and never all ranks at once on a hot path.
std::vector<RankStep> rank_steps(Collective collective, const CollectiveAlgorithm& algorithm,
                                 const GroupPlacement& placement, double bytes, int rank);

// Alpha-beta time of a collective on a two-level machine: a message between ranks of one node
// costs intra.latency_s + bytes / intra.bandwidth_Bps, between nodes the same on `inter`; a step
// lasts as long as its slowest message (so a ring crossing a node boundary runs every step at the
// inter-node speed); steps are sequential. Local reduction compute is not counted (RankStep
// reports it for the simulator). 0 when size == 1 or bytes == 0.
// The model is lockstep: step k starts everywhere once step k - 1 has ended everywhere. A replay
// where each rank moves on as soon as its own messages are done can finish a little earlier when
// one step's messages have different speeds (a ring over several nodes, say); a replay that
// synchronises the ranks of a collective between steps reproduces these numbers exactly.
// Closed form, the planner's path: no allocation, O(1) for ring and pairwise and for every
// algorithm when size is a power of two, else O(log p) (with O(per_node) per step only for the
// recursive all-gather / reduce-scatter when per_node is not a power of two). Throws as
// rank_steps does.
double collective_seconds(Collective collective, const CollectiveAlgorithm& algorithm, const GroupPlacement& placement,
                          double bytes, const LinkCost& intra, const LinkCost& inter);
// The same number computed by expanding rank_steps for every rank and taking, per step, the
// slowest message: O(p x steps); for tests and for checking the simulator.
double collective_seconds_by_steps(Collective collective, const CollectiveAlgorithm& algorithm,
                                   const GroupPlacement& placement, double bytes, const LinkCost& intra,
                                   const LinkCost& inter);

// A set of algorithms the cluster allows (bit per Algorithm), a plain value.
class AlgorithmSet {
public:
    static constexpr AlgorithmSet all() { return AlgorithmSet(~std::uint32_t{0}); }
    static constexpr AlgorithmSet none() { return AlgorithmSet(0); }
    constexpr AlgorithmSet with(Algorithm algorithm) const { return AlgorithmSet(bits_ | bit(algorithm)); }
    constexpr AlgorithmSet without(Algorithm algorithm) const { return AlgorithmSet(bits_ & ~bit(algorithm)); }
    constexpr bool contains(Algorithm algorithm) const { return (bits_ & bit(algorithm)) != 0; }
    bool operator==(const AlgorithmSet&) const = default;

private:
    constexpr explicit AlgorithmSet(std::uint32_t bits) : bits_(bits) {}
    static constexpr std::uint32_t bit(Algorithm algorithm) { return std::uint32_t{1} << static_cast<int>(algorithm); }
    std::uint32_t bits_;
};

struct CollectiveChoice {
    CollectiveAlgorithm algorithm;
    double seconds = 0;
    bool operator==(const CollectiveChoice&) const = default;
};

// The cheapest allowed applicable algorithm by collective_seconds; `seconds` equals
// collective_seconds of the returned algorithm bit for bit. Candidates are tried in enumerator
// order and a later one must be strictly cheaper, so ties go to the earlier (flat before
// hierarchical). Hierarchical is tried with the cheapest allowed flat inter-node algorithm, and
// only when one is allowed. No allocation. Throws std::invalid_argument when nothing allowed
// applies.
CollectiveChoice cheapest(Collective collective, const GroupPlacement& placement, double bytes, const LinkCost& intra,
                          const LinkCost& inter, AlgorithmSet allowed = AlgorithmSet::all());

// One message: latency + bytes / bandwidth; 0 for bytes == 0 (nothing is sent).
double point_to_point_seconds(double bytes, const LinkCost& link);

// Halo exchange along ONE split dimension of `line.size` parts (open boundaries, not periodic),
// every part exchanging `halo_bytes` with each neighbour it has. Two full-duplex steps: first
// everyone sends to its right neighbour while receiving from its left, then the reverse. With
// two parts both directions fit in one step (each part has one neighbour); with one part there is
// nothing to do. `line.per_node` consecutive parts share a node, so when the line spans nodes
// both steps run at the inter-node speed. The planner calls this once per split dimension and
// per direction of use (forward on the input, backward on the output gradient).
std::vector<RankStep> halo_rank_steps(const GroupPlacement& line, double halo_bytes, int rank);
double halo_exchange_seconds(double halo_bytes, const GroupPlacement& line, const LinkCost& intra,
                             const LinkCost& inter);
// The same on one link kind: 0 (parts <= 1), a + h b (parts == 2), 2 (a + h b) (parts >= 3).
double halo_exchange_seconds(double halo_bytes, int parts, const LinkCost& link);
// The neighbours each part of a halo line exchanges with: 0 (one part), 1 (two), 2 (more), the
// steps halo_exchange_seconds charges.
int halo_neighbours(int parts);

}  // namespace dnnplan::clusters
