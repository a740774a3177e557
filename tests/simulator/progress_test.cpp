// Issue 20, item 2 in the library: SimOptions::on_progress hears how much a run will replay and
// ends at all of it; SimOptions::max_seconds stops a run with SimulationStopped. (The CLI's
// pre-run line, exit status 3 and the missing output file: run_simulate_cli.sh.)
#include <catch2/catch.hpp>

#include "planner/search.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using simulator::test::builtin_network;
using simulator::test::preset_cluster;

namespace {

struct BatchCase {
    networks::Network network = builtin_network("vgg16");
    clusters::Cluster cluster = preset_cluster("cori-knl");  // CostModel keeps references
    planner::PlannerOptions options;
    explicit BatchCase(int procs) {
        options.procs = procs;
        options.batch = 4LL * procs;
        options.dtype = network.dtype;
    }
};

}  // namespace

TEST_CASE("progress reports the expected work before the run and all of it at the end", "[sim][progress]") {
    BatchCase c(16);
    planner::CostModel model(c.network, c.cluster, c.options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, 16}));
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    sim.reduce = false;  // every rank replayed: 16 main and 16 sync actors (overlap is on by default)
    std::vector<simulator::SimProgress> seen;
    sim.on_progress = [&](const simulator::SimProgress& p) { seen.push_back(p); };
    const simulator::SimResult result = simulator::simulate(model, plan, sim);
    REQUIRE(!seen.empty());
    const simulator::SimProgress& last = seen.back();
    CHECK(last.started);
    CHECK(last.ranks == 16);
    CHECK(last.actors == 32);
    CHECK(last.expected_messages == result.messages);
    CHECK(last.events == last.expected_messages + last.expected_steps);
    // vgg16 has 16 weighted layers with a forward and a backward compute each on every rank: at
    // least 16 x 2 x 16 = 512 steps (pooling and activation layers add theirs).
    CHECK(last.expected_steps >= 512);
    for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].events >= seen[i - 1].events);
}

TEST_CASE("max_seconds stops a long replay with SimulationStopped", "[sim][progress]") {
    BatchCase c(512);
    planner::CostModel model(c.network, c.cluster, c.options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, 512}));
    simulator::SimOptions sim;
    sim.reduce = false;  // the full replay on cori-knl's dragonfly: seconds of work, stopped after 0.05 s
    sim.max_seconds = 0.05;
    CHECK_THROWS_AS(simulator::simulate(model, plan, sim), simulator::SimulationStopped);
}
