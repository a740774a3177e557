// The predicted iteration of a plan laid out in time, from the planner's own numbers: the per-layer
// costs and communication calls of a layer-parallel plan, or the stage costs of a pipeline run in
// planner/schedule.hpp's pipeline_order. One lane per pipeline stage (one representative rank for
// a layer-parallel plan, whose ranks all do the same work) plus its gradient-sync lane. Written as a
// Chrome trace (`dnnplan --trace FILE`) and drawn as a Gantt chart in the HTML report.
#pragma once

#include <string>
#include <vector>

#include "common/timeline.hpp"
#include "planner/candidate.hpp"
#include "planner/cost_model.hpp"

namespace dnnplan::reports {

struct PredictedTimeline {
    std::vector<TraceEvent> events;  // source predicted; rank = pipeline stage (0 for layer-parallel)
    int lanes = 1;                   // stages
    double end_s = 0;                // the last event's end
    std::string note;                // what the picture leaves out ("" when nothing)
};

// Layer-parallel plans: the forward pass layer by layer (compute, then the layer's forward calls),
// the backward pass in reverse (the layer's backward calls, then its compute), and each layer's
// gradient synchronisation on the sync lane once its backward is done and the lane is free (after
// the backward with --no-overlap). Pipelines: stage s runs pipeline_order(schedule, S, s, M); an
// operation starts when the stage is free and its input has arrived (forward: the previous stage's
// forward of that micro-batch; backward: the next stage's backward, or its own forward on the last
// stage), as planner::last_backward_ends walks it; then each stage's gradient sync. Graph partitions
// give an empty timeline with a note.
PredictedTimeline predicted_timeline(const planner::CostModel& model, const planner::Candidate& candidate);

// {"traceEvents": ...} with flow arrows for the pipeline sends (common/timeline.hpp convention).
Json predicted_trace(const PredictedTimeline& timeline, const std::string& plan_label);

// A Gantt chart (SVG): one row per lane, bars coloured by category, stage lanes labelled.
std::string timeline_svg(const PredictedTimeline& timeline, const std::string& title);

}  // namespace dnnplan::reports
