// Issue 15's modelling gaps against hand calculations: the NCCL efficiencies of the dgx-a100
// links, Megatron-LM's scatter/gather of stage-boundary activations (Narayanan et al. SC'21,
// section 4.1), layernorm/dropout compute split by T under sequence parallelism (Korthikanti et
// al. 2022, section 4.2.2), the attention-dropout kernel, interleaved chunks balanced per device,
// and the search narrowed by recomputation, sequence parallelism or micro-batch size.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "planner/pipeline.hpp"
#include "planner/pipeline_program.hpp"
#include "planner/search.hpp"
#include "planner_test_helpers.hpp"

namespace dnnplan::planner {
namespace {

// One GPT-3 175B block (s = 2048, h = 12288, a = 96) between the embeddings and the output layer;
// `attention_dropout` on the attention probabilities.
networks::Network gpt3_block(double attention_dropout = 0.1) {
    std::string spec = R"({
      "name": "gpt3-block", "dtype": "fp16", "batch": 16, "input": {"tokens": 2048},
      "layers": [
        {"name": "wte", "kind": "embedding", "num_embeddings": 50257, "dim": 12288},
        {"name": "wpe", "kind": "position_embedding", "num_positions": 2048},
        {"name": "ln_1", "kind": "layernorm"},
        {"name": "attn", "kind": "attention", "heads": 96, "causal": true, "dropout": DROPOUT},
        {"name": "add_1", "kind": "add", "inputs": ["wpe", "attn"]},
        {"name": "ln_2", "kind": "layernorm"},
        {"name": "fc", "kind": "linear", "out_features": 49152},
        {"name": "gelu", "kind": "gelu"},
        {"name": "proj", "kind": "linear", "out_features": 12288},
        {"name": "add_2", "kind": "add", "inputs": ["add_1", "proj"]},
        {"name": "ln_f", "kind": "layernorm"},
        {"name": "lm_head", "kind": "linear", "out_features": 50257, "bias": false, "tied_to": "wte"}
      ]})";
    spec.replace(spec.find("DROPOUT"), 7, std::to_string(attention_dropout));
    return networks::parse_network(Json::parse(spec), "gpt3-block.json");
}

PlannerOptions fp16_options(std::int64_t procs, std::int64_t batch) {
    PlannerOptions o = test::options(procs, batch, DType::fp16);
    o.compute = ComputeModel::per_operation;
    return o;
}

// dgx-a100: NVLink 300 GB/s x 0.7667 (nccl-tests' 230 GB/s bus bandwidth), 1 us; InfiniBand
// 25 GB/s x 0.96 (192 GB/s per node of 8), 2 us; HBM 2.039e12 B/s x 0.871 (memory copy).
constexpr double kNvlink = 3e11 * 0.7667, kInfiniband = 25e9 * 0.96, kHbm = 2.039e12 * 0.871;
// add_1's output, one sequence: 2048 x 12288 x 2 bytes.
constexpr double kResidual = 2048.0 * 12288.0 * 2.0;  // 50,331,648

// Two stages of T = 2 (P = 4), the second starting at layer `cut`; one micro-batch under 1F1B.
PipelineSpec two_stages_of_two(int cut) {
    PipelineSpec spec;
    spec.tensor = 2;
    spec.stages = 2;
    spec.replicas = 1;
    spec.micro_batches = 1;
    spec.schedule = Schedule::one_f_one_b;
    spec.stage_first = {1, cut};
    return spec;
}
}  // namespace

TEST_CASE("dgx-a100 transfers run at nccl-tests' bus bandwidth, not the line rate", "[planner][megatron]") {
    const clusters::Cluster dgx = test::preset("dgx-a100");
    const clusters::LinkModel links = clusters::LinkModel::of(dgx);
    CHECK(links.intra.bandwidth_Bps == Approx(230.01e9));
    CHECK(links.inter.bandwidth_Bps == Approx(24e9));
    CHECK(dgx.intra_node.bandwidth_Bps == 3e11);  // the preset keeps the datasheet line rate
    CHECK(dgx.device.memory_efficiency == 0.871);
}

