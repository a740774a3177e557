// The public per-layer API (networks/infer.hpp) called directly, as the ONNX importer does: expected
// values worked out by hand from PyTorch's formulas, never copied from the program's output.
#include <catch2/catch.hpp>
#include <string>

#include "networks/infer.hpp"
#include "networks/network.hpp"

using dnnplan::DType;
using namespace dnnplan::networks;

namespace {

Layer producer(const std::string& name, LayerKind kind, const Shape& shape) {
    Layer layer;
    layer.name = name;
    layer.kind = kind;
    layer.output_shape = shape;
    return layer;
}

}  // namespace

TEST_CASE("infer_layer: a conv2d from its attributes and input shape", "[networks][infer]") {
    const Layer x = producer("x", LayerKind::conv2d, {3, 32, 32});
    Layer conv;
    conv.kind = LayerKind::conv2d;
    conv.attrs.out_channels = 16;
    conv.attrs.kernel_h = conv.attrs.kernel_w = 3;
    conv.attrs.padding_h = conv.attrs.padding_w = 1;
    CHECK(infer_layer(conv, LayerContext{"conv2d", {&x}}) == 0);
    CHECK(conv.output_shape == Shape{16, 32, 32});
    CHECK(conv.params == 16 * 3 * 9 + 16);                   // weights and bias
    CHECK(conv.fwd_flops == 2 * 16 * 32 * 32 * 27 + 16384);  // 2 per multiply-add, plus the bias
    CHECK(conv.bwd_input_flops == 2 * 16 * 32 * 32 * 27);
    CHECK(conv.output_elements == 16 * 32 * 32);
}

TEST_CASE("infer_layer: a misfit names the attribute at fault", "[networks][infer]") {
    const Layer x = producer("x", LayerKind::conv2d, {2, 3});
    Layer reshape;
    reshape.kind = LayerKind::reshape;
    reshape.attrs.target_shape = {4, 2};
    try {
        infer_layer(reshape, LayerContext{"reshape", {&x}});
        FAIL("no LayerError");
    } catch (const LayerError& e) {
        CHECK(e.field() == "shape");
        CHECK(std::string(e.what()) == "cannot reshape [2, 3] from layer \"x\" (6 elements) to [4, 2]");
    }
    Layer add;
    add.kind = LayerKind::add;
    try {
        infer_layer(add, LayerContext{"add", {&x}});
        FAIL("no LayerError");
    } catch (const LayerError& e) {
        CHECK(e.field().empty());
        CHECK(std::string(e.what()) == "add needs at least two inputs, got 1");
    }
}

TEST_CASE("Autograd: no input gradient before the first layer with parameters", "[networks][infer]") {
    Autograd autograd;
    Layer input = producer("input", LayerKind::input, {4, 8});
    autograd.add(input);
    const Layer x = producer("x", LayerKind::activation, {4, 8});
    Layer relu;
    relu.kind = LayerKind::activation;
    relu.attrs.function = "relu";
    relu.inputs = {0};
    infer_layer(relu, LayerContext{"relu", {&x}});
    CHECK(relu.bwd_input_flops == 32);
    autograd.add(relu);
    CHECK(relu.bwd_input_flops == 0);  // reads only the input: nothing to propagate to
    Layer linear;
    linear.kind = LayerKind::linear;
    linear.attrs.out_features = 2;
    linear.inputs = {1};
    infer_layer(linear, LayerContext{"linear", {&x}});
    autograd.add(linear);
    CHECK(linear.bwd_input_flops == 0);
    Layer after = producer("after", LayerKind::activation, {4, 2});
    after.inputs = {2};
    after.bwd_input_flops = 8;
    autograd.add(after);
    CHECK(after.bwd_input_flops == 8);  // the linear layer's weights need this gradient
}

TEST_CASE("input_element_bytes: token ids are 8 bytes whatever the dtype", "[networks][infer]") {
    Network network;
    CHECK(input_element_bytes(network, DType::fp16) == 2);
    CHECK(input_element_bytes(network, DType::fp32) == 4);
    network.token_input = true;
    CHECK(input_element_bytes(network, DType::fp16) == 8);
    CHECK(input_element_bytes(network, DType::bf16) == 8);
}
