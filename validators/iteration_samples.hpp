// The timings every runner gathers per timed iteration (validators/runner, pipeline_runner,
// graph_runner): the slowest rank's iteration and operations, summarised as medians and bests, and
// for pipeline and graph-partition runs each rank's own split of its iteration.
#pragma once

#include <mpi.h>

#include <array>
#include <vector>

#include "validators/layers.hpp"
#include "validators/runner.hpp"
#include "validators/speed_reference.hpp"

namespace dnnplan::validators {

// The median of `v` (the mean of the middle two for an even count; 0 when empty).
double median_of(std::vector<double> v);

// The slowest rank's seconds per timed iteration and per operation.
class IterationSamples {
public:
    // After a timed iteration that took `local_s` on this rank; collective over `comm`. Returns the
    // slowest rank's iteration. Then times the speed reference on every rank (untimed for the
    // iteration; the ranks' mean is kept).
    double add(double local_s, const OpTimer& timer, MPI_Comm comm);
    // r's iteration_samples, iteration_s / iteration_best_s and op_s / op_best_s (medians / minima),
    // reference_kernel_s (median).
    void summarise(RunResult& r) const;

private:
    SpeedReference reference_;
    std::vector<double> references_;
    std::vector<double> iterations_;
    std::vector<std::array<double, static_cast<int>(Op::count)>> ops_;
    std::vector<std::array<double, static_cast<int>(Op::count)>> waits_;
};

// One rank's split of a timed iteration (pipeline stages, graph-partition devices), in this order;
// idle is what is left of the slowest rank's iteration.
enum WorkerStat { kFwd, kBwd, kSend, kRecv, kLoss, kSync, kOptimizer, kIdle, kWorkerStats };
extern const char* const kWorkerStatNames[kWorkerStats];

class WorkerSamples {
public:
    // As IterationSamples::add, with the rank's own send and receive-wait seconds.
    void add(double local_s, const OpTimer& timer, double send_s, double recv_s, MPI_Comm comm);
    // Fills r as IterationSamples::summarise; returns on rank 0 every rank's medians (rank-major,
    // kWorkerStats per rank), empty elsewhere. Collective over `comm`.
    std::vector<double> summarise(RunResult& r, MPI_Comm comm) const;
    // The slowest of `ranks`' medians, per stat name.
    static Json slowest(const std::vector<double>& all_ranks, const std::vector<int>& ranks);

private:
    IterationSamples iterations_;
    std::vector<std::array<double, kWorkerStats>> stats_;
};

}  // namespace dnnplan::validators
