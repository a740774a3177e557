// Router symmetry (simulator/README.md, "Router symmetry"): one node per dragonfly router replayed,
// its router's other nodes' side of each exchange as flows from their hosts, the router and global
// links at 1/R of their bandwidth, against the full replay (every rank, split-duplex links). Every
// figure compared is computed here by the two replays.
#include <catch2/catch.hpp>
#include <cstdio>

#include "planner/search.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using simulator::test::builtin_network;
using simulator::test::options_for;
using simulator::test::kData;
using simulator::test::preset_cluster;

namespace {

struct Runs {
    simulator::SimResult reduced, full;
};

Runs both(const planner::CostModel& model, const planner::ScoredPlan& plan, bool lazy_sharing) {
    simulator::SimOptions sim;
    sim.platform.lazy_sharing = lazy_sharing;
    sim.router_symmetry = true;
    Runs out;
    out.reduced = simulator::simulate(model, plan, sim);
    sim.reduce = false;  // --full
    out.full = simulator::simulate(model, plan, sim);
    return out;
}

// One all-reduce of `bytes` over all `procs` ranks with `algorithm`, alone in a plan.
planner::ScoredPlan one_call(const networks::Network& net, clusters::CollectiveAlgorithm algorithm, int procs,
                             double bytes) {
    planner::ScoredPlan plan;
    plan.layers.resize(net.layers.size());
    planner::CommCall call;
    call.layer = 1;
    call.kind = planner::CommKind::all_reduce;
    call.collective = clusters::Collective::all_reduce;
    call.algorithm = algorithm;
    call.group = clusters::GroupPlacement{procs, 1};
    call.bytes = bytes;
    call.what = "test";
    plan.calls.push_back(call);
    return plan;
}

}  // namespace

// Pure batch plans: every call a recursive-doubling or Rabenseifner all-reduce over a power of two
// (partners i xor 2^k), so rank xor 1, 2, 3 maps every call and cori-knl's routers (4 nodes each)
// onto themselves, and every message has its mirror: the reduction is exact.
TEST_CASE("router symmetry equals the full replay on cori-knl's dragonfly (xor-symmetric pair exchanges)",
          "[sim][router]") {
    clusters::Cluster cluster = preset_cluster("cori-knl");
    REQUIRE(cluster.topology.dragonfly_nodes_per_router == 4);
    for (const std::string net : {"resnet50", "vgg16"})
        for (bool overlap : {true, false}) {
            INFO(net << (overlap ? ", overlapped sync" : ", sync after the backward pass"));
            networks::Network network = builtin_network(net);
            planner::CostModel model(network, cluster, options_for(network, 64, overlap));
            planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, 64}));
            Runs r = both(model, plan, false);
            CHECK(r.reduced.reduction.find("one node per dragonfly router") != std::string::npos);
            CHECK(r.reduced.reduction.find("approximated") == std::string::npos);
            CHECK(r.full.reduction.empty());
            CHECK(4 * r.reduced.messages == r.full.messages);  // one rank in 4 sends
            CHECK(r.reduced.critical_rank % 4 == 0);
            CHECK(r.reduced.simulated.iteration_s == Approx(r.full.simulated.iteration_s).epsilon(1e-9));
            CHECK(r.reduced.simulated.sync_total_s == Approx(r.full.simulated.sync_total_s).epsilon(1e-9));
            // SimGrid's lazy update (its default) may order simultaneous events differently; issue
            // 20's 0.5%.
            Runs lazy = both(model, plan, true);
            std::printf("router %s overlap %d: full update %.9f / %.9f ms, lazy %.9f / %.9f ms (reduced / full)\n",
                        net.c_str(), overlap ? 1 : 0, 1e3 * r.reduced.simulated.iteration_s,
                        1e3 * r.full.simulated.iteration_s, 1e3 * lazy.reduced.simulated.iteration_s,
                        1e3 * lazy.full.simulated.iteration_s);
            CHECK(lazy.reduced.simulated.iteration_s == Approx(lazy.full.simulated.iteration_s).epsilon(0.005));
        }
}

// The planner's best plan at P = 128 (per-layer): halos over 4 parts and shifts inside a router are
// not xor-symmetric, so the replayed node's partners there are only assumed to post with it (an
// approximation; measured -0.11% with the lazy update, held to 0.5%).
TEST_CASE("router symmetry approximates the best resnet50 plan at P = 128 within 0.5%", "[sim][router]") {
    clusters::Cluster cluster = preset_cluster("cori-knl");
    networks::Network network = builtin_network("resnet50");
    planner::CostModel model(network, cluster, options_for(network, 128, true));
    const planner::SearchResult found = planner::search(model);
    REQUIRE(found.best() != nullptr);
    Runs r = both(model, found.best()->plan, true);
    std::printf("router resnet50 best P = 128: %.9f / %.9f ms (reduced / full)\n", 1e3 * r.reduced.simulated.iteration_s,
                1e3 * r.full.simulated.iteration_s);
    CHECK(r.reduced.reduction.find("lone flows approximated") != std::string::npos);
    CHECK(4 * r.reduced.messages == r.full.messages);
    CHECK(r.reduced.simulated.iteration_s == Approx(r.full.simulated.iteration_s).epsilon(0.005));
    // With the folded exchanges' approximation as well (--router-symmetry --fold-lone-flows): measured
    // +0.41%, the fold's own error at this size ("Folded exchanges"), held to 0.5%.
    simulator::SimOptions both_reductions;
    both_reductions.router_symmetry = true;
    both_reductions.fold_lone_flows = true;
    const simulator::SimResult folded = simulator::simulate(model, found.best()->plan, both_reductions);
    std::printf("router + folded resnet50 best P = 128: %.9f ms\n", 1e3 * folded.simulated.iteration_s);
    CHECK(folded.reduction.find("folded exchanges") != std::string::npos);
    CHECK(folded.reduction.find("one node per dragonfly router") != std::string::npos);
    CHECK(folded.simulated.iteration_s == Approx(r.full.simulated.iteration_s).epsilon(0.005));
}

TEST_CASE("router symmetry steps aside where a partner is neither in the router nor replayed", "[sim][router]") {
    // 8 ranks on cori-knl's dragonfly: two routers of 4 nodes.
    clusters::Cluster cluster = preset_cluster("cori-knl");
    networks::Network net = networks::load_network_file(kData + "two_linear.json");
    planner::PlannerOptions options;
    options.procs = 8;
    options.batch = 8;
    planner::CostModel model(net, cluster, options);
    simulator::SimOptions sim;
    sim.router_symmetry = true;
    using clusters::Algorithm;
    // A ring's partners are i +- 1: rank 3 exchanges with rank 4, another router and another lane.
    CHECK(simulator::simulate(model, one_call(net, Algorithm::ring, 8, 1 << 20), sim).reduction.empty());
    // Recursive doubling's partners are i xor 1, 2 (in the router) and i xor 4 (the same lane): exact.
    const auto rd = simulator::simulate(model, one_call(net, Algorithm::recursive_doubling, 8, 1 << 20), sim);
    CHECK(rd.reduction.find("one node per dragonfly router") != std::string::npos);
    CHECK(rd.reduction.find("approximated") == std::string::npos);
    // On a star the router symmetry has nothing to do (the symmetric replay takes it).
    sim.platform.topology = "star";
    CHECK(simulator::simulate(model, one_call(net, Algorithm::recursive_doubling, 8, 1 << 20), sim)
              .reduction.find("router") == std::string::npos);
}
