// Shape arithmetic, parameter and FLOP counts of single layers and small graphs, each expected
// value worked out by hand (in the comment beside it) from PyTorch's formulas and the counting
// conventions of networks/README.md, never copied from the program's output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "networks/graph.hpp"
#include "networks/network.hpp"

using dnnplan::networks::Layer;
using dnnplan::networks::LayerKind;
using dnnplan::networks::Network;
using dnnplan::networks::parse_network;
using dnnplan::networks::Shape;
using Json = nlohmann::json;

namespace {

// A spec with the given layers and input, parsed as if read from "inline.json".
Network make(const Json& layers, const Json& input = Json{{"shape", {3, 32, 32}}}, const std::string& dtype = "fp32",
             std::int64_t batch = 1) {
    Json spec{{"name", "inline"}, {"dtype", dtype}, {"batch", batch}, {"input", input}, {"layers", layers}};
    return parse_network(spec, "inline.json");
}

const Layer& layer(const Network& network, const std::string& name) {
    int index = network.find(name);
    INFO("layer " << name);
    REQUIRE(index >= 0);
    return network.layers[static_cast<std::size_t>(index)];
}

std::vector<std::string> input_names(const Network& network, const std::string& name) {
    std::vector<std::string> names;
    for (int i : layer(network, name).inputs) names.push_back(network.layers[static_cast<std::size_t>(i)].name);
    return names;
}

}  // namespace

TEST_CASE("conv2d with stride, padding and dilation follows PyTorch's output size", "[networks][shape]") {
    Network n = make(Json::array({{{"name", "conv"},
                                   {"kind", "conv2d"},
                                   {"out_channels", 8},
                                   {"kernel", 3},
                                   {"stride", 2},
                                   {"padding", 2},
                                   {"dilation", 2}}}));
    const Layer& c = layer(n, "conv");
    // H = W = floor((32 + 2*2 - 2*(3-1) - 1) / 2) + 1 = floor(31 / 2) + 1 = 16.
    CHECK(c.output_shape == Shape{8, 16, 16});
    // Weights 8*3*3*3 = 216, bias 8.
    CHECK(c.params == 224);
    // MACs = Cout*H*W * Cin*kh*kw = 8*16*16 * 3*3*3 = 2048 * 27 = 55,296; forward 2*55,296 + 2,048 bias adds.
    CHECK(c.fwd_flops == 112640);
    // It reads the data input, which needs no gradient: PyTorch computes no dX.
    CHECK(c.bwd_input_flops == 0);
    // dW: the same 2*55,296 plus the bias reduction over 2,048 outputs.
    CHECK(c.bwd_weight_flops == 112640);
    CHECK(c.output_elements == 2048);
}

TEST_CASE("conv2d with a [height, width] kernel, stride and padding", "[networks][shape]") {
    Network n = make(Json::array({{{"name", "conv"},
                                   {"kind", "conv2d"},
                                   {"out_channels", 8},
                                   {"kernel", {3, 5}},
                                   {"stride", {1, 2}},
                                   {"padding", {1, 2}}}}));
    const Layer& c = layer(n, "conv");
    // H = (32 + 2 - 2 - 1)/1 + 1 = 32; W = floor((32 + 4 - 4 - 1)/2) + 1 = 15 + 1 = 16.
    CHECK(c.output_shape == Shape{8, 32, 16});
    // 8*3*3*5 + 8 = 360 + 8.
    CHECK(c.params == 368);
    // MACs 8*32*16 * 3*15 = 4,096 * 45 = 184,320; forward 368,640 + 4,096 bias.
    CHECK(c.fwd_flops == 372736);
}

