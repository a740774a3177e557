// Pipeline replay tests (label sim): a tiny pipeline of four equal linear layers on a star whose
// simulated iteration equals the schedule worked out by hand (GPipe and 1F1B, 2 and 4 stages), a
// brute-force evaluation of the schedule's dependency graph where the closed formulas are only
// bounds, the order of a stage's slices in the timeline, the planner's pipeline_program() against
// score_pipeline(), and the agreement table of simulator/README.md (vgg16 and resnet50 at P = 64).
#include "planner/pipeline.hpp"
#include "planner/pipeline_program.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "simulator/simulator.hpp"
#include "sim_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::simulator::test;
using planner::Schedule;
using simulator::PipelineOp;

namespace {

struct TinyPipe {
    networks::Network network = networks::load_network_file(kData + "four_linear.json");
    clusters::Cluster cluster;
    planner::PlannerOptions options;
    explicit TinyPipe(int procs, int batch = 64) : cluster(fast_cluster(procs)) {
        options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
        options.procs = procs;
        options.batch = batch;
    }
};

planner::PipelineSpec spec_of(int stages, int micro, int replicas, Schedule schedule, std::vector<int> first) {
    planner::PipelineSpec spec;
    spec.tensor = 1;
    spec.stages = stages;
    spec.micro_batches = micro;
    spec.replicas = replicas;
    spec.schedule = schedule;
    spec.stage_first = std::move(first);
    return spec;
}

double simulate_tiny(const TinyPipe& p, const planner::PipelineSpec& spec, bool timeline = false,
                     simulator::SimResult* out = nullptr) {
    planner::CostModel model(p.network, p.cluster, p.options);
    simulator::SimOptions options;
    options.platform.topology = "star";
    options.timeline = timeline;
    simulator::SimResult r = simulator::simulate_pipeline(model, spec, planner::tensor_layouts(model, 1), options);
    if (out) *out = r;
    return r.simulated.iteration_s;
}

// Brute force over the schedule's dependency graph: stage s runs its operations in `orders[s]`,
// each starting when the stage is free and its input is there (forward m after stage s - 1's
// forward m, backward m after stage s + 1's backward m), taking F[s] or B[s] seconds (the
// receive is the receiver's: it starts when both sides are ready). Returns the last end.
double dag_makespan(const std::vector<std::vector<PipelineOp>>& orders, const std::vector<double>& F,
                    const std::vector<double>& B, int M) {
    const int S = static_cast<int>(orders.size());
    const double unset = -1;
    std::vector<std::vector<double>> fend(S, std::vector<double>(M, unset)), bend = fend;
    std::vector<std::size_t> next(S, 0);
    std::vector<double> free(S, 0.0);
    for (bool progress = true; progress;) {
        progress = false;
        for (int s = 0; s < S; ++s) {
            while (next[s] < orders[s].size()) {
                const PipelineOp& op = orders[s][next[s]];
                double ready = 0;
                if (op.forward && s > 0) ready = fend[s - 1][op.micro];
                if (!op.forward && s + 1 < S) ready = bend[s + 1][op.micro];
                if (ready == unset) break;
                double end = std::max(free[s], ready) + (op.forward ? F[s] : B[s]);
                (op.forward ? fend : bend)[s][op.micro] = end;
                free[s] = end;
                ++next[s];
                progress = true;
            }
        }
    }
    double last = 0;
    for (int s = 0; s < S; ++s) {
        if (next[s] != orders[s].size()) return std::numeric_limits<double>::quiet_NaN();  // deadlock
        last = std::max(last, free[s]);
    }
    return last;
}

}  // namespace

TEST_CASE("pipeline_order gives GPipe and 1F1B orders as written out by hand", "[sim][pipeline]") {
    auto text = [](const std::vector<PipelineOp>& ops) {
        std::string s;
        for (const auto& op : ops) s.append(op.forward ? "F" : "B").append(std::to_string(op.micro)).append(" ");
        return s;
    };
    CHECK(text(simulator::pipeline_order(Schedule::gpipe, 4, 1, 3)) == "F0 F1 F2 B0 B1 B2 ");
    // 1F1B, S = 4, M = 4: stage s warms up with S - s - 1 forwards.
    CHECK(text(simulator::pipeline_order(Schedule::one_f_one_b, 4, 0, 4)) == "F0 F1 F2 F3 B0 B1 B2 B3 ");
    CHECK(text(simulator::pipeline_order(Schedule::one_f_one_b, 4, 1, 4)) == "F0 F1 F2 B0 F3 B1 B2 B3 ");
    CHECK(text(simulator::pipeline_order(Schedule::one_f_one_b, 4, 2, 4)) == "F0 F1 B0 F2 B1 F3 B2 B3 ");
    CHECK(text(simulator::pipeline_order(Schedule::one_f_one_b, 4, 3, 4)) == "F0 B0 F1 B1 F2 B2 F3 B3 ");
    // Fewer micro-batches than the warm-up: all forwards, then all backwards.
    CHECK(text(simulator::pipeline_order(Schedule::one_f_one_b, 4, 0, 2)) == "F0 F1 B0 B1 ");
}

