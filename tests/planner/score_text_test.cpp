// The search's cheap scoring paths against the full ones: a score without call texts carries the
// same numbers as the described score, and a segment's backward part (SegmentCost::backward_s,
// which the per-layer search's lower bound of the iteration reads) is what the recorded plan puts
// in the backward pass for the same layers.
#include <catch2/catch.hpp>

#include "planner_test_helpers.hpp"

#include <vector>

#include "clusters/cluster.hpp"
#include "planner/cost_model.hpp"
#include "planner/stage_evaluator.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using dnnplan::planner::test::builtin;
using dnnplan::planner::test::hand_cluster;
using dnnplan::planner::test::options;
using dnnplan::planner::test::three_linear;

namespace {
// Each anchor's first candidate that splits more than the batch, so that the layers communicate
// in both passes (model and domain splits) and redistribute between segments.
std::vector<Layout> mixed_layouts(const CostModel& model) {
    std::vector<Layout> layouts(model.network().layers.size());
    for (int a : model.anchors()) {
        const std::vector<Layout> candidates = model.candidates(a);
        layouts[a] = candidates.front();
        for (const Layout& l : candidates)
            if (l.n < model.options().procs) {
                layouts[a] = l;
                break;
            }
    }
    return layouts;
}
}  // namespace

TEST_CASE("a score without call texts has the described score's numbers and calls", "[planner][cost]") {
    const networks::Network net = builtin("resnet50");
    const clusters::Cluster cluster = hand_cluster();
    const CostModel model(net, cluster, options(16, 32));
    const std::vector<Layout> layouts = mixed_layouts(model);
    const ScoredPlan described = model.score(layouts);
    const ScoredPlan omitted = model.score(layouts, CostModel::CallText::omitted);
    REQUIRE(described.cost.feasible);
    REQUIRE(described.calls.size() == omitted.calls.size());
    REQUIRE(described.calls.size() > 100);
    ScoredPlan cleared = described;
    for (CommCall& c : cleared.calls) {
        CHECK_FALSE(c.what.empty());  // every call is described for people
        c.what.clear();
    }
    for (const CommCall& c : omitted.calls) CHECK(c.what.empty());
    CHECK(cleared == omitted);  // every other field, and the totals, exactly
}

TEST_CASE("a segment's backward seconds are the recorded backward compute, communication and accumulation",
          "[planner][cost]") {
    // Megatron's column then row split: fc1 co2 leaves its output split by features, which fc2's
    // ci2 reads as it is; fc2's partial sums are all-reduced, which fc3's co2 reads whole. No
    // redistribution between the segments (layer_costs would charge those to the consumer,
    // segment_cost leaves them to the edges), and fc3's input gradient is all-reduced backward.
    const networks::Network net = three_linear();
    const clusters::Cluster cluster = hand_cluster();
    const PlannerOptions o = options(2, 4);
    const CostModel model(net, cluster, o);
    std::vector<Layout> layouts(net.layers.size());
    layouts[1] = Layout{1, 2, 1, 1, 1};
    layouts[2] = Layout{1, 1, 2, 1, 1};
    layouts[3] = Layout{1, 2, 1, 1, 1};
    const ScoredPlan plan = model.layer_costs(layouts);
    REQUIRE(plan.cost.feasible);
    for (const CommCall& c : plan.calls) CHECK(c.kind != CommKind::redistribution);
    REQUIRE(plan.layers[3].bwd_comm_s > 0);
    const double accumulate_per_param = accumulation_per_param(model.cluster().device, o, 1);
    for (int a : model.anchors()) {
        const SegmentCost cost = model.segment_cost(a, layouts[a]);
        double backward = 0, all = 0, sync = 0;
        for (int i : model.segment(a)) {
            const LayerCost& lc = plan.layers[i];
            const double accumulate = accumulate_per_param * lc.local_params;
            backward += lc.bwd_compute_s + lc.bwd_comm_s + accumulate;
            all += lc.fwd_compute_s + lc.fwd_comm_s + lc.optimizer_step_s + lc.bwd_compute_s + lc.bwd_comm_s + accumulate;
            sync += lc.sync_s;
        }
        INFO("segment of " << net.layers[a].name);
        CHECK(cost.backward_s == Approx(backward).epsilon(1e-12));
        CHECK(cost.seconds == Approx(all).epsilon(1e-12));
        CHECK(cost.sync_s == Approx(sync).epsilon(1e-12));
        CHECK(cost.backward_s < cost.seconds);  // the forward pass takes time too
    }
}
