#include "simulator/platform.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/diagnostics.hpp"
#include "common/units.hpp"

namespace dnnplan::simulator {

namespace sg4 = simgrid::s4u;
using Direction = sg4::LinkInRoute::Direction;

std::string to_string(NetworkModel model) {
    switch (model) {
        case NetworkModel::cm02:
            return "cm02";
        case NetworkModel::lv08:
            return "lv08";
        case NetworkModel::smpi:
            return "smpi";
    }
    return "cm02";
}

const std::vector<std::string>& network_model_names() {
    static const std::vector<std::string> names{"cm02", "lv08", "smpi"};
    return names;
}

NetworkModel parse_network_model(const std::string& name, const std::string& file, const std::string& where) {
    if (name == "cm02") return NetworkModel::cm02;
    if (name == "lv08") return NetworkModel::lv08;
    if (name == "smpi") return NetworkModel::smpi;
    throw InputError(file, where,
                     "unknown network model \"" + name + "\"; valid: " + join_choices(network_model_names()));
}

namespace {

// CM02 without cross traffic is latency + size / bandwidth per message with max-min sharing:
// the alpha-beta model the planner uses, so any difference is contention or topology.
void set_network_model(sg4::Engine& engine, NetworkModel model) {
    switch (model) {
        case NetworkModel::cm02:
            engine.set_config("network/model:CM02");
            engine.set_config("network/crosstraffic:0");
            break;
        case NetworkModel::lv08:
            engine.set_config("network/model:LV08");
            break;
        case NetworkModel::smpi:
            engine.set_config("network/model:SMPI");
            break;
    }
}

// Natural order: "h2" before "h10".
bool natural_less(const std::string& a, const std::string& b) {
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
            std::size_t i2 = i, j2 = j;
            while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
            while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
            std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
            na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
            nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
            if (na.size() != nb.size()) return na.size() < nb.size();
            if (na != nb) return na < nb;
            i = i2;
            j = j2;
        } else {
            if (a[i] != b[j]) return a[i] < b[j];
            ++i;
            ++j;
        }
    }
    return a.size() - i < b.size() - j;
}

std::string format_number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

// The hosts of the loaded platform that run ranks 0..procs-1: the first P in natural name order,
// or those named by the host list.
std::vector<sg4::Host*> rank_hosts(const sg4::Engine& engine, int procs, const PlatformOptions& options) {
    std::vector<sg4::Host*> all = engine.get_all_hosts();
    if (options.hosts.empty()) {
        std::sort(all.begin(), all.end(),
                  [](const sg4::Host* a, const sg4::Host* b) { return natural_less(a->get_name(), b->get_name()); });
        if (static_cast<int>(all.size()) < procs)
            throw InputError(options.platform_file, "",
                             "the platform has " + std::to_string(all.size()) +
                                 " hosts, fewer than the plan's P = " + std::to_string(procs) + " ranks");
        return {all.begin(), all.begin() + procs};
    }
    std::map<std::string, sg4::Host*> by_name;
    for (auto* h : all) by_name[h->get_name()] = h;
    if (static_cast<int>(options.hosts.size()) < procs)
        throw InputError(options.hosts_source, "",
                         "the host list names " + std::to_string(options.hosts.size()) +
                             " hosts, fewer than the plan's P = " + std::to_string(procs) + " ranks");
    std::vector<sg4::Host*> hosts;
    for (int r = 0; r < procs; ++r) {
        auto it = by_name.find(options.hosts[r]);
        if (it == by_name.end())
            throw InputError(options.hosts_source, "line " + std::to_string(r + 1),
                             "host \"" + options.hosts[r] + "\" is not in " + options.platform_file);
        hosts.push_back(it->second);
    }
    return hosts;
}

BuiltPlatform load_xml_platform(sg4::Engine& engine, int procs, const PlatformOptions& options) {
    if (!std::filesystem::is_regular_file(options.platform_file))
        throw InputError(options.platform_file, "", "cannot read the platform file (no such file)");
    try {
        engine.load_platform(options.platform_file);
    } catch (const std::exception& e) {
        throw InputError(options.platform_file, "", std::string("not a valid SimGrid platform: ") + e.what());
    }
    BuiltPlatform built;
    built.hosts = rank_hosts(engine, procs, options);
    built.kind = "xml";
    built.summary = options.platform_file + ": " + std::to_string(engine.get_host_count()) + " hosts, ranks on " +
                    (options.hosts.empty() ? std::string("the first P hosts in natural name order")
                                           : "the hosts listed in " + options.hosts_source);
    return built;
}