TEST_CASE("a tiny 2-stage pipeline's simulated iteration equals the hand-computed schedule", "[sim][pipeline]") {
    TinyPipe p(2);
    planner::CostModel model(p.network, p.cluster, p.options);
    // The inputs of the hand calculation are what the model charges.
    planner::PipelineSpec gpipe = spec_of(2, 4, 1, Schedule::gpipe, {1, 3});
    planner::PipelineProgram program = planner::pipeline_program(model, gpipe, planner::tensor_layouts(model, 1));
    REQUIRE(program.micro_batch == 16);
    CHECK(program.micro.layers[1].fwd_compute_s == Approx(kF).epsilon(1e-12));
    CHECK(program.micro.layers[4].bwd_compute_s == Approx(kB).epsilon(1e-12));
    CHECK(program.micro.layers[1].bwd_compute_s == Approx(kF).epsilon(1e-12));
    CHECK(program.stages[1].recv_bytes == 16384);
    CHECK(program.stages[1].recv_s == Approx(kR).epsilon(1e-12));
    for (const auto& calls : program.sync) CHECK(calls.empty());  // R = 1, T = 1: nothing to synchronise

    // Stage 0 = l1, l2; stage 1 = l3, l4. Per micro-batch stage 0 takes F0 = 2f, B0 = f + 2f + r
    // (it receives the gradient), stage 1 F1 = 2f + r (it receives the activations), B1 = 4f.
    // GPipe, M = 4: the forwards are a flow shop of identical jobs, F0 + F1 + 3 max F =
    // 2f + (2f + r) + 3 (2f + r) = 10 f + 4 r; the backwards (3f + r) + 4f + 3 max(3f + r, 4f) =
    // 16 f + 4 r (3f + r = 8.93 us > 4f = 8.39 us). Total 26 f + 8 r = 54.525952 + 21.1072 us.
    REQUIRE(3 * kF + kR > 4 * kF);
    const double gpipe_hand = 26 * kF + 8 * kR;
    CHECK(gpipe_hand == Approx(75.633152e-6).epsilon(1e-9));
    CHECK(simulate_tiny(p, gpipe) == Approx(gpipe_hand).epsilon(1e-6));

    // 1F1B: stage 1 is the slower (F1 + B1 = 6f + r against 5f + r), so it alternates F1 B1 back
    // to back once its first input is there (at F0), and stage 0's last backward follows its last:
    // F0 + 4 (F1 + B1) + B0 = 2f + 4 (6f + r) + 3f + r = 29 f + 5 r = 60.817408 + 13.192 us.
    planner::PipelineSpec f1b = spec_of(2, 4, 1, Schedule::one_f_one_b, {1, 3});
    const double f1b_hand = 29 * kF + 5 * kR;
    CHECK(f1b_hand == Approx(74.009408e-6).epsilon(1e-9));
    CHECK(simulate_tiny(p, f1b) == Approx(f1b_hand).epsilon(1e-6));

    // The analytical formulas (planner/README.md) give the same: GPipe's always, 1F1B's because
    // its slowest stage is the last.
    CHECK(planner::score_pipeline(model, gpipe, planner::tensor_layouts(model, 1)).plan.cost.iteration_s ==
          Approx(gpipe_hand).epsilon(1e-9));
    CHECK(planner::score_pipeline(model, f1b, planner::tensor_layouts(model, 1)).plan.cost.iteration_s ==
          Approx(f1b_hand).epsilon(1e-9));
}

