// Per-operation compute time (planner/compute.hpp) against hand calculations: GEMM tile and wave
// quantisation on the dgx-a100 preset (NVIDIA, "Matrix Multiplication Background User's Guide",
// ch. 3), memory-bound layers at bytes / bandwidth, the optimizer step's bytes, and the uniform
// model reproducing the earlier single-rate formula.
#include <catch2/catch.hpp>

#include "planner_test_helpers.hpp"

#include <cmath>

#include "planner/compute.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using dnnplan::planner::test::builtin;
using dnnplan::planner::test::hand_cluster;
using dnnplan::planner::test::preset;

namespace {
// dgx-a100 preset: fp16 peak 312e12, large-GEMM efficiency 0.86, 256 x 128 tiles, 108 SMs,
// 2.039e12 B/s at the memory-copy efficiency 0.871, fp32 (vector) peak 19.5e12 at achievable 0.6.
constexpr double kPeak16 = 312e12, kGemmEff = 0.86, kBandwidth = 2.039e12 * 0.871;

// One calibrated CPU rank with round constants: sgemm peak 100 GFLOP/s at the GEMM share 0.4
// (40 GFLOP/s), `memory_Bps` for copies.
clusters::Cluster hand_cpu(double memory_Bps) {
    clusters::Cluster cpu = hand_cluster();
    cpu.nodes = 1;
    cpu.device.peak_flops[DType::fp32] = 100e9;
    cpu.device.achievable_fraction = 0.4;
    cpu.device.memory_bandwidth_Bps = memory_Bps;
    return cpu;
}
}  // namespace

TEST_CASE("a 4096 x 4096 x 4096 fp16 GEMM on an A100: tiles, waves and time", "[compute]") {
    const clusters::Cluster a100 = preset("dgx-a100");
    const GemmTime g = gemm_time(a100.device, DType::fp16, {4096, 4096, 4096, 1});
    // 4096 / 256 = 16 tiles down M, 4096 / 128 = 32 across N: 512 tiles; 512 / 108 = 4.74 -> 5 waves.
    CHECK(g.tiles == 512);
    CHECK(g.waves == 5);
    // Useful share: 512 tiles of the 5 x 108 = 540 slots.
    CHECK(g.efficiency == Approx(512.0 / 540.0));
    // 2 x 4096^3 = 1.374e11 FLOPs at 312e12 x 0.86 x 0.9481 = 2.544e14 FLOP/s: 0.5402 ms.
    CHECK(g.math_s == Approx(2.0 * 4096 * 4096 * 4096 / (kPeak16 * kGemmEff * 512.0 / 540.0)));
    CHECK(g.math_s == Approx(5.402e-4).epsilon(1e-3));
    // Operands: 3 x 4096^2 x 2 bytes = 100.7 MB over 2.039 TB/s = 49.4 us: math-bound.
    CHECK(g.memory_s == Approx(3.0 * 4096 * 4096 * 2 / kBandwidth));
    CHECK(g.seconds == g.math_s);
}

TEST_CASE("wave quantisation: one more row than a full wave doubles the time", "[compute]") {
    const clusters::Cluster a100 = preset("dgx-a100");
    // M = 9 x 256, N = 12 x 128, K = 4096: exactly 108 tiles, one full wave, no waste.
    const GemmTime full = gemm_time(a100.device, DType::fp16, {9 * 256, 12 * 128, 4096, 1});
    CHECK(full.waves == 1);
    CHECK(full.efficiency == Approx(1.0));
    // One more row: 10 x 12 = 120 tiles, two waves, for 0.04% more work.
    const GemmTime over = gemm_time(a100.device, DType::fp16, {9 * 256 + 1, 12 * 128, 4096, 1});
    CHECK(over.tiles == 120);
    CHECK(over.waves == 2);
    CHECK(over.math_s / full.math_s == Approx(2.0));
}

