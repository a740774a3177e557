// Tied weights in the pipeline replay (label sim): the embedding group's all-reduce of a tied
// lm_head on the last stage (PipelineProgram::tied) runs after the syncs, between tensor rank t of
// both stages, as the stage evaluator costs it.
#include <catch2/catch.hpp>

#include "planner/pipeline.hpp"
#include "planner/pipeline_program.hpp"
#include "simulator/simulator.hpp"
#include "sim_test_helpers.hpp"

using namespace dnnplan;
using namespace dnnplan::simulator::test;

TEST_CASE("the replay runs a tied lm_head's embedding-group all-reduce after the schedule, as the model costs it",
          "[sim][pipeline]") {
    // tests/validators/data/gpt-pipe-tied.json (lm_head tied to wte) and gpt-pipe.json (untied) on
    // 4 single-device nodes of 10 GB/s and 1 us, T = 2, S = 2, M = 2, one replica, 1F1B. The only
    // difference between the two plans is the tied one's all-reduce of wte's shard, 64 / 2 x 32 x
    // 4 B = 4096 B between ranks t and t + 2: one recursive-doubling exchange, 1e-6 + 4096 / 1e10 =
    // 1.4096e-6 s, after stage 0's last backward (there is no other sync with one replica).
    const std::string data = std::string(DNNPLAN_SOURCE_DIR) + "/tests/validators/data/";
    const networks::Network tied = networks::load_network_file(data + "gpt-pipe-tied.json");
    const networks::Network untied = networks::load_network_file(data + "gpt-pipe.json");
    const clusters::Cluster cluster = fast_cluster(4);
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;
    options.procs = 4;
    options.batch = 8;
    planner::PipelineSpec spec;
    spec.tensor = 2;
    spec.stages = 2;
    spec.micro_batches = 2;
    spec.schedule = planner::Schedule::one_f_one_b;
    spec.stage_first = {1, 19};  // the cut between blocks h.1 and h.2
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    auto run = [&](const networks::Network& net, double& predicted) {
        planner::CostModel model(net, cluster, options);
        const std::vector<planner::Layout> layouts = planner::tensor_layouts(model, 2);
        predicted = planner::score_pipeline(model, spec, layouts).plan.cost.iteration_s;
        return simulator::simulate_pipeline(model, spec, layouts, sim);
    };
    double predicted_tied = 0, predicted_untied = 0;
    const simulator::SimResult a = run(tied, predicted_tied), b = run(untied, predicted_untied);
    const double all_reduce_s = 1e-6 + 4096 / 1e10;
    CHECK(predicted_tied - predicted_untied == Approx(all_reduce_s).epsilon(1e-9));
    CHECK(a.simulated.iteration_s - b.simulated.iteration_s == Approx(all_reduce_s).epsilon(1e-6));
    // The tie adds no disagreement between replay and model: the two plans' gaps are equal (the
    // untied plan's own gap, 2.048e-7 s of 5.5e-5 s here, is an observation, equal to 2048 B at 10 GB/s,
    // the size of one boundary slice; not the tie's, left alone).
    CHECK(a.simulated.iteration_s - predicted_tied ==
          Approx(b.simulated.iteration_s - predicted_untied).margin(1e-12));
    CHECK(a.simulated.iteration_s == Approx(predicted_tied).epsilon(0.01));
    // One message per rank: ranks 0-3 each send once in their pair's exchange.
    CHECK(a.messages - b.messages == 4);
}
