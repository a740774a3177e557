// ONNX import (networks/onnx_import.hpp): the torchvision exports of tests/data/onnx/ against the
// JSON built-ins and torchvision's published parameter counts, Debian's libonnx-testdata models
// against their own initializers and expected outputs, hand-computed counts for the operators the
// CNN exports do not use, and the bad-input fixtures.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "networks/network.hpp"
#include "networks/onnx_import.hpp"

using dnnplan::InputError;
using dnnplan::networks::Layer;
using dnnplan::networks::LayerKind;
using dnnplan::networks::load_network_file;
using dnnplan::networks::LoadOptions;
using dnnplan::networks::Network;
using dnnplan::networks::Shape;

namespace {

const std::string kSourceDir = DNNPLAN_SOURCE_DIR;
const std::string kOnnxDir = kSourceDir + "/tests/data/onnx/";
// Debian's libonnx-testdata (setup.sh installs it).
const std::string kTestData = "/usr/share/libonnx-testdata/data/";

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::string error_of(const std::string& path, const LoadOptions& options = {}) {
    try {
        load_network_file(path, options);
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no error)";
}

const Layer& layer(const Network& n, const std::string& name) {
    int i = n.find(name);
    REQUIRE(i >= 0);
    return n.layers[i];
}

}  // namespace

TEST_CASE("torchvision exports import to the JSON built-ins' totals and per-layer counts", "[onnx]") {
    // Published parameter counts (torchvision.models documentation, "Params"): AlexNet 61,100,840,
    // VGG-16 138,357,544, ResNet-50 25,557,032; tools/export_onnx.py also prints torch's own count.
    struct Case {
        const char* name;
        std::int64_t params;
    };
    for (const Case c : {Case{"alexnet", 61'100'840}, Case{"vgg16", 138'357'544}, Case{"resnet50", 25'557'032}}) {
        INFO(c.name);
        Network onnx = load_network_file(kOnnxDir + c.name + ".onnx");
        Network json = load_network_file(kSourceDir + "/networks/" + c.name + ".json");
        // The export has a dynamic batch: --batch chooses it; compare at the JSON default (256).
        CHECK(onnx.default_batch == 1);
        auto a = dnnplan::networks::totals(onnx, 256);
        auto b = dnnplan::networks::totals(json, 256);
        CHECK(a.params == c.params);
        CHECK(b.params == c.params);
        CHECK(a.fwd_flops == b.fwd_flops);
        CHECK(a.bwd_input_flops == b.bwd_input_flops);
        CHECK(a.bwd_weight_flops == b.bwd_weight_flops);
        CHECK(a.activation_bytes == b.activation_bytes);
        CHECK(a.weight_bytes == b.weight_bytes);
        // Layer by layer, in the same order (torchvision's module order is the export's node order).
        REQUIRE(onnx.layers.size() == json.layers.size());
        for (std::size_t i = 0; i < onnx.layers.size(); ++i) {
            const Layer& x = onnx.layers[i];
            const Layer& y = json.layers[i];
            INFO(x.name << " vs " << y.name);
            // ONNX has no adaptive pooling: torchvision's AdaptiveAvgPool2d exports as an AveragePool
            // whose windows are the same, so only the kind differs.
            bool adaptive = y.kind == LayerKind::adaptive_avgpool2d && x.kind == LayerKind::avgpool2d;
            CHECK((x.kind == y.kind || adaptive));
            CHECK(x.output_shape == y.output_shape);
            CHECK(x.params == y.params);
            CHECK(x.fwd_flops == y.fwd_flops);
            CHECK(x.bwd_input_flops == y.bwd_input_flops);
            CHECK(x.bwd_weight_flops == y.bwd_weight_flops);
            CHECK(x.output_elements == y.output_elements);
            // The same producers (a residual Add may list its operands in the other order).
            std::vector<int> inputs_x = x.inputs, inputs_y = y.inputs;
            std::sort(inputs_x.begin(), inputs_x.end());
            std::sort(inputs_y.begin(), inputs_y.end());
            CHECK(inputs_x == inputs_y);
        }
    }
}

