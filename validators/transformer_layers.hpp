// Transformer layers with tensor parallelism (Megatron-LM, Shoeybi et al. 2019, section 3), on the
// grids of layers.hpp. Sequence activations are 4-D blocks [B, S, E, 1] (tokens [B, S, 1, 1]); the
// hidden axis E is tensor dimension 2, split by the grid axis the planner's dist `c` names.
// - DistEmbedding: the token table [V, E] split by its embedding dimension over co (each rank looks
//   up its columns; no communication), as the planner's layout rules say (output dist c = co);
// - DistPositionEmbedding: adds the learned position table to whatever hidden split arrives;
// - DistLayerNorm: over the whole hidden axis (the planner makes its input unsplit in c);
// - DistAttention: heads split over co: each rank computes Q, K, V of its heads (column-parallel),
//   causal softmax attention, and its heads' share of the output projection (row-parallel); the
//   partial outputs are all-reduced over co (forward) and the input gradients likewise (backward).
#pragma once

#include "validators/dag_layers.hpp"

namespace dnnplan::validators {

template <class T>
class DistEmbedding : public WeightedLayer<T> {
public:
    DistEmbedding(const Grid& grid, Index batch, Index tokens, Index vocabulary, Index dim, std::string name = "wte");
    TensorMap in_map() const { return TensorMap{{kN, kReplica, kReplica, kReplica}, {batch_, tokens_, 1, 1}}; }
    TensorMap out_map() const { return TensorMap{{kN, kReplica, kCo, kReplica}, {batch_, tokens_, dim_, 1}}; }
    Tensor<T> forward(const Tensor<T>& ids, OpTimer& timer);  // token ids as values
    void backward(const Tensor<T>& dy, OpTimer& timer);      // the ids need no gradient
    using WeightedLayer<T>::shard;

private:
    using WeightedLayer<T>::grid_;
    using WeightedLayer<T>::name_;
    Index batch_, tokens_, vocabulary_, dim_;
    Tensor<T> ids_;
};

// Weight [E_local, positions] (the hidden rows this rank holds), added to x[b, s, e].
template <class T>
class DistPositionEmbedding {
public:
    DistPositionEmbedding(const Grid& grid, const TensorMap& in, Index positions, std::string name = "wpe");
    TensorMap in_map() const { return in_; }
    TensorMap out_map() const { return in_; }
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);
    MPI_Comm sync_group() const { return group_; }
    Shard<T> shard;

private:
    TensorMap in_;
    std::string name_;
    MPI_Comm group_;
};

template <class T>
class DistLayerNorm {
public:
    DistLayerNorm(const Grid& grid, const TensorMap& in, std::string name = "ln");  // in: hidden unsplit
    TensorMap in_map() const { return in_; }
    TensorMap out_map() const { return in_; }
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);
    MPI_Comm sync_group() const { return group_; }
    Shard<T> shard;  // gamma (weight), beta (bias), [E, 1]
    static constexpr double kEps = 1e-5;  // PyTorch's LayerNorm default

private:
    TensorMap in_;
    std::string name_;
    MPI_Comm group_;
    Tensor<T> xhat_;
    std::vector<T> inv_std_;
};

// The shard's rows are the heads (split over co); row h holds [Wq_h (d x E), Wk_h, Wv_h, bq_h (d),
// bk_h, bv_h, Wo[:, h] (E x d), bo (E, used by head 0 only: the output bias is added once before
// the all-reduce)], d = E / heads.
template <class T>
class DistAttention : public WeightedLayer<T> {
public:
    DistAttention(const Grid& grid, Index batch, Index tokens, Index dim, Index heads, bool causal, bool bias,
                  std::string name = "attn");
    TensorMap in_map() const { return TensorMap{{kN, kReplica, kReplica, kReplica}, {batch_, tokens_, dim_, 1}}; }
    TensorMap out_map() const { return in_map(); }
    Tensor<T> forward(const Tensor<T>& x, OpTimer& timer);
    Tensor<T> backward(const Tensor<T>& dy, OpTimer& timer);
    using WeightedLayer<T>::shard;
    // Column offsets inside a head's row.
    Index off_q() const { return 0; }
    Index off_bias_qkv() const { return 3 * d_ * dim_; }
    Index off_o() const { return 3 * d_ * dim_ + 3 * d_; }
    Index off_bias_o() const { return off_o() + dim_ * d_; }
    // The [begin, end) ranges of shard.dweight that are parameters: a head's row keeps a slot for
    // the output-projection bias, which only global head 0 uses (and no bias slots without bias),
    // so the gradient sync sends these only ((4 E^2 + 3 E) / T + E values on head 0's shard).
    std::vector<std::pair<Index, Index>> parameter_ranges() const {
        std::vector<std::pair<Index, Index>> out;
        for (Index h = 0; h < shard.row_hi - shard.row_lo; ++h) {
            const Index row = h * shard.cols;
            out.push_back({row, row + off_bias_qkv() + (bias_ ? 3 * d_ : 0)});
            out.push_back({row + off_o(), row + off_bias_o() + (bias_ && shard.row_lo + h == 0 ? dim_ : 0)});
        }
        return out;
    }
    static Index row_size(Index dim, Index heads) {
        const Index d = dim / heads;
        return 3 * d * dim + 3 * d + dim * d + dim;
    }

private:
    using WeightedLayer<T>::grid_;
    using WeightedLayer<T>::name_;
    Index batch_, tokens_, dim_, heads_, d_;
    bool causal_, bias_;
    Tensor<T> x_;
    std::vector<std::vector<T>> q_, k_, v_, p_, c_;  // per local head: [rows, d] (p: [b, s, t])
};

}  // namespace dnnplan::validators