TEST_CASE("a small convolution tile-quantises: ResNet-50's 3x3 64->64 at 56x56, one sample", "[compute]") {
    const clusters::Cluster a100 = preset("dgx-a100");
    // Implicit GEMM (NVIDIA convolution guide): M = 56 x 56 = 3136, N = 64, K = 64 x 9 = 576.
    // ceil(3136 / 256) = 13 tiles down M, ceil(64 / 128) = 1 across N: 13 output tiles; split-K
    // cuts K = 576 into min(108 / 13 = 8, 576 / 256 = 2) = 2 parts: 26 tiles in one wave of 108.
    const GemmTime one = gemm_time(a100.device, DType::fp16, {3136, 64, 576, 1});
    CHECK(one.tiles == 26);
    CHECK(one.waves == 1);
    CHECK(one.efficiency == Approx(3136.0 * 64 * 2 / (108.0 * 256 * 128)));  // 0.113
    // 32 samples: M = 100352, 392 tiles (no split: more than a wave), 4 waves: efficiency
    // 100352 x 64 / (432 x 32768) = 0.454, so a sample costs 0.454 / 0.113 = 4x less than alone:
    // splitting the batch 32 ways loses it.
    const GemmTime many = gemm_time(a100.device, DType::fp16, {32 * 3136, 64, 576, 1});
    CHECK(many.waves == 4);
    CHECK(many.efficiency == Approx(32.0 * 3136 * 64 / (4.0 * 108 * 256 * 128)));
    CHECK(32 * one.math_s / many.math_s == Approx(many.efficiency / one.efficiency));
}

TEST_CASE("a layernorm moves its input and output once over the memory bandwidth", "[compute]") {
    const networks::Network gpt = builtin("gpt2");
    int index = -1;
    for (std::size_t i = 0; i < gpt.layers.size() && index < 0; ++i)
        if (gpt.layers[i].kind == networks::LayerKind::layernorm) index = static_cast<int>(i);
    REQUIRE(index > 0);
    const networks::Layer& ln = gpt.layers[index];
    const clusters::Cluster a100 = preset("dgx-a100");
    LocalLayer local;
    local.batch = 8;
    // 8 samples of [S, H] in fp16.
    local.input_bytes = local.output_bytes = 8.0 * static_cast<double>(ln.output_elements) * 2;
    local.fwd_flops = 8.0 * static_cast<double>(ln.fwd_flops);
    local.bwd_input_flops = 8.0 * static_cast<double>(ln.bwd_input_flops);
    local.bwd_weight_flops = 8.0 * static_cast<double>(ln.bwd_weight_flops);
    const ComputeTime t =
        layer_compute_time(gpt, index, local, a100.device, DType::fp16, ComputeModel::per_operation, false);
    // Forward reads x and writes y; backward reads dy and x and writes dx. Both far above the
    // FLOP time (a few FLOPs per element at 19.5e12 x 0.6 on the CUDA cores), so bytes decide.
    CHECK(local.fwd_flops / (19.5e12 * 0.6) < 2 * local.output_bytes / kBandwidth);
    // One kernel each way, each launch 0.9 us (the preset's kernel_launch_s).
    CHECK(t.forward_s == Approx(2 * local.output_bytes / kBandwidth + 0.9e-6));
    CHECK(t.backward_s == Approx(3 * local.output_bytes / kBandwidth + 0.9e-6));
}

