// Transformer layers (validators/transformer_layers.hpp) and the per-token linear pair: every
// distributed layer (heads / hidden / vocabulary splits, batch splits, replicas) equals the same
// layer on one process to 1e-10 in double (outputs, input gradients, parameter-gradient shards after
// the gradient sync); and the one-process layer's backward equals central finite differences of
// L = <y, dy> (step 1e-6; truncation ~1e-12 and rounding ~1e-10 of the value, so 1e-6 relative),
// an independent check of the derivatives.
#include "validators/transformer_layers.hpp"

#include <cmath>
#include <functional>
#include <string>

#include "layer_reference.hpp"
#include "mpi_check.hpp"

using namespace dnnplan::validators;
using namespace layer_reference;

namespace {

constexpr double kFiniteDifferenceTol = 1e-6;
const Index B = 3, S = 5, E = 8, HEADS = 4, V = 11;

double param(Index r, Index c) { return 0.3 * std::sin(0.37 * r + 0.23 * c + 0.5); }

// Grids of n and co only (the transformer layers split batch and heads / hidden), with replicas.
std::vector<GridShape> tp_grids(int p) {
    std::vector<GridShape> out;
    for (const GridShape& g : grids(p))
        if (g.ci == 1 && g.h == 1 && g.w == 1) out.push_back(g);
    return out;
}

double shard_error(const Shard<double>& mine, const Shard<double>& whole) {
    double err = 0, scale = 0;
    for (double v : whole.dweight) scale = std::max(scale, std::abs(v));
    for (double v : whole.dbias) scale = std::max(scale, std::abs(v));
    const Index nc = mine.col_hi - mine.col_lo;
    for (Index r = mine.row_lo; r < mine.row_hi; ++r)
        for (Index c = mine.col_lo; c < mine.col_hi; ++c)
            err = std::max(err, std::abs(mine.dweight[(r - mine.row_lo) * nc + (c - mine.col_lo)] -
                                         whole.dweight[r * whole.cols + c]));
    for (std::size_t r = 0; r < mine.dbias.size(); ++r)
        err = std::max(err, std::abs(mine.dbias[r] - whole.dbias[(mine.bias_size > 0 ? 0 : mine.row_lo) + Index(r)]));
    double all = 0;
    MPI_Allreduce(&err, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return scale > 0 ? all / scale : all;
}

void sync(Shard<double>& s, MPI_Comm group) {
    if (comm_size(group) <= 1) return;
    all_sum_reduce(s.grad, group);  // [dweight, dbias]
}

Global to_global(const Tensor<double>& t) {
    Global g(t.box.hi[0], t.box.hi[1], t.box.hi[2], t.box.hi[3]);
    for (Index a = 0; a < t.box.hi[0]; ++a)
        for (Index b = 0; b < t.box.hi[1]; ++b)
            for (Index c = 0; c < t.box.hi[2]; ++c)
                for (Index d = 0; d < t.box.hi[3]; ++d) g.at(a, b, c, d) = t.at(a, b, c, d);
    return g;
}

// Central differences of L = <forward(x), dy> against the analytic gradients, at every input
// element and every 7th parameter (rank 0 only, the one-process layer).
void finite_differences(mpi_check::Suite& suite, const std::string& what, Tensor<double>& x, Shard<double>& shard,
                        const Tensor<double>& dx, const std::function<Tensor<double>(const Tensor<double>&)>& forward,
                        const Tensor<double>& dy) {
    if (suite.rank != 0) return;
    auto loss = [&] {
        Tensor<double> y = forward(x);
        double l = 0;
        for (std::size_t k = 0; k < y.data.size(); ++k) l += y.data[k] * dy.data[k];
        return l;
    };
    const double h = 1e-6;
    double err = 0, scale = 0;
    auto probe = [&](double& v, double analytic) {
        const double keep = v;
        v = keep + h;
        const double up = loss();
        v = keep - h;
        const double down = loss();
        v = keep;
        err = std::max(err, std::abs((up - down) / (2 * h) - analytic));
        scale = std::max(scale, std::abs(analytic));
    };
    for (std::size_t k = 0; k < dx.data.size(); ++k) probe(x.data[k], dx.data[k]);
    const std::vector<double> dw = shard.dweight, db = shard.dbias;
    for (std::size_t k = 0; k < shard.weight.size(); k += 7) probe(shard.weight[k], dw[k]);
    for (std::size_t k = 0; k < shard.bias.size(); ++k) probe(shard.bias[k], db[k]);
    suite.check(err <= kFiniteDifferenceTol * std::max(1.0, scale),
                what + ": finite differences off by " + std::to_string(err) + " (gradients up to " +
                    std::to_string(scale) + ")");
}

void test_attention(mpi_check::Suite& suite, int p, OpTimer& timer) {
    Global x = make(B, S, E, 1, 21), dy = make(B, S, E, 1, 22);
    Grid one(MPI_COMM_SELF, GridShape{});
    DistAttention<double> seq(one, B, S, E, HEADS, true, true);
    seq.shard.init(param, [](Index) { return 0.0; });
    seq.shard.zero_grad();
    Tensor<double> xs = block_of(x, seq.in_map().box(one, 0));
    Tensor<double> ys = seq.forward(xs, timer);
    Tensor<double> dxs = seq.backward(block_of(dy, ys.box), timer);
    Global y_ref = to_global(ys), dx_ref = to_global(dxs);
    suite.run("attention (causal, 4 heads) against finite differences", [&] {
        finite_differences(suite, "attention", xs, seq.shard, dxs, [&](const Tensor<double>& in) { return seq.forward(in, timer); },
                           block_of(dy, ys.box));
    });
    for (const GridShape& gs : tp_grids(p))
        suite.run("attention split by heads on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            DistAttention<double> attn(grid, B, S, E, HEADS, true, true);
            attn.shard.init(param, [](Index) { return 0.0; });
            attn.shard.zero_grad();
            Tensor<double> py = attn.forward(block_of(x, attn.in_map().box(grid, grid.rank())), timer);
            Tensor<double> pdx = attn.backward(block_of(dy, py.box), timer);
            sync(attn.shard, attn.sync_group());
            double ey = block_error(py, y_ref), ex = block_error(pdx, dx_ref), ew = shard_error(attn.shard, seq.shard);
            suite.check(ey < kTol, "output error " + std::to_string(ey));
            suite.check(ex < kTol, "input gradient error " + std::to_string(ex));
            suite.check(ew < kTol, "weight gradient error " + std::to_string(ew));
        });
}

void test_layernorm(mpi_check::Suite& suite, int p, OpTimer& timer) {
    Global x = make(B, S, E, 1, 23), dy = make(B, S, E, 1, 24);
    const TensorMap whole_hidden{{kN, kReplica, kReplica, kReplica}, {B, S, E, 1}};
    Grid one(MPI_COMM_SELF, GridShape{});
    DistLayerNorm<double> seq(one, whole_hidden);
    seq.shard.init([](Index r, Index) { return 1.0 + 0.1 * r; }, [](Index r) { return 0.02 * r; });
    seq.shard.zero_grad();
    Tensor<double> xs = block_of(x, whole_hidden.box(one, 0));
    Tensor<double> ys = seq.forward(xs, timer);
    Tensor<double> dxs = seq.backward(block_of(dy, ys.box), timer);
    Global y_ref = to_global(ys), dx_ref = to_global(dxs);
    suite.run("layernorm against finite differences", [&] {
        finite_differences(suite, "layernorm", xs, seq.shard, dxs, [&](const Tensor<double>& in) { return seq.forward(in, timer); },
                           block_of(dy, ys.box));
    });
    for (const GridShape& gs : tp_grids(p))
        suite.run("layernorm on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            DistLayerNorm<double> ln(grid, whole_hidden);
            ln.shard.init([](Index r, Index) { return 1.0 + 0.1 * r; }, [](Index r) { return 0.02 * r; });
            ln.shard.zero_grad();
            Tensor<double> py = ln.forward(block_of(x, whole_hidden.box(grid, grid.rank())), timer);
            Tensor<double> pdx = ln.backward(block_of(dy, py.box), timer);
            sync(ln.shard, ln.sync_group());
            double ey = block_error(py, y_ref), ex = block_error(pdx, dx_ref), ew = shard_error(ln.shard, seq.shard);
            suite.check(ey < kTol && ex < kTol && ew < kTol,
                        "errors " + std::to_string(ey) + " / " + std::to_string(ex) + " / " + std::to_string(ew));
        });
}

