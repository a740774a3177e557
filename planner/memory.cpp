#include "memory.hpp"

namespace dnnplan::planner {

using networks::LayerKind;

std::string to_string(Optimizer optimizer) { return optimizer == Optimizer::adam ? "adam" : "sgd"; }

LayerMemory layer_memory(const networks::Network& network, int index, const Layout& layout, const LayerDists& dists,
                         double local_batch, double element_bytes) {
    const networks::Layer& layer = network.layers[index];
    const Dist& in = dists.in;
    const Dist& out = dists.out;
    const networks::Shape& input_shape = network.layers[layer.inputs.front()].output_shape;
    const double weight_split = weight_shards(layer, input_shape, layout, in);
    // Attention's saved internals (scores, softmax) are split by heads.
    const double saved_split = layer.kind == LayerKind::attention ? static_cast<double>(layer.attrs.heads) / largest_part(layer.attrs.heads, layout.co) : 1.0;
    // The busiest process's shares of the output and the input (balanced splits: the largest part).
    const double out_share = layer.output_elements * largest_share(layer.output_shape, out);
    const double in_share = network.layers[layer.inputs.front()].output_elements * largest_share(input_shape, in);
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
