// The reduced replay (simulator/README.md, "Reduced replay") against the full one: where its
// conditions hold (CM02, built platform, T = devices per node, no sync group mixing tensor ranks,
// symmetric stage-internal calls), one actor per stage and the stage's collectives timed without
// SimGrid must give the full replay's iteration, on a star and on the cluster's fat tree (whose
// links then carry 1/T of a node's bandwidth). The figures compared are both computed here: the
// full replay with SimOptions::reduce = false, the reduced one with the default.
#include <catch2/catch.hpp>

#include "planner/pipeline.hpp"
#include "planner/search.hpp"
#include "sim_test_helpers.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;
using simulator::test::builtin_network;
using simulator::test::preset_cluster;

namespace {

struct Pair {
    simulator::SimResult full, reduced;
};

Pair both(const std::string& topology, int procs, planner::PipelineSpec spec, std::int64_t batch,
          simulator::NetworkModel network_model = simulator::NetworkModel::cm02) {
    networks::Network network = builtin_network("gpt3-175b");
    clusters::Cluster cluster = preset_cluster("dgx-a100");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = procs;
    options.batch = batch;
    options.dtype = network.dtype;
    planner::CostModel model(network, cluster, options);
    planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
    simulator::SimOptions sim;
    sim.platform.topology = topology;
    sim.platform.network_model = network_model;
    Pair out;
    out.reduced = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
    sim.reduce = false;
    out.full = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
    return out;
}

planner::PipelineSpec spec_of(int tensor, int stages, int replicas, int micro, planner::Schedule schedule) {
    planner::PipelineSpec spec;
    spec.tensor = tensor;
    spec.stages = stages;
    spec.replicas = replicas;
    spec.micro_batches = micro;
    spec.schedule = schedule;
    return spec;
}

}  // namespace

TEST_CASE("the reduced replay of a T = 8 pipeline equals the full replay, star and fat tree", "[sim][reduced]") {
    const auto spec = spec_of(8, 4, 2, 4, planner::Schedule::one_f_one_b);
    for (const std::string topology : {"star", "cluster"}) {
        INFO(topology);
        Pair p = both(topology, 64, spec, 16);
        CHECK_FALSE(p.reduced.reduction.empty());
        CHECK(p.full.reduction.empty());
        // 64 ranks: 8 stage copies x (main + sync actor) reduced, 64 x 2 in full.
        CHECK(p.reduced.actors == 16);
        CHECK(p.full.actors == 128);
        CHECK(p.reduced.messages < p.full.messages);
        CHECK(p.reduced.simulated.iteration_s == Approx(p.full.simulated.iteration_s).epsilon(1e-9));
        CHECK(p.reduced.simulated.sync_exposed_s ==
              Approx(p.full.simulated.sync_exposed_s).epsilon(1e-6).margin(1e-12));
        // The per-link report: the most loaded link (a node's intra link, the tensor collectives')
        // carries as much, as long, in both (the reduced one adds the timed calls' messages).
        const Json& r = p.reduced.links.at("most_loaded").at(0);
        const Json& f = p.full.links.at("most_loaded").at(0);
        CHECK(r.at("bytes").get<double>() == Approx(f.at("bytes").get<double>()).epsilon(1e-9));
        CHECK(r.at("busy_s").get<double>() == Approx(f.at("busy_s").get<double>()).epsilon(1e-6));
    }
}

TEST_CASE("the reduced replay equals the full one with GPipe, ZeRO-1 and recomputation on the fat tree",
          "[sim][reduced]") {
    auto spec = spec_of(8, 2, 4, 2, planner::Schedule::gpipe);
    spec.zero = true;
    spec.recompute = planner::Recompute::full;
    Pair p = both("cluster", 64, spec, 16);
    CHECK_FALSE(p.reduced.reduction.empty());
    CHECK(p.reduced.simulated.iteration_s == Approx(p.full.simulated.iteration_s).epsilon(1e-9));
}

TEST_CASE("the reduced replay steps aside where its conditions fail (LV08)", "[sim][reduced]") {
    const auto spec = spec_of(8, 2, 1, 2, planner::Schedule::one_f_one_b);
    Pair p = both("star", 16, spec, 4, simulator::NetworkModel::lv08);
    CHECK(p.reduced.reduction.empty());
    CHECK(p.reduced.actors == p.full.actors);
    CHECK(p.reduced.simulated.iteration_s == p.full.simulated.iteration_s);
}