TEST_CASE("the optimizer step: one fused pass in fp32, the software's passes in 16 bits", "[compute]") {
    // SGD fp32: read g (4), read and write w (8), read and write momentum (8) = 20 bytes.
    CHECK(optimizer_step_bytes_per_param(Optimizer::sgd, DType::fp32) == 20);
    // Adam fp32: g (4), w (8), two moments (16) = 28.
    CHECK(optimizer_step_bytes_per_param(Optimizer::adam, DType::fp32) == 28);
    // The software does not change an fp32 step.
    CHECK(optimizer_step_bytes_per_param(Optimizer::adam, DType::fp32, MixedPrecisionStep::deepspeed_zero) == 28);
    // Megatron-LM's Float16OptimizerWithFloat16Params.step(): fp16 grad -> fp32 copy (2 + 4),
    // unscale in place (4 + 4), l2 norm (4), fused Adam on fp32 (28), fp32 -> fp16 weights (4 + 2):
    // 6 + 8 + 4 + 28 + 6 = 52. SGD: the fused step is 20, so 44.
    CHECK(optimizer_step_bytes_per_param(Optimizer::adam, DType::fp16) == 52);
    CHECK(optimizer_step_bytes_per_param(Optimizer::adam, DType::bf16) == 52);
    CHECK(optimizer_step_bytes_per_param(Optimizer::sgd, DType::fp16) == 44);
    // DeepSpeed v0.5.8 ZeRO-1/2: overflow check x.float().sum() (2 + 4 + 4), norm g.double().norm()
    // (2 + 8 + 8), flatten + .to(fp32) (2 + 2 + 2 + 4), unscale mul_ (4 + 4), fused Adam (28),
    // fp32 -> fp16 partition copy (4 + 2): 10 + 18 + 10 + 8 + 28 + 6 = 80.
    CHECK(optimizer_step_bytes_per_param(Optimizer::adam, DType::fp16, MixedPrecisionStep::deepspeed_zero) == 80);
    const clusters::Cluster a100 = preset("dgx-a100");
    // 1e9 local parameters, Adam in fp16 (Megatron-LM): 52 GB at the A100's memory-copy rate
    // (kBandwidth, above) = 29.3 ms.
    CHECK(optimizer_step_seconds(a100.device, DType::fp16, Optimizer::adam, 1e9, ComputeModel::per_operation) ==
          Approx(52e9 / kBandwidth));
    CHECK(optimizer_step_seconds(a100.device, DType::fp16, Optimizer::adam, 1e9, ComputeModel::per_operation,
                                 MixedPrecisionStep::deepspeed_zero) == Approx(80e9 / kBandwidth));
    CHECK(optimizer_step_seconds(a100.device, DType::fp16, Optimizer::adam, 1e9, ComputeModel::uniform) == 0);
}

TEST_CASE("the uniform model is FLOPs over one rate, whatever the layer", "[compute]") {
    const networks::Network gpt = builtin("gpt2");
    const clusters::Cluster a100 = preset("dgx-a100");
    LocalLayer local;
    local.fwd_flops = 1e12;
    local.bwd_input_flops = 1e12;
    local.bwd_weight_flops = 2e12;
    for (int index = 1; index < 6; ++index) {
        const ComputeTime t =
            layer_compute_time(gpt, index, local, a100.device, DType::fp16, ComputeModel::uniform, false);
        CHECK(t.forward_s == Approx(1e12 / (312e12 * 0.6)));
        CHECK(t.backward_s == Approx(3e12 / (312e12 * 0.6)));
    }
}

TEST_CASE("a device without GEMM tiling runs GEMMs unquantised at its achievable rate", "[compute]") {
    const clusters::Cluster hand = hand_cluster();  // 1e12 FLOP/s fp32 in full, no memory bandwidth given
    const GemmTime g = gemm_time(hand.device, DType::fp32, {100, 3, 7, 2});
    CHECK(g.efficiency == 1);
    CHECK(g.seconds == Approx(2.0 * 100 * 3 * 7 * 2 / 1e12));
}

TEST_CASE("split-K: a weight gradient with a small output and a long reduction fills the device", "[compute]") {
    const clusters::Cluster a100 = preset("dgx-a100");
    // M = 64, N = 576, K = 100352 (ResNet-50's 3x3 64->64 weight gradient over 32 samples at
    // 56 x 56): ceil(64 / 256) x ceil(576 / 128) = 5 output tiles; 108 / 5 -> K cut 21 ways
    // (100352 / 256 = 392 allows it): 105 tiles in one wave, 64 x 576 x 21 / (108 x 256 x 128) = 0.219.
    const GemmTime g = gemm_time(a100.device, DType::fp16, {64, 576, 32 * 3136, 1});
    CHECK(g.tiles == 105);
    CHECK(g.waves == 1);
    CHECK(g.efficiency == Approx(64.0 * 576 * 21 / (108.0 * 256 * 128)));
    // The 4096^3 GEMM has 512 tiles, more than a wave: no split (tested above).
}

