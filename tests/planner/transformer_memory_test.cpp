// Activation memory of a transformer layer against Korthikanti et al. 2022, "Reducing Activation
// Recomputation in Large Transformer Models" (arXiv 2205.05198), section 4, eq. 1 and Table 2:
// bytes per layer in 16-bit, s sequence, b micro-batch, h hidden, a heads, t tensor-parallel size:
//   no parallelism                      s b h (34 + 5 a s / h)
//   tensor parallel                     s b h (10 + 24 / t + 5 a s / (h t))
//   tensor + sequence parallel          s b h (34 + 5 a s / h) / t
//   tensor parallel + selective         s b h (10 + 24 / t)
//   tensor + sequence + selective       s b h 34 / t
//   full recomputation                  s b h 2 (the layer's input; / t under sequence parallelism,
//                                       as Megatron-LM keeps the sequence-split input)
// The values are written out for GPT-3 175B's layer (s = 2048, h = 12288, a = 96) at b = 1:
// s b h = 25,165,824 and 5 a s / h = 5 x 96 x 2048 / 12288 = 80.
#include <catch2/catch.hpp>

#include "planner/pipeline.hpp"
#include "planner_test_helpers.hpp"

namespace dnnplan::planner {
namespace {

// One GPT-3 175B block with the paper's dropouts (after attention, after the MLP, and on the
// attention probabilities), between the embeddings and the output layer.
networks::Network gpt3_block() {
    return networks::parse_network(Json::parse(R"({
      "name": "gpt3-block", "dtype": "fp16", "batch": 1, "input": {"tokens": 2048},
      "layers": [
        {"name": "wte", "kind": "embedding", "num_embeddings": 50257, "dim": 12288},
        {"name": "wpe", "kind": "position_embedding", "num_positions": 2048},
        {"name": "ln_1", "kind": "layernorm"},
        {"name": "attn", "kind": "attention", "heads": 96, "causal": true, "dropout": 0.1},
        {"name": "drop_1", "kind": "dropout", "p": 0.1},
        {"name": "add_1", "kind": "add", "inputs": ["wpe", "drop_1"]},
        {"name": "ln_2", "kind": "layernorm"},
        {"name": "fc", "kind": "linear", "out_features": 49152},
        {"name": "gelu", "kind": "gelu"},
        {"name": "proj", "kind": "linear", "out_features": 12288},
        {"name": "drop_2", "kind": "dropout", "p": 0.1},
        {"name": "add_2", "kind": "add", "inputs": ["add_1", "drop_2"]},
        {"name": "ln_f", "kind": "layernorm"},
        {"name": "lm_head", "kind": "linear", "out_features": 50257, "bias": false, "tied_to": "wte"}
      ]})"),
                                  "gpt3-block.json");
}

struct BlockMemory {
    double activations = 0, attention_core = 0, checkpoint = 0;
};
// The block's layers ln_1 .. add_2 (indices 3..12) on T processes, micro-batch 1.
BlockMemory block_memory(int tensor, bool sequence_parallel) {
    const networks::Network net = gpt3_block();
    const clusters::Cluster cluster = test::preset("dgx-a100");
    PlannerOptions o = test::options(tensor, 1, DType::fp16);
    const CostModel model(net, cluster, o);
    const std::vector<Layout> layouts = tensor_layouts(model, tensor);
    REQUIRE(!layouts.empty());
    const LayerTable table = make_layer_table(model, tensor, 1, layouts, sequence_parallel);
    const int first = net.find("ln_1"), last = net.find("add_2");
    REQUIRE(first == 3);
    REQUIRE(last == 12);
    const LayerTable::Sums sums = table.sum(first, last);
    CHECK(sums.checkpoints == 1);
    return {sums.activation_bytes, sums.attention_core_bytes, sums.checkpoint_bytes};
}

constexpr double kSbh = 2048.0 * 12288.0;  // s b h = 25,165,824

}  // namespace

