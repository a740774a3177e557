// `dnnplan calibrate`: micro-benchmarks on the ranks of an MPI run (ping-pong over message sizes,
// all-reduce, OpenBLAS GEMM, the validator's own convolution, memory copy) and the fit of the
// cluster model's constants to them, written as a cluster spec the planner loads
// (clusters/README.md), every number with its measurement as the source.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "clusters/collectives.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/comm.hpp"

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

// One timing of a validator primitive as the plan runner calls it, and what the cost model charges
// for it: the model's time is linear in (latency, 1 / bandwidth) once the algorithm is fixed.
struct PrimitivePoint {
    std::string what;  // for people: "halo exchange", "halo adjoint", "all-reduce", "repartition (all-to-all)", ...
    // How the cost model charges it (the plan's own CommCall pattern and collective).
    planner::CommPattern pattern = planner::CommPattern::collective;
    clusters::Collective collective = clusters::Collective::all_reduce;
    int group = 0;       // ranks taking part in one call
    double bytes = 0;    // the size the cost model is given (ghost slab, buffer, part), per rank
    double seconds = 0;  // median over the chunks, slowest rank per chunk, per call
    double model_s = 0;  // the cost model's time on the fitted link
};

struct Calibration {
    int ranks = 1;
    std::vector<SizePoint> point_to_point, all_reduce;
    std::vector<PrimitivePoint> primitives;
    // The link written into the spec: the fit of the cost model's formulas to the primitives'
    // times (what alpha and beta stand for in a run: per-call costs, packing, waiting for peers).
    double latency_s = 0, bandwidth_Bps = 0;
    double primitive_fit_residual = 0;  // RMS relative error of the model over the primitive points
    // The raw ping-pong fit, reported beside it.
    double pingpong_latency_s = 0, pingpong_bandwidth_Bps = 0;
    double latency_fit_max_bytes = 0, bandwidth_fit_min_bytes = 0, bandwidth_fit_max_bytes = 0;
    double fit_residual = 0;  // RMS relative error of latency + bytes / bandwidth over the bandwidth-fit sizes
    double gemm_flops = 0, conv_flops = 0, memory_bandwidth_Bps = 0;
    std::string gemm_note, conv_note;
    double memory_bytes = 0;
    std::int64_t batch = 0;  // per-rank batch of the training-step measurement
    std::string cpu;
    std::string host;  // recorded as the cluster spec's measured_on
};

// The cost model's time for one primitive point on `link` (one node: every group is intra-node).
double primitive_model(const PrimitivePoint& p, const clusters::LinkCost& link);
// Sets c.latency_s and c.bandwidth_Bps to the link minimising the squared log ratio of
// primitive_model to the measured c.primitives (a log-spaced grid over 10 ns .. 1 ms and
// 0.1 .. 100 GB/s, refined once around its best point to ~1%), and each point's model_s and
// c.primitive_fit_residual (RMS relative error).
void fit_link_to_primitives(Calibration& c);

// Collective over `comm`; every rank gets the result.
Calibration calibrate(MPI_Comm comm, const CalibrationOptions& options);

// The cluster spec (format of clusters/*.json) and the full measurement report.
Json cluster_spec(const Calibration& c, const std::string& name);
Json calibration_report(const Calibration& c);
std::string calibration_text(const Calibration& c);

}  // namespace dnnplan::validators
