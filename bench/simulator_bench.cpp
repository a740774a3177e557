// Simulator speed (issue 5's and issue 20's scale targets). Counters: simulated messages, messages
// per wall and CPU second of the SimGrid run itself, the simulating process's peak memory, the
// ranks and actors, whether a reduced replay ran (simulator/README.md, "Reduced replay"), and the
// simulated and predicted iteration seconds. One iteration each: a run is seconds long and
// deterministic. The "Full" cases force the full replay of the same plan, for the agreement.
//   vgg16 / resnet50, pure batch (batch 4 x P), cori-knl, star: the symmetric replay (one rank);
//   vgg16 / resnet50, the planner's best plan (per-layer) at P = 4096, batch 256, on cori-knl's
//   own dragonfly: no reduction applies (minutes: filter with --benchmark_filter); "Events": the
//   event-driven replay (P = 512 only: quadratic in the flows in flight under SimGrid 3.32);
//   "Malloc": without the child's memory pool (SimOptions::memory_pool), for the CPU it saves;
//   gpt2 as a 4 x 4 x R pipeline on a dgx-a100 star (T = 4 < 8 devices: full replay);
//   gpt3-175b, the README's plan (T = 8 x S = 4 x R = 32, M = 48, 1F1B, ZeRO-1) on dgx-a100's fat tree;
//   "Folded": pair exchanges as one flow on links shared by both directions (simulator/README.md,
//   "Folded exchanges"): exact for pure batch on the dragonfly ("Unfolded" the reference), with
//   lone flows approximated for the best plans (halos); "Router": one node per dragonfly router
//   (simulator/README.md, "Router symmetry"), approximate for the best plans.
#include <benchmark/benchmark.h>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/pipeline.hpp"
#include "planner/search.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;

namespace {

networks::Network network_named(const std::string& name) {
    return networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json");
}
clusters::Cluster cluster_named(const std::string& name) {
    return clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/" + name + ".json");
}

void report(benchmark::State& state, const simulator::SimResult& result, double predicted) {
    state.counters["messages"] = static_cast<double>(result.messages);
    state.counters["simgrid_wall_s"] = result.wall_s;
    state.counters["messages_per_wall_s"] = result.wall_s > 0 ? result.messages / result.wall_s : 0;
    state.counters["simgrid_cpu_s"] = result.cpu_s;
    state.counters["messages_per_cpu_s"] = result.cpu_s > 0 ? result.messages / result.cpu_s : 0;
    state.counters["peak_rss_MiB"] = result.peak_rss_bytes / (1024.0 * 1024.0);
    state.counters["ranks"] = static_cast<double>(result.ranks);
    state.counters["actors"] = static_cast<double>(result.actors);
    state.counters["reduced"] = result.reduction.empty() ? 0 : 1;
    state.counters["simulated_iteration_s"] = result.simulated.iteration_s;
    state.counters["predicted_iteration_s"] = predicted;
}

void batch(benchmark::State& state, const std::string& net, const std::string& topology, bool reduce,
           bool fold = true) {
    const int procs = static_cast<int>(state.range(0));
    networks::Network network = network_named(net);
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = 4LL * procs;  // pure batch needs batch >= P; 4 samples per process
    options.dtype = network.dtype;
    const clusters::Cluster cluster = cluster_named("cori-knl");  // the model keeps a reference
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, procs}));
    simulator::SimOptions sim;
    sim.platform.topology = topology;
    sim.reduce = reduce;
    sim.fold_exchanges = fold;
    simulator::SimResult result;
    for (auto _ : state) result = simulator::simulate(model, plan, sim);
    report(state, result, plan.cost.iteration_s);
}

// The planner's best candidate (batch 256) on the cluster's own topology.
void best(benchmark::State& state, const std::string& net, bool event_driven = false, bool memory_pool = true,
          bool fold_lone_flows = false, bool router_symmetry = false) {
    const int procs = static_cast<int>(state.range(0));
    networks::Network network = network_named(net);
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = 256;
    options.dtype = network.dtype;
    const clusters::Cluster cluster = cluster_named("cori-knl");  // the model keeps a reference
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan = planner::search(model).best()->plan;
    simulator::SimOptions sim;
    sim.event_driven = event_driven;
    sim.memory_pool = memory_pool;
    sim.fold_lone_flows = fold_lone_flows;
    sim.router_symmetry = router_symmetry;
    simulator::SimResult result;
    for (auto _ : state) result = simulator::simulate(model, plan, sim);
    report(state, result, plan.cost.iteration_s);
}

void pipeline(benchmark::State& state, const std::string& net, const std::string& cluster, std::int64_t batch,
              planner::PipelineSpec spec, const std::string& topology, bool reduce) {
    networks::Network network = network_named(net);
    planner::PlannerOptions options;
    options.procs = spec.tensor * spec.stages * spec.replicas;
    options.batch = batch;
    options.dtype = network.dtype;
    const clusters::Cluster spec_cluster = cluster_named(cluster);  // the model keeps a reference
    planner::CostModel model(network, spec_cluster, options);
    planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
    simulator::SimOptions sim;
    sim.platform.topology = topology;
    sim.reduce = reduce;
    simulator::SimResult result;
    for (auto _ : state) result = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
    report(state, result, pc.score.plan.cost.iteration_s);
}