TEST_CASE("transformer layer activations match Korthikanti et al. 2022 eq. 1 without parallelism",
          "[memory][transformer]") {
    const BlockMemory m = block_memory(1, false);
    // s b h (34 + 80) = 25,165,824 x 114 = 2,868,903,936 bytes.
    CHECK(m.activations == 2'868'903'936.0);
    // The attention core: 5 a s^2 b = 5 x 96 x 2048^2 = 2,013,265,920 bytes (= 80 s b h).
    CHECK(m.attention_core == 2'013'265'920.0);
    // Selective: 34 s b h = 855,638,016; full: the layer input 2 s b h = 50,331,648.
    CHECK(m.activations - m.attention_core == 855'638'016.0);
    CHECK(m.checkpoint == 50'331'648.0);
}

TEST_CASE("transformer layer activations match Korthikanti et al. Table 2 under tensor parallelism",
          "[memory][transformer]") {
    const BlockMemory m = block_memory(8, false);
    // s b h (10 + 24/8 + 80/8) = 25,165,824 x 23 = 578,813,952 bytes.
    CHECK(m.activations == Approx(578'813'952.0).epsilon(1e-12));
    CHECK(m.activations == Approx(kSbh * (10 + 24.0 / 8 + 80.0 / 8)).epsilon(1e-12));
    // Selective: s b h (10 + 24/8) = 25,165,824 x 13 = 327,155,712 bytes.
    CHECK(m.activations - m.attention_core == Approx(327'155'712.0).epsilon(1e-12));
    // Full: the layer input, replicated over the tensor group: 2 s b h = 50,331,648.
    CHECK(m.checkpoint == 50'331'648.0);
}

TEST_CASE("transformer layer activations match Korthikanti et al. Table 2 with sequence parallelism",
          "[memory][transformer]") {
    const BlockMemory m = block_memory(8, true);
    // s b h (34 + 80) / 8 = 25,165,824 x 14.25 = 358,612,992 bytes.
    CHECK(m.activations == Approx(358'612'992.0).epsilon(1e-12));
    // Selective: s b h 34 / 8 = 106,954,752 bytes.
    CHECK(m.activations - m.attention_core == Approx(106'954'752.0).epsilon(1e-12));
    // Full: the sequence-split input, 2 s b h / 8 = 6,291,456.
    CHECK(m.checkpoint == Approx(6'291'456.0).epsilon(1e-12));
}

TEST_CASE("stage activations per recomputation mode: selective drops the cores, full keeps one input per layer",
          "[memory][transformer]") {
    // A stage of L = 4 such layers (tensor parallel, t = 8), 3 micro-batches in flight, the
    // stage's received input 2 s b h = 50,331,648 bytes per micro-batch.
    StageMemoryInput in;
    in.activation_bytes = 4 * 578'813'952.0;
    in.attention_core_bytes = 4 * 251'658'240.0;  // 80 s b h / 8 per layer
    in.checkpoint_bytes = 4 * 50'331'648.0;
    in.checkpoints = 4;
    in.input_bytes = 50'331'648.0;
    StageMemoryOptions o;
    o.in_flight = 3;
    o.recompute = Recompute::none;
    // 3 x (4 x 578,813,952 + 50,331,648) = 7,096,762,368.
    CHECK(stage_memory(in, o).activations == 7'096'762'368.0);
    o.recompute = Recompute::selective;
    // 3 x (4 x 327,155,712 + 50,331,648) = 4,076,863,488.
    CHECK(stage_memory(in, o).activations == 4'076'863'488.0);
    o.recompute = Recompute::full;
    // 3 x (4 x 50,331,648 + 50,331,648) + one layer's full set 578,813,952 = 1,333,788,672.
    CHECK(stage_memory(in, o).activations == 1'333'788'672.0);
    // Without attention (no transformer layers): the stage input per micro-batch plus one full set.
    in.checkpoints = 0;
    CHECK(stage_memory(in, o).activations == 3 * 50'331'648.0 + 4 * 578'813'952.0);
}

TEST_CASE("the vocabulary-parallel embedding keeps the residual stream whole: no all-gather before layernorms",
          "[memory][transformer]") {
    const networks::Network net = gpt3_block();
    const clusters::Cluster cluster = test::preset("dgx-a100");
    const CostModel model(net, cluster, test::options(8, 1, DType::fp16));
    const std::vector<Layout> layouts = tensor_layouts(model, 8);
    REQUIRE(!layouts.empty());
    CHECK(layouts[net.find("wte")] == Layout{1, 1, 8, 1, 1});  // vocabulary split (50257 padded as Megatron-LM pads)
    CHECK(layouts[net.find("lm_head")] == Layout{1, 8, 1, 1, 1});  // logits stay split: the loss runs on the shards
    const ScoredPlan plan = model.layer_costs(layouts);
    for (const CommCall& call : plan.calls) {
        INFO(call.what << " at layer " << net.layers[call.layer].name);
        CHECK(call.kind != CommKind::all_gather);
        CHECK(call.kind != CommKind::redistribution);
    }
    // The residual adds and layernorms see the whole hidden vector.
    CHECK(plan.layers[net.find("add_1")].out_dist.c == 1);
    CHECK(plan.layers[net.find("ln_2")].in_dist.c == 1);
}

}  // namespace dnnplan::planner

namespace dnnplan::planner {

TEST_CASE("a 1T-parameter GPT at batch 3072 plans on 1024 A100s", "[memory][transformer]") {
    // Narayanan et al. 2021, Table 1 (1008B): before batch totals were kept in double, this model
    // at batch 3072 (1.29e19 forward FLOPs, past 2^63) was refused as an overflow.
    const networks::Network net = test::builtin("gpt-1t");
    const clusters::Cluster cluster = test::preset("dgx-a100");
    PlannerOptions o = test::options(1024, 3072, DType::fp16);
    o.optimizer = Optimizer::adam;
    const CostModel model(net, cluster, o);
    // Model FLOPs per device from the per-sequence totals (exact integers) times 3072 / 1024.
    const auto one = networks::totals(net, 1);
    CHECK(model_flops_per_device(model) ==
          Approx((one.fwd_flops + one.bwd_input_flops + one.bwd_weight_flops) * 3.0).epsilon(1e-12));
    const std::vector<PipelineCandidate> found = search_pipelines(model);
    REQUIRE(!found.empty());
    const CostBreakdown& best = found.front().score.plan.cost;
    INFO(pipeline_label(found.front().spec, found.front().score));
    CHECK(best.feasible);
    CHECK(best.memory_bytes <= best.memory_capacity_bytes);
    // 1.8 TiB of fp16 weights need at least 1.8 TiB / 80 GiB = 24 devices per replica.
    CHECK(std::int64_t{found.front().spec.tensor} * found.front().spec.stages >= 24);
}

}  // namespace dnnplan::planner
