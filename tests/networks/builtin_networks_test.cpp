// Checks every built-in network spec (networks/*.json) against PyTorch's own numbers
// (tests/data/torch_reference.json, written by tools/torch_reference.py) and against the
// published parameter counts and Megatron-LM's transformer FLOP formula.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "networks/network.hpp"

using dnnplan::networks::Layer;
using dnnplan::networks::LayerKind;
using dnnplan::networks::Network;
using dnnplan::networks::Shape;

namespace {

const std::string kSourceDir = DNNPLAN_SOURCE_DIR;

std::string network_path(const std::string& name) { return kSourceDir + "/networks/" + name + ".json"; }

const nlohmann::json& torch_reference() {
    static const nlohmann::json reference = [] {
        std::ifstream in(kSourceDir + "/tests/data/torch_reference.json");
        REQUIRE(in.good());
        return nlohmann::json::parse(in);
    }();
    return reference;
}

const Network& builtin(const std::string& name) {
    static std::map<std::string, Network> cache;
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, dnnplan::networks::load_network_file(network_path(name))).first;
    return it->second;
}

// The layers torch_reference.json lists: convolutions, linear layers and attention blocks.
const char* reference_kind(LayerKind kind) {
    switch (kind) {
        case LayerKind::conv2d: return "conv2d";
        case LayerKind::conv_transpose2d: return "conv_transpose2d";
        case LayerKind::linear: return "linear";
        case LayerKind::attention: return "attention";
        default: return nullptr;
    }
}

std::string shape_string(const Shape& shape) {
    std::ostringstream out;
    out << "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << "]";
    return out.str();
}

// Forward FLOPs per networks/README.md from the multiply-accumulates PyTorch performed:
// a multiply-add is 2 FLOPs, a bias adds one per output element (attention: its four projections
// add 4*S*H), and attention adds 7 per score for scale, softmax (5) and the causal mask (6 without).
std::int64_t expected_forward_flops(const Layer& layer, const nlohmann::json& ref) {
    std::int64_t flops = 2 * ref.at("macs").get<std::int64_t>();
    bool bias = ref.at("bias").get<bool>();
    if (layer.kind == LayerKind::attention) {
        std::int64_t s = layer.output_shape.at(0), h = layer.output_shape.at(1);
        if (bias) flops += 4 * s * h;
        flops += (layer.attrs.causal ? 7 : 6) * layer.attrs.heads * s * s;
    } else if (bias) {
        flops += layer.output_elements;
    }
    return flops;
}

const std::vector<std::string> kBuiltins = {"lenet5",     "smallcnn", "alexnet", "vgg16", "resnet50",
                                             "resnet152",  "resnet1001", "unet",  "gpt2",  "gpt3-175b", "googlenet",
                                             "gpt-1t"};

}  // namespace

TEST_CASE("every built-in network has a PyTorch reference", "[networks][builtin]") {
    std::set<std::string> specs;
    for (const auto& name : dnnplan::networks::builtin_network_names(kSourceDir + "/networks")) specs.insert(name);
    std::set<std::string> referenced;
    for (const auto& [name, value] : torch_reference().at("networks").items()) referenced.insert(name);
    CHECK(specs == std::set<std::string>(kBuiltins.begin(), kBuiltins.end()));
    CHECK(referenced == std::set<std::string>(kBuiltins.begin(), kBuiltins.end()));
}