// Embedding: y[b, s, e] = W[e, id[b, s]] (the table split by its dimension), then the position
// table added on the same split; gradients are scatter-adds, checked against the one-process layers.
void test_embeddings(mpi_check::Suite& suite, int p, OpTimer& timer) {
    Global ids(B, S, 1, 1), dy = make(B, S, E, 1, 25);
    for (Index b = 0; b < B; ++b)
        for (Index s = 0; s < S; ++s) ids.at(b, s, 0, 0) = double((3 * b + 5 * s) % V);  // ids repeat: gradients add
    auto run = [&](const Grid& grid, Tensor<double>& y, Shard<double>& wte, Shard<double>& wpe) {
        DistEmbedding<double> emb(grid, B, S, V, E);
        emb.shard.init(param, [](Index) { return 0.0; });
        emb.shard.zero_grad();
        DistPositionEmbedding<double> pos(grid, emb.out_map(), S + 2);
        pos.shard.init([](Index r, Index c) { return 0.1 * r - 0.05 * c; }, [](Index) { return 0.0; });
        pos.shard.zero_grad();
        y = pos.forward(emb.forward(block_of(ids, emb.in_map().box(grid, grid.rank())), timer), timer);
        Tensor<double> g = pos.backward(block_of(dy, y.box), timer);
        emb.backward(g, timer);
        emb.sync(timer);
        sync(pos.shard, pos.sync_group());
        wte = emb.shard;
        wpe = pos.shard;
    };
    Grid one(MPI_COMM_SELF, GridShape{});
    Tensor<double> ys;
    Shard<double> wte_ref, wpe_ref;
    run(one, ys, wte_ref, wpe_ref);
    Global y_ref = to_global(ys);
    // By hand: the token-table gradient of id 0 sums dy over the positions holding id 0.
    suite.run("embedding gradient of token 0 by hand", [&] {
        double expect = 0;
        for (Index b = 0; b < B; ++b)
            for (Index s = 0; s < S; ++s)
                if ((3 * b + 5 * s) % V == 0) expect += dy.at(b, s, 2, 0);
        suite.check(std::abs(wte_ref.dweight[2 * V + 0] - expect) < 1e-14, "dW[2, 0]");
    });
    for (const GridShape& gs : tp_grids(p))
        suite.run("token and position embedding on " + name_of(gs) + " (" + std::to_string(p) + " ranks)", [&] {
            Grid grid(MPI_COMM_WORLD, gs);
            Tensor<double> y;
            Shard<double> wte, wpe;
            run(grid, y, wte, wpe);
            double ey = block_error(y, y_ref), e1 = shard_error(wte, wte_ref), e2 = shard_error(wpe, wpe_ref);
            suite.check(ey < kTol && e1 < kTol && e2 < kTol,
                        "errors " + std::to_string(ey) + " / " + std::to_string(e1) + " / " + std::to_string(e2));
        });
}