namespace {

Pair both_batch(const std::string& net, int procs, bool overlap, const std::string& cluster_name = "cori-knl") {
    networks::Network network = builtin_network(net);
    clusters::Cluster cluster = preset_cluster(cluster_name);
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = procs;
    options.batch = 4LL * procs;
    options.dtype = network.dtype;
    options.overlap_sync = overlap;
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, procs}));
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    Pair out;
    out.reduced = simulator::simulate(model, plan, sim);
    sim.reduce = false;
    out.full = simulator::simulate(model, plan, sim);
    return out;
}

}  // namespace

TEST_CASE("the symmetric replay of a pure batch plan on a star equals the full replay", "[sim][reduced]") {
    for (const std::string net : {"vgg16", "resnet50"})
        for (bool overlap : {true, false}) {
            INFO(net << (overlap ? ", overlapped sync" : ", sync after the backward pass"));
            Pair p = both_batch(net, 64, overlap);
            CHECK_FALSE(p.reduced.reduction.empty());
            CHECK(p.reduced.actors == (overlap ? 2 : 1));
            CHECK(p.full.actors == (overlap ? 128 : 64));
            CHECK(p.reduced.simulated.iteration_s == Approx(p.full.simulated.iteration_s).epsilon(1e-9));
            CHECK(p.reduced.simulated.sync_exposed_s ==
                  Approx(p.full.simulated.sync_exposed_s).epsilon(1e-6).margin(1e-12));
        }
}

TEST_CASE("the symmetric replay steps aside on a contended platform (cori-knl's dragonfly)", "[sim][reduced]") {
    networks::Network network = builtin_network("resnet50");
    clusters::Cluster cluster = preset_cluster("cori-knl");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 16;
    options.batch = 64;
    options.dtype = network.dtype;
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, 16}));
    simulator::SimOptions sim;  // the cluster's own topology
    // Every rank and its sync stream replayed (the folded exchanges may apply: every call of a pure
    // batch plan is a pair exchange; "Folded exchanges" in simulator/README.md).
    const simulator::SimResult r = simulator::simulate(model, plan, sim);
    CHECK(r.actors == 32);
    CHECK(r.reduction.find("mirror host") == std::string::npos);
    sim.fold_exchanges = false;
    CHECK(simulator::simulate(model, plan, sim).reduction.empty());
}

TEST_CASE("the per-link report counts every byte sent twice on a star (up and down links)", "[sim][links]") {
    // vgg16 pure batch at P = 4: the only messages are the gradient all-reduces. Their bytes, by
    // expanding clusters::rank_steps for every member (independently of the replay), each cross the
    // sender's up link and the receiver's down link of the star.
    networks::Network network = builtin_network("vgg16");
    clusters::Cluster cluster = preset_cluster("cori-knl");
    planner::PlannerOptions options;
    options.compute = planner::ComputeModel::uniform;  // the hand schedules use one rate, no optimizer step
    options.procs = 4;
    options.batch = 16;
    options.dtype = network.dtype;
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, 4}));
    double sent = 0;
    for (const planner::CommCall& call : plan.calls)
        for (int i = 0; i < call.group.size; ++i)
            for (const auto& step : clusters::rank_steps(call.collective, call.algorithm, call.group, call.bytes, i))
                if (step.send_to >= 0) sent += static_cast<double>(std::llround(step.send_bytes));
    REQUIRE(sent > 0);
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    sim.reduce = false;
    sim.top_links = 100;
    simulator::SimResult full = simulator::simulate(model, plan, sim);
    CHECK(full.links.at("links_used").get<int>() == 8);  // 4 ranks x (up, down)
    CHECK(full.links.at("bytes_on_links").get<double>() == Approx(2 * sent).epsilon(1e-12));
    for (const Json& l : full.links.at("most_loaded")) {
        CHECK(l.at("busy_fraction").get<double>() <= 1.0 + 1e-12);
        CHECK(l.at("utilisation").get<double>() <= l.at("busy_fraction").get<double>() + 1e-12);
        CHECK(l.at("bytes").get<double>() == Approx(sent / 4).epsilon(1e-12));  // every rank sends as much
    }
    // The symmetric replay: rank 0's up link carries what each rank sends, with the same busy time.
    sim.reduce = true;
    simulator::SimResult reduced = simulator::simulate(model, plan, sim);
    REQUIRE_FALSE(reduced.reduction.empty());
    const Json& top = reduced.links.at("most_loaded").at(0);
    CHECK(top.at("bytes").get<double>() == Approx(sent / 4).epsilon(1e-12));
    CHECK(top.at("busy_s").get<double>() ==
          Approx(full.links.at("most_loaded").at(0).at("busy_s").get<double>()).epsilon(1e-9));
}