TEST_CASE("depthwise and grouped conv2d without bias", "[networks][shape]") {
    Network n = make(Json::array({
                         {{"name", "pw"}, {"kind", "conv2d"}, {"out_channels", 32}, {"kernel", 1}},
                         {{"name", "dw"},
                          {"kind", "conv2d"},
                          {"out_channels", 32},
                          {"kernel", 3},
                          {"padding", 1},
                          {"groups", 32},
                          {"bias", false}},
                         {{"name", "grouped"}, {"kind", "conv2d"}, {"out_channels", 64}, {"kernel", 3}, {"groups", 4}},
                     }),
                     Json{{"shape", {3, 16, 16}}});
    // pw: 32*3*1*1 + 32 = 128.
    CHECK(layer(n, "pw").params == 128);
    const Layer& dw = layer(n, "dw");
    CHECK(dw.output_shape == Shape{32, 16, 16});
    // Depthwise: each of the 32 filters sees Cin/g = 1 channel: 32*1*3*3 = 288, no bias.
    CHECK(dw.params == 288);
    // MACs 32*16*16 * 1*9 = 73,728; forward 2x that and no bias adds.
    CHECK(dw.fwd_flops == 147456);
    // Its input (pw) depends on parameters, so dX is computed: the same multiply-adds.
    CHECK(dw.bwd_input_flops == 147456);
    CHECK(dw.bwd_weight_flops == 147456);
    const Layer& g = layer(n, "grouped");
    // 16 -> 14; weights 64 * (32/4) * 9 = 4,608, bias 64.
    CHECK(g.output_shape == Shape{64, 14, 14});
    CHECK(g.params == 4672);
    // MACs 64*14*14 * 8*9 = 12,544 * 72 = 903,168; forward 1,806,336 + 12,544.
    CHECK(g.fwd_flops == 1818880);
}

TEST_CASE("conv_transpose2d with output_padding", "[networks][shape]") {
    Network n = make(Json::array({{{"name", "up"},
                                   {"kind", "conv_transpose2d"},
                                   {"out_channels", 8},
                                   {"kernel", 3},
                                   {"stride", 2},
                                   {"padding", 1},
                                   {"output_padding", 1}}}),
                     Json{{"shape", {16, 7, 7}}});
    const Layer& t = layer(n, "up");
    // (7-1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 12 - 2 + 2 + 2 = 14.
    CHECK(t.output_shape == Shape{8, 14, 14});
    // PyTorch's weight is [Cin, Cout/g, kh, kw] = 16*8*3*3 = 1,152, bias 8.
    CHECK(t.params == 1160);
    // Every input element meets Cout/g*kh*kw weights: 16*7*7 * 8*9 = 784 * 72 = 56,448 MACs;
    // forward 112,896 + one bias add per output 8*14*14 = 1,568.
    CHECK(t.fwd_flops == 114464);
    CHECK(t.bwd_weight_flops == 114464);
    CHECK(t.bwd_input_flops == 0);
}

TEST_CASE("maxpool2d ceil_mode keeps or drops the last window by PyTorch's rule", "[networks][shape]") {
    // PyTorch (pooling_output_shape): out = ceil((in + 2p - d(k-1) - 1) / s) + 1, then
    // out -= 1 when (out - 1) * s >= in + p (the last window would start in the right padding).
    SECTION("in 6, k 2, s 2, p 1: the last window starts on the last input element and is kept") {
        Network n = make(Json::array({{{"name", "pool"},
                                       {"kind", "maxpool2d"},
                                       {"kernel", 2},
                                       {"stride", 2},
                                       {"padding", 1},
                                       {"ceil_mode", true}}}),
                         Json{{"shape", {1, 6, 6}}});
        // ceil((6 + 2 - 1 - 1)/2) + 1 = 3 + 1 = 4; (4-1)*2 = 6 < 6 + 1 = 7: kept (floor mode is 4 too).
        CHECK(layer(n, "pool").output_shape == Shape{1, 4, 4});
    }
    SECTION("in 5, k 2, s 2, p 1: the extra window would start in the padding and is dropped") {
        Network n = make(Json::array({{{"name", "pool"},
                                       {"kind", "maxpool2d"},
                                       {"kernel", 2},
                                       {"stride", 2},
                                       {"padding", 1},
                                       {"ceil_mode", true}}}),
                         Json{{"shape", {1, 5, 5}}});
        // ceil((5 + 2 - 1 - 1)/2) + 1 = 3 + 1 = 4; (4-1)*2 = 6 >= 5 + 1 = 6: dropped -> 3.
        CHECK(layer(n, "pool").output_shape == Shape{1, 3, 3});
    }
    SECTION("in 6, k 3, s 2, p 0: ceil adds a partial window that floor drops") {
        Json ceil_pool{{"name", "pool"}, {"kind", "maxpool2d"}, {"kernel", 3}, {"stride", 2}, {"ceil_mode", true}};
        Json floor_pool{{"name", "pool"}, {"kind", "maxpool2d"}, {"kernel", 3}, {"stride", 2}};
        // ceil((6 - 2 - 1)/2) + 1 = 2 + 1 = 3 ((3-1)*2 = 4 < 6: kept); floor: 1 + 1 = 2.
        CHECK(layer(make(Json::array({ceil_pool}), Json{{"shape", {1, 6, 6}}}), "pool").output_shape ==
              Shape{1, 3, 3});
        CHECK(layer(make(Json::array({floor_pool}), Json{{"shape", {1, 6, 6}}}), "pool").output_shape ==
              Shape{1, 2, 2});
    }
    SECTION("FLOPs: kh*kw comparisons per output forward, one per output backward") {
        Network n = make(Json::array({{{"name", "bn"}, {"kind", "batchnorm2d"}},
                                      {{"name", "pool"},
                                       {"kind", "maxpool2d"},
                                       {"kernel", 2},
                                       {"stride", 2},
                                       {"padding", 1},
                                       {"ceil_mode", true}}}),
                         Json{{"shape", {2, 5, 6}}});
        const Layer& p = layer(n, "pool");
        // H: in 5 -> 3 (dropped window, above); W: in 6 -> 4 (kept window, above).
        CHECK(p.output_shape == Shape{2, 3, 4});
        // 24 outputs x 4 comparisons; backward routes one gradient per output (bn has parameters).
        CHECK(p.fwd_flops == 96);
        CHECK(p.bwd_input_flops == 24);
        CHECK(p.params == 0);
    }
}

