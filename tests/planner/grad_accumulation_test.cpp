// Gradient accumulation over micro-batches (planner/compute.hpp GradAccumulation) against hand
// calculations: the bytes each software's adds move, their seconds at a stated memory bandwidth, and
// what the stage evaluator adds to a pipeline's iteration.
#include <catch2/catch.hpp>

#include "planner_test_helpers.hpp"

#include "planner/compute.hpp"
#include "networks/network.hpp"
#include "planner/graph_partition.hpp"
#include "planner/pipeline.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using dnnplan::planner::test::hand_cluster;
using dnnplan::planner::test::options;

TEST_CASE("gradient accumulation bytes per parameter, by software", "[compute][accumulation]") {
    // One in-place add: read the micro-batch's gradient and the accumulator, write the accumulator.
    // fp16, M = 4. PyTorch autograd: 3 adds x 3 x 2 B = 18 B; Megatron-LM's main_grad hook: 4 adds
    // x 6 B + zeroing the buffer (2 B) = 26 B; in the GEMM (beta = 1): nothing.
    CHECK(grad_accumulation_bytes_per_param(GradAccumulation::autograd_in_place, DType::fp16, 4) == 18);
    CHECK(grad_accumulation_bytes_per_param(GradAccumulation::main_grad_hook, DType::fp16, 4) == 26);
    CHECK(grad_accumulation_bytes_per_param(GradAccumulation::in_gemm, DType::fp16, 4) == 0);
    // One micro-batch: autograd's first gradient becomes .grad (no add); the hook still adds once
    // and zeroes: 6 + 2 = 8 B.
    CHECK(grad_accumulation_bytes_per_param(GradAccumulation::autograd_in_place, DType::bf16, 1) == 0);
    CHECK(grad_accumulation_bytes_per_param(GradAccumulation::main_grad_hook, DType::bf16, 1) == 8);
    // Defaults: 16-bit as Megatron-LM's local DDP (the hook); fp32 as the CPU validators, whose
    // linear and convolution backward GEMMs add into dweight with beta = 1 (validators/kernels.cpp).
    CHECK(default_grad_accumulation(DType::fp16) == GradAccumulation::main_grad_hook);
    CHECK(default_grad_accumulation(DType::fp32) == GradAccumulation::in_gemm);
    // Seconds: 1e9 parameters x 26 B at 1e11 B/s x 0.5 efficiency = 0.52 s; none under the uniform model.
    clusters::Cluster c = hand_cluster();
    c.device.memory_bandwidth_Bps = 1e11;
    c.device.memory_efficiency = 0.5;
    CHECK(grad_accumulation_seconds(c.device, DType::fp16, GradAccumulation::main_grad_hook, 1e9, 4,
                                    ComputeModel::per_operation) == Approx(0.52));
    CHECK(grad_accumulation_seconds(c.device, DType::fp16, GradAccumulation::main_grad_hook, 1e9, 4,
                                    ComputeModel::uniform) == 0);
}

namespace {
// Four bias-free linear layers 1000 -> 1000 (1e6 parameters each) in fp16 on a hand device with a
// memory bandwidth of 1e11 B/s at full efficiency.
struct Chain {
    networks::Network net = networks::parse_network(Json::parse(R"({"name": "chain4", "input": {"shape": [1000]},
        "batch": 4, "layers": [{"name": "l1", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l2", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l3", "kind": "linear", "out_features": 1000, "bias": false},
                   {"name": "l4", "kind": "linear", "out_features": 1000, "bias": false}]})"),
                                                    "chain4");
    clusters::Cluster cluster = [] {
        clusters::Cluster c = hand_cluster(1e9, 1e-6);
        c.device.peak_flops[DType::fp16] = 1e12;
        c.device.memory_bandwidth_Bps = 1e11;
        c.device.memory_efficiency = 1.0;
        return c;
    }();
    CostBreakdown score(int stages, std::optional<GradAccumulation> how) const {
        PlannerOptions o = options(stages, 4, DType::fp16);
        o.compute = ComputeModel::per_operation;
        o.optimizer = Optimizer::adam;
        o.grad_accumulation = how;
        CostModel model(net, cluster, o);
        PipelineSpec spec;
        spec.stages = stages;
        spec.micro_batches = 4;
        spec.schedule = Schedule::one_f_one_b;
        spec.stage_first = stages == 1 ? std::vector<int>{1} : std::vector<int>{1, 3};
        std::vector<Layout> ones(net.layers.size());
        return score_pipeline(model, spec, ones).plan.cost;
    }
};
}  // namespace

