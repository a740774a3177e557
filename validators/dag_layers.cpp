#include "validators/dag_layers.hpp"

#include <cmath>
#include <stdexcept>

namespace dnnplan::validators {

MPI_Comm split_group(const Grid& grid, const TensorMap& map, std::initializer_list<int> dims) {
    unsigned mask = 0;
    for (int d : dims)
        if (map.axis[d] != kReplica && grid.dim(map.axis[d]) > 1) mask |= Grid::bit(static_cast<Axis>(map.axis[d]));
    return mask == 0 ? MPI_COMM_SELF : grid.group(mask);
}

// ---- DistBatchNorm ----

template <class T>
DistBatchNorm<T>::DistBatchNorm(const Grid& grid, const TensorMap& in, std::string name)
    : grid_(grid), in_(in), name_(std::move(name)), group_(split_group(grid, in, {0, 2, 3})) {
    const Box b = in_.box(grid, grid.rank());
    shard.rows = in_.shape[1];
    shard.cols = 1;
    shard.row_lo = b.lo[1];
    shard.row_hi = b.hi[1];
    shard.col_lo = 0;
    shard.col_hi = 1;
    shard.has_bias = true;
    count_ = in_.shape[0] * in_.shape[2] * in_.shape[3];
}

template <class T>
Tensor<T> DistBatchNorm<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    const Index nb = x.extent(0), nc = x.extent(1), area = x.extent(2) * x.extent(3);
    std::vector<T> sums(static_cast<std::size_t>(2 * nc), T{0});  // [sum x | sum x^2] per local channel
    timer.time(Op::fwd_compute, name_ + " statistics", [&] {
        for (Index b = 0; b < nb; ++b)
            for (Index c = 0; c < nc; ++c) {
                const T* p = x.data.data() + (b * nc + c) * area;
                for (Index i = 0; i < area; ++i) {
                    sums[c] += p[i];
                    sums[nc + c] += p[i] * p[i];
                }
            }
    });
    if (comm_size(group_) > 1)
        timer.time_blocking(Op::all_reduce, name_ + " statistics all-reduce", group_, [&] { all_sum_reduce(sums, group_); });
    Tensor<T> y(x.box);
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        xhat_ = Tensor<T>(x.box);
        inv_std_.assign(static_cast<std::size_t>(nc), T{0});
        std::vector<T> mean(static_cast<std::size_t>(nc));
        for (Index c = 0; c < nc; ++c) {
            mean[c] = sums[c] / T(count_);
            const T var = sums[nc + c] / T(count_) - mean[c] * mean[c];  // biased, as training-mode BN
            inv_std_[c] = T{1} / std::sqrt(var + T(kEps));
        }
        for (Index b = 0; b < nb; ++b)
            for (Index c = 0; c < nc; ++c) {
                const std::size_t o = static_cast<std::size_t>((b * nc + c) * area);
                for (Index i = 0; i < area; ++i) {
                    xhat_.data[o + i] = (x.data[o + i] - mean[c]) * inv_std_[c];
                    y.data[o + i] = shard.weight[c] * xhat_.data[o + i] + shard.bias[c];
                }
            }
    });
    return y;
}

template <class T>
Tensor<T> DistBatchNorm<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    const Index nb = dy.extent(0), nc = dy.extent(1), area = dy.extent(2) * dy.extent(3);
    std::vector<T> sums(static_cast<std::size_t>(2 * nc), T{0});  // [sum dy | sum dy xhat]
    timer.time(Op::bwd_compute, name_ + " backward sums", [&] {
        for (Index b = 0; b < nb; ++b)
            for (Index c = 0; c < nc; ++c) {
                const std::size_t o = static_cast<std::size_t>((b * nc + c) * area);
                for (Index i = 0; i < area; ++i) {
                    sums[c] += dy.data[o + i];
                    sums[nc + c] += dy.data[o + i] * xhat_.data[o + i];
                }
            }
        // This rank's share of the parameter gradients; the gradient sync sums the shares.
        for (Index c = 0; c < nc; ++c) {
            shard.dbias[c] += sums[c];
            shard.dweight[c] += sums[nc + c];
        }
    });
    if (comm_size(group_) > 1)
        timer.time_blocking(Op::all_reduce, name_ + " backward all-reduce", group_, [&] { all_sum_reduce(sums, group_); });
    Tensor<T> dx(dy.box);
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        // dx = gamma / sigma (dy - mean(dy) - xhat mean(dy xhat)) (Ioffe and Szegedy 2015, section 3).
        for (Index b = 0; b < nb; ++b)
            for (Index c = 0; c < nc; ++c) {
                const std::size_t o = static_cast<std::size_t>((b * nc + c) * area);
                const T k = shard.weight[c] * inv_std_[c], m1 = sums[c] / T(count_), m2 = sums[nc + c] / T(count_);
                for (Index i = 0; i < area; ++i) dx.data[o + i] = k * (dy.data[o + i] - m1 - xhat_.data[o + i] * m2);
            }
    });
    return dx;
}

