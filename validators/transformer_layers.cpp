#include "validators/transformer_layers.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace dnnplan::validators {

// ---- DistEmbedding ----

template <class T>
DistEmbedding<T>::DistEmbedding(const Grid& grid, Index batch, Index tokens, Index vocabulary, Index dim,
                                std::string name)
    : WeightedLayer<T>(grid, std::move(name), dim, vocabulary, 1, false),
      batch_(batch), tokens_(tokens), vocabulary_(vocabulary), dim_(dim) {}

// A vocabulary split (ci, Megatron-LM's VocabParallelEmbedding): each rank looks up the tokens in
// its rows of the table, writes zeros for the others, and the partial outputs are all-reduced.
template <class T>
Tensor<T> DistEmbedding<T>::forward(const Tensor<T>& ids, OpTimer& timer) {
    ids_ = ids;
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    const Index e0 = shard.row_lo, ne = shard.row_hi - shard.row_lo;
    const Index v0 = shard.col_lo, nv = shard.col_hi - shard.col_lo;
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        for (Index b = y.box.lo[0]; b < y.box.hi[0]; ++b)
            for (Index s = 0; s < tokens_; ++s) {
                const Index id = static_cast<Index>(ids.at(b, s, 0, 0)) - v0;
                if (id < 0 || id >= nv) continue;  // another rank's row (y starts at zero)
                for (Index e = 0; e < ne; ++e) y.at(b, s, e0 + e, 0) = shard.weight[e * nv + id];
            }
    });
    this->reduce_partial_sums(y, timer);
    return y;
}

template <class T>
void DistEmbedding<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    const Index e0 = shard.row_lo, ne = shard.row_hi - shard.row_lo;
    const Index v0 = shard.col_lo, nv = shard.col_hi - shard.col_lo;
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        for (Index b = dy.box.lo[0]; b < dy.box.hi[0]; ++b)
            for (Index s = 0; s < tokens_; ++s) {
                const Index id = static_cast<Index>(ids_.at(b, s, 0, 0)) - v0;
                if (id < 0 || id >= nv) continue;
                for (Index e = 0; e < ne; ++e) shard.dweight[e * nv + id] += dy.at(b, s, e0 + e, 0);
            }
    });
}

// ---- DistPositionEmbedding ----

template <class T>
DistPositionEmbedding<T>::DistPositionEmbedding(const Grid& grid, const TensorMap& in, Index positions,
                                                std::string name)
    : in_(in), name_(std::move(name)), group_(split_group(grid, in, {0})) {
    const Box b = in_.box(grid, grid.rank());
    shard.rows = in_.shape[2];
    shard.cols = positions;
    shard.row_lo = b.lo[2];
    shard.row_hi = b.hi[2];
    shard.col_lo = 0;
    shard.col_hi = positions;
    shard.has_bias = false;
}

template <class T>
Tensor<T> DistPositionEmbedding<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    Tensor<T> y = x;
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        for (Index b = x.box.lo[0]; b < x.box.hi[0]; ++b)
            for (Index s = x.box.lo[1]; s < x.box.hi[1]; ++s)
                for (Index e = x.box.lo[2]; e < x.box.hi[2]; ++e)
                    y.at(b, s, e, 0) += shard.weight[(e - shard.row_lo) * shard.cols + s];
    });
    return y;
}

template <class T>
Tensor<T> DistPositionEmbedding<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        for (Index b = dy.box.lo[0]; b < dy.box.hi[0]; ++b)
            for (Index s = dy.box.lo[1]; s < dy.box.hi[1]; ++s)
                for (Index e = dy.box.lo[2]; e < dy.box.hi[2]; ++e)
                    shard.dweight[(e - shard.row_lo) * shard.cols + s] += dy.at(b, s, e, 0);
    });
    return dy;
}

// ---- DistLayerNorm ----

template <class T>
DistLayerNorm<T>::DistLayerNorm(const Grid& grid, const TensorMap& in, std::string name)
    : in_(in), name_(std::move(name)), group_(split_group(grid, in, {0, 1})) {
    if (in_.axis[2] != kReplica) throw std::logic_error(name_ + ": layernorm needs the whole hidden axis");
    shard.rows = in_.shape[2];
    shard.cols = 1;
    shard.row_lo = 0;
    shard.row_hi = in_.shape[2];
    shard.col_lo = 0;
    shard.col_hi = 1;
    shard.has_bias = true;
}