TEST_CASE("built-in networks match PyTorch layer by layer", "[networks][builtin][torch]") {
    const std::string name = GENERATE(from_range(kBuiltins));
    INFO("network " << name);
    const nlohmann::json& ref = torch_reference().at("networks").at(name);
    const Network& net = builtin(name);
    REQUIRE(net.name == name);

    // Totals and the network's output.
    CHECK(dnnplan::networks::totals(net, 1).params == ref.at("params").get<std::int64_t>());
    CHECK(shape_string(net.layers.back().output_shape) == shape_string(ref.at("output_shape").get<Shape>()));

    // Every convolution, linear layer and attention block, in order.
    std::vector<const Layer*> computed;
    for (const auto& layer : net.layers)
        if (reference_kind(layer.kind)) computed.push_back(&layer);
    const nlohmann::json& ref_layers = ref.at("layers");
    if (ref_layers.empty()) return;  // gpt3-175b: closed formula only, never instantiated
    REQUIRE(computed.size() == ref_layers.size());

    std::vector<std::string> mismatches;
    for (std::size_t i = 0; i < computed.size(); ++i) {
        const Layer& layer = *computed[i];
        const nlohmann::json& r = ref_layers[i];
        std::string where = layer.name + " (torch " + r.at("name").get<std::string>() + ")";
        auto expect = [&](const std::string& what, const std::string& got, const std::string& want) {
            if (got != want) mismatches.push_back(where + ": " + what + " " + got + ", PyTorch " + want);
        };
        expect("kind", reference_kind(layer.kind), r.at("kind").get<std::string>());
        expect("output shape", shape_string(layer.output_shape), shape_string(r.at("output_shape").get<Shape>()));
        expect("params", std::to_string(layer.params), std::to_string(r.at("params").get<std::int64_t>()));
        expect("forward FLOPs", std::to_string(layer.fwd_flops), std::to_string(expected_forward_flops(layer, r)));
    }
    std::ostringstream report;
    for (std::size_t i = 0; i < mismatches.size() && i < 20; ++i) report << "\n  " << mismatches[i];
    INFO(mismatches.size() << " mismatches:" << report.str());
    CHECK(mismatches.empty());
}

