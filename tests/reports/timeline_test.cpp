// The predicted timeline (reports/predicted_timeline.hpp) against the planner's own totals and
// schedule: its parts add up to the cost breakdown, and its pipeline walk ends where the
// planner's closed form / dependency walk (planner::last_backward_ends) says the schedule ends.
#include <catch2/catch.hpp>

#include <map>
#include <memory>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/pipeline.hpp"
#include "planner/schedule.hpp"
#include "planner/search.hpp"
#include "reports/predicted_timeline.hpp"
#include "tests/reports/xml_check.hpp"

using namespace dnnplan;

namespace {
const std::string kSource = DNNPLAN_SOURCE_DIR;

struct Model {
    networks::Network network;
    clusters::Cluster cluster;
    std::unique_ptr<planner::CostModel> model;
    Model(const std::string& net, const std::string& cluster_name, std::int64_t procs, std::int64_t batch) {
        network = networks::load_network_file(kSource + "/networks/" + net + ".json");
        cluster = clusters::load_cluster_file(kSource + "/clusters/" + cluster_name + ".json");
        planner::PlannerOptions options;
        options.procs = procs;
        options.batch = batch;
        options.dtype = network.dtype;
        model = std::make_unique<planner::CostModel>(network, cluster, options);
    }
};

std::map<std::string, double> seconds_by_category(const reports::PredictedTimeline& t) {
    std::map<std::string, double> out;
    for (const auto& e : t.events) out[e.category] += e.duration_s;
    return out;
}
}  // namespace

TEST_CASE("a layer-parallel timeline adds up to the plan's compute, communication and sync", "[reports][timeline]") {
    Model m("vgg16", "cori-knl", 64, 256);
    planner::SearchResult result = planner::search(*m.model);
    for (const auto& c : result.ranked) {
        if (!c.plan.cost.feasible || c.pipeline.active()) continue;
        reports::PredictedTimeline t = reports::predicted_timeline(*m.model, c);
        auto by = seconds_by_category(t);
        const auto& k = c.plan.cost;
        CHECK(by["compute"] == Approx(k.fwd_compute_s + k.bwd_compute_s).epsilon(1e-12));
        CHECK(by["communication"] == Approx(k.blocking_comm_s()).epsilon(1e-12).margin(1e-15));
        CHECK(by["sync"] == Approx(k.sync_total_s).epsilon(1e-12).margin(1e-15));
        // Every event names its layer; the sync lane never overlaps itself.
        double lane_end = 0;
        for (const auto& e : t.events) {
            CHECK(e.args.contains("layer"));
            if (e.sync_lane) {
                CHECK(e.start_s >= lane_end - 1e-15);
                lane_end = e.start_s + e.duration_s;
            }
        }
        // Drawn end = compute + blocking communication + the sync not hidden by the backward, which
        // the planner also counts as exposed (its extra contention term is not drawn).
        CHECK(t.end_s <= k.iteration_s - k.sync_contention_s + 1e-9 * k.iteration_s + 1e-12);
    }
}

TEST_CASE("a pipeline timeline ends where the planner's schedule ends and sends are arrows", "[reports][timeline]") {
    for (auto schedule : {planner::Schedule::gpipe, planner::Schedule::one_f_one_b}) {
        Model m("gpt2", "dgx-a100", 64, 512);
        planner::PipelineSpec spec;
        spec.tensor = 4;
        spec.stages = 4;
        spec.micro_batches = 8;
        spec.replicas = 4;
        spec.schedule = schedule;
        planner::PipelineCandidate pc = planner::plan_pipeline(*m.model, spec);
        planner::Candidate c;
        c.strategy = planner::Strategy::tp_pp_dp;
        c.pipeline = pc.spec;
        c.plan = pc.score.plan;
        reports::PredictedTimeline t = reports::predicted_timeline(*m.model, c);
        REQUIRE(t.lanes == 4);
        // Each stage runs M forwards and M backwards.
        std::map<int, int> ops;
        int flows_out = 0, flows_in = 0;
        for (const auto& e : t.events) {
            if (!e.sync_lane) ++ops[e.rank];
            flows_out += e.flow_out > 0;
            flows_in += e.flow_in > 0;
        }
        for (int s = 0; s < 4; ++s) CHECK(ops[s] == 16);
        // (S - 1) boundaries x M micro-batches x (forward + backward), each with both ends.
        CHECK(flows_out == 3 * 8 * 2);
        CHECK(flows_in == 3 * 8 * 2);
        // The last backward of stage 0 ends where the planner's schedule walk says.
        std::vector<double> F, B;
        for (const auto& st : pc.score.stages) {
            F.push_back(st.forward_s);
            B.push_back(st.backward_s);
        }
        double makespan = planner::last_backward_ends(F, B, schedule, 8).front();
        double stage0_end = 0;
        for (const auto& e : t.events)
            if (e.rank == 0 && !e.sync_lane) stage0_end = std::max(stage0_end, e.start_s + e.duration_s);
        CHECK(stage0_end == Approx(makespan).epsilon(1e-12));
        // The planner's schedule also waits for late gradients (last_backward_ends' last_extra),
        // which the picture does not draw: it can only be longer.
        CHECK(pc.score.pipeline_s >= makespan);
        CHECK(test::xml_problem(reports::timeline_svg(t, "t <&>")) == "");
    }
}

TEST_CASE("the predicted trace carries flow events for the sends", "[reports][timeline]") {
    reports::PredictedTimeline t;
    TraceEvent a, b;
    a.name = "forward 0";
    a.category = kTraceCompute;
    a.duration_s = 1e-3;
    a.flow_out = 7;
    b = a;
    b.rank = 1;
    b.start_s = 2e-3;
    b.flow_out = 0;
    b.flow_in = 7;
    t.events = {a, b};
    Json trace = reports::predicted_trace(t, "x");
    int s = 0, f = 0;
    for (const auto& e : trace["traceEvents"]) {
        if (e["ph"] == "s") {
            ++s;
            CHECK(e["ts"].get<double>() == Approx(1000.0));  // the sender's end, in microseconds
        }
        if (e["ph"] == "f") {
            ++f;
            CHECK(e["ts"].get<double>() == Approx(2000.0));  // the receiver's start
            CHECK(e["tid"] == 2);                            // rank 1's compute lane
        }
    }
    CHECK(s == 1);
    CHECK(f == 1);
}