template <class T>
Tensor<T> DistLayerNorm<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    const Index rows = x.extent(0) * x.extent(1), E = x.extent(2);
    Tensor<T> y(x.box);
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        xhat_ = Tensor<T>(x.box);
        inv_std_.assign(static_cast<std::size_t>(rows), T{0});
        for (Index r = 0; r < rows; ++r) {
            const T* in = x.data.data() + r * E;
            T mean{0}, var{0};
            for (Index e = 0; e < E; ++e) mean += in[e];
            mean /= T(E);
            for (Index e = 0; e < E; ++e) var += (in[e] - mean) * (in[e] - mean);
            var /= T(E);
            inv_std_[r] = T{1} / std::sqrt(var + T(kEps));
            for (Index e = 0; e < E; ++e) {
                xhat_.data[r * E + e] = (in[e] - mean) * inv_std_[r];
                y.data[r * E + e] = shard.weight[e] * xhat_.data[r * E + e] + shard.bias[e];
            }
        }
    });
    return y;
}

template <class T>
Tensor<T> DistLayerNorm<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    const Index rows = dy.extent(0) * dy.extent(1), E = dy.extent(2);
    Tensor<T> dx(dy.box);
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        for (Index r = 0; r < rows; ++r) {
            T m1{0}, m2{0};
            for (Index e = 0; e < E; ++e) {
                const T g = dy.data[r * E + e] * shard.weight[e];
                m1 += g;
                m2 += g * xhat_.data[r * E + e];
                shard.dweight[e] += dy.data[r * E + e] * xhat_.data[r * E + e];
                shard.dbias[e] += dy.data[r * E + e];
            }
            m1 /= T(E);
            m2 /= T(E);
            for (Index e = 0; e < E; ++e)
                dx.data[r * E + e] =
                    inv_std_[r] * (dy.data[r * E + e] * shard.weight[e] - m1 - xhat_.data[r * E + e] * m2);
        }
    });
    return dx;
}

// ---- DistAttention ----

template <class T>
DistAttention<T>::DistAttention(const Grid& grid, Index batch, Index tokens, Index dim, Index heads, bool causal,
                                bool bias, std::string name)
    : WeightedLayer<T>(grid, std::move(name), heads, 1, row_size(dim, heads, bias), bias),
      batch_(batch), tokens_(tokens), dim_(dim), heads_(heads), d_(dim / heads), causal_(causal), bias_(bias) {
    if (dim % heads != 0) throw std::invalid_argument(name_ + ": the hidden size must divide by the heads");
    shard.bias_size = dim;  // bo, whole on every rank
}

template <class T>
Tensor<T> DistAttention<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    x_ = x;
    const Index nb = x.extent(0), S = tokens_, E = dim_, d = d_, rows = nb * S;
    const Index nh = shard.row_hi - shard.row_lo, cols = shard.cols;
    Tensor<T> y(x.box);
    q_.assign(nh, {}), k_.assign(nh, {}), v_.assign(nh, {}), p_.assign(nh, {}), c_.assign(nh, {});
    const T scale = T{1} / std::sqrt(T(d));
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        for (Index h = 0; h < nh; ++h) {
            const T* w = shard.weight.data() + h * cols;
            auto& q = q_[h];
            auto& k = k_[h];
            auto& v = v_[h];
            q.assign(rows * d, T{0}), k.assign(rows * d, T{0}), v.assign(rows * d, T{0});
            for (Index r = 0; r < rows; ++r)
                for (Index j = 0; j < d; ++j) {
                    T aq = bias_ ? w[off_bias_qkv() + j] : T{0}, ak = bias_ ? w[off_bias_qkv() + d + j] : T{0},
                      av = bias_ ? w[off_bias_qkv() + 2 * d + j] : T{0};
                    for (Index e = 0; e < E; ++e) {
                        const T xv = x.data[r * E + e];
                        aq += w[j * E + e] * xv;
                        ak += w[(d + j) * E + e] * xv;
                        av += w[(2 * d + j) * E + e] * xv;
                    }
                    q[r * d + j] = aq, k[r * d + j] = ak, v[r * d + j] = av;
                }
            auto& p = p_[h];
            auto& c = c_[h];
            p.assign(nb * S * S, T{0}), c.assign(rows * d, T{0});
            for (Index b = 0; b < nb; ++b)
                for (Index s = 0; s < S; ++s) {
                    T* ps = p.data() + (b * S + s) * S;
                    const Index last = causal_ ? s + 1 : S;
                    T m = -std::numeric_limits<T>::infinity();
                    for (Index t = 0; t < last; ++t) {
                        T acc{0};
                        for (Index j = 0; j < d; ++j) acc += q[(b * S + s) * d + j] * k[(b * S + t) * d + j];
                        ps[t] = acc * scale;
                        m = std::max(m, ps[t]);
                    }
                    T sum{0};
                    for (Index t = 0; t < last; ++t) sum += (ps[t] = std::exp(ps[t] - m));
                    for (Index t = 0; t < last; ++t) ps[t] /= sum;
                    for (Index t = 0; t < last; ++t)
                        for (Index j = 0; j < d; ++j) c[(b * S + s) * d + j] += ps[t] * v[(b * S + t) * d + j];
                }
            // This head's share of the output projection (row-parallel: its d columns of Wo).
            const T* wo = w + off_o();
            for (Index r = 0; r < rows; ++r)
                for (Index e = 0; e < E; ++e) {
                    T acc{0};
                    for (Index j = 0; j < d; ++j) acc += wo[e * d + j] * c[r * d + j];
                    y.data[r * E + e] += acc;
                }
        }
    });
    if (grid_.dim(kCo) > 1)
        timer.time_blocking(Op::all_reduce, name_ + " output all-reduce", grid_.group(Grid::bit(kCo)),
                            [&] { all_sum_reduce(y.data, grid_.group(Grid::bit(kCo))); });
    if (bias_)
        timer.time(Op::fwd_compute, name_ + " bias", [&] {
            for (Index r = 0; r < rows; ++r)
                for (Index e = 0; e < E; ++e) y.data[r * E + e] += shard.bias[e];
        });
    return y;
}

