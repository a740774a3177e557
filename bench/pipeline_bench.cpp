// Benchmarks of the pipeline / 3-D search (planner/pipeline.hpp): every TP (inside a node), PP,
// DP, micro-batch count (the bounded set of micro_batch_counts), schedule (GPipe, 1F1B, interleaved
// 1F1B with V = 2, 4, 8), ZeRO-1 and recomputation option for GPT-3 175B on 1024 A100s (target:
// under 1 s on one core, issue 15 item 8), with configurations per second as a counter (Calculon, the analytical
// LLM tool, reports about 490 per second on 2 cores); and the graph-partition family on
// GoogLeNet.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "planner/graph_partition.hpp"
#include "planner/pipeline.hpp"
#include "bench_inputs.hpp"

namespace {

using namespace dnnplan;


void run_3d(benchmark::State& state, const std::string& net_name, const std::string& cluster_name, std::int64_t procs,
            std::int64_t batch) {
    const bench::BenchInputs in = bench::bench_inputs(net_name, cluster_name, procs, batch);
    planner::CostModel model(in.net, in.cluster, in.options);
    long long configurations = 0, skipped = 0, infeasible = 0;
    double best_s = 0;
    for (auto _ : state) {
        planner::PipelineSearchStats stats;
        auto found = planner::search_pipelines(model, &stats);
        configurations += stats.configurations;
        skipped = stats.skipped;
        infeasible = stats.infeasible;
        best_s = found.empty() ? 0 : found.front().score.plan.cost.iteration_s;
        benchmark::DoNotOptimize(found.data());
    }
    state.counters["configs_per_s"] =
        benchmark::Counter(static_cast<double>(configurations), benchmark::Counter::kIsRate);
    state.counters["configs"] = static_cast<double>(configurations) / static_cast<double>(state.iterations());
    state.counters["skipped"] = static_cast<double>(skipped);
    state.counters["over_memory"] = static_cast<double>(infeasible);
    state.counters["best_iteration_s"] = best_s;
}

void BM_Gpt3_175b_1024_A100(benchmark::State& state) { run_3d(state, "gpt3-175b", "dgx-a100", 1024, 1536); }
BENCHMARK(BM_Gpt3_175b_1024_A100)->Unit(benchmark::kMillisecond);

void BM_Gpt2_64_A100(benchmark::State& state) { run_3d(state, "gpt2", "dgx-a100", 64, 512); }
BENCHMARK(BM_Gpt2_64_A100)->Unit(benchmark::kMillisecond);

void BM_Resnet1001_512_Frontera(benchmark::State& state) { run_3d(state, "resnet1001", "frontera", 512, 512); }
BENCHMARK(BM_Resnet1001_512_Frontera)->Unit(benchmark::kMillisecond);

// The share of planner_bench's whole searches that the appended families take.
void BM_Families_Vgg16_512(benchmark::State& state) { run_3d(state, "vgg16", "cori-knl", 512, 256); }
BENCHMARK(BM_Families_Vgg16_512)->Unit(benchmark::kMillisecond);
void BM_Families_Resnet1001_4096(benchmark::State& state) { run_3d(state, "resnet1001", "cori-knl", 4096, 4096); }
BENCHMARK(BM_Families_Resnet1001_4096)->Unit(benchmark::kMillisecond);

void graph_search(benchmark::State& state, const std::string& net_name, const std::string& cluster_name,
                  std::int64_t procs, std::int64_t batch) {
    const bench::BenchInputs in = bench::bench_inputs(net_name, cluster_name, procs, batch);
    planner::CostModel model(in.net, in.cluster, in.options);
    for (auto _ : state) {
        auto found = planner::search_graph_partitions(model);
        benchmark::DoNotOptimize(found.data());
    }
}
void BM_GraphPartition_Vgg16_512(benchmark::State& state) { graph_search(state, "vgg16", "cori-knl", 512, 256); }
BENCHMARK(BM_GraphPartition_Vgg16_512)->Unit(benchmark::kMillisecond);
void BM_GraphPartition_Resnet1001_4096(benchmark::State& state) {
    graph_search(state, "resnet1001", "cori-knl", 4096, 4096);
}
BENCHMARK(BM_GraphPartition_Resnet1001_4096)->Unit(benchmark::kMillisecond);

void BM_GraphPartition_Googlenet_64(benchmark::State& state) { graph_search(state, "googlenet", "dgx-a100", 64, 256); }
BENCHMARK(BM_GraphPartition_Googlenet_64)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