TEST_CASE("4-stage and unbalanced pipelines replay their dependency graph exactly", "[sim][pipeline]") {
    SECTION("4 stages of one layer, M = 4") {
        TinyPipe p(4);
        planner::CostModel model(p.network, p.cluster, p.options);
        // F = (f, f + r, f + r, f + r), B = (f + r, 2f + r, 2f + r, 2f). GPipe: sum F + 3 max F +
        // sum B + 3 max B = (4f + 3r) + 3 (f + r) + (7f + 3r) + 3 (2f + r) = 20 f + 12 r.
        const double gpipe_hand = 20 * kF + 12 * kR;
        CHECK(gpipe_hand == Approx(73.60384e-6).epsilon(1e-9));
        planner::PipelineSpec gpipe = spec_of(4, 4, 1, Schedule::gpipe, {1, 2, 3, 4});
        CHECK(simulate_tiny(p, gpipe) == Approx(gpipe_hand).epsilon(1e-6));

        // 1F1B: the inner stages (3f + 2r) are slower than the outer ones (2f + r, 3f + r); the
        // dependency graph, evaluated by brute force, is what the replay must reproduce.
        std::vector<double> F{kF, kF + kR, kF + kR, kF + kR}, B{kF + kR, kB + kR, kB + kR, kB};
        std::vector<std::vector<PipelineOp>> orders;
        for (int s = 0; s < 4; ++s) orders.push_back(simulator::pipeline_order(Schedule::one_f_one_b, 4, s, 4));
        const double dag = dag_makespan(orders, F, B, 4);
        planner::PipelineSpec f1b = spec_of(4, 4, 1, Schedule::one_f_one_b, {1, 2, 3, 4});
        CHECK(simulate_tiny(p, f1b) == Approx(dag).epsilon(1e-6));
        // The closed formula sum fb + (M - 1) max fb = (11 f + 6 r) + 3 (3f + 2r) bounds it from above.
        const double formula = 20 * kF + 12 * kR;
        CHECK(dag <= formula * (1 + 1e-12));
    }
    SECTION("2 unbalanced stages: l1 | l2 l3 l4") {
        TinyPipe p(2);
        planner::CostModel model(p.network, p.cluster, p.options);
        // F = (f, 3f + r), B = (f + r, 6f). GPipe stays a flow shop: (f + 3f + r) + 3 (3f + r) +
        // (7f + r) + 3 (6f) = 38 f + 5 r.
        const double gpipe_hand = 38 * kF + 5 * kR;
        planner::PipelineSpec gpipe = spec_of(2, 4, 1, Schedule::gpipe, {1, 2});
        CHECK(simulate_tiny(p, gpipe) == Approx(gpipe_hand).epsilon(1e-6));
        planner::PipelineSpec f1b = spec_of(2, 4, 1, Schedule::one_f_one_b, {1, 2});
        std::vector<std::vector<PipelineOp>> orders{simulator::pipeline_order(Schedule::one_f_one_b, 2, 0, 4),
                                                    simulator::pipeline_order(Schedule::one_f_one_b, 2, 1, 4)};
        const double dag = dag_makespan(orders, {kF, 3 * kF + kR}, {kF + kR, 6 * kF}, 4);
        CHECK(simulate_tiny(p, f1b) == Approx(dag).epsilon(1e-6));
        // The last stage is the slowest, so it runs back to back: F0 + 4 (F1 + B1) + B0 = 38 f + 5 r.
        CHECK(dag == Approx(38 * kF + 5 * kR).epsilon(1e-9));
    }
}

