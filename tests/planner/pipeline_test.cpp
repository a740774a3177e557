// Tests of pipelines and 3-D parallelism (planner/pipeline.hpp): the stage partitioner against
// brute force, GPipe and 1F1B time and memory by hand for 4 stages x 8 micro-batches, a one-stage
// one-replica pipeline against the grid plan, the plan document's round trip, bad requests, and
// the 3-D search on GPT-3 175B.
#include "planner/pipeline.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "planner/graph_partition.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "planner_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;

namespace {


// Four bias-free linear layers 1000 -> 1000: one per stage.
networks::Network chain4() {
    return networks::parse_network(Json::parse(R"({"name": "chain4", "input": {"shape": [1000]}, "batch": 8,
        "layers": [{"name": "l1", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l2", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l3", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l4", "kind": "linear", "out_features": 1000, "bias": false}]})"),
                                   "chain4");
}

// Every way to choose stages - 1 starts among `cuts`, by the same objective.
double brute_force_stages(const StageWeights& w, const std::vector<int>& cuts, int stages) {
    double best = std::numeric_limits<double>::infinity();
    const int k = static_cast<int>(cuts.size());
    std::vector<int> pick(stages - 1);
    std::function<void(int, int)> rec = [&](int from, int depth) {
        if (depth == stages - 1) {
            std::vector<int> starts{1};
            for (int p : pick) starts.push_back(cuts[p]);
            best = std::min(best, slowest_stage(w, starts));
            return;
        }
        for (int i = from; i < k; ++i) {
            pick[depth] = i;
            rec(i + 1, depth + 1);
        }
    };
    rec(0, 0);
    return best;
}

}  // namespace

TEST_CASE("stage partitioning equals brute force on random weights", "[pipeline]") {
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> layer(0.1, 10.0), transfer(0.0, 3.0);
    for (int trial = 0; trial < 60; ++trial) {
        const int n = 3 + trial % 10;  // layers incl. the input
        StageWeights w;
        w.layer_s.assign(n, 0.0);
        w.recv_fwd_s.assign(n + 1, 0.0);
        w.recv_bwd_s.assign(n + 1, 0.0);
        for (int i = 1; i < n; ++i) w.layer_s[i] = layer(rng);
        for (int i = 2; i < n; ++i) w.recv_fwd_s[i] = transfer(rng), w.recv_bwd_s[i] = transfer(rng);
        std::vector<int> cuts;
        for (int c = 2; c < n; ++c)
            if (trial % 3 != 0 || c % 2 == 0) cuts.push_back(c);  // every third trial: some positions barred
        for (int stages = 1; stages <= static_cast<int>(cuts.size()) + 1; ++stages) {
            std::vector<int> starts = partition_stages(w, cuts, stages);
            REQUIRE(static_cast<int>(starts.size()) == stages);
            CHECK(slowest_stage(w, starts) == Approx(brute_force_stages(w, cuts, stages)).epsilon(1e-12));
        }
    }
}

TEST_CASE("stage partitioning equals brute force on small networks", "[pipeline]") {
    clusters::Cluster cluster = preset("dgx-a100");
    for (const char* name : {"lenet5", "smallcnn", "alexnet"}) {
        networks::Network net = builtin(name);
        CostModel model(net, cluster, options(8, 64));
        std::vector<int> cuts = cut_positions(model);
        // A chain: every layer after the first is a cut position.
        CHECK(cuts.size() == net.layers.size() - 2);
        for (int stages : {2, 3, 4}) {
            PipelineSpec spec;
            spec.stages = stages;
            spec.tensor = 1;
            spec.micro_batches = 4;
            StageWeights w = stage_weights(model, spec, std::vector<Layout>(net.layers.size()));
            std::vector<int> starts = partition_stages(w, cuts, stages);
            INFO(name << " with " << stages << " stages");
            CHECK(slowest_stage(w, starts) == Approx(brute_force_stages(w, cuts, stages)).epsilon(1e-12));
        }
    }
}

TEST_CASE("cut positions of a residual network are the block boundaries", "[pipeline]") {
    networks::Network net = builtin("resnet50");
    clusters::Cluster model_cluster = preset("dgx-a100");
    CostModel model(net, model_cluster, options(8, 64));
    std::vector<int> cuts = cut_positions(model);
    // Only one tensor may cross: no cut inside a bottleneck block, where the shortcut also crosses.
    for (int c : cuts) {
        int crossing = 0;
        for (int j = 1; j < c; ++j) {
            bool used_later = false;
            for (std::size_t i = c; i < net.layers.size(); ++i)
                for (int p : net.layers[i].inputs) used_later |= p == j;
            crossing += used_later;
        }
        CHECK(crossing == 1);
    }
    // 16 bottleneck blocks: the positions right after each block's residual add (the relu that
    // follows is a cut too) and the stem's and head's chains; at least one per block.
    CHECK(cuts.size() >= 16);
}

TEST_CASE("GPipe and 1F1B: 4 stages x 8 micro-batches by hand", "[pipeline]") {
    networks::Network net = chain4();
    clusters::Cluster cluster = hand_cluster(1e9, 1e-6);
    CostModel model(net, cluster, options(4, 8));
    PipelineSpec spec;
    spec.tensor = 1;
    spec.stages = 4;
    spec.micro_batches = 8;
    spec.replicas = 1;
    spec.stage_first = {1, 2, 3, 4};
    std::vector<Layout> ones(net.layers.size());
    // Per micro-batch (b = 1): forward 2 x 10^6 FLOPs / 10^12 = 2 us per layer; backward 4 us
    // (input and weight gradients), except l1 whose input needs no gradient: 2 us. A boundary
    // moves 1000 fp32 = 4000 B: 1 us + 4000 / 10^9 = 5 us, charged to the receiver (forward: the
    // next stage; backward: the previous one).
    // Stage 0: F = 2, B = 2 + 5; stages 1, 2: F = 2 + 5, B = 4 + 5; stage 3: F = 2 + 5, B = 4.
    // sum(F + B) = 9 + 16 + 16 + 11 = 52 us; max F = 7, max B = 9, max (F + B) = 16.
    // GPipe (two flow shops): 52 + 7 x (7 + 9) = 164 us; bubble 164 - 8 x 16 = 36 us.
    // 1F1B, walked by hand (orders s0: F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7, s1 with 2
    // warm-up forwards, s2 with 1, s3 alternating): stage 3's last backward ends at 134 (F7 at
    // 123-130, B7 130-134), stage 2's at 143, stage 1's at 152 and stage 0's B7 runs 152-159:
    // 159 us, 5 us less than the bound 52 + 7 x 16 (the slowest stages are the inner ones, so
    // the steady state is not paced by one stage alone); bubble 159 - 128 = 31 us.
    // Memory (stage 0, the largest): weights 4 MB, gradients 4 MB, momentum 4 MB; activations
    // per micro-batch 4000 B (l1's output) + 4000 B (the input) per micro-batch in flight:
    // GPipe 8 in flight, 1F1B min(8, 4 - 0) = 4; buffers: no collective, but the backward working
    // set of one layer, its output and input gradients, 2 x 4000 B (as score() counts it).
    for (Schedule schedule : {Schedule::gpipe, Schedule::one_f_one_b}) {
        spec.schedule = schedule;
        PipelineScore s = score_pipeline(model, spec, ones);
        INFO(to_string(schedule));
        REQUIRE(s.plan.cost.feasible);
        const double makespan = schedule == Schedule::gpipe ? 164e-6 : 159e-6;
        CHECK(s.plan.cost.iteration_s == Approx(makespan).epsilon(1e-12));
        CHECK(s.pipeline_s == Approx(makespan).epsilon(1e-12));
        CHECK(s.plan.cost.bubble_s == Approx(makespan - 128e-6).epsilon(1e-9));
        CHECK(s.plan.cost.sync_total_s == 0);  // one replica, one process per stage
        double in_flight = schedule == Schedule::gpipe ? 8 : 4;
        CHECK(s.plan.cost.memory_bytes == Approx(12e6 + in_flight * 8000 + 8000).epsilon(1e-12));
        REQUIRE(s.stages.size() == 4);
        CHECK(s.stages[1].forward_s == Approx(7e-6).epsilon(1e-12));
        CHECK(s.stages[1].backward_s == Approx(9e-6).epsilon(1e-12));
        // 1F1B's stage 3 holds one micro-batch: 12 MB + 4000 B of l4's output + the 4000 B it
        // received from stage 2 (its input, kept for the backward pass like stage 0's), plus the
        // 8000 B working set; GPipe holds 8 micro-batches of both. (Before the one memory model the
        // received input was left out: 12e6 + 4000 + 8000 and 12e6 + 8 x 4000 + 8000.)
        if (schedule == Schedule::one_f_one_b)
            CHECK(s.stages[3].memory_bytes == Approx(12e6 + (4000 + 4000) + 8000).epsilon(1e-12));
        else
            CHECK(s.stages[3].memory_bytes == Approx(12e6 + 8 * (4000 + 4000) + 8000).epsilon(1e-12));
    }
    // Recomputation: every backward also redoes the stage's forward (2 us): stages 1, 2: F + B = 18,
    // stage 0: 2 + 7 + 2 = 11, stage 3: 7 + 4 + 2 = 13; sum 60; GPipe: 60 + 7 x (7 + 11) = 186 us.
    // Stage 0 keeps only its input per micro-batch (8 x 4000 B) plus one micro-batch's
    // activations (4000 B).
    spec.schedule = Schedule::gpipe;
    spec.recompute = Recompute::full;
    PipelineScore r = score_pipeline(model, spec, ones);
    CHECK(r.plan.cost.iteration_s == Approx(186e-6).epsilon(1e-12));
    CHECK(r.stages[0].memory_bytes == Approx(12e6 + 8 * 4000 + 4000 + 8000).epsilon(1e-12));
}

TEST_CASE("a boundary pays the link's point-to-point message cost, not its collective fit", "[pipeline]") {
    // The 4 x 8 GPipe case above with the link's collective figures unchanged (1 GB/s, 1 us) and a
    // ping-pong fit of 4 GB/s and 0.5 us for one message: a boundary of 4000 B costs
    // 0.5 + 4000 / 4e9 = 1.5 us instead of 5 us. Stage 0: F = 2, B = 2 + 1.5; stages 1, 2:
    // F = 2 + 1.5, B = 4 + 1.5; stage 3: F = 2 + 1.5, B = 4. sum(F + B) = 5.5 + 9 + 9 + 7.5 = 31 us;
    // max F = 3.5, max B = 5.5: GPipe 31 + 7 x (3.5 + 5.5) = 94 us, its received transfers on the
    // slowest stage (stage 1: 8 x (1.5 + 1.5)) 24 us.
    networks::Network net = chain4();
    clusters::Cluster cluster = hand_cluster(1e9, 1e-6);
    cluster.inter_node.message_bandwidth_Bps = 4e9;
    cluster.inter_node.message_latency_s = 0.5e-6;
    CostModel model(net, cluster, options(4, 8));
    PipelineSpec spec;
    spec.stages = 4;
    spec.micro_batches = 8;
    spec.stage_first = {1, 2, 3, 4};
    spec.schedule = Schedule::gpipe;
    std::vector<Layout> ones(net.layers.size());
    PipelineScore s = score_pipeline(model, spec, ones);
    REQUIRE(s.plan.cost.feasible);
    CHECK(s.plan.cost.iteration_s == Approx(94e-6).epsilon(1e-12));
    CHECK(s.stages[1].forward_s == Approx(3.5e-6).epsilon(1e-12));
    CHECK(s.stages[1].backward_s == Approx(5.5e-6).epsilon(1e-12));
    CHECK(s.plan.cost.comm(CommKind::point_to_point) == Approx(24e-6).epsilon(1e-12));
}

// The schedule as an explicit graph, solved by Kahn's topological order and longest paths: one
// node per (stage, position in its order); edges from the previous position on the stage and from
// the operation the input comes from. Independent of last_backward_ends' worklist and closed form.
std::vector<double> longest_path_ends(const std::vector<double>& F, const std::vector<double>& B, Schedule schedule,
                                      int M, const std::vector<double>& last_extra) {
    const int S = static_cast<int>(F.size());
    std::vector<std::vector<PipelineOp>> order(S);
    for (int s = 0; s < S; ++s) order[s] = pipeline_order(schedule, S, s, M);
    const int per_stage = 2 * M;
    auto id = [&](int s, int k) { return s * per_stage + k; };
    std::vector<std::vector<int>> position(S, std::vector<int>(2 * M));  // [s][forward ? m : M + m] -> k
    for (int s = 0; s < S; ++s)
        for (int k = 0; k < per_stage; ++k) position[s][order[s][k].forward ? order[s][k].micro : M + order[s][k].micro] = k;
    std::vector<std::vector<int>> successors(S * per_stage);
    std::vector<int> indegree(S * per_stage, 0);
    auto edge = [&](int from, int to) { successors[from].push_back(to), ++indegree[to]; };
    for (int s = 0; s < S; ++s)
        for (int k = 0; k < per_stage; ++k) {
            if (k > 0) edge(id(s, k - 1), id(s, k));
            const PipelineOp op = order[s][k];
            if (op.forward && s > 0) edge(id(s - 1, position[s - 1][op.micro]), id(s, k));
            if (!op.forward && s + 1 < S) edge(id(s + 1, position[s + 1][M + op.micro]), id(s, k));
            if (!op.forward && s + 1 == S) edge(id(s, position[s][op.micro]), id(s, k));
        }
    std::vector<double> start(S * per_stage, 0.0), end(S * per_stage, 0.0);
    std::vector<int> ready;
    for (int v = 0; v < S * per_stage; ++v)
        if (indegree[v] == 0) ready.push_back(v);
    int done = 0;
    while (!ready.empty()) {
        int v = ready.back();
        ready.pop_back();
        ++done;
        const PipelineOp op = order[v / per_stage][v % per_stage];
        end[v] = start[v] + (op.forward ? F[v / per_stage] : B[v / per_stage]) +
                 (!op.forward && op.micro == M - 1 ? last_extra[v / per_stage] : 0.0);
        for (int w : successors[v]) {
            start[w] = std::max(start[w], end[v]);
            if (--indegree[w] == 0) ready.push_back(w);
        }
    }
    REQUIRE(done == S * per_stage);  // no cycle: the orders are deadlock-free
    std::vector<double> ends(S);
    for (int s = 0; s < S; ++s) ends[s] = end[id(s, per_stage - 1)];
    return ends;
}

TEST_CASE("last_backward_ends equals the longest paths of the schedule graph", "[pipeline]") {
    std::mt19937 rng(20261123);
    std::uniform_real_distribution<double> seconds(1e-6, 20e-6);
    for (int trial = 0; trial < 300; ++trial) {
        const int S = 1 + static_cast<int>(rng() % 6), M = 1 + static_cast<int>(rng() % 12);
        std::vector<double> F(S), B(S), none(S, 0.0), extra(S);
        for (int s = 0; s < S; ++s) F[s] = seconds(rng), B[s] = seconds(rng), extra[s] = seconds(rng) / 4;
        for (Schedule schedule : {Schedule::gpipe, Schedule::one_f_one_b}) {
            INFO("trial " << trial << ", S = " << S << ", M = " << M << ", " << to_string(schedule));
            const std::vector<double> got = last_backward_ends(F, B, schedule, M);
            const std::vector<double> want = longest_path_ends(F, B, schedule, M, none);
            // The last micro-batch's backward lengthened per stage (a late gradient).
            const std::vector<double> got_late = last_backward_ends(F, B, schedule, M, extra);
            const std::vector<double> want_late = longest_path_ends(F, B, schedule, M, extra);
            for (int s = 0; s < S; ++s) CHECK(got_late[s] == Approx(want_late[s]).epsilon(1e-12));
            REQUIRE(got.size() == want.size());
            for (int s = 0; s < S; ++s) CHECK(got[s] == Approx(want[s]).epsilon(1e-12));
            // Stage 0's last backward is the last operation of all.
            CHECK(got[0] == Approx(*std::max_element(want.begin(), want.end())).epsilon(1e-12));
        }
    }
}

TEST_CASE("the list schedule of a contiguous placement reproduces GPipe's formula", "[pipeline][graph]") {
    // With free transfers the four stages are uniform apart from l1's cheaper backward, and the
    // list schedule (GPipe order) and the closed form must agree: here 4 x 2 + 2 + 3 x 4 = 22 us
    // plus 7 x (2 + 4) = 42 us: 64 us.
    networks::Network net = chain4();
    clusters::Cluster cluster = hand_cluster(1e30, 0.0);
    CostModel model(net, cluster, options(4, 8));
    PipelineSpec spec;
    spec.stages = 4;
    spec.micro_batches = 8;
    spec.stage_first = {1, 2, 3, 4};
    std::vector<Layout> ones(net.layers.size());
    PipelineScore closed = score_pipeline(model, spec, ones);
    CHECK(closed.plan.cost.iteration_s == Approx(64e-6).epsilon(1e-9));
    spec.device_of = {0, 0, 1, 2, 3};
    spec.stage_first.clear();
    PipelineScore listed = score_pipeline(model, spec, ones);
    REQUIRE(listed.plan.cost.feasible);
    CHECK(listed.plan.cost.iteration_s == Approx(64e-6).epsilon(1e-9));
}

TEST_CASE("a one-stage, one-replica pipeline is exactly the grid plan", "[pipeline]") {
    struct Case {
        const char* net;
        const char* cluster;
        int procs, batch, pr, pc;
        Strategy strategy;
    };
    for (const Case& c : {Case{"vgg16", "cori-knl", 64, 256, 4, 16, Strategy::grid_model},
                          Case{"alexnet", "dgx-a100", 16, 128, 8, 2, Strategy::grid_domain},
                          Case{"resnet50", "dgx-a100", 32, 64, 2, 16, Strategy::grid_model}}) {
        networks::Network net = builtin(c.net);
        clusters::Cluster model_cluster = preset(c.cluster);
        CostModel model(net, model_cluster, options(c.procs, c.batch, net.dtype));
        std::vector<Layout> layouts = uniform_layouts(model, c.strategy, {c.pr, c.pc});
        PipelineSpec spec;
        spec.tensor = c.procs;
        spec.stage_first = {1};
        PipelineScore s = score_pipeline(model, spec, layouts);
        ScoredPlan grid = model.score(layouts);
        INFO(c.net << " " << to_string(c.strategy));
        test::check_equal(s.plan.cost, grid.cost);
        CHECK(s.plan.calls.size() == grid.calls.size());
    }
    // Megatron's tensor layouts on GPT-2 (12 heads: T = 4).
    {
        networks::Network net = builtin("gpt2");
        clusters::Cluster model_cluster = preset("dgx-a100");
        CostModel model(net, model_cluster, options(4, 16, net.dtype));
        std::vector<Layout> layouts = tensor_layouts(model, 4);
        REQUIRE(!layouts.empty());
        PipelineSpec spec;
        spec.tensor = 4;
        spec.stage_first = {1};
        test::check_equal(score_pipeline(model, spec, layouts).plan.cost, model.score(layouts).cost);
    }
    // And the per-layer DP's plan on a branchy network.
    networks::Network net = builtin("resnet50");
    clusters::Cluster model_cluster = preset("dgx-a100");
    CostModel model(net, model_cluster, options(16, 64));
    std::vector<Layout> layouts = dynamic_programme(model);
    PipelineSpec spec;
    spec.tensor = 16;
    spec.stage_first = {1};
    test::check_equal(score_pipeline(model, spec, layouts).plan.cost, model.score(layouts).cost);
}

TEST_CASE("ZeRO-1 divides the optimizer state by the replicas", "[pipeline]") {
    networks::Network net = chain4();
    clusters::Cluster cluster = hand_cluster();
    CostModel model(net, cluster, options(8, 16));
    PipelineSpec spec;
    spec.stages = 2;
    spec.replicas = 4;
    spec.micro_batches = 2;
    spec.stage_first = {1, 3};
    std::vector<Layout> ones(net.layers.size());
    PipelineScore plain = score_pipeline(model, spec, ones);
    spec.zero = true;
    PipelineScore zero = score_pipeline(model, spec, ones);
    // Two layers per stage: 2 x 10^6 parameters, SGD momentum in fp32: 8 MB, over 4 replicas 2 MB.
    CHECK(plain.plan.cost.optimizer_bytes == Approx(8e6).epsilon(1e-12));
    CHECK(zero.plan.cost.optimizer_bytes == Approx(2e6).epsilon(1e-12));
    // Ring reduce-scatter + ring all-gather move what a ring all-reduce moves: same sync time.
    CHECK(zero.plan.cost.sync_total_s == Approx(plain.plan.cost.sync_total_s).epsilon(1e-9));
}

TEST_CASE("explicit pipeline requests that do not fit are input errors", "[pipeline]") {
    networks::Network net = chain4();
    clusters::Cluster cluster = hand_cluster();
    CostModel model(net, cluster, options(8, 16));
    auto request = [&](int t, int s, int r, int m) {
        PipelineSpec spec;
        spec.tensor = t;
        spec.stages = s;
        spec.replicas = r;
        spec.micro_batches = m;
        return plan_pipeline(model, spec);
    };
    CHECK_THROWS_WITH(request(1, 3, 1, 1), Catch::Contains("3 stages of 1 processes do not divide P = 8"));
    CHECK_THROWS_WITH(request(1, 8, 1, 1), Catch::Contains("8 stages but chain4 has only 4 layers"));
    CHECK_THROWS_WITH(request(1, 2, 2, 1), Catch::Contains("is not P = 8"));
    CHECK_THROWS_WITH(request(1, 2, 4, 3), Catch::Contains("3 micro-batches do not divide the per-replica batch 4"));
    CHECK_THROWS_AS(request(1, 2, 4, 3), InputError);
    PipelineCandidate ok = request(1, 4, 2, 8);
    CHECK(ok.spec.stage_first == std::vector<int>{1, 2, 3, 4});
    CHECK(ok.score.plan.cost.feasible);
}

TEST_CASE("a pipeline plan document round-trips to the same numbers", "[pipeline]") {
    networks::Network net = builtin("gpt2");
    clusters::Cluster cluster = preset("dgx-a100");
    CostModel model(net, cluster, options(32, 64, net.dtype));
    std::vector<PipelineCandidate> found = search_pipelines(model);
    REQUIRE(!found.empty());
    for (const PipelineCandidate& pc : {found.front(), found.back()}) {
        Candidate candidate;
        candidate.strategy = Strategy::pipeline;
        candidate.label = pipeline_label(pc.spec, pc.score);
        candidate.plan = pc.score.plan;
        candidate.pipeline = pc.spec;
        Plan plan = make_plan(model, candidate, {"gpt2", "dgx-a100"});
        Json json = Json::parse(plan_to_json(plan, model).dump());
        PlanRequest request = parse_plan_request(json, "plan.json");
        std::vector<Layout> layouts = layouts_for(request, model, "plan.json");
        PipelineSpec spec = pipeline_for(request, model, "plan.json");
        CHECK(spec == pc.spec);
        test::check_equal(score_pipeline(model, spec, layouts).plan.cost, pc.score.plan.cost);
    }
    // A bad stage range names its pointer.
    Candidate first;
    first.strategy = Strategy::pipeline;
    first.plan = found.front().score.plan;
    first.pipeline = found.front().spec;
    Plan plan = make_plan(model, first, {"gpt2", "dgx-a100"});
    Json json = plan_to_json(plan, model);
    if (json["pipeline"].contains("stage_ranges") && json["pipeline"]["stage_ranges"].size() > 1) {
        json["pipeline"]["stage_ranges"][1]["first"] = "wte";
        PlanRequest request = parse_plan_request(json, "plan.json");
        try {
            pipeline_for(request, model, "plan.json");
            FAIL("expected an InputError");
        } catch (const InputError& e) {
            CHECK(e.location() == "/pipeline/stage_ranges/1/first");
        }
    }
    json = plan_to_json(plan, model);
    json["pipeline"]["micro_batches"] = 7;
    PlanRequest request = parse_plan_request(json, "plan.json");
    CHECK_THROWS_WITH(pipeline_for(request, model, "plan.json"), Catch::Contains("micro-batches do not divide"));
}

TEST_CASE("GPT-3 175B on 1024 A100s gets a feasible 3-D plan", "[pipeline][gpt3]") {
    networks::Network net = builtin("gpt3-175b");
    clusters::Cluster model_cluster = preset("dgx-a100");
    CostModel model(net, model_cluster, options(1024, 1536, net.dtype));
    PipelineSearchStats stats;
    std::vector<PipelineCandidate> found = search_pipelines(model, &stats);
    REQUIRE(!found.empty());
    const PipelineCandidate& best = found.front();
    REQUIRE(best.score.plan.cost.feasible);
    CHECK(best.score.plan.cost.memory_bytes <= 80.0 * (1 << 30));
    CHECK(std::int64_t{best.spec.tensor} * best.spec.stages * best.spec.replicas == 1024);
    CHECK(best.spec.tensor > 1);  // 175B parameters need model parallelism
    // 175e9 parameters at 2 bytes do not fit one 80 GiB device: at least 5 processes share them.
    CHECK(best.spec.tensor * best.spec.stages >= 5);
    // Achieved model FLOP/s per GPU below the A100's 312 TFLOP/s x 0.6 achievable.
    CHECK(best.score.flops_per_device() < 312e12 * 0.6);
    CHECK(best.score.flops_per_device() > 0);
    CHECK(stats.configurations > 1000);
}

TEST_CASE("pipeline and graph-partition plans are never slower with more bandwidth", "[pipeline][graph]") {
    for (const char* name : {"alexnet", "resnet50", "gpt2"}) {
        networks::Network net = builtin(name);
        clusters::Cluster cluster = preset("dgx-a100");
        clusters::Cluster faster = cluster;
        faster.inter_node.bandwidth_Bps *= 2;
        faster.intra_node.bandwidth_Bps *= 2;
        PlannerOptions o = options(32, 128, net.dtype);
        CostModel model(net, cluster, o);
        CostModel fast_model(net, faster, o);
        SearchResult result = search(model);
        int checked = 0;
        for (const Candidate& c : result.ranked) {
            if (!c.pipeline.active()) continue;
            INFO(name << " " << to_string(c.strategy) << " " << c.label);
            PipelineScore again = score_pipeline(model, c.pipeline, c.plan.anchor_layouts);
            test::check_equal(again.plan.cost, c.plan.cost);  // the candidate is its spec's score
            CHECK(score_pipeline(fast_model, c.pipeline, c.plan.anchor_layouts).plan.cost.iteration_s <=
                  c.plan.cost.iteration_s * (1 + 1e-12));
            ++checked;
        }
        CHECK(checked > 0);
    }
}
