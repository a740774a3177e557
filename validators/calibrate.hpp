// `dnnplan calibrate`: micro-benchmarks on the ranks of an MPI run (ping-pong over message sizes,
// all-reduce, OpenBLAS GEMM, the validator's own convolution, memory copy) and the fit of the
// cluster model's constants to them, written as a cluster spec the planner loads
// (clusters/README.md), every number with its measurement as the source.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "common/diagnostics.hpp"
#include "networks/network.hpp"

namespace dnnplan::validators {

struct CalibrationOptions {
    bool quick = false;  // fewer sizes and repetitions (tests)
    // Networks whose sequential training step (forward + backward, batch `batch`) measures the
    // achievable FLOP/s of DL kernels: convolutions, GEMMs and the elementwise layers between them.
    std::vector<const networks::Network*> networks;
    std::int64_t batch = 8;
};

struct SizePoint {
    double bytes = 0;
    double seconds = 0;  // the best chunk's time per repetition: one-way (ping-pong) or whole collective
    double spread = 0;   // (max - min) / median over the chunks: how disturbed the machine was
    double model_s = 0;  // what the fitted model says
};

struct Calibration {
    int ranks = 1;
    std::vector<SizePoint> point_to_point, all_reduce;
    double latency_s = 0, bandwidth_Bps = 0;
    double latency_fit_max_bytes = 0, bandwidth_fit_min_bytes = 0, bandwidth_fit_max_bytes = 0;
    double fit_residual = 0;  // RMS relative error of latency + bytes / bandwidth over the bandwidth-fit sizes
    double gemm_flops = 0, conv_flops = 0, memory_bandwidth_Bps = 0;
    std::string gemm_note, conv_note;
    double memory_bytes = 0;
    std::string cpu;
};

// Collective over `comm`; every rank gets the result.
Calibration calibrate(MPI_Comm comm, const CalibrationOptions& options);

// The cluster spec (format of clusters/*.json) and the full measurement report.
Json cluster_spec(const Calibration& c, const std::string& name);
Json calibration_report(const Calibration& c);
std::string calibration_text(const Calibration& c);

}  // namespace dnnplan::validators
