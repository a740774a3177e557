// The memory model: bytes per process of a layer and of a stage (a layer-parallel plan is one
// stage with one micro-batch in flight). Every family computes its memory here (DESIGN.md
// section 4, "Memory").
#pragma once

#include <cstdint>
#include <string>

#include "common/units.hpp"
#include "networks/network.hpp"
#include "planner/layout.hpp"
#include "planner/schedule.hpp"

namespace dnnplan::planner {

enum class Optimizer { sgd, adam };  // sgd = SGD with momentum
std::string to_string(Optimizer optimizer);
// The optimizer a network trains with unless the user says otherwise: Adam for networks with
// attention (transformers train with Adam in mixed precision: 16-bit weights and gradients, fp32
// master weights and moments, as Megatron-LM does), SGD with momentum otherwise.
Optimizer default_optimizer(const networks::Network& network);

// Bytes of `layer`'s output for `samples` samples, unsplit: what a redistribution, a stage boundary
// or a graph partition's cut moves (and its gradient back).
inline double output_bytes(const networks::Layer& layer, double samples, double element_bytes) {
    return samples * static_cast<double>(layer.output_elements) * element_bytes;
}

// What one layer keeps on a process for one micro-batch of `local_batch` samples.
struct LayerMemory {
    double local_params = 0;          // the layer's parameters on this process
    double weight_bytes = 0;          // ... in the training dtype (gradients take as much)
    double activation_bytes = 0;      // the tensors saved for the backward pass (all of them)
    double attention_core_bytes = 0;  // the part of them selective recomputation drops (s x s tensors)
    double checkpoint_bytes = 0;      // full recomputation: the transformer layer's input (attention layers)
    double working_set_bytes = 0;     // the output and input gradients, live together in the backward pass
    bool operator==(const LayerMemory&) const = default;
};
// `layout` is the layer's segment anchor's, `dists` its input and output distributions.
//
// Token (transformer) networks count what each layer's backward pass reads, as Korthikanti et
// al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", section 4, eq. 1 and
// Table 2) do: layernorm, linear and activation (GeLU) layers their input; attention its input,
// Q, K, V and the context (4 s h), the softmax output (a s^2) and, with attention dropout, its
// mask (1 byte) and output; dropout layers their mask (1 byte per element); residual adds
// nothing. A tensor replicated over the tensor group (T = layout.co x layout.ci) is split T ways
// along the sequence under sequence parallelism. A pre-LN block with both dropouts then keeps
// s b h (34 + 5 a s / h) bytes in 16-bit, s b h (10 + 24 / T + 5 a s / (h T)) under tensor
// parallelism and s b h (34 + 5 a s / h) / T with sequence parallelism (Table 2).
// Other networks keep each layer's output plus its saved internals.
LayerMemory layer_memory(const networks::Network& network, int index, const Layout& layout, const LayerDists& dists,
                         double local_batch, double element_bytes, bool sequence_parallel = false);

// The further split of a tensor distributed as `dist` under sequence parallelism (Korthikanti et
// al. 2022, section 4.2.2): T = layout.co x layout.ci when the tensor is replicated over the
// tensor group and sequence parallelism is on (its layernorm/dropout region then holds and
// computes 1/T of the sequence on each rank), else 1. Memory and compute both divide by it.
double sequence_parallel_split(const Layout& layout, const Dist& dist, bool sequence_parallel);

// Optimizer state in fp32 per parameter (SGD momentum: 1 copy; Adam: 2), plus an fp32 master copy
// of the weights when training in 16-bit (mixed precision, as ZeRO counts it: 16 bytes per
// parameter for Adam), sharded `shards` ways (ZeRO-1 over the replicas).
double optimizer_state_bytes(double params, Optimizer optimizer, DType dtype, int shards = 1);

struct MemoryBreakdown {
    double weights = 0, gradients = 0, optimizer = 0, activations = 0, buffers = 0;
    double total() const { return weights + gradients + optimizer + activations + buffers; }
};

// A stage's sums over its layers, per process.
struct StageMemoryInput {
    double params = 0;                // local parameters
    double weight_bytes = 0;          // their bytes in the training dtype
    double activation_bytes = 0;      // kept for the backward pass by one micro-batch
    double attention_core_bytes = 0;  // ... of which the attention cores (LayerMemory)
    double checkpoint_bytes = 0;      // the transformer layers' inputs (LayerMemory)
    int checkpoints = 0;              // transformer layers (attention layers) in the stage
    double input_bytes =
        0;  // one micro-batch of the stage's input: the data at the first stage, the received activations after
    double buffer_bytes = 0;       // the largest communication buffer
    double working_set_bytes = 0;  // the largest backward working set (LayerMemory::working_set_bytes)
};
struct StageMemoryOptions {
    Optimizer optimizer = Optimizer::sgd;
    DType dtype = DType::fp32;
    double in_flight = 1;    // micro-batches whose activations are held at once (GPipe: M; 1F1B: min(M, S - s))
    Recompute recompute = Recompute::none;
    int zero_shards = 1;     // ZeRO-1: optimizer state split over the replicas
};
// Weights, gradients, optimizer state, the activations of the micro-batches in flight, and the
// largest communication buffer with the largest backward working set. Activations (Korthikanti et
// al. 2022, sections 4.3 and 5): none keeps every micro-batch's full set; selective all but the
// attention cores; full one checkpoint per transformer layer plus one layer's full set being
// recomputed (networks without attention: the stage's input plus the stage's full set).
MemoryBreakdown stage_memory(const StageMemoryInput& stage, const StageMemoryOptions& options);
// Its two parts: what each micro-batch in flight keeps, and the set rebuilt at once in the
// backward pass under full recomputation (0 otherwise). Interleaved stages sum them per chunk.
double kept_per_micro_batch(const StageMemoryInput& stage, Recompute recompute);
double recomputed_at_once(const StageMemoryInput& stage, Recompute recompute);

}  // namespace dnnplan::planner