TEST_CASE("stage boundaries are scattered over the tensor group and all-gathered inside the node",
          "[planner][megatron]") {
    const networks::Network net = gpt3_block();
    const clusters::Cluster dgx = test::preset("dgx-a100");
    const CostModel model(net, dgx, fp16_options(2, 1));
    const std::vector<Layout> layouts = tensor_layouts(model, 2);
    REQUIRE(!layouts.empty());
    const int cut = net.find("ln_2");  // only add_1's output crosses
    const std::vector<int> cuts = cut_positions(model);
    REQUIRE(std::find(cuts.begin(), cuts.end(), cut) != cuts.end());

    // Without sequence parallelism the residual stream is replicated over T = 2: each rank sends
    // half of it (25,165,824 B) to its counterpart, then the pair all-gathers the 50,331,648 B over
    // NVLink: one step of half the buffer, 1e-6 + 25,165,824 / 2.3001e11 s.
    const LayerTable plain = make_layer_table(model, 2, 1, layouts, false);
    CHECK(plain.boundary_bytes[cut] == kResidual);  // what the stage holds (memory)
    CHECK(plain.boundary_send_bytes[cut] == kResidual / 2);
    const double gather = 1e-6 + (kResidual / 2) / kNvlink;
    CHECK(plain.boundary_gather_s[cut] == Approx(gather));
    const clusters::LinkCost inter{kInfiniband, 2e-6};
    CHECK(plain.boundary_seconds(cut, inter) == Approx(2e-6 + (kResidual / 2) / kInfiniband + gather));

    // Sequence parallelism: already split along the sequence, no all-gather.
    const LayerTable split = make_layer_table(model, 2, 1, layouts, true);
    CHECK(split.boundary_send_bytes[cut] == kResidual / 2);
    CHECK(split.boundary_gather_s[cut] == 0);

    // One process per stage: the whole tensor, nothing to gather.
    const CostModel single(net, dgx, fp16_options(1, 1));
    const LayerTable one = make_layer_table(single, 1, 1, tensor_layouts(single, 1), false);
    CHECK(one.boundary_send_bytes[cut] == kResidual);
    CHECK(one.boundary_gather_s[cut] == 0);
}

TEST_CASE("sequence parallelism divides layernorm and residual-add compute by T", "[planner][megatron]") {
    const networks::Network net = gpt3_block();
    const clusters::Cluster dgx = test::preset("dgx-a100");
    const CostModel model(net, dgx, fp16_options(2, 1));
    const std::vector<Layout> layouts = tensor_layouts(model, 2);
    const LayerTable plain = make_layer_table(model, 2, 1, layouts, false);
    const LayerTable split = make_layer_table(model, 2, 1, layouts, true);
    const int ln = net.find("ln_2"), add = net.find("add_2"), attn = net.find("attn");
    // layernorm forward reads its input and writes its output once: 2 x 50,331,648 B over HBM,
    // half of it per rank under sequence parallelism (bandwidth-bound: its ~8 FLOPs per element
    // take 25 M x 8 / 11.7e12 = 17 us on the vector units, the bytes 57 us), plus its one kernel
    // launch (dgx-a100's kernel_launch_s, 0.9 us), which the split does not divide.
    constexpr double kLaunch = 0.9e-6;
    CHECK(plain.plan.layers[ln].fwd_compute_s == Approx(2 * kResidual / kHbm + kLaunch));
    CHECK(split.plan.layers[ln].fwd_compute_s == Approx(kResidual / kHbm + kLaunch));
    // The residual add reads two inputs and writes one: 3 x 50,331,648 B, halved.
    CHECK(plain.plan.layers[add].fwd_compute_s == Approx(3 * kResidual / kHbm + kLaunch));
    CHECK(split.plan.layers[add].fwd_compute_s == Approx(1.5 * kResidual / kHbm + kLaunch));
    // The attention (heads already split T ways) does not change.
    CHECK(split.plan.layers[attn].fwd_compute_s == plain.plan.layers[attn].fwd_compute_s);
}