TEST_CASE("splitting the batch finer loses GEMM efficiency under the per-operation model only",
          "[compute][planner]") {
    // ResNet-50 on the dgx-a100 preset, pure batch, B = 256: at P = 4 each GPU has 64 images, at
    // P = 256 one. Under the uniform model the per-process compute is exactly 64x smaller; under
    // the per-operation model it is less than 64x smaller: small local GEMMs tile-quantise (the
    // 3x3 64->64 convolution above: efficiency 0.113 at one image against 0.454 at 32).
    const networks::Network net = builtin("resnet50");
    const clusters::Cluster a100 = preset("dgx-a100");
    for (ComputeModel compute : {ComputeModel::uniform, ComputeModel::per_operation}) {
        PlannerOptions wide = dnnplan::planner::test::options(4, 256), fine = dnnplan::planner::test::options(256, 256);
        wide.compute = fine.compute = compute;
        wide.dtype = fine.dtype = DType::fp16;
        CostModel coarse_model(net, a100, wide), fine_model(net, a100, fine);
        const ScoredPlan coarse = coarse_model.score(uniform_layouts(coarse_model, Strategy::batch, {1, 4}));
        const ScoredPlan split = fine_model.score(uniform_layouts(fine_model, Strategy::batch, {1, 256}));
        const double ratio = (coarse.cost.fwd_compute_s + coarse.cost.bwd_compute_s) /
                             (split.cost.fwd_compute_s + split.cost.bwd_compute_s);
        INFO(to_string(compute) << ": compute ratio " << ratio);
        if (compute == ComputeModel::uniform)
            CHECK(ratio == Approx(64.0).epsilon(1e-12));
        else
            CHECK(ratio < 64.0 * 0.8);  // at least 20% of the efficiency lost at one image per GPU
    }
}

TEST_CASE("a calibrated CPU rank: lenet5's per-layer times at batch 16 by hand", "[compute]") {
    // The constants `dnnplan calibrate` writes (validators/README.md, Calibration): sgemm peak
    // 100 GFLOP/s at the fitted GEMM share 0.4 (40 GFLOP/s), the copy rate 10 GB/s for GEMM
    // operands, elementwise/pooling layers streaming at 2 GB/s.
    clusters::Cluster cpu = hand_cpu(10e9);
    cpu.device.elementwise_bandwidth_Bps = 2e9;
    const networks::Network lenet = builtin("lenet5");
    PlannerOptions o;
    o.procs = 1;
    o.batch = 16;
    const CostModel model(lenet, cpu, o);
    const ScoredPlan plan = model.layer_costs(std::vector<Layout>(lenet.layers.size()));
    auto layer = [&](const std::string& name) { return plan.layers.at(static_cast<std::size_t>(lenet.find(name))); };
    // conv1, 1x32x32 -> 6x28x28, 5x5: forward GEMM M = 16 x 784 = 12544, N = 6, K = 25. Math:
    // 16 x (2 x 117600 MACs + 4704 bias) = 3838464 FLOPs / 40e9 = 95.96 us; operands (12544 x 25 +
    // 25 x 6 + 12544 x 6) x 4 B = 1556056 B / 10e9 = 155.61 us: memory-bound (the narrow GEMM).
    CHECK(layer("conv1").fwd_compute_s == Approx(1556056.0 / 10e9));
    // Backward: the weight gradient only (the input needs none), M = 6, N = 25, K = 12544: the same
    // operands, the same 155.61 us.
    CHECK(layer("conv1").bwd_compute_s == Approx(1556056.0 / 10e9));
    // relu after conv1: 16 x 6 x 28 x 28 x 4 B = 301056 B in and out; forward reads x and writes y
    // (602112 B / 2e9 = 301.06 us), backward reads dy and x twice over and writes dx (903168 B:
    // 451.58 us); its 1 FLOP per element at 40 GFLOP/s (1.9 us) is not the bound.
    const std::string relu1 = lenet.layers[static_cast<std::size_t>(lenet.find("conv1")) + 1].name;
    CHECK(layer(relu1).fwd_compute_s == Approx(602112.0 / 2e9));
    CHECK(layer(relu1).bwd_compute_s == Approx(903168.0 / 2e9));
    // pool1, 2x2: 301056 B in, 16 x 6 x 14 x 14 x 4 = 75264 B out; both passes 376320 B: 188.16 us.
    CHECK(layer("pool1").fwd_compute_s == Approx(376320.0 / 2e9));
    CHECK(layer("pool1").bwd_compute_s == Approx(376320.0 / 2e9));
    // conv2, 6x14x14 -> 16x10x10: M = 1600, N = 16, K = 150. Math 16 x (2 x 240000 + 1600) =
    // 7705600 FLOPs / 40e9 = 192.64 us; operands (1600 x 150 + 150 x 16 + 1600 x 16) x 4 B =
    // 1072000 B / 10e9 = 107.2 us: math-bound.
    CHECK(layer("conv2").fwd_compute_s == Approx(7705600.0 / 40e9));
    // Backward: data gradient M = 16 x 14 x 14 = 3136, N = 6, K = 400 (2 x 240000 x 16 = 7680000
    // FLOPs: 192 us; operands (3136 x 400 + 400 x 6 + 3136 x 6) x 4 = 5102464 B: 510.25 us,
    // memory-bound) + weight gradient (7705600 FLOPs, the forward's operands): 192.64 us.
    CHECK(layer("conv2").bwd_compute_s == Approx(5102464.0 / 10e9 + 7705600.0 / 40e9));
    // fc1, 400 -> 120: M = 16, N = 120, K = 400; 16 x (2 x 48000 + 120) = 1537920 FLOPs: 38.45 us;
    // operands (6400 + 48000 + 1920) x 4 = 225280 B: 22.53 us. Math-bound.
    CHECK(layer("fc1").fwd_compute_s == Approx(1537920.0 / 40e9));

    // Without an elementwise rate the same layers stream at the copy rate (presets: unchanged).
    cpu.device.elementwise_bandwidth_Bps = 0;
    const CostModel copy_rate(lenet, cpu, o);
    const ScoredPlan plain = copy_rate.layer_costs(std::vector<Layout>(lenet.layers.size()));
    CHECK(plain.layers.at(static_cast<std::size_t>(lenet.find("pool1"))).fwd_compute_s == Approx(376320.0 / 10e9));
    CHECK(plain.layers.at(static_cast<std::size_t>(lenet.find("conv1"))).fwd_compute_s == Approx(1556056.0 / 10e9));
}

