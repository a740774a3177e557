#include "infer.hpp"

#include <algorithm>
#include <numeric>

namespace dnnplan::networks {

namespace {

// Per-element FLOP conventions for elementwise layers (forward, input gradient); see README.
struct ElementwiseCost {
    const char* function;
    int forward;
    int backward;
};
constexpr ElementwiseCost kActivationCosts[] = {
    {"relu", 1, 1}, {"leaky_relu", 2, 2}, {"elu", 3, 3},  {"sigmoid", 4, 3},
    {"tanh", 4, 3}, {"silu", 5, 5},       {"hardswish", 4, 4}, {"gelu", 8, 12},
};
constexpr int kNormForward = 7, kNormInputGrad = 8, kNormWeightGrad = 3;
constexpr int kSoftmaxForward = 5, kSoftmaxBackward = 4;
constexpr int kDropoutForward = 2, kDropoutBackward = 1;

// Shape inference and counting for one layer; every overflow or misfit throws a LayerError.
class LayerInference {
public:
    LayerInference(Layer& layer, const LayerContext& context)
        : layer_(layer),
          inputs_(context.inputs),
          kind_name_(context.kind_name),
          token_input_feeds_(context.token_input),
          tied_(context.tied) {}

    // The part of bwd_input_flops that autograd computes even when no input needs a gradient:
    // attention's internal gradients (dP, dS, dQ, dK, dV, d context) feed its weight gradients.
    std::int64_t internal_backward_flops() const { return internal_backward_flops_; }

    void run() {
        // Only an embedding turns token ids into something differentiable.
        if (token_input_feeds_ && layer_.kind != LayerKind::embedding)
            for (const Layer* in : inputs_)
                if (in->kind == LayerKind::input)
                    fail(kind_name_ + " cannot read integer token ids; add an embedding layer first");
        switch (layer_.kind) {
            case LayerKind::conv2d: conv(false); break;
            case LayerKind::conv_transpose2d: conv(true); break;
            case LayerKind::linear: linear(); break;
            case LayerKind::maxpool2d:
            case LayerKind::avgpool2d: pool(); break;
            case LayerKind::adaptive_avgpool2d: adaptive_pool(); break;
            case LayerKind::batchnorm2d: norm(true); break;
            case LayerKind::layernorm: norm(false); break;
            case LayerKind::activation: elementwise_activation(); break;
            case LayerKind::dropout: same_shape(kDropoutForward, kDropoutBackward); break;
            case LayerKind::flatten: flatten(); break;
            case LayerKind::reshape: reshape(); break;
            case LayerKind::softmax: softmax(); break;
            case LayerKind::add: add(); break;
            case LayerKind::concat: concat(); break;
            case LayerKind::embedding: embedding(); break;
            case LayerKind::position_embedding: position_embedding(); break;
            case LayerKind::attention: attention(); break;
            case LayerKind::upsample: upsample(); break;
            case LayerKind::input: break;
        }
        layer_.output_elements = product(layer_.output_shape);
    }

private:
    [[noreturn]] void fail(const std::string& message) const { throw LayerError("", message); }
    [[noreturn]] void fail_at(const char* field, const std::string& message) const { throw LayerError(field, message); }

    std::int64_t mul(std::int64_t a, std::int64_t b) const { return or_fail(checked_mul(a, b)); }
    std::int64_t add(std::int64_t a, std::int64_t b) const { return or_fail(checked_add(a, b)); }
    std::int64_t or_fail(std::optional<std::int64_t> r) const {
        if (!r) fail(kCountOverflow);
        return *r;
    }
    std::int64_t product(const Shape& shape) const { return or_fail(checked_elements(shape)); }

    const Layer& single_input() const {
        if (inputs_.size() != 1)
            fail(kind_name_ + " takes exactly one input, got " + std::to_string(inputs_.size()));
        return *inputs_.front();
    }
    std::string from(const Layer& in) const {
        return shape_string(in.output_shape) + " from layer \"" + in.name + "\"";
    }

    const Shape& image_input(const char* what) const {
        const Layer& in = single_input();
        if (in.output_shape.size() != 3)
            fail(std::string(what) + " needs a [C, H, W] input, got " + from(in));
        return in.output_shape;
    }

