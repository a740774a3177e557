// Distributed layers against the sequential layer: the reference is a direct loop implementation
// written here (no im2col, no BLAS), on global tensors given by closed-form values; every rank
// compares its own blocks of the output, the input gradient and its weight/bias gradient shards.
// Relative error = max |distributed - sequential| / max |sequential| over the whole tensor.
#include "validators/layers.hpp"

#include <cmath>
#include <string>

#include "layer_reference.hpp"
#include "mpi_check.hpp"

using namespace dnnplan::validators;
using namespace layer_reference;

namespace {

// Weight shard [rows, cols] against a global [rows, cols] matrix (stored as Global(rows, cols, 1, 1)).
double shard_error(const Shard<double>& s, Global& w, Global* b) {
    double err = 0;
    const Index nc = s.col_hi - s.col_lo;
    for (Index r = s.row_lo; r < s.row_hi; ++r)
        for (Index c = s.col_lo; c < s.col_hi; ++c)
            err = std::max(err, std::abs(s.dweight[(r - s.row_lo) * nc + (c - s.col_lo)] - w.at(r, c, 0, 0)));
    double scale = w.max_abs();
    if (b && s.has_bias) {
        for (Index r = s.row_lo; r < s.row_hi; ++r)
            err = std::max(err, std::abs(s.dbias[r - s.row_lo] - b->at(r, 0, 0, 0)));
        scale = std::max(scale, b->max_abs());
    }
    double all = 0;
    MPI_Allreduce(&err, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return all / scale;
}

double weight_value(Index r, Index c) { return 0.2 * std::sin(0.61 * r + 0.29 * c + 0.1); }
double bias_value(Index r) { return 0.05 * r - 0.1; }

// Direct convolution (cross-correlation) with zero padding: y, dx, dW, db from dy.
struct ConvReference {
    Global y, dx, dw, db;
    ConvReference(const ConvSpec& s, Global& x, Global& dy)
        : y(s.batch, s.out_channels, s.out_height(), s.out_width()),
          dx(s.batch, s.in_channels, s.height, s.width),
          dw(s.out_channels, s.in_channels * s.kh * s.kw, 1, 1),
          db(s.out_channels, 1, 1, 1) {
        for (Index b = 0; b < s.batch; ++b)
            for (Index o = 0; o < s.out_channels; ++o)
                for (Index oh = 0; oh < s.out_height(); ++oh)
                    for (Index ow = 0; ow < s.out_width(); ++ow) {
                        double acc = s.bias ? bias_value(o) : 0, g = dy.at(b, o, oh, ow);
                        if (s.bias) db.at(o, 0, 0, 0) += g;
                        for (Index c = 0; c < s.in_channels; ++c)
                            for (Index i = 0; i < s.kh; ++i)
                                for (Index j = 0; j < s.kw; ++j) {
                                    Index h = oh * s.sh - s.ph + i * s.dh, w = ow * s.sw - s.pw + j * s.dw;
                                    if (h < 0 || h >= s.height || w < 0 || w >= s.width) continue;
                                    Index col = (c * s.kh + i) * s.kw + j;
                                    acc += weight_value(o, col) * x.at(b, c, h, w);
                                    dx.at(b, c, h, w) += weight_value(o, col) * g;
                                    dw.at(o, col, 0, 0) += x.at(b, c, h, w) * g;
                                }
                        y.at(b, o, oh, ow) = acc;
                    }
    }
};

}  // namespace

int main(int argc, char** argv) {
    return mpi_check::run_suite(argc, argv, [](mpi_check::Suite& suite, int p) {
        OpTimer timer;

        struct ConvCase {
            const char* name;
            ConvSpec spec;
        };
        std::vector<ConvCase> conv_cases;
        {
            ConvSpec a;  // 3x3, stride 2, padding 1: uneven blocks of 9 x 7
            a.batch = 4;
            a.in_channels = 4;
            a.height = 9;
            a.width = 7;
            a.out_channels = 6;
            a.kh = a.kw = 3;
            a.sh = a.sw = 2;
            a.ph = a.pw = 1;
            conv_cases.push_back({"3x3 stride 2 padding 1", a});
            ConvSpec b;  // 5x3 valid (one-sided halos, as lenet) with dilation 2 along W, stride 1, no bias
            b.batch = 4;
            b.in_channels = 4;
            b.height = 12;
            b.width = 13;
            b.out_channels = 4;
            b.kh = 5;
            b.kw = 3;
            b.dw = 2;
            b.bias = false;
            conv_cases.push_back({"5x3 valid, dilation 2 in W, no bias", b});
            ConvSpec c = a;  // same padding, stride 1
            c.sh = c.sw = 1;
            c.height = 8;
            c.width = 8;
            conv_cases.push_back({"3x3 same", c});
        }
        for (const auto& cc : conv_cases) {
            for (const GridShape& gs : grids(p)) {
                suite.run(std::string("conv ") + cc.name + " on " + name_of(gs) + " (" + std::to_string(p) + " ranks)",
                          [&] {
                              const ConvSpec& s = cc.spec;
                              Grid grid(MPI_COMM_WORLD, gs);
                              DistConv2d<double> conv(grid, s);
                              conv.shard.init(weight_value, bias_value);
                              Global x = make(s.batch, s.in_channels, s.height, s.width, 1);
                              Global dy = make(s.batch, s.out_channels, s.out_height(), s.out_width(), 2);
                              ConvReference ref(s, x, dy);
                              Tensor<double> y = conv.forward(block_of(x, conv.in_map().box(grid, grid.rank())), timer);
                              Tensor<double> dx = conv.backward(block_of(dy, y.box), timer);
                              conv.sync(timer);
                              double ey = block_error(y, ref.y),
                                     ew = shard_error(conv.shard, ref.dw, s.bias ? &ref.db : nullptr);
                              suite.check(ey < kTol, "output error " + std::to_string(ey));
                              suite.check(ew < kTol, "weight gradient error " + std::to_string(ew));
                              if (s.input_grad) {
                                  double ex = block_error(dx, ref.dx);
                                  suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
                              }
                          });
            }
        }

        for (const GridShape& gs : grids(p)) {
            if (gs.h > 1 || gs.w > 1) continue;  // linear layers have no spatial axes
            suite.run(
                "linear on a flattened [5, 3, 2] input, " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
                    LinearSpec s;
                    s.batch = 5;
                    s.in_channels = 5;
                    s.height = 3;
                    s.width = 2;
                    s.out_features = 7;
                    Grid grid(MPI_COMM_WORLD, gs);
                    DistLinear<double> lin(grid, s);
                    lin.shard.init(weight_value, bias_value);
                    Global x = make(s.batch, s.in_channels, s.height, s.width, 3);
                    Global dy = make(s.batch, s.out_features, 1, 1, 4);
                    // Reference: y[b, o] = sum_f W[o, f] x[b, f] + bias[o], f = (c, h, w) flattened.
                    const Index fi = s.in_channels * s.height * s.width;
                    Global y(s.batch, s.out_features, 1, 1), dx(s.batch, s.in_channels, s.height, s.width),
                        dw(s.out_features, fi, 1, 1), db(s.out_features, 1, 1, 1);
                    for (Index b = 0; b < s.batch; ++b)
                        for (Index o = 0; o < s.out_features; ++o) {
                            double acc = bias_value(o), g = dy.at(b, o, 0, 0);
                            db.at(o, 0, 0, 0) += g;
                            for (Index f = 0; f < fi; ++f) {
                                Index c = f / (s.height * s.width), h = (f / s.width) % s.height, w = f % s.width;
                                acc += weight_value(o, f) * x.at(b, c, h, w);
                                dx.at(b, c, h, w) += weight_value(o, f) * g;
                                dw.at(o, f, 0, 0) += x.at(b, c, h, w) * g;
                            }
                            y.at(b, o, 0, 0) = acc;
                        }
                    Tensor<double> ly = lin.forward(block_of(x, lin.in_map().box(grid, grid.rank())), timer);
                    Tensor<double> ldx = lin.backward(block_of(dy, ly.box), timer);
                    lin.sync(timer);
                    double ey = block_error(ly, y), ex = block_error(ldx, dx), ew = shard_error(lin.shard, dw, &db);
                    suite.check(ey < kTol, "output error " + std::to_string(ey));
                    suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
                    suite.check(ew < kTol, "weight gradient error " + std::to_string(ew));
                });
        }

        struct PoolCase {
            const char* name;
            PoolSpec spec;
        };
        const PoolCase pool_cases[] = {
            {"max 2x2 stride 2", {true, 3, 4, 8, 12, 2, 2, 2, 2}},
            {"max 3x3 stride 2 (overlapping windows)", {true, 3, 4, 11, 9, 3, 3, 2, 2}},
            {"average 3x2 stride 1x2", {false, 3, 4, 9, 10, 3, 2, 1, 2}},
        };
        for (const auto& pc : pool_cases) {
            for (const GridShape& gs : grids(p)) {
                if (gs.ci > 1) continue;  // pooling follows an output split (n, co, h, w)
                suite.run(
                    std::string("pool ") + pc.name + " on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
                        const PoolSpec& s = pc.spec;
                        Grid grid(MPI_COMM_WORLD, gs);
                        DistPool<double> pool(grid, s, TensorMap{{kN, kCo, kH, kW}, {}});
                        Global x = make(s.batch, s.channels, s.height, s.width, 5);
                        Global dy = make(s.batch, s.channels, s.out_height(), s.out_width(), 6);
                        Global y(s.batch, s.channels, s.out_height(), s.out_width()),
                            dx(s.batch, s.channels, s.height, s.width);
                        for (Index b = 0; b < s.batch; ++b)
                            for (Index c = 0; c < s.channels; ++c)
                                for (Index oh = 0; oh < s.out_height(); ++oh)
                                    for (Index ow = 0; ow < s.out_width(); ++ow) {
                                        double best = -1e300, sum = 0;
                                        Index bh = 0, bw = 0;
                                        for (Index i = 0; i < s.kh; ++i)
                                            for (Index j = 0; j < s.kw; ++j) {
                                                double v = x.at(b, c, oh * s.sh + i, ow * s.sw + j);
                                                sum += v;
                                                if (v > best) {
                                                    best = v;
                                                    bh = oh * s.sh + i;
                                                    bw = ow * s.sw + j;
                                                }
                                            }
                                        double area = double(s.kh * s.kw), g = dy.at(b, c, oh, ow);
                                        y.at(b, c, oh, ow) = s.max ? best : sum / area;
                                        if (s.max)
                                            dx.at(b, c, bh, bw) += g;
                                        else
                                            for (Index i = 0; i < s.kh; ++i)
                                                for (Index j = 0; j < s.kw; ++j)
                                                    dx.at(b, c, oh * s.sh + i, ow * s.sw + j) += g / area;
                                    }
                        Tensor<double> py = pool.forward(block_of(x, pool.in_map().box(grid, grid.rank())), timer);
                        Tensor<double> pdx = pool.backward(block_of(dy, py.box), timer);
                        double ey = block_error(py, y), ex = block_error(pdx, dx);
                        suite.check(ey < kTol, "output error " + std::to_string(ey));
                        suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
                    });
            }
        }

        for (int pr = 1; pr <= p; ++pr) {
            if (p % pr != 0) continue;
            const int pc = p / pr;
            suite.run("DistDL affine on " + std::to_string(pr) + " x " + std::to_string(pc) + " weight partition", [&] {
                const Index batch = 3, in = 7, out = 5;
                DistAffine<double> aff(MPI_COMM_WORLD, pr, pc, batch, in, out);
                aff.shard.init(weight_value, bias_value);
                Global x = make(batch, in, 1, 1, 7), dy = make(batch, out, 1, 1, 8);
                Global y(batch, out, 1, 1), dx(batch, in, 1, 1), dw(out, in, 1, 1), db(out, 1, 1, 1);
                for (Index b = 0; b < batch; ++b)
                    for (Index o = 0; o < out; ++o) {
                        double acc = bias_value(o), g = dy.at(b, o, 0, 0);
                        db.at(o, 0, 0, 0) += g;
                        for (Index f = 0; f < in; ++f) {
                            acc += weight_value(o, f) * x.at(b, f, 0, 0);
                            dx.at(b, f, 0, 0) += weight_value(o, f) * g;
                            dw.at(o, f, 0, 0) += x.at(b, f, 0, 0) * g;
                        }
                        y.at(b, o, 0, 0) = acc;
                    }
                Tensor<double> ay = aff.forward(block_of(x, aff.x_box()));
                Tensor<double> adx = aff.backward(block_of(dy, aff.y_box()));
                double ey = block_error(ay, y), ex = block_error(adx, dx), ew = shard_error(aff.shard, dw, &db);
                suite.check(ey < kTol, "output error " + std::to_string(ey));
                suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
                suite.check(ew < kTol, "weight gradient error " + std::to_string(ew));
                // Each result lives only where DistDL puts it: y on the first column, dx on the first row.
                suite.check((aff.y_box().volume() > 0) == (comm_rank(MPI_COMM_WORLD) % pc == 0),
                            "y on the first column");
            });
        }

        suite.run("for_each_run merges the inner axes the region, source and target cover whole", [&] {
            std::vector<std::array<Index, 3>> calls;  // src offset, dst offset, run
            auto note = [&](Index a, Index b, Index n) { calls.push_back({a, b, n}); };
            // [2, 3, 4, 1] with rows 2..3 of axis 2 (a sequence block [B, S, E, 1] split on E):
            // axis 3 is whole, axis 2 is not, so one run of 2 per (b, c): 2 x 3 calls, source
            // offsets (b 3 + c) 4 + 2, target offsets 2 (b 3 + c).
            Box src{{0, 0, 0, 0}, {2, 3, 4, 1}}, region{{0, 0, 2, 0}, {2, 3, 4, 1}};
            for_each_run(src, region, region, note);
            suite.check(calls.size() == 6, "6 runs, got " + std::to_string(calls.size()));
            for (std::size_t k = 0; k < calls.size() && k < 6; ++k) {
                const Index bc = static_cast<Index>(k);
                suite.check(calls[k] == std::array<Index, 3>{bc * 4 + 2, bc * 2, 2}, "run " + std::to_string(k));
            }
            // [4, 3, 2, 5] with samples 1..2: axes 1-3 whole, one run of 2 x 3 x 2 x 5 = 60 from offset 30.
            calls.clear();
            Box src2{{0, 0, 0, 0}, {4, 3, 2, 5}}, samples{{1, 0, 0, 0}, {3, 3, 2, 5}};
            for_each_run(src2, samples, samples, note);
            suite.check(calls.size() == 1 && calls[0] == std::array<Index, 3>{30, 0, 60}, "one run of 60 from 30");
        });

        suite.run("settle_waits: a blocking call's wait for the last arriver is not the call's time", [&] {
            // The last rank arrives 30 ms late: the others' time in the all-reduce is mostly that
            // wait; after settle_waits every rank keeps the last arriver's time (the group's
            // shortest) as the call's and the rest as its wait, which together are its own time.
            OpTimer t;
            const int me = comm_rank(MPI_COMM_WORLD);
            double value = 1, sum = 0;
            MPI_Barrier(MPI_COMM_WORLD);
            if (me == p - 1) {
                const double start = MPI_Wtime();
                while (MPI_Wtime() - start < 0.030) {
                }
            }
            t.time_blocking(Op::all_reduce, "late all-reduce", MPI_COMM_WORLD,
                            [&] { MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); });
            const double own = t.seconds[static_cast<int>(Op::all_reduce)];
            settle_waits(t);
            const double kept = t.seconds[static_cast<int>(Op::all_reduce)];
            const double waited = t.waited[static_cast<int>(Op::all_reduce)];
            suite.check(std::abs(kept + waited - own) < 1e-12, "kept + waited = own time");
            double lo = 0, hi = 0;
            MPI_Allreduce(&kept, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
            MPI_Allreduce(&kept, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            suite.check(lo == hi, "every rank keeps the same (the last arriver's) time");
            suite.check(t.blocking.empty(), "the calls are settled");
            if (p > 1 && me == 0) suite.check(waited > 0.015, "rank 0 waited " + std::to_string(waited) + " s");
            if (me == p - 1) suite.check(waited < 0.005, "the last arriver waited " + std::to_string(waited) + " s");
        });
    });
}