TEST_CASE("a calibrated CPU's kernels: lenet5 and a GPT block by hand", "[compute]") {
    // Round constants for the validator's kernels (as `dnnplan calibrate` fits them), sgemm peak
    // 100 GFLOP/s at the GEMM share 0.4 (40 GFLOP/s), operands at 10 GB/s, 2 us per BLAS call.
    clusters::Cluster cpu = hand_cpu(40e9);
    cpu.device.gemm_operand_bandwidth_Bps = 10e9;
    using clusters::CpuKernel;
    auto& k = cpu.device.cpu_kernels;
    k[CpuKernel::relu_forward] = {1e-9, 0.5e-6};
    k[CpuKernel::relu_backward] = {2e-9, 1e-6};
    k[CpuKernel::pool_forward] = {0.5e-9, 0};
    k[CpuKernel::pool_backward] = {3e-9, 0};
    k[CpuKernel::gemm_call] = {0, 2e-6};
    k[CpuKernel::lowering_forward] = {1e-9, 0};
    k[CpuKernel::lowering_backward] = {0.5e-9, 0};
    k[CpuKernel::attention_forward] = {0.3e-9, 1e-6};
    k[CpuKernel::attention_backward] = {0.2e-9, 2e-6};
    k[CpuKernel::gelu_forward] = {6e-9, 0};
    k[CpuKernel::gelu_backward] = {10e-9, 0};
    k[CpuKernel::loss] = {20e-9, 5e-6};
    const networks::Network lenet = builtin("lenet5");
    PlannerOptions o;
    o.procs = 1;
    o.batch = 16;
    const CostModel model(lenet, cpu, o);
    const ScoredPlan plan = model.layer_costs(std::vector<Layout>(lenet.layers.size()));
    auto layer = [&](const std::string& name) { return plan.layers.at(static_cast<std::size_t>(lenet.find(name))); };
    // relu after conv1: 16 x 6 x 28 x 28 = 75264 elements: 75.264 us + 0.5 us forward, 150.528 us
    // + 1 us backward.
    const std::string relu1 = lenet.layers[static_cast<std::size_t>(lenet.find("conv1")) + 1].name;
    CHECK(layer(relu1).fwd_compute_s == Approx(75.764e-6));
    CHECK(layer(relu1).bwd_compute_s == Approx(151.528e-6));
    // pool1, 2 x 2: 16 x 6 x 14 x 14 = 18816 outputs x 4 = 75264 window reads: 37.632 us forward,
    // 225.792 us backward.
    CHECK(layer("pool1").fwd_compute_s == Approx(37.632e-6));
    CHECK(layer("pool1").bwd_compute_s == Approx(225.792e-6));
    // conv1 lowered per sample (16 samples): W [6 x 25] x col [25 x 784]: 2 x 6 x 784 x 25 x 16 =
    // 3763200 FLOPs / 40e9 = 94.08 us; operands (150 + 19600 + 4704) x 16 x 4 B = 1565056 B /
    // 10e9 = 156.5056 us (memory-bound); 16 calls x 2 us = 32 us; copies: padding 1024 + im2col
    // 19600 per sample, bias 6 x 784 per sample: 16 x 25328 = 405248 elements x 1 ns = 405.248 us.
    CHECK(layer("conv1").fwd_compute_s == Approx((156.5056 + 32 + 405.248) * 1e-6));
    // Backward (no input gradient for the first layer): bias gradient 75264 x 0.5 ns = 37.632 us,
    // dW = dy col^T [6 x 784] x [784 x 25] per sample: the same FLOPs and operands, 156.5056 us,
    // 16 calls: 32 us.
    CHECK(layer("conv1").bwd_compute_s == Approx((37.632 + 156.5056 + 32) * 1e-6));
    // fc1, 400 -> 120 at 16 rows: 2 x 16 x 120 x 400 = 1536000 FLOPs: 38.4 us (operands 225280 B:
    // 22.528 us); one call, 2 us; the bias over 16 x 120 = 1920 outputs: 1.92 us.
    CHECK(layer("fc1").fwd_compute_s == Approx((38.4 + 2 + 1.92) * 1e-6));

    // gpt-pipe (tests/validators/data/gpt-pipe.json): batch 4, 8 tokens, hidden 32, 4 heads of 8,
    // causal: 36 (query, key) pairs per head. Multiply-adds 4 x 4 x (8 x 4 x 32 x 8 + 2 x 36 x 8) =
    // 16 x 8768 = 140288: 42.0864 us + 1 us forward; twice the multiply-adds at 0.2 ns + 2 us back.
    const networks::Network gpt =
        networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/tests/validators/data/gpt-pipe.json");
    o.batch = 4;
    const CostModel gpt_model(gpt, cpu, o);
    const ScoredPlan gplan = gpt_model.layer_costs(std::vector<Layout>(gpt.layers.size()));
    auto glayer = [&](const std::string& name) { return gplan.layers.at(static_cast<std::size_t>(gpt.find(name))); };
    CHECK(glayer("h.0.attn").fwd_compute_s == Approx(43.0864e-6));
    CHECK(glayer("h.0.attn").bwd_compute_s == Approx(58.1152e-6));
    // Two of the four heads on this process (co = 2): half the multiply-adds, the same call.
    LocalLayer two_heads;
    two_heads.layout.co = 2;
    two_heads.batch = 4;
    const ComputeTime half = layer_compute_time(gpt, gpt.find("h.0.attn"), two_heads, cpu.device, DType::fp32,
                                                ComputeModel::per_operation, false);
    CHECK(half.forward_s == Approx(70144 * 0.3e-9 + 1e-6));
    // GeLU over 4 x 8 x 128 = 4096 elements: 24.576 us forward, 40.96 us backward.
    CHECK(glayer("h.0.gelu").fwd_compute_s == Approx(24.576e-6));
    CHECK(glayer("h.0.gelu").bwd_compute_s == Approx(40.96e-6));
    // lm_head, 32 -> 64 without bias at 32 rows: 131072 FLOPs / 40e9 = 3.2768 us (operands 20480 B:
    // 2.048 us), one call 2 us, and the loss over 4 x 8 x 64 = 2048 logits: 40.96 + 5 us.
    CHECK(glayer("lm_head").fwd_compute_s == Approx((3.2768 + 2 + 45.96) * 1e-6));
    // layernorm has no kernel on this device: the rates, as on the same device without kernels.
    clusters::Cluster plain = cpu;
    plain.device.cpu_kernels.clear();
    const CostModel plain_model(gpt, plain, o);
    const ScoredPlan pplan = plain_model.layer_costs(std::vector<Layout>(gpt.layers.size()));
    const auto ln = static_cast<std::size_t>(gpt.find("h.0.ln_1"));
    CHECK(glayer("h.0.ln_1").fwd_compute_s == pplan.layers.at(ln).fwd_compute_s);
    CHECK(glayer("h.0.ln_1").bwd_compute_s == pplan.layers.at(ln).bwd_compute_s);
    CHECK(glayer("h.0.attn").fwd_compute_s != pplan.layers.at(ln + 1).fwd_compute_s);
}

