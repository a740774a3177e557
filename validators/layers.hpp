// Distributed layers built from the primitives, on a Cartesian process grid of the planner's layout
// axes [replica, n, co, ci, h, w] (w fastest, as planner/README.md numbers ranks):
// - DistConv2d: output channels over co, input channels over ci (partial sums all-reduced), height
//   and width over h x w with halo exchange (stride, padding, dilation), batch over n;
// - DistLinear: the same for features (Megatron's column / row split);
// - DistPool: max or average pooling on a domain split, one-sided halos where windows overlap;
// - DistAffine: DistDL's affine layer on a Pr x Pc weight partition (broadcast the input down the
//   columns, local GEMM, sum-reduce along the rows, bias on one column);
// and the batch-parallel wrapper: every layer's sync() all-reduces its weight gradient over the
// ranks that hold the same shard but see other data (n x h x w).
//
// Gradients of replicated activations are kept whole on every replica: a layer whose replicas
// computed partial input gradients (co > 1) all-reduces them, as Gholami et al. cost it.
#pragma once

#include <mpi.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "validators/kernels.hpp"
#include "validators/primitives.hpp"
#include "validators/tensor.hpp"

namespace dnnplan::validators {

// What a run's time is spent on, as the cost model splits it.
enum class Op { fwd_compute, bwd_compute, all_reduce, halo, redistribution, sync, loss, optimizer, count };
const char* to_string(Op op);

struct TraceEvent {
    std::string name;
    Op op = Op::fwd_compute;
    double start = 0, end = 0;  // MPI_Wtime
};

// Accumulates seconds per Op; records events when tracing.
struct OpTimer {
    std::array<double, static_cast<int>(Op::count)> seconds{};
    bool trace = false;
    std::vector<TraceEvent> events;
    // Told each step's name before it runs, and whether it waits on other ranks (fault reports).
    std::function<void(const std::string&, bool)> on_step;
    // Told each step's operation and name before it runs (the byte ledger attributes sends to it).
    std::function<void(Op, const std::string&)> on_op;
    // A blocking collective's own time on this rank, to be split by settle_waits() into the time
    // the group's last arriver spent in it (the call's cost) and this rank's wait for that arrival
    // (skew: the other ranks' slower preceding work), which is not the call's.
    struct BlockingCall {
        Op op;
        MPI_Comm comm;
        double seconds;
    };
    std::vector<BlockingCall> blocking;
    std::array<double, static_cast<int>(Op::count)> waited{};  // per Op, moved out of `seconds`
    void reset() {
        seconds.fill(0);
        waited.fill(0);
        events.clear();
        blocking.clear();
    }
    // time() of a blocking collective over `comm` that every rank of `comm` calls in the same order.
    template <class F>
    auto time_blocking(Op op, const std::string& name, MPI_Comm comm, F&& f) {
        const double before = seconds[static_cast<int>(op)];
        if constexpr (std::is_void_v<decltype(f())>) {
            time(op, name, std::forward<F>(f));
            blocking.push_back({op, comm, seconds[static_cast<int>(op)] - before});
        } else {
            auto r = time(op, name, std::forward<F>(f));
            blocking.push_back({op, comm, seconds[static_cast<int>(op)] - before});
            return r;
        }
    }
    template <class F>
    auto time(Op op, const std::string& name, F&& f) {
        if (on_step) on_step(name, op != Op::fwd_compute && op != Op::bwd_compute && op != Op::optimizer);
        if (on_op) on_op(op, name);
        double t0 = MPI_Wtime();
        if constexpr (std::is_void_v<decltype(f())>) {
            f();
            record(op, name, t0);
        } else {
            auto r = f();
            record(op, name, t0);
            return r;
        }
    }
    void record(Op op, const std::string& name, double t0) {
        double t1 = MPI_Wtime();
        seconds[static_cast<int>(op)] += t1 - t0;
        if (trace) events.push_back({name, op, t0, t1});
    }
};

// After a timed iteration (outside its timing): for every blocking call of timer.blocking, in
// order, the shortest time any rank of its group spent in it (the last arriver's: the call's own
// cost) stays the call's; the rest of this rank's time, its wait for the last arriver, moves from
// timer.seconds to timer.waited. Collective over each call's group, in the order the calls ran
// (which did not deadlock). Clears timer.blocking.
void settle_waits(OpTimer& timer);

// Grid axes in rank order, slowest first.
enum Axis { kReplica = 0, kN, kCo, kCi, kH, kW, kAxes };

struct GridShape {
    int n = 1, co = 1, ci = 1, h = 1, w = 1;
    int procs() const { return n * co * ci * h * w; }
    auto operator<=>(const GridShape&) const = default;
};

// A Cartesian communicator over all ranks of `comm` with dims [P / procs, n, co, ci, h, w] and the
// sub-communicators the layers use.
class Grid {
public:
    Grid(MPI_Comm comm, const GridShape& shape);
    ~Grid();
    Grid(const Grid&) = delete;
    Grid& operator=(const Grid&) = delete;