// Builds the cluster's own topology under `root`, one node per leaf.
struct Builder {
    const clusters::Cluster& cluster;
    int procs;
    double speed;
    int per_node;  // devices per node actually used
    int nodes;     // nodes needed for procs ranks
    std::vector<sg4::Host*> hosts;
    sg4::NetZone* root;
    double bw, lat;  // the cluster's inter-node link, per device
    // The topology's links join nodes: they carry a node's whole injection bandwidth (the spec's
    // inter-node bandwidth is per device), while each device's own NIC inside the node keeps it
    // to its share.
    double fabric_bw;
    std::string devices;  // the summary's words on the devices inside a node ("" for one per node)
    // The folded replay's platform: each link one resource for both directions (SHARED) instead of
    // an up and a down link (SPLITDUPLEX), with the same bandwidth and latency.
    bool shared = false;

    sg4::Link::SharingPolicy policy() const {
        return shared ? sg4::Link::SharingPolicy::SHARED : sg4::Link::SharingPolicy::SPLITDUPLEX;
    }
    Direction up() const { return shared ? Direction::NONE : Direction::UP; }
    Direction down() const { return shared ? Direction::NONE : Direction::DOWN; }
    sg4::Link* duplex_link(sg4::NetZone* zone, const std::string& name, double bandwidth) const {
        return shared ? zone->create_link(name, bandwidth) : zone->create_split_duplex_link(name, bandwidth);
    }

    // One node: a single host, or for several devices a full zone of `per_node` hosts, each with a
    // private intra-node link (device to device) and a private NIC (device to the rest of the
    // network) behind a gateway router. Returns the netpoint to attach and its gateway.
    std::pair<simgrid::kernel::routing::NetPoint*, simgrid::kernel::routing::NetPoint*> node(sg4::NetZone* parent,
                                                                                             int node_index,
                                                                                             double nic_latency_s) {
        const std::string tag = std::to_string(node_index);
        int first = node_index * per_node;
        int count = std::clamp(procs - first, 0, per_node);
        if (per_node == 1) {
            // Unused leaves of a topology still need a netpoint: a router carries no actor.
            if (count == 0) return {parent->create_router("spare" + tag), nullptr};
            sg4::Host* host = parent->create_host("rank" + std::to_string(first), speed);
            hosts[first] = host;
            return {host->get_netpoint(), nullptr};
        }
        auto* zone = sg4::create_full_zone("node" + tag);
        zone->set_parent(parent);
        auto* gateway = zone->create_router("gw" + tag);
        std::vector<sg4::Link*> intra, nic;
        std::vector<sg4::Host*> local;
        for (int i = 0; i < count; ++i) {
            const std::string name = std::to_string(first + i);
            local.push_back(zone->create_host("rank" + name, speed));
            hosts[first + i] = local.back();
            intra.push_back(duplex_link(zone, "intra" + name, cluster.intra_node.effective_bandwidth_Bps())
                                ->set_latency(cluster.intra_node.latency_s / 2));
            nic.push_back(duplex_link(zone, "nic" + name, cluster.inter_node.effective_bandwidth_Bps())
                              ->set_latency(nic_latency_s));
        }
        for (int i = 0; i < count; ++i) {
            auto* me = local[i]->get_netpoint();
            zone->add_route(me, gateway, nullptr, nullptr, {{nic[i], up()}}, false);
            zone->add_route(gateway, me, nullptr, nullptr, {{nic[i], down()}}, false);
            for (int j = 0; j < count; ++j)
                if (j != i)
                    zone->add_route(me, local[j]->get_netpoint(), nullptr, nullptr,
                                    {{intra[i], up()}, {intra[j], down()}}, false);
        }
        zone->seal();
        return {zone->get_netpoint(), gateway};
    }

    // SimGrid's cluster zones call this for each leaf: one node whose NICs have `link_lat`.
    sg4::ClusterCallbacks leaf_nodes(double link_lat) {
        return sg4::ClusterCallbacks(
            [this, link_lat](sg4::NetZone* zone, const std::vector<unsigned long>&, unsigned long id) {
                return node(zone, static_cast<int>(id), link_lat);
            });
    }