TEST_CASE("each kernel a layer launches adds the device's launch gap", "[compute]") {
    // dgx-a100's kernel_launch_s: NVIDIA's CUDA Graphs blog measured 3.8 us per back-to-back launch
    // of a 2.9 us kernel: 0.9 us per kernel.
    const clusters::Cluster a100 = preset("dgx-a100");
    CHECK(a100.device.kernel_launch_s == Approx(3.8e-6 - 2.9e-6));
    clusters::Cluster without = a100;
    without.device.kernel_launch_s = 0;
    const networks::Network gpt = networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) +
                                                              "/tests/validation/networks/gpt-1.7b.json");
    PlannerOptions o;
    o.procs = 1;
    o.batch = 1;
    o.dtype = DType::fp16;
    const CostModel with_gap(gpt, a100, o), no_gap(gpt, without, o);
    const std::vector<Layout> layouts(gpt.layers.size());
    const ScoredPlan a = with_gap.layer_costs(layouts), b = no_gap.layer_costs(layouts);
    auto kernels = [&](const std::string& name, double forward, double backward) {
        INFO(name);
        const auto i = static_cast<std::size_t>(gpt.find(name));
        CHECK(a.layers[i].fwd_compute_s - b.layers[i].fwd_compute_s == Approx(forward * 0.9e-6).epsilon(1e-6));
        CHECK(a.layers[i].bwd_compute_s - b.layers[i].bwd_compute_s == Approx(backward * 0.9e-6).epsilon(1e-6));
    };
    kernels("wte", 1, 1);        // gather rows; scatter-add them into the weight gradient
    kernels("h.0.ln_1", 1, 1);   // one memory-bound pass each way
    kernels("h.0.fc", 1, 2);     // one GEMM forward; input and weight gradients backward
    kernels("h.0.gelu", 1, 1);
    kernels("h.0.add_1", 1, 1);
    // Forward: QKV, scores, context, output projection, the softmax and the attention dropout (p =
    // 0.1): 6. Backward: the output projection's two gradients, dP, dV, dQ, dK, the QKV weight and
    // input gradients, the softmax's and the dropout's: 10.
    kernels("h.0.attn", 6, 10);
    kernels("lm_head", 2, 3);  // the head's GEMMs (no bias) and the loss's kernel each way
}