TEST_CASE("avgpool2d: stride defaults to the kernel, padding counts", "[networks][shape]") {
    Network n = make(Json::array({{{"name", "bn"}, {"kind", "batchnorm2d"}},
                                  {{"name", "pool"}, {"kind", "avgpool2d"}, {"kernel", 3}, {"stride", 2}, {"padding", 1}},
                                  {{"name", "pool2"}, {"kind", "avgpool2d"}, {"kernel", 2}, {"inputs", {"bn"}}}}),
                     Json{{"shape", {4, 10, 10}}});
    const Layer& p = layer(n, "pool");
    // floor((10 + 2 - 3)/2) + 1 = 4 + 1 = 5.
    CHECK(p.output_shape == Shape{4, 5, 5});
    // 100 outputs x 9 window elements, both ways.
    CHECK(p.fwd_flops == 900);
    CHECK(p.bwd_input_flops == 900);
    // Stride = kernel = 2: 10 -> 5.
    CHECK(layer(n, "pool2").output_shape == Shape{4, 5, 5});
}

TEST_CASE("adaptive_avgpool2d with sizes that do not divide sums PyTorch's exact windows", "[networks][shape]") {
    Network n = make(Json::array({{{"name", "pool"}, {"kind", "adaptive_avgpool2d"}, {"output_size", {3, 3}}},
                                  {{"name", "gap"}, {"kind", "global_avgpool2d"}, {"inputs", {"input"}}}}),
                     Json{{"shape", {2, 7, 5}}});
    const Layer& p = layer(n, "pool");
    CHECK(p.output_shape == Shape{2, 3, 3});
    // Windows [floor(i*in/out), ceil((i+1)*in/out)):
    //   height 7 -> 3: [0,3) [2,5) [4,7): sizes 3, 3, 3 (sum 9);
    //   width  5 -> 3: [0,2) [1,4) [3,5): sizes 2, 3, 2 (sum 7).
    // Sum over the 3x3 outputs of the window areas = 9 * 7 = 63 a channel, 2 channels = 126.
    CHECK(p.fwd_flops == 126);
    CHECK(p.bwd_input_flops == 0);  // it reads the data input
    const Layer& g = layer(n, "gap");
    // Global pooling is one 7x5 window a channel: 2 * 35.
    CHECK(g.output_shape == Shape{2, 1, 1});
    CHECK(g.fwd_flops == 70);
    CHECK(g.kind == LayerKind::adaptive_avgpool2d);

    // An output larger than the input (PyTorch allows it): height 2 -> 4 has windows [0,1) [0,1) [1,2)
    // [1,2) (sum 4), width 4 -> 2 has [0,2) [2,4) (sum 4): 16 per channel.
    Network up = make(Json::array({{{"name", "pool"}, {"kind", "adaptive_avgpool2d"}, {"output_size", {4, 2}}}}),
                      Json{{"shape", {1, 2, 4}}});
    CHECK(layer(up, "pool").output_shape == Shape{1, 4, 2});
    CHECK(layer(up, "pool").fwd_flops == 16);
}

