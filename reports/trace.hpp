// Writing and merging Chrome traces. The event type and its JSON form, shared with the producers
// (simulator, validators), are in common/timeline.hpp.
#pragma once

#include <string>
#include <vector>

#include "common/timeline.hpp"

namespace dnnplan::reports {

// chrome_trace(events, plan_labels), written whole or not at all (temporary file and rename).
void write_chrome_trace(const std::string& path, const std::vector<TraceEvent>& events,
                        const std::vector<std::string>& plan_labels = {});

// Concatenates the events of several traces (e.g. a simulated and a measured file) into one
// document. The pids keep the sources apart; metadata events present in several inputs appear once.
Json merge_chrome_traces(const std::vector<Json>& traces);

}  // namespace dnnplan::reports
