// Simulator speed (issue 5's scale targets): vgg16, pure batch, on a star of cori-knl nodes at
// P = 512 (target: under 10 s of wall time) and P = 4096 (under 120 s). Counters: simulated
// messages, messages per wall second of the SimGrid run itself, simulated and predicted
// iteration seconds. One iteration each: a run is seconds long and deterministic. Also a 3-D
// parallel gpt2 pipeline (T = 4 tensor x S = 4 stages x R = P / 16 replicas, M = 8, 1F1B) on a
// star of dgx-a100 nodes: the pipeline replay's point-to-point, tensor and replica-sync messages.
#include <benchmark/benchmark.h>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/pipeline.hpp"
#include "planner/search.hpp"
#include "simulator/simulator.hpp"

using namespace dnnplan;

namespace {

void run(benchmark::State& state, const std::string& topology) {
    const int procs = static_cast<int>(state.range(0));
    networks::Network network = networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/vgg16.json");
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/cori-knl.json");
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = 4LL * procs;  // pure batch needs batch >= P; 4 samples per process
    options.dtype = network.dtype;
    planner::CostModel model(network, cluster, options);
    planner::ScoredPlan plan = model.score(planner::uniform_layouts(model, planner::Strategy::batch, {1, procs}));
    simulator::SimOptions sim;
    sim.platform.topology = topology;
    simulator::SimResult result;
    for (auto _ : state) result = simulator::simulate(model, plan, sim);
    state.counters["messages"] = static_cast<double>(result.messages);
    state.counters["simgrid_wall_s"] = result.wall_s;
    state.counters["messages_per_wall_s"] = result.wall_s > 0 ? result.messages / result.wall_s : 0;
    state.counters["simgrid_cpu_s"] = result.cpu_s;
    state.counters["messages_per_cpu_s"] = result.cpu_s > 0 ? result.messages / result.cpu_s : 0;
    state.counters["simulated_iteration_s"] = result.simulated.iteration_s;
    state.counters["predicted_iteration_s"] = plan.cost.iteration_s;
}

void BM_SimulateGpt2PipelineStar(benchmark::State& state) {
    const int procs = static_cast<int>(state.range(0));
    networks::Network network = networks::load_network_file(std::string(DNNPLAN_SOURCE_DIR) + "/networks/gpt2.json");
    clusters::Cluster cluster =
        clusters::load_cluster_file(std::string(DNNPLAN_SOURCE_DIR) + "/clusters/dgx-a100.json");
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = network.default_batch;
    options.dtype = network.dtype;
    planner::CostModel model(network, cluster, options);
    planner::PipelineSpec spec;
    spec.tensor = 4;
    spec.stages = 4;
    spec.replicas = procs / 16;
    spec.micro_batches = 8;
    spec.schedule = planner::Schedule::one_f_one_b;
    planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
    simulator::SimOptions sim;
    sim.platform.topology = "star";
    simulator::SimResult result;
    for (auto _ : state) result = simulator::simulate_pipeline(model, pc.spec, pc.layouts, sim);
    state.counters["messages"] = static_cast<double>(result.messages);
    state.counters["simgrid_wall_s"] = result.wall_s;
    state.counters["messages_per_wall_s"] = result.wall_s > 0 ? result.messages / result.wall_s : 0;
    state.counters["simgrid_cpu_s"] = result.cpu_s;
    state.counters["simulated_iteration_s"] = result.simulated.iteration_s;
    state.counters["predicted_iteration_s"] = pc.score.plan.cost.iteration_s;
}

void BM_SimulateVgg16BatchStar(benchmark::State& state) { run(state, "star"); }
void BM_SimulateVgg16BatchDragonfly(benchmark::State& state) { run(state, "cluster"); }

}  // namespace

BENCHMARK(BM_SimulateVgg16BatchStar)->Arg(512)->Arg(4096)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_SimulateVgg16BatchDragonfly)->Arg(512)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

BENCHMARK(BM_SimulateGpt2PipelineStar)->Arg(64)->Arg(512)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

BENCHMARK_MAIN();
