// What a plan communicates: the phases and kinds the cost breakdown counts, the call the
// simulator replays, and the rules every family applies to calls (the gradient synchronisation of
// a layer over its replicas, the buffer a call needs).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "clusters/collectives.hpp"
#include "clusters/link_model.hpp"

namespace dnnplan::planner {

enum class Phase { forward, backward, sync };
enum class CommKind { all_reduce, all_gather, reduce_scatter, all_to_all, halo, point_to_point, redistribution };
inline constexpr std::size_t kCommKindCount = 7;
static_assert(static_cast<std::size_t>(CommKind::redistribution) + 1 == kCommKindCount,
              "kCommKindCount must count every CommKind");
// Seconds (or anything else) per communication kind, indexed by the enum.
using PerCommKind = std::array<double, kCommKindCount>;
inline constexpr std::size_t index_of(CommKind kind) { return static_cast<std::size_t>(kind); }
inline constexpr std::array<CommKind, kCommKindCount> kAllCommKinds{
    CommKind::all_reduce, CommKind::all_gather,     CommKind::reduce_scatter, CommKind::all_to_all,
    CommKind::halo,       CommKind::point_to_point, CommKind::redistribution};

// How a call's messages travel, which decides how the simulator expands it:
// - collective: clusters::rank_steps of `collective` with `algorithm` over `group`;
// - halo_exchange: two neighbours each way along one split dimension (clusters::halo_exchange_seconds);
// - one_sided_halo: one message to one neighbour (overlapping pooling windows);
// - point_to_point: one message between two ranks.
enum class CommPattern { collective, halo_exchange, one_sided_halo, point_to_point };

std::string to_string(Phase phase);
std::string to_string(CommKind kind);
std::string to_string(CommPattern pattern);

// One communication the plan performs: the simulator replays exactly these calls.
struct CommCall {
    int layer = 0;
    Phase phase = Phase::forward;
    CommKind kind = CommKind::all_reduce;
    CommPattern pattern = CommPattern::collective;
    clusters::Collective collective = clusters::Collective::all_reduce;  // for the collective pattern
    clusters::CollectiveAlgorithm algorithm;
    clusters::GroupPlacement group;
    double bytes = 0;
    double seconds = 0;
    std::string what;  // for people only: "weight gradient", "input gradient", "halo of input", ...
    // Halo exchanges and redistributions: the contiguous runs each message's packing copies
    // (planner::halo_pack_seconds); 1 for calls that send their buffer as it is.
    double runs = 1;
    bool operator==(const CommCall&) const = default;
};

// The call a plan records for one collective: its kind follows the collective (all-reduce,
// all-gather, reduce-scatter; anything else is an all-to-all), algorithm and seconds `choice`'s.
CommCall collective_call(int layer, Phase phase, clusters::Collective collective,
                         const clusters::CollectiveChoice& choice, const clusters::GroupPlacement& group, double bytes,
                         const char* what);

// The bytes a call keeps in flight on one rank: its `bytes`, which for every collective is the full
// buffer n as MPI counts it (clusters/collectives.hpp: an all-gather produces n bytes in all, n / p
// from each rank), for a halo or a point-to-point message the message.
double buffer_bytes(const CommCall& call);

// The weight-gradient synchronisation of `layer` over `group` (ZeRO-1: a reduce-scatter of the
// gradient, then an all-gather of the updated weights), each collective the cheapest on the
// links. Every family's replica synchronisation goes through here.
std::vector<CommCall> gradient_sync_calls(int layer, const clusters::GroupPlacement& group, double bytes, bool zero,
                                          const clusters::LinkModel& links);

}  // namespace dnnplan::planner