TEST_CASE("GPipe: a stage's last backward ends when the flow shop says, not when the sync tail assumes",
          "[sim][pipeline]") {
    // l1 l2 l3 | l4, M = 4, R = 1: F = (3f, f + r), B = (f + 2f + 2f + r, 2f) = (5f + r, 2f). The
    // forwards end at T_F = 4f + r + 3 x 3f = 13f + r. Stage 1 then runs its 4 backwards back to back
    // (nothing waits for it): its last ends at T_F + 4 x 2f = 21f + r. The exact rule: T_F +
    // sum_{j>=s} B_j + (M - 1) max_{j>=s} B_j. (The model once took pipeline_s - B_0 = 30f + 4r
    // for it, starting every replica sync of stage 1 9f + 3r = 26.79 us late; it now uses
    // planner::last_backward_ends, checked here against the replay.)
    TinyPipe p(2);
    simulator::SimResult r;
    const double iteration = simulate_tiny(p, spec_of(2, 4, 1, Schedule::gpipe, {1, 4}), true, &r);
    double stage1_end = 0;
    for (const auto& s : r.slices)
        if (s.rank == 1 && s.name == "l4 backward mb3") stage1_end = s.start_s + s.duration_s;
    CHECK(stage1_end == Approx(21 * kF + kR).epsilon(1e-6));
    // The iteration (stage 0's last backward) is the schedule formula: 13f + r + (7f + r) + 3 (5f + r).
    CHECK(iteration == Approx(35 * kF + 5 * kR).epsilon(1e-6));
    planner::CostModel model(p.network, p.cluster, p.options);
    planner::PipelineScore score =
        planner::score_pipeline(model, spec_of(2, 4, 1, Schedule::gpipe, {1, 4}), planner::tensor_layouts(model, 1));
    REQUIRE(score.stages.size() == 2);
    std::vector<double> F{score.stages[0].forward_s, score.stages[1].forward_s};
    std::vector<double> B{score.stages[0].backward_s, score.stages[1].backward_s};
    const std::vector<double> ends = planner::last_backward_ends(F, B, Schedule::gpipe, 4);
    CHECK(ends[1] == Approx(stage1_end).epsilon(1e-6));
    CHECK(ends[0] == Approx(iteration).epsilon(1e-6));
}

TEST_CASE("a 2-stage pipeline's timeline has GPipe's and 1F1B's slices in order", "[sim][pipeline]") {
    TinyPipe p(2, 48);  // M = 3 micro-batches of 16
    auto main_track = [&](Schedule schedule, int rank) {
        simulator::SimResult r;
        simulate_tiny(p, spec_of(2, 3, 1, schedule, {1, 3}), true, &r);
        std::vector<std::string> names;
        double clock = 0;
        for (const auto& s : r.slices) {
            if (s.rank != rank || s.track != 0 || s.cat == "idle") continue;
            CHECK(s.start_s >= clock - 1e-15);  // in time order, not overlapping
            clock = s.start_s + s.duration_s;
            names.push_back(s.name);
        }
        return names;
    };
    auto stage0 = [](std::vector<std::string> order) {  // "F0" -> the slices of stage 0 (l1, l2)
        std::vector<std::string> out;
        for (const auto& op : order) {
            std::string mb = " mb" + op.substr(1);
            if (op[0] == 'F') {
                out.push_back("l1 forward" + mb);
                out.push_back("l2 forward" + mb);
            } else {
                out.push_back("receive gradients" + mb + " from rank 1");
                out.push_back("l2 backward" + mb);
                out.push_back("l1 backward" + mb);
            }
        }
        return out;
    };
    auto stage1 = [](std::vector<std::string> order) {
        std::vector<std::string> out;
        for (const auto& op : order) {
            std::string mb = " mb" + op.substr(1);
            if (op[0] == 'F') {
                out.push_back("receive activations" + mb + " from rank 0");
                out.push_back("l3 forward" + mb);
                out.push_back("l4 forward" + mb);
            } else {
                out.push_back("l4 backward" + mb);
                out.push_back("l3 backward" + mb);
            }
        }
        return out;
    };
    CHECK(main_track(Schedule::gpipe, 0) == stage0({"F0", "F1", "F2", "B0", "B1", "B2"}));
    CHECK(main_track(Schedule::gpipe, 1) == stage1({"F0", "F1", "F2", "B0", "B1", "B2"}));
    CHECK(main_track(Schedule::one_f_one_b, 0) == stage0({"F0", "F1", "B0", "F2", "B1", "B2"}));
    CHECK(main_track(Schedule::one_f_one_b, 1) == stage1({"F0", "B0", "F1", "B1", "F2", "B2"}));
}

TEST_CASE("recomputation replays the stage's forward again before each backward", "[sim][pipeline]") {
    TinyPipe p(2);
    planner::PipelineSpec spec = spec_of(2, 4, 1, Schedule::gpipe, {1, 3});
    spec.recompute = planner::Recompute::full;
    // Each backward grows by the stage's forward compute 2f: B0 = 5f + r, B1 = 6f. GPipe: 10 f + 4 r
    // (forwards, as before) + (5f + r) + 6f + 3 max(5f + r, 6f) = 10 f + 4 r + 26 f + 4 r = 36 f + 8 r.
    REQUIRE(5 * kF + kR > 6 * kF);
    CHECK(simulate_tiny(p, spec) == Approx(36 * kF + 8 * kR).epsilon(1e-6));
}