TEST_CASE("attention dropout adds its kernel's bytes to the attention's time", "[planner][megatron]") {
    const clusters::Cluster dgx = test::preset("dgx-a100");
    const networks::Network with = gpt3_block(0.1), without = gpt3_block(0.0);
    const CostModel a(with, dgx, fp16_options(1, 1)), b(without, dgx, fp16_options(1, 1));
    const std::vector<Layout> layouts = tensor_layouts(a, 1);
    const int attn = with.find("attn");
    const ScoredPlan pa = a.layer_costs(layouts), pb = b.layer_costs(layouts);
    // Scores: 96 heads x 2048^2 = 402,653,184 elements, 805,306,368 B in fp16. The dropout reads
    // the probabilities, writes the result and a 1-byte mask forward (2 x 805,306,368 + 402,653,184
    // = 2,013,265,920 B); backward reads the gradient and the mask and writes the gradient (the
    // same bytes). Both passes are memory-bound (7 FLOPs per score element on the vector units:
    // 2.8e9 / 11.7e12 = 0.24 ms against the 3.6e9 B / 1.78e12 B/s = 2.0 ms of bytes).
    // The dropout is a kernel of its own each way: one more launch (dgx-a100: 0.9 us).
    const double dropout = 2.0 * 805'306'368 + 402'653'184;
    CHECK(pa.layers[attn].fwd_compute_s - pb.layers[attn].fwd_compute_s == Approx(dropout / kHbm + 0.9e-6));
    CHECK(pa.layers[attn].bwd_compute_s - pb.layers[attn].bwd_compute_s == Approx(dropout / kHbm + 0.9e-6));
}

TEST_CASE("interleaved chunks are balanced per device, not per chunk", "[planner][megatron][interleave]") {
    // Layers 1..6 of 4, 1, 1, 1, 1, 4 seconds, a cut before every layer, S = 2 devices, V = 2.
    // Chunks [4] [1] [1 1 1] [4] have the least slowest chunk (4) but device 0 (chunks 0 and 2)
    // computes 4 + 3 = 7 and device 1 (chunks 1 and 3) 1 + 4 = 5. Moving the start of chunk 2 one
    // layer later gives [4] [1 1] [1 1] [4]: 6 and 6, the least possible (12 / 2).
    StageWeights w;
    w.layer_s = {0, 4, 1, 1, 1, 1, 4};
    w.recv_fwd_s.assign(8, 0.0);
    w.recv_bwd_s.assign(8, 0.0);
    const std::vector<int> cuts{2, 3, 4, 5, 6};
    const std::vector<int> chunk_balanced{1, 2, 3, 6};
    CHECK(slowest_stage(w, chunk_balanced) == 4);
    CHECK(slowest_device(w, chunk_balanced, 2) == 7);
    const std::vector<int> balanced = balance_devices(w, cuts, chunk_balanced, 2);
    CHECK(balanced == std::vector<int>{1, 2, 4, 6});
    CHECK(slowest_device(w, balanced, 2) == 6);
    // One chunk per device: nothing to rebalance.
    CHECK(balance_devices(w, cuts, {1, 3, 5, 6}, 4) == std::vector<int>{1, 3, 5, 6});
}

TEST_CASE("device balancing never makes the busiest device slower (random weights)", "[planner][megatron][interleave]") {
    std::uint32_t state = 12345;
    auto next = [&] {  // a small LCG: the test needs no distribution, only varied weights
        state = state * 1664525u + 1013904223u;
        return 0.5 + static_cast<double>(state >> 8) / static_cast<double>(1u << 24);
    };
    for (int trial = 0; trial < 200; ++trial) {
        const int n = 12 + trial % 9, S = 2 + trial % 3, V = 2;
        StageWeights w;
        w.layer_s.assign(n, 0.0);
        for (int i = 1; i < n; ++i) w.layer_s[i] = next();
        w.recv_fwd_s.assign(n + 1, 0.05);
        w.recv_bwd_s.assign(n + 1, 0.05);
        std::vector<int> cuts;
        for (int c = 2; c < n; ++c) cuts.push_back(c);
        const std::vector<int> start = partition_stages(w, cuts, S * V);
        REQUIRE(static_cast<int>(start.size()) == S * V);
        const std::vector<int> balanced = balance_devices(w, cuts, start, S);
        REQUIRE(balanced.size() == start.size());
        CHECK(balanced.front() == 1);
        for (std::size_t k = 1; k < balanced.size(); ++k) CHECK(balanced[k] > balanced[k - 1]);
        CHECK(slowest_device(w, balanced, S) <= slowest_device(w, start, S) + 1e-12);
    }
}

