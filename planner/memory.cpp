#include "memory.hpp"

namespace dnnplan::planner {

using networks::LayerKind;

std::string to_string(Optimizer optimizer) { return optimizer == Optimizer::adam ? "adam" : "sgd"; }

Optimizer default_optimizer(const networks::Network& network) {
    for (const networks::Layer& layer : network.layers)
        if (layer.kind == LayerKind::attention) return Optimizer::adam;
    return Optimizer::sgd;
}

double sequence_parallel_split(const Layout& layout, const Dist& dist, bool sequence_parallel) {
    const bool replicated = dist.c * dist.h * dist.w == 1;
    return sequence_parallel && replicated ? static_cast<double>(layout.co * layout.ci) : 1.0;
}

namespace {
// How many ways attention's per-head tensors are divided: heads / the busiest process's heads.
double attention_heads_split(const networks::Layer& layer, const Layout& layout) {
    if (layer.kind != LayerKind::attention) return 1.0;
    return static_cast<double>(layer.attrs.heads) / static_cast<double>(largest_part(layer.attrs.heads, layout.co));
}

// Per sample, elements times bytes each: what a token network's layer keeps for its backward
// pass (layer_memory's comment), on one process. `share(d, elements)` is one process's part of a
// tensor of `elements` distributed as `d` (split T more ways along the sequence when it is
// replicated over the tensor group and sequence parallelism is on).
LayerMemory transformer_layer_memory(const networks::Network& network, const networks::Layer& layer,
                                     const Layout& layout, const LayerDists& dists, double element_bytes,
                                     bool sequence_parallel) {
    auto share = [&](const Dist& d, const networks::Shape& shape, double elements) {
        return elements * largest_share(shape, d) / sequence_parallel_split(layout, d, sequence_parallel);
    };
    const networks::Shape& input_shape = network.layers[layer.inputs.front()].output_shape;
    const double input = static_cast<double>(network.layers[layer.inputs.front()].output_elements);
    LayerMemory m;
    switch (layer.kind) {
        case LayerKind::layernorm:
        case LayerKind::linear:
        case LayerKind::activation:
        case LayerKind::batchnorm2d:
        case LayerKind::softmax:
            m.activation_bytes = share(dists.in, input_shape, input) * element_bytes;
            break;
        case LayerKind::dropout:
            m.activation_bytes = share(dists.in, input_shape, input) * 1.0;  // the mask, one byte per element
            break;
        case LayerKind::attention: {
            // Input (before the QKV projection), then Q, K, V and the context split by heads.
            const double heads_split = attention_heads_split(layer, layout);
            const double scores = static_cast<double>(layer.attrs.heads) * layer.output_shape[0] *
                                  layer.output_shape[0] / heads_split;
            const double dropout = layer.attrs.probability > 0 ? 1.0 + element_bytes : 0.0;  // mask + output
            m.attention_core_bytes = scores * (element_bytes + dropout);
            m.checkpoint_bytes = share(dists.in, input_shape, input) * element_bytes;
            m.activation_bytes = m.checkpoint_bytes + 4 * input / heads_split * element_bytes + m.attention_core_bytes;
            break;
        }
        default:
            break;  // adds, embeddings, reshapes: nothing for the backward pass
    }
    // The network's output feeds the loss, which keeps it (the logits) for its backward pass.
    if (&layer == &network.layers.back()) m.activation_bytes += share(dists.out, layer.output_shape, layer.output_elements) * element_bytes;
    return m;
}
}  // namespace

LayerMemory layer_memory(const networks::Network& network, int index, const Layout& layout, const LayerDists& dists,
                         double local_batch, double element_bytes, bool sequence_parallel) {
    const networks::Layer& layer = network.layers[index];
    const Dist& in = dists.in;
    const Dist& out = dists.out;
    const networks::Shape& input_shape = network.layers[layer.inputs.front()].output_shape;
    // The busiest process's shares of the output and the input (balanced splits: the largest part).
    const double out_share = layer.output_elements * largest_share(dist_shape(network, index), out);
    const double in_share =
        network.layers[layer.inputs.front()].output_elements * largest_share(dist_shape(network, layer.inputs.front()), in);
    LayerMemory m;
    if (network.token_input) {
        m = transformer_layer_memory(network, layer, layout, dists, element_bytes, sequence_parallel);
        m.activation_bytes *= local_batch;
        m.attention_core_bytes *= local_batch;
        m.checkpoint_bytes *= local_batch;
    } else {
        // Attention's saved internals (scores, softmax) are split by heads (balanced).
        const double saved_split = attention_heads_split(layer, layout);
        m.activation_bytes = local_batch * element_bytes * (out_share + layer.saved_elements / saved_split);
    }
    m.local_params = local_parameters(layer, input_shape, layout, in);
    m.weight_bytes = m.local_params * element_bytes;
    m.working_set_bytes = local_batch * element_bytes * (out_share + in_share);
    return m;
}

double optimizer_state_bytes(double params, Optimizer optimizer, DType dtype, int shards) {
    double states = optimizer == Optimizer::adam ? 2 : 1;
    if (dtype != DType::fp32) states += 1;
    return params * 4 * states / shards;
}

double kept_per_micro_batch(const StageMemoryInput& stage, Recompute recompute) {
    switch (recompute) {
        case Recompute::none:
            return stage.activation_bytes + stage.input_bytes;
        case Recompute::selective:
            return stage.activation_bytes - stage.attention_core_bytes + stage.input_bytes;
        case Recompute::full:
            return (stage.checkpoints > 0 ? stage.checkpoint_bytes : 0.0) + stage.input_bytes;
    }
    return 0;
}

double recomputed_at_once(const StageMemoryInput& stage, Recompute recompute) {
    if (recompute != Recompute::full) return 0;
    return stage.checkpoints > 0 ? stage.activation_bytes / stage.checkpoints : stage.activation_bytes;
}

MemoryBreakdown stage_memory(const StageMemoryInput& stage, const StageMemoryOptions& options) {
    MemoryBreakdown m;
    m.weights = stage.weight_bytes;
    m.gradients = stage.weight_bytes;
    m.optimizer = optimizer_state_bytes(stage.params, options.optimizer, options.dtype, options.zero_shards);
    m.activations = options.in_flight * kept_per_micro_batch(stage, options.recompute) +
                    recomputed_at_once(stage, options.recompute);
    m.buffers = stage.buffer_bytes + stage.working_set_bytes;
    return m;
}

}  // namespace dnnplan::planner