    // Private split-duplex links: a message crosses the sender's up link and the receiver's
    // down link, latency lat/2 each, so it costs lat + n/bw exactly as the model's alpha-beta.
    BuiltPlatform star() {
        if (per_node == 1) {
            for (int r = 0; r < procs; ++r) {
                sg4::Host* host = root->create_host("rank" + std::to_string(r), speed);
                auto* link = duplex_link(root, "link" + std::to_string(r), bw)->set_latency(lat / 2);
                root->add_route(host->get_netpoint(), nullptr, nullptr, nullptr, {{link, up()}}, true);
                hosts[r] = host;
            }
        } else {
            for (int n = 0; n < nodes; ++n) {
                auto [point, gateway] = node(root, n, lat / 2);
                root->add_route(point, nullptr, gateway, nullptr, {}, true);
            }
        }
        BuiltPlatform built;
        built.kind = "star";
        built.link_bandwidth_Bps = bw;
        built.link_latency_s = lat / 2;
        built.summary = "star of " + std::to_string(nodes) + " nodes with private split-duplex links (" +
                        human_count(bw, "B/s") + ", latency " + human_seconds(lat / 2) + " each way)" + devices;
        return built;
    }

    BuiltPlatform fat_tree(const clusters::Topology& topo, double over) {
        const int levels = topo.fat_tree_levels, arity = topo.fat_tree_arity;
        // Only as many top-level subtrees as the nodes need; a leaf switch has `arity` nodes below
        // and arity / oversubscription up-links (SimGrid's links all have one bandwidth, so the
        // oversubscription is a count of links); higher levels are non-blocking, as the spec says.
        std::int64_t below = 1;
        for (int l = 0; l + 1 < levels; ++l) below *= arity;
        unsigned top = static_cast<unsigned>(std::clamp<std::int64_t>((nodes + below - 1) / below, 1, arity));
        std::vector<unsigned> down(levels, static_cast<unsigned>(arity)), up(levels, 1), count(levels, 1);
        down[levels - 1] = top;
        for (int l = 1; l < levels; ++l) up[l] = static_cast<unsigned>(arity);
        unsigned leaf_up = static_cast<unsigned>(std::max(1L, std::lround(arity / over)));
        if (levels > 1) up[1] = leaf_up;
        // The longest route climbs every level and back: 2 x levels links share the latency.
        const double link_lat = lat / (2.0 * levels);
        auto* tree =
            sg4::create_fatTree_zone("fat_tree", root, sg4::FatTreeParams(levels, down, up, count),
                                     leaf_nodes(link_lat), fabric_bw, link_lat, policy());
        tree->seal();
        BuiltPlatform built;
        built.kind = "fat_tree";
        built.link_bandwidth_Bps = fabric_bw;
        built.link_latency_s = link_lat;
        double effective = levels > 1 ? static_cast<double>(arity) / leaf_up : 1.0;
        built.summary = "fat tree of " + std::to_string(levels) + " levels, arity " + std::to_string(arity) + ", " +
                        std::to_string(leaf_up) + " up-links per leaf switch (oversubscription " +
                        format_number(effective) + ":1), links " + human_count(fabric_bw, "B/s") + " and " +
                        human_seconds(link_lat) + ", " + std::to_string(nodes) + " nodes used" + devices;
        return built;
    }

    BuiltPlatform torus(const clusters::Topology& topo) {
        std::vector<unsigned long> dims(topo.torus_dims.begin(), topo.torus_dims.end());
        const double link_lat = lat / 2;
        auto* torus = sg4::create_torus_zone("torus", root, dims, leaf_nodes(link_lat), fabric_bw, link_lat,
                                             policy());
        torus->seal();
        std::string extent;
        for (auto x : dims) {
            if (!extent.empty()) extent += "x";
            extent += std::to_string(x);
        }
        BuiltPlatform built;
        built.kind = "torus";
        built.link_bandwidth_Bps = fabric_bw;
        built.link_latency_s = link_lat;
        built.summary = "torus " + extent + ", links " + human_count(fabric_bw, "B/s") + " and " +
                        human_seconds(link_lat) + " per hop, " + std::to_string(nodes) + " nodes used" + devices;
        return built;
    }

