// The network IR: a DAG of layers with per-sample shapes, parameters, FLOPs and bytes inferred
// exactly (PyTorch's arithmetic), plus the loaders that build it from a JSON spec.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/diagnostics.hpp"
#include "common/units.hpp"

namespace dnnplan::networks {

using Shape = std::vector<std::int64_t>;

enum class LayerKind {
    input,
    conv2d,
    conv_transpose2d,
    linear,
    maxpool2d,
    avgpool2d,
    adaptive_avgpool2d,
    batchnorm2d,
    layernorm,
    activation,  // relu, gelu, sigmoid, tanh, silu, leaky_relu, hardswish, elu
    dropout,
    flatten,
    reshape,
    softmax,
    add,
    concat,
    embedding,
    position_embedding,
    attention,  // multi-head self-attention incl. QKV and output projections
    upsample,   // nearest or bilinear, integer scale factor
};

std::string to_string(LayerKind kind);

// Kind-specific attributes, all explicit (defaults applied by the loader).
struct LayerAttributes {
    std::int64_t out_channels = 0;  // conv2d
    std::int64_t kernel_h = 0, kernel_w = 0;
    std::int64_t stride_h = 1, stride_w = 1;
    std::int64_t padding_h = 0, padding_w = 0;
    std::int64_t dilation_h = 1, dilation_w = 1;
    std::int64_t groups = 1;
    std::int64_t output_padding_h = 0, output_padding_w = 0;  // conv_transpose2d
    std::int64_t scale = 1;          // upsample
    std::string mode;                // upsample: nearest or bilinear
    bool bias = true;                // conv2d, linear, attention
    bool ceil_mode = false;          // pooling
    std::int64_t out_features = 0;   // linear
    std::int64_t output_h = 0, output_w = 0;  // adaptive_avgpool2d
    std::string function;            // activation: relu, gelu, ...
    double probability = 0.0;        // dropout; attention: dropout on the attention probabilities
    Shape target_shape;              // reshape (per sample; -1 inferred)
    std::int64_t axis = 0;           // concat, softmax (per-sample axis, negative from the end)
    std::int64_t num_embeddings = 0, embedding_dim = 0;  // embedding, position_embedding
    std::int64_t heads = 0;          // attention
    bool causal = false;             // attention
    std::string tied_to;             // linear sharing another layer's weight (tied embeddings)
    bool operator==(const LayerAttributes&) const = default;
};

// One layer with everything inferred for a single sample; batch-dependent totals multiply by B.
struct Layer {
    std::string name;
    LayerKind kind = LayerKind::input;
    LayerAttributes attrs;
    std::vector<int> inputs;  // indices of producer layers (always smaller: topological order)
    std::string spec_pointer; // where the layer was defined in its file, for diagnostics

    Shape output_shape;                // per sample
    std::int64_t params = 0;           // trainable parameters owned by this layer (PyTorch's count)
    std::int64_t fwd_flops = 0;        // per sample; a multiply-add counts 2
    std::int64_t bwd_input_flops = 0;  // per sample: gradient with respect to the inputs
    std::int64_t bwd_weight_flops = 0; // per sample: gradient with respect to the weights
    std::int64_t output_elements = 0;  // per sample
    std::int64_t saved_elements = 0;   // per sample, kept for backward beyond the output (attention's internals)
    std::int64_t attention_core_flops = 0;  // per sample, forward: attention's scores, softmax and P V (what
                                            // selective recomputation redoes; Korthikanti et al. 2022, sec. 5)

    bool operator==(const Layer&) const = default;
};

struct Network {
    std::string name;
    std::string description;
    DType dtype = DType::fp32;
    std::int64_t default_batch = 1;
    bool token_input = false;   // the input is a sequence of integer token ids (input_element_bytes)
    std::vector<Layer> layers;  // layers[0] is the input; topological order

    const Layer& input() const { return layers.front(); }
    int find(const std::string& layer_name) const;  // -1 when absent
    bool operator==(const Network&) const = default;
};

// Bytes per element of the network's input when layers hold `dtype`: token ids are int64 whatever
// the compute precision (PyTorch's embedding reads LongTensor indices), so 8; else dtype's size.
std::int64_t input_element_bytes(const Network& network, DType dtype);

// Totals over the network for a given batch. Parameters are exact integers; the batch totals are
// sums of exact per-layer integers in double (a 1T-parameter GPT at batch 3072 and sequence 2048
// does about 1.8e19 FLOPs per iteration, past 2^63; double keeps 16 significant digits). Fails
// (InputError on `file`) when a parameter count or one layer's per-batch count overflows 64 bits.
struct NetworkTotals {
    std::int64_t params = 0;
    double fwd_flops = 0;
    double bwd_input_flops = 0;
    double bwd_weight_flops = 0;
    double activation_bytes = 0;  // outputs plus saved internals of every layer, whole batch
    std::int64_t weight_bytes = 0;
};
// Callers that read the network from a file pass it; the others (networks already checked at their
// batch by the loader or the CLI) name the network instead ("network NAME"), never a placeholder.
NetworkTotals totals(const Network& network, std::int64_t batch, const std::string& file = "");

// Loading. `source` is a path, or a built-in name resolved in `networks_dir`.
Network parse_network(const Json& spec, const std::string& file);
// How a file is read; only ONNX import has options (networks/onnx_import.hpp).
struct LoadOptions {
    bool allow_unknown_ops = false;  // ONNX: import unsupported operators as elementwise layers
    // ONNX: a shape for a graph input (by name), fixing its symbolic dimensions (--input-shape
    // NAME=1x3x640x640); dimension 0 is the batch, which --batch sets.
    std::map<std::string, std::vector<std::int64_t>> input_shapes;
};
// A .onnx path is imported from ONNX, anything else read as a JSON spec.
Network load_network_file(const std::string& path, const LoadOptions& options = {});

// The directory holding the built-in network specs (compiled-in source path, overridable by the
// DNNPLAN_DATA_DIR environment variable at the CLI edge).
std::vector<std::string> builtin_network_names(const std::string& networks_dir);
// A path if `name_or_path` names a file or ends in .json/.onnx; otherwise networks_dir/NAME.json.
std::string resolve_network_path(const std::string& name_or_path, const std::string& networks_dir);

// Round trip of the inferred network as JSON (used by `inspect --format json`).
Json to_json(const Network& network, std::int64_t batch);

}  // namespace dnnplan::networks