TEST_CASE("batchnorm2d and layernorm parameters and per-element FLOPs", "[networks][shape]") {
    Network image = make(Json::array({{{"name", "conv"}, {"kind", "conv2d"}, {"out_channels", 8}, {"kernel", 1}},
                                      {{"name", "bn"}, {"kind", "batchnorm2d"}}}),
                         Json{{"shape", {3, 4, 4}}});
    const Layer& bn = layer(image, "bn");
    // gamma and beta per channel: 2 * 8. Elements 8*4*4 = 128: 7 / 8 / 3 per element.
    CHECK(bn.params == 16);
    CHECK(bn.fwd_flops == 896);
    CHECK(bn.bwd_input_flops == 1024);
    CHECK(bn.bwd_weight_flops == 384);

    Network seq = make(Json::array({{{"name", "ln"}, {"kind", "layernorm"}}}), Json{{"shape", {4, 6}}});
    const Layer& ln = layer(seq, "ln");
    // Over the last dimension H = 6: 2 * 6 parameters; 24 elements * 7 forward.
    CHECK(ln.params == 12);
    CHECK(ln.output_shape == Shape{4, 6});
    CHECK(ln.fwd_flops == 168);
    CHECK(ln.bwd_input_flops == 0);  // reads the data input
    CHECK(ln.bwd_weight_flops == 72);
}

TEST_CASE("linear acts on the last dimension of [S, H]", "[networks][shape]") {
    Network n = make(Json::array({{{"name", "fc1"}, {"kind", "linear"}, {"out_features", 10}},
                                  {{"name", "fc2"}, {"kind", "linear"}, {"out_features", 3}, {"bias", false}}}),
                     Json{{"shape", {4, 6}}});
    const Layer& fc1 = layer(n, "fc1");
    CHECK(fc1.output_shape == Shape{4, 10});
    // 6*10 + 10.
    CHECK(fc1.params == 70);
    // 4 rows x 6*10 MACs = 240; forward 480 + 4*10 bias adds.
    CHECK(fc1.fwd_flops == 520);
    CHECK(fc1.bwd_input_flops == 0);
    CHECK(fc1.bwd_weight_flops == 520);
    const Layer& fc2 = layer(n, "fc2");
    CHECK(fc2.output_shape == Shape{4, 3});
    // 10*3, no bias; MACs 4*30 = 120.
    CHECK(fc2.params == 30);
    CHECK(fc2.fwd_flops == 240);
    CHECK(fc2.bwd_input_flops == 240);
    CHECK(fc2.bwd_weight_flops == 240);
}

