// A layer's parameters per process under Megatron-LM's tensor-parallel layouts (Shoeybi et al.
// 2019, section 3): the row-parallel linear layer (ci split) adds its bias after reducing the
// partial sums, so every rank holds the whole bias; attention's output projection likewise (bo
// whole on every rank), while the QKV projections and their biases split by heads. The figures
// are written out by hand for hidden E = 32, 4 heads, MLP 128 (tests/validators/data/gpt-pipe.json).
#include <catch2/catch.hpp>

#include "planner/layout.hpp"
#include "planner_test_helpers.hpp"

namespace dnnplan::planner {
namespace {

networks::Network block() {
    return networks::parse_network(Json::parse(R"({
      "name": "block", "dtype": "fp32", "batch": 1, "input": {"tokens": 8},
      "layers": [
        {"name": "wte", "kind": "embedding", "num_embeddings": 64, "dim": 32},
        {"name": "attn", "kind": "attention", "heads": 4, "causal": true},
        {"name": "fc", "kind": "linear", "out_features": 128},
        {"name": "proj", "kind": "linear", "out_features": 32},
        {"name": "head", "kind": "linear", "out_features": 64, "bias": false}
      ]})"),
                                  "block.json");
}

double local_params(const networks::Network& n, int i, const Layout& l) {
    const networks::Layer& layer = n.layers[static_cast<std::size_t>(i)];
    const Dist in{1, 1, 1, 1};
    return local_parameters(layer, n.layers[layer.inputs[0]].output_shape, l, in);
}

TEST_CASE("tensor-parallel shards: a row-parallel bias and attention's output bias are held whole", "[planner][layout]") {
    const networks::Network n = block();
    Layout co2, ci2;
    co2.co = 2;
    ci2.ci = 2;
    // attn: 4 E^2 + 4 E = 4096 + 128 = 4224 parameters; by heads over 2: (4096 + 96) / 2 + 32 = 2128.
    CHECK(n.layers[2].params == 4224);
    CHECK(local_params(n, 2, co2) == Approx(2128.0).epsilon(1e-12));
    // fc 32 -> 128, column-parallel: (4096 + 128) / 2 = 2112.
    CHECK(local_params(n, 3, co2) == Approx(2112.0).epsilon(1e-12));
    // proj 128 -> 32, row-parallel: 4096 / 2 + 32 = 2080 (was 2064 with the bias split).
    CHECK(local_params(n, 4, ci2) == Approx(2080.0).epsilon(1e-12));
    // No bias: halves exactly, 32 x 64 / 2 = 1024; unsplit: the whole layer.
    CHECK(local_params(n, 5, ci2) == Approx(1024.0).epsilon(1e-12));
    CHECK(local_params(n, 4, Layout{}) == Approx(4128.0).epsilon(1e-12));
}

}  // namespace
}  // namespace dnnplan::planner