TEST_CASE("recomputation, sequence parallelism and micro-batch size narrow the search", "[planner][megatron]") {
    const networks::Network net = gpt3_block();
    const clusters::Cluster dgx = test::preset("dgx-a100");
    const CostModel model(net, dgx, fp16_options(16, 16));
    const std::vector<PipelineCandidate> all = search_pipelines(model);
    bool saw_other_recompute = false, saw_other_micro = false;
    for (const PipelineCandidate& c : all) {
        saw_other_recompute |= c.spec.recompute != Recompute::full;
        saw_other_micro |= 16 / (c.spec.replicas * c.spec.micro_batches) != 2;
    }
    CHECK(saw_other_recompute);  // so the narrowing below is not vacuous
    CHECK(saw_other_micro);

    PipelineNarrowing narrowing;
    narrowing.recompute = Recompute::full;
    narrowing.micro_batch_size = 2;
    narrowing.sequence_parallel = true;
    const std::vector<PipelineCandidate> narrowed = search_pipelines(model, nullptr, narrowing);
    REQUIRE(!narrowed.empty());
    for (const PipelineCandidate& c : narrowed) {
        CHECK(c.spec.recompute == Recompute::full);
        CHECK(c.spec.sequence_parallel);
        CHECK(c.spec.tensor > 1);
        CHECK(16 / (c.spec.replicas * c.spec.micro_batches) == 2);
    }
    // More than one (T, S) shape is still searched.
    CHECK(narrowed.size() > 1);

    // Through search(): only pipeline families, which have these dimensions.
    SearchOptions options;
    options.narrowing.recompute = Recompute::selective;
    const SearchResult result = search(model, options);
    REQUIRE(!result.ranked.empty());
    for (const Candidate& c : result.ranked) {
        CHECK((c.strategy == Strategy::pipeline || c.strategy == Strategy::tp_pp_dp));
        CHECK(c.pipeline.recompute == Recompute::selective);
        CHECK(c.pipeline.device_of.empty());
    }
}


TEST_CASE("boundary sends: Megatron-LM's scatter/gather, whole tensors, DeepSpeed's blocking sends",
          "[planner][megatron][boundary]") {
    // One GPT-3 block in 2 stages of T = 2 (P = 4, one DGX node: every boundary on NVLink), the cut
    // before ln_2 (only add_1's output crosses: 50,331,648 B), one micro-batch of one sequence.
    const networks::Network net = gpt3_block();
    const clusters::Cluster dgx = test::preset("dgx-a100");
    const int cut = net.find("ln_2");
    auto stages_with = [&](PipelineBoundarySend send) {
        PlannerOptions o = fp16_options(4, 1);
        o.boundary_send = send;
        const CostModel model(net, dgx, o);
        const PipelineSpec spec = two_stages_of_two(cut);
        REQUIRE(pipeline_problem(model, spec).empty());
        return score_pipeline(model, spec, tensor_layouts(model, 2)).stages;
    };
    const auto megatron = stages_with(PipelineBoundarySend::scatter_gather);
    const auto whole = stages_with(PipelineBoundarySend::whole_tensor);
    const auto deepspeed = stages_with(PipelineBoundarySend::deepspeed);
    REQUIRE(megatron.size() == 2);
    // Scatter/gather: half the tensor per rank, 1e-6 + 25,165,824 / 2.3001e11 s, then the pair's
    // all-gather, one step of half: the same again.
    const double half = 1e-6 + (kResidual / 2) / kNvlink;
    CHECK(megatron[1].recv_forward_s == Approx(2 * half));
    CHECK(megatron[0].recv_backward_s == Approx(2 * half));
    // Whole tensors: every rank sends all 50,331,648 B, nothing to gather.
    CHECK(whole[1].recv_forward_s == Approx(1e-6 + kResidual / kNvlink));
    CHECK(whole[0].recv_backward_s == Approx(1e-6 + kResidual / kNvlink));
    // On NVLink that is the scatter/gather's time less one latency (the gather moves the other half).
    CHECK(whole[1].forward_s - megatron[1].forward_s == Approx(-1e-6));
    // DeepSpeed: the receives are Megatron-LM's (partitioned, all-gathered); stage 1's forward
    // step also waits for its own send of the input gradient back (one half-tensor transfer),
    // stage 0's backward step for its send of the output and for gathering that output again:
    // two more.
    CHECK(deepspeed[1].recv_forward_s == Approx(megatron[1].recv_forward_s));
    CHECK(deepspeed[1].forward_s - megatron[1].forward_s == Approx(half));
    CHECK(deepspeed[1].backward_s == Approx(megatron[1].backward_s));
    CHECK(deepspeed[0].forward_s == Approx(megatron[0].forward_s));
    CHECK(deepspeed[0].backward_s - megatron[0].backward_s == Approx(2 * half));
}

