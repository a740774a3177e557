// The pieces every replay shares: call names, mailboxes, message steps, slices, and the group map.
#include "simulator/replay_base.hpp"

#include "simulator/child.hpp"
#include "planner/compute.hpp"

#include <algorithm>

namespace dnnplan::simulator {

std::string ReplayBase::call_name(const CommCall& c) const {
    std::string what = model.network().layers[c.layer].name + " " + c.what;
    if (c.kind == CommKind::halo) return what;
    return what + " (" + clusters::to_string(c.collective) + ", " + clusters::to_string(c.algorithm) + ")";
}

sg4::Mailbox* ReplayBase::mailbox(Boxes& boxes, const std::string& channel, int from, int to) {
    long long key = (static_cast<long long>(from) << 32) | static_cast<unsigned>(to);
    if (sg4::Mailbox* known = boxes.find(key)) return known;
    auto* box = sg4::Mailbox::by_name(channel + ":" + std::to_string(from) + ">" + std::to_string(to));
    boxes.insert(key, box);
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

double halo_pack_seconds(const planner::CostModel& model, const CommCall& call, int index) {
    // A redistribution packs a piece for each of the group's other members (the cost model's charge).
    if (call.kind == CommKind::redistribution && call.pattern == planner::CommPattern::collective && call.group.size > 1)
        return planner::halo_pack_seconds(model.cluster().device, call.bytes / call.group.size, call.group.size - 1,
                                          call.runs);
    if (call.kind != CommKind::halo || call.pattern != planner::CommPattern::halo_exchange) return 0;
    int neighbours = 0;
    for (const auto& step : ReplayBase::call_rank_steps(call, index)) neighbours += step.send_to >= 0 ? 1 : 0;
    return planner::halo_pack_seconds(model.cluster().device, call.bytes, neighbours, call.runs);
}

void count_message(RankClock& clock) {
    ++clock.messages;
    count_shared_event();
}

std::int64_t ReplayBase::sends(const CommCall& call, int index) {
    auto [it, inserted] = send_counts.try_emplace({&call, index}, 0);
    if (inserted)
        for (const auto& step : call_rank_steps(call, index)) it->second += step.send_to >= 0 ? 1 : 0;
    return it->second;
}

void ReplayBase::run_mirrored(const CommCall& call, int index, RankClock& clock) {
    sg4::Host* self = sg4::this_actor::get_host();
    for (const auto& step : call_rank_steps(call, index)) {
        sg4::CommPtr send, recv;
        if (step.send_to >= 0) {
            send = sg4::Comm::sendto_async(self, mirror, static_cast<std::uint64_t>(std::llround(step.send_bytes)));
            count_message(clock);
        }
        if (step.recv_from >= 0)
            recv = sg4::Comm::sendto_async(mirror, self, static_cast<std::uint64_t>(std::llround(step.recv_bytes)));
        if (send) send->wait();
        if (recv) recv->wait();
        if (send) flow(self, mirror, step.send_bytes, send->get_start_time(), label(call));
        if (recv) flow(mirror, self, step.recv_bytes, recv->get_start_time(), label(call));
    }
}

const std::string& ReplayBase::label(const CommCall& call) {
    auto [it, inserted] = labels.try_emplace(&call);
    if (inserted)
        it->second = call.kind == CommKind::halo ? call.what + " (halo)"
                                                 : call.what + " (" + clusters::to_string(call.collective) + ")";
    return it->second;
}

bool lockstep_symmetric(const CommCall& call) {
    const int g = std::max(1, call.group.size);
    const std::vector<clusters::RankStep> first = ReplayBase::call_rank_steps(call, 0);
    for (const auto& s : first)
        if ((s.send_to >= 0) != (s.recv_from >= 0) || (s.send_to >= 0 && s.send_bytes != s.recv_bytes)) return false;
    for (int i = 1; i < g; ++i) {
        const std::vector<clusters::RankStep> mine = ReplayBase::call_rank_steps(call, i);
        if (mine.size() != first.size()) return false;
        for (std::size_t k = 0; k < mine.size(); ++k)
            if ((mine[k].send_to >= 0) != (first[k].send_to >= 0) || (mine[k].recv_from >= 0) != (first[k].recv_from >= 0) ||
                mine[k].send_bytes != first[k].send_bytes || mine[k].recv_bytes != first[k].recv_bytes)
                return false;
    }
    return true;
}

bool pair_exchanges_only(const CommCall& call) {
    const int g = std::max(1, call.group.size);
    std::vector<std::vector<clusters::RankStep>> steps(g);
    for (int i = 0; i < g; ++i) steps[i] = ReplayBase::call_rank_steps(call, i);
    for (int i = 0; i < g; ++i)
        for (std::size_t k = 0; k < steps[i].size(); ++k) {
            const auto& s = steps[i][k];
            if (s.send_to < 0 && s.recv_from < 0) continue;
            if (s.send_to != s.recv_from || s.send_bytes != s.recv_bytes || s.send_to >= g) return false;
            const auto& theirs = steps[s.send_to];
            if (k >= theirs.size() || theirs[k].send_to != i || theirs[k].recv_from != i ||
                theirs[k].send_bytes != s.recv_bytes)
                return false;
        }
    return true;
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

namespace dnnplan::simulator {

double isolated_call_seconds(const CommCall& call, double latency, double bandwidth) {
    const int g = std::max(1, call.group.size);
    std::vector<std::vector<clusters::RankStep>> steps(g);
    for (int i = 0; i < g; ++i) steps[i] = ReplayBase::call_rank_steps(call, i);
    // The n-th message from a to b is received by b's n-th receive from a (one mailbox per pair, FIFO).
    std::vector<std::size_t> at(g, 0);  // each member's current step
    std::vector<double> ready(g, 0.0);  // when it posted that step
    std::vector<std::vector<int>> sent(g, std::vector<int>(g, 0)), received(g, std::vector<int>(g, 0));
    // For the pair (a, b): when a posted its n-th send to b, and when b posted its n-th receive from a.
    std::vector<std::vector<std::vector<double>>> send_post(g, std::vector<std::vector<double>>(g)),
        recv_post(g, std::vector<std::vector<double>>(g));
    auto cost = [&](double bytes) { return latency + bytes / bandwidth; };
    for (int i = 0; i < g; ++i)
        if (!steps[i].empty()) {
            const auto& s = steps[i][0];
            if (s.send_to >= 0) send_post[i][s.send_to].push_back(0.0);
            if (s.recv_from >= 0) recv_post[s.recv_from][i].push_back(0.0);
        }
    // Advance any member whose current step's partners have posted their side, until none can.
    bool moved = true;
    while (moved) {
        moved = false;
        for (int i = 0; i < g; ++i) {
            if (at[i] >= steps[i].size()) continue;
            const auto& s = steps[i][at[i]];
            double end = ready[i];
            if (s.send_to >= 0) {
                const int n = sent[i][s.send_to];
                const auto& posted = recv_post[i][s.send_to];
                if (static_cast<int>(posted.size()) <= n) continue;
                end = std::max(end, std::max(ready[i], posted[n]) + cost(s.send_bytes));
            }
            if (s.recv_from >= 0) {
                const int n = received[s.recv_from][i];
                const auto& posted = send_post[s.recv_from][i];
                if (static_cast<int>(posted.size()) <= n) continue;
                end = std::max(end, std::max(ready[i], posted[n]) + cost(s.recv_bytes));
            }
            if (s.send_to >= 0) ++sent[i][s.send_to];
            if (s.recv_from >= 0) ++received[s.recv_from][i];
            ready[i] = end;
            if (++at[i] < steps[i].size()) {
                const auto& next = steps[i][at[i]];
                if (next.send_to >= 0) send_post[i][next.send_to].push_back(end);
                if (next.recv_from >= 0) recv_post[next.recv_from][i].push_back(end);
            }
            moved = true;
        }
    }
    for (int i = 0; i < g; ++i)
        if (at[i] < steps[i].size()) return -1;  // would deadlock: never expected of a valid algorithm
    const auto [low, high] = std::minmax_element(ready.begin(), ready.end());
    if (*high - *low > 1e-12 * std::max(1.0, *high)) return -1;
    return *high;
}

}  // namespace dnnplan::simulator
