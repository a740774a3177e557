// The distributed layers of DAG networks (ResNet, U-Net, GoogLeNet), on the grids and tensor maps of
// layers.hpp, each following the planner's distribution rules (planner/layout.hpp):
// - DistBatchNorm: training-mode batch norm on whatever split arrives; the per-channel statistics
//   (sum x, sum x^2) and, backward, (sum dy, sum dy xhat) are all-reduced over the ranks holding the
//   same channels but other samples or tiles (the map's batch and spatial axes);
// - DistGlobalAvgPool: each rank averages its own tile, the small [B, C] result is all-reduced over
//   the spatial axes (DESIGN.md 3a: the planner costs exactly this), backward is local;
// - DistUpsample: nearest-neighbour upsampling by an integer factor, local on even splits;
// - DistConvTranspose2d: transposed convolution with kernel == stride and no padding (U-Net's 2x2
//   stride-2 up-convolutions): every input pixel owns a disjoint output patch, so a spatial split
//   needs no halo; channels split as convolution (partial sums over ci, input gradients over co).
#pragma once

#include "validators/layers.hpp"

namespace dnnplan::validators {

// The sub-communicator of the grid axes that split the tensor dimensions in `dims` (batch and
// spatial for statistics); MPI_COMM_SELF when none is split.
MPI_Comm split_group(const Grid& grid, const TensorMap& map, std::initializer_list<int> dims);

template <class T>
class DistBatchNorm {
public:
    // `in`: the map the input arrives in (shape included); weight = gamma, bias = beta per channel.
    DistBatchNorm(const Grid& grid, const TensorMap& in, std::string name = "bn");
    TensorMap in_map() const { return in_; }
    TensorMap out_map() const { return in_; }
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);
    MPI_Comm sync_group() const { return group_; }  // gamma/beta gradients: the same ranks
    Shard<T> shard;
    static constexpr double kEps = 1e-5;  // PyTorch's BatchNorm2d default

private:
    const Grid& grid_;
    TensorMap in_;
    std::string name_;
    MPI_Comm group_;
    Index count_ = 1;  // B x H x W, the statistics' population
    Tensor<T> xhat_;
    std::vector<T> inv_std_;
};

template <class T>
class DistGlobalAvgPool {
public:
    DistGlobalAvgPool(const Grid& grid, const TensorMap& in, std::string name = "avgpool");
    TensorMap in_map() const { return in_; }
    TensorMap out_map() const;
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);

private:
    const Grid& grid_;
    TensorMap in_;
    std::string name_;
    Box in_box_;
};

template <class T>
class DistUpsample {
public:
    DistUpsample(const Grid& grid, const TensorMap& in, Index scale, std::string name = "upsample");
    TensorMap in_map() const { return in_; }
    TensorMap out_map() const;
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);

private:
    const Grid& grid_;
    TensorMap in_;
    Index scale_;
    std::string name_;
    Box in_box_;
};

struct ConvTransposeSpec {
    Index batch = 1, in_channels = 1, height = 1, width = 1, out_channels = 1;
    Index kh = 2, kw = 2;  // == stride
    bool bias = true;
    bool input_grad = true;
    Index out_height() const { return height * kh; }
    Index out_width() const { return width * kw; }
};

// Weight stored as [out, in x kh x kw] (PyTorch keeps [in, out, kh, kw]; the shard's rows are the
// output channels so the co / ci split is convolution's).
template <class T>
class DistConvTranspose2d : public WeightedLayer<T> {
public:
    DistConvTranspose2d(const Grid& grid, const ConvTransposeSpec& spec, std::string name = "upconv");
    TensorMap in_map() const;
    TensorMap out_map() const;
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);
    using WeightedLayer<T>::shard;

private:
    using WeightedLayer<T>::grid_;
    using WeightedLayer<T>::name_;
    ConvTransposeSpec spec_;
    Tensor<T> x_;
};

}  // namespace dnnplan::validators