    // PyTorch's output size of a convolution or pooling window along one axis.
    std::int64_t window_output(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                               std::int64_t dilation, bool ceil_mode, const char* axis) const {
        std::int64_t effective = add(mul(dilation, kernel - 1), 1);
        std::int64_t padded = add(in, mul(2, pad));
        if (effective > padded)
            fail(std::string("kernel ") + std::to_string(kernel) +
                 (dilation > 1 ? " (dilated to " + std::to_string(effective) + ")" : std::string()) +
                 " is larger than the padded input " + axis + " " + std::to_string(padded) + " (" +
                 std::to_string(in) + " + 2x" + std::to_string(pad) + " padding)");
        std::int64_t span = padded - effective;
        std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
        // ceil_mode: the last window must start inside the input or the left padding.
        if (ceil_mode && (out - 1) * stride >= in + pad) --out;
        return out;
    }

    void conv(bool transposed) {
        const Shape& x = image_input(kind_name_.c_str());
        const auto& a = layer_.attrs;
        std::int64_t cin = x[0];
        if (cin % a.groups != 0)
            fail("input channels " + std::to_string(cin) + " are not divisible by groups " + std::to_string(a.groups));
        if (a.out_channels % a.groups != 0)
            fail("out_channels " + std::to_string(a.out_channels) + " is not divisible by groups " +
                 std::to_string(a.groups));
        std::int64_t oh, ow;
        if (!transposed) {
            oh = window_output(x[1], a.kernel_h, a.stride_h, a.padding_h, a.dilation_h, false, "height");
            ow = window_output(x[2], a.kernel_w, a.stride_w, a.padding_w, a.dilation_w, false, "width");
        } else {
            if (a.output_padding_h >= std::max(a.stride_h, a.dilation_h) ||
                a.output_padding_w >= std::max(a.stride_w, a.dilation_w))
                fail("output_padding must be smaller than the stride or the dilation");
            // PyTorch: (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1.
            // (The subtraction of two non-negative values cannot overflow; everything else is checked.)
            oh = add(add(mul(x[1] - 1, a.stride_h) - mul(2, a.padding_h), mul(a.dilation_h, a.kernel_h - 1)),
                     add(a.output_padding_h, 1));
            ow = add(add(mul(x[2] - 1, a.stride_w) - mul(2, a.padding_w), mul(a.dilation_w, a.kernel_w - 1)),
                     add(a.output_padding_w, 1));
            if (oh < 1 || ow < 1)
                fail("padding leaves no output (" + std::to_string(oh) + "x" + std::to_string(ow) + ")");
        }
        layer_.output_shape = {a.out_channels, oh, ow};
        std::int64_t kernel_area = mul(a.kernel_h, a.kernel_w);
        std::int64_t weights = transposed ? mul(mul(cin, a.out_channels / a.groups), kernel_area)
                                          : mul(mul(a.out_channels, cin / a.groups), kernel_area);
        layer_.params = add(weights, a.bias ? a.out_channels : 0);
        std::int64_t outputs = mul(mul(a.out_channels, oh), ow);
        // Multiply-adds: every output (conv) or every input (transposed conv) meets Cin/g x kh x kw weights.
        std::int64_t macs = transposed ? mul(mul(mul(x[0], x[1]), x[2]), mul(a.out_channels / a.groups, kernel_area))
                                       : mul(outputs, mul(cin / a.groups, kernel_area));
        std::int64_t bias_flops = a.bias ? outputs : 0;
        layer_.fwd_flops = add(mul(2, macs), bias_flops);
        layer_.bwd_input_flops = mul(2, macs);
        layer_.bwd_weight_flops = add(mul(2, macs), bias_flops);
    }

