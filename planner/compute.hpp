// Compute time of one layer on one process, per operation: GEMMs and convolutions at an efficiency
// that depends on their local shape (tile and wave quantisation), memory-bound operations at the
// bytes they move over the memory bandwidth, the loss over the network's output and the optimizer
// step. The only place compute time is modelled: the cost model (and through it the stage
// evaluator, the graph partitions and the validators) calls these functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/layout.hpp"
#include "planner/memory.hpp"

namespace dnnplan::planner {

// per_operation: this file's model. uniform: the earlier one, FLOPs / (peak x achievable_fraction)
// for every layer (with `roofline`, at least the bytes in and out over the memory bandwidth), no
// loss and no optimizer step: kept to reproduce earlier results and hand calculations.
enum class ComputeModel { per_operation, uniform };
std::string to_string(ComputeModel model);
std::optional<ComputeModel> parse_compute_model(const std::string& name);  // "per-operation", "uniform"
const std::vector<std::string>& compute_model_names();

// `count` independent M x N x K products launched together (a batched GEMM).
struct Gemm {
    double m = 1, n = 1, k = 1, count = 1;
};

struct GemmTime {
    double tiles = 0, waves = 0;  // tiles launched (output tiles x split-K parts) and waves of them
    double efficiency = 1;  // useful share of the launched work: count M N parts / (waves units tile_m tile_n)
    double math_s = 0;      // the quantised work at the device's GEMM rate
    double memory_s = 0;    // reading A and B and writing C once, over the memory bandwidth
    double seconds = 0;     // max(math_s, memory_s)
};

// Time of a GEMM of `flops` FLOPs (2 M N K count when negative) with operands of `element_bytes`
// (NVIDIA, "Matrix Multiplication Background User's Guide", ch. 2 (math and memory bounds) and
// ch. 3 (tile and wave quantisation)). Devices without a GemmTiling run every GEMM at
// peak x achievable_fraction, unquantised.
GemmTime gemm_time(const clusters::Device& device, DType dtype, const Gemm& gemm, double flops = -1);

// max(FLOPs on the vector units, bytes over the memory bandwidth): elementwise operations,
// normalisations, pooling (their FLOPs run on CUDA cores or SIMD lanes, never tensor cores).
double memory_bound_seconds(const clusters::Device& device, DType dtype, double flops, double bytes);

// What one process does for one layer: its share of the FLOPs and of the tensors.
struct LocalLayer {
    Layout layout;        // the segment anchor's layout
    Dist in, out;         // the layer's input and output distributions
    double batch = 1;     // samples on this process
    double fwd_flops = 0, bwd_input_flops = 0, bwd_weight_flops = 0;  // this process's share
    double input_bytes = 0, output_bytes = 0, weight_bytes = 0;       // its shards, training dtype
    bool network_output = false;  // the loss (softmax cross-entropy) is taken on this layer's output
};

struct ComputeTime {
    double forward_s = 0, backward_s = 0;
};

// Forward and backward seconds of `network.layers[index]` for `local` under `model`.
ComputeTime layer_compute_time(const networks::Network& network, int index, const LocalLayer& local,
                               const clusters::Device& device, DType dtype, ComputeModel model, bool roofline);

// One optimizer step over `params` local parameters: memory-bound, the bytes of the weights,
// gradients and optimizer state read and written once (0 under ComputeModel::uniform).
double optimizer_step_bytes_per_param(Optimizer optimizer, DType dtype);
double optimizer_step_seconds(const clusters::Device& device, DType dtype, Optimizer optimizer, double params,
                              ComputeModel model);

}  // namespace dnnplan::planner
