// The incremental scoring of the per-layer search's local improvement (planner/rescore.hpp)
// against the full score it replaces: on random single-anchor moves of several networks it must
// give model.score()'s plan exactly, and a whole search must rank the same plans with the same
// figures whichever way its trials are scored (the reference computed here by the full path).
#include <catch2/catch.hpp>

#include "planner_test_helpers.hpp"

#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "planner/rescore.hpp"
#include "planner/search.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using dnnplan::planner::test::builtin;
using dnnplan::planner::test::preset;

namespace {
PlannerOptions plan_options(const networks::Network& net, std::int64_t procs) {
    PlannerOptions o;
    o.procs = procs;
    o.batch = net.default_batch;
    o.dtype = net.dtype;
    o.optimizer = default_optimizer(net);  // as the CLI chooses it
    return o;
}

bool close(double x, double y) { return std::abs(x - y) <= 1e-12 * std::max(std::abs(x), std::abs(y)); }

// `moves` random single-anchor changes from each anchor's first candidate, every other one adopted;
// each scored by the rescorer and by model.score() of the same layouts.
void check_random_moves(const std::string& network, const std::string& cluster_name, std::int64_t procs, int moves,
                        unsigned seed) {
    INFO(network << " on " << cluster_name << " at P = " << procs);
    const networks::Network net = builtin(network);
    const clusters::Cluster cluster = preset(cluster_name);
    const CostModel model(net, cluster, plan_options(net, procs));
    std::vector<Layout> layouts(net.layers.size());
    for (int a : model.anchors()) layouts[a] = model.candidates(a).front();
    PlanRescorer rescorer(model, layouts);
    std::mt19937 random(seed);
    const std::vector<int>& anchors = model.anchors();
    int moved_out_dists = 0;
    for (int move = 0; move < moves; ++move) {
        const int a = anchors[std::uniform_int_distribution<std::size_t>(0, anchors.size() - 1)(random)];
        const std::vector<Layout> candidates = model.candidates(a);
        Layout l = candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(random)];
        // Now and then a layout the layer cannot take (more parts than P): an infeasible plan.
        if (move % 17 == 16) l = Layout{static_cast<int>(procs) * 2, 1, 1, 1, 1};
        std::vector<Layout> changed = rescorer.layouts();
        changed[a] = l;
        moved_out_dists += model.segment_output_dist(a, l) != model.segment_output_dist(a, layouts[a]);
        const ScoredPlan full = model.score(changed, CostModel::CallText::omitted);
        const ScoredPlan incremental = rescorer.score_with(a, l);
        INFO("move " << move << ": anchor " << a << " to " << to_string(l));
        CHECK(close(incremental.cost.iteration_s, full.cost.iteration_s));
        CHECK(incremental.cost.feasible == full.cost.feasible);
        CHECK(incremental.cost.reason == full.cost.reason);
        CHECK(incremental == full);  // every layer, call and total, exactly
        if (move % 2 == 1 && l != Layout{static_cast<int>(procs) * 2, 1, 1, 1, 1}) {
            rescorer.adopt(a, l);
            layouts = rescorer.layouts();
        }
    }
    // The moves change segment outputs' dists, so the consumers' redistributions were costed again.
    CHECK(moved_out_dists > moves / 4);
    // After the moves, the kept plan is still the full score of its layouts.
    const Layout first = rescorer.layouts()[anchors.front()];
    CHECK(rescorer.score_with(anchors.front(), first) == model.score(rescorer.layouts(), CostModel::CallText::omitted));
}

// The ranked candidates of a whole CLI search (every processes-per-node choice), top `k`, with the
// local improvement's trials scored incrementally and in full.
void check_same_ranking(const std::string& network, std::int64_t procs, std::size_t k) {
    INFO(network << " at P = " << procs);
    const networks::Network net = builtin(network);
    const clusters::Cluster cluster = preset("cori-knl");
    SearchOptions full;
    full.trial_scoring = TrialScoring::full;
    const PlacementSearch before = search_processes_per_node(net, cluster, plan_options(net, procs), full);
    const PlacementSearch after = search_processes_per_node(net, cluster, plan_options(net, procs));
    REQUIRE(before.result.ranked.size() == after.result.ranked.size());
    REQUIRE(before.result.feasible_count > 0);
    CHECK(before.model->options().processes_per_node == after.model->options().processes_per_node);
    for (std::size_t r = 0; r < std::min(k, before.result.ranked.size()); ++r) {
        const Candidate& x = before.result.ranked[r];
        const Candidate& y = after.result.ranked[r];
        INFO("rank " << r + 1 << ": " << to_string(x.strategy) << " " << x.label);
        CHECK(x.strategy == y.strategy);
        CHECK(x.grid == y.grid);
        CHECK(x.pipeline == y.pipeline);
        CHECK(x.label == y.label);
        CHECK(x.processes_per_node == y.processes_per_node);
        CHECK(close(x.plan.cost.iteration_s, y.plan.cost.iteration_s));
        CHECK(x.plan == y.plan);
    }
    // The per-layer plan is ranked among the first whichever rank it has: the same too.
    CHECK(before.result.find(Strategy::per_layer)->plan == after.result.find(Strategy::per_layer)->plan);
}
}  // namespace

TEST_CASE("incremental scores equal full scores on random single-anchor moves", "[planner][rescore]") {
    check_random_moves("googlenet", "cori-knl", 512, 120, 1);
    check_random_moves("resnet50", "cori-knl", 64, 120, 2);
    check_random_moves("vgg16", "cori-knl", 4096, 60, 3);
    check_random_moves("unet", "cori-knl", 16, 60, 4);
    check_random_moves("gpt2", "dgx-a100", 16, 60, 5);
}

TEST_CASE("a search ranks the same plans whether its trials are scored incrementally or in full",
          "[planner][rescore]") {
    check_same_ranking("googlenet", 512, 10);
    check_same_ranking("vgg16", 512, 10);
}

TEST_CASE("incremental and full trial scoring rank the same top 10 at several P", "[planner][rescore][slow]") {
    for (std::int64_t procs : {16, 128, 4096}) check_same_ranking("googlenet", procs, 10);
    for (std::int64_t procs : {16, 512, 4096}) check_same_ranking("resnet50", procs, 10);
    for (std::int64_t procs : {16, 128, 4096}) check_same_ranking("vgg16", procs, 10);
}
