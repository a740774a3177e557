// Adjoint tests of every primitive on whatever number of ranks mpirun gives (CTest runs 1 to 4),
// plus forward-value checks against a closed form of the global tensor, so that an operator that
// does nothing (or the wrong thing) consistently in both directions cannot pass.
#include "validators/primitives.hpp"

#include <cmath>
#include <string>

#include "mpi_check.hpp"
#include "validators/layers.hpp"  // window_halo: the ranges a windowed operator needs

using namespace dnnplan::validators;
using mpi_check::adjoint_mismatch;
using mpi_check::random_vector;

namespace {

constexpr double kTol = 1e-12;

// The value of the global tensor at (b, c, h, w): distinct for every index, so misplaced data shows.
double global_value(Index b, Index c, Index h, Index w) {
    return 1 + b * 1000 + c * 100 + h * 10 + w + 0.5 * std::sin(double(b + c + h + w));
}

Tensor<double> filled(const Box& box) {
    Tensor<double> t(box);
    for (Index b = box.lo[0]; b < box.hi[0]; ++b)
        for (Index c = box.lo[1]; c < box.hi[1]; ++c)
            for (Index h = box.lo[2]; h < box.hi[2]; ++h)
                for (Index w = box.lo[3]; w < box.hi[3]; ++w) t.at(b, c, h, w) = global_value(b, c, h, w);
    return t;
}

Tensor<double> random_tensor(const Box& box, unsigned seed) {
    Tensor<double> t(box);
    t.data = random_vector(t.data.size(), seed);
    return t;
}

Box full_box(Index b, Index c, Index h, Index w) { return Box{{0, 0, 0, 0}, {b, c, h, w}}; }

// Balanced block split of dimension `dim` of `whole` over p parts: part k.
Box split(Box whole, int dim, int p, int k) {
    Index n = whole.hi[dim] - whole.lo[dim];
    whole.hi[dim] = whole.lo[dim] + block_begin(n, p, k + 1);
    whole.lo[dim] = whole.lo[dim] + block_begin(n, p, k);
    return whole;
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    mpi_check::Suite suite;
    MPI_Comm world = MPI_COMM_WORLD;
    suite.rank = comm_rank(world);
    const int me = suite.rank, p = comm_size(world);
    const std::string on = " on " + std::to_string(p) + " ranks";

    for (int root : {0, p - 1}) {
        suite.run("broadcast / sum-reduce adjoint, root " + std::to_string(root) + on, [&] {
            auto x = random_vector(7, 100 + me), y = random_vector(7, 200 + me);
            auto fx = x;
            broadcast(fx, root, world);
            auto fty = y;
            broadcast_adjoint(fty, root, world);
            double m = adjoint_mismatch(x, fx, y, fty);
            suite.check(m < kTol, "broadcast adjoint mismatch " + std::to_string(m));
            // Forward value: every rank holds the root's x (seeded 100 + root).
            suite.check(fx == random_vector(7, 100 + root), "broadcast delivers the root's values");
            auto sx = x;
            sum_reduce(sx, root, world);
            auto sty = y;
            sum_reduce_adjoint(sty, root, world);
            m = adjoint_mismatch(x, sx, y, sty);
            suite.check(m < kTol, "sum-reduce adjoint mismatch " + std::to_string(m));
            if (me == root) {
                double expect = 0;
                for (int r = 0; r < p; ++r) expect += random_vector(7, 100 + r)[3];
                suite.check(std::abs(sx[3] - expect) < 1e-14 * p, "sum-reduce sums every rank's values");
            } else {
                suite.check(sx[3] == 0, "sum-reduce leaves zero off the root");
            }
        });
    }

    suite.run("all-sum-reduce is self-adjoint" + on, [&] {
        auto x = random_vector(5, 300 + me), y = random_vector(5, 400 + me);
        auto fx = x, fy = y;
        all_sum_reduce(fx, world);
        all_sum_reduce(fy, world);
        double m = adjoint_mismatch(x, fx, y, fy);
        suite.check(m < kTol, "all-sum-reduce adjoint mismatch " + std::to_string(m));
        double expect = 0;
        for (int r = 0; r < p; ++r) expect += random_vector(5, 300 + r)[0];
        suite.check(std::abs(fx[0] - expect) < 1e-14 * p, "all-sum-reduce value");
    });

    // Halo exchanges: (dim, extent in, extent out, kernel, stride, padding, dilation).
    struct HaloCase {
        const char* name;
        int dim;
        Index n_in, n_out, k, s, pad, d;
    };
    const HaloCase halo_cases[] = {
        {"3x3 same padding along H, uneven blocks", 2, 11, 11, 3, 1, 1, 1},
        {"5x5 valid (one-sided halos, lenet conv1) along H", 2, 32, 28, 5, 1, 0, 1},
        {"width 3 (7x7 same) along W, wider than a block", 3, 9, 9, 7, 1, 3, 1},
        {"dilated 3x3 along C", 1, 10, 10, 3, 1, 2, 2},
        {"stride 2, kernel 3 pooling halo along H (one-sided)", 2, 13, 6, 3, 2, 0, 1},
        {"along the batch dimension", 0, 7, 7, 3, 1, 1, 1},
    };
    for (const HaloCase& hc : halo_cases) {
        suite.run(std::string("halo exchange adjoint: ") + hc.name + on, [&] {
            Box whole = full_box(3, 4, 5, 6);
            whole.hi[hc.dim] = hc.n_in;
            HaloLine line = window_halo(hc.dim, p, hc.n_in, hc.n_out, hc.k, hc.s, hc.pad, hc.d);
            Box mine = split(whole, hc.dim, p, me);
            Tensor<double> x = random_tensor(mine, 500 + me);
            Tensor<double> fx = halo_forward(x, line, world);
            Tensor<double> y = random_tensor(fx.box, 600 + me);
            Tensor<double> fty = halo_adjoint(y, mine, line, world);
            double m = adjoint_mismatch(x.data, fx.data, y.data, fty.data);
            suite.check(m < kTol, "halo adjoint mismatch " + std::to_string(m));
            // Forward value: the extended block holds the global tensor where it exists, zero outside.
            Tensor<double> g = halo_forward(filled(mine), line, world);
            bool ok = true;
            for (Index b = g.box.lo[0]; b < g.box.hi[0]; ++b)
                for (Index c = g.box.lo[1]; c < g.box.hi[1]; ++c)
                    for (Index h = g.box.lo[2]; h < g.box.hi[2]; ++h)
                        for (Index w = g.box.lo[3]; w < g.box.hi[3]; ++w) {
                            Index i[4] = {b, c, h, w};
                            bool inside = i[hc.dim] >= 0 && i[hc.dim] < hc.n_in;
                            double expect = inside ? global_value(b, c, h, w) : 0.0;
                            if (g.at(b, c, h, w) != expect) ok = false;
                        }
            suite.check(ok, "halo forward fills ghosts with the neighbours' values and padding with zeros");
        });
    }

    // Repartitions between box partitions of a 5 x 7 x 6 x 3 tensor.
    const Box whole = full_box(5, 7, 6, 3);
    std::vector<Box> by_batch, by_channel_height, on_root, everywhere, empty_boxes(p);
    for (int r = 0; r < p; ++r) {
        by_batch.push_back(split(whole, 0, p, r));
        // Channel blocks by r % 2 and height blocks by r / 2 where p allows; uneven sizes.
        int pc = p >= 2 ? 2 : 1, ph = std::max(1, p / pc);
        Box b = split(whole, 1, pc, r % pc);
        by_channel_height.push_back(r < pc * ph ? split(b, 2, ph, r / pc) : b);  // extra ranks: replicas
        on_root.push_back(r == 0 ? whole : Box{});
        everywhere.push_back(whole);
    }
    struct RepCase {
        const char* name;
        std::vector<Box> src, dst;
    };
    const RepCase rep_cases[] = {
        {"batch split -> channel x height split", by_batch, by_channel_height},
        {"channel x height split -> batch split", by_channel_height, by_batch},
        {"scatter (root -> batch split)", on_root, by_batch},
        {"gather (batch split -> root)", by_batch, on_root},
        {"all-gather (batch split -> replicated)", by_batch, everywhere},
        {"slice (replicated -> channel x height)", everywhere, by_channel_height},
    };
    for (const RepCase& rc : rep_cases) {
        suite.run(std::string("repartition adjoint: ") + rc.name + on, [&] {
            Repartition rep(rc.src, rc.dst, world);
            Tensor<double> x = random_tensor(rc.src[me], 700 + me);
            Tensor<double> fx = rep.forward(x);
            Tensor<double> y = random_tensor(rc.dst[me], 800 + me);
            Tensor<double> fty = rep.adjoint(y);
            double m = adjoint_mismatch(x.data, fx.data, y.data, fty.data);
            suite.check(m < kTol, "repartition adjoint mismatch " + std::to_string(m));
            Tensor<double> g = rep.forward(filled(rc.src[me]));
            suite.check(g.data == filled(rc.dst[me]).data, "repartition delivers the destination box's values");
            // The repartition back restores the source wherever the source box is covered.
            Repartition back(rc.dst, rc.src, world);
            suite.check(back.forward(g).data == filled(rc.src[me]).data, "repartition back restores the source");
        });
    }
    int status = suite.finish();
    MPI_Finalize();
    return status;
}
