// Throughput of the collective cost model on the planner's path (closed forms, cheapest()) and of
// expanding one rank's steps for the simulator.
#include <benchmark/benchmark.h>

#include "clusters/collectives.hpp"

namespace {

using namespace dnnplan::clusters;

const LinkCost kIntra{100e9, 1e-6};
const LinkCost kInter{12.5e9, 5e-6};

// Bytes vary per iteration so that nothing is hoisted out of the loop.
double next_bytes(double& bytes) {
    bytes = bytes * 1.5 > 1e10 ? 1024 : bytes * 1.5;
    return bytes;
}

void collective_seconds_bench(benchmark::State& state, Collective c, Algorithm a) {
    const GroupPlacement g{static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
    double bytes = 1024;
    for (auto _ : state) benchmark::DoNotOptimize(collective_seconds(c, a, g, next_bytes(bytes), kIntra, kInter));
    state.SetItemsProcessed(state.iterations());
}

void BM_ring_all_reduce(benchmark::State& state) {
    collective_seconds_bench(state, Collective::all_reduce, Algorithm::ring);
}
void BM_rabenseifner(benchmark::State& state) {
    collective_seconds_bench(state, Collective::all_reduce, Algorithm::rabenseifner);
}
void BM_rd_all_gather(benchmark::State& state) {
    collective_seconds_bench(state, Collective::all_gather, Algorithm::recursive_doubling);
}
void BM_hierarchical_all_reduce(benchmark::State& state) {
    collective_seconds_bench(state, Collective::all_reduce, Algorithm::hierarchical);
}

void BM_cheapest(benchmark::State& state) {
    const GroupPlacement g{static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
    const auto c = static_cast<Collective>(state.range(2));
    double bytes = 1024;
    for (auto _ : state) benchmark::DoNotOptimize(cheapest(c, g, next_bytes(bytes), kIntra, kInter));
    state.SetItemsProcessed(state.iterations());
}

void BM_rank_steps_ring(benchmark::State& state) {
    const GroupPlacement g{static_cast<int>(state.range(0)), 8};
    int rank = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(rank_steps(Collective::all_reduce, Algorithm::ring, g, 1e9, rank));
        rank = (rank + 1) % g.size;
    }
    state.SetItemsProcessed(state.iterations() * 2 * (g.size - 1));
}

}  // namespace

// {size, per_node}; per_node 6 exercises the non-power-of-two node-crossing path.
BENCHMARK(BM_ring_all_reduce)->Args({4096, 8});
BENCHMARK(BM_rabenseifner)->Args({64, 8})->Args({4096, 8})->Args({1536, 6});
BENCHMARK(BM_rd_all_gather)->Args({4096, 8})->Args({1536, 6});
BENCHMARK(BM_hierarchical_all_reduce)->Args({4096, 8});
// {size, per_node, collective}: all_reduce (0), all_gather (1), broadcast (3).
BENCHMARK(BM_cheapest)
    ->Args({64, 8, 0})
    ->Args({4096, 8, 0})
    ->Args({1536, 6, 0})
    ->Args({4096, 8, 1})
    ->Args({4096, 8, 3});
BENCHMARK(BM_rank_steps_ring)->Arg(4096);

BENCHMARK_MAIN();
