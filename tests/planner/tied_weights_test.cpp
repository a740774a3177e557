// Tied weights under pipeline parallelism (planner/stage_evaluator.hpp, TiedCopy), against hand
// calculations: Megatron-LM keeps a copy of the word embedding on the stage of the output layer
// tied to it and all-reduces the two copies' gradients over the "embedding group" (tensor rank t of
// the first and last stage) after the data-parallel sync (megatron/core/distributed/
// finalize_model_grads.py, _allreduce_word_embedding_grads); on one stage nothing is added.
#include <catch2/catch.hpp>

#include "planner/pipeline.hpp"
#include "planner/pipeline_program.hpp"
#include "planner_test_helpers.hpp"

namespace dnnplan::planner {
namespace {

// tests/validators/data/gpt-pipe-tied.json: vocabulary V = 64, hidden h = 32, 8 tokens, 4 blocks;
// lm_head (layer 36) tied to wte (layer 1). gpt-pipe.json is the same network untied.
networks::Network network(bool tied) {
    return networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/tests/validators/data/" +
                                       (tied ? "gpt-pipe-tied.json" : "gpt-pipe.json"));
}

PlannerOptions sgd_options(std::int64_t procs) {
    PlannerOptions o = test::options(procs, 8);
    o.optimizer = Optimizer::sgd;  // one fp32 momentum per parameter: optimizer bytes = weight bytes
    return o;
}

// T = 2, S = 2, M = 2 micro-batches of 8 / (R M) samples, 1F1B; stage 1 from `second` on.
PipelineSpec spec(int replicas, int second) {
    PipelineSpec s;
    s.tensor = 2;
    s.stages = 2;
    s.replicas = replicas;
    s.micro_batches = 2;
    s.schedule = Schedule::one_f_one_b;
    s.stage_first = {1, second};
    return s;
}

// The hand cluster: 1 us and 1 GB/s everywhere, one device per node.
constexpr double kLatency = 1e-6, kBandwidth = 1e9;
// wte's shard under T = 2 (Megatron's vocabulary-parallel split): V / T x h = 32 x 32 = 1024
// parameters, 4096 bytes in fp32; the lm_head copy is the same shard.
constexpr double kCopyParams = 64.0 / 2 * 32, kCopyBytes = kCopyParams * 4;
// Per block on T = 2 (tests/validators/pipeline3d_test.sh's figures): ln_1 and ln_2 64 each, attn
// (4 x 32 x 32 + 3 x 32) / 2 + 32 = 2128, fc 32 x 128 / 2 + 64 = 2112, proj 128 x 32 / 2 + 32 = 2080.
constexpr double kBlockParams = 64 + 2128 + 64 + 2112 + 2080;  // 6448

}  // namespace

