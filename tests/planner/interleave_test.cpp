// Tests of the interleaved 1F1B schedule (--interleave V, Narayanan et al. SC'21 section 2.2.2):
// Megatron-LM's per-device order written out for S = 2, M = 4, V = 2, its makespan walked by hand,
// the bubble (S - 1) / (V M) of the ideal time with uniform chunks, the walk against an explicit
// longest-path solution of the schedule graph, V = 1 as plain 1F1B, the bounded micro-batch counts,
// and a scored pipeline's times, traffic and in-flight memory by hand.
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "networks/network.hpp"
#include "planner/pipeline.hpp"
#include "planner/plan.hpp"
#include "planner/schedule.hpp"
#include "planner_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;

namespace {

PipelineOp F(int micro, int chunk) { return {true, micro, chunk}; }
PipelineOp B(int micro, int chunk) { return {false, micro, chunk}; }

// The schedule as an explicit graph solved by Kahn's order and longest paths: one node per
// (device, position in its order), edges from the previous position on the device and from the
// operation the input comes from (forward of virtual stage v - 1, backward of v + 1, or the
// stage's own forward on the last one; chunk c of device d is virtual stage c S + d).
std::vector<double> graph_ends(const std::vector<double>& Fs, const std::vector<double>& Bs, int S, int M, int V,
                               const std::vector<double>& extra) {
    const int n = S * V, per = 2 * M * V;
    std::vector<std::vector<PipelineOp>> order(S);
    // position[v][forward ? m : M + m] -> k on device v mod S
    std::vector<std::vector<int>> position(n, std::vector<int>(2 * M, -1));
    for (int d = 0; d < S; ++d) {
        order[d] = pipeline_order(Schedule::one_f_one_b, S, d, M, V);
        REQUIRE(static_cast<int>(order[d].size()) == per);
        for (int k = 0; k < per; ++k) {
            const PipelineOp op = order[d][k];
            position[op.chunk * S + d][op.forward ? op.micro : M + op.micro] = k;
        }
    }
    for (const auto& p : position)
        for (int k : p) REQUIRE(k >= 0);  // every operation exactly once
    std::vector<std::vector<int>> next(S * per);
    std::vector<int> indegree(S * per, 0);
    auto edge = [&](int from, int to) { next[from].push_back(to), ++indegree[to]; };
    for (int d = 0; d < S; ++d)
        for (int k = 0; k < per; ++k) {
            if (k > 0) edge(d * per + k - 1, d * per + k);
            const PipelineOp op = order[d][k];
            const int v = op.chunk * S + d;
            if (op.forward && v > 0) edge(((v - 1) % S) * per + position[v - 1][op.micro], d * per + k);
            if (!op.forward && v + 1 < n) edge(((v + 1) % S) * per + position[v + 1][M + op.micro], d * per + k);
            if (!op.forward && v + 1 == n) edge(d * per + position[v][op.micro], d * per + k);
        }
    std::vector<double> start(S * per, 0.0), end(S * per, 0.0);
    std::vector<int> ready;
    for (int x = 0; x < S * per; ++x)
        if (indegree[x] == 0) ready.push_back(x);
    int done = 0;
    while (!ready.empty()) {
        const int x = ready.back();
        ready.pop_back();
        ++done;
        const int d = x / per;
        const PipelineOp op = order[d][x % per];
        const int v = op.chunk * S + d;
        end[x] = start[x] + (op.forward ? Fs[v] : Bs[v]) +
                 (!op.forward && op.micro == M - 1 && op.chunk == 0 ? extra[d] : 0.0);
        for (int y : next[x]) {
            start[y] = std::max(start[y], end[x]);
            if (--indegree[y] == 0) ready.push_back(y);
        }
    }
    REQUIRE(done == S * per);  // deadlock-free
    std::vector<double> ends(S);
    for (int d = 0; d < S; ++d) ends[d] = end[d * per + per - 1];
    return ends;
}

}  // namespace