TEST_CASE("libonnx-testdata Conv, Linear and pooling models import with their initializers and output shapes",
          "[onnx]") {
    namespace fs = std::filesystem;
    REQUIRE(fs::is_directory(kTestData + "pytorch-converted"));  // apt-get install libonnx-testdata
    std::vector<std::string> models;
    for (const char* folder : {"pytorch-converted", "pytorch-operator"})
        for (const auto& entry : fs::directory_iterator(kTestData + folder)) {
            std::string name = entry.path().filename().string();
            bool wanted = name.rfind("test_Conv", 0) == 0 || name.rfind("test_Linear", 0) == 0 ||
                          name.find("Pool") != std::string::npos || name == "test_operator_conv" ||
                          name == "test_operator_convtranspose" || name == "test_operator_maxpool";
            if (wanted) models.push_back(entry.path().string());
        }
    std::sort(models.begin(), models.end());
    // pytorch-converted: 28 Conv (8 Conv1d, 11 Conv2d, 7 Conv3d, 2 ConvTranspose2d), 2 Linear, 15 pooling
    // (AvgPool 1d/2d/3d: 2, 2, 3; MaxPool 1d/2d/3d: 3, 2, 3); pytorch-operator: conv, convtranspose, maxpool.
    CHECK(models.size() == 48);
    for (const auto& dir : models) {
        INFO(dir);
        onnx::ModelProto model;
        REQUIRE(model.ParseFromString(read_bytes(dir + "/model.onnx")));
        onnx::TensorProto expected;
        REQUIRE(expected.ParseFromString(read_bytes(dir + "/test_data_set_0/output_0.pb")));
        // Every initializer of these models is a trainable weight or bias.
        std::int64_t initializer_elements = 0;
        for (const auto& t : model.graph().initializer()) {
            std::int64_t n = 1;
            for (auto d : t.dims()) n *= d;
            initializer_elements += n;
        }
        Network n = load_network_file(dir + "/model.onnx");
        Shape output = n.layers.back().output_shape;
        output.insert(output.begin(), n.default_batch);  // their batch is fixed
        CHECK(output == Shape(expected.dims().begin(), expected.dims().end()));
        CHECK(dnnplan::networks::totals(n, 1).params == initializer_elements);
    }
}

TEST_CASE("libonnx-testdata models: hand-computed FLOPs", "[onnx]") {
    auto load = [](const std::string& name) { return load_network_file(kTestData + name + "/model.onnx"); };
    {
        // Conv2d: input [3, 7, 5], weight [4, 3, 3, 2], no padding: output [4, 5, 4] = 80 outputs,
        // each 3 x 3 x 2 = 18 multiply-adds: 2 x 1440 + 80 bias = 2960. Params 4*18 + 4 = 76.
        Network n = load("pytorch-converted/test_Conv2d");
        const Layer& l = n.layers.back();
        CHECK(l.output_shape == Shape{4, 5, 4});
        CHECK(l.fwd_flops == 2960);
        CHECK(l.bwd_weight_flops == 2960);
        CHECK(l.bwd_input_flops == 0);  // the network input needs no gradient
        CHECK(l.params == 76);
    }
    {
        // Conv3d: input [3, 3, 4, 5], weight [4, 3, 2, 3, 4]: output [4, 2, 2, 2] = 32 outputs, each
        // 3 x 24 = 72 multiply-adds: 2 x 2304 + 32 = 4640. Params 4*72 + 4 = 292.
        Network n = load("pytorch-converted/test_Conv3d");
        const Layer& l = n.layers.back();
        CHECK(l.output_shape == Shape{4, 2, 2, 2});
        CHECK(l.fwd_flops == 4640);
        CHECK(l.params == 292);
    }
    {
        // Conv1d, 2 groups: input [4, 6], weight [6, 2, 3]: output [6, 4] = 24 outputs, each 2 x 3
        // multiply-adds: 2 x 144 + 24 = 312. Params 36 + 6 = 42.
        Network n = load("pytorch-converted/test_Conv1d_groups");
        const Layer& l = n.layers.back();
        CHECK(l.output_shape == Shape{6, 4});
        CHECK(l.fwd_flops == 312);
        CHECK(l.params == 42);
    }
    {
        // ConvTranspose2d: input [3, 7, 6], weight [3, 4, 3, 3], stride (3, 2), padding 1,
        // output_padding 1: H = 6*3 - 2 + 2 + 1 + 1 = 20, W = 5*2 - 2 + 2 + 1 + 1 = 12. Every input
        // element meets 4 x 9 weights: 126 x 36 = 4536 multiply-adds; 2 x 4536 + 4 x 240 bias = 10032.
        Network n = load("pytorch-converted/test_ConvTranspose2d");
        const Layer& l = n.layers.back();
        CHECK(l.output_shape == Shape{4, 20, 12});
        CHECK(l.fwd_flops == 10032);
        CHECK(l.params == 112);
    }
    {
        // MaxPool3d kernel 2, stride 2, padding 1 on [3, 5, 5, 5]: (5 + 2 - 2) / 2 + 1 = 3 per axis,
        // 81 outputs x 8-element windows = 648.
        Network n = load("pytorch-converted/test_MaxPool3d_stride_padding");
        CHECK(n.layers.back().output_shape == Shape{3, 3, 3, 3});
        CHECK(n.layers.back().fwd_flops == 648);
    }
    {
        // MaxPool2d kernel (60, 80), dilation 10, padding (10, 20), stride 10 on [1, 1000, 1000]:
        // H = (1020 - 591) / 10 + 1 = 43, W = (1040 - 791) / 10 + 1 = 25; 1075 x 4800 = 5,160,000.
        Network n = load("pytorch-converted/test_MaxPool2d_stride_padding_dilation");
        CHECK(n.layers.back().output_shape == Shape{1, 43, 25});
        CHECK(n.layers.back().fwd_flops == 5'160'000);
    }
    {
        // AvgPool1d as Unsqueeze, AveragePool (2, 1) stride (2, 1), Squeeze on [3, 6]: 9 outputs x 2.
        Network n = load("pytorch-converted/test_AvgPool1d_stride");
        CHECK(n.layers.back().output_shape == Shape{3, 3});
        int pool = -1;
        for (std::size_t i = 0; i < n.layers.size(); ++i)
            if (n.layers[i].kind == LayerKind::avgpool2d) pool = static_cast<int>(i);
        REQUIRE(pool >= 0);
        CHECK(n.layers[pool].fwd_flops == 18);
    }
    {
        // Linear without bias as Transpose(W) then MatMul: [10] -> [8], 80 multiply-adds, 80 params.
        Network n = load("pytorch-converted/test_Linear_no_bias");
        const Layer& l = n.layers.back();
        CHECK(l.kind == LayerKind::linear);
        CHECK(l.fwd_flops == 160);
        CHECK(l.params == 80);
    }
}

