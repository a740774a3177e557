// Sequential layer kernels on local blocks (NCHW, row-major), forward and backward, in float or
// double: convolution by im2col + OpenBLAS GEMM, linear by GEMM, max/average pooling, ReLU and
// softmax cross-entropy. The distributed layers call them on their local (halo-extended) blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "validators/tensor.hpp"

namespace dnnplan::validators {

struct ConvGeometry {
    Index kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
};

// C = alpha * op(A) * op(B) + beta * C, row-major (cblas_sgemm / cblas_dgemm).
template <class T>
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb,
          T beta, T* c, Index ldc);

// Convolution without padding (padding is part of the extended input block): x [b, ci, He, We],
// weight [co, ci, kh, kw], bias [co] or empty; y [b, co, Ho, Wo] with Ho = (He - dh(kh-1) - 1)/sh + 1.
// `y` must be sized; its box only gives the output extents.
// `cols`, when given, keeps every sample's im2col matrix for the backward pass.
template <class T>
void conv2d_forward(const Tensor<T>& x, const std::vector<T>& weight, const std::vector<T>& bias, Index co,
                    const ConvGeometry& g, Tensor<T>& y, std::vector<T>* cols = nullptr);
// dx (same box as x, overwritten; nullptr when the input needs no gradient, as the cost model
// counts no input-gradient FLOPs for the first layer), dweight ([co, k]) and dbias ([co]; nullptr
// without a bias) accumulated (+=).
// `cols`: the forward's im2col matrices (recomputed when nullptr).
template <class T>
void conv2d_backward(const Tensor<T>& x, const std::vector<T>& weight, Index co, const ConvGeometry& g,
                     const Tensor<T>& dy, Tensor<T>* dx, T* dweight, T* dbias,
                     const std::vector<T>* cols = nullptr);

// y[b, fo] = x[b, fi] * W[fo, fi]^T + bias; x's local block is flattened per sample.
template <class T>
void linear_forward(const T* x, Index batch, Index fi, const std::vector<T>& weight, const std::vector<T>& bias,
                    Index fo, T* y);
template <class T>
void linear_backward(const T* x, Index batch, Index fi, const std::vector<T>& weight, Index fo, const T* dy, T* dx,
                     T* dweight, T* dbias);

// Pooling without padding on an extended block: kernel (kh, kw), stride (sh, sw).
template <class T>
void pool_forward(bool max, const Tensor<T>& x, const ConvGeometry& g, Tensor<T>& y);
template <class T>
void pool_backward(bool max, const Tensor<T>& x, const ConvGeometry& g, const Tensor<T>& dy, Tensor<T>& dx);

// Mean softmax cross-entropy over the batch; logits [batch, classes] row-major. Returns the loss
// and writes d(loss)/d(logits).
template <class T>
double softmax_cross_entropy(const T* logits, const std::vector<int>& labels, Index classes, T* dlogits);

}  // namespace dnnplan::validators