TEST_CASE("embedding, position_embedding and attention", "[networks][shape]") {
    // S = 8 tokens, H = 16, h = 4 heads.
    Json layers = Json::array({{{"name", "wte"}, {"kind", "embedding"}, {"num_embeddings", 100}, {"dim", 16}},
                               {{"name", "wpe"}, {"kind", "position_embedding"}, {"num_positions", 10}},
                               {{"name", "attn"}, {"kind", "attention"}, {"heads", 4}, {"causal", true}}});
    Network n = make(layers, Json{{"tokens", 8}});
    CHECK(n.token_input);
    const Layer& wte = layer(n, "wte");
    CHECK(wte.output_shape == Shape{8, 16});
    CHECK(wte.params == 1600);          // 100 x 16
    CHECK(wte.fwd_flops == 0);          // a gather
    CHECK(wte.bwd_input_flops == 0);    // token ids have no gradient
    CHECK(wte.bwd_weight_flops == 128); // scatter-add of the 8 x 16 output gradient

    const Layer& wpe = layer(n, "wpe");
    CHECK(wpe.output_shape == Shape{8, 16});
    CHECK(wpe.params == 160);  // num_positions x H = 10 x 16
    CHECK(wpe.fwd_flops == 128);
    CHECK(wpe.bwd_input_flops == 0);  // README convention 1/0/1
    CHECK(wpe.bwd_weight_flops == 128);

    const Layer& attn = layer(n, "attn");
    CHECK(attn.output_shape == Shape{8, 16});
    // 4 H^2 + 4 H = 4*256 + 64.
    CHECK(attn.params == 1088);
    // README: 2*S*H*3H  + 2*S^2*H + 2*S^2*H + 2*S*H^2  + 4*S*H + 7*h*S^2 (causal)
    //       = 2*8*16*48 + 2*64*16 + 2*64*16 + 2*8*256 + 4*128 + 7*4*64
    //       = 12,288    + 2,048   + 2,048   + 4,096   + 512   + 1,792 = 22,784.
    CHECK(attn.fwd_flops == 22784);
    // Backward, input gradient: dX through Q, K, V (6*S*H^2 = 12,288) and d(context) through the output
    // projection (2*S*H^2 = 4,096); dP, dV, dQ, dK are each 2*S^2*H = 2,048 (8,192); softmax backward 4 and
    // the scale 1 per score element, 5*h*S^2 = 1,280. Total 25,856.
    CHECK(attn.bwd_input_flops == 25856);
    // Weight gradient: the four projections' dW (8*S*H^2 = 16,384) and the four biases (4*S*H = 512).
    CHECK(attn.bwd_weight_flops == 16896);
    // Kept for backward beyond the output: Q, K, V and the context (4*S*H = 512), probabilities h*S^2 = 256.
    CHECK(attn.saved_elements == 768);

    SECTION("non-causal attention has no mask FLOP; no bias drops 4H parameters and 4*S*H FLOPs") {
        Json plain = layers;
        plain[2] = {{"name", "attn"}, {"kind", "attention"}, {"heads", 4}, {"bias", false}};
        const Network plain_net = make(plain, Json{{"tokens", 8}});  // outlives the reference
        const Layer& a = layer(plain_net, "attn");
        CHECK(a.params == 1024);  // 4 H^2
        // 22,784 - 512 bias - 256 mask (1*h*S^2) = 22,016.
        CHECK(a.fwd_flops == 22016);
    }
    SECTION("attention on an input without gradient still computes its internal gradients") {
        // Only dX = dQKV W_qkv^T (6*S*H^2 = 12,288) is skipped: 25,856 - 12,288 = 13,568.
        Network direct = make(Json::array({{{"name", "attn"}, {"kind", "attention"}, {"heads", 4}, {"causal", true}}}),
                              Json{{"shape", {8, 16}}});
        CHECK(layer(direct, "attn").bwd_input_flops == 13568);
    }
}

TEST_CASE("concat along channels, add, reshape with -1, flatten and upsample", "[networks][shape]") {
    Network n = make(Json::array({
                         {{"name", "a"}, {"kind", "conv2d"}, {"out_channels", 4}, {"kernel", 1}},
                         {{"name", "b"}, {"kind", "conv2d"}, {"out_channels", 6}, {"kernel", 3}, {"padding", 1},
                          {"inputs", {"input"}}},
                         {{"name", "cat"}, {"kind", "concat"}, {"inputs", {"a", "b"}}},
                         {{"name", "c"}, {"kind", "conv2d"}, {"out_channels", 4}, {"kernel", 1}, {"inputs", {"cat"}}},
                         {{"name", "sum"}, {"kind", "add"}, {"inputs", {"a", "c", "a"}}},
                         {{"name", "r"}, {"kind", "reshape"}, {"shape", {-1, 16}}},
                         {{"name", "flat"}, {"kind", "flatten"}},
                         {{"name", "up"}, {"kind", "upsample"}, {"inputs", {"sum"}}},
                         {{"name", "up3"}, {"kind", "upsample"}, {"scale", 3}, {"mode", "bilinear"}, {"inputs", {"sum"}}},
                     }),
                     Json{{"shape", {3, 8, 8}}});
    // 4 + 6 channels, same 8x8.
    CHECK(layer(n, "cat").output_shape == Shape{10, 8, 8});
    CHECK(layer(n, "cat").fwd_flops == 0);
    CHECK((input_names(n, "cat") == std::vector<std::string>{"a", "b"}));
    // Three [4, 8, 8] inputs: (3 - 1) adds per element, 2 * 256.
    CHECK(layer(n, "sum").output_shape == Shape{4, 8, 8});
    CHECK(layer(n, "sum").fwd_flops == 512);
    CHECK(layer(n, "sum").bwd_input_flops == 0);  // README: add is (k-1)/0/0
    // 256 elements / 16 = 16 rows.
    CHECK(layer(n, "r").output_shape == Shape{16, 16});
    CHECK(layer(n, "flat").output_shape == Shape{256});
    // Nearest x2: 4 x 16 x 16 = 1,024 outputs: 0 forward, 1 backward each (input depends on parameters).
    CHECK(layer(n, "up").output_shape == Shape{4, 16, 16});
    CHECK(layer(n, "up").fwd_flops == 0);
    CHECK(layer(n, "up").bwd_input_flops == 1024);
    // Bilinear x3: 4 x 24 x 24 = 2,304 outputs, 8 per output both ways.
    CHECK(layer(n, "up3").output_shape == Shape{4, 24, 24});
    CHECK(layer(n, "up3").fwd_flops == 18432);
    CHECK(layer(n, "up3").bwd_input_flops == 18432);
}