TEST_CASE("tied lm_head on the last stage: a copy of wte's shard and an embedding-group all-reduce of it",
          "[planner][pipeline][tied]") {
    const networks::Network net = network(true);
    REQUIRE(net.layers[36].attrs.tied_to == "wte");
    const clusters::Cluster cluster = test::hand_cluster(kBandwidth, kLatency);
    const CostModel model(net, cluster, sgd_options(4));
    const std::vector<Layout> layouts = tensor_layouts(model, 2);
    REQUIRE(!layouts.empty());
    // Stage 0: wte, wpe, block 0; stage 1: blocks 1-3, ln_f, lm_head (h.1.ln_1 is layer 11).
    const PipelineSpec s = spec(1, 11);
    const LayerTable table = make_layer_table(model, 2, 4, layouts);

    const std::vector<TiedCopy> copies = tied_copies(table, s);
    REQUIRE(copies.size() == 1);
    CHECK(copies[0].layer == 36);
    CHECK(copies[0].embedding == 1);
    CHECK(copies[0].device == 1);
    CHECK(copies[0].embedding_device == 0);
    CHECK(copies[0].params == kCopyParams);
    CHECK(copies[0].weight_bytes == kCopyBytes);

    // The all-reduce: 4096 B over 2 ranks on different nodes. The cheapest algorithm for p = 2 is
    // recursive doubling, one exchange of the whole buffer: 1e-6 + 4096 / 1e9 = 5.096e-6 s (ring and
    // Rabenseifner: 2 x (1e-6 + 2048 / 1e9) = 6.096e-6 s).
    const CommCall call = tied_copy_all_reduce(model, s, copies[0]);
    CHECK(call.layer == 36);
    CHECK(call.phase == Phase::sync);
    CHECK(call.kind == CommKind::all_reduce);
    CHECK(call.bytes == kCopyBytes);
    CHECK(call.group.size == 2);
    CHECK(call.group.per_node == 1);
    const double all_reduce_s = kLatency + kCopyBytes / kBandwidth;
    CHECK(call.seconds == Approx(all_reduce_s).epsilon(1e-12));

    // When it runs: with one replica there is no other sync, so it starts when stage 0's last
    // backward ends (the schedule's end: 1F1B's stage 0 finishes last) and the iteration ends with
    // it (the uniform compute model has no optimizer-step time). Both stages take part.
    const PipelineScore score = score_pipeline(model, s, layouts);
    REQUIRE(score.plan.cost.feasible);
    CHECK(score.plan.cost.iteration_s == Approx(score.pipeline_s + all_reduce_s).epsilon(1e-12));
    REQUIRE(score.stages.size() == 2);
    CHECK(score.stages[0].sync_s == Approx(all_reduce_s).epsilon(1e-12));
    CHECK(score.stages[1].sync_s == Approx(all_reduce_s).epsilon(1e-12));

    // Memory: stage 1 is the largest (3 blocks, the logits, the copy) and holds its layers' shards
    // plus the copy: 3 x 6448 + ln_f 64 + lm_head 0 (tied, no bias) + 1024 = 20432 parameters,
    // 81728 B of weights, as much gradient and (SGD) fp32 momentum.
    const WorstStageMemory worst = worst_stage_memory(table, s);
    REQUIRE(worst.stage == 1);
    const double stage1_bytes = (3 * kBlockParams + 64 + kCopyParams) * 4;
    CHECK(worst.memory.weights == stage1_bytes);
    CHECK(worst.memory.gradients == stage1_bytes);
    CHECK(worst.memory.optimizer == stage1_bytes);
    CHECK(score.plan.cost.weights_bytes == stage1_bytes);

    // The pipeline program (the simulator's and the validator's input) carries the same call.
    const PipelineProgram program = pipeline_program(model, s, layouts);
    REQUIRE(program.tied.size() == 1);
    CHECK(program.tied[0].all_reduce == call);
    CHECK(program.tied[0].copy.device == 1);
    CHECK(program.sync[36].empty());  // one replica: no replica sync of the copy (nor of wte)
}

