// Loading and inferring the built-in networks: file read, JSON parse, repeat expansion, name
// resolution, shape inference and totals. The target is under 5 ms for ResNet-1001 (3,341 layers).
#include <benchmark/benchmark.h>

#include <string>

#include "common/diagnostics.hpp"
#include "networks/network.hpp"

namespace {

std::string network_path(const std::string& name) {
    return std::string(DNNPLAN_SOURCE_DIR) + "/networks/" + name + ".json";
}

// The whole load as `dnnplan inspect` does it: read, parse, expand, infer.
void load_network(benchmark::State& state, const std::string& name) {
    const std::string path = network_path(name);
    std::size_t layers = 0;
    for (auto _ : state) {
        auto network = dnnplan::networks::load_network_file(path);
        layers = network.layers.size();
        benchmark::DoNotOptimize(network);
    }
    state.counters["layers"] = static_cast<double>(layers);
    state.counters["layers_per_s"] =
        benchmark::Counter(static_cast<double>(layers), benchmark::Counter::kIsIterationInvariantRate);
}

// The loader alone on an already parsed document, to separate it from file I/O and JSON parsing.
void infer_network(benchmark::State& state, const std::string& name) {
    const std::string path = network_path(name);
    const dnnplan::Json spec = dnnplan::load_json_file(path);
    for (auto _ : state) {
        auto network = dnnplan::networks::parse_network(spec, path);
        benchmark::DoNotOptimize(network);
    }
}

}  // namespace

BENCHMARK_CAPTURE(load_network, resnet1001, std::string("resnet1001"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load_network, vgg16, std::string("vgg16"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(load_network, gpt3_175b, std::string("gpt3-175b"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(infer_network, resnet1001, std::string("resnet1001"))->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