    void linear() {
        const Layer& in = single_input();
        if (in.output_shape.empty()) fail("linear needs an input with at least one dimension");
        std::int64_t features = in.output_shape.back();
        const auto& a = layer_.attrs;
        Shape out = in.output_shape;
        out.back() = a.out_features;
        std::int64_t rows = product(in.output_shape) / features;
        if (in.output_shape.size() > 2)
            fail("linear acts on [F] or [S, F]; got " + from(in) + " (add a flatten layer first)");
        layer_.output_shape = out;
        std::int64_t weights = mul(features, a.out_features);
        if (tied_) {
            const Layer& t = *tied_;
            if (t.kind != LayerKind::embedding || t.attrs.num_embeddings != a.out_features ||
                t.attrs.embedding_dim != features)
                fail_at("tied_to", "layer \"" + a.tied_to + "\" is not an embedding of " +
                                            std::to_string(a.out_features) + " x " + std::to_string(features));
            weights = 0;  // the shared weight is counted once, by the embedding
        }
        layer_.params = add(weights, a.bias ? a.out_features : 0);
        std::int64_t macs = mul(rows, mul(features, a.out_features));
        std::int64_t bias_flops = a.bias ? mul(rows, a.out_features) : 0;
        layer_.fwd_flops = add(mul(2, macs), bias_flops);
        layer_.bwd_input_flops = mul(2, macs);
        layer_.bwd_weight_flops = add(mul(2, macs), bias_flops);
    }

    void pool() {
        bool is_max = layer_.kind == LayerKind::maxpool2d;
        const Shape& x = image_input(kind_name_.c_str());
        const auto& a = layer_.attrs;
        // PyTorch: "pad should be at most half of effective kernel size" (kernel / 2, rounded down).
        if (a.padding_h > a.kernel_h / 2 || a.padding_w > a.kernel_w / 2)
            fail("padding " + std::to_string(a.padding_h > a.kernel_h / 2 ? a.padding_h : a.padding_w) +
                 " is more than half the kernel size " +
                 std::to_string(a.padding_h > a.kernel_h / 2 ? a.kernel_h : a.kernel_w));
        std::int64_t oh = window_output(x[1], a.kernel_h, a.stride_h, a.padding_h, a.dilation_h, a.ceil_mode, "height");
        std::int64_t ow = window_output(x[2], a.kernel_w, a.stride_w, a.padding_w, a.dilation_w, a.ceil_mode, "width");
        layer_.output_shape = {x[0], oh, ow};
        std::int64_t outputs = mul(mul(x[0], oh), ow);
        std::int64_t window = mul(a.kernel_h, a.kernel_w);
        layer_.fwd_flops = mul(outputs, window);
        layer_.bwd_input_flops = is_max ? outputs : mul(outputs, window);
    }

    void adaptive_pool() {
        const Shape& x = image_input(kind_name_.c_str());
        const auto& a = layer_.attrs;
        layer_.output_shape = {x[0], a.output_h, a.output_w};
        // PyTorch's adaptive windows are [floor(i*in/out), ceil((i+1)*in/out)) for i < out. Writing
        // ceil(y) = floor(y) + [y not an integer], the floors telescope to floor(out*in/out) = in, and
        // j*in/out (j = 1..out) is an integer for gcd(in, out) values of j: the window lengths sum to
        // in + out - gcd(in, out). O(1), so a huge output_size costs nothing.
        auto window_sum = [&](std::int64_t in, std::int64_t out) { return add(in, out) - std::gcd(in, out); };
        std::int64_t per_channel = mul(window_sum(x[1], a.output_h), window_sum(x[2], a.output_w));
        layer_.fwd_flops = mul(x[0], per_channel);
        layer_.bwd_input_flops = layer_.fwd_flops;
    }

    void norm(bool batch_norm) {
        const Layer& in = single_input();
        if (batch_norm && in.output_shape.size() != 3) fail("batchnorm2d needs a [C, H, W] input, got " + from(in));
        if (in.output_shape.empty()) fail("layernorm needs an input with at least one dimension");
        layer_.output_shape = in.output_shape;
        std::int64_t elements = product(in.output_shape);
        std::int64_t channels = batch_norm ? in.output_shape[0] : in.output_shape.back();
        layer_.params = mul(2, channels);
        layer_.fwd_flops = mul(kNormForward, elements);
        layer_.bwd_input_flops = mul(kNormInputGrad, elements);
        layer_.bwd_weight_flops = mul(kNormWeightGrad, elements);
    }

    void same_shape(int forward_per_element, int backward_per_element) {
        const Layer& in = single_input();
        layer_.output_shape = in.output_shape;
        std::int64_t elements = product(in.output_shape);
        layer_.fwd_flops = mul(forward_per_element, elements);
        layer_.bwd_input_flops = mul(backward_per_element, elements);
    }