TEST_CASE("interleaved 1F1B: S = 2, M = 4, V = 2 by hand", "[pipeline][interleave]") {
    // Virtual stages v0 = device 0 chunk 0, v1 = device 1 chunk 0, v2 = device 0 chunk 1,
    // v3 = device 1 chunk 1. Warm-up (Megatron-LM): device 0: 2 (2 - 0 - 1) + (2 - 1) 2 = 4,
    // device 1: 0 + 2 = 2. Forward k: micro-batch 2 (k div 4) + k mod 2, chunk (k mod 4) div 2;
    // backward k: the same micro-batch on chunk 1 - (k mod 4) div 2.
    CHECK(interleaved_warmup(2, 0, 4, 2) == 4);
    CHECK(interleaved_warmup(2, 1, 4, 2) == 2);
    const std::vector<PipelineOp> device0{F(0, 0), F(1, 0), F(0, 1), F(1, 1), F(2, 0), B(0, 1), F(3, 0), B(1, 1),
                                          F(2, 1), B(0, 0), F(3, 1), B(1, 0), B(2, 1), B(3, 1), B(2, 0), B(3, 0)};
    const std::vector<PipelineOp> device1{F(0, 0), F(1, 0), F(0, 1), B(0, 1), F(1, 1), B(1, 1), F(2, 0), B(0, 0),
                                          F(3, 0), B(1, 0), F(2, 1), B(2, 1), F(3, 1), B(3, 1), B(2, 0), B(3, 0)};
    CHECK(pipeline_order(Schedule::one_f_one_b, 2, 0, 4, 2) == device0);
    CHECK(pipeline_order(Schedule::one_f_one_b, 2, 1, 4, 2) == device1);
    // Unit forward and backward per chunk, walked by hand ([start, end) per operation):
    // device 0: F0c0 0-1, F1c0 1-2, F0c1 2-3 (after device 1's F0c0 1-2), F1c1 3-4, F2c0 4-5,
    //   B0c1 5-6 (after device 1's B0c1 4-5), F3c0 6-7, B1c1 7-8 (device 1's B1c1 6-7),
    //   F2c1 8-9 (device 1's F2c0 7-8), B0c0 9-10 (device 1's B0c0 8-9), F3c1 10-11
    //   (device 1's F3c0 9-10), B1c0 11-12 (device 1's B1c0 10-11), B2c1 13-14 (device 1's
    //   B2c1 12-13), B3c1 15-16 (device 1's B3c1 14-15), B2c0 16-17, B3c0 17-18.
    // device 1: F0c0 1-2, F1c0 2-3, F0c1 3-4, B0c1 4-5, F1c1 5-6, B1c1 6-7, F2c0 7-8, B0c0 8-9,
    //   F3c0 9-10, B1c0 10-11, F2c1 11-12, B2c1 12-13, F3c1 13-14, B3c1 14-15, B2c0 15-16
    //   (after device 0's B2c1 13-14), B3c0 16-17.
    // 18 = M V (F + B) + (S - 1)(F + B) = 16 + 2: the bubble (S - 1) / (V M) = 1/8 of the ideal 16,
    // where plain 1F1B with the same work per device (F = B = 2) takes (M + S - 1) 4 = 20.
    const std::vector<double> unit(4, 1.0);
    const std::vector<double> ends = last_backward_ends(unit, unit, Schedule::one_f_one_b, 4, {}, 2);
    REQUIRE(ends.size() == 2);
    CHECK(ends[0] == 18);
    CHECK(ends[1] == 17);
    const std::vector<double> two(2, 2.0);
    CHECK(last_backward_ends(two, two, Schedule::one_f_one_b, 4)[0] == 20);
}

