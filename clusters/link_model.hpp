// The link model: which of the cluster's two link kinds a transfer or a group uses. One place for
// the rule and its fallback, so the cost model, the pipeline and graph-partition families and the
// simulator's programs cannot disagree on it.
#pragma once

#include <cstdint>

#include "clusters/cluster.hpp"
#include "clusters/collectives.hpp"

namespace dnnplan::clusters {

struct LinkModel {
    LinkCost intra;  // device to device inside a node (the inter-node link on one-device nodes)
    LinkCost inter;  // through the network
    // One contiguous point-to-point message on either link (Link::message_bandwidth_Bps; the
    // link's own figures when the spec has none).
    LinkCost intra_message, inter_message;
    int devices_per_node = 1;

    // Nodes of one device have no intra-node link: every transfer goes through the network card.
    // Transfers run at the link's effective bandwidth (line rate x the preset's NCCL efficiency).
    static LinkModel of(const Cluster& cluster) {
        LinkModel m;
        m.inter = LinkCost{cluster.inter_node.effective_bandwidth_Bps(), cluster.inter_node.latency_s};
        m.intra = cluster.devices_per_node > 1
                      ? LinkCost{cluster.intra_node.effective_bandwidth_Bps(), cluster.intra_node.latency_s}
                      : m.inter;
        m.devices_per_node = cluster.devices_per_node > 1 ? cluster.devices_per_node : 1;
        m.inter_message = message_cost(cluster.inter_node, m.inter);
        m.intra_message = cluster.devices_per_node > 1 ? message_cost(cluster.intra_node, m.intra) : m.inter_message;
        return m;
    }
    static LinkCost message_cost(const Link& link, const LinkCost& otherwise) {
        return link.message_bandwidth_Bps > 0 ? LinkCost{link.message_bandwidth_Bps, link.message_latency_s}
                                              : otherwise;
    }
    // The link a point-to-point message between two ranks takes.
    const LinkCost& message_between(std::int64_t rank_a, std::int64_t rank_b) const {
        return same_node(rank_a, rank_b) ? intra_message : inter_message;
    }
    // Ranks are placed node by node (rank r on node r / devices_per_node).
    bool same_node(std::int64_t rank_a, std::int64_t rank_b) const {
        return rank_a / devices_per_node == rank_b / devices_per_node;
    }
    const LinkCost& between(std::int64_t rank_a, std::int64_t rank_b) const {
        return same_node(rank_a, rank_b) ? intra : inter;
    }
    // A group whose ranks all share one node talks over the intra-node link; any other crosses nodes.
    const LinkCost& for_group(const GroupPlacement& group) const { return node_count(group) > 1 ? inter : intra; }
    // `ranks` consecutive ranks starting at a multiple of `ranks` fit in one node.
    bool fits_in_node(std::int64_t ranks) const { return devices_per_node > 1 && ranks <= devices_per_node; }
};

}  // namespace dnnplan::clusters