TEST_CASE("repeat blocks: naming, $in wiring and scoped lookup", "[networks][repeat]") {
    Network n = make(Json::array({
                         {{"name", "stem"}, {"kind", "conv2d"}, {"out_channels", 4}, {"kernel", 3}, {"padding", 1}},
                         {{"name", "stage"},
                          {"repeat", 2},
                          {"layers",
                           {{{"name", "conv"}, {"kind", "conv2d"}, {"out_channels", 4}, {"kernel", 3}, {"padding", 1}},
                            {{"name", "add"}, {"kind", "add"}, {"inputs", {"$in", "conv"}}},
                            {{"kind", "relu"}}}}},
                         {{"name", "head"}, {"kind", "add"}, {"inputs", {"stem", "stage.1.relu_0"}}},
                     }),
                     Json{{"shape", {4, 8, 8}}});
    std::vector<std::string> names;
    for (const auto& l : n.layers) names.push_back(l.name);
    // Copy i's layers are BLOCK.i.NAME; an unnamed layer is KIND_INDEX within its block.
    CHECK((names == std::vector<std::string>{"input", "stem", "stage.0.conv", "stage.0.add", "stage.0.relu_0",
                                             "stage.1.conv", "stage.1.add", "stage.1.relu_0", "head"}));
    // $in is the layer before the block for copy 0, the previous copy's last layer afterwards.
    CHECK((input_names(n, "stage.0.add") == std::vector<std::string>{"stem", "stage.0.conv"}));
    CHECK((input_names(n, "stage.1.add") == std::vector<std::string>{"stage.0.relu_0", "stage.1.conv"}));
    // Without inputs a layer reads the one before it, across copy boundaries too.
    CHECK((input_names(n, "stage.1.conv") == std::vector<std::string>{"stage.0.relu_0"}));
    CHECK((input_names(n, "head") == std::vector<std::string>{"stem", "stage.1.relu_0"}));
    // Every copy's layers have their own parameters: 4*4*9 + 4 = 148 each.
    CHECK(layer(n, "stage.0.conv").params == 148);
    CHECK(layer(n, "stage.1.conv").params == 148);
    // Both copies share the spec's pointer.
    CHECK(layer(n, "stage.1.conv").spec_pointer == "/layers/1/layers/0");
}

TEST_CASE("nested blocks look names up in the copy, then the enclosing copies, then globally", "[networks][repeat]") {
    Json inner{{"name", "inner"},
               {"repeat", 2},
               {"layers",
                {{{"name", "c"}, {"kind", "conv2d"}, {"out_channels", 2}, {"kernel", 1}},
                 // "c" is this copy's own c (it shadows the global c); "pre" is the enclosing outer copy's.
                 {{"name", "sum"}, {"kind", "add"}, {"inputs", {"c", "pre", "top"}}}}}};
    Network n = make(Json::array({
                         {{"name", "top"}, {"kind", "relu"}},
                         {{"name", "c"}, {"kind", "relu"}},
                         {{"name", "outer"},
                          {"repeat", 2},
                          {"layers", {{{"name", "pre"}, {"kind", "relu"}, {"inputs", {"top"}}}, inner}}},
                     }),
                     Json{{"shape", {2, 4, 4}}});
    CHECK((input_names(n, "outer.1.inner.0.sum") ==
           std::vector<std::string>{"outer.1.inner.0.c", "outer.1.pre", "top"}));
    CHECK((input_names(n, "outer.0.inner.1.sum") ==
           std::vector<std::string>{"outer.0.inner.1.c", "outer.0.pre", "top"}));
    // 1 + 2 globals + 2 outer copies x (pre + 2 inner copies x 2 layers) = 1 + 2 + 2 * 5.
    CHECK(n.layers.size() == 13);
}