    void elementwise_activation() {
        for (const auto& c : kActivationCosts)
            if (layer_.attrs.function == c.function) return same_shape(c.forward, c.backward);
        fail("unknown activation " + layer_.attrs.function);
    }

    void flatten() {
        const Layer& in = single_input();
        layer_.output_shape = {product(in.output_shape)};
    }

    void reshape() {
        const Layer& in = single_input();
        Shape target = layer_.attrs.target_shape;
        std::int64_t known = 1;
        int inferred = -1;
        for (std::size_t i = 0; i < target.size(); ++i) {
            if (target[i] == -1) {
                if (inferred >= 0) fail_at("shape", "at most one size may be -1");
                inferred = static_cast<int>(i);
            } else {
                known = mul(known, target[i]);
            }
        }
        std::int64_t elements = product(in.output_shape);
        if (inferred >= 0) {
            if (elements % known != 0)
                fail_at("shape", "cannot reshape " + from(in) + " to " + shape_string(target));
            target[inferred] = elements / known;
        } else if (known != elements) {
            fail_at("shape", "cannot reshape " + from(in) + " (" + std::to_string(elements) +
                                      " elements) to " + shape_string(target));
        }
        layer_.output_shape = target;
    }

    std::int64_t resolve_axis(std::int64_t axis, std::size_t rank, const char* field) const {
        std::int64_t r = static_cast<std::int64_t>(rank);
        std::int64_t resolved = axis < 0 ? axis + r : axis;
        if (resolved < 0 || resolved >= r)
            fail_at(field, "axis " + std::to_string(axis) + " is out of range for a per-sample shape of rank " +
                                    std::to_string(rank));
        return resolved;
    }

    void softmax() {
        same_shape(kSoftmaxForward, kSoftmaxBackward);
        if (layer_.output_shape.empty()) fail("softmax needs an input with at least one dimension");
        resolve_axis(layer_.attrs.axis, layer_.output_shape.size(), "axis");
    }

    void add() {
        if (inputs_.size() < 2) fail("add needs at least two inputs, got " + std::to_string(inputs_.size()));
        for (const Layer* in : inputs_)
            if (in->output_shape != inputs_[0]->output_shape)
                fail("add inputs have different shapes: " + from(*inputs_[0]) + " and " + from(*in));
        layer_.output_shape = inputs_[0]->output_shape;
        layer_.fwd_flops = mul(static_cast<std::int64_t>(inputs_.size()) - 1, product(layer_.output_shape));
    }

    void concat() {
        if (inputs_.size() < 2) fail("concat needs at least two inputs, got " + std::to_string(inputs_.size()));
        const Shape& first = inputs_[0]->output_shape;
        if (first.empty()) fail("concat needs inputs with at least one dimension");
        std::int64_t axis = resolve_axis(layer_.attrs.axis, first.size(), "axis");
        Shape out = first;
        out[axis] = 0;
        for (const Layer* in : inputs_) {
            const Shape& s = in->output_shape;
            bool fits = s.size() == first.size();
            for (std::size_t d = 0; fits && d < s.size(); ++d)
                if (static_cast<std::int64_t>(d) != axis && s[d] != first[d]) fits = false;
            if (!fits)
                fail("concat inputs differ outside axis " + std::to_string(axis) + ": " + from(*inputs_[0]) +
                     " and " + from(*in));
            out[axis] = add(out[axis], s[axis]);
        }
        layer_.output_shape = out;
    }

    void embedding() {
        const Layer& in = single_input();
        if (!(token_input_feeds_ && in.kind == LayerKind::input))
            fail("embedding reads the token input ({\"tokens\": S}), got " + from(in));
        const auto& a = layer_.attrs;
        layer_.output_shape = {in.output_shape[0], a.embedding_dim};
        layer_.params = mul(a.num_embeddings, a.embedding_dim);
        layer_.bwd_weight_flops = product(layer_.output_shape);  // scatter-add of the output gradient
    }

