// `dnnplan calibrate`: micro-benchmarks on the ranks of an MPI run (ping-pong over message sizes,
// all-reduce, OpenBLAS GEMM, the validator's own convolution, memory copy) and the fit of the
// cluster model's constants to them, written as a cluster spec the planner loads
// (clusters/README.md), every number with its measurement as the source.
#pragma once

#include <mpi.h>

#include <map>
#include <algorithm>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
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
    // Contiguous runs per message that the primitive packs and unpacks (halo exchanges,
    // repartitions: planner::halo_pack_seconds); 0 for a call on its buffer as it is (all-reduce).
    double runs = 0;
};

// One layer of a calibration network's sequential training step: its forward and backward as the
// validator runs them (every event the plan runner times for the layer, fwd_compute and
// bwd_compute), and what the cost model predicts for them on the written spec.
struct LayerPoint {
    std::string network, layer;
    networks::LayerKind kind = networks::LayerKind::input;
    int index = 0;
    double fwd_s = 0, bwd_s = 0;              // the fastest chunk's mean per step
    double model_fwd_s = 0, model_bwd_s = 0;  // planner::layer_compute_time on the written device
    std::int64_t batch = 0;                   // samples of the measured step (0: Calibration::batch)
};

// One network's sequential training step at one batch: the seconds per step outside every timed
// operation (the median chunk at the calibration's speed, the ranks' mean), what
// CpuKernel::framework is fitted to.
struct UntimedPoint {
    std::string network;
    std::int64_t batch = 0;
    double untimed_s = 0;
    double model_s = 0;  // the fitted framework cost of the step (fit_framework_overhead)
};

// One of the validator's kernels as fitted: its cost, the points it was fitted to and the RMS
// relative error of the model over them.
struct KernelFit {
    clusters::KernelCost cost;
    int points = 0;
    double rms_relative_residual = 0;
};

// How far a non-blocking all-reduce gets per MPI_Test call while its rank computes: started
// (MPI_Iallreduce), then `calls` times busy compute as long as the all-reduce alone takes
// (`alone_s`, MPI_Iallreduce + MPI_Wait) followed by one MPI_Test (the runner tests its outstanding
// all-reduces once per layer's backward), compute once more, then MPI_Wait: `wait_s` is what is
// left. left() = wait / alone within [0, 1], which planner::SyncProgress::left_after_calls models.
struct ProgressPoint {
    double bytes = 0;
    int calls = 0;
    double alone_s = 0, wait_s = 0;
    double paid_s = 0;  // the start, the test calls and the wait: what the process spent on it
    double left() const { return alone_s > 0 ? std::clamp(wait_s / alone_s, 0.0, 1.0) : 0.0; }
    double paid() const { return alone_s > 0 ? std::clamp(paid_s / alone_s, 0.0, 1.0) : 0.0; }
};
// The link's nonblocking_test_calls: the number N of calls minimising the squared error of
// SyncProgress::left_after_calls(calls, N) against the points' left() (N from 1 to 64 in steps of
// 1/20), and the RMS of that error. {0, 0} without points.
struct TestCallsFit {
    double test_calls = 0, rms_residual = 0;
};
TestCallsFit fit_test_calls(const std::vector<ProgressPoint>& points);
// The link's nonblocking_call_share: the share s in [0, 1] minimising the squared error of
// SyncProgress::paid_share(left_after_calls(calls, test_calls), s) against the points' paid()
// (s in steps of 1/200), and the RMS of that error. {0, 0} without points.
struct CallShareFit {
    double call_share = 0, rms_residual = 0;
};
CallShareFit fit_call_share(const std::vector<ProgressPoint>& points, double test_calls);

struct Calibration {
    int ranks = 1;
    std::vector<SizePoint> point_to_point, all_reduce;
    std::vector<PrimitivePoint> primitives;
    // The link written into the spec: the fit of the cost model's formulas to the primitives'
    // times (what alpha and beta stand for in a run: per-call costs, packing, waiting for peers).
    double latency_s = 0, bandwidth_Bps = 0;
    double primitive_fit_residual = 0;  // RMS relative error of the model over the primitive points
    // The link's nonblocking_test_calls fitted to `progress_points` (0 when not measured).
    std::vector<ProgressPoint> progress_points;
    TestCallsFit progress_fit;
    CallShareFit call_share_fit;
    // The raw ping-pong fit, reported beside it.
    double pingpong_latency_s = 0, pingpong_bandwidth_Bps = 0;
    double latency_fit_max_bytes = 0, bandwidth_fit_min_bytes = 0, bandwidth_fit_max_bytes = 0;
    double fit_residual = 0;  // RMS relative error of latency + bytes / bandwidth over the bandwidth-fit sizes
    // The link's point-to-point message cost (clusters::Link::message_bandwidth_Bps; fit_message_link).
    clusters::LinkCost message;
    double message_fit_residual = 0;
    int message_fit_points = 0;
    double gemm_flops = 0, conv_flops = 0, memory_bandwidth_Bps = 0;
    std::string gemm_note, conv_note;
    std::vector<LayerPoint> layers;  // per layer of the calibration networks' training steps
    std::vector<UntimedPoint> untimed;  // per network and batch of those steps
    // Seconds per contiguous row of the padding/halo copy, forward (copy) and backward (the
    // adjoint's add), measured apart (measure_copy_rows in calibrate.cpp); the lowering kernels'
    // per_call_s. 0: not measured (the fit then leaves the rows free of cost).
    double copy_row_s = 0, copy_row_add_s = 0;
    // The compute model's constants fitted to `layers` (fit_compute_to_layers); 0 when no network
    // was measured (the spec then gives the sgemm rate and the copy rate).
    double gemm_fraction = 0;             // device.achievable_fraction: GEMM math rate / sgemm peak
    double elementwise_bandwidth_Bps = 0;  // device.elementwise_bandwidth_Bps
    double gemm_operand_bandwidth_Bps = 0;  // device.gemm_operand_bandwidth_Bps
    // Per kernel of the validator (planner::cpu_layer_work's units): device.cpu_kernels.
    std::map<clusters::CpuKernel, KernelFit> cpu_kernels;
    double layer_fit_residual = 0;         // RMS relative error of the model over the fitted points
    int layer_fit_points = 0;
    double memory_bytes = 0;
    std::int64_t batch = 0;  // per-rank batch of the training-step measurement
    std::string cpu;
    std::string host;  // recorded as the cluster spec's measured_on
    // The speed reference's median seconds over the layer measurements (validators/speed_reference.hpp),
    // the speed the layer points are scaled to; 0 when no network was measured.
    double reference_kernel_s = 0;
};