TEST_CASE("a forward reference that is still a DAG is reordered topologically", "[networks][graph]") {
    Network n = make(Json::array({
                         {{"name", "fc2"}, {"kind", "linear"}, {"out_features", 3}, {"inputs", {"fc1"}}},
                         {{"name", "fc1"}, {"kind", "linear"}, {"out_features", 5}, {"inputs", {"input"}}},
                         {{"name", "out"}, {"kind", "relu"}, {"inputs", {"fc2"}}},
                     }),
                     Json{{"shape", {4}}});
    std::vector<std::string> names;
    for (const auto& l : n.layers) names.push_back(l.name);
    CHECK((names == std::vector<std::string>{"input", "fc1", "fc2", "out"}));
    for (std::size_t v = 0; v < n.layers.size(); ++v)
        for (int u : n.layers[v].inputs) CHECK(u < static_cast<int>(v));
    CHECK(layer(n, "fc1").params == 25);  // 4*5 + 5
    CHECK(layer(n, "fc2").params == 18);  // 5*3 + 3
    // fc2 reads fc1, which has parameters: dX = 2 * 5 * 3.
    CHECK(layer(n, "fc2").bwd_input_flops == 30);
}

TEST_CASE("tied_to shares the embedding's weight: parameters counted once", "[networks][shape]") {
    Json layers = Json::array({{{"name", "wte"}, {"kind", "embedding"}, {"num_embeddings", 50}, {"dim", 8}},
                               {{"name", "head"},
                                {"kind", "linear"},
                                {"out_features", 50},
                                {"bias", false},
                                {"tied_to", "wte"}}});
    Network n = make(layers, Json{{"tokens", 4}});
    CHECK(layer(n, "wte").params == 400);  // 50 x 8
    CHECK(layer(n, "head").params == 0);
    CHECK(layer(n, "head").attrs.tied_to == "wte");
    // The FLOPs are a full linear: 4 rows x 8*50 MACs x 2.
    CHECK(layer(n, "head").fwd_flops == 3200);
    CHECK(totals(n, 1).params == 400);
    // With a bias the head owns only that: 50.
    layers[1]["bias"] = true;
    CHECK(layer(make(layers, Json{{"tokens", 4}}), "head").params == 50);
}

TEST_CASE("input gradients are counted only where autograd computes them", "[networks][grad]") {
    Network n = make(Json::array({{{"name", "relu_in"}, {"kind", "relu"}},
                                  {{"name", "conv"}, {"kind", "conv2d"}, {"out_channels", 2}, {"kernel", 1}},
                                  {{"name", "relu_out"}, {"kind", "relu"}}}),
                     Json{{"shape", {3, 8, 8}}});
    // A relu right after the data input: nothing before it has parameters.
    CHECK(layer(n, "relu_in").bwd_input_flops == 0);
    // The first convolution: no dX (its input depends on no parameter), dW as usual.
    CHECK(layer(n, "conv").bwd_input_flops == 0);
    // 2*8*8 MACs of 3 channels = 384 MACs; dW 768 + 128 bias.
    CHECK(layer(n, "conv").bwd_weight_flops == 896);
    // After the convolution: 1 per element of 2 x 8 x 8.
    CHECK(layer(n, "relu_out").bwd_input_flops == 128);
}