// ---- DistGlobalAvgPool ----

template <class T>
DistGlobalAvgPool<T>::DistGlobalAvgPool(const Grid& grid, const TensorMap& in, std::string name)
    : grid_(grid), in_(in), name_(std::move(name)), in_box_(in.box(grid, grid.rank())) {}

template <class T>
TensorMap DistGlobalAvgPool<T>::out_map() const {
    TensorMap m = in_;
    m.axis[2] = m.axis[3] = kReplica;
    m.shape[2] = m.shape[3] = 1;
    return m;
}

template <class T>
Tensor<T> DistGlobalAvgPool<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    const Index area = x.extent(2) * x.extent(3);
    const T scale = T{1} / T(in_.shape[2] * in_.shape[3]);
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        for (Index p = 0; p < x.extent(0) * x.extent(1); ++p) {
            T acc{0};
            for (Index i = 0; i < area; ++i) acc += x.data[p * area + i];
            y.data[p] = acc * scale;
        }
    });
    MPI_Comm tiles = split_group(grid_, in_, {2, 3});
    if (comm_size(tiles) > 1)
        timer.time_blocking(Op::all_reduce, name_ + " all-reduce", tiles, [&] { all_sum_reduce(y.data, tiles); });
    return y;
}

template <class T>
Tensor<T> DistGlobalAvgPool<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    // dy is whole on every tile's rank, so each spreads it over its own tile: no communication.
    Tensor<T> dx(in_box_);
    const Index area = dx.extent(2) * dx.extent(3);
    const T scale = T{1} / T(in_.shape[2] * in_.shape[3]);
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        for (Index p = 0; p < dx.extent(0) * dx.extent(1); ++p)
            for (Index i = 0; i < area; ++i) dx.data[p * area + i] = dy.data[p] * scale;
    });
    return dx;
}

// ---- DistUpsample ----

template <class T>
DistUpsample<T>::DistUpsample(const Grid& grid, const TensorMap& in, Index scale, std::string name)
    : grid_(grid), in_(in), scale_(scale), name_(std::move(name)), in_box_(in.box(grid, grid.rank())) {
    const Box out = out_map().box(grid, grid.rank());
    for (int d = 2; d < kDims; ++d)
        if (out.lo[d] != scale * in_box_.lo[d] || out.hi[d] != scale * in_box_.hi[d])
            throw std::invalid_argument(name_ + ": upsampling needs spatial splits that divide the input evenly");
}

template <class T>
TensorMap DistUpsample<T>::out_map() const {
    TensorMap m = in_;
    m.shape[2] *= scale_;
    m.shape[3] *= scale_;
    return m;
}

template <class T>
Tensor<T> DistUpsample<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        for (Index b = y.box.lo[0]; b < y.box.hi[0]; ++b)
            for (Index c = y.box.lo[1]; c < y.box.hi[1]; ++c)
                for (Index h = y.box.lo[2]; h < y.box.hi[2]; ++h)
                    for (Index w = y.box.lo[3]; w < y.box.hi[3]; ++w) y.at(b, c, h, w) = x.at(b, c, h / scale_, w / scale_);
    });
    return y;
}

template <class T>
Tensor<T> DistUpsample<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    Tensor<T> dx(in_box_);
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        for (Index b = dy.box.lo[0]; b < dy.box.hi[0]; ++b)
            for (Index c = dy.box.lo[1]; c < dy.box.hi[1]; ++c)
                for (Index h = dy.box.lo[2]; h < dy.box.hi[2]; ++h)
                    for (Index w = dy.box.lo[3]; w < dy.box.hi[3]; ++w)
                        dx.at(b, c, h / scale_, w / scale_) += dy.at(b, c, h, w);
    });
    return dx;
}

// ---- DistConvTranspose2d ----

template <class T>
DistConvTranspose2d<T>::DistConvTranspose2d(const Grid& grid, const ConvTransposeSpec& spec, std::string name)
    : WeightedLayer<T>(grid, std::move(name), spec.out_channels, spec.in_channels, spec.kh * spec.kw, spec.bias),
      spec_(spec) {
    const Box in = in_map().box(grid, grid.rank()), out = out_map().box(grid, grid.rank());
    const Index k[2] = {spec.kh, spec.kw};
    for (int d = 2; d < kDims; ++d)
        if (out.lo[d] != k[d - 2] * in.lo[d] || out.hi[d] != k[d - 2] * in.hi[d])
            throw std::invalid_argument(name_ + ": transposed convolution needs spatial splits that divide the input evenly");
}

