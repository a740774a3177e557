#include "comm.hpp"

namespace dnnplan::planner {

using clusters::Collective;

std::string to_string(Phase phase) {
    switch (phase) {
        case Phase::forward:
            return "forward";
        case Phase::backward:
            return "backward";
        case Phase::sync:
            return "sync";
    }
    return "forward";
}

std::string to_string(CommKind kind) {
    switch (kind) {
        case CommKind::all_reduce:
            return "all_reduce";
        case CommKind::all_gather:
            return "all_gather";
        case CommKind::reduce_scatter:
            return "reduce_scatter";
        case CommKind::all_to_all:
            return "all_to_all";
        case CommKind::halo:
            return "halo";
        case CommKind::point_to_point:
            return "point_to_point";
        case CommKind::redistribution:
            return "redistribution";
    }
    return "all_reduce";
}

std::string to_string(CommPattern pattern) {
    switch (pattern) {
        case CommPattern::collective:
            return "collective";
        case CommPattern::halo_exchange:
            return "halo_exchange";
        case CommPattern::one_sided_halo:
            return "one_sided_halo";
        case CommPattern::point_to_point:
            return "point_to_point";
    }
    return "collective";
}

CommCall collective_call(int layer, Phase phase, Collective collective, const clusters::CollectiveChoice& choice,
                         const clusters::GroupPlacement& group, double bytes, const char* what) {
    CommCall call;
    call.layer = layer;
    call.phase = phase;
    call.kind = collective == Collective::all_reduce       ? CommKind::all_reduce
                : collective == Collective::all_gather     ? CommKind::all_gather
                : collective == Collective::reduce_scatter ? CommKind::reduce_scatter
                                                           : CommKind::all_to_all;
    call.pattern = CommPattern::collective;
    call.collective = collective;
    call.algorithm = choice.algorithm;
    call.group = group;
    call.bytes = bytes;
    call.seconds = choice.seconds;
    call.what = what;
    return call;
}

double buffer_bytes(const CommCall& call) { return call.bytes; }

std::vector<CommCall> gradient_sync_calls(int layer, const clusters::GroupPlacement& group, double bytes, bool zero,
                                          const clusters::LinkModel& links) {
    auto call = [&](Collective collective, const char* what) {
        return collective_call(layer, Phase::sync, collective,
                               clusters::cheapest(collective, group, bytes, links.intra, links.inter), group, bytes,
                               what);
    };
    if (zero)
        return {call(Collective::reduce_scatter, "weight gradient (ZeRO-1 reduce-scatter)"),
                call(Collective::all_gather, "updated weights (ZeRO-1 all-gather)")};
    return {call(Collective::all_reduce, "weight gradient")};
}

}  // namespace dnnplan::planner