TEST_CASE("a calibrated CPU's framework overhead: per kernel and per byte of each pass's activation", "[compute]") {
    // hand_cpu with no validator kernels: every layer at the rates; then 0.2 us per kernel and
    // 0.05 ns per byte of the pass's activation (the output forward, the input gradient backward).
    clusters::Cluster plain = hand_cpu(40e9), with = plain;
    with.device.cpu_kernels[clusters::CpuKernel::framework] = {0.05e-9, 0.2e-6};
    const networks::Network lenet = builtin("lenet5");
    PlannerOptions o;
    o.procs = 1;
    o.batch = 16;
    const std::vector<Layout> layouts(lenet.layers.size());
    const ScoredPlan a = CostModel(lenet, with, o).layer_costs(layouts), b = CostModel(lenet, plain, o).layer_costs(layouts);
    auto added = [&](const std::string& name, double forward, double backward) {
        INFO(name);
        const auto i = static_cast<std::size_t>(lenet.find(name));
        CHECK(a.layers[i].fwd_compute_s - b.layers[i].fwd_compute_s == Approx(forward).epsilon(1e-9));
        CHECK(a.layers[i].bwd_compute_s - b.layers[i].bwd_compute_s == Approx(backward).epsilon(1e-9));
    };
    // conv1: 1 x 32 x 32 in, 6 x 28 x 28 out, 16 samples in fp32: output 16 x 4704 x 4 = 301056 B,
    // input 16 x 1024 x 4 = 65536 B. One GEMM forward: 0.2 us + 15.0528 us. Backward the weight
    // gradient only (the network's input needs none): one kernel, 0.2 us + 3.2768 us.
    added("conv1", 0.2e-6 + 301056 * 0.05e-9, 0.2e-6 + 65536 * 0.05e-9);
    // pool1: 6 x 28 x 28 in, 6 x 14 x 14 out: output 16 x 1176 x 4 = 75264 B, input 301056 B; one
    // memory-bound pass each way.
    added("pool1", 0.2e-6 + 75264 * 0.05e-9, 0.2e-6 + 301056 * 0.05e-9);
    // fc3, 84 -> 10, the network's output: its GEMM and the loss forward (2 kernels), the two
    // gradients and the loss backward (3): output 16 x 10 x 4 = 640 B, input 16 x 84 x 4 = 5376 B.
    added("fc3", 2 * 0.2e-6 + 640 * 0.05e-9, 3 * 0.2e-6 + 5376 * 0.05e-9);
    // The preset devices have no framework kernel: nothing added (checked by the launch test above
    // and every preset score).
}

