// The pieces every replay shares: call names, mailboxes, message steps, slices, and the group map.
#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

std::string ReplayBase::call_name(const CommCall& c) const {
    std::string what = model.network().layers[c.layer].name + " " + c.what;
    if (c.kind == CommKind::halo) return what;
    return what + " (" + clusters::to_string(c.collective) + ", " + clusters::to_string(c.algorithm) + ")";
}

sg4::Mailbox* ReplayBase::mailbox(Boxes& boxes, const std::string& channel, int from, int to) {
    long long key = (static_cast<long long>(from) << 32) | static_cast<unsigned>(to);
    auto it = boxes.find(key);
    if (it != boxes.end()) return it->second;
    auto* box = sg4::Mailbox::by_name(channel + ":" + std::to_string(from) + ">" + std::to_string(to));
    boxes.emplace(key, box);
    return box;
}

std::vector<clusters::RankStep> ReplayBase::call_rank_steps(const CommCall& call, int index) {
    if (call.kind != CommKind::halo)
        return clusters::rank_steps(call.collective, call.algorithm, call.group, call.bytes, index);
    if (call.pattern == planner::CommPattern::one_sided_halo) {
        // The model costs a pooling halo as one point-to-point message to the next part.
        clusters::RankStep step;
        if (index + 1 < call.group.size) step.send_to = index + 1, step.send_bytes = call.bytes;
        if (index > 0) step.recv_from = index - 1, step.recv_bytes = call.bytes;
        return {step};
    }
    return clusters::halo_rank_steps(call.group, call.bytes, index);
}

void ReplayBase::record(RankClock& clock, int rank, int track, const std::string& cat, double start,
                        const std::string& name) {
    if (!timeline) return;
    clock.slices.push_back(Slice{rank, name, cat, track, start, sg4::Engine::get_clock() - start});
}

int GroupMap::my_index(const clusters::GroupPlacement& group, int rank) const {
    const int g = group.size, k = group.per_node, d = devices_per_node;
    if (g <= 1) return 0;
    if (d % k == 0 && g % k == 0) {
        const int node = rank / d, dev = rank % d, span = g / k;
        int index = (node % span) * k + dev % k;
        return member(group, rank, g - 1) < procs ? index : -1;
    }
    return (rank / g + 1) * g <= procs ? rank % g : -1;
}

int GroupMap::member(const clusters::GroupPlacement& group, int rank, int index) const {
    const int g = group.size, k = group.per_node, d = devices_per_node;
    if (d % k == 0 && g % k == 0) {
        const int node = rank / d, dev = rank % d, span = g / k;
        const int lane = dev / k, block = node / span;
        return (block * span + index / k) * d + lane * k + index % k;
    }
    return (rank / g) * g + index;
}

}  // namespace dnnplan::simulator
