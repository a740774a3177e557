#include "validators/kernels.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace dnnplan::validators {

template <>
void gemm<double>(bool ta, bool tb, Index m, Index n, Index k, double alpha, const double* a, Index lda,
                  const double* b, Index ldb, double beta, double* c, Index ldc) {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
                alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
template <>
void gemm<float>(bool ta, bool tb, Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b,
                 Index ldb, float beta, float* c, Index ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
                alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

namespace {
struct Dims {
    Index b, ci, he, we, ho, wo;
};
template <class T>
Dims dims_of(const Tensor<T>& x, const Tensor<T>& y) {
    return {x.extent(0), x.extent(1), x.extent(2), x.extent(3), y.extent(2), y.extent(3)};
}

// col[(c, i, j), (oh, ow)] = x[c, oh*sh + i*dh, ow*sw + j*dw] for one sample.
template <class T>
void im2col(const T* x, const Dims& d, const ConvGeometry& g, T* col) {
    for (Index c = 0; c < d.ci; ++c)
        for (Index i = 0; i < g.kh; ++i)
            for (Index j = 0; j < g.kw; ++j) {
                T* row = col + ((c * g.kh + i) * g.kw + j) * d.ho * d.wo;
                for (Index oh = 0; oh < d.ho; ++oh) {
                    const T* src = x + (c * d.he + oh * g.sh + i * g.dh) * d.we + j * g.dw;
                    for (Index ow = 0; ow < d.wo; ++ow) row[oh * d.wo + ow] = src[ow * g.sw];
                }
            }
}
template <class T>
void col2im_add(const T* col, const Dims& d, const ConvGeometry& g, T* x) {
    for (Index c = 0; c < d.ci; ++c)
        for (Index i = 0; i < g.kh; ++i)
            for (Index j = 0; j < g.kw; ++j) {
                const T* row = col + ((c * g.kh + i) * g.kw + j) * d.ho * d.wo;
                for (Index oh = 0; oh < d.ho; ++oh) {
                    T* dst = x + (c * d.he + oh * g.sh + i * g.dh) * d.we + j * g.dw;
                    for (Index ow = 0; ow < d.wo; ++ow) dst[ow * g.sw] += row[oh * d.wo + ow];
                }
            }
}
}  // namespace

template <class T>
void conv2d_forward(const Tensor<T>& x, const std::vector<T>& weight, const std::vector<T>& bias, Index co,
                    const ConvGeometry& g, Tensor<T>& y, std::vector<T>* cols) {
    Dims d = dims_of(x, y);
    const Index k = d.ci * g.kh * g.kw, n = d.ho * d.wo;
    std::vector<T> scratch;
    if (cols)
        cols->resize(static_cast<std::size_t>(d.b * k * n));
    else
        scratch.resize(static_cast<std::size_t>(k * n));
    for (Index s = 0; s < d.b; ++s) {
        T* out = y.data.data() + s * co * n;
        T* col = cols ? cols->data() + s * k * n : scratch.data();
        if (d.ci == 0) {
            std::fill(out, out + co * n, T{0});
        } else {
            im2col(x.data.data() + s * d.ci * d.he * d.we, d, g, col);
            gemm<T>(false, false, co, n, k, T{1}, weight.data(), k, col, n, T{0}, out, n);
        }
        if (!bias.empty())
            for (Index c = 0; c < co; ++c)
                for (Index i = 0; i < n; ++i) out[c * n + i] += bias[c];
    }
}

template <class T>
void conv2d_backward(const Tensor<T>& x, const std::vector<T>& weight, Index co, const ConvGeometry& g,
                     const Tensor<T>& dy, Tensor<T>* dx, T* dweight, T* dbias,
                     const std::vector<T>* cols) {
    Dims d = dims_of(x, dy);
    const Index k = d.ci * g.kh * g.kw, n = d.ho * d.wo;
    std::vector<T> scratch(cols ? 0 : static_cast<std::size_t>(k * n));
    std::vector<T> dcol(dx ? static_cast<std::size_t>(k * n) : 0);
    if (dx) std::fill(dx->data.begin(), dx->data.end(), T{0});
    for (Index s = 0; s < d.b; ++s) {
        const T* gy = dy.data.data() + s * co * n;
        if (dbias)
            for (Index c = 0; c < co; ++c)
                for (Index i = 0; i < n; ++i) dbias[c] += gy[c * n + i];
        if (k == 0) continue;
        const T* col = cols ? cols->data() + s * k * n : scratch.data();
        if (!cols) im2col(x.data.data() + s * d.ci * d.he * d.we, d, g, scratch.data());
        gemm<T>(false, true, co, k, n, T{1}, gy, n, col, n, T{1}, dweight, k);
        if (!dx) continue;
        gemm<T>(true, false, k, n, co, T{1}, weight.data(), k, gy, n, T{0}, dcol.data(), n);
        col2im_add(dcol.data(), d, g, dx->data.data() + s * d.ci * d.he * d.we);
    }
}

template <class T>
void linear_forward(const T* x, Index batch, Index fi, const std::vector<T>& weight, const std::vector<T>& bias,
                    Index fo, T* y) {
    if (fi > 0)
        gemm<T>(false, true, batch, fo, fi, T{1}, x, fi, weight.data(), fi, T{0}, y, fo);
    else
        std::fill(y, y + batch * fo, T{0});
    if (!bias.empty())
        for (Index s = 0; s < batch; ++s)
            for (Index f = 0; f < fo; ++f) y[s * fo + f] += bias[f];
}

template <class T>
void linear_backward(const T* x, Index batch, Index fi, const std::vector<T>& weight, Index fo, const T* dy, T* dx,
                     T* dweight, T* dbias) {
    if (dbias)
        for (Index s = 0; s < batch; ++s)
            for (Index f = 0; f < fo; ++f) dbias[f] += dy[s * fo + f];
    if (fi == 0) return;
    gemm<T>(true, false, fo, fi, batch, T{1}, dy, fo, x, fi, T{1}, dweight, fi);
    gemm<T>(false, false, batch, fi, fo, T{1}, dy, fo, weight.data(), fi, T{0}, dx, fi);
}

template <class T>
void pool_forward(bool max, const Tensor<T>& x, const ConvGeometry& g, Tensor<T>& y) {
    Dims d = dims_of(x, y);
    const T scale = T{1} / static_cast<T>(g.kh * g.kw);
    for (Index p = 0; p < d.b * d.ci; ++p) {
        const T* in = x.data.data() + p * d.he * d.we;
        T* out = y.data.data() + p * d.ho * d.wo;
        for (Index oh = 0; oh < d.ho; ++oh)
            for (Index ow = 0; ow < d.wo; ++ow) {
                T acc = max ? -std::numeric_limits<T>::infinity() : T{0};
                for (Index i = 0; i < g.kh; ++i)
                    for (Index j = 0; j < g.kw; ++j) {
                        T v = in[(oh * g.sh + i) * d.we + ow * g.sw + j];
                        acc = max ? std::max(acc, v) : acc + v;
                    }
                out[oh * d.wo + ow] = max ? acc : acc * scale;
            }
    }
}

template <class T>
void pool_backward(bool max, const Tensor<T>& x, const ConvGeometry& g, const Tensor<T>& dy, Tensor<T>& dx) {
    Dims d = dims_of(x, dy);
    const T scale = T{1} / static_cast<T>(g.kh * g.kw);
    std::fill(dx.data.begin(), dx.data.end(), T{0});
    for (Index p = 0; p < d.b * d.ci; ++p) {
        const T* in = x.data.data() + p * d.he * d.we;
        T* gin = dx.data.data() + p * d.he * d.we;
        const T* gout = dy.data.data() + p * d.ho * d.wo;
        for (Index oh = 0; oh < d.ho; ++oh)
            for (Index ow = 0; ow < d.wo; ++ow) {
                T go = gout[oh * d.wo + ow];
                if (max) {
                    // The first maximum in window order takes the gradient (PyTorch's tie rule).
                    // Chosen by arithmetic, not a branch: a data-dependent branch is predicted
                    // for a small tensor seen every step but not for a large one, which made the
                    // cost per window depend on the batch (see relu's backward in runner.cpp).
                    Index best = (oh * g.sh) * d.we + ow * g.sw;
                    for (Index i = 0; i < g.kh; ++i)
                        for (Index j = 0; j < g.kw; ++j) {
                            Index at = (oh * g.sh + i) * d.we + ow * g.sw + j;
                            best += (at - best) * static_cast<Index>(in[at] > in[best]);
                        }
                    gin[best] += go;
                } else {
                    for (Index i = 0; i < g.kh; ++i)
                        for (Index j = 0; j < g.kw; ++j) gin[(oh * g.sh + i) * d.we + ow * g.sw + j] += go * scale;
                }
            }
    }
}

template <class T>
double softmax_cross_entropy(const T* logits, const std::vector<int>& labels, Index classes, T* dlogits) {
    const Index batch = static_cast<Index>(labels.size());
    double loss = 0;
    for (Index s = 0; s < batch; ++s) {
        const T* z = logits + s * classes;
        double m = *std::max_element(z, z + classes), sum = 0;
        for (Index c = 0; c < classes; ++c) sum += std::exp(double(z[c]) - m);
        double log_sum = m + std::log(sum);
        loss += log_sum - double(z[labels[s]]);
        for (Index c = 0; c < classes; ++c) {
            double p = std::exp(double(z[c]) - log_sum);
            dlogits[s * classes + c] = static_cast<T>((p - (c == labels[s] ? 1.0 : 0.0)) / double(batch));
        }
    }
    return loss / double(batch);
}

#define DNNPLAN_INSTANTIATE(T)                                                                                        \
    template void conv2d_forward<T>(const Tensor<T>&, const std::vector<T>&, const std::vector<T>&, Index,            \
                                    const ConvGeometry&, Tensor<T>&, std::vector<T>*);                                \
    template void conv2d_backward<T>(const Tensor<T>&, const std::vector<T>&, Index, const ConvGeometry&,             \
                                     const Tensor<T>&, Tensor<T>*, T*, T*,                                            \
                                     const std::vector<T>*);                                                          \
    template void linear_forward<T>(const T*, Index, Index, const std::vector<T>&, const std::vector<T>&, Index, T*); \
    template void linear_backward<T>(const T*, Index, Index, const std::vector<T>&, Index, const T*, T*,              \
                                     T*, T*);                                                                         \
    template void pool_forward<T>(bool, const Tensor<T>&, const ConvGeometry&, Tensor<T>&);                           \
    template void pool_backward<T>(bool, const Tensor<T>&, const ConvGeometry&, const Tensor<T>&, Tensor<T>&);        \
    template double softmax_cross_entropy<T>(const T*, const std::vector<int>&, Index, T*);
DNNPLAN_INSTANTIATE(float)
DNNPLAN_INSTANTIATE(double)
#undef DNNPLAN_INSTANTIATE

}  // namespace dnnplan::validators
