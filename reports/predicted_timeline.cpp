#include "reports/predicted_timeline.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/units.hpp"
#include "planner/comm.hpp"
#include "planner/pipeline.hpp"
#include "planner/schedule.hpp"
#include "reports/svg_chart.hpp"
#include "reports/text.hpp"

namespace dnnplan::reports {

namespace {

TraceEvent event(std::string name, const char* category, int lane, bool sync_lane, double start, double duration,
                 Json args) {
    TraceEvent e;
    e.name = std::move(name);
    e.category = category;
    e.source = TraceSource::predicted;
    e.rank = lane;
    e.sync_lane = sync_lane;
    e.start_s = start;
    e.duration_s = duration;
    e.args = std::move(args);
    return e;
}

Json call_args(const planner::CostModel& model, const planner::CommCall& call) {
    return Json{{"layer", model.network().layers[call.layer].name},
                {"phase", planner::to_string(call.phase)},
                {"kind", planner::to_string(call.kind)},
                {"bytes", call.bytes},
                {"algorithm", call.pattern == planner::CommPattern::collective ? clusters::to_string(call.algorithm)
                                                                               : planner::to_string(call.pattern)},
                {"group", std::to_string(call.group.size) + " ranks, " + std::to_string(call.group.per_node) +
                              " per node"},
                {"what", call.what}};
}

// Layer-parallel: see the header. Calls are kept in the order the plan records them.
PredictedTimeline layer_parallel(const planner::CostModel& model, const planner::ScoredPlan& plan) {
    PredictedTimeline t;
    const auto& layers = model.network().layers;
    std::map<std::pair<int, planner::Phase>, std::vector<const planner::CommCall*>> calls;
    for (const auto& c : plan.calls) calls[{c.layer, c.phase}].push_back(&c);
    auto layout_of = [&](int l) { return planner::to_string(plan.layers[l].layout); };
    double now = 0;
    auto communicate = [&](int l, planner::Phase phase) {
        for (const planner::CommCall* c : calls[{l, phase}]) {
            t.events.push_back(event(layers[l].name + " " + c->what, kTraceCommunication, 0, false, now, c->seconds,
                                     call_args(model, *c)));
            now += c->seconds;
        }
    };
    for (std::size_t l = 1; l < layers.size(); ++l) {
        const auto& k = plan.layers[l];
        t.events.push_back(event(layers[l].name + " forward", kTraceCompute, 0, false, now, k.fwd_compute_s,
                                 Json{{"layer", layers[l].name}, {"phase", "forward"}, {"group", layout_of(l)}}));
        now += k.fwd_compute_s;
        communicate(static_cast<int>(l), planner::Phase::forward);
    }
    std::vector<std::pair<int, double>> ready;  // (layer, when its backward is done)
    for (std::size_t l = layers.size() - 1; l >= 1; --l) {
        communicate(static_cast<int>(l), planner::Phase::backward);
        const auto& k = plan.layers[l];
        t.events.push_back(event(layers[l].name + " backward", kTraceCompute, 0, false, now, k.bwd_compute_s,
                                 Json{{"layer", layers[l].name}, {"phase", "backward"}, {"group", layout_of(l)}}));
        now += k.bwd_compute_s;
        ready.push_back({static_cast<int>(l), now});
    }
    double lane = 0;
    const bool overlap = model.options().overlap_sync;
    for (const auto& [l, done] : ready)
        for (const planner::CommCall* c : calls[{l, planner::Phase::sync}]) {
            double start = std::max(lane, overlap ? done : now);
            t.events.push_back(
                event(layers[l].name + " " + c->what, kTraceSync, 0, true, start, c->seconds, call_args(model, *c)));
            lane = start + c->seconds;
        }
    t.end_s = std::max(now, lane);
    if (plan.cost.sync_contention_s > 0)
        t.note = "the backward pass's slow-down by sharing links with the gradient sync (" +
                 human_seconds(plan.cost.sync_contention_s) + ") is in the iteration time but not drawn";
    return t;
}

PredictedTimeline pipeline(const planner::CostModel& model, const planner::Candidate& c) {
    PredictedTimeline t;
    const planner::PipelineSpec& spec = c.pipeline;
    planner::PipelineScore score = planner::score_pipeline(model, spec, c.plan.anchor_layouts);
    const int S = static_cast<int>(score.stages.size()), M = spec.micro_batches;
    t.lanes = std::max(S, 1);
    // fwd_end[s][m], bwd_end[s][m]; an operation waits for its input (see the header).
    std::vector<std::vector<double>> fwd_end(S, std::vector<double>(M, -1)), bwd_end(S, std::vector<double>(M, -1));
    std::vector<std::size_t> next(S, 0);
    std::vector<std::vector<planner::PipelineOp>> order(S);
    std::vector<double> free_at(S, 0);
    for (int s = 0; s < S; ++s) order[s] = planner::pipeline_order(spec.schedule, S, s, M);
    auto flow_id = [&](bool forward, int s, int m) { return 1 + (forward ? 0 : 1) + 2 * (m + M * s); };
    bool progressed = true;
    while (progressed) {  // each pass starts every operation whose input is there: O(S M) passes at most
        progressed = false;
        for (int s = 0; s < S; ++s) {
            while (next[s] < order[s].size()) {
                const planner::PipelineOp op = order[s][next[s]];
                const auto& cost = score.stages[s];
                double input = 0;
                if (op.forward && s > 0) input = fwd_end[s - 1][op.micro];
                if (!op.forward) input = s + 1 < S ? bwd_end[s + 1][op.micro] : fwd_end[s][op.micro];
                if (input < 0) break;
                double start = std::max(free_at[s], input), duration = op.forward ? cost.forward_s : cost.backward_s;
                TraceEvent e = event((op.forward ? "forward " : "backward ") + std::to_string(op.micro),
                                     kTraceCompute, s, false, start, duration,
                                     Json{{"layer", model.network().layers[cost.first].name + " .. " +
                                                        model.network().layers[cost.last].name},
                                          {"phase", op.forward ? "forward" : "backward"},
                                          {"micro_batch", op.micro},
                                          {"bytes", cost.boundary_bytes},
                                          {"algorithm", "point-to-point"},
                                          {"group", "stage " + std::to_string(s) + " of " + std::to_string(S)},
                                          {"receive_s", op.forward ? cost.recv_forward_s : cost.recv_backward_s}});
                // A send to the next stage (forward) or the previous one (backward) is an arrow.
                if (op.forward && s + 1 < S) e.flow_out = flow_id(true, s, op.micro);
                if (op.forward && s > 0) e.flow_in = flow_id(true, s - 1, op.micro);
                if (!op.forward && s > 0) e.flow_out = flow_id(false, s, op.micro);
                if (!op.forward && s + 1 < S) e.flow_in = flow_id(false, s + 1, op.micro);
                t.events.push_back(std::move(e));
                free_at[s] = start + duration;
                (op.forward ? fwd_end : bwd_end)[s][op.micro] = free_at[s];
                ++next[s];
                progressed = true;
            }
        }
    }
    for (int s = 0; s < S; ++s) {
        double end = free_at[s];
        if (score.stages[s].sync_s > 0)
            t.events.push_back(event("gradient sync", kTraceSync, s, true, end, score.stages[s].sync_s,
                                     Json{{"layer", "stage " + std::to_string(s)}, {"phase", "sync"},
                                          {"kind", spec.zero ? "reduce_scatter + all_gather" : "all_reduce"},
                                          {"group", std::to_string(spec.replicas) + " replicas"}}));
        t.end_s = std::max(t.end_s, end + score.stages[s].sync_s);
    }
    const double drawn = S > 0 ? *std::max_element(free_at.begin(), free_at.end()) : 0;
    if (S > 0 && score.pipeline_s > drawn * (1 + 1e-12))
        t.note = "the wait for late gradients (" + human_seconds(score.pipeline_s - drawn) +
                 ", in the planner's schedule length) is not drawn";
    return t;
}

}  // namespace

PredictedTimeline predicted_timeline(const planner::CostModel& model, const planner::Candidate& candidate) {
    if (!candidate.pipeline.device_of.empty()) {
        PredictedTimeline t;
        t.note = "graph partitions are not drawn (their devices run a DAG, not a stage order)";
        return t;
    }
    return candidate.pipeline.active() ? pipeline(model, candidate) : layer_parallel(model, candidate.plan);
}

Json predicted_trace(const PredictedTimeline& timeline, const std::string& plan_label) {
    return chrome_trace(timeline.events, {plan_label});
}

std::string timeline_svg(const PredictedTimeline& timeline, const std::string& title) {
    const double label_width = 110, width = 1000, plot = width - label_width - 20, row = 16, top = 34;
    const int rows = 2 * timeline.lanes;
    const double height = top + rows * (row + 4) + 46;
    const double scale = timeline.end_s > 0 ? plot / timeline.end_s : 0;
    char b[512];
    std::snprintf(b, sizeof b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" role=\"img\">\n",
                  width, height, width, height);
    std::string out = b;
    out += "<title>" + html_escape(title) + "</title>\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    std::snprintf(b, sizeof b, "<text x=\"%.0f\" y=\"18\" font-size=\"13\" font-weight=\"bold\" text-anchor=\"middle\">",
                  width / 2);
    out += b + html_escape(title) + "</text>\n";
    const std::vector<std::string> categories{kTraceCompute, kTraceCommunication, kTraceSync};
    auto colour = [&](const std::string& cat) {
        for (std::size_t i = 0; i < categories.size(); ++i)
            if (categories[i] == cat) return chart_colour(i == 0 ? 1 : i == 1 ? 5 : 2);
        return chart_colour(7);
    };
    for (int lane = 0; lane < rows; ++lane) {
        double y = top + lane * (row + 4);
        std::string label = (timeline.lanes > 1 ? "stage " + std::to_string(lane / 2) : std::string("each rank")) +
                            (lane % 2 ? " sync" : "");
        std::snprintf(b, sizeof b, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
                      label_width - 6, y + row - 4, html_escape(label).c_str());
        out += b;
        if (lane % 2 == 0 && lane > 0) {  // stage boundary
            std::snprintf(b, sizeof b, "<line x1=\"0\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#888\"/>\n", y - 2.5,
                          width, y - 2.5);
            out += b;
        }
    }
    for (const auto& e : timeline.events) {
        double y = top + (2 * e.rank + (e.sync_lane ? 1 : 0)) * (row + 4);
        std::snprintf(b, sizeof b,
                      "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" fill=\"%s\" stroke=\"white\" "
                      "stroke-width=\"0.3\"><title>",
                      label_width + e.start_s * scale, y, std::max(0.3, e.duration_s * scale), row,
                      colour(e.category).c_str());
        out += b + html_escape(e.name + ": " + human_seconds(e.duration_s) + " from " + human_seconds(e.start_s)) +
               "</title></rect>\n";
    }
    double axis_y = top + rows * (row + 4) + 4;
    for (int i = 0; i <= 4; ++i) {
        double x = label_width + plot * i / 4;
        std::snprintf(b, sizeof b,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/><text x=\"%.1f\" "
                      "y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n",
                      x, axis_y, x, axis_y + 4, x, axis_y + 15, human_seconds(timeline.end_s * i / 4).c_str());
        out += b;
    }
    double x = label_width;
    for (const auto& cat : categories) {
        std::snprintf(b, sizeof b,
                      "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\" "
                      "font-size=\"11\">%s</text>\n",
                      x, height - 16, colour(cat).c_str(), x + 14, height - 7, cat.c_str());
        out += b;
        x += 120;
    }
    return out + "</svg>\n";
}

}  // namespace dnnplan::reports