TEST_CASE("interleaved 1F1B with uniform chunks has the bubble (S - 1) / (V M)", "[pipeline][interleave]") {
    // Narayanan et al. SC'21, section 2.2.2: bubble time (p - 1)(t_f + t_b) / v with t_f, t_b the
    // forward and backward of a whole device's layers, so makespan = (M + (S - 1) / V)(t_f + t_b).
    for (int S : {2, 3, 4, 8})
        for (int V : {1, 2, 4})
            for (int k : {1, 2, 3}) {
                const int M = k * S;
                const double f = 1.0 / V, b = 2.0 / V;  // per chunk; t_f = 1, t_b = 2 per device
                const std::vector<double> Fs(S * V, f), Bs(S * V, b);
                INFO("S = " << S << ", V = " << V << ", M = " << M);
                const double ideal = M * 3.0;
                const double makespan = last_backward_ends(Fs, Bs, Schedule::one_f_one_b, M, {}, V)[0];
                CHECK((makespan - ideal) / ideal == Approx((S - 1.0) / (V * M)).epsilon(1e-12));
            }
}

TEST_CASE("the interleaved walk equals the longest paths of its schedule graph", "[pipeline][interleave]") {
    std::mt19937 rng(20261207);
    std::uniform_real_distribution<double> seconds(1e-6, 20e-6);
    for (int trial = 0; trial < 200; ++trial) {
        const int S = 2 + static_cast<int>(rng() % 5), V = 1 << (rng() % 3), M = S * (1 + static_cast<int>(rng() % 4));
        std::vector<double> Fs(S * V), Bs(S * V), none(S, 0.0), extra(S);
        for (int v = 0; v < S * V; ++v) Fs[v] = seconds(rng), Bs[v] = seconds(rng);
        for (int d = 0; d < S; ++d) extra[d] = seconds(rng) / 4;
        INFO("trial " << trial << ", S = " << S << ", V = " << V << ", M = " << M);
        const std::vector<double> got = last_backward_ends(Fs, Bs, Schedule::one_f_one_b, M, {}, V);
        const std::vector<double> want = graph_ends(Fs, Bs, S, M, V, none);
        const std::vector<double> got_late = last_backward_ends(Fs, Bs, Schedule::one_f_one_b, M, extra, V);
        const std::vector<double> want_late = graph_ends(Fs, Bs, S, M, V, extra);
        for (int d = 0; d < S; ++d) {
            CHECK(got[d] == Approx(want[d]).epsilon(1e-12));
            CHECK(got_late[d] == Approx(want_late[d]).epsilon(1e-12));
        }
        CHECK(got[0] == Approx(*std::max_element(want.begin(), want.end())).epsilon(1e-12));
    }
}

TEST_CASE("V = 1 is plain 1F1B", "[pipeline][interleave]") {
    // Plain 1F1B's order (min(S - s - 1, M) warm-up forwards, alternation, cool-down), written out
    // for S = 3, M = 4, stage 0: F0 F1 F2 B0 F3 B1 B2 B3; and its uniform makespan (M + S - 1)(F + B).
    const std::vector<PipelineOp> stage0{F(0, 0), F(1, 0), F(2, 0), B(0, 0), F(3, 0), B(1, 0), B(2, 0), B(3, 0)};
    CHECK(pipeline_order(Schedule::one_f_one_b, 3, 0, 4, 1) == stage0);
    for (int S : {2, 3, 5})
        for (int M : {1, 2, 7, 12}) {
            const std::vector<double> Fs(S, 1.5), Bs(S, 2.5);
            CHECK(last_backward_ends(Fs, Bs, Schedule::one_f_one_b, M, {}, 1)[0] == Approx((M + S - 1) * 4.0));
        }
}

