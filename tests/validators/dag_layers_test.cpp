// The DAG layers (validators/dag_layers.hpp) and padded / ceil-mode pooling against direct-loop
// sequential references written here, on global tensors given by closed-form values; every rank
// compares its own blocks of the output and input gradient and its parameter-gradient shards, to
// 1e-10 relative in double, on every grid shape of layer_reference.hpp.
#include "validators/dag_layers.hpp"

#include <cmath>
#include <string>

#include "layer_reference.hpp"
#include "mpi_check.hpp"

using namespace dnnplan::validators;
using namespace layer_reference;

namespace {

const TensorMap kOutputSplit{{kN, kCo, kH, kW}, {}};  // how a convolution's output arrives

double weight_value(Index r, Index c) { return 0.2 * std::sin(0.61 * r + 0.29 * c + 0.1); }
double bias_value(Index r) { return 0.05 * r - 0.1; }

// A [rows] or [rows, cols] shard gradient against the global reference (vector of rows x cols).
double shard_error(const std::vector<double>& mine, Index row_lo, Index row_hi, Index col_lo, Index col_hi,
                   const std::vector<double>& ref, Index cols) {
    double err = 0, scale = 0;
    for (double v : ref) scale = std::max(scale, std::abs(v));
    const Index nc = col_hi - col_lo;
    for (Index r = row_lo; r < row_hi; ++r)
        for (Index c = col_lo; c < col_hi; ++c)
            err = std::max(err, std::abs(mine[(r - row_lo) * nc + (c - col_lo)] - ref[r * cols + c]));
    double all = 0;
    MPI_Allreduce(&err, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return scale > 0 ? all / scale : all;
}

void sum_over(std::vector<double>& v, MPI_Comm comm) {
    if (comm_size(comm) > 1) all_sum_reduce(v, comm);
}

// Pooling with padding: max over the window's cells inside the input (PyTorch pads with -inf);
// average: the in-bounds sum over kh x kw (count_include_pad); the first maximum takes the gradient.
void test_padded_pool(mpi_check::Suite& suite, int p, OpTimer& timer) {
    struct Case {
        const char* name;
        PoolSpec spec;
    };
    std::vector<Case> cases;
    PoolSpec a{true, 3, 4, 11, 10, 3, 3, 2, 2};  // ResNet's stem pool: 3x3 stride 2 padding 1
    a.ph = a.pw = 1;
    cases.push_back({"max 3x3 stride 2 padding 1", a});
    PoolSpec b{true, 3, 4, 11, 9, 3, 3, 2, 2};  // GoogLeNet's: ceil mode, the last window past the input
    b.ceil_mode = true;
    cases.push_back({"max 3x3 stride 2 ceil_mode", b});
    PoolSpec c{true, 3, 4, 7, 8, 3, 3, 1, 1};  // inception's pool branch
    c.ph = c.pw = 1;
    c.ceil_mode = true;
    cases.push_back({"max 3x3 stride 1 padding 1 ceil_mode", c});
    PoolSpec d{false, 3, 4, 9, 10, 3, 3, 2, 2};
    d.ph = d.pw = 1;
    cases.push_back({"average 3x3 stride 2 padding 1", d});
    for (const auto& pc : cases)
        for (const GridShape& gs : grids(p)) {
            if (gs.ci > 1) continue;
            suite.run(std::string("pool ") + pc.name + " on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
                const PoolSpec& s = pc.spec;
                // Output sizes by hand: 11 + 2 - 3 = 10, /2 + 1 = 6 (a); ceil(8/2) + 1 = 5, 4*2 = 8 < 11 (b);
                // 7 + 2 - 3 + 1 = 7 (c).
                Grid grid(MPI_COMM_WORLD, gs);
                DistPool<double> pool(grid, s, kOutputSplit);
                Global x = make(s.batch, s.channels, s.height, s.width, 5);
                Global dy = make(s.batch, s.channels, s.out_height(), s.out_width(), 6);
                Global y(s.batch, s.channels, s.out_height(), s.out_width()), dx(s.batch, s.channels, s.height, s.width);
                for (Index bb = 0; bb < s.batch; ++bb)
                    for (Index ch = 0; ch < s.channels; ++ch)
                        for (Index oh = 0; oh < s.out_height(); ++oh)
                            for (Index ow = 0; ow < s.out_width(); ++ow) {
                                double best = -1e300, sum = 0;
                                Index bh = -1, bw = -1;
                                for (Index i = 0; i < s.kh; ++i)
                                    for (Index j = 0; j < s.kw; ++j) {
                                        Index h = oh * s.sh - s.ph + i, w = ow * s.sw - s.pw + j;
                                        if (h < 0 || h >= s.height || w < 0 || w >= s.width) continue;
                                        double v = x.at(bb, ch, h, w);
                                        sum += v;
                                        if (v > best) best = v, bh = h, bw = w;
                                    }
                                double g = dy.at(bb, ch, oh, ow), area = double(s.kh * s.kw);
                                y.at(bb, ch, oh, ow) = s.max ? best : sum / area;
                                if (s.max) {
                                    dx.at(bb, ch, bh, bw) += g;
                                    continue;
                                }
                                for (Index i = 0; i < s.kh; ++i)
                                    for (Index j = 0; j < s.kw; ++j) {
                                        Index h = oh * s.sh - s.ph + i, w = ow * s.sw - s.pw + j;
                                        if (h >= 0 && h < s.height && w >= 0 && w < s.width) dx.at(bb, ch, h, w) += g / area;
                                    }
                            }
                Tensor<double> py = pool.forward(block_of(x, pool.in_map().box(grid, grid.rank())), timer);
                Tensor<double> pdx = pool.backward(block_of(dy, py.box), timer);
                double ey = block_error(py, y), ex = block_error(pdx, dx);
                suite.check(ey < kTol, "output error " + std::to_string(ey));
                suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
            });
        }
}

// Batch norm (training mode): per channel the mean and biased variance over (B, H, W); the input
// gradient from the Jacobian dy_j/dx_i = gamma/sigma (delta_ij - 1/N - xhat_i xhat_j / N), summed
// explicitly (O(N^2) per channel, a different route from the layer's closed form).
void test_batchnorm(mpi_check::Suite& suite, int p, OpTimer& timer) {
    const Index B = 4, C = 6, H = 5, W = 7, N = B * H * W;
    auto gamma = [](Index c) { return 0.8 + 0.1 * c; };
    auto beta = [](Index c) { return 0.05 * c - 0.1; };
    Global x = make(B, C, H, W, 7), dy = make(B, C, H, W, 8);
    Global y(B, C, H, W), dx(B, C, H, W);
    std::vector<double> dgamma(C, 0), dbeta(C, 0);
    for (Index c = 0; c < C; ++c) {
        std::vector<double> v, g;
        for (Index b = 0; b < B; ++b)
            for (Index h = 0; h < H; ++h)
                for (Index w = 0; w < W; ++w) v.push_back(x.at(b, c, h, w)), g.push_back(dy.at(b, c, h, w));
        double mean = 0, var = 0;
        for (double t : v) mean += t / double(N);
        for (double t : v) var += (t - mean) * (t - mean) / double(N);
        const double inv = 1 / std::sqrt(var + DistBatchNorm<double>::kEps);
        std::vector<double> xh(v.size()), gx(v.size(), 0);
        for (std::size_t i = 0; i < v.size(); ++i) xh[i] = (v[i] - mean) * inv;
        for (std::size_t i = 0; i < v.size(); ++i) {
            for (std::size_t j = 0; j < v.size(); ++j)
                gx[i] += g[j] * gamma(c) * inv * ((i == j ? 1.0 : 0.0) - 1.0 / double(N) - xh[i] * xh[j] / double(N));
            dgamma[c] += g[i] * xh[i];
            dbeta[c] += g[i];
        }
        std::size_t k = 0;
        for (Index b = 0; b < B; ++b)
            for (Index h = 0; h < H; ++h)
                for (Index w = 0; w < W; ++w, ++k) {
                    y.at(b, c, h, w) = gamma(c) * xh[k] + beta(c);
                    dx.at(b, c, h, w) = gx[k];
                }
    }
    for (const GridShape& gs : grids(p))
        suite.run("batch norm on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            TensorMap m = kOutputSplit;
            m.shape = {B, C, H, W};
            DistBatchNorm<double> bn(grid, m);
            bn.shard.init([&](Index r, Index) { return gamma(r); }, [&](Index r) { return beta(r); });
            bn.shard.zero_grad();
            Tensor<double> py = bn.forward(block_of(x, m.box(grid, grid.rank())), timer);
            Tensor<double> pdx = bn.backward(block_of(dy, py.box), timer);
            sum_over(bn.shard.grad, bn.sync_group());  // [dweight, dbias]
            double ey = block_error(py, y), ex = block_error(pdx, dx);
            double eg = shard_error(bn.shard.dweight, bn.shard.row_lo, bn.shard.row_hi, 0, 1, dgamma, 1);
            double eb = shard_error(bn.shard.dbias, bn.shard.row_lo, bn.shard.row_hi, 0, 1, dbeta, 1);
            suite.check(ey < kTol, "output error " + std::to_string(ey));
            suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
            suite.check(eg < kTol && eb < kTol, "gamma/beta gradient error " + std::to_string(eg) + " / " + std::to_string(eb));
        });
}