    const GridShape& shape() const { return shape_; }
    int size() const { return size_; }
    int rank() const { return rank_; }
    int dim(int axis) const { return dims_[axis]; }
    std::array<int, kAxes> coords(int rank) const;
    MPI_Comm comm() const { return cart_; }
    // The ranks that differ only along the axes flagged in `mask` (bit per Axis).
    MPI_Comm group(unsigned mask) const;
    static unsigned bit(Axis a) { return 1u << a; }

private:
    GridShape shape_;
    int size_ = 1, rank_ = 0;
    std::array<int, kAxes> dims_{};
    MPI_Comm cart_ = MPI_COMM_NULL;
    mutable std::map<unsigned, MPI_Comm> groups_;
};

// How a 4-D tensor [B, C, H, W] is split on a grid: per tensor axis the grid axis whose coordinate
// picks the block (kReplica = not split: every rank holds the whole extent).
struct TensorMap {
    std::array<int, kDims> axis{kReplica, kReplica, kReplica, kReplica};
    std::array<Index, kDims> shape{1, 1, 1, 1};  // global extents
    Box box(const Grid& grid, int rank) const;
    std::vector<Box> boxes(const Grid& grid) const;
};

// Windowed-operator halo ranges along one tensor dimension of a split.
HaloLine window_halo(int dim, int parts, Index n_in, Index n_out, Index kernel, Index stride, Index pad, Index dil);

// A gradient inside its shard's one buffer (Shard::grad): the vector-like calls made on it.
template <class T>
class GradientView {
public:
    GradientView() = default;
    GradientView(T* data, std::size_t size) : data_(data), size_(size) {}
    T* data() const { return data_; }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T& operator[](std::size_t k) const { return data_[k]; }
    T* begin() const { return data_; }
    T* end() const { return data_ + size_; }
    operator std::vector<T>() const { return std::vector<T>(begin(), end()); }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

// A shard's place in its layer's weight matrix (Shard).
struct ShardGeometry {
    Index rows = 0, cols = 0, row_lo = 0, row_hi = 0, col_lo = 0, col_hi = 0;
    bool has_bias = false;
    Index bias_size = 0;  // > 0: a bias of this many entries held whole by every rank, not one per row
};

// A layer's trainable shard: weight rows [row_lo, row_hi) x columns [col_lo, col_hi) of the global
// [rows, cols] matrix (conv: cols = ci * kh * kw), bias rows (bias_rows may be empty). The weight
// and bias gradients are views of one buffer, `grad` = [dweight, dbias], which the gradient sync
// reduces in place: one call per layer, as the plan has it, and no copy (Megatron-LM's contiguous
// gradient buffer, PyTorch DDP's gradient_as_bucket_view).
template <class T>
struct Shard : ShardGeometry {
    std::vector<T> weight, bias;
    std::vector<T> grad;
    GradientView<T> dweight, dbias;
    Shard() = default;
    Shard(const Shard& o) : ShardGeometry(o), weight(o.weight), bias(o.bias), grad(o.grad) { bind(o.dweight.size()); }
    Shard(Shard&& o) noexcept { trade(o), static_cast<ShardGeometry&>(*this) = o; }
    Shard& operator=(Shard o) noexcept {
        trade(o), static_cast<ShardGeometry&>(*this) = o;
        return *this;
    }
    // Fills from global-index functions (the same values on every partition).
    void init(const std::function<double(Index, Index)>& w, const std::function<double(Index)>& b);
    void zero_grad();
    // Trades weights, biases and gradients (their buffers, O(1)) with `o`; the geometry stays.
    void trade(Shard& o) noexcept {
        weight.swap(o.weight), bias.swap(o.bias), grad.swap(o.grad);
        std::swap(dweight, o.dweight), std::swap(dbias, o.dbias);
    }

private:
    void bind(std::size_t weights) {
        dweight = {grad.data(), weights};
        dbias = {grad.data() + weights, grad.size() - weights};
    }
};

struct ConvSpec {
    Index batch = 1, in_channels = 1, height = 1, width = 1, out_channels = 1;
    Index kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    bool bias = true;
    bool input_grad = true;  // false for the first layer: its input needs no gradient
    Index out_height() const { return (height + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
    Index out_width() const { return (width + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
};

// What the layers with weights share: a [outputs, in_channels x area] weight split over co x ci,
// the partial sums of a ci split (forward), the input gradients of a co split (backward), and the
// weight-gradient sync over the ranks holding the same shard (n x h x w).
template <class T>
class WeightedLayer {
public:
    void sync(OpTimer& timer);  // blocking gradient all-reduce
    MPI_Comm sync_group() const;
    Shard<T> shard;

protected:
    WeightedLayer(const Grid& grid, std::string name, Index outputs, Index in_channels, Index area, bool bias);
    void reduce_partial_sums(Tensor<T>& y, OpTimer& timer);
    void reduce_input_gradient(Tensor<T>& dx, OpTimer& timer);
    const Grid& grid_;
    std::string name_;
};

template <class T>
class DistConv2d : public WeightedLayer<T> {
public:
    DistConv2d(const Grid& grid, const ConvSpec& spec, std::string name = "conv");
    TensorMap in_map() const;
    TensorMap out_map() const;
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);  // input gradient (empty when not needed)
    using WeightedLayer<T>::shard;

private:
    using WeightedLayer<T>::grid_;
    using WeightedLayer<T>::name_;
    ConvSpec spec_;
    HaloLine line_h_, line_w_;
    Box in_box_, halo_h_box_;
    Box image_;  // the tensor's rows and columns: halo messages carry no zero padding
    Tensor<T> ext_;        // the halo-extended input, kept for backward
    std::vector<T> cols_;  // its im2col matrices, kept for backward
};

struct LinearSpec {
    Index batch = 1, in_channels = 1, height = 1, width = 1;  // the input [B, C, H, W] is flattened
    Index out_features = 1;
    bool bias = true;
    bool input_grad = true;
    // > 0: a sequence [B, tokens, in_channels, 1] (height = width = 1), the layer applied per token
    // (the features are tensor dimension 2: Megatron's column / row split of a transformer's MLP).
    Index tokens = 0;
};

template <class T>
class DistLinear : public WeightedLayer<T> {
public:
    DistLinear(const Grid& grid, const LinearSpec& spec, std::string name = "linear");
    TensorMap in_map() const;
    TensorMap out_map() const;
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);
    using WeightedLayer<T>::shard;

private:
    using WeightedLayer<T>::grid_;
    using WeightedLayer<T>::name_;
    LinearSpec spec_;
    Tensor<T> x_;
};

struct PoolSpec {
    bool max = true;
    Index batch = 1, channels = 1, height = 1, width = 1, kh = 2, kw = 2, sh = 2, sw = 2;
    Index ph = 0, pw = 0;   // max: padded with -inf; average: zeros counted in the divisor (PyTorch's default)
    bool ceil_mode = false;  // max only: a last window may reach past the padded input
    static Index out_size(Index n, Index k, Index s, Index p, bool ceil) {
        Index span = n + 2 * p - k;
        Index o = (ceil ? (span + s - 1) / s : span / s) + 1;
        if (ceil && (o - 1) * s >= n + p) --o;  // PyTorch: the last window must start inside the input
        return o;
    }
    Index out_height() const { return out_size(height, kh, sh, ph, ceil_mode); }
    Index out_width() const { return out_size(width, kw, sw, pw, ceil_mode); }
};

// Pooling on tensors mapped by `map` (its h / w axes may be split).
template <class T>
class DistPool {
public:
    DistPool(const Grid& grid, const PoolSpec& spec, const TensorMap& in, std::string name = "pool");
    TensorMap in_map() const { return in_; }
    TensorMap out_map() const;
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);

private:
    const Grid& grid_;
    PoolSpec spec_;
    TensorMap in_;
    std::string name_;
    HaloLine line_h_, line_w_;
    Box in_box_, halo_h_box_;
    Box image_;  // the tensor's rows and columns: halo messages carry no zero padding
    Tensor<T> ext_;
    void mask_padding(Tensor<T>& ext) const;
};

// DistDL's affine layer y = x W^T + b on a pr x pc partition of W [out, in] (ranks r = i * pc + j):
// x [batch, in] lives on the first row, split by columns; y [batch, out] on the first column,
// split by rows. Forward: broadcast x_j down column j, y_ij = x_j W_ij^T (+ b_i where j = 0),
// sum-reduce along row i to (i, 0). Backward is the adjoint: broadcast dy_i along the row, local
// products, sum-reduce dx_ij up the column to (0, j).
template <class T>
class DistAffine {
public:
    DistAffine(MPI_Comm comm, int pr, int pc, Index batch, Index in, Index out);
    ~DistAffine();
    DistAffine(const DistAffine&) = delete;
    DistAffine& operator=(const DistAffine&) = delete;
    Box x_box() const;  // [batch, in] as a 4-D box [batch, in, 1, 1]; empty off the first row
    Box y_box() const;  // empty off the first column
    Tensor<T> forward(const Tensor<T>& x);
    Tensor<T> backward(const Tensor<T>& dy);
    Shard<T> shard;

private:
    int pr_, pc_, i_, j_;
    Index batch_, in_, out_;
    MPI_Comm row_ = MPI_COMM_NULL, col_ = MPI_COMM_NULL;
    std::vector<T> x_local_;
};

}  // namespace dnnplan::validators
