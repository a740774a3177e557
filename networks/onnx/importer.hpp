// The ONNX importer's private interface (networks/onnx_import.hpp is the public one). One
// Importer reads one model; its work is split by idea: import.cpp checks the model and graph and
// drives the import, shapes.cpp runs ONNX's shape inference and folds shape computations,
// fused.cpp finds exported GELU and SiLU chains, layers.cpp builds and adds a node's layers, and
// ops.cpp translates each operator into them.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "networks/infer.hpp"
#include "networks/network.hpp"

namespace dnnplan::networks::onnx_import {

// When the batch dimension is symbolic, shape inference runs with this concrete batch so that
// Shape -> Gather -> Concat -> Reshape chains fold to numbers; an activation whose first dimension
// is anything else has mixed the batch into the per-sample dimensions.
constexpr std::int64_t kProbeBatch = 7;

// One tensor of the graph as the importer sees it.
struct Value {
    bool activation = false;  // depends on the graph input (else: a constant, folded away)
    int layer = -1;           // activation: the layer producing it
    bool has_dims = false;
    Shape dims;  // full dims incl. the batch; -1 where unknown
    int elem_type = 0;
    const onnx::TensorProto* tensor = nullptr;  // initializer or Constant value
    std::set<std::string> sources;              // constant: the trainable initializers it derives from
};

// What the ONNX operator maps to.
enum class OpClass {
    conv,
    conv_transpose,
    gemm,
    matmul,
    binary,
    activation,
    softmax,
    pool,
    global_pool,
    batchnorm,
    instancenorm,
    layernorm,
    concat,
    flatten,
    view,
    movement,
    dropout,
    alias,
    gather,
    resize,
    unary_math,
    reduce,
    shape,
    constant,
    unknown
};

// The operator's class, or unknown (also for other domains than ONNX's default).
OpClass classify(const onnx::NodeProto& node);
const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const std::string& name);
std::int64_t product(const Shape& s, std::size_t from = 0);  // throws std::overflow_error

