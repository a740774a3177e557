// Replay of plans made at k processes per node (issue 16, item 5): the simulator builds its
// platform from the CostModel's cluster, which is the node seen by k processes (k hosts per node
// joined by the shared-memory link), so a contention-free replay must reproduce the model as it
// does for one process per node (simulator_test.cpp, "agreement").
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/search.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;

TEST_CASE("a plan at 2 processes per node replays as the model predicts on a star", "[sim][agreement]") {
    clusters::Cluster frontera =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/frontera.json");
    networks::Network vgg16 = networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/vgg16.json");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // as the agreement table: one rate, no optimizer step
    options.procs = 64;                                // 32 nodes x 2 processes
    options.batch = vgg16.default_batch;
    options.overlap_sync = false;  // every message of a rank sequential: nothing shares a link
    options.processes_per_node = 2;
    planner::CostModel model(vgg16, frontera, options);
    REQUIRE(model.cluster().devices_per_node == 2);
    planner::SearchResult result = planner::search(model);
    REQUIRE(result.feasible_count >= 3);
    int replayed = 0;
    bool some_intra_node = false;
    for (int i = 0; i < result.feasible_count; ++i) {
        const planner::Candidate& c = result.ranked[i];
        if (c.pipeline.active()) continue;  // pipelines have their own replay and table
        for (const auto& call : c.plan.calls) some_intra_node |= call.group.per_node == 2 && call.group.size == 2;
        simulator::SimOptions sim;
        sim.platform.topology = "star";
        simulator::SimResult r = simulator::simulate(model, c.plan, sim);
        INFO(planner::to_string(c.strategy) << " " << c.label);
        CHECK(r.platform_hosts == 64);
        const double rel = (r.simulated.iteration_s - c.plan.cost.iteration_s) / c.plan.cost.iteration_s;
        CHECK(std::fabs(rel) < 0.01);
        ++replayed;
    }
    CHECK(replayed >= 3);
    CHECK(some_intra_node);  // some plan has a group of the two processes of one node
}