TEST_CASE("a calibrated CPU's lowering copies: one call per padding-copy row, twice the rows under a width split",
          "[compute]") {
    // resnet-small's layer1_0.0.conv1: 8 -> 8 channels on 8 x 8, 3 x 3, padding 1.
    const networks::Network net =
        networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/tests/validators/data/resnet-small.json");
    const int index = net.find("layer1_0.0.conv1");
    auto rows = [&](Layout lay, double batch) {
        LocalLayer l;
        l.layout = lay;
        l.batch = batch;
        const auto w = cpu_layer_work(net, index, l, DType::fp32);
        REQUIRE(w.has_value());
        REQUIRE(w->forward.kernels.size() == 1);
        REQUIRE(w->backward.kernels.size() == 1);
        CHECK(w->forward.kernels[0].kernel == clusters::CpuKernel::lowering_forward);
        CHECK(w->backward.kernels[0].calls == w->forward.kernels[0].calls);  // col2im and the adjoint copies
        return w->forward.kernels[0].calls;
    };
    // Per sample: the padding copy along H and along W, 8 channels x 8 rows each: 128 rows.
    CHECK(rows(Layout{}, 1) == 128);
    // Batch split at batch 32: 16 samples here, 2048 rows.
    CHECK(rows(Layout{2, 1, 1, 1, 1}, 16) == 2048);
    // Width split: all 32 samples, each row half as long: 32 x 128 = 4096 rows.
    CHECK(rows(Layout{1, 1, 1, 1, 2}, 32) == 4096);
    // Height split: 32 samples of 4 input rows each: 2 x 8 x 4 x 32 = 2048.
    CHECK(rows(Layout{1, 1, 1, 2, 1}, 32) == 2048);
    // The 1x1, unpadded, strided projection (layer2_0.0.down_conv): no padding copy, no rows; the
    // first layer (conv1) has no input gradient, so no backward rows, and 2 x 3 x 16 = 96 forward.
    LocalLayer one;
    one.batch = 1;
    const auto down = cpu_layer_work(net, net.find("layer2_0.0.down_conv"), one, DType::fp32);
    REQUIRE(down.has_value());
    CHECK(down->forward.kernels[0].calls == 0);
    const auto first = cpu_layer_work(net, net.find("conv1"), one, DType::fp32);
    REQUIRE(first.has_value());
    CHECK(first->forward.kernels[0].calls == 96);
    CHECK(first->backward.kernels[0].calls == 0);
    // Costed at 1 ns per row and nothing else: 4.096 us for the width split's forward.
    clusters::Device d;
    d.cpu_kernels[clusters::CpuKernel::lowering_forward] = {0, 1e-9};
    const CpuPass copies{{KernelWork{clusters::CpuKernel::lowering_forward, 0, 4096}}, {}};
    CHECK(*cpu_pass_seconds(d, DType::fp32, copies) == Approx(4.096e-6));
}
