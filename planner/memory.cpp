#include "memory.hpp"

namespace dnnplan::planner {

using networks::LayerKind;

std::string to_string(Optimizer optimizer) { return optimizer == Optimizer::adam ? "adam" : "sgd"; }

LayerMemory layer_memory(const networks::Network& network, int index, const Layout& layout, const LayerDists& dists,
                         double local_batch, double element_bytes) {
    const networks::Layer& layer = network.layers[index];
    const Dist& in = dists.in;
    const Dist& out = dists.out;
    // Anchors split their weights over co x ci; batch norm keeps the statistics of its channels.
    const double weight_split = is_anchor_kind(layer.kind)             ? static_cast<double>(layout.co) * layout.ci
                                : layer.kind == LayerKind::batchnorm2d ? in.c
                                                                       : 1.0;
    // Attention's saved internals (scores, softmax) are split by heads.
    const double saved_split = layer.kind == LayerKind::attention ? layout.co : 1.0;
    const double out_share = layer.output_elements / static_cast<double>(out.c * out.h * out.w);
    const double in_share =
        network.layers[layer.inputs.front()].output_elements / static_cast<double>(in.c * in.h * in.w);
    LayerMemory m;
    m.local_params = layer.params / weight_split;
    m.weight_bytes = m.local_params * element_bytes;
    m.activation_bytes = local_batch * element_bytes * (out_share + layer.saved_elements / saved_split);
    m.working_set_bytes = local_batch * element_bytes * (out_share + in_share);
    return m;
}

double optimizer_state_bytes(double params, Optimizer optimizer, DType dtype, int shards) {
    double states = optimizer == Optimizer::adam ? 2 : 1;
    if (dtype != DType::fp32) states += 1;
    return params * 4 * states / shards;
}

MemoryBreakdown stage_memory(const StageMemoryInput& stage, const StageMemoryOptions& options) {
    MemoryBreakdown m;
    m.weights = stage.weight_bytes;
    m.gradients = stage.weight_bytes;
    m.optimizer = optimizer_state_bytes(stage.params, options.optimizer, options.dtype, options.zero_shards);
    m.activations = options.recompute ? options.in_flight * stage.input_bytes + stage.activation_bytes
                                      : options.in_flight * (stage.activation_bytes + stage.input_bytes);
    m.buffers = stage.buffer_bytes + stage.working_set_bytes;
    return m;
}

}  // namespace dnnplan::planner
