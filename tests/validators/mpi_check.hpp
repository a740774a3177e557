// A minimal test harness for programs run under mpirun: every rank checks, failures are counted
// over all ranks and rank 0 reports them; the exit status is non-zero when any rank failed.
// (Catch2 would run its reporter once per rank and cannot combine ranks' results.)
#pragma once

#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace mpi_check {

struct Suite {
    int failures = 0;
    int checks = 0;
    int rank = 0;
    void check(bool ok, const std::string& what) {
        ++checks;
        if (!ok) {
            ++failures;
            std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
        }
    }
    // Runs a named case; any rank's failure fails it for all (reported once by rank 0).
    void run(const std::string& name, const std::function<void()>& body) {
        int before = failures;
        body();
        int mine = failures - before, total = 0;
        MPI_Allreduce(&mine, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0) std::printf("%s %s\n", total == 0 ? "ok  " : "FAIL", name.c_str());
    }
    int finish() {
        int total = 0, all_checks = 0;
        MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(&checks, &all_checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0) std::printf("%d checks on all ranks, %d failed\n", all_checks, total);
        return total == 0 ? 0 : 1;
    }
};

// The whole `main` of an MPI test program: MPI started, `body(suite, P)` run on every rank, the
// failures of all ranks counted, MPI finalised; the status is non-zero when any rank failed.
template <class Body>
int run_suite(int argc, char** argv, Body body) {
    MPI_Init(&argc, &argv);
    Suite suite;
    MPI_Comm_rank(MPI_COMM_WORLD, &suite.rank);
    int p = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &p);
    body(suite, p);
    int status = suite.finish();
    MPI_Finalize();
    return status;
}

// Deterministic per-rank random numbers in [-1, 1).
inline std::vector<double> random_vector(std::size_t n, unsigned seed) {
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    std::vector<double> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

inline double dot_all(const std::vector<double>& a, const std::vector<double>& b) {
    double local = 0, total = 0;
    for (std::size_t i = 0; i < a.size(); ++i) local += a[i] * b[i];
    MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return total;
}
inline double norm_all(const std::vector<double>& a) { return std::sqrt(dot_all(a, a)); }

// The adjoint test's relative mismatch |<Fx,y> - <x,F*y>| / max(|Fx||y|, |x||F*y|) over all ranks.
inline double adjoint_mismatch(const std::vector<double>& x, const std::vector<double>& Fx,
                               const std::vector<double>& y, const std::vector<double>& Fty) {
    double lhs = dot_all(Fx, y), rhs = dot_all(x, Fty);
    double scale = std::max(norm_all(Fx) * norm_all(y), norm_all(x) * norm_all(Fty));
    return scale == 0 ? 0 : std::abs(lhs - rhs) / scale;
}

}  // namespace mpi_check