// Megatron's MLP pair per token: fc column-parallel (co), proj row-parallel (ci) reading fc's split
// output without redistribution; against direct loops y = W2 (W1 x + b1) + b2.
void test_linear_pair(mpi_check::Suite& suite, int p, OpTimer& timer) {
    const Index F = 12;
    Global x = make(B, S, E, 1, 26), dy = make(B, S, E, 1, 27);
    Global h(B, S, F, 1), y(B, S, E, 1), dh(B, S, F, 1), dx(B, S, E, 1);
    auto b1 = [](Index r) { return 0.01 * r; };
    auto b2 = [](Index r) { return -0.02 * r; };
    auto w2 = [](Index r, Index c) { return param(r + 100, c); };
    for (Index b = 0; b < B; ++b)
        for (Index s = 0; s < S; ++s) {
            for (Index f = 0; f < F; ++f) {
                h.at(b, s, f, 0) = b1(f);
                for (Index e = 0; e < E; ++e) h.at(b, s, f, 0) += param(f, e) * x.at(b, s, e, 0);
            }
            for (Index e = 0; e < E; ++e) {
                y.at(b, s, e, 0) = b2(e);
                for (Index f = 0; f < F; ++f) y.at(b, s, e, 0) += w2(e, f) * h.at(b, s, f, 0);
            }
            for (Index f = 0; f < F; ++f)
                for (Index e = 0; e < E; ++e) dh.at(b, s, f, 0) += w2(e, f) * dy.at(b, s, e, 0);
            for (Index e = 0; e < E; ++e)
                for (Index f = 0; f < F; ++f) dx.at(b, s, e, 0) += param(f, e) * dh.at(b, s, f, 0);
        }
    for (const GridShape& gs : grids(p)) {
        if (gs.h > 1 || gs.w > 1 || (gs.co > 1 && gs.ci > 1)) continue;
        // Column then row: the fc grid splits co = t, the proj grid ci = t (same ranks).
        const int t = std::max(gs.co, gs.ci);
        suite.run("column-then-row linear pair, t = " + std::to_string(t) + ", n " + std::to_string(gs.n) + " (" +
                      std::to_string(p) + " ranks)",
                  [&] {
                      Grid g1(MPI_COMM_WORLD, GridShape{gs.n, t, 1, 1, 1}), g2(MPI_COMM_WORLD, GridShape{gs.n, 1, t, 1, 1});
                      LinearSpec s1;
                      s1.batch = B, s1.tokens = S, s1.in_channels = E, s1.out_features = F;
                      LinearSpec s2 = s1;
                      s2.in_channels = F, s2.out_features = E;
                      DistLinear<double> fc(g1, s1), proj(g2, s2);
                      fc.shard.init(param, b1);
                      proj.shard.init(w2, b2);
                      fc.shard.zero_grad();
                      proj.shard.zero_grad();
                      Tensor<double> ph = fc.forward(block_of(x, fc.in_map().box(g1, g1.rank())), timer);
                      suite.check(ph.box == proj.in_map().box(g2, g2.rank()), "fc's block is what proj reads");
                      Tensor<double> py = proj.forward(ph, timer);
                      Tensor<double> pdh = proj.backward(block_of(dy, py.box), timer);
                      Tensor<double> pdx = fc.backward(pdh, timer);
                      double e1 = block_error(ph, h), e2 = block_error(py, y), e3 = block_error(pdh, dh),
                             e4 = block_error(pdx, dx);
                      suite.check(e1 < kTol && e2 < kTol && e3 < kTol && e4 < kTol,
                                  "errors " + std::to_string(e1) + " / " + std::to_string(e2) + " / " +
                                      std::to_string(e3) + " / " + std::to_string(e4));
                  });
    }
}

}  // namespace

int main(int argc, char** argv) {
    return mpi_check::run_suite(argc, argv, [](mpi_check::Suite& suite, int p) {
        OpTimer timer;
        test_attention(suite, p, timer);
        test_layernorm(suite, p, timer);
        test_embeddings(suite, p, timer);
        test_linear_pair(suite, p, timer);
    });
}