TEST_CASE("ONNX operators beyond the CNNs: hand-computed counts (tests/data/onnx/ops.onnx)", "[onnx]") {
    // Input [batch, 8, 16]; per-sample counts (batch 1). See tools/export_onnx.py for the graph.
    Network n = load_network_file(kOnnxDir + "ops.onnx");
    CHECK(n.default_batch == 1);  // dynamic batch
    CHECK(n.layers.size() == 14);
    const Layer& ln = layer(n, "ln");  // LayerNormalization over 16 features of 8 rows: 7 x 128, 2 x 16 params
    CHECK(ln.kind == LayerKind::layernorm);
    CHECK(ln.fwd_flops == 896);
    CHECK(ln.params == 32);
    const Layer& proj = layer(n, "proj");  // MatMul by [16, 32]: 8 x 16 x 32 = 4096 multiply-adds
    CHECK(proj.kind == LayerKind::linear);
    CHECK(proj.output_shape == Shape{8, 32});
    CHECK(proj.fwd_flops == 8192);
    CHECK(proj.bwd_input_flops == 8192);  // ln has parameters, so its output needs a gradient
    CHECK(proj.params == 512);
    const Layer& bias = layer(n, "proj_bias");  // Add of a [32] initializer: 256 adds, 32 params
    CHECK(bias.fwd_flops == 256);
    CHECK(bias.bwd_weight_flops == 256);
    CHECK(bias.params == 32);
    CHECK(layer(n, "softmax").fwd_flops == 5 * 256);
    CHECK(layer(n, "transpose").output_shape == Shape{32, 8});
    const Layer& scores = layer(n, "scores");  // [8, 32] x [32, 8]: 64 outputs x 32 multiply-adds
    CHECK(scores.output_shape == Shape{8, 8});
    CHECK(scores.fwd_flops == 4096);
    CHECK(scores.bwd_input_flops == 8192);  // a gradient for each operand
    CHECK(scores.params == 0);
    CHECK(layer(n, "flatten").output_shape == Shape{64});  // Shape -> Gather -> Concat -> Reshape, folded
    CHECK(layer(n, "clip").fwd_flops == 2 * 64);
    CHECK(layer(n, "hardsigmoid").fwd_flops == 4 * 64);
    const Layer& fc = layer(n, "fc");  // Gemm 64 -> 10 with bias: 2 x 640 + 10
    CHECK(fc.fwd_flops == 1290);
    CHECK(fc.params == 650);
    CHECK(layer(n, "cat").output_shape == Shape{20});
    CHECK(layer(n, "pad").output_shape == Shape{24});  // 1 before and 3 after the 20 features
    const Layer& dropout = layer(n, "dropout");
    CHECK(dropout.attrs.probability == Approx(0.25));
    CHECK(dropout.fwd_flops == 2 * 24);
    CHECK(dnnplan::networks::totals(n, 3).params == 32 + 512 + 32 + 650);
    CHECK(dnnplan::networks::totals(n, 3).fwd_flops == 3 * (896 + 8192 + 256 + 1280 + 4096 + 128 + 256 + 1290 + 48));
}

