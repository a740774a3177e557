// Folded exchanges (simulator/README.md, "Folded exchanges"): a pair exchange's two messages replayed
// as one flow on links that carry both directions as one resource, against the unfolded replay
// (split-duplex links, both messages). Every figure compared is computed here by the two replays.
#include <catch2/catch.hpp>
#include <cstdio>

#include "planner/search.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/replay_base.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using simulator::test::builtin_network;
using simulator::test::options_for;
using simulator::test::preset_cluster;

namespace {

struct Runs {
    simulator::SimResult folded, full;
};

// `plan` replayed on cori-knl's dragonfly (shared router and global links) folded and not.
Runs both(const planner::CostModel& model, const planner::ScoredPlan& plan, bool lazy_sharing, bool lone_flows) {
    simulator::SimOptions sim;
    sim.platform.lazy_sharing = lazy_sharing;
    sim.fold_lone_flows = lone_flows;
    Runs out;
    out.folded = simulator::simulate(model, plan, sim);
    sim.fold_exchanges = false;
    out.full = simulator::simulate(model, plan, sim);
    return out;
}

double bytes_on_links(const simulator::SimResult& r) { return r.links.at("bytes_on_links").get<double>(); }

}  // namespace

// Pure batch plans: every call is a recursive-doubling or Rabenseifner all-reduce over a power of
// two, so every step is a pair exchange and the equivalence is exact: the same iteration, sync, critical
// rank and bytes on links (a folded flow counts both directions' bytes on the links both crossed).
TEST_CASE("folded exchanges equal the unfolded replay on cori-knl's dragonfly (pair exchanges only)",
          "[sim][folded]") {
    clusters::Cluster cluster = preset_cluster("cori-knl");
    for (const std::string net : {"resnet50", "vgg16"})
        for (bool overlap : {true, false}) {
            INFO(net << (overlap ? ", overlapped sync" : ", sync after the backward pass"));
            networks::Network network = builtin_network(net);
            planner::CostModel model(network, cluster, options_for(network, 64, overlap));
            planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, 64}));
            Runs r = both(model, plan, false, false);
            CHECK_FALSE(r.folded.reduction.empty());
            CHECK(r.full.reduction.empty());
            CHECK(r.folded.messages == r.full.messages);  // the plan's messages, counted by each sender
            CHECK(r.folded.simulated.iteration_s == Approx(r.full.simulated.iteration_s).epsilon(1e-9));
            CHECK(r.folded.simulated.sync_total_s == Approx(r.full.simulated.sync_total_s).epsilon(1e-9));
            CHECK(r.folded.critical_rank == r.full.critical_rank);
            CHECK(bytes_on_links(r.folded) == Approx(bytes_on_links(r.full)).epsilon(1e-12));
            // SimGrid's lazy update (its default) orders simultaneous events differently on the two
            // platforms; held to issue 20's 0.5%.
            Runs lazy = both(model, plan, true, false);
            std::printf("folded %s overlap %d: full update %.9f / %.9f ms, lazy %.9f / %.9f ms (folded / unfolded)\n",
                        net.c_str(), overlap ? 1 : 0, 1e3 * r.folded.simulated.iteration_s,
                        1e3 * r.full.simulated.iteration_s, 1e3 * lazy.folded.simulated.iteration_s,
                        1e3 * lazy.full.simulated.iteration_s);
            CHECK(lazy.folded.simulated.iteration_s == Approx(lazy.full.simulated.iteration_s).epsilon(0.005));
        }
}

// The planner's best plan at P = 128 (per-layer) has halos over 4 parts and shifts: lone flows. The
// fold steps aside unless asked; asked, the lone flows share folded links with both directions'
// traffic (an approximation, held to 0.5% here: measured +0.41% with the lazy update).
TEST_CASE("folded exchanges step aside for lone flows unless asked, and stay within 0.5% when asked",
          "[sim][folded]") {
    networks::Network network = builtin_network("resnet50");
    clusters::Cluster cluster = preset_cluster("cori-knl");
    planner::CostModel model(network, cluster, options_for(network, 128, true));
    const planner::SearchResult found = planner::search(model);
    REQUIRE(found.best() != nullptr);
    REQUIRE(found.best()->strategy == planner::Strategy::per_layer);
    const planner::ScoredPlan& plan = found.best()->plan;
    simulator::SimOptions sim;
    CHECK(simulator::simulate(model, plan, sim).reduction.empty());
    Runs r = both(model, plan, true, true);
    CHECK_FALSE(r.folded.reduction.empty());
    CHECK(r.folded.messages == r.full.messages);
    CHECK(r.folded.simulated.iteration_s == Approx(r.full.simulated.iteration_s).epsilon(0.005));
    Runs exact = both(model, plan, false, true);
    std::printf("folded with lone flows, resnet50 P = 128: lazy %.6f / %.6f ms, full update %.6f / %.6f ms\n",
                1e3 * r.folded.simulated.iteration_s, 1e3 * r.full.simulated.iteration_s,
                1e3 * exact.folded.simulated.iteration_s, 1e3 * exact.full.simulated.iteration_s);
    CHECK(bytes_on_links(r.folded) == Approx(bytes_on_links(r.full)).epsilon(1e-12));
}

// Which calls are made of pair exchanges only, from clusters::rank_steps's partners by hand: recursive
// doubling pairs i with i xor 2^k at step k, Rabenseifner (power of two) likewise in both halves, a
// ring over 2 ranks sends to and receives from the other one; a ring over 4 sends to i + 1 and
// receives from i - 1, the pairwise all-to-all over 4 to i + k from i - k (only k = 2 pairs), a halo
// over 3 parts sends right while it receives from the left.
TEST_CASE("pair exchanges: which calls fold exactly", "[sim][folded]") {
    using clusters::Algorithm;
    using clusters::Collective;
    auto call = [](Collective c, Algorithm a, int g, planner::CommKind kind = planner::CommKind::all_reduce) {
        planner::CommCall out;
        out.kind = kind;
        out.collective = c;
        out.algorithm = clusters::CollectiveAlgorithm(a);
        out.group = clusters::GroupPlacement{g, 1};
        out.bytes = 4096;
        return out;
    };
    CHECK(simulator::pair_exchanges_only(call(Collective::all_reduce, Algorithm::recursive_doubling, 8)));
    CHECK(simulator::pair_exchanges_only(call(Collective::all_reduce, Algorithm::rabenseifner, 16)));
    CHECK(simulator::pair_exchanges_only(call(Collective::all_gather, Algorithm::recursive_doubling, 4)));
    CHECK(simulator::pair_exchanges_only(call(Collective::all_reduce, Algorithm::ring, 2)));
    CHECK(simulator::pair_exchanges_only(call(Collective::all_to_all, Algorithm::pairwise, 2)));
    CHECK(simulator::pair_exchanges_only(
        call(Collective::all_reduce, Algorithm::ring, 2, planner::CommKind::halo)));  // a halo of 2 parts
    CHECK_FALSE(simulator::pair_exchanges_only(call(Collective::all_reduce, Algorithm::ring, 4)));
    CHECK_FALSE(simulator::pair_exchanges_only(call(Collective::all_to_all, Algorithm::pairwise, 4)));
    CHECK_FALSE(simulator::pair_exchanges_only(call(Collective::all_reduce, Algorithm::ring, 3, planner::CommKind::halo)));
}
