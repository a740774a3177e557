#include "trace.hpp"

#include <set>

namespace dnnplan::reports {

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