// Global average pooling: y[b, c] = mean over (h, w); dx = dy / (H W) everywhere.
void test_global_pool(mpi_check::Suite& suite, int p, OpTimer& timer) {
    const Index B = 4, C = 5, H = 7, W = 6;
    Global x = make(B, C, H, W, 9), dy = make(B, C, 1, 1, 10);
    Global y(B, C, 1, 1), dx(B, C, H, W);
    for (Index b = 0; b < B; ++b)
        for (Index c = 0; c < C; ++c)
            for (Index h = 0; h < H; ++h)
                for (Index w = 0; w < W; ++w) {
                    y.at(b, c, 0, 0) += x.at(b, c, h, w) / double(H * W);
                    dx.at(b, c, h, w) = dy.at(b, c, 0, 0) / double(H * W);
                }
    for (const GridShape& gs : grids(p))
        suite.run("global average pool on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            TensorMap m = kOutputSplit;
            m.shape = {B, C, H, W};
            DistGlobalAvgPool<double> pool(grid, m);
            Tensor<double> py = pool.forward(block_of(x, m.box(grid, grid.rank())), timer);
            suite.check(py.box == pool.out_map().box(grid, grid.rank()), "output block");
            Tensor<double> pdx = pool.backward(block_of(dy, py.box), timer);
            double ey = block_error(py, y), ex = block_error(pdx, dx);
            suite.check(ey < kTol, "output error " + std::to_string(ey));
            suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
        });
}

