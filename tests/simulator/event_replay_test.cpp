// The event-driven replay of layer-parallel plans (simulator/README.md, "Event-driven replay")
// against the replay with one actor per rank and stream. Both replay the same program with the same
// flows, each started when its sender and its receiver have both posted it; only the machinery
// differs (state machines advanced from SimGrid's completion signal instead of actors blocking on
// their comms). Every figure compared is computed here by the two replays.
#include <catch2/catch.hpp>

#include "planner/search.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using simulator::test::builtin_network;
using simulator::test::preset_cluster;

namespace {

struct Runs {
    simulator::SimResult events, actors;
};

// The planner's best plan (per-layer at these sizes: halos, redistributions, syncs over groups of
// 2 to P ranks) replayed both ways on `topology`.
Runs both(const std::string& net, int procs, const std::string& topology, bool overlap, bool lazy_sharing) {
    networks::Network network = builtin_network(net);
    clusters::Cluster cluster = preset_cluster("cori-knl");
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = 256;
    options.dtype = network.dtype;
    options.overlap_sync = overlap;
    planner::CostModel model(network, cluster, options);
    const planner::SearchResult found = planner::search(model);
    REQUIRE(found.best() != nullptr);
    REQUIRE(found.best()->strategy == planner::Strategy::per_layer);
    const planner::ScoredPlan& plan = found.best()->plan;
    simulator::SimOptions sim;
    sim.platform.topology = topology;
    sim.platform.lazy_sharing = lazy_sharing;
    Runs out;
    sim.event_driven = true;
    out.events = simulator::simulate(model, plan, sim);
    sim.event_driven = false;
    out.actors = simulator::simulate(model, plan, sim);
    return out;
}

}  // namespace

TEST_CASE("the event-driven replay equals the actors' on a star (no shared link)", "[sim][events]") {
    for (bool overlap : {true, false}) {
        INFO((overlap ? "overlapped sync" : "sync after the backward pass"));
        Runs r = both("vgg16", 64, "star", overlap, true);
        CHECK(r.events.messages == r.actors.messages);
        CHECK(r.events.actors == r.actors.actors);  // rank streams replayed: 2 P or P
        CHECK(r.events.simulated.iteration_s == Approx(r.actors.simulated.iteration_s).epsilon(1e-9));
        CHECK(r.events.simulated.sync_total_s == Approx(r.actors.simulated.sync_total_s).epsilon(1e-9));
        CHECK(r.events.critical_rank == r.actors.critical_rank);
    }
}

// On the dragonfly flows share links. With every share recomputed at every event (network/optim:Full)
// both replays give the same iteration; SimGrid's lazy update (its default) gives the actors' replay
// a slightly different one (0.1% here, measured once: -0.11% for resnet50 at P = 128, -0.13% at
// P = 256, +0.31% at P = 512). The event-driven replay under the lazy update kept the full update's
// figure to 1e-9 before the batch-norm statistics all-reduces were costed, and 4.5e-5 after: an
// observation, not an equivalence, so both lazy figures are held to the same 0.5%.
TEST_CASE("the event-driven replay equals the actors' on cori-knl's dragonfly with full max-min updates",
          "[sim][events]") {
    Runs full = both("resnet50", 128, "cluster", true, false);
    CHECK(full.events.messages == full.actors.messages);
    CHECK(full.events.simulated.iteration_s == Approx(full.actors.simulated.iteration_s).epsilon(1e-9));
    CHECK(full.events.simulated.sync_exposed_s == Approx(full.actors.simulated.sync_exposed_s).epsilon(1e-9));
    Runs lazy = both("resnet50", 128, "cluster", true, true);
    CHECK(lazy.events.simulated.iteration_s == Approx(full.events.simulated.iteration_s).epsilon(0.005));
    CHECK(lazy.actors.simulated.iteration_s == Approx(full.actors.simulated.iteration_s).epsilon(0.005));
}