planner::PipelineSpec spec_of(int t, int s, int r, int m, bool zero) {
    planner::PipelineSpec spec;
    spec.tensor = t;
    spec.stages = s;
    spec.replicas = r;
    spec.micro_batches = m;
    spec.schedule = planner::Schedule::one_f_one_b;
    spec.zero = zero;
    return spec;
}

void BM_SimulateVgg16BatchStar(benchmark::State& state) { batch(state, "vgg16", "star", true); }
void BM_SimulateVgg16BatchStarFull(benchmark::State& state) { batch(state, "vgg16", "star", false); }
void BM_SimulateResnet50BatchStar(benchmark::State& state) { batch(state, "resnet50", "star", true); }
void BM_SimulateResnet50BatchStarFull(benchmark::State& state) { batch(state, "resnet50", "star", false); }
void BM_SimulateVgg16BatchDragonfly(benchmark::State& state) { batch(state, "vgg16", "cluster", true); }
void BM_SimulateVgg16BestDragonfly(benchmark::State& state) { best(state, "vgg16"); }
void BM_SimulateResnet50BestDragonfly(benchmark::State& state) { best(state, "resnet50"); }
// The same with the event-driven replay (simulator/README.md, "Event-driven replay").
void BM_SimulateVgg16BestDragonflyEvents(benchmark::State& state) { best(state, "vgg16", true); }
void BM_SimulateResnet50BestDragonflyEvents(benchmark::State& state) { best(state, "resnet50", true); }
// The same with malloc instead of the child's free lists (simulator/memory_pool.cpp): the CPU it saves.
void BM_SimulateResnet50BestDragonflyMalloc(benchmark::State& state) { best(state, "resnet50", false, false); }
// Folded exchanges: exact on pure batch (every call pair exchanges), approximate with the best plans' halos.
void BM_SimulateResnet50BatchDragonflyFolded(benchmark::State& state) { batch(state, "resnet50", "cluster", true); }
void BM_SimulateResnet50BatchDragonflyUnfolded(benchmark::State& state) {
    batch(state, "resnet50", "cluster", true, false);
}
void BM_SimulateVgg16BestDragonflyFolded(benchmark::State& state) { best(state, "vgg16", false, true, true); }
void BM_SimulateResnet50BestDragonflyFolded(benchmark::State& state) { best(state, "resnet50", false, true, true); }
// Router symmetry (simulator/README.md, "Router symmetry"): one node per dragonfly router; approximate
// with the best plans' halos and shifts inside a router.
void BM_SimulateResnet50BestDragonflyRouter(benchmark::State& state) {
    best(state, "resnet50", false, true, false, true);
}
// Both approximations: the configuration that brings resnet50's best plan at P = 4,096 under 60 s.
void BM_SimulateResnet50BestDragonflyRouterFolded(benchmark::State& state) {
    best(state, "resnet50", false, true, true, true);
}
void BM_SimulateGpt2PipelineStar(benchmark::State& state) {
    pipeline(state, "gpt2", "dgx-a100", 512, spec_of(4, 4, static_cast<int>(state.range(0)) / 16, 8, false), "star",
             true);
}
void BM_SimulateGpt3Readme(benchmark::State& state) {
    pipeline(state, "gpt3-175b", "dgx-a100", 1536, spec_of(8, 4, 32, 48, true), "cluster", true);
}
// The reduced and the full replay of a gpt3-175b T = 8 x S = 4 x R = 2 plan, M = 4 (P = 64).
void BM_SimulateGpt3Small(benchmark::State& state) {
    pipeline(state, "gpt3-175b", "dgx-a100", 16, spec_of(8, 4, 2, 4, false), "cluster", true);
}
void BM_SimulateGpt3SmallFull(benchmark::State& state) {
    pipeline(state, "gpt3-175b", "dgx-a100", 16, spec_of(8, 4, 2, 4, false), "cluster", false);
}

}  // namespace

#define ONE_RUN Iterations(1)->Unit(benchmark::kSecond)->UseRealTime()
BENCHMARK(BM_SimulateVgg16BatchStar)->Arg(512)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateVgg16BatchStarFull)->Arg(512)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BatchStar)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BatchStarFull)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateVgg16BatchDragonfly)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateGpt2PipelineStar)->Arg(64)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateGpt3Small)->ONE_RUN;
BENCHMARK(BM_SimulateGpt3SmallFull)->ONE_RUN;
BENCHMARK(BM_SimulateGpt3Readme)->ONE_RUN;
BENCHMARK(BM_SimulateVgg16BestDragonfly)->Arg(512)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BestDragonfly)->Arg(512)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateVgg16BestDragonflyEvents)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BestDragonflyEvents)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BestDragonflyMalloc)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BatchDragonflyFolded)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BatchDragonflyUnfolded)->Arg(512)->ONE_RUN;
BENCHMARK(BM_SimulateVgg16BestDragonflyFolded)->Arg(512)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BestDragonflyFolded)->Arg(512)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BestDragonflyRouter)->Arg(128)->Arg(4096)->ONE_RUN;
BENCHMARK(BM_SimulateResnet50BestDragonflyRouterFolded)->Arg(4096)->ONE_RUN;

BENCHMARK_MAIN();
