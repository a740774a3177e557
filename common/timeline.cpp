#include "common/timeline.hpp"

#include <set>
#include <utility>

namespace dnnplan {

std::string to_string(TraceSource source) {
    static constexpr const char* kNames[] = {"predicted", "simulated", "measured"};  // values 1, 2, 3
    const int index = static_cast<int>(source) - 1;
    return index >= 0 && index < 3 ? kNames[index] : "predicted";
}

int trace_pid(TraceSource source, int plan) { return 1000 * static_cast<int>(source) + plan; }
int trace_tid(int rank, bool sync_lane) { return 2 * rank + (sync_lane ? 1 : 0); }

Json chrome_trace(const std::vector<TraceEvent>& events, const std::vector<std::string>& plan_labels) {
    std::set<std::pair<TraceSource, int>> processes;
    std::set<std::pair<int, int>> threads;
    for (const auto& e : events) {
        processes.insert({e.source, e.plan});
        threads.insert({trace_pid(e.source, e.plan), trace_tid(e.rank, e.sync_lane)});
    }
    Json out = Json::array();
    for (const auto& [source, plan] : processes) {
        std::string name = to_string(source);
        if (plan >= 0 && static_cast<std::size_t>(plan) < plan_labels.size()) name += ": " + plan_labels[plan];
        out.push_back(Json{{"ph", "M"},
                           {"name", "process_name"},
                           {"pid", trace_pid(source, plan)},
                           {"tid", 0},
                           {"args", {{"name", name}}}});
    }
    for (const auto& [pid, tid] : threads)
        out.push_back(
            Json{{"ph", "M"},
                 {"name", "thread_name"},
                 {"pid", pid},
                 {"tid", tid},
                 {"args", {{"name", "rank " + std::to_string(tid / 2) + (tid % 2 ? " gradient sync" : "")}}}});
    for (const auto& e : events)
        out.push_back(Json{{"ph", "X"},
                           {"name", e.name},
                           {"cat", e.category},
                           {"pid", trace_pid(e.source, e.plan)},
                           {"tid", trace_tid(e.rank, e.sync_lane)},
                           {"ts", e.start_s * 1e6},
                           {"dur", e.duration_s * 1e6},
                           {"args", e.args}});
    // Flow arrows (pipeline sends): "s" at the sender's end, "f" bound to the receiver's start.
    for (const auto& e : events) {
        const int pid = trace_pid(e.source, e.plan), tid = trace_tid(e.rank, e.sync_lane);
        if (e.flow_out > 0)
            out.push_back(Json{{"ph", "s"}, {"name", "send"}, {"cat", "flow"}, {"id", e.flow_out}, {"pid", pid},
                               {"tid", tid}, {"ts", (e.start_s + e.duration_s) * 1e6}});
        if (e.flow_in > 0)
            out.push_back(Json{{"ph", "f"}, {"bp", "e"}, {"name", "send"}, {"cat", "flow"}, {"id", e.flow_in},
                               {"pid", pid}, {"tid", tid}, {"ts", e.start_s * 1e6}});
    }
    return Json{{"traceEvents", out}, {"displayTimeUnit", "ms"}};
}

}  // namespace dnnplan
