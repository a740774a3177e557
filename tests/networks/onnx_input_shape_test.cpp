// --input-shape (issue 18, item 6): an ONNX model whose image height and width are symbolic, as
// exported detectors are, imports once they are fixed. The model is built here with protobuf's C++
// API: x [batch, 3, "height", "width"] -> Conv 3->8, 3x3, padding 1 -> Relu -> y.
#include <onnx/onnx_pb.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "networks/network.hpp"
#include "networks/onnx_import.hpp"

namespace {

using dnnplan::InputError;
using dnnplan::networks::LoadOptions;
using dnnplan::networks::parse_onnx_model;

void add_dims(onnx::ValueInfoProto* value, const std::vector<std::string>& dims) {
    auto* tensor = value->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnx::TensorProto::FLOAT);
    for (const std::string& d : dims) {
        auto* dim = tensor->mutable_shape()->add_dim();
        if (d.find_first_not_of("0123456789") == std::string::npos)
            dim->set_dim_value(std::stoll(d));
        else
            dim->set_dim_param(d);
    }
}

void add_initializer(onnx::GraphProto* graph, const std::string& name, const std::vector<std::int64_t>& dims) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    std::int64_t n = 1;
    for (auto d : dims) {
        t->add_dims(d);
        n *= d;
    }
    for (std::int64_t i = 0; i < n; ++i) t->add_float_data(0.01f);
}

// `width` is "width" (symbolic) or a number (fixed).
std::string dynamic_detector(const std::string& width = "width") {
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.set_producer_name("dnnplan test");
    model.add_opset_import()->set_version(13);
    auto* graph = model.mutable_graph();
    graph->set_name("dynamic_hw");
    add_dims(graph->add_input(), {"batch", "3", "height", width});
    graph->mutable_input(0)->set_name("images");
    add_initializer(graph, "w", {8, 3, 3, 3});
    add_initializer(graph, "b", {8});
    auto* conv = graph->add_node();
    conv->set_op_type("Conv");
    conv->set_name("conv");
    for (const char* in : {"images", "w", "b"}) conv->add_input(in);
    conv->add_output("c");
    auto* kernel = conv->add_attribute();
    kernel->set_name("kernel_shape");
    kernel->set_type(onnx::AttributeProto::INTS);
    kernel->add_ints(3);
    kernel->add_ints(3);
    auto* pads = conv->add_attribute();
    pads->set_name("pads");
    pads->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) pads->add_ints(1);
    auto* relu = graph->add_node();
    relu->set_op_type("Relu");
    relu->set_name("relu");
    relu->add_input("c");
    relu->add_output("y");
    add_dims(graph->add_output(), {"batch", "8", "height", width});
    graph->mutable_output(0)->set_name("y");
    std::string bytes;
    model.SerializeToString(&bytes);
    return bytes;
}

std::string error_of(const std::string& bytes, const LoadOptions& options) {
    try {
        parse_onnx_model(bytes, "dyn.onnx", options);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("ONNX input shape: --input-shape fixes an ONNX model's symbolic height and width", "[networks][onnx]") {
    const std::string bytes = dynamic_detector();
    // Without it the symbolic height is refused, and the message says how to fix it.
    CHECK(error_of(bytes, {}) ==
          "dyn.onnx: graph input \"images\" has a symbolic or unknown dimension 2 (\"height\"): only the batch "
          "dimension (0) may be dynamic; fix the others with --input-shape images=Nx3x<height>x<width>");

    LoadOptions options;
    options.input_shapes["images"] = {1, 3, 640, 480};
    dnnplan::networks::Network n = parse_onnx_model(bytes, "dyn.onnx", options);
    const int conv = n.find("conv");
    REQUIRE(conv >= 0);
    // A 3x3 convolution with padding 1 keeps 640 x 480; 8 output channels.
    CHECK(n.layers[conv].output_shape == dnnplan::networks::Shape{8, 640, 480});
    // Parameters: 8 x 3 x 3 x 3 weights + 8 biases = 224.
    CHECK(dnnplan::networks::totals(n, 1).params == 224);
    // The batch stays dynamic: the planner's --batch sets it (the model's default is not 1 fixed).
    CHECK(n.description.find("batch dynamic") != std::string::npos);

    // Another size gives other shapes from the same file.
    options.input_shapes["images"] = {1, 3, 320, 320};
    CHECK(parse_onnx_model(bytes, "dyn.onnx", options).layers[conv].output_shape ==
          dnnplan::networks::Shape{8, 320, 320});
}

TEST_CASE("ONNX input shape: --input-shape is checked against the model", "[networks][onnx]") {
    LoadOptions options;
    options.input_shapes["x"] = {1, 3, 64, 64};
    CHECK(error_of(dynamic_detector(), options) ==
          "dyn.onnx: --input-shape: the model has no graph input \"x\" (its inputs: \"images\")");
    options.input_shapes = {{"images", {1, 3, 64}}};
    CHECK(error_of(dynamic_detector(), options) ==
          "dyn.onnx: --input-shape images: 3 dimensions given, but the input has 4 (Nx3x<height>x<width>)");
    // A fixed size can only be given as it is: 3 channels, and a width fixed at 100.
    options.input_shapes = {{"images", {1, 4, 64, 64}}};
    CHECK(error_of(dynamic_detector(), options) ==
          "dyn.onnx: --input-shape images: dimension 1 is fixed at 3 by the model, not 4 (Nx3x<height>x<width>)");
    options.input_shapes = {{"images", {1, 3, 64, 99}}};
    CHECK(error_of(dynamic_detector("100"), options) ==
          "dyn.onnx: --input-shape images: dimension 3 is fixed at 100 by the model, not 99 (Nx3x<height>x100)");
    options.input_shapes = {{"images", {1, 3, 64, 100}}};
    CHECK(error_of(dynamic_detector("100"), options).empty());
}