TEST_CASE("tied lm_head with replicas: the copy syncs over the replicas like wte, then the embedding group",
          "[planner][pipeline][tied]") {
    const networks::Network net = network(true);
    const clusters::Cluster cluster = test::hand_cluster(kBandwidth, kLatency);
    const CostModel model(net, cluster, sgd_options(8));
    const std::vector<Layout> layouts = tensor_layouts(model, 2);
    const PipelineSpec s = spec(2, 19);  // R = 2 on 8 ranks, the cut between blocks 1 and 2
    const PipelineProgram program = pipeline_program(model, s, layouts);
    // wte's gradient shard (4096 B) is all-reduced over the 2 replicas, and so is lm_head's copy.
    REQUIRE(program.sync[1].size() == 1);
    CHECK(program.sync[1][0].bytes == kCopyBytes);
    CHECK(program.sync[1][0].group.size == 2);
    REQUIRE(program.sync[36].size() == 1);
    CHECK(program.sync[36][0].layer == 36);
    CHECK(program.sync[36][0].bytes == kCopyBytes);
    CHECK(program.sync[36][0].group.size == 2);
    CHECK(program.sync[36][0].seconds == program.sync[1][0].seconds);
    REQUIRE(program.tied.size() == 1);
    CHECK(program.tied[0].all_reduce.bytes == kCopyBytes);
    CHECK(program.tied[0].all_reduce.group.size == 2);

    // The untied network's lm_head holds its own 32 x 32 shard: the same bytes, the same replica
    // sync at the same point, the same schedule. The embedding-group all-reduce starts when the
    // later of the two devices' replica syncs ends, which is when the untied plan's iteration ends,
    // and is never hidden: the tied plan takes exactly its seconds more.
    const networks::Network untied_net = network(false);
    const CostModel untied(untied_net, cluster, sgd_options(8));
    const PipelineScore a = score_pipeline(model, s, layouts), b = score_pipeline(untied, s, tensor_layouts(untied, 2));
    REQUIRE(a.plan.cost.feasible);
    REQUIRE(b.plan.cost.feasible);
    CHECK(a.pipeline_s == Approx(b.pipeline_s).epsilon(1e-12));
    CHECK(a.plan.cost.iteration_s ==
          Approx(b.plan.cost.iteration_s + (kLatency + kCopyBytes / kBandwidth)).epsilon(1e-12));
    // Memory per stage: the copy takes exactly what the untied lm_head's own shard takes.
    for (int st = 0; st < 2; ++st) CHECK(a.stages[st].memory_bytes == b.stages[st].memory_bytes);

    // Compute: the tied lm_head runs the same GEMMs on the last stage as an untied one (forward,
    // input and weight gradients of tokens x V/T x h), also under the per-operation model, which
    // costs a GEMM by its shape (the weight matrix read included), not by the layer's parameters.
    const clusters::Cluster dgx = test::preset("dgx-a100");
    PlannerOptions per_op = sgd_options(8);
    per_op.compute = ComputeModel::per_operation;
    const CostModel tied_op(net, dgx, per_op), untied_op(untied_net, dgx, per_op);
    const PipelineScore c = score_pipeline(tied_op, s, tensor_layouts(tied_op, 2)),
                        d = score_pipeline(untied_op, s, tensor_layouts(untied_op, 2));
    REQUIRE(c.stages.size() == 2);
    CHECK(c.plan.layers[36].fwd_compute_s > 0);
    CHECK(c.plan.layers[36].fwd_compute_s == d.plan.layers[36].fwd_compute_s);
    CHECK(c.plan.layers[36].bwd_compute_s == d.plan.layers[36].bwd_compute_s);
    CHECK(c.stages[1].forward_s == Approx(d.stages[1].forward_s).epsilon(1e-12));
    CHECK(c.stages[1].backward_s == Approx(d.stages[1].backward_s).epsilon(1e-12));
}

TEST_CASE("tied lm_head on the same stage as wte: one weight, no copy, no extra all-reduce",
          "[planner][pipeline][tied]") {
    const networks::Network net = network(true);
    const clusters::Cluster cluster = test::hand_cluster(kBandwidth, kLatency);
    const CostModel model(net, cluster, sgd_options(4));
    const std::vector<Layout> layouts = tensor_layouts(model, 2);
    PipelineSpec s;  // T = 2, S = 1, R = 2, M = 2: one stage holds both
    s.tensor = 2;
    s.replicas = 2;
    s.micro_batches = 2;
    s.stage_first = {1};
    const LayerTable table = make_layer_table(model, 2, 2, layouts);
    CHECK(tied_copies(table, s).empty());
    const PipelineProgram program = pipeline_program(model, s, layouts);
    CHECK(program.tied.empty());
    CHECK(program.sync[36].empty());  // lm_head's weight is wte's: synchronised once, at wte
    REQUIRE(program.sync[1].size() == 1);
    // The stage's weights: wte 1024 + wpe 16 x 32 = 512 + 4 blocks x 6448 + ln_f 64 = 27392
    // parameters, 109568 B; the untied network's lm_head adds its own 1024-parameter shard.
    const WorstStageMemory worst = worst_stage_memory(table, s);
    CHECK(worst.memory.weights == (1024 + 512 + 4 * kBlockParams + 64) * 4);
    const networks::Network untied_net = network(false);
    const CostModel untied(untied_net, cluster, sgd_options(4));
    const LayerTable untied_table = make_layer_table(untied, 2, 2, tensor_layouts(untied, 2));
    CHECK(worst_stage_memory(untied_table, s).memory.weights == (1024 + 512 + 4 * kBlockParams + 64 + kCopyParams) * 4);
}

}  // namespace dnnplan::planner