class Importer {
public:
    Importer(onnx::ModelProto& model, std::string file, const LoadOptions& options)
        : model_(model), file_(std::move(file)), options_(options) {}
    Network run();

private:
    // ---- diagnostics (import.cpp) -------------------------------------------------------------
    // Diagnostics point into the protobuf like a JSON pointer: /graph/node/INDEX, then the node.
    std::string node_location() const { return "/graph/node/" + std::to_string(node_index_); }
    std::string node_label() const;
    [[noreturn]] void fail_node(const std::string& message) const;
    [[noreturn]] void fail_model(const std::string& message) const;
    // ---- model-level checks (import.cpp) ------------------------------------------------------
    void check_model();
    void apply_input_shapes(const std::set<std::string>& initializers);
    void check_names();
    void reject_unknown_ops();
    void check_graph();
    // ---- shape inference and constant folding of shape computations (shapes.cpp) --------------
    void infer_shapes();
    void type_unknown_operators();
    bool type_unknown_outputs();
    void run_shape_inference();
    struct IntTensor {
        Shape dims;
        std::vector<std::int64_t> values;
    };
    static constexpr std::size_t kMaxFoldedElements = 64;  // shapes and indices, never weights
    static std::optional<IntTensor> int_tensor(const onnx::TensorProto& t);
    std::optional<IntTensor> evaluate(const onnx::NodeProto& node,
                                      const std::unordered_map<std::string, IntTensor>& known) const;
    bool fold_shape_computations();
    void record_type(const onnx::ValueInfoProto& info);
    void collect_inferred_types();
    // ---- the input layer (import.cpp) ---------------------------------------------------------
    void create_input();
    // ---- tensors (layers.cpp) ------------------------------------------------------------------
    const Value& value(const std::string& name) const;
    bool present(const onnx::NodeProto& node, int i) const { return i < node.input_size() && !node.input(i).empty(); }
    Shape output_dims(const std::string& name) const;
    Shape per_sample(const Shape& full, const std::string& name) const;
    const Shape& in_shape(int layer) const { return network_.layers[layer].output_shape; }
    std::vector<int> activation_inputs(const onnx::NodeProto& node) const;
    int activation_at(const onnx::NodeProto& node, int i, const char* what) const;
    const Value& constant_at(const onnx::NodeProto& node, int i, const char* what) const;
    std::int64_t claim(const onnx::NodeProto& node, std::initializer_list<int> slots);
    // ---- layers --------------------------------------------------------------------------------
    Layer infer(LayerKind kind, const std::string& kind_name, const LayerAttributes& attrs, const Shape& shape,
                int input_count = 1, bool tokens = false);
    Layer infer_activation(const std::string& function, const Shape& shape);
    void check_spec_limits(const Shape& shape, LayerKind kind, const LayerAttributes& attrs, bool tokens) const;
    int add_layer(const onnx::NodeProto& node, Layer layer, const std::vector<int>& inputs, int output = 0,
                  bool check_shape = true);
    Layer elementwise(const std::string& function, std::int64_t elements, std::int64_t forward, std::int64_t backward);
    // Checked arithmetic for counts; an overflow is an error at the node.
    std::int64_t mul(std::int64_t a, std::int64_t b) const { return or_fail(checked_mul(a, b)); }
    std::int64_t add(std::int64_t a, std::int64_t b) const { return or_fail(checked_add(a, b)); }
    std::int64_t or_fail(std::optional<std::int64_t> r) const;
    // ---- attributes ----------------------------------------------------------------------------
    std::int64_t int_attr(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback) const;
    float float_attr(const onnx::NodeProto& node, const std::string& name, float fallback) const;
    std::string string_attr(const onnx::NodeProto& node, const std::string& name, const std::string& fallback) const;
    std::vector<std::int64_t> ints_attr(const onnx::NodeProto& node, const std::string& name, std::size_t count,
                                        std::int64_t fallback) const;
    // Window geometry of Conv and pooling along each spatial axis: the symmetric padding to give the
    // JSON layer, and how much to grow its input where ONNX pads unevenly (the output size and the
    // FLOPs depend only on the total padding, so padding the input by the total is exact).
    struct Window {
        std::vector<std::int64_t> kernel, stride, dilation, pad, grow;
    };
    Window window(const onnx::NodeProto& node, const Shape& spatial, std::vector<std::int64_t> kernel) const;
    static std::pair<std::int64_t, std::int64_t> hw(const std::vector<std::int64_t>& v, std::int64_t one);
    // A Window on the 2-D view: the last two axes' geometry, and the product of the leading axes'
    // kernel sizes (a 3-D window folds its depth into the channels or the window length).
    struct PlanarWindow {
        std::int64_t kh, kw, sh, sw, dh, dw, ph, pw, gh, gw, ih, iw, folded_kernel = 1;
    };
    PlanarWindow planar(const Window& w, const Shape& spatial) const;
    std::pair<Shape, std::int64_t> planes_of(const onnx::NodeProto& node, const Layer& layer) const;
    // ---- fused activations (fused.cpp) ---------------------------------------------------------
    struct Fused {
        std::string function;  // on the chain's last node: the activation; empty on inner nodes
        std::string input;     // the chain's input tensor x
    };
    void find_fused_activations();
    void fused_activation(const onnx::NodeProto& node, const Fused& fused);
    // ---- operators (ops.cpp) -------------------------------------------------------------------
    void import_node(const onnx::NodeProto& node);
    void constant_node(const onnx::NodeProto& node);
    void fold(const onnx::NodeProto& node);
    void conv(const onnx::NodeProto& node);
    void conv_transpose(const onnx::NodeProto& node);
    Layer linear(const Shape& in, std::int64_t out_features, bool bias);
    void activation_matmul(const onnx::NodeProto& node, const std::vector<int>& inputs, std::int64_t k,
                           std::int64_t params);
    void gemm(const onnx::NodeProto& node);
    void matmul(const onnx::NodeProto& node);
    void binary(const onnx::NodeProto& node);
    void activation(const onnx::NodeProto& node);
    void unary_math(const onnx::NodeProto& node);
    void reduce(const onnx::NodeProto& node);
    std::int64_t sample_axis(std::int64_t axis, std::size_t full_rank) const;
    void softmax(const onnx::NodeProto& node);
    void pool(const onnx::NodeProto& node);
    void global_pool(const onnx::NodeProto& node);
    void batchnorm(const onnx::NodeProto& node);
    void layernorm(const onnx::NodeProto& node);
    void concat(const onnx::NodeProto& node);
    void flatten(const onnx::NodeProto& node);
    void view(const onnx::NodeProto& node);
    void movement(const onnx::NodeProto& node);
    void dropout(const onnx::NodeProto& node);
    void alias(const onnx::NodeProto& node);
    void gather(const onnx::NodeProto& node);
    void resize(const onnx::NodeProto& node);
    void unknown(const onnx::NodeProto& node);
    // ---- the network's name, description and batch (import.cpp) -------------------------------
    void finish();
    std::int64_t default_batch() const { return static_batch_ ? batch_ : 1; }

    onnx::ModelProto& model_;
    std::string file_;
    LoadOptions options_;
    Network network_;
    int opset_ = 0;
    int node_index_ = 0;
    std::int64_t batch_ = 1;
    bool static_batch_ = false;
    std::string unknown_summary_;
    std::unordered_map<std::string, Value> inferred_;  // ONNX's inferred types by tensor name
    std::unordered_map<std::string, Value> values_;    // tensors seen so far
    std::unordered_map<std::string, std::int64_t> initializer_elements_;
    std::set<std::string> claimed_;
    std::set<std::string> used_names_;
    Autograd autograd_;
    std::map<int, Fused> fused_;                              // node index -> its part in a fused activation
    std::unordered_map<std::string, Shape> inferred_shapes_;  // while folding shape computations
};

}  // namespace dnnplan::networks::onnx_import