template <class T>
TensorMap DistConvTranspose2d<T>::in_map() const {
    return TensorMap{{kN, kCi, kH, kW}, {spec_.batch, spec_.in_channels, spec_.height, spec_.width}};
}
template <class T>
TensorMap DistConvTranspose2d<T>::out_map() const {
    return TensorMap{{kN, kCo, kH, kW}, {spec_.batch, spec_.out_channels, spec_.out_height(), spec_.out_width()}};
}

template <class T>
Tensor<T> DistConvTranspose2d<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    x_ = x;
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    const Index kh = spec_.kh, kw = spec_.kw, kk = kh * kw, ncols = shard.col_hi - shard.col_lo;
    const Index co0 = y.box.lo[1], ci0 = x.box.lo[1];
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        // y[b, o, h kh + i, w kw + j] = sum_c W[o, c, i, j] x[b, c, h, w]
        for (Index b = x.box.lo[0]; b < x.box.hi[0]; ++b)
            for (Index o = y.box.lo[1]; o < y.box.hi[1]; ++o)
                for (Index c = x.box.lo[1]; c < x.box.hi[1]; ++c) {
                    const T* wk = shard.weight.data() + (o - co0) * ncols + (c - ci0) * kk;
                    for (Index h = x.box.lo[2]; h < x.box.hi[2]; ++h)
                        for (Index w = x.box.lo[3]; w < x.box.hi[3]; ++w) {
                            const T v = x.at(b, c, h, w);
                            for (Index i = 0; i < kh; ++i)
                                for (Index j = 0; j < kw; ++j) y.at(b, o, h * kh + i, w * kw + j) += wk[i * kw + j] * v;
                        }
                }
    });
    this->reduce_partial_sums(y, timer);
    if (!shard.bias.empty())
        timer.time(Op::fwd_compute, name_ + " bias", [&] {
            for (Index b = y.box.lo[0]; b < y.box.hi[0]; ++b)
                for (Index o = y.box.lo[1]; o < y.box.hi[1]; ++o)
                    for (Index h = y.box.lo[2]; h < y.box.hi[2]; ++h)
                        for (Index w = y.box.lo[3]; w < y.box.hi[3]; ++w) y.at(b, o, h, w) += shard.bias[o - co0];
        });
    return y;
}

template <class T>
Tensor<T> DistConvTranspose2d<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    Tensor<T> dx(x_.box);
    const Index kh = spec_.kh, kw = spec_.kw, kk = kh * kw, ncols = shard.col_hi - shard.col_lo;
    const Index co0 = dy.box.lo[1], ci0 = x_.box.lo[1];
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        for (Index b = x_.box.lo[0]; b < x_.box.hi[0]; ++b)
            for (Index o = dy.box.lo[1]; o < dy.box.hi[1]; ++o) {
                for (Index c = x_.box.lo[1]; c < x_.box.hi[1]; ++c) {
                    const T* wk = shard.weight.data() + (o - co0) * ncols + (c - ci0) * kk;
                    T* dwk = shard.dweight.data() + (o - co0) * ncols + (c - ci0) * kk;
                    for (Index h = x_.box.lo[2]; h < x_.box.hi[2]; ++h)
                        for (Index w = x_.box.lo[3]; w < x_.box.hi[3]; ++w) {
                            const T v = x_.at(b, c, h, w);
                            T acc{0};
                            for (Index i = 0; i < kh; ++i)
                                for (Index j = 0; j < kw; ++j) {
                                    const T g = dy.at(b, o, h * kh + i, w * kw + j);
                                    acc += wk[i * kw + j] * g;
                                    dwk[i * kw + j] += v * g;
                                }
                            dx.at(b, c, h, w) += acc;
                        }
                }
                if (!shard.dbias.empty())
                    for (Index h = dy.box.lo[2]; h < dy.box.hi[2]; ++h)
                        for (Index w = dy.box.lo[3]; w < dy.box.hi[3]; ++w) shard.dbias[o - co0] += dy.at(b, o, h, w);
            }
    });
    if (!spec_.input_grad) return Tensor<T>{};
    this->reduce_input_gradient(dx, timer);
    return dx;
}

template class DistBatchNorm<float>;
template class DistBatchNorm<double>;
template class DistGlobalAvgPool<float>;
template class DistGlobalAvgPool<double>;
template class DistUpsample<float>;
template class DistUpsample<double>;
template class DistConvTranspose2d<float>;
template class DistConvTranspose2d<double>;

}  // namespace dnnplan::validators