TEST_CASE("the searched micro-batch counts are a bounded set of divisors", "[pipeline][interleave]") {
    // 192 = 2^6 x 3, S = 16: powers of two 1..64, 16 x {1, 2, 4}, 192 / {1, 2, 4, ..., 64}.
    CHECK(micro_batch_counts(192, 16) == std::vector<int>{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 192});
    // 2^31: powers of two up to the limit 4096 only.
    const std::vector<int> big = micro_batch_counts(std::int64_t{1} << 31, 8);
    CHECK(big.size() == 13);
    CHECK(big.back() == kMaxMicroBatches);
    // A prime: 1 and itself.
    CHECK(micro_batch_counts(97, 4) == std::vector<int>{1, 97});
}

TEST_CASE("an interleaved pipeline's times, traffic and memory by hand", "[pipeline][interleave]") {
    // Four bias-free linear layers 1000 -> 1000, one per chunk: S = 2 devices x V = 2 chunks,
    // device 0 holds l1 and l3, device 1 l2 and l4; M = 4 micro-batches of one sample.
    networks::Network net = networks::parse_network(Json::parse(R"({"name": "chain4", "input": {"shape": [1000]},
        "batch": 4, "layers": [{"name": "l1", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l2", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l3", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l4", "kind": "linear", "out_features": 1000, "bias": false}]})"),
                                                    "chain4");
    clusters::Cluster cluster = hand_cluster(1e9, 1e-6);
    CostModel model(net, cluster, options(2, 4));
    PipelineSpec spec;
    spec.stages = 2;
    spec.micro_batches = 4;
    spec.schedule = Schedule::one_f_one_b;
    spec.interleave = 2;
    spec.stage_first = {1, 2, 3, 4};
    std::vector<Layout> ones(net.layers.size());
    // As in pipeline_test's 4 x 8 case: forward 2 us per layer, backward 4 us (l1: 2 us), a
    // boundary 4000 B = 1 us + 4 us, charged to the receiver; the wrap from device 1's chunk 0 to
    // device 0's chunk 1 is a boundary like the others (three instead of one without interleaving).
    // v0 (l1): F 2, B 2 + 5; v1 (l2): F 7, B 9; v2 (l3): F 7, B 9; v3 (l4): F 7, B 4.
    const std::vector<double> Fs{2e-6, 7e-6, 7e-6, 7e-6}, Bs{7e-6, 9e-6, 9e-6, 4e-6};
    const double makespan = graph_ends(Fs, Bs, 2, 4, 2, {0, 0})[0];
    PipelineScore s = score_pipeline(model, spec, ones);
    REQUIRE(s.plan.cost.feasible);
    CHECK(s.pipeline_s == Approx(makespan).epsilon(1e-12));
    CHECK(s.plan.cost.iteration_s == Approx(makespan).epsilon(1e-12));
    REQUIRE(s.stages.size() == 4);
    for (int v = 0; v < 4; ++v) {
        CHECK(s.stages[v].forward_s == Approx(Fs[v]).epsilon(1e-12));
        CHECK(s.stages[v].backward_s == Approx(Bs[v]).epsilon(1e-12));
    }
    // Device 1 is the slowest (7 + 9 + 7 + 4 = 27 us per micro-batch against 25): bubble =
    // makespan - 4 x 27 us; its point-to-point: 4 x (5 + 5 + 5) us.
    CHECK(s.plan.cost.bubble_s == Approx(makespan - 108e-6).epsilon(1e-9));
    CHECK(s.plan.cost.comm(CommKind::point_to_point) == Approx(60e-6).epsilon(1e-12));
    CHECK(s.cut_bytes == Approx(3 * 4000.0));
    // Memory, device 0 (the larger): weights, gradients and momentum of two layers, 3 x 8 MB; in
    // flight at most 5 chunk-micro-batches (warm-up 4, then one forward before each backward; the
    // per-chunk counts go (3, 2), (4, 1), (4, 1), (3, 2)), each 4000 B of output + 4000 B of input;
    // working set 2 x 4000 B. Device 1: warm-up 2, so 3 in flight.
    CHECK(s.stages[0].memory_bytes == Approx(24e6 + 5 * 8000 + 8000).epsilon(1e-12));
    CHECK(s.stages[1].memory_bytes == Approx(24e6 + 3 * 8000 + 8000).epsilon(1e-12));
    CHECK(s.plan.cost.memory_bytes == Approx(24e6 + 5 * 8000 + 8000).epsilon(1e-12));
    // Megatron-LM's condition: M a multiple of S.
    spec.micro_batches = 3;
    CostModel three(net, cluster, options(2, 3));
    CHECK_FALSE(pipeline_problem(three, spec).empty());
}

TEST_CASE("an interleaved plan document round-trips to the same numbers", "[pipeline][interleave]") {
    networks::Network net = builtin("gpt2");
    clusters::Cluster cluster = preset("dgx-a100");
    CostModel model(net, cluster, options(32, 64, net.dtype));
    PipelineSpec request_spec;
    request_spec.tensor = 4;
    request_spec.stages = 4;
    request_spec.replicas = 2;
    request_spec.micro_batches = 8;
    request_spec.schedule = Schedule::one_f_one_b;
    request_spec.interleave = 2;
    PipelineCandidate pc = plan_pipeline(model, request_spec);
    REQUIRE(pc.spec.stage_first.size() == 8);
    Candidate candidate;
    candidate.strategy = Strategy::tp_pp_dp;
    candidate.label = pipeline_label(pc.spec, pc.score);
    candidate.plan = pc.score.plan;
    candidate.pipeline = pc.spec;
    Plan plan = make_plan(model, candidate, {"gpt2", "dgx-a100"});
    Json json = Json::parse(plan_to_json(plan, model).dump());
    CHECK(json["pipeline"]["interleave"] == 2);
    CHECK(json["pipeline"]["stage_ranges"].size() == 8);
    PlanRequest request = parse_plan_request(json, "plan.json");
    std::vector<Layout> layouts = layouts_for(request, model, "plan.json");
    PipelineSpec spec = pipeline_for(request, model, "plan.json");
    CHECK(spec == pc.spec);
    check_equal(score_pipeline(model, spec, layouts).plan.cost, pc.score.plan.cost);
    // Four ranges for four devices but V = 2: the document names where it is wrong.
    json["pipeline"]["stage_ranges"].erase(json["pipeline"]["stage_ranges"].begin() + 4,
                                           json["pipeline"]["stage_ranges"].end());
    json["pipeline"]["stage_ranges"][3]["last"] = net.layers.back().name;
    PlanRequest bad = parse_plan_request(json, "plan.json");
    try {
        pipeline_for(bad, model, "plan.json");
        FAIL("expected an InputError");
    } catch (const InputError& e) {
        CHECK(e.location() == "/pipeline/stage_ranges");
    }
}

TEST_CASE("the operation cursor gives op_at's operations in order", "[planner][pipeline][interleave]") {
    // op_at computes operation k from its index; the walk uses the incremental cursor: they must
    // agree on every operation of every schedule, for stages, micro-batches and chunks of all sizes
    // the search uses (V > 1 only with 1F1B and M a multiple of S).
    int compared = 0;
    for (int S : {1, 2, 3, 4, 8, 16})
        for (int M : {1, 2, 3, 4, 6, 8, 16, 24, 48})
            for (int V : {1, 2, 3, 4})
                for (Schedule schedule : {Schedule::gpipe, Schedule::one_f_one_b}) {
                    if (V > 1 && (schedule == Schedule::gpipe || S < 2 || M % S != 0)) continue;
                    for (int d = 0; d < S; ++d) {
                        PipelineOpCursor cursor(schedule, S, d, M, V);
                        for (int k = 0; k < 2 * M * V; ++k) {
                            INFO("S " << S << " M " << M << " V " << V << " device " << d << " op " << k);
                            REQUIRE(cursor.next() == op_at(schedule, S, d, M, k, V));
                            ++compared;
                        }
                    }
                }
    CHECK(compared > 10000);
}