TEST_CASE("dtype sets activation and weight bytes, totals multiply by the batch", "[networks][totals]") {
    Json layers = Json::array({{{"name", "relu"}, {"kind", "relu"}},
                               {{"name", "flat"}, {"kind", "flatten"}},
                               {{"name", "fc"}, {"kind", "linear"}, {"out_features", 10}}});
    Network fp32 = make(layers, Json{{"shape", {3, 8, 8}}}, "fp32", 4);
    Network fp16 = make(layers, Json{{"shape", {3, 8, 8}}}, "fp16", 4);
    CHECK(fp32.default_batch == 4);
    auto t32 = totals(fp32, 1);
    auto t16 = totals(fp16, 1);
    // Elements per sample: input 192 + relu 192 + flatten 192 + fc 10 = 586.
    CHECK(t32.activation_bytes == 586 * 4);
    CHECK(t16.activation_bytes == 586 * 2);
    // 192*10 + 10 = 1,930 parameters.
    CHECK(t32.params == 1930);
    CHECK(t32.weight_bytes == 7720);
    CHECK(t16.weight_bytes == 3860);

    auto t = totals(fp32, 4);
    CHECK(t.params == 1930);  // parameters do not scale with the batch
    // Per sample: relu 192 + fc 2*1,920 + 10 = 4,042 forward; x 4.
    CHECK(t.fwd_flops == 16168);
    // Nothing before fc has parameters, so no layer computes an input gradient.
    CHECK(t.bwd_input_flops == 0);
    // fc's dW 3,840 + 10 bias per sample, x 4.
    CHECK(t.bwd_weight_flops == 15400);
    CHECK(t.activation_bytes == 586 * 4 * 4);

    // Token ids are int64 whatever the dtype: 8 tokens x 8 bytes, plus the fp16 embedding output 8 x 4 x 2.
    Network tokens = make(Json::array({{{"name", "wte"}, {"kind", "embedding"}, {"num_embeddings", 10}, {"dim", 4}}}),
                          Json{{"tokens", 8}}, "fp16");
    CHECK(totals(tokens, 1).activation_bytes == 64 + 64);
}

TEST_CASE("the Boost graph view finds cycles and orders topologically", "[networks][graph]") {
    using dnnplan::networks::find_cycle;
    using dnnplan::networks::make_graph;
    using dnnplan::networks::topological_order;
    auto has_edge = [](const dnnplan::networks::LayerGraph& g, int u, int v) {
        return boost::edge(static_cast<std::size_t>(u), static_cast<std::size_t>(v), g).second;
    };

    SECTION("a cyclic inputs list: 1 reads 0 and 3, 2 reads 1, 3 reads 2") {
        auto g = make_graph(4, {{}, {0, 3}, {1}, {2}});
        auto cycle = find_cycle(g);
        REQUIRE(cycle.has_value());
        REQUIRE(cycle->size() == 3);
        std::vector<int> sorted = *cycle;
        std::sort(sorted.begin(), sorted.end());
        CHECK((sorted == std::vector<int>{1, 2, 3}));
        for (std::size_t i = 0; i < cycle->size(); ++i)
            CHECK(has_edge(g, (*cycle)[i], (*cycle)[(i + 1) % cycle->size()]));
    }
    SECTION("a DAG with one forward reference: 1 reads 0 and 3, 2 reads 0, 3 reads 2") {
        auto g = make_graph(4, {{}, {0, 3}, {0}, {2}});
        CHECK_FALSE(find_cycle(g).has_value());
        auto order = topological_order(g);
        // Smallest ready index first: 0; then 2 (1 waits for 3); 3; 1.
        CHECK((order == std::vector<int>{0, 2, 3, 1}));
        std::vector<int> position(4);
        for (int p = 0; p < 4; ++p) position[static_cast<std::size_t>(order[static_cast<std::size_t>(p)])] = p;
        for (auto [e, end] = boost::edges(g); e != end; ++e)
            CHECK(position[boost::source(*e, g)] < position[boost::target(*e, g)]);
    }
    SECTION("a loaded network's graph has one edge per input") {
        Network n = make(Json::array({{{"name", "a"}, {"kind", "relu"}},
                                      {{"name", "b"}, {"kind", "relu"}},
                                      {{"name", "sum"}, {"kind", "add"}, {"inputs", {"a", "b"}}}}));
        auto g = dnnplan::networks::make_graph(n);
        CHECK(boost::num_vertices(g) == 4);
        CHECK(boost::num_edges(g) == 4);  // input->a, a->b, a->sum, b->sum
        CHECK((topological_order(g) == std::vector<int>{0, 1, 2, 3}));
        CHECK(has_edge(g, 1, 3));
    }
}