TEST_CASE("pipeline_program gives the model's own stages, transfers and replica syncs", "[sim][pipeline]") {
    networks::Network network = networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/vgg16.json");
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/cori-knl.json");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 64;
    options.batch = 256;
    planner::CostModel model(network, cluster, options);
    for (bool zero : {false, true}) {
        planner::PipelineSpec spec;
        spec.stages = 4;
        spec.micro_batches = 4;
        spec.replicas = 16;
        spec.zero = zero;
        planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
        planner::PipelineProgram program = planner::pipeline_program(model, pc.spec, pc.layouts);
        REQUIRE(program.stages.size() == 4);
        CHECK(program.micro_batch == 256 / 16 / 4);
        for (int s = 0; s < 4; ++s) {
            const planner::StageCost& st = pc.score.stages[s];
            CHECK(program.stages[s].first == st.first);
            CHECK(program.stages[s].last == st.last);
            CHECK(program.stages[s].recv_s == st.recv_forward_s);
            double sync = 0;
            for (int i = st.first; i <= st.last; ++i)
                for (const planner::CommCall& call : program.sync[i]) {
                    sync += call.seconds;
                    CHECK(call.group.size == 16);  // the 16 replicas (no inner batch group with T = 1)
                    CHECK(call.phase == planner::Phase::sync);
                }
            CHECK(sync == Approx(st.sync_s).epsilon(1e-12));
        }
        // fc6 (25088 x 4096 + 4096 fp32 parameters): one all-reduce, or ZeRO's reduce-scatter then all-gather.
        const int fc6 = network.find("fc6");
        REQUIRE(program.sync[fc6].size() == (zero ? 2u : 1u));
        CHECK(program.sync[fc6][0].bytes == (25088.0 * 4096 + 4096) * 4);
        CHECK(program.sync[fc6][0].collective ==
              (zero ? clusters::Collective::reduce_scatter : clusters::Collective::all_reduce));
        if (zero) CHECK(program.sync[fc6][1].collective == clusters::Collective::all_gather);
    }
}

TEST_CASE("pipeline plans: simulation against the analytical schedule at P = 64 on a star",
          "[sim][pipeline][agreement]") {
    // The table of simulator/README.md ("Pipelines: agreement"). vgg16 and resnet50 (batch 256) on
    // cori-knl, star, CM02, T = 1, S = 2 and 4, M = 4 and 8, R = P / S, both schedules, gradient
    // sync overlapped; and R = 1 (P = S, no replica sync) to isolate the schedule formulas.
    // Asserted: without replicas (nothing to synchronise) both schedules are exact (the model
    // walks the same dependency graph); with replicas every case is within 1.5% (the gradient
    // sends to the previous stage share links with the replica sync, which the model does not
    // charge), and vgg16 with 2 stages within 1%.
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/cori-knl.json");
    std::printf(
        "| network | P | S | M | R | schedule | balance | predicted (ms) | simulated (ms) | difference |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n");
    for (const char* name : {"vgg16", "resnet50"}) {
        networks::Network network =
            networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json");
        for (int S : {2, 4}) {
            for (int P : {S, 64}) {
                planner::PlannerOptions options;
                options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
                options.procs = P;
                options.batch = 256;
                planner::CostModel model(network, cluster, options);
                for (int M : {4, 8}) {
                    for (Schedule schedule : {Schedule::gpipe, Schedule::one_f_one_b}) {
                        planner::PipelineSpec spec;
                        spec.stages = S;
                        spec.micro_batches = M;
                        spec.replicas = P / S;
                        spec.schedule = schedule;
                        planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
                        simulator::SimOptions sim;
                        sim.platform.topology = "star";
                        simulator::SimResult r = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
                        const double predicted = pc.score.plan.cost.iteration_s;
                        const double rel = (r.simulated.iteration_s - predicted) / predicted;
                        std::printf("| %s | %d | %d | %d | %d | %s | %.2f | %.3f | %.3f | %+.3f%% |\n", name, P, S, M,
                                    P / S, planner::to_string(schedule).c_str(), pc.score.balance, 1e3 * predicted,
                                    1e3 * r.simulated.iteration_s, 100 * rel);
                        INFO(name << " P=" << P << " S=" << S << " M=" << M << " " << planner::to_string(schedule));
                        if (P == S) CHECK(std::fabs(rel) < 1e-6);
                        if (P == 64) CHECK(std::fabs(rel) < 0.01);
                        if (P == 64 && S == 2 && std::string(name) == "vgg16") CHECK(std::fabs(rel) < 0.01);
                    }
                }
            }
        }
    }
}

