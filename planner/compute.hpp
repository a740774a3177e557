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

// `bytes` copied at the device's memory-copy rate (memory_bandwidth_Bps x memory_efficiency).
double memory_copy_seconds(const clusters::Device& device, double bytes);

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

// A calibrated CPU (device.cpu_kernels non-empty): the work of each of the validator's kernels
// one direction of a layer runs, and the BLAS calls it makes (each Gemm's count is its calls).
struct KernelWork {
    clusters::CpuKernel kernel = clusters::CpuKernel::gemm_call;
    double units = 0, calls = 0;
};
struct CpuPass {
    std::vector<KernelWork> kernels;
    std::vector<Gemm> gemms;
};
struct CpuLayerWork {
    CpuPass forward, backward;
};
// What the validator's kernels do for `network.layers[index]` on `local` (compute.cpp gives each
// kernel's unit); nullopt for a layer the validator runs with no kernel described here.
std::optional<CpuLayerWork> cpu_layer_work(const networks::Network& network, int index, const LocalLayer& local,
                                           DType dtype);
// Sum over the pass of per_unit_s x units + per_call_s x calls, and each GEMM's gemm_time plus
// gemm_call's per_call_s per BLAS call; nullopt when a kernel it needs is not on the device.
std::optional<double> cpu_pass_seconds(const clusters::Device& device, DType dtype, const CpuPass& pass);

// The packing of a halo exchange or a redistribution on a calibrated CPU (CpuKernel::halo_pack; 0
// on devices without it): each of the busiest process's `messages` messages of `message_bytes` is
// packed by its sender and unpacked by its receiver, and the process does both for each peer, so
// 2 x messages copies of message_bytes each, made of `runs_per_message` contiguous runs (one
// std::copy_n each in validators/tensor.hpp for_each_run: a column halo of width k moves runs of
// k elements, one per row). The kernel's per_unit_s is per byte, its per_call_s per run: on this
// machine a run of 1-4 floats costs ~6 ns whatever its length (validators/README.md), so a width-1
// column halo costs twice a width-2 one per byte.
double halo_pack_seconds(const clusters::Device& device, double message_bytes, int messages,
                         double runs_per_message = 1);

// Forward and backward seconds of `network.layers[index]` for `local` under `model`.
ComputeTime layer_compute_time(const networks::Network& network, int index, const LocalLayer& local,
                               const clusters::Device& device, DType dtype, ComputeModel model, bool roofline);

// The software whose 16-bit (mixed-precision) optimizer step is costed: its passes over the
// gradients, the fp32 master weights and the optimizer state differ (compute.cpp lists them with
// their source). fp32 training steps the weights in one fused pass under either.
enum class MixedPrecisionStep {
    megatron_lm,     // Megatron-LM's Float16OptimizerWithFloat16Params (2021-2022)
    deepspeed_zero,  // DeepSpeed's fp16 ZeRO stage 1/2 optimizer (v0.5.8), per shard parameter
};

// One optimizer step over `params` local parameters (ZeRO-1: the caller divides by the shards):
// memory-bound, the bytes each pass of the step reads and writes (0 under ComputeModel::uniform).
double optimizer_step_bytes_per_param(Optimizer optimizer, DType dtype,
                                      MixedPrecisionStep step = MixedPrecisionStep::megatron_lm);
double optimizer_step_seconds(const clusters::Device& device, DType dtype, Optimizer optimizer, double params,
                              ComputeModel model, MixedPrecisionStep step = MixedPrecisionStep::megatron_lm);

// How each micro-batch's weight gradient joins the iteration's gradient, as the software does it:
// - in_gemm: the weight-gradient GEMM adds into the gradient (beta = 1), no pass of its own: the
//   CPU validators (validators/kernels.cpp linear/conv2d backward: dweight +=), and Megatron-LM
//   with fp32 main gradients and --gradient-accumulation-fusion (commit cfd2e21607 on);
// - autograd_in_place: PyTorch's AccumulateGrad: the first micro-batch's gradient becomes `.grad`,
//   each later one is added in place (read both, write one): Megatron-LM 2021's local DDP without
//   --use-contiguous-buffers-in-ddp (the sc21 scripts), torch DDP, DeepSpeed's fp16 engine;
// - main_grad_hook: Megatron-LM's local DDP with its contiguous buffer (megatron/model/distributed.py
//   _make_param_hook: `param.main_grad.add_(param.grad.data)` after every micro-batch's backward,
//   zero_grad_buffer once per iteration), the buffer in the training dtype without
//   --accumulate-allreduce-grads-in-fp32: the default in 16-bit (on by default since cfd2e21607).
enum class GradAccumulation { in_gemm, autograd_in_place, main_grad_hook };
GradAccumulation default_grad_accumulation(DType dtype);  // 16-bit: main_grad_hook; fp32: in_gemm

// Bytes per local parameter over one iteration of `micro_batches` micro-batches, and their
// seconds at the device's memory-copy rate (0 under ComputeModel::uniform).
double grad_accumulation_bytes_per_param(GradAccumulation accumulation, DType dtype, int micro_batches);
double grad_accumulation_seconds(const clusters::Device& device, DType dtype, GradAccumulation accumulation,
                                 double params, int micro_batches, ComputeModel model);

}  // namespace dnnplan::planner