TEST_CASE("the simulator's pipeline program carries the boundary sends' message sizes", "[planner][megatron][boundary]") {
    // The two-stage GPT-3 block above: stage 1 receives half the residual per rank and all-gathers
    // it under scatter/gather; the whole 50,331,648 B and no all-gather under whole tensors.
    const networks::Network net = gpt3_block();
    const clusters::Cluster dgx = test::preset("dgx-a100");
    auto program_with = [&](PipelineBoundarySend send) {
        PlannerOptions o = fp16_options(4, 1);
        o.boundary_send = send;
        const CostModel model(net, dgx, o);
        const PipelineSpec spec = two_stages_of_two(net.find("ln_2"));
        return pipeline_program(model, spec, tensor_layouts(model, 2));
    };
    const PipelineProgram megatron = program_with(PipelineBoundarySend::scatter_gather);
    const PipelineProgram whole = program_with(PipelineBoundarySend::whole_tensor);
    CHECK(megatron.stages[1].recv_bytes == kResidual / 2);
    CHECK(megatron.stages[1].recv_gather_bytes == kResidual);
    CHECK(megatron.stages[1].recv_gather.size() == 2);
    CHECK(whole.stages[1].recv_bytes == kResidual);
    CHECK(whole.stages[1].recv_gather_bytes == 0);
    CHECK(whole.stages[1].recv_gather.empty());
    CHECK(whole.stages[1].recv_s == Approx(1e-6 + kResidual / kNvlink));
}

TEST_CASE("whole-tensor sends under sequence parallelism send each rank's shard", "[planner][megatron][boundary]") {
    // Megatron-LM sends the sequence-parallel shard (1/T of the sequence) whatever the flag says.
    const networks::Network net = gpt3_block();
    const clusters::Cluster dgx = test::preset("dgx-a100");
    PlannerOptions o = fp16_options(2, 1);
    o.boundary_send = PipelineBoundarySend::whole_tensor;
    const CostModel model(net, dgx, o);
    const std::vector<Layout> layouts = tensor_layouts(model, 2);
    const int cut = net.find("ln_2");
    const LayerTable plain = make_layer_table(model, 2, 1, layouts, false);
    CHECK(plain.boundary_send_bytes[cut] == kResidual);
    CHECK(plain.boundary_gather_s[cut] == 0);
    const LayerTable split = make_layer_table(model, 2, 1, layouts, true);
    CHECK(split.boundary_send_bytes[cut] == kResidual / 2);
    CHECK(split.boundary_gather_s[cut] == 0);
}

TEST_CASE("the training-software options' names", "[planner][options]") {
    for (auto send : {PipelineBoundarySend::scatter_gather, PipelineBoundarySend::whole_tensor, PipelineBoundarySend::deepspeed})
        CHECK(parse_boundary_send(to_string(send)) == send);
    for (auto how : {GradAccumulation::in_gemm, GradAccumulation::autograd_in_place, GradAccumulation::main_grad_hook})
        CHECK(parse_grad_accumulation(to_string(how)) == how);
    for (auto step : {MixedPrecisionStep::megatron_lm, MixedPrecisionStep::deepspeed_zero})
        CHECK(parse_mixed_precision_step(to_string(step)) == step);
    CHECK(boundary_send_names() == std::vector<std::string>{"scatter-gather", "whole-tensor", "deepspeed"});
    CHECK(grad_accumulation_names() == std::vector<std::string>{"in-gemm", "autograd", "hook"});
    CHECK(mixed_precision_step_names() == std::vector<std::string>{"megatron", "deepspeed"});
    CHECK_FALSE(parse_boundary_send("scatter_gather").has_value());
    CHECK_FALSE(parse_grad_accumulation("main_grad_hook").has_value());
}

}  // namespace dnnplan::planner