    BuiltPlatform dragonfly(const clusters::Topology& topo) {
        const unsigned per_group =
            static_cast<unsigned>(topo.dragonfly_routers_per_group * topo.dragonfly_nodes_per_router);
        unsigned groups =
            std::clamp<unsigned>((nodes + per_group - 1) / per_group, 1, static_cast<unsigned>(topo.dragonfly_groups));
        const double link_lat = lat / 2;
        auto* fly = sg4::create_dragonfly_zone(
            "dragonfly", root,
            sg4::DragonflyParams({groups, 1}, {1, 1}, {static_cast<unsigned>(topo.dragonfly_routers_per_group), 1},
                                 static_cast<unsigned>(topo.dragonfly_nodes_per_router)),
            leaf_nodes(link_lat), fabric_bw, link_lat, policy());
        fly->seal();
        BuiltPlatform built;
        built.kind = "dragonfly";
        built.link_bandwidth_Bps = fabric_bw;
        built.link_latency_s = link_lat;
        built.summary = "dragonfly of " + std::to_string(groups) + (groups == 1 ? " group x " : " groups x ") +
                        std::to_string(topo.dragonfly_routers_per_group) + " routers x " +
                        std::to_string(topo.dragonfly_nodes_per_router) + " nodes, every link " +
                        human_count(fabric_bw, "B/s") + " and " + human_seconds(link_lat) +
                        " per hop (global links at the same bandwidth" +
                        (topo.dragonfly_global.bandwidth_Bps > 0 && topo.dragonfly_global.bandwidth_Bps != fabric_bw
                             ? ": the preset's " + human_count(topo.dragonfly_global.bandwidth_Bps, "B/s") +
                                   " for them is not modelled, SimGrid's dragonfly zone has one link bandwidth)"
                             : std::string(")")) +
                        devices;
        return built;
    }
};

}  // namespace

BuiltPlatform build_platform(sg4::Engine& engine, const clusters::Cluster& cluster, int procs, double host_speed,
                             const PlatformOptions& options) {
    set_network_model(engine, options.network_model);
    if (!options.lazy_sharing) engine.set_config("network/optim:Full");  // every share recomputed at every event
    if (!options.platform_file.empty()) return load_xml_platform(engine, procs, options);

    const int d = std::max(1, std::min(cluster.devices_per_node, procs));
    const double bw = cluster.inter_node.effective_bandwidth_Bps();
    Builder b{.cluster = cluster,
              .procs = procs,
              .speed = host_speed,
              .per_node = d,
              .nodes = (procs + d - 1) / d,
              .hosts = std::vector<sg4::Host*>(procs, nullptr),
              .root = sg4::create_star_zone("dnnplan"),
              .bw = bw,
              .lat = cluster.inter_node.latency_s,
              .fabric_bw = bw * d / std::max(1, options.lanes),
              .devices = d > 1 ? ", " + std::to_string(d) + " devices per node (private intra-node links of " +
                                     human_count(cluster.intra_node.effective_bandwidth_Bps(), "B/s") + " and one NIC each)"
                               : "",
              .shared = options.shared_duplex};
    const auto& topo = cluster.topology;
    // --topology star (the CLI's parsed choice) replaces the cluster's own network by a star.
    const bool star = options.topology == "star" || topo.kind == clusters::TopologyKind::crossbar;
    BuiltPlatform built;
    if (star)
        built = b.star();
    else if (topo.kind == clusters::TopologyKind::fat_tree)
        built = b.fat_tree(topo, options.oversubscription > 0 ? options.oversubscription : topo.oversubscription);
    else if (topo.kind == clusters::TopologyKind::torus)
        built = b.torus(topo);
    else  // dragonfly
        built = b.dragonfly(topo);
    b.root->seal();
    if (options.router_lanes > 1 && built.kind == "dragonfly") {
        // Router symmetry: each replayed flow between routers stands for router_lanes identical
        // ones (max-min sharing of k copies on capacity c gives each what one gets on c / k); the
        // node links (local_link_*) are private and keep theirs.
        for (sg4::Link* link : engine.get_all_links()) {
            const std::string& name = link->get_name();
            if (name.rfind("green_link", 0) == 0 || name.rfind("black_link", 0) == 0 || name.rfind("blue_link", 0) == 0)
                link->set_bandwidth(link->get_bandwidth() / options.router_lanes);
        }
        built.summary += "; one node per router replayed, router and global links at 1/" +
                         std::to_string(options.router_lanes) + " of their bandwidth (router symmetry)";
    }
    if (options.shared_duplex) built.summary += "; links folded: one resource for both directions (folded exchanges)";
    built.hosts = std::move(b.hosts);
    return built;
}

}  // namespace dnnplan::simulator
