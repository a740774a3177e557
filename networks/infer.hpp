// Per-layer inference: a layer's per-sample output shape, parameters, FLOPs and saved tensors from
// its kind, attributes and inputs (PyTorch's arithmetic, networks/README.md). The JSON spec loader
// and the ONNX importer both build their layers with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "networks/network.hpp"

namespace dnnplan::networks {

// Every per-sample shape has at most this rank, so the layer cap bounds memory; real tensors have
// rank 1 to 4.
inline constexpr std::size_t kMaxRank = 16;

// The largest upsample scale a spec may give; the ONNX importer's upsample layers meet it too.
inline constexpr std::int64_t kMaxUpsampleScale = 1 << 20;

// FLOPs per output element of a bilinear upsample, forward and input gradient (networks/README.md).
inline constexpr int kBilinearFlopsPerOutput = 8;

// A layer that cannot be inferred. `field` names the attribute at fault ("shape", "axis",
// "tied_to"), or is empty for the layer as a whole, so each loader can point into its own source.
class LayerError : public std::runtime_error {
public:
    LayerError(std::string field, const std::string& message)
        : std::runtime_error(message), field_(std::move(field)) {}
    const std::string& field() const { return field_; }

private:
    std::string field_;
};

// What a layer reads besides its kind and attributes.
struct LayerContext {
    std::string kind_name;              // as the spec writes it ("relu", "global_avgpool2d"), for messages
    std::vector<const Layer*> inputs;   // the producers, already inferred
    bool token_input = false;           // the network's input holds integer token ids
    const Layer* tied = nullptr;        // linear: the embedding its `tied_to` names, resolved by the caller
};

// Fills `layer`'s output_shape, params, FLOPs, output_elements and saved_elements from its kind and
// attrs, with bwd_input_flops as if an input needed a gradient (Autograd decides); throws
// LayerError on a misfit or a count that overflows 64 bits. Returns the part of bwd_input_flops
// computed even when no input needs a gradient: attention's internal gradients feed its weights'.
std::int64_t infer_layer(Layer& layer, const LayerContext& context);

// Autograd's rule, shared by the loaders: a layer computes input gradients only when one of its
// inputs depends on parameters, and its output depends on parameters when an input does or it
// owns (or ties to) parameters.
class Autograd {
public:
    // Adds `layer`, whose `inputs` index earlier added layers (the input layer comes first), and
    // keeps only `internal_backward_flops` of its bwd_input_flops when no input needs a gradient.
    void add(Layer& layer, std::int64_t internal_backward_flops = 0);

private:
    std::vector<bool> requires_grad_;
};

// "[3, 224, 224]".
std::string shape_string(const Shape& shape);

// The element count of a shape, or nullopt when it does not fit 64 bits.
std::optional<std::int64_t> checked_elements(const Shape& shape, std::size_t first_axis = 0);

}  // namespace dnnplan::networks