TEST_CASE("tensor groups inside a node do not contend with the replicas' sync through the network card",
          "[sim][pipeline]") {
    // googlenet on dgx-a100, T = 2 (Megatron-style layouts on NVLink) x R = 32 replicas, one stage,
    // overlapped sync: the blocking tensor-group transfers use the intra-node links, the replicas'
    // all-reduce the network, so the replay shows no sharing, and neither may the model (it once
    // charged it: -8.8%).
    networks::Network network =
        networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/googlenet.json");
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/dgx-a100.json");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 64;
    options.batch = network.default_batch;
    planner::CostModel model(network, cluster, options);
    planner::PipelineSpec spec;
    spec.tensor = 2;
    spec.replicas = 32;
    planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
    REQUIRE(pc.score.plan.cost.feasible);
    CHECK(pc.score.plan.cost.sync_contention_s == 0);
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    simulator::SimResult r = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
    const double predicted = pc.score.plan.cost.iteration_s;
    CHECK(std::fabs(r.simulated.iteration_s - predicted) / predicted < 0.01);
}


TEST_CASE("an interleaved pipeline's replay equals the analytical makespan", "[sim][pipeline][interleave]") {
    // Four equal linear layers, S = 2 devices x V = 2 chunks of one layer, M = 4, one replica (no
    // sync), a star (no contention between the point-to-point transfers that the schedule does not
    // already serialize): the replay's iteration is the model's walk of the same schedule graph.
    TinyPipe p(2);
    planner::CostModel model(p.network, p.cluster, p.options);
    planner::PipelineSpec spec = spec_of(2, 4, 1, Schedule::one_f_one_b, {1, 2, 3, 4});
    spec.interleave = 2;
    const planner::PipelineScore score = planner::score_pipeline(model, spec, planner::tensor_layouts(model, 1));
    REQUIRE(score.plan.cost.feasible);
    // The wrap from device 1's chunk 0 to device 0's chunk 1 is a transfer like the others:
    // F = (f, f + r, f + r, f + r), B = (f + r, 2f + r, 2f + r, 2f).
    REQUIRE(score.stages.size() == 4);
    CHECK(score.stages[2].forward_s == Approx(kF + kR).epsilon(1e-9));
    CHECK(score.stages[2].backward_s == Approx(kB + kR).epsilon(1e-9));
    CHECK(simulate_tiny(p, spec) == Approx(score.pipeline_s).epsilon(1e-6));
    // And V = 1 (two stages of two layers) still replays its own makespan.
    planner::PipelineSpec plain = spec_of(2, 4, 1, Schedule::one_f_one_b, {1, 3});
    CHECK(simulate_tiny(p, plain) ==
          Approx(planner::score_pipeline(model, plain, planner::tensor_layouts(model, 1)).pipeline_s).epsilon(1e-6));
}

