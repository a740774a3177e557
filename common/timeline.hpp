// The one timeline format of dnnplan: Chrome trace event JSON (opens in Perfetto and
// chrome://tracing). The simulator (simulated), the validators (measured) and any predicted
// timeline share the convention below, so their files can be merged and read side by side. It
// lives in common/ so that those producers need not link the reports library.
//
// Convention (reports/README.md): pid = 1000 x source + plan, source 1 = predicted, 2 = simulated,
// 3 = measured, plan = the plan's index in a file holding several (0 otherwise); process name
// "<source>" or "<source>: <plan label>"; per rank r two lanes, tid 2r ("rank r": compute and blocking communication)
// and tid 2r+1 ("rank r gradient sync": the all-reduces that overlap the backward pass); one
// complete event ("ph":"X") per step, ts and dur in microseconds from the start of the iteration;
// name = "<layer> <phase>", cat = "compute" or the communication kind ("all_reduce", "halo", ...);
// args may carry "layer", "phase", "bytes", "algorithm".
#pragma once

#include <string>
#include <vector>

#include "common/diagnostics.hpp"

namespace dnnplan {

enum class TraceSource { predicted = 1, simulated = 2, measured = 3 };
std::string to_string(TraceSource source);    // "predicted", "simulated", "measured"
int trace_pid(TraceSource source, int plan);  // 1000 source + plan
int trace_tid(int rank, bool sync_lane);      // 2 rank (+ 1 for the gradient-sync lane)

struct TraceEvent {
    std::string name;      // layer name (user text: written as a JSON string, never interpreted)
    std::string category;  // "compute", "all_reduce", "halo", ...
    TraceSource source = TraceSource::predicted;
    int plan = 0;  // index of the plan in a file with several (the validators run a list); < 1000
    int rank = 0;
    bool sync_lane = false;              // the rank's gradient-sync lane (tid 2 rank + 1)
    double start_s = 0, duration_s = 0;  // seconds from the start of the iteration
    Json args = Json::object();
};

// {"traceEvents": [...], "displayTimeUnit": "ms"} with process_name metadata for every source used
// and thread_name metadata for every lane used, then the events in the given order (microseconds).
// `plan_labels[i]` names plan i in the process names (e.g. "per-layer, P = 4").
Json chrome_trace(const std::vector<TraceEvent>& events, const std::vector<std::string>& plan_labels = {});

}  // namespace dnnplan