TEST_CASE("the stage evaluator adds each micro-batch's gradient accumulation to its backward", "[pipeline][accumulation]") {
    const Chain chain;
    SECTION("one stage: the iteration grows by the whole iteration's adds") {
        const CostBreakdown gemm = chain.score(1, GradAccumulation::in_gemm);
        const CostBreakdown hook = chain.score(1, std::nullopt);  // fp16 default: the hook
        const CostBreakdown autograd = chain.score(1, GradAccumulation::autograd_in_place);
        // 4e6 parameters x 26 B / 1e11 B/s = 1.04 ms; autograd 4e6 x 18 B / 1e11 = 0.72 ms.
        CHECK(hook.iteration_s - gemm.iteration_s == Approx(1.04e-3));
        CHECK(hook.bwd_compute_s - gemm.bwd_compute_s == Approx(1.04e-3));
        CHECK(autograd.iteration_s - gemm.iteration_s == Approx(0.72e-3));
    }
    SECTION("two stages of 2e6 parameters: every backward of both stages is longer") {
        const CostBreakdown gemm = chain.score(2, GradAccumulation::in_gemm);
        const CostBreakdown hook = chain.score(2, GradAccumulation::main_grad_hook);
        // Per micro-batch and stage: 2e6 x 26 B / 4 micro-batches / 1e11 B/s = 0.13 ms. The slowest
        // stage's four backwards: 0.52 ms; the 1F1B makespan grows by at least that and at most
        // (M + S - 1) x 0.13 = 0.65 ms (every backward on the critical path longer by 0.13 ms).
        CHECK(hook.bwd_compute_s - gemm.bwd_compute_s == Approx(0.52e-3));
        CHECK(hook.iteration_s - gemm.iteration_s >= 0.52e-3 * (1 - 1e-9));
        CHECK(hook.iteration_s - gemm.iteration_s <= 0.65e-3 * (1 + 1e-9));
    }
}

TEST_CASE("the layout search's objective counts one micro-batch's gradient accumulation", "[planner][accumulation]") {
    // P = 1, B = 4, fp16: a plain plan is one micro-batch (M = 1). Megatron-LM's hook adds it into
    // main_grad once (read 2 B, read 2 B, write 2 B) and zeroes the buffer (2 B): 8 B per parameter,
    // 1e6 x 8 B / 1e11 B/s = 80 us per layer; autograd's first micro-batch's gradient is .grad
    // itself: nothing; in the GEMM: nothing.
    const Chain chain;
    auto model_with = [&](GradAccumulation how) {
        PlannerOptions o = options(1, 4, DType::fp16);
        o.compute = ComputeModel::per_operation;
        o.optimizer = Optimizer::adam;
        o.grad_accumulation = how;
        return o;
    };
    const PlannerOptions hook_options = model_with(GradAccumulation::main_grad_hook);
    const PlannerOptions gemm_options = model_with(GradAccumulation::in_gemm);
    const PlannerOptions autograd_options = model_with(GradAccumulation::autograd_in_place);
    const CostModel hook(chain.net, chain.cluster, hook_options), gemm(chain.net, chain.cluster, gemm_options),
        autograd(chain.net, chain.cluster, autograd_options);
    const Layout one;
    const int l1 = chain.net.find("l1");
    CHECK(hook.segment_seconds(l1, one) - gemm.segment_seconds(l1, one) == Approx(80e-6));
    CHECK(autograd.segment_seconds(l1, one) == Approx(gemm.segment_seconds(l1, one)));
    // The stage evaluator's score of the same plan adds the same: 4 layers x 80 us (the objective
    // and the score agree).
    const std::vector<Layout> ones(chain.net.layers.size());
    CHECK(hook.score(ones).cost.iteration_s - gemm.score(ones).cost.iteration_s == Approx(320e-6));
}

TEST_CASE("graph partitions add each micro-batch's gradient accumulation to its backward operations",
          "[planner][accumulation][graph]") {
    // The chain on k = 2 devices (l1, l2 | l3, l4), M = 4 micro-batches of 1, one replica, GPipe.
    // Per micro-batch and layer: 1e6 parameters x 26 B / 4 / 1e11 B/s = 65 us with the hook (see
    // the pipeline case above), nothing in the GEMM.
    const Chain chain;
    auto score = [&](GradAccumulation how) {
        PlannerOptions o = options(2, 4, DType::fp16);
        o.compute = ComputeModel::per_operation;
        o.optimizer = Optimizer::adam;
        o.grad_accumulation = how;
        CostModel model(chain.net, chain.cluster, o);
        PipelineSpec spec;
        spec.tensor = 1;
        spec.stages = 2;
        spec.replicas = 1;
        spec.micro_batches = 4;
        spec.device_of = {0, 0, 0, 1, 1};
        const std::vector<Layout> ones(chain.net.layers.size());
        return std::pair{score_graph_partition(model, spec, ones).plan.cost,
                         graph_partition_program(model, spec, ones).backward_s};
    };
    const auto [gemm, gemm_backward] = score(GradAccumulation::in_gemm);
    const auto [hook, hook_backward] = score(GradAccumulation::main_grad_hook);
    // The program the simulator replays: every layer's backward 65 us longer.
    for (int i = 1; i <= 4; ++i) CHECK(hook_backward[i] - gemm_backward[i] == Approx(65e-6));
    // The busiest device's 4 micro-batches x 2 layers x 65 us = 0.52 ms of backward; the GPipe
    // makespan grows by at least that and at most (M + k - 1) x 2 x 65 us = 0.65 ms.
    CHECK(hook.bwd_compute_s - gemm.bwd_compute_s == Approx(0.52e-3));
    CHECK(hook.iteration_s - gemm.iteration_s >= 0.52e-3 * (1 - 1e-9));
    CHECK(hook.iteration_s - gemm.iteration_s <= 0.65e-3 * (1 + 1e-9));
}
