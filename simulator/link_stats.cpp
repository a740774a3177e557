// Per-link bytes, busy time and senders of a replay.
#include "simulator/link_stats.hpp"

#include <algorithm>

namespace dnnplan::simulator {

namespace sg4 = simgrid::s4u;

std::size_t LinkStats::route_slot(const sg4::Host* from, const sg4::Host* to) const {
    const auto a = reinterpret_cast<std::uintptr_t>(from), b = reinterpret_cast<std::uintptr_t>(to);
    const std::uint64_t h = (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
    return static_cast<std::size_t>(h >> 24) & (route_slots_.size() - 1);
}

std::pair<const int*, const int*> LinkStats::route(sg4::Host* from, sg4::Host* to) {
    if (2 * (routes_used_ + 1) > route_slots_.size()) {
        std::vector<RouteSlot> old = std::move(route_slots_);
        route_slots_.assign(old.empty() ? 1024 : 2 * old.size(), RouteSlot{});
        for (const RouteSlot& r : old) {
            if (r.from == nullptr) continue;
            std::size_t i = route_slot(r.from, r.to);
            while (route_slots_[i].from != nullptr) i = (i + 1) & (route_slots_.size() - 1);
            route_slots_[i] = r;
        }
    }
    std::size_t i = route_slot(from, to);
    for (; route_slots_[i].from != nullptr; i = (i + 1) & (route_slots_.size() - 1))
        if (route_slots_[i].from == from && route_slots_[i].to == to)
            return {route_links_.data() + route_slots_[i].begin, route_links_.data() + route_slots_[i].end};
    std::vector<sg4::Link*> path;
    double latency = 0;
    from->route_to(to, path, &latency);
    RouteSlot added{from, to, static_cast<int>(route_links_.size()), 0};
    for (sg4::Link* l : path) {
        auto [at, inserted] = index_.try_emplace(l, static_cast<int>(links_.size()));
        if (inserted) links_.push_back(Link{l, 0, 0, {}, {}});
        route_links_.push_back(at->second);
    }
    added.end = static_cast<int>(route_links_.size());
    route_slots_[i] = added;
    ++routes_used_;
    return {route_links_.data() + added.begin, route_links_.data() + added.end};
}

int LinkStats::label_of(const std::string& what) {
    auto known = label_by_address_.find(&what);
    if (known != label_by_address_.end() && labels_[known->second] == what) return known->second;
    const int index = new_label(what);
    label_by_address_[&what] = index;
    return index;
}

int LinkStats::new_label(const std::string& what) {
    auto [label, added] = label_index_.try_emplace(what, static_cast<int>(labels_.size()));
    if (added) labels_.push_back(what);
    return label->second;
}

void LinkStats::record(sg4::Host* from, sg4::Host* to, double bytes, double start, const std::string& what) {
    if (from == nullptr || to == nullptr || from == to) return;
    const double end = sg4::Engine::get_clock();
    const int label = label_of(what);
    const auto [first, last] = route(from, to);
    for (const int* at = first; at != last; ++at) {
        Link& l = links_[*at];
        l.bytes += bytes;
        if (l.bytes_by_what.size() <= static_cast<std::size_t>(label)) l.bytes_by_what.resize(label + 1, 0.0);
        l.bytes_by_what[label] += bytes;
        // Merge [start, end] into the busy periods: every period ends by now, so only the last
        // ones can overlap it.
        double s = start, e = end;
        while (!l.open.empty() && l.open.back().second >= s) {
            s = std::min(s, l.open.back().first);
            e = std::max(e, l.open.back().second);
            l.open.pop_back();
        }
        l.open.emplace_back(s, e);
        if (l.open.size() > kKeep) {
            l.busy_closed += l.open.front().second - l.open.front().first;
            l.open.pop_front();
        }
    }
}

void LinkStats::add(sg4::Host* from, sg4::Host* to, double bytes, double busy_s, const std::string& what) {
    if (from == nullptr || to == nullptr || from == to) return;
    const int label = label_of(what);
    const auto [first, last] = route(from, to);
    for (const int* at = first; at != last; ++at) {
        Link& l = links_[*at];
        l.bytes += bytes;
        if (l.bytes_by_what.size() <= static_cast<std::size_t>(label)) l.bytes_by_what.resize(label + 1, 0.0);
        l.bytes_by_what[label] += bytes;
        l.busy_closed += busy_s;
    }
}

double LinkStats::busy(const Link& link) {
    double total = link.busy_closed;
    for (const auto& [s, e] : link.open) total += e - s;
    return total;
}

Json LinkStats::to_json(double iteration_s, int top, int lanes, int router_lanes) const {
    std::vector<int> order(links_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    auto scale = [&](const Link& l) {
        const std::string& name = l.link->get_name();
        if (router_lanes > 1)  // router symmetry: a replayed flow between routers stands for router_lanes
            return name.rfind("local_link", 0) == 0 ? 1.0 : static_cast<double>(router_lanes);
        return name.rfind("nic", 0) == 0 || name.rfind("intra", 0) == 0 ? 1.0 : static_cast<double>(lanes);
    };
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return links_[a].bytes * scale(links_[a]) > links_[b].bytes * scale(links_[b]);
    });
    Json list = Json::array();
    for (int k = 0; k < std::min<int>(top, static_cast<int>(order.size())); ++k) {
        const Link& l = links_[order[k]];
        const double f = scale(l), bandwidth = l.link->get_bandwidth() * f, bytes = l.bytes * f, b = busy(l);
        std::vector<std::pair<double, int>> senders;
        for (std::size_t label = 0; label < l.bytes_by_what.size(); ++label)
            if (l.bytes_by_what[label] > 0) senders.emplace_back(l.bytes_by_what[label] * f, static_cast<int>(label));
        std::stable_sort(senders.begin(), senders.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        Json by = Json::array();
        for (std::size_t i = 0; i < std::min<std::size_t>(3, senders.size()); ++i)
            by.push_back({{"what", labels_[senders[i].second]}, {"bytes", senders[i].first}});
        list.push_back({{"link", l.link->get_name()},
                        {"bandwidth_Bps", bandwidth},
                        {"bytes", bytes},
                        {"busy_s", b},
                        {"busy_fraction", iteration_s > 0 ? b / iteration_s : 0.0},
                        {"utilisation", iteration_s > 0 && bandwidth > 0 ? bytes / (bandwidth * iteration_s) : 0.0},
                        {"top_senders", by}});
    }
    double total = 0;
    for (const Link& l : links_) total += l.bytes * scale(l);
    return Json{{"links_used", links_.size()}, {"bytes_on_links", total}, {"most_loaded", list}};
}

}  // namespace dnnplan::simulator