TEST_CASE("built-in networks have the published parameter counts", "[networks][builtin]") {
    auto params = [](const std::string& name) { return dnnplan::networks::totals(builtin(name), 1).params; };
    // torchvision's documented counts and GPT-2 small's (Hugging Face gpt2, tied lm_head).
    CHECK(params("alexnet") == 61'100'840);
    CHECK(params("vgg16") == 138'357'544);
    CHECK(params("resnet50") == 25'557'032);
    CHECK(params("resnet152") == 60'192'808);
    CHECK(params("gpt2") == 124'439'808);
    // GPT-3 175B, h = 12288, V = 50257, S = 2048, 96 blocks:
    //   per block 12h^2 + 13h (attention 4h^2+4h, MLP 8h^2+5h, two layer norms 4h)
    //     = 1,811,939,328 + 159,744 = 1,812,099,072;      x 96 = 173,961,510,912
    //   token embedding V*h = 617,558,016; positions S*h = 25,165,824; final layer norm 2h = 24,576
    //   total 174,604,259,328 (the tied lm_head adds nothing).
    const std::int64_t h = 12288, vocab = 50257, seq = 2048;
    const std::int64_t gpt3 = 96 * (12 * h * h + 13 * h) + vocab * h + seq * h + 2 * h;
    CHECK(gpt3 == 174'604'259'328);
    CHECK(params("gpt3-175b") == gpt3);
}

TEST_CASE("GPT forward FLOPs follow Megatron-LM's 24*S*h^2 + 4*S^2*h per block", "[networks][builtin]") {
    // Megatron-LM (Narayanan et al. 2021): a transformer block costs 24*S*h^2 + 4*S^2*h forward
    // FLOPs in its matrix products: QKV 6Sh^2, scores 2S^2h, weighted values 2S^2h, output
    // projection 2Sh^2, MLP 16Sh^2. networks/README.md adds, in the linear and attention layers,
    //   biases 9*S*h (QKV 3Sh, attention output Sh, MLP up 4Sh, MLP down Sh) and
    //   7 per attention score per head (scale 1, softmax 5, causal mask 1) = 7*heads*S^2;
    // the block's elementwise layers add 48*S*h (two layer norms 7+7, two residual adds 1+1,
    // gelu 8 on 4h features).
    // GPT-2 small, S = 1024, h = 768, 12 heads:
    //   24*S*h^2 = 14,495,514,624   4*S^2*h = 3,221,225,472
    //   9*S*h = 7,077,888           7*12*S^2 = 88,080,384
    //   linear + attention = 17,811,898,368;  + 48*S*h = 37,748,736 -> block 17,849,647,104.
    // Whole model: 12 blocks + position embedding S*h + final layer norm 7*S*h + lm_head 2*S*h*V
    // (V = 50257, no bias: 79,047,426,048) = 293,249,482,752.
    {
        const Network& net = builtin("gpt2");
        const std::int64_t s = 1024, h = 768, heads = 12;
        std::int64_t linear_and_attention = 0, block = 0;
        for (const auto& layer : net.layers) {
            if (layer.name.rfind("h.0.", 0) != 0) continue;
            block += layer.fwd_flops;
            if (layer.kind == LayerKind::linear || layer.kind == LayerKind::attention)
                linear_and_attention += layer.fwd_flops;
        }
        CHECK(net.find("h.0.attn") >= 0);
        CHECK(linear_and_attention == 24 * s * h * h + 4 * s * s * h + 9 * s * h + 7 * heads * s * s);
        CHECK(linear_and_attention == 17'811'898'368);
        CHECK(block == 17'849'647'104);
        CHECK(dnnplan::networks::totals(net, 1).fwd_flops == 293'249'482'752);
        CHECK(dnnplan::networks::totals(net, 512).fwd_flops == 512 * 293'249'482'752);
    }
    // GPT-3 175B, S = 2048, h = 12288, 96 heads, 96 blocks:
    //   24*S*h^2 = 7,421,703,487,488   4*S^2*h = 206,158,430,208
    //   9*S*h = 226,492,416            7*96*S^2 = 2,818,572,288   48*S*h = 1,207,959,552
    //   block = 7,632,114,941,952; x 96 = 732,683,034,427,392
    //   + positions S*h 25,165,824 + final layer norm 7*S*h 176,160,768 + lm_head 2*S*h*V
    //   2,529,517,633,536 = 735,212,753,387,520 per sequence.
    {
        const Network& net = builtin("gpt3-175b");
        const std::int64_t s = 2048, h = 12288, heads = 96;
        std::int64_t linear_and_attention = 0;
        for (const auto& layer : net.layers)
            if (layer.name.rfind("h.95.", 0) == 0 &&
                (layer.kind == LayerKind::linear || layer.kind == LayerKind::attention))
                linear_and_attention += layer.fwd_flops;
        CHECK(linear_and_attention == 24 * s * h * h + 4 * s * s * h + 9 * s * h + 7 * heads * s * s);
        CHECK(dnnplan::networks::totals(net, 1).fwd_flops == 735'212'753'387'520);
    }
}

TEST_CASE("a 1T-parameter GPT at batch 3072 counts without overflow", "[networks][builtin]") {
    // Narayanan et al. 2021, Table 1 (1008B): h = 25600, 160 heads, 128 blocks, S = 2048; V = 51200.
    //   parameters 128*(12h^2+13h) + V*h + S*h + 2h = 1,006,675,558,400 + 1,310,720,000 + 52,428,800
    //   + 51,200 = 1,008,038,758,400 (Table 1: 1008 billion).
    // Forward FLOPs per sequence, as for GPT-3 above: 24*S*h^2 = 32,212,254,720,000,
    //   4*S^2*h = 429,496,729,600, 9*S*h = 471,859,200, 7*160*S^2 = 4,697,620,480, 48*S*h =
    //   2,516,582,400: block 32,649,437,511,680, x 128 = 4,179,128,001,495,040; + positions S*h
    //   52,428,800 + final layer norm 7*S*h 367,001,600 + lm_head 2*S*h*V 5,368,709,120,000
    //   = 4,184,497,130,045,440 per sequence; x 3072 = 1.2854775183499592e19, past 2^63 (9.22e18).
    const Network& net = builtin("gpt-1t");
    CHECK(net.default_batch == 3072);
    const auto one = dnnplan::networks::totals(net, 1);
    CHECK(one.params == 1'008'038'758'400);
    CHECK(one.fwd_flops == 4'184'497'130'045'440.0);
    const auto all = dnnplan::networks::totals(net, 3072);
    CHECK(all.params == 1'008'038'758'400);  // exact
    CHECK(all.fwd_flops == Approx(1.2854775183499592e19).epsilon(1e-15));
}

TEST_CASE("built-in networks declare their default batch", "[networks][builtin]") {
    CHECK(builtin("lenet5").default_batch == 64);
    CHECK(builtin("smallcnn").default_batch == 64);
    CHECK(builtin("alexnet").default_batch == 256);
    CHECK(builtin("vgg16").default_batch == 256);
    CHECK(builtin("resnet50").default_batch == 256);
    CHECK(builtin("resnet152").default_batch == 256);
    CHECK(builtin("resnet1001").default_batch == 1);
    CHECK(builtin("unet").default_batch == 16);
    CHECK(builtin("gpt2").default_batch == 512);
    CHECK(builtin("gpt3-175b").default_batch == 1536);
    CHECK(builtin("gpt-1t").default_batch == 3072);
    for (const auto& name : kBuiltins) {
        INFO("network " << name);
        CHECK_FALSE(builtin(name).description.empty());
    }
}
