// Per-link accounting of a replay (private to simulator/): the bytes each link carried, by the
// collective or transfer that sent them, and the time it was busy (at least one flow on it).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <simgrid/s4u.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/diagnostics.hpp"

namespace dnnplan::simulator {

class LinkStats {
public:
    // A flow of `bytes` from `from` to `to` that started at `start` and ends now (calls come in the
    // order flows end, so the ends never go back in time). `what` names its collective or transfer.
    void record(simgrid::s4u::Host* from, simgrid::s4u::Host* to, double bytes, double start, const std::string& what);

    // Flows between `from` and `to` known without SimGrid (the reduced replay's timed calls) whose
    // periods on these links overlap nothing else: `bytes` and `busy_s` added as they are.
    void add(simgrid::s4u::Host* from, simgrid::s4u::Host* to, double bytes, double busy_s, const std::string& what);

    // The `top` links by bytes carried, with their busy fraction and utilisation over `iteration_s`
    // and their three largest senders. Links whose names do not start with "nic" or "intra" (the
    // topology's) count `lanes` times their bytes and bandwidth (the reduced pipeline replay).
    Json to_json(double iteration_s, int top, int lanes, int router_lanes = 1) const;

private:
    struct Link {
        const simgrid::s4u::Link* link = nullptr;
        double bytes = 0;
        double busy_closed = 0;                          // busy time folded out of `open`
        std::deque<std::pair<double, double>> open;      // recent disjoint busy periods, in time order
        std::vector<double> bytes_by_what;                // by label index (a handful of labels)
    };
    static constexpr std::size_t kKeep = 256;  // busy periods kept per link before folding the oldest
    std::vector<Link> links_;
    std::unordered_map<const simgrid::s4u::Link*, int> index_;
    // Routes by host pair, as [begin, end) into route_links_, in one open-addressing array (linear
    // probing, at most half full): every message looks its route up, and a node-based map of vectors
    // cost 3-4% of resnet50's best plan at P = 4,096 in cache misses (a std::map before it, 4%).
    struct RouteSlot {
        const simgrid::s4u::Host* from = nullptr;
        const simgrid::s4u::Host* to = nullptr;
        int begin = 0, end = 0;
    };
    std::vector<RouteSlot> route_slots_;
    std::size_t routes_used_ = 0;
    std::vector<int> route_links_;
    std::size_t route_slot(const simgrid::s4u::Host* from, const simgrid::s4u::Host* to) const;
    std::vector<std::string> labels_;
    std::unordered_map<std::string, int> label_index_;
    // Callers pass the same (stable) label string for every message of a call: remembered by address
    // and confirmed by content, so a message does not hash its label.
    std::unordered_map<const std::string*, int> label_by_address_;

    // The links of the route, as [first, last) indices into links_.
    std::pair<const int*, const int*> route(simgrid::s4u::Host* from, simgrid::s4u::Host* to);
    int label_of(const std::string& what);  // the index of a sender label, added when new
    int new_label(const std::string& what);  // label_of without the address cache
    static double busy(const Link& link);
};

}  // namespace dnnplan::simulator