// Nearest upsampling by 2: y[h, w] = x[h / 2, w / 2]; dx sums the 2 x 2 patch.
void test_upsample(mpi_check::Suite& suite, int p, OpTimer& timer) {
    const Index B = 3, C = 4, H = 12, W = 12, S = 2;  // 12 divides by 1..4: even splits
    Global x = make(B, C, H, W, 11), dy = make(B, C, H * S, W * S, 12);
    Global y(B, C, H * S, W * S), dx(B, C, H, W);
    for (Index b = 0; b < B; ++b)
        for (Index c = 0; c < C; ++c)
            for (Index h = 0; h < H * S; ++h)
                for (Index w = 0; w < W * S; ++w) {
                    y.at(b, c, h, w) = x.at(b, c, h / S, w / S);
                    dx.at(b, c, h / S, w / S) += dy.at(b, c, h, w);
                }
    for (const GridShape& gs : grids(p))
        suite.run("nearest upsample x2 on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            TensorMap m = kOutputSplit;
            m.shape = {B, C, H, W};
            DistUpsample<double> up(grid, m, S);
            Tensor<double> py = up.forward(block_of(x, m.box(grid, grid.rank())), timer);
            Tensor<double> pdx = up.backward(block_of(dy, py.box), timer);
            double ey = block_error(py, y), ex = block_error(pdx, dx);
            suite.check(ey < kTol, "output error " + std::to_string(ey));
            suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
        });
}

