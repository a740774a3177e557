#include "planner/compute.hpp"

#include <algorithm>
#include <cmath>

namespace dnnplan::planner {

using networks::Layer;
using networks::LayerKind;

std::string to_string(ComputeModel model) {
    return model == ComputeModel::uniform ? "uniform" : "per-operation";
}

const std::vector<std::string>& compute_model_names() {
    static const std::vector<std::string> names{"per-operation", "uniform"};
    return names;
}

std::optional<ComputeModel> parse_compute_model(const std::string& name) {
    if (name == "per-operation") return ComputeModel::per_operation;
    if (name == "uniform") return ComputeModel::uniform;
    return std::nullopt;
}

namespace {

double peak(const clusters::Device& device, DType dtype) { return device.peak_flops.at(dtype); }

// Elementwise FLOPs run on the vector units: the fp32 rate when the device gives one (A100: 19.5
// TFLOP/s on CUDA cores, not the 312 of the tensor cores), else the dtype's.
double vector_rate(const clusters::Device& device, DType dtype) {
    auto fp32 = device.peak_flops.find(DType::fp32);
    return (fp32 != device.peak_flops.end() ? fp32->second : peak(device, dtype)) * device.achievable_fraction;
}

double bandwidth_seconds(const clusters::Device& device, double bytes) {
    // At the rate streaming kernels reach (the preset's memory-copy efficiency).
    const double rate = device.memory_bandwidth_Bps * device.memory_efficiency;
    return rate > 0 ? bytes / rate : 0.0;
}

// At `rate_Bps` when a (calibrated) device gives one for this kind of traffic, else the copy rate.
double stream_seconds(const clusters::Device& device, double rate_Bps, double bytes) {
    return rate_Bps > 0 ? bytes / rate_Bps : bandwidth_seconds(device, bytes);
}

double uniform_seconds(const clusters::Device& device, DType dtype, double flops, double bytes, bool roofline) {
    const double t = flops / (peak(device, dtype) * device.achievable_fraction);
    return roofline ? std::max(t, bandwidth_seconds(device, bytes)) : t;
}

// Bytes one pass of a memory-bound layer moves, in units of its local output (out) and first
// input (in) shards: {forward, backward}. Fused kernels as PyTorch/Megatron/cuDNN run them: one
// read of each operand and one write of each result, except batch norm's separate statistics
// pass over the input (both ways). Views (flatten, reshape) move nothing.
struct PassBytes {
    double forward = 0, backward = 0;
};
PassBytes memory_bound_bytes(const Layer& layer, double in, double out, double element_bytes) {
    const double mask = out / element_bytes;  // dropout keeps one byte per element
    switch (layer.kind) {
        case LayerKind::activation:
            return {in + out, out + in + in};  // y = f(x); dx from dy and x
        case LayerKind::dropout:
            return {in + out + mask, out + mask + in};
        case LayerKind::batchnorm2d:
            return {2 * in + out, 2 * (out + in) + in};  // statistics pass, then normalise
        case LayerKind::layernorm:
        case LayerKind::softmax:
            return {in + out, 2 * out + in};  // rows on chip: one pass; dx from dy and y (or x)
        case LayerKind::add:
            // Every input read once; backward accumulates the branch's gradient into the residual's.
            return {static_cast<double>(layer.inputs.size()) * out + out, 3 * out};
        case LayerKind::concat:
        case LayerKind::upsample:
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d:
        case LayerKind::adaptive_avgpool2d:
            return {in + out, out + in};  // dx written at the input's size from dy
        case LayerKind::embedding:
            return {2 * out, 2 * out};  // gather rows / scatter-add them into the weight gradient
        case LayerKind::position_embedding:
            return {3 * out, 2 * out};
        default:
            return {};
    }
}

double ceil_div(double a, double b) { return std::ceil(a / b); }

struct GemmPass {
    Gemm shape;
    double flops;
};
double gemm_seconds(const clusters::Device& device, DType dtype, const GemmPass& pass) {
    return pass.flops > 0 ? gemm_time(device, dtype, pass.shape, pass.flops).seconds : 0.0;
}

// Linear, convolution and transposed convolution as (implicit) GEMMs: NVIDIA, "Convolutional
// Layers User's Guide", table 1: forward M = N P Q, N = K, K = C R S; data gradient M = N H W,
// N = C, K = K R S; weight gradient M = K, N = C R S, K = N P Q (batch, output positions, output
// channels, input channels, kernel). Local extents under the layout's splits.
ComputeTime gemm_layer_time(const networks::Network& network, const Layer& layer, const LocalLayer& l,
                            const clusters::Device& device, DType dtype) {
    const Layer& input = network.layers[layer.inputs.front()];
    const Layout& lay = l.layout;
    double rows_out = 1, rows_in = 1, cin = 1, cout = 1, window = 1, groups = 1;
    if (layer.kind == LayerKind::linear) {
        const double features = static_cast<double>(input.output_shape.back());
        rows_out = rows_in = static_cast<double>(input.output_elements) / features;
        // Balanced splits: the busiest process's part (planner/layout.hpp).
        cin = static_cast<double>(largest_part(input.output_shape.back(), lay.ci));
        cout = static_cast<double>(largest_part(layer.attrs.out_features, lay.co));
    } else {
        const auto& x = input.output_shape;
        const auto& y = layer.output_shape;
        groups = static_cast<double>(layer.attrs.groups);
        rows_out = static_cast<double>(largest_part(y[1], lay.h) * largest_part(y[2], lay.w));
        rows_in = static_cast<double>(largest_part(x[1], lay.h) * largest_part(x[2], lay.w));
        window = static_cast<double>(layer.attrs.kernel_h * layer.attrs.kernel_w);
        // Grouped: each process holds groups / co whole groups; otherwise co and ci split channels.
        const double local_groups =
            groups > 1 ? static_cast<double>(largest_part(layer.attrs.groups, lay.co)) : 1.0;
        cin = groups > 1 ? static_cast<double>(x[0]) / groups : static_cast<double>(largest_part(x[0], lay.ci));
        cout = groups > 1 ? static_cast<double>(y[0]) / groups : static_cast<double>(largest_part(y[0], lay.co));
        groups = local_groups;
    }
    const double m_out = l.batch * rows_out, m_in = l.batch * rows_in;
    ComputeTime t;
    t.forward_s = gemm_seconds(device, dtype, {{m_out, cout, cin * window, groups}, l.fwd_flops});
    t.backward_s = gemm_seconds(device, dtype, {{m_in, cin, cout * window, groups}, l.bwd_input_flops}) +
                   gemm_seconds(device, dtype, {{cout, cin * window, m_out, groups}, l.bwd_weight_flops});
    return t;
}

// Multi-head attention with `co` = t of its heads split (Megatron): QKV projection, the batched
// score and context products per head, the output projection, and the fused scale-mask-softmax
// over the s x s scores, read and written (Korthikanti et al. 2022, section 4: the score tensors
// are the large activations).
ComputeTime attention_time(const networks::Network& network, const Layer& layer, const LocalLayer& l,
                           const clusters::Device& device, DType dtype) {
    const Layer& input = network.layers[layer.inputs.front()];
    const double s = static_cast<double>(input.output_shape[0]), h = static_cast<double>(input.output_shape[1]);
    // The busiest process's heads (balanced split); t = the share of the hidden size they span.
    const double d = h / layer.attrs.heads;
    const double heads = static_cast<double>(largest_part(layer.attrs.heads, l.layout.co));
    const double t = layer.attrs.heads / heads;
    const double tokens = l.batch * s, matrices = l.batch * heads;
    const double eb = static_cast<double>(dtype_bytes(dtype));
    const bool needs_dx = layer.inputs.front() != 0;
    auto gemm = [&](double m, double n, double k, double count = 1) {
        return gemm_time(device, dtype, {m, n, k, count}).seconds;
    };
    const double scores_bytes = matrices * s * s * eb;
    const double elementwise_flops = static_cast<double>(layer.attrs.heads) * s * s / t * l.batch;
    // Dropout on the probabilities (Megatron-LM: a kernel of its own after the fused softmax):
    // forward reads the probabilities, writes the dropped ones and a 1-byte mask; backward reads
    // the gradient and the mask and writes the gradient (the tensors Korthikanti et al. 2022,
    // section 4.1, count: softmax output, dropout mask, dropout output).
    const double dropout_bytes = layer.attrs.probability > 0 ? 2 * scores_bytes + matrices * s * s : 0.0;
    ComputeTime c;
    c.forward_s = gemm(tokens, 3 * h / t, h) + gemm(s, s, d, matrices) + gemm(s, d, s, matrices) +
                  gemm(tokens, h, h / t) +
                  memory_bound_seconds(device, dtype, 7 * elementwise_flops, 2 * scores_bytes + dropout_bytes);
    // Backward: each product's two gradients (dQ, dK from the scores; dP, dV from the context);
    // the QKV projection's input gradient only when the input needs one.
    c.backward_s = gemm(tokens, h / t, h) + gemm(h / t, h, tokens) +        // output projection
                   2 * gemm(s, s, d, matrices) + 2 * gemm(s, d, s, matrices) +  // dP, dV, dQ, dK
                   gemm(h, 3 * h / t, tokens) + (needs_dx ? gemm(tokens, h, 3 * h / t) : 0.0) +
                   memory_bound_seconds(device, dtype, 5 * elementwise_flops, 3 * scores_bytes + dropout_bytes);
    return c;
}

using clusters::CpuKernel;

// The validator's linear layer (validators/kernels.cpp linear_forward/backward): one GEMM each
// way for the output, the weight gradient and the input gradient (always computed), the bias
// added and its gradient summed per output element. Its convolution lowers explicitly, per
// sample: the halo/padding copy of the input block, im2col (K = C R S rows of P Q columns), the
// GEMM W [K_out x K] x col [K x P Q], the bias; backward the bias gradient, dW += dy col^T and,
// when the input needs a gradient, dcol = W^T dy, col2im and the zeroed input gradient.
std::optional<CpuLayerWork> cpu_gemm_layer_work(const networks::Network& network, const Layer& layer,
                                                const LocalLayer& l) {
    const Layer& input = network.layers[layer.inputs.front()];
    const Layout& lay = l.layout;
    CpuLayerWork w;
    if (layer.kind == LayerKind::linear) {
        const double features = static_cast<double>(input.output_shape.back());
        const double rows = l.batch * static_cast<double>(input.output_elements) / features;
        const double cin = static_cast<double>(largest_part(input.output_shape.back(), lay.ci));
        const double cout = static_cast<double>(largest_part(layer.attrs.out_features, lay.co));
        const double bias = layer.attrs.bias ? rows * cout : 0.0;
        w.forward = {{{CpuKernel::lowering_forward, bias, 1}}, {{rows, cout, cin, 1}}};
        w.backward = {{{CpuKernel::lowering_backward, bias, 1}}, {{cout, cin, rows, 1}, {rows, cin, cout, 1}}};
        return w;
    }
    if (layer.kind != LayerKind::conv2d || layer.attrs.groups != 1) return std::nullopt;
    const auto& x = input.output_shape;
    const auto& y = layer.output_shape;
    const double n = static_cast<double>(largest_part(y[1], lay.h) * largest_part(y[2], lay.w));  // P Q
    const double in = static_cast<double>(largest_part(x[0], lay.ci) * largest_part(x[1], lay.h) *
                                          largest_part(x[2], lay.w));  // C H W of the block
    const double k = static_cast<double>(largest_part(x[0], lay.ci) * layer.attrs.kernel_h * layer.attrs.kernel_w);
    const double co = static_cast<double>(largest_part(y[0], lay.co));
    const double b = l.batch, bias = layer.attrs.bias ? b * co * n : 0.0;
    const bool needs_dx = layer.inputs.front() != 0;
    // The copies' calls are the padding/halo copy's contiguous rows: validators/primitives.hpp
    // halo_local allocates the extended block and copies the C x H rows of the input block into
    // it (one copy_region run each), once per extended dimension; backward the adjoint's copies
    // likewise. A width split halves every row, so a domain plan copies the same elements in
    // twice the rows (resnet-small's 3x3 layers at w2: 1.6-1.8x the n2 copy time, 7 Dec 2026).
    // im2col's rows are not counted: inception-small's unpadded 1x1 layers, whose only copies
    // are im2col's, ran as fast at w2 as at n2 though their im2col rows doubled.
    const double extended = (layer.attrs.kernel_h > 1 || layer.attrs.padding_h > 0 ? 1.0 : 0.0) +
                            (layer.attrs.kernel_w > 1 || layer.attrs.padding_w > 0 ? 1.0 : 0.0);
    const double rows =
        b * extended * static_cast<double>(largest_part(x[0], lay.ci) * largest_part(x[1], lay.h));
    w.forward = {{{CpuKernel::lowering_forward, b * (in + k * n) + bias, rows}}, {{co, n, k, b}}};
    w.backward.kernels = {{CpuKernel::lowering_backward, bias + (needs_dx ? b * (k * n + in) : 0.0), needs_dx ? rows : 0.0}};
    w.backward.gemms = {{co, k, n, b}};
    if (needs_dx) w.backward.gemms.push_back({k, n, co, b});
    return w;
}

// The validator's attention (validators/transformer_layers.cpp) is scalar loops per local head:
// the Q, K and V projections (3 E d multiply-adds per token), the causal scores and context (d
// each per (query, key) pair) and the output projection (E d per token); backward each product's
// two gradients, twice the forward's multiply-adds. The unit is a multiply-add.
CpuLayerWork cpu_attention_work(const networks::Network& network, const Layer& layer, const LocalLayer& l) {
    const Layer& input = network.layers[layer.inputs.front()];
    const double s = static_cast<double>(input.output_shape[0]), e = static_cast<double>(input.output_shape[1]);
    const double d = e / static_cast<double>(layer.attrs.heads);
    const double heads = static_cast<double>(largest_part(layer.attrs.heads, l.layout.co));
    const double pairs = layer.attrs.causal ? s * (s + 1) / 2 : s * s;
    const double macs = l.batch * heads * (s * 4 * e * d + 2 * pairs * d);
    CpuLayerWork w;
    w.forward.kernels = {{CpuKernel::attention_forward, macs, 1}};
    w.backward.kernels = {{CpuKernel::attention_backward, 2 * macs, 1}};
    return w;
}

// Units of the other kernels, per local element: the output's (relu, gelu, layernorm, batch
// norm, concat, upsample, embeddings), the input's (global pooling), the output's times the
// inputs (add: a copy and an add per extra input), the output's times the window (pooling).
// Dropout runs as the identity and a residual add's gradient is the output's, passed on: no
// kernel. The loss (softmax cross-entropy) per logit, with the network's last layer forward.
std::optional<CpuLayerWork> cpu_layer_work_of(const networks::Network& network, const Layer& layer,
                                              const LocalLayer& l, double out, double in) {
    auto both = [](CpuKernel f, CpuKernel b, double units, double calls = 1) {
        return CpuLayerWork{{{{f, units, calls}}, {}}, {{{b, units, calls}}, {}}};
    };
    switch (layer.kind) {
        case LayerKind::linear:
        case LayerKind::conv2d:
            return cpu_gemm_layer_work(network, layer, l);
        case LayerKind::attention:
            return cpu_attention_work(network, layer, l);
        case LayerKind::activation:
            if (layer.attrs.function == "relu") return both(CpuKernel::relu_forward, CpuKernel::relu_backward, out);
            if (layer.attrs.function == "gelu") return both(CpuKernel::gelu_forward, CpuKernel::gelu_backward, out);
            return std::nullopt;
        case LayerKind::layernorm:
            return both(CpuKernel::layernorm_forward, CpuKernel::layernorm_backward, out);
        case LayerKind::batchnorm2d:  // statistics, then normalise; sums, then the gradient
            return both(CpuKernel::batchnorm_forward, CpuKernel::batchnorm_backward, out, 2);
        case LayerKind::add:
            return CpuLayerWork{{{{CpuKernel::add_forward, out * static_cast<double>(layer.inputs.size()), 1}}, {}}, {}};
        case LayerKind::concat:
            return both(CpuKernel::concat_forward, CpuKernel::concat_backward, out);
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d:
            return both(CpuKernel::pool_forward, CpuKernel::pool_backward,
                        out * static_cast<double>(layer.attrs.kernel_h * layer.attrs.kernel_w));
        case LayerKind::adaptive_avgpool2d:
            return both(CpuKernel::global_pool_forward, CpuKernel::global_pool_backward, in);
        case LayerKind::upsample:
            return both(CpuKernel::upsample_forward, CpuKernel::upsample_backward, out);
        case LayerKind::embedding:
            return both(CpuKernel::embedding_forward, CpuKernel::embedding_backward, out);
        case LayerKind::position_embedding:
            return both(CpuKernel::position_embedding_forward, CpuKernel::position_embedding_backward, out);
        case LayerKind::dropout:
        case LayerKind::flatten:
            return CpuLayerWork{};
        default:
            return std::nullopt;
    }
}

}  // namespace

std::optional<CpuLayerWork> cpu_layer_work(const networks::Network& network, int index, const LocalLayer& l,
                                           DType dtype) {
    const Layer& layer = network.layers[index];
    const double eb = static_cast<double>(dtype_bytes(dtype));
    std::optional<CpuLayerWork> w = cpu_layer_work_of(network, layer, l, l.output_bytes / eb, l.input_bytes / eb);
    if (w && l.network_output) w->forward.kernels.push_back({CpuKernel::loss, l.output_bytes / eb, 1});
    return w;
}

std::optional<double> cpu_pass_seconds(const clusters::Device& device, DType dtype, const CpuPass& pass) {
    double t = 0;
    for (const KernelWork& k : pass.kernels) {
        const auto cost = device.cpu_kernels.find(k.kernel);
        if (cost == device.cpu_kernels.end()) return std::nullopt;
        t += cost->second.per_unit_s * k.units + cost->second.per_call_s * k.calls;
    }
    if (pass.gemms.empty()) return t;
    const auto call = device.cpu_kernels.find(CpuKernel::gemm_call);
    if (call == device.cpu_kernels.end()) return std::nullopt;
    for (const Gemm& g : pass.gemms) t += gemm_time(device, dtype, g).seconds + call->second.per_call_s * g.count;
    return t;
}

double halo_pack_seconds(const clusters::Device& device, double message_bytes, int messages, double runs_per_message) {
    const CpuPass pack{
        {KernelWork{CpuKernel::halo_pack, 2.0 * messages * message_bytes, 2.0 * messages * runs_per_message}}, {}};
    return cpu_pass_seconds(device, DType::fp32, pack).value_or(0.0);
}

GemmTime gemm_time(const clusters::Device& device, DType dtype, const Gemm& g, double flops) {
    GemmTime r;
    const double useful = 2 * g.m * g.n * g.k * g.count;
    if (flops < 0) flops = useful;
    const auto& tiling = device.gemm;
    if (tiling.described()) {
        // Tile quantisation: whole tiles over M and N; wave quantisation: whole waves of `units`
        // tiles. Each unit computes its tile at 1/units of the GEMM rate.
        const double output_tiles = ceil_div(g.m, tiling.tile_m) * ceil_div(g.n, tiling.tile_n) * g.count;
        // Split-K: when the output tiles cannot fill one wave, the library also cuts the reduction
        // (CUTLASS/cuBLAS split-K, oneDNN's reduction over the minibatch for weight gradients),
        // each part at least as long as a tile side, so a weight gradient with a small M x N and a
        // long K still uses the device.
        const double parts = std::max(1.0, std::min(std::floor(tiling.units / output_tiles),
                                                     std::floor(g.k / std::max(tiling.tile_m, tiling.tile_n))));
        r.tiles = output_tiles * parts;
        r.waves = ceil_div(r.tiles, tiling.units);
        r.efficiency = g.m * g.n * g.count * parts / (r.waves * tiling.units * tiling.tile_m * tiling.tile_n);
        r.math_s = flops / (peak(device, dtype) * tiling.efficiency * r.efficiency);
    } else {
        r.tiles = r.waves = 1;
        r.math_s = flops / (peak(device, dtype) * device.achievable_fraction);
    }
    // Guide, ch. 2: a GEMM reads A (M K) and B (K N) and writes C (M N) at least once.
    const double bytes = (g.m * g.k + g.k * g.n + g.m * g.n) * g.count * static_cast<double>(dtype_bytes(dtype));
    r.memory_s = stream_seconds(device, device.gemm_operand_bandwidth_Bps, bytes);
    r.seconds = std::max(r.math_s, r.memory_s);
    return r;
}

double memory_copy_seconds(const clusters::Device& device, double bytes) { return bandwidth_seconds(device, bytes); }

double memory_bound_seconds(const clusters::Device& device, DType dtype, double flops, double bytes) {
    // A device whose elementwise kernels stream slower than a copy (a calibrated CPU: the
    // validator's scalar loops) gives that rate; GEMM operands and the optimizer step keep the
    // copy rate.
    const double stream_s = stream_seconds(device, device.elementwise_bandwidth_Bps, bytes);
    return std::max(flops / vector_rate(device, dtype), stream_s);
}

namespace {

// The kernels one pass of a layer launches as this file costs it: one per GEMM with work (the
// attention's QKV, score, context and output products and their gradients, as attention_time),
// one per memory-bound pass that moves bytes (views launch none), the attention's softmax and
// dropout kernels, and the loss's one each way.
struct KernelCount {
    double forward = 0, backward = 0;
};
KernelCount layer_kernels(const Layer& layer, const LocalLayer& l, double element_bytes) {
    KernelCount k;
    switch (layer.kind) {
        case LayerKind::linear:
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            k.forward = l.fwd_flops > 0 ? 1 : 0;
            k.backward = (l.bwd_input_flops > 0 ? 1 : 0) + (l.bwd_weight_flops > 0 ? 1 : 0);
            break;
        case LayerKind::attention: {
            const double dropout = layer.attrs.probability > 0 ? 1 : 0;
            const double needs_dx = layer.inputs.front() != 0 ? 1 : 0;
            k.forward = 4 + 1 + dropout;               // QKV, scores, context, output; softmax; dropout
            k.backward = 2 + 4 + 1 + needs_dx + 1 + dropout;  // output's two, dP dV dQ dK, QKV's; softmax; dropout
            break;
        }
        default: {
            const PassBytes bytes = memory_bound_bytes(layer, l.input_bytes, l.output_bytes, element_bytes);
            k.forward = bytes.forward > 0 ? 1 : 0;
            k.backward = bytes.backward > 0 ? 1 : 0;
        }
    }
    if (l.network_output) {
        k.forward += 1;
        k.backward += 1;
    }
    return k;
}

// `t` with the time each pass spends around its kernels: the device's launch gap per kernel, and
// on a calibrated CPU the framework's untimed work (CpuKernel::framework) per kernel and per byte
// of the pass's activation (the output forward, the input gradient backward).
ComputeTime with_dispatch_overhead(ComputeTime t, const Layer& layer, const LocalLayer& l,
                                   const clusters::Device& device, DType dtype) {
    const auto framework = device.cpu_kernels.find(CpuKernel::framework);
    const bool has_framework = framework != device.cpu_kernels.end();
    if (device.kernel_launch_s <= 0 && !has_framework) return t;
    const KernelCount k = layer_kernels(layer, l, static_cast<double>(dtype_bytes(dtype)));
    t.forward_s += k.forward * device.kernel_launch_s;
    t.backward_s += k.backward * device.kernel_launch_s;
    if (has_framework) {
        const clusters::KernelCost& cost = framework->second;
        t.forward_s += cost.per_call_s * k.forward + cost.per_unit_s * l.output_bytes;
        t.backward_s += cost.per_call_s * k.backward + cost.per_unit_s * l.input_bytes;
    }
    return t;
}

}  // namespace

ComputeTime layer_compute_time(const networks::Network& network, int index, const LocalLayer& l,
                               const clusters::Device& device, DType dtype, ComputeModel model, bool roofline) {
    const Layer& layer = network.layers[index];
    ComputeTime t;
    if (model == ComputeModel::uniform) {
        // The earlier model: every layer at one rate; bytes of its input, output and weights (twice
        // backward: gradients too).
        t.forward_s =
            uniform_seconds(device, dtype, l.fwd_flops, l.input_bytes + l.output_bytes + l.weight_bytes, roofline);
        t.backward_s = uniform_seconds(device, dtype, l.bwd_input_flops + l.bwd_weight_flops,
                                       2 * (l.input_bytes + l.output_bytes) + 2 * l.weight_bytes, roofline);
        return t;
    }
    if (!device.cpu_kernels.empty()) {
        // A calibrated CPU: the validator's kernels, when every one this layer runs is measured.
        if (const auto work = cpu_layer_work(network, index, l, dtype)) {
            const auto fwd = cpu_pass_seconds(device, dtype, work->forward);
            const auto bwd = cpu_pass_seconds(device, dtype, work->backward);
            if (fwd && bwd) return with_dispatch_overhead(ComputeTime{*fwd, *bwd}, layer, l, device, dtype);
        }
    }
    switch (layer.kind) {
        case LayerKind::linear:
        case LayerKind::conv2d:
        case LayerKind::conv_transpose2d:
            t = gemm_layer_time(network, layer, l, device, dtype);
            break;
        case LayerKind::attention:
            t = attention_time(network, layer, l, device, dtype);
            break;
        default: {
            const PassBytes bytes =
                memory_bound_bytes(layer, l.input_bytes, l.output_bytes, static_cast<double>(dtype_bytes(dtype)));
            t.forward_s = memory_bound_seconds(device, dtype, l.fwd_flops, bytes.forward);
            t.backward_s =
                memory_bound_seconds(device, dtype, l.bwd_input_flops + l.bwd_weight_flops, bytes.backward);
        }
    }
    if (l.network_output) {
        // Softmax cross-entropy over the output (the vocabulary for language models): the logits
        // read forward; read again and their gradient written backward. About 10 FLOPs per
        // element (exp, max, sum, log, subtract), on the vector units.
        t.forward_s += memory_bound_seconds(device, dtype, 6 * l.output_bytes / dtype_bytes(dtype), l.output_bytes);
        t.backward_s +=
            memory_bound_seconds(device, dtype, 4 * l.output_bytes / dtype_bytes(dtype), 2 * l.output_bytes);
    }
    return with_dispatch_overhead(t, layer, l, device, dtype);
}

// Per parameter, fp32: one fused pass (the validators' update; torch's fused Adam) reads the
// gradient, reads and writes the weight and the optimizer's state (momentum, or Adam's two
// moments): SGD 4 + 2 x 4 + 2 x 4 = 20 bytes, Adam 4 + 8 + 2 x 8 = 28.
// 16-bit (mixed precision): that same fp32 step runs on the fp32 master weights and fp32 gradients
// (Apex FusedAdam / FusedSGD, `multi_tensor_adam`: Adam 28 bytes, SGD 20), wrapped in the passes the
// software makes around it, each a separate kernel over every local (ZeRO: shard) parameter:
// - Megatron-LM, megatron/optimizer/optimizer.py, Float16OptimizerWithFloat16Params.step()
//   (NVIDIA/Megatron-LM commits 6985e58938, Aug 2021, and cfd2e21607, Apr 2022; the same passes):
//   _copy_model_grads_to_main_grads, `main_grad.float()`: read 2, write 4 = 6;
//   _unscale_main_grads_and_check_for_nan, `_amp_foreach_non_finite_check_and_unscale_` in place:
//   read 4, write 4 = 8; clip_grads.py clip_grad_norm_fp32 (`--clip-grad`, default 1.0),
//   `multi_tensor_l2norm`: read 4 = 4 (its in-place rescale runs only when the norm exceeds the
//   clip, not counted); then the fp32 step; _copy_main_params_to_model_params, `multi_tensor_scale`
//   by 1.0: read 4, write 2 = 6. Wrapper 24: Adam 52, SGD 44.
// - DeepSpeed v0.5.8, deepspeed/runtime/zero/stage2.py, FP16_DeepSpeedZeroOptimizer.step() (ZeRO
//   stages 1 and 2, on this rank's partition): check_overflow -> _has_inf_or_nan,
//   `x.float().sum()`: read 2, write 4, read 4 = 10; get_grad_norm_direct,
//   `g.data.double().norm(2)`: read 2, write 8, read 8 = 18; `flatten(averaged_gradients).to(fp32)`:
//   read 2, write 2, read 2, write 4 = 10; unscale_and_clip_grads, `mul_`: read 4, write 4 = 8;
//   then the fp32 step; `bit16_partitions[...].copy_(fp32_partition)`: read 4, write 2 = 6.
//   Wrapper 52: Adam 80, SGD 72.
double optimizer_step_bytes_per_param(Optimizer optimizer, DType dtype, MixedPrecisionStep step) {
    constexpr double fp32 = 4;
    const double state = optimizer_state_bytes(1, optimizer, DType::fp32);  // momentum or moments
    const double fused_fp32 = fp32 + 2 * fp32 + 2 * state;
    if (dtype == DType::fp32) return fused_fp32;
    const double wrapper = step == MixedPrecisionStep::megatron_lm ? 6 + 8 + 4 + 6 : 10 + 18 + 10 + 8 + 6;
    return wrapper + fused_fp32;
}

double optimizer_step_seconds(const clusters::Device& device, DType dtype, Optimizer optimizer, double params,
                              ComputeModel model, MixedPrecisionStep step) {
    if (model == ComputeModel::uniform || params <= 0) return 0.0;
    return bandwidth_seconds(device, params * optimizer_step_bytes_per_param(optimizer, dtype, step));
}

GradAccumulation default_grad_accumulation(DType dtype) {
    return dtype == DType::fp32 ? GradAccumulation::in_gemm : GradAccumulation::main_grad_hook;
}

// An in-place add reads the gradient and the accumulator and writes the accumulator: 3 elements.
// autograd: M - 1 adds; the hook: M adds and the buffer's zeroing (one write).
double grad_accumulation_bytes_per_param(GradAccumulation accumulation, DType dtype, int micro_batches) {
    const double eb = static_cast<double>(dtype_bytes(dtype));
    const double m = micro_batches;
    switch (accumulation) {
        case GradAccumulation::in_gemm:
            return 0.0;
        case GradAccumulation::autograd_in_place:
            return (m - 1) * 3 * eb;
        case GradAccumulation::main_grad_hook:
            return m * 3 * eb + eb;
    }
    return 0.0;
}

double grad_accumulation_seconds(const clusters::Device& device, DType dtype, GradAccumulation accumulation,
                                 double params, int micro_batches, ComputeModel model) {
    if (model == ComputeModel::uniform || params <= 0) return 0.0;
    return bandwidth_seconds(device, params * grad_accumulation_bytes_per_param(accumulation, dtype, micro_batches));
}

}  // namespace dnnplan::planner
