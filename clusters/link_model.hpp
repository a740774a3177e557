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
        return m;
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