    void position_embedding() {
        const Layer& in = single_input();
        if (in.output_shape.size() != 2) fail("position_embedding needs an [S, H] input, got " + from(in));
        if (in.output_shape[0] > layer_.attrs.num_embeddings)
            fail("sequence length " + std::to_string(in.output_shape[0]) + " exceeds num_positions " +
                 std::to_string(layer_.attrs.num_embeddings));
        layer_.output_shape = in.output_shape;
        layer_.params = mul(layer_.attrs.num_embeddings, in.output_shape[1]);
        layer_.fwd_flops = product(in.output_shape);
        layer_.bwd_weight_flops = product(in.output_shape);
    }

    void attention() {
        const Layer& in = single_input();
        if (in.output_shape.size() != 2) fail("attention needs an [S, H] input, got " + from(in));
        const auto& a = layer_.attrs;
        std::int64_t s = in.output_shape[0], h = in.output_shape[1];
        if (h % a.heads != 0)
            fail("hidden size " + std::to_string(h) + " is not divisible by heads " + std::to_string(a.heads));
        layer_.output_shape = in.output_shape;
        std::int64_t hh = mul(h, h);
        layer_.params = add(mul(4, hh), a.bias ? mul(4, h) : 0);
        std::int64_t projections = mul(2, mul(s, mul(4, hh)));  // QKV (3 H^2) and output (H^2) per token
        std::int64_t scores = mul(2, mul(mul(s, s), h));         // Q K^T, and separately P V
        std::int64_t score_elements = mul(a.heads, mul(s, s));
        std::int64_t bias_flops = a.bias ? mul(4, mul(s, h)) : 0;
        int per_score = 1 + kSoftmaxForward + (a.causal ? 1 : 0);  // scale, softmax, mask
        layer_.attention_core_flops = add(mul(2, scores), mul(per_score, score_elements));
        layer_.fwd_flops = add(add(projections, bias_flops), layer_.attention_core_flops);
        // Backward: dX through both projections; dQ, dK, dV and dP are four S x S x H products.
        layer_.bwd_input_flops = add(add(projections, mul(4, scores)), mul(kSoftmaxBackward + 1, score_elements));
        // Without an input gradient autograd still needs everything but dX = dQKV x W_qkv^T (6 S H^2).
        internal_backward_flops_ = layer_.bwd_input_flops - mul(2, mul(s, mul(3, hh)));
        layer_.bwd_weight_flops = add(projections, bias_flops);
        // Kept for backward: Q, K, V, the probabilities and the context (input to the output projection).
        layer_.saved_elements = add(mul(4, mul(s, h)), score_elements);
    }

    void upsample() {
        const Shape& x = image_input("upsample");
        const auto& a = layer_.attrs;
        layer_.output_shape = {x[0], mul(x[1], a.scale), mul(x[2], a.scale)};
        std::int64_t outputs = product(layer_.output_shape);
        bool bilinear = a.mode == "bilinear";
        layer_.fwd_flops = bilinear ? mul(kBilinearFlopsPerOutput, outputs) : 0;
        layer_.bwd_input_flops = bilinear ? mul(kBilinearFlopsPerOutput, outputs) : outputs;
    }

    Layer& layer_;
    const std::vector<const Layer*>& inputs_;
    const std::string& kind_name_;
    bool token_input_feeds_;
    const Layer* tied_;
    std::int64_t internal_backward_flops_ = 0;
};

}  // namespace

std::int64_t infer_layer(Layer& layer, const LayerContext& context) {
    LayerInference inference(layer, context);
    inference.run();
    return inference.internal_backward_flops();
}

void Autograd::add(Layer& layer, std::int64_t internal_backward_flops) {
    bool inputs_require_grad = false;
    for (int i : layer.inputs) inputs_require_grad = inputs_require_grad || requires_grad_.at(i);
    if (!inputs_require_grad) layer.bwd_input_flops = internal_backward_flops;
    requires_grad_.push_back(inputs_require_grad || layer.params > 0 || !layer.attrs.tied_to.empty());
}

std::string shape_string(const Shape& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

std::optional<std::int64_t> checked_elements(const Shape& shape, std::size_t first_axis) {
    std::int64_t elements = 1;
    for (std::size_t i = first_axis; i < shape.size(); ++i) {
        auto product = checked_mul(elements, shape[i]);
        if (!product) return std::nullopt;
        elements = *product;
    }
    return elements;
}

}  // namespace dnnplan::networks