TEST_CASE("ONNX: a weight shared by two nodes counts once, uneven padding is exact", "[onnx]") {
    Network shared = load_network_file(kOnnxDir + "shared_weight.onnx");
    CHECK(dnnplan::networks::totals(shared, 1).params == 16 * 16 + 16);
    CHECK(layer(shared, "fc1").params == 272);
    CHECK(layer(shared, "fc2").params == 0);
    CHECK(layer(shared, "fc2").fwd_flops == 2 * 256 + 16);  // the second use still computes

    // SAME_UPPER with kernel 4 on 8x8 pads 1 before and 2 after: output 8x8; 64 x 3 outputs, each
    // 2 x 16 multiply-adds: 2 x 6144 + 192 = 12480. MaxPool 2/2 padded 1 at the end: (8+1-2)/2+1 = 4.
    Network pad = load_network_file(kOnnxDir + "same_pad.onnx");
    CHECK(pad.default_batch == 4);  // a fixed batch
    CHECK(layer(pad, "conv").output_shape == Shape{3, 8, 8});
    CHECK(layer(pad, "conv").fwd_flops == 12480);
    CHECK(layer(pad, "pool").output_shape == Shape{3, 4, 4});
    CHECK(layer(pad, "pool").fwd_flops == 48 * 4);
}

TEST_CASE("ONNX: the Erf expansion of GELU and Sigmoid-Mul SiLU import as one layer each", "[onnx]") {
    // 16 features: gelu 8 FLOPs an element, silu 5 (the JSON conventions), not the 5 and 2 nodes' sum.
    Network n = load_network_file(kOnnxDir + "activations.onnx");
    REQUIRE(n.layers.size() == 3);
    CHECK(layer(n, "gelu").attrs.function == "gelu");
    CHECK(layer(n, "gelu").fwd_flops == 8 * 16);
    CHECK(layer(n, "gelu").inputs == std::vector<int>{0});
    CHECK(layer(n, "silu").attrs.function == "silu");
    CHECK(layer(n, "silu").fwd_flops == 5 * 16);
    CHECK(dnnplan::networks::totals(n, 1).params == 0);  // the constants sqrt 2, 1 and 0.5 are not trained
}