// Transposed convolution, kernel 2 = stride 2: y[b, o, 2h + i, 2w + j] = b_o + sum_c W[o, c, i, j] x[b, c, h, w].
void test_conv_transpose(mpi_check::Suite& suite, int p, OpTimer& timer) {
    ConvTransposeSpec s;
    s.batch = 3, s.in_channels = 4, s.height = 12, s.width = 12, s.out_channels = 6, s.kh = s.kw = 2;
    const Index B = s.batch, CI = s.in_channels, CO = s.out_channels, H = s.height, W = s.width, K = 2;
    Global x = make(B, CI, H, W, 13), dy = make(B, CO, H * K, W * K, 14);
    Global y(B, CO, H * K, W * K), dx(B, CI, H, W);
    std::vector<double> dw(static_cast<std::size_t>(CO * CI * K * K), 0), db(static_cast<std::size_t>(CO), 0);
    for (Index b = 0; b < B; ++b)
        for (Index o = 0; o < CO; ++o)
            for (Index oh = 0; oh < H * K; ++oh)
                for (Index ow = 0; ow < W * K; ++ow) {
                    const Index h = oh / K, w = ow / K, i = oh % K, j = ow % K;
                    double acc = bias_value(o), g = dy.at(b, o, oh, ow);
                    db[o] += g;
                    for (Index c = 0; c < CI; ++c) {
                        const Index col = (c * K + i) * K + j;
                        acc += weight_value(o, col) * x.at(b, c, h, w);
                        dx.at(b, c, h, w) += weight_value(o, col) * g;
                        dw[o * CI * K * K + col] += x.at(b, c, h, w) * g;
                    }
                    y.at(b, o, oh, ow) = acc;
                }
    for (const GridShape& gs : grids(p))
        suite.run("transposed conv 2x2 stride 2 on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            DistConvTranspose2d<double> up(grid, s);
            up.shard.init(weight_value, bias_value);
            up.shard.zero_grad();
            Tensor<double> py = up.forward(block_of(x, up.in_map().box(grid, grid.rank())), timer);
            Tensor<double> pdx = up.backward(block_of(dy, py.box), timer);
            up.sync(timer);
            const Shard<double>& sh = up.shard;
            double ey = block_error(py, y), ex = block_error(pdx, dx);
            double ew = shard_error(sh.dweight, sh.row_lo, sh.row_hi, sh.col_lo, sh.col_hi, dw, CI * K * K);
            double eb = shard_error(sh.dbias, sh.row_lo, sh.row_hi, 0, 1, db, 1);
            suite.check(ey < kTol, "output error " + std::to_string(ey));
            suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
            suite.check(ew < kTol && eb < kTol, "weight/bias gradient error " + std::to_string(ew) + " / " + std::to_string(eb));
        });
}

}  // namespace

int main(int argc, char** argv) {
    return mpi_check::run_suite(argc, argv, [](mpi_check::Suite& suite, int p) {
        OpTimer timer;
        test_padded_pool(suite, p, timer);
        test_batchnorm(suite, p, timer);
        test_global_pool(suite, p, timer);
        test_upsample(suite, p, timer);
        test_conv_transpose(suite, p, timer);
    });
}
