// Test helpers shared by the layer tests: dense global tensors given by closed-form values, the
// local blocks of them a rank holds, the max relative error of a block over all ranks, and the
// grid shapes every layer is tested on.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "validators/layers.hpp"

namespace layer_reference {

using namespace dnnplan::validators;

constexpr double kTol = 1e-10;

inline double value(Index seed, Index a, Index b, Index c, Index d) {
    return std::sin(0.37 * a + 1.13 * b + 0.71 * c + 0.53 * d + 0.19 * seed) + 0.1 * std::cos(double(seed + 3 * a));
}

struct Global {  // a dense global tensor
    Index n[4];
    std::vector<double> v;
    Global(Index a, Index b, Index c, Index d) : n{a, b, c, d}, v(static_cast<std::size_t>(a * b * c * d), 0.0) {}
    double& at(Index a, Index b, Index c, Index d) {
        return v[static_cast<std::size_t>(((a * n[1] + b) * n[2] + c) * n[3] + d)];
    }
    double max_abs() const {
        double m = 0;
        for (double x : v) m = std::max(m, std::abs(x));
        return m;
    }
};

inline Global make(Index a, Index b, Index c, Index d, Index seed) {
    Global g(a, b, c, d);
    for (Index i = 0; i < a; ++i)
        for (Index j = 0; j < b; ++j)
            for (Index k = 0; k < c; ++k)
                for (Index l = 0; l < d; ++l) g.at(i, j, k, l) = value(seed, i, j, k, l);
    return g;
}

inline Tensor<double> block_of(Global& g, const Box& box) {
    Tensor<double> t(box);
    for (Index a = box.lo[0]; a < box.hi[0]; ++a)
        for (Index b = box.lo[1]; b < box.hi[1]; ++b)
            for (Index c = box.lo[2]; c < box.hi[2]; ++c)
                for (Index d = box.lo[3]; d < box.hi[3]; ++d) t.at(a, b, c, d) = g.at(a, b, c, d);
    return t;
}

// Max relative error of a local block against the global reference, over all ranks.
inline double block_error(const Tensor<double>& t, Global& g) {
    double err = 0;
    const Box& box = t.box;
    for (Index a = box.lo[0]; a < box.hi[0]; ++a)
        for (Index b = box.lo[1]; b < box.hi[1]; ++b)
            for (Index c = box.lo[2]; c < box.hi[2]; ++c)
                for (Index d = box.lo[3]; d < box.hi[3]; ++d)
                    err = std::max(err, std::abs(t.at(a, b, c, d) - g.at(a, b, c, d)));
    double all = 0;
    MPI_Allreduce(&err, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    double scale = g.max_abs();
    return scale == 0 ? all : all / scale;
}

// All the ways to lay p ranks out over (n, co, ci, h, w) that the tests use: each single axis,
// pairs where p = 4, and fewer processes than ranks (replicas).
inline std::vector<GridShape> grids(int p) {
    std::vector<GridShape> out{{p, 1, 1, 1, 1}, {1, p, 1, 1, 1}, {1, 1, p, 1, 1}, {1, 1, 1, p, 1}, {1, 1, 1, 1, p}};
    if (p == 4) {
        out.push_back({1, 1, 1, 2, 2});
        out.push_back({2, 2, 1, 1, 1});
        out.push_back({1, 2, 1, 2, 1});
        out.push_back({2, 1, 2, 1, 1});
        out.push_back({2, 1, 1, 1, 1});  // two replicas of a batch split
    }
    if (p == 2 || p == 3) out.push_back({1, 1, 1, 1, 1});  // every rank a replica
    return out;
}

inline std::string name_of(const GridShape& g) {
    return "n" + std::to_string(g.n) + " co" + std::to_string(g.co) + " ci" + std::to_string(g.ci) + " h" +
           std::to_string(g.h) + " w" + std::to_string(g.w);
}

}  // namespace layer_reference
