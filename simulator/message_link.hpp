// Point-to-point messages (pipeline boundaries, graph partitions' cut tensors) on the cost model's
// message link: the link's ping-pong fit (clusters::Link::message_bandwidth_Bps and
// message_latency_s, LinkModel::message_between), not the collective fit the platform's links are
// built from (simulator/README.md, "Point-to-point messages"). Private to simulator/.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "clusters/link_model.hpp"
#include "simulator/simulator.hpp"

namespace simgrid::s4u {
class Host;
}

namespace dnnplan::simulator {

// What SimGrid's CM02 multiplies a flow's route latency and its rate by so that a message between
// ranks a and b that has its links to itself costs clusters::point_to_point_seconds(bytes,
// links.message_between(a, b)) rather than the same with links.between(a, b), the link the platform
// is built from: the two LinkCosts' latency and bandwidth ratios. A flow sharing a link gets the
// same share of the link as its collective flows do, at its own rate: the equal time shares of the
// graph partition's list schedule (planner/graph_partition.cpp) and the pipeline model's sharing of
// a boundary with the sync (min of the two bandwidth times).
struct MessageFactors {
    double latency = 1, bandwidth = 1;
};
MessageFactors message_factors(const clusters::LinkModel& links, int rank_a, int rank_b);

// The network model's factor callbacks for the messages a replay announces. SimGrid calls them for
// every flow with its size and its two hosts only, so a replay announces each message (expect())
// before it puts it; a flow matching an announced (sender, receiver, bytes) gets its factors and
// uses the announcement up, every other flow (the collectives' steps) none.
class MessageLinks {
public:
    // Installs the callbacks on the engine's network model and returns them, or nullptr when the
    // cluster's message link is its collective link for both link kinds (every preset: nothing
    // changes), the network model is not CM02 (LV08 and SMPI have factors of their own, which the
    // callbacks would replace) or the platform comes from a file (its links are not the cluster's).
    static std::unique_ptr<MessageLinks> install(const clusters::Cluster& cluster,
                                                 const std::vector<simgrid::s4u::Host*>& hosts,
                                                 const PlatformOptions& options);
    ~MessageLinks();
    MessageLinks(const MessageLinks&) = delete;
    MessageLinks& operator=(const MessageLinks&) = delete;

    // Rank `from` is about to put a message of `bytes` to rank `to`.
    void expect(int from, int to, std::uint64_t bytes);

private:
    struct State;
    explicit MessageLinks(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace dnnplan::simulator
