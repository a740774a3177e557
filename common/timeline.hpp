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
// name = "<layer> <phase>", cat = one of the kinds below, the same for every source:
// "compute", "communication" (blocking: halo, redistribution, point-to-point ...), "sync" (the
// weight-gradient synchronisation) and "idle" (waiting for another rank); args carry the detail:
// "layer", "phase", "kind" (the planner's communication kind, "all_reduce", "halo", ...),
// "bytes", "algorithm", "group". A pipeline send may be drawn as a flow arrow from the sending
// event to the receiving one (flow_out / flow_in: the same id on both).
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
    int flow_out = 0;  // > 0: a flow arrow with this id starts at this event's end ("ph":"s")
    int flow_in = 0;   // > 0: the arrow with this id ends at this event's start ("ph":"f")
};
// The trace categories (cat) every source uses.
inline constexpr const char* kTraceCompute = "compute";
inline constexpr const char* kTraceCommunication = "communication";
inline constexpr const char* kTraceSync = "sync";
inline constexpr const char* kTraceIdle = "idle";

// {"traceEvents": [...], "displayTimeUnit": "ms"} with process_name metadata for every source used
// and thread_name metadata for every lane used, then the events in the given order (microseconds).
// `plan_labels[i]` names plan i in the process names (e.g. "per-layer, P = 4").
Json chrome_trace(const std::vector<TraceEvent>& events, const std::vector<std::string>& plan_labels = {});

}  // namespace dnnplan