// The cost model's time for one primitive point on `link` (one node: every group is intra-node),
// the packing of a halo exchange or a repartition at `halo_pack` (planner::halo_pack_seconds, as
// the cost model charges halos and redistributions) included.
double primitive_model(const PrimitivePoint& p, const clusters::LinkCost& link,
                       const clusters::KernelCost& halo_pack = {});
// Sets c.latency_s and c.bandwidth_Bps to the link minimising the squared log ratio of
// primitive_model to the measured c.primitives that pack nothing (the all-reduces; every point
// when all pack) (a log-spaced grid over 10 ns .. 1 ms and 0.1 .. 100 GB/s, refined once around
// its best point to ~1%); then the packing (c.cpu_kernels[halo_pack]: per byte and per
// contiguous run, non-negative, least squares of the relative error over the halo and
// repartition points on that link: a link fitted to the packed points too would charge their
// copies as a slower link to every collective, 2-4x too slow for the model plans' all-reduces);
// each point's model_s and c.primitive_fit_residual (RMS relative error over all points).
void fit_link_to_primitives(Calibration& c);

// The byte range of the ping-pong points fit_message_link uses: from the shared-memory transport's
// switch away from eager copies (Open MPI's btl_vader_eager_limit, 4 KiB by default) to the
// largest point under 16 MiB; the pipeline boundaries and graph-partition cut tensors of the
// validated plans are 1.5 KiB .. 2 MiB.
inline constexpr double kMessageFitMinBytes = 4096, kMessageFitMaxBytes = 4 << 20;
// Sets c.message (latency and bandwidth both free) to minimise the squared relative error of
// clusters::point_to_point_seconds against the one-way ping-pong times of c.point_to_point in
// [kMessageFitMinBytes, kMessageFitMaxBytes]: linear least squares in (latency, 1 / bandwidth)
// with each point's row divided by its time (the normal equations of a 2 x 2 system). Unset (zero)
// with fewer than two points or a non-positive slope; a negative latency is refitted at zero.
void fit_message_link(Calibration& c);

// Per entry (a layer's forward or backward seconds), the median over `steps` (each the same
// length): the typical step the calibration fits, as `validate` reports a plan's median iteration.
std::vector<double> median_per_layer(const std::vector<std::vector<double>>& steps);

// The device of the spec cluster_spec(c) writes, with the compute constants of `c`.
clusters::Device calibrated_device(const Calibration& c);
// Per-layer forward and backward compute seconds of `network`'s sequential training step at
// `batch` on one process of `device`, as the cost model computes them (CostModel::layer_costs on
// one process, so planner/compute.cpp's formulas): [2 i] forward, [2 i + 1] backward of layer i.
std::vector<double> model_layer_seconds(const networks::Network& network, std::int64_t batch,
                                        const clusters::Device& device);
// Fits the cost of each of the validator's kernels (planner/compute.cpp, cpu_layer_work: the
// cost model's own formulas, through model_layer_seconds) to the measured c.layers, each kernel
// on its own points so that many short layers do not outweigh a few long ones: a layer direction
// that runs one kernel fits that kernel's per-unit and per-call seconds (weighted least squares of
// the relative error; per-call only when both come out positive, as two batch sizes allow); the
// GEMM layers fit c.gemm_fraction and c.gemm_operand_bandwidth_Bps (log-spaced grids over 0.001 ..
// 1 and 1e8 .. 1e12 B/s, refined once) with the BLAS per-call cost and the lowering copies' per
// element costs solved at each grid point; a kernel met only beside fitted ones (the loss, after
// the last layer's GEMM) then on what they leave. With every point's model times and the RMS
// relative residual. `networks` are the ones the points name.
void fit_compute_to_layers(Calibration& c, const std::vector<const networks::Network*>& networks);

// Fits c.cpu_kernels[framework] (per byte of activation, per kernel: planner/compute.cpp
// with_dispatch_overhead) to c.untimed: the bytes and kernels of each step are the cost model's,
// probed through model_layer_seconds on the fitted device with a unit cost of each; non-negative
// least squares of the relative error (both terms need two batch sizes), each point's model_s.
// Run after fit_compute_to_layers: the layers' fit compares kernel time only.
void fit_framework_overhead(Calibration& c, const std::vector<const networks::Network*>& networks);

// Collective over `comm`; every rank gets the result.
Calibration calibrate(MPI_Comm comm, const CalibrationOptions& options);

// The cluster spec (format of clusters/*.json) and the full measurement report.
Json cluster_spec(const Calibration& c, const std::string& name);
Json calibration_report(const Calibration& c);
std::string calibration_text(const Calibration& c);

}  // namespace dnnplan::validators