TEST_CASE("ONNX: a batch-first GPT block whose Reshape targets need folding (tests/data/onnx/tiny_gpt.onnx)",
          "[onnx]") {
    // tools/export_onnx.py: embedding 1000 x 64, one block (4 heads, MLP 256), head 64 -> 1000;
    // torch counts 178,984 parameters: 64,000 + 2 x 128 (LayerNorms) + 12,480 (qkv) + 4,160 (proj)
    // + 16,640 (fc1) + 16,448 (fc2) + 65,000 (head).
    Network n = load_network_file(kOnnxDir + "tiny_gpt.onnx");
    CHECK(n.token_input);
    CHECK(n.input().output_shape == Shape{32});
    CHECK(dnnplan::networks::totals(n, 1).params == 178'984);
    CHECK(64'000 + 2 * 128 + 12'480 + 4'160 + 16'640 + 16'448 + 65'000 == 178'984);
    // view(B, S, 4, 16) with S and 64 // 4 computed from Shape, Gather, Div, Cast: folded.
    CHECK(layer(n, "/block/Reshape").output_shape == Shape{32, 4, 16});
    CHECK(layer(n, "/block/Transpose").output_shape == Shape{4, 32, 16});
    // Scores Q K^T: 4 heads x 32 x 32 outputs, 16 multiply-adds each.
    CHECK(layer(n, "/block/MatMul").fwd_flops == 2 * 4 * 32 * 32 * 16);
    // The QKV projection: 32 rows x 64 x 192 multiply-adds.
    CHECK(layer(n, "/block/qkv/MatMul").fwd_flops == 2 * 32 * 64 * 192);
    int gelus = 0;
    for (const auto& l : n.layers) gelus += l.attrs.function == "gelu";
    CHECK(gelus == 1);
}

TEST_CASE("ONNX: unsupported operators are listed, or imported as elementwise with --allow-unknown-ops", "[onnx]") {
    std::string path = kOnnxDir + "unknown_op.onnx";
    CHECK(error_of(path) == path +
                                ": unsupported ONNX operators: Selu x2 (first: \"selu_a\"), com.example.FancyNorm x1 "
                                "(first: \"fancy\"); --allow-unknown-ops imports them as elementwise layers without "
                                "parameters");
    LoadOptions allow;
    allow.allow_unknown_ops = true;
    Network n = load_network_file(path, allow);
    REQUIRE(n.layers.size() == 5);
    const Layer& selu = layer(n, "selu_a");
    CHECK(selu.attrs.function == "unknown:Selu");
    CHECK(selu.params == 0);
    CHECK(selu.fwd_flops == 4 * 6 * 6);
    CHECK(n.description.find("UNSUPPORTED OPERATORS") != std::string::npos);
    CHECK(n.description.find("Selu x2, com.example.FancyNorm x1") != std::string::npos);
    CHECK(n.name == "unknown_op [unknown ops as elementwise: Selu x2, com.example.FancyNorm x1]");
    // A custom-domain operator ONNX cannot infer either: its output takes its input's shape.
    CHECK(layer(n, "fancy").attrs.function == "unknown:com.example.FancyNorm");
    CHECK(layer(n, "fancy").output_shape == Shape{4, 6, 6});
    CHECK(layer(n, "selu_b").output_shape == Shape{4, 6, 6});
}

TEST_CASE("ONNX bad input: one clear InputError each, never a protobuf abort", "[onnx]") {
    const std::string bad = kOnnxDir + "bad/";
    CHECK(error_of(bad + "truncated.onnx") ==
          bad + "truncated.onnx: cannot be parsed as an ONNX model (truncated, corrupt or not ONNX)");
    CHECK(error_of(bad + "not_onnx.onnx") ==
          bad + "not_onnx.onnx: cannot be parsed as an ONNX model (truncated, corrupt or not ONNX)");
    CHECK(error_of(bad + "opset_too_new.onnx") ==
          bad +
              "opset_too_new.onnx: opset 99 is newer than this build supports (ONNX opsets up to 17); export with "
              "opset_version=17 or lower");
    CHECK(error_of(bad + "symbolic_height.onnx") ==
          bad +
              "symbolic_height.onnx: graph input \"x\" has a symbolic or unknown dimension 2 (\"height\"): only the "
              "batch dimension (0) may be dynamic; fix the others with --input-shape x=Nx3x<height>x8");
    CHECK(error_of(bad + "uninferable_reshape.onnx") ==
          bad +
              "uninferable_reshape.onnx: /graph/node/1: Reshape node \"reshape\": ONNX shape inference could not "
              "infer the shape of its output \"y\"");
    CHECK(error_of(bad + "missing.onnx") == bad + "missing.onnx: no such file");
    CHECK(error_of(kOnnxDir) == kOnnxDir + ": is a directory, expected a file");

    // Every prefix of a real export is rejected cleanly (or, cut at a field boundary, imported or
    // rejected with a message): never a crash.
    std::string bytes = read_bytes(kOnnxDir + "alexnet.onnx");
    int rejected = 0;
    for (std::size_t cut = 0; cut < bytes.size(); cut += 7) {
        try {
            dnnplan::networks::parse_onnx_model(bytes.substr(0, cut), "cut.onnx");
        } catch (const InputError&) {
            ++rejected;
        }
    }
    CHECK(rejected == static_cast<int>((bytes.size() + 6) / 7));
}