TEST_CASE("a 3-D pipeline's replay all-gathers the scattered boundary as the model charges it", "[sim][pipeline]") {
    // gpt2 on dgx-a100, T = 2 tensor ranks x S = 2 stages, one replica, M = 4, no sequence
    // parallelism: the cut's activations cross as 1/T slices (Megatron-LM's scatter/gather,
    // Narayanan et al. SC'21 section 4.1) and the receiving stage all-gathers them over its two
    // NVLink ranks, forward and (their gradients) backward; the model's recv_s includes it. On a
    // star (no contention) the replay must agree with the analytical iteration as the other
    // pipeline rows do (1%).
    networks::Network network = builtin_network("gpt2");
    clusters::Cluster cluster = preset_cluster("dgx-a100");
    auto model_of = [&](int procs) {
        planner::PlannerOptions options;
        options.compute = planner::ComputeModel::uniform;
        options.procs = procs;
        options.batch = 8;
        options.dtype = network.dtype;
        return options;
    };
    const planner::PlannerOptions options = model_of(4);
    planner::CostModel model(network, cluster, options);
    planner::PipelineSpec spec;
    spec.tensor = 2;
    spec.stages = 2;
    spec.micro_batches = 4;
    planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
    REQUIRE(pc.score.plan.cost.feasible);
    REQUIRE_FALSE(pc.spec.sequence_parallel);
    const planner::PipelineProgram program = planner::pipeline_program(model, pc.spec, pc.layouts);
    REQUIRE(program.stages.size() == 2);
    REQUIRE(program.stages[1].recv_gather_bytes > 0);
    REQUIRE(program.stages[1].recv_gather.size() == 2);
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    const simulator::SimResult r = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
    const double predicted = pc.score.plan.cost.iteration_s;
    CHECK(std::fabs(r.simulated.iteration_s - predicted) / predicted < 0.01);
    // That bound is loose next to the all-gathers (about 15 us each on NVLink); the boundary's own
    // seconds are not: the model books recv_s (slice + all-gather, both ways) as point-to-point, and
    // so does the replay (without the all-gather it replayed about half of them).
    CHECK(r.simulated.comm(planner::CommKind::point_to_point) ==
          Approx(pc.score.plan.cost.comm(planner::CommKind::point_to_point)).epsilon(1e-6));

    // The messages: the same layers on one stage of the same two tensor ranks (P = 2, same
    // micro-batch 8 / 4 = 2, same layouts) run every layer's collectives and syncs once as well, so
    // the two-stage replay sends exactly the boundary's messages more. Per micro-batch: the slice
    // forward from each of the 2 tensor ranks of stage 0 and its gradient back from each of stage
    // 1's (2 + 2), and an all-gather over 2 ranks after each of the two receives, in which each
    // rank sends one message (ring or recursive doubling: p - 1 = log2 p = 1 step; 2 x 2). So
    // (2 + 2 + 2 + 2) x M = 8 x 4 = 32 messages more (16 before the all-gather was replayed).
    // gpt2's lm_head is tied to wte, here on the other stage: after the syncs, tensor rank t of
    // both stages all-reduces the copy's gradient (PipelineProgram::tied, Megatron's embedding
    // group), a pair in which each rank sends one message (recursive doubling, the cheapest for
    // p = 2): 4 more, once per iteration (on one stage the two layers share one weight: none).
    REQUIRE(program.tied.size() == 1);
    CHECK(program.tied[0].all_reduce.group.size == 2);
    planner::CostModel one_stage_model(network, cluster, model_of(2));
    planner::PipelineSpec one = pc.spec;
    one.stages = 1;
    one.stage_first = {1};
    const simulator::SimResult r1 = simulator::simulate_pipeline(one_stage_model, one, pc.layouts, sim);
    CHECK(r.messages - r1.messages == 32 + 4);
}

TEST_CASE("gradient accumulation: the replay adds each micro-batch's weight gradients as the model charges them",
          "[sim][pipeline]") {
    // four_linear.json in 2 stages, M = 4, 1F1B, PyTorch's in-place adds (GradAccumulation) in fp32:
    // (M - 1) adds of 3 x 4 B per parameter = 36 B over the iteration, 9 B per micro-batch; a layer of
    // 256 x 256 = 65536 parameters then takes 65536 x 9 B / 1e11 B/s = 5.89824 us per micro-batch.
    TinyPipe p(2);
    p.options.compute = planner::ComputeModel::per_operation;
    const planner::PipelineSpec spec = spec_of(2, 4, 1, Schedule::one_f_one_b, {1, 3});
    auto iteration = [&](std::optional<planner::GradAccumulation> how) {
        p.options.grad_accumulation = how;
        planner::CostModel model(p.network, p.cluster, p.options);
        const auto layouts = planner::tensor_layouts(model, 1);
        const planner::PipelineProgram program = planner::pipeline_program(model, spec, layouts);
        for (int i = 1; i <= 4; ++i)
            CHECK(program.accumulate_s[i] ==
                  Approx(how == planner::GradAccumulation::autograd_in_place ? 5.89824e-6 : 0.0).margin(1e-15));
        const double modelled = planner::score_pipeline(model, spec, layouts).plan.cost.iteration_s;
        CHECK(simulate_tiny(p, spec) == Approx(modelled).epsilon(1e-6));
        return modelled;
    };
    const double fused = iteration(planner::GradAccumulation::in_gemm);
    const double in_place = iteration(planner::GradAccumulation::autograd_in_place);
    // Every micro-batch's backward is 2 x 5.89824 us longer on each stage: the iteration grows by at
    // least one stage's 4 backwards' adds and at most both stages' (the schedule overlaps the rest).
    CHECK(in_place - fused >= 4 * 2 * 5.89824e-6 * (1 - 1e-9));
    CHECK(in_place - fused <= 8 * 2 * 5.89824e-6 * (1 + 1e-9));
}