template <class T>
Tensor<T> DistAttention<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    const Index nb = x_.extent(0), S = tokens_, E = dim_, d = d_, rows = nb * S;
    const Index nh = shard.row_hi - shard.row_lo, cols = shard.cols;
    const T scale = T{1} / std::sqrt(T(d));
    Tensor<T> dx(x_.box);
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        if (bias_)
            for (Index r = 0; r < rows; ++r)
                for (Index e = 0; e < E; ++e) shard.dbias[e] += dy.data[r * E + e];
        for (Index h = 0; h < nh; ++h) {
            const T* w = shard.weight.data() + h * cols;
            T* dw = shard.dweight.data() + h * cols;
            const auto &q = q_[h], &k = k_[h], &v = v_[h], &p = p_[h], &c = c_[h];
            std::vector<T> dc(rows * d, T{0}), dq(rows * d, T{0}), dk(rows * d, T{0}), dv(rows * d, T{0});
            const T* wo = w + off_o();
            for (Index r = 0; r < rows; ++r)
                for (Index e = 0; e < E; ++e) {
                    const T g = dy.data[r * E + e];
                    for (Index j = 0; j < d; ++j) {
                        dw[off_o() + e * d + j] += g * c[r * d + j];
                        dc[r * d + j] += g * wo[e * d + j];
                    }
                }
            for (Index b = 0; b < nb; ++b)
                for (Index s = 0; s < S; ++s) {
                    const T* ps = p.data() + (b * S + s) * S;
                    const Index last = causal_ ? s + 1 : S;
                    std::vector<T> dp(last);
                    T dot{0};
                    for (Index t = 0; t < last; ++t) {
                        T acc{0};
                        for (Index j = 0; j < d; ++j) {
                            acc += dc[(b * S + s) * d + j] * v[(b * S + t) * d + j];
                            dv[(b * S + t) * d + j] += ps[t] * dc[(b * S + s) * d + j];
                        }
                        dp[t] = acc;
                        dot += ps[t] * acc;
                    }
                    for (Index t = 0; t < last; ++t) {
                        const T ds = ps[t] * (dp[t] - dot) * scale;  // softmax backward, then the 1/sqrt(d)
                        for (Index j = 0; j < d; ++j) {
                            dq[(b * S + s) * d + j] += ds * k[(b * S + t) * d + j];
                            dk[(b * S + t) * d + j] += ds * q[(b * S + s) * d + j];
                        }
                    }
                }
            // Q, K, V projections (column-parallel): weight and bias gradients, input gradient.
            const std::vector<T>* grads[3] = {&dq, &dk, &dv};
            for (int m = 0; m < 3; ++m)
                for (Index r = 0; r < rows; ++r)
                    for (Index j = 0; j < d; ++j) {
                        const T g = (*grads[m])[r * d + j];
                        if (bias_) dw[off_bias_qkv() + m * d + j] += g;
                        const Index row = (m * d + j) * E;
                        for (Index e = 0; e < E; ++e) {
                            dw[row + e] += g * x_.data[r * E + e];
                            dx.data[r * E + e] += g * w[row + e];
                        }
                    }
        }
    });
    this->reduce_input_gradient(dx, timer);
    return dx;
}

template class DistEmbedding<float>;
template class DistEmbedding<double>;
template class DistPositionEmbedding<float>;
template class DistPositionEmbedding<double>;
template class DistLayerNorm<float>;
template class DistLayerNorm<double>;
template class DistAttention<float>;
template class DistAttention<double>;

}  // namespace dnnplan::validators
