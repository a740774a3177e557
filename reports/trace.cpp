#include "trace.hpp"

#include <set>
#include <utility>

namespace dnnplan::reports {

std::string to_string(TraceSource source) {
    switch (source) {
        case TraceSource::predicted:
            return "predicted";
        case TraceSource::simulated:
            return "simulated";
        case TraceSource::measured:
            return "measured";
    }
    return "predicted";
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
    return Json{{"traceEvents", out}, {"displayTimeUnit", "ms"}};
}

void write_chrome_trace(const std::string& path, const std::vector<TraceEvent>& events,
                        const std::vector<std::string>& plan_labels) {
    write_file_atomically(path, json_text(chrome_trace(events, plan_labels)) + "\n");
}

Json merge_chrome_traces(const std::vector<Json>& traces) {
    Json merged = Json::array();
    std::set<std::string> metadata;
    for (const auto& trace : traces) {
        const Json* events = &trace;
        if (trace.is_object() && trace.contains("traceEvents")) events = &trace.at("traceEvents");
        if (!events->is_array()) continue;
        for (const auto& e : *events) {
            if (e.is_object() && e.value("ph", "") == "M" && !metadata.insert(json_text(e)).second) continue;
            merged.push_back(e);
        }
    }
    return Json{{"traceEvents", merged}, {"displayTimeUnit", "ms"}};
}

}  // namespace dnnplan::reports
