#include "validators/calibrate.hpp"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <array>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "clusters/collectives.hpp"
#include "planner/cost_model.hpp"
#include "planner/stage_evaluator.hpp"
#include "validators/iteration_samples.hpp"
#include "validators/kernels.hpp"
#include "validators/primitives.hpp"
#include "validators/runner.hpp"
#include "validators/speed_reference.hpp"

namespace dnnplan::validators {

namespace {
double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double spread(const std::vector<double>& v) {
    double m = median_of(v);
    return m > 0 ? (*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end())) / m : 0;
}
double max_over(MPI_Comm comm, double v) {
    double r = 0;
    MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm);
    return r;
}

// Times `body` (run `reps` times) in `chunks` chunks on every rank at once; per chunk the slowest
// rank's time per repetition.
template <class F>
std::vector<double> timed_chunks(MPI_Comm comm, int chunks, int reps, F&& body) {
    std::vector<double> out;
    for (int c = 0; c < chunks; ++c) {
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        for (int r = 0; r < reps; ++r) body();
        out.push_back(max_over(comm, (MPI_Wtime() - t0) / reps));
    }
    return out;
}

// Like timed_chunks, but per chunk the time from the first rank's start to the last rank's end:
// the throughput of all ranks computing at once. With more ranks than cores a rank runs whole
// chunks between being descheduled, so its own clock would show the full-core rate; the span over
// all ranks shows each rank's share of the cores, which is what a plan's rank gets. (MPI_Wtime of
// ranks on one machine reads the same clock.)
template <class F>
std::vector<double> shared_chunks(MPI_Comm comm, int chunks, int reps, F&& body) {
    std::vector<double> out;
    for (int c = 0; c < chunks; ++c) {
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        for (int r = 0; r < reps; ++r) body();
        double t1 = MPI_Wtime(), first = 0, last = 0;
        MPI_Allreduce(&t0, &first, 1, MPI_DOUBLE, MPI_MIN, comm);
        MPI_Allreduce(&t1, &last, 1, MPI_DOUBLE, MPI_MAX, comm);
        out.push_back((last - first) / reps);
    }
    return out;
}

// Repetitions so that one chunk takes about `target` seconds (agreed over the ranks).
template <class F>
int reps_for(MPI_Comm comm, double target, F&& body) {
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    body();
    double once = max_over(comm, MPI_Wtime() - t0);
    return static_cast<int>(std::clamp(target / std::max(once, 1e-7), 1.0, 2000.0));
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}
double total_memory_bytes() {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return double(pages) * double(size);
}
std::string num(double v, int digits = 3) {
    std::ostringstream os;
    // Whole numbers past `digits` digits stay plain ("5170", "150"): an exponent ("5.17e+03")
    // would overflow the text table's columns.
    if (std::abs(v) >= std::pow(10.0, digits) && std::abs(v) < 1e12)
        os << std::fixed << std::setprecision(0);
    else
        os << std::setprecision(digits);
    os << v;
    return os.str();
}
std::string human_size(double b) {
    if (b >= 1 << 20) return num(b / (1 << 20)) + " MiB";
    if (b >= 1 << 10) return num(b / (1 << 10)) + " KiB";
    return num(b) + " B";
}

// Busy arithmetic (no MPI call, little memory traffic) for `seconds`.
void compute_for(double seconds) {
    volatile double sink = 0;
    double acc = 0;
    for (const double t0 = MPI_Wtime(); MPI_Wtime() - t0 < seconds;)
        for (int i = 0; i < 256; ++i) acc += 0.5 * i;
    sink = acc;
    (void)sink;
}

// ProgressPoints at gradient sizes (a small CNN's layers: 64 KiB .. 1 MiB) on a rank pair, 0 to 8
// test calls each; the link's nonblocking_test_calls is fitted to them (fit_test_calls).
template <class MedianCall, class MedianMessageCall>
void measure_nonblocking_progress(MPI_Comm pair, Calibration& c, MedianCall&& median_call,
                                  MedianMessageCall&& median_message_call) {
    for (double bytes : {65536.0, 262144.0, 1048576.0}) {
        std::vector<float> buf(static_cast<std::size_t>(bytes / 4), 1.0f);
        const double alone_s = median_call([&] {
            MPI_Request r;
            MPI_Iallreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM, pair, &r);
            MPI_Wait(&r, MPI_STATUS_IGNORE);
        });
        for (int calls : {0, 1, 2, 3, 4, 5, 6, 8}) {
            ProgressPoint q;
            q.bytes = bytes, q.calls = calls, q.alone_s = alone_s;
            q.wait_s = median_message_call([&](double& waited) {
                MPI_Request r;
                MPI_Iallreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM, pair, &r);
                for (int k = 0; k < calls; ++k) {
                    compute_for(alone_s);
                    int done = 0;
                    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
                }
                compute_for(alone_s);
                const double t0 = MPI_Wtime();
                MPI_Wait(&r, MPI_STATUS_IGNORE);
                waited += MPI_Wtime() - t0;
            });
            // The same, timing every MPI call (the start and the tests too): the work the calls do.
            q.paid_s = median_message_call([&](double& paid) {
                MPI_Request r;
                double t0 = MPI_Wtime();
                MPI_Iallreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM, pair, &r);
                paid += MPI_Wtime() - t0;
                for (int k = 0; k < calls; ++k) {
                    compute_for(alone_s);
                    int done = 0;
                    t0 = MPI_Wtime();
                    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
                    paid += MPI_Wtime() - t0;
                }
                compute_for(alone_s);
                t0 = MPI_Wtime();
                MPI_Wait(&r, MPI_STATUS_IGNORE);
                paid += MPI_Wtime() - t0;
            });
            c.progress_points.push_back(q);
        }
    }
    c.progress_fit = fit_test_calls(c.progress_points);
    c.call_share_fit = fit_call_share(c.progress_points, c.progress_fit.test_calls);
}

// Times the validator's own primitives the way the plan runner calls them (fp32 tensors, packing,
// halo-extended blocks, Cartesian-style sub-communicators of pairs, all ranks at once), at sizes
// of the validated networks' layers, and fits the link's latency and bandwidth so that the cost
// model's formulas for these primitives match them: least squares of the log ratio over a
// log-spaced grid (the cheapest algorithm, hence the formula, changes with the link), refined once.
void measure_primitives(MPI_Comm comm, Calibration& c, int chunks, double target) {
    const int me = comm_rank(comm), p = c.ranks;
    auto median_call = [&](auto&& body) {
        int reps = reps_for(comm, target, body);
        return median_of(timed_chunks(comm, chunks, reps, body));
    };
    // Like median_call, for a body that adds the seconds of its communication steps to its
    // argument: per chunk the slowest rank's mean of those seconds.
    auto median_message_call = [&](auto&& body) {
        double ignored = 0;
        const int reps = reps_for(comm, target, [&] { body(ignored); });
        std::vector<double> out;
        for (int c = 0; c < chunks; ++c) {
            MPI_Barrier(comm);
            double messages = 0;
            for (int r = 0; r < reps; ++r) body(messages);
            out.push_back(max_over(comm, messages / reps));
        }
        return median_of(out);
    };
    // Pairs (0,1), (2,3), ...: the lines of a 2-way domain or model split; an odd last rank idles.
    MPI_Comm pair = MPI_COMM_NULL;
    MPI_Comm_split(comm, me / 2, me, &pair);
    const int pair_size = comm_size(pair), j = comm_rank(pair);
    const Index side = 16, width = 2;  // a 16 x 16 local block, the halo of a 5 x 5 kernel
    for (Index planes : {Index{1}, Index{8}, Index{64}, Index{512}}) {
        HaloLine line;
        line.dim = 3;
        if (pair_size == 2) {
            line.own_lo = {0, side};
            line.own_hi = {side, 2 * side};
            line.need_lo = {0, side - width};
            line.need_hi = {side + width, 2 * side};
        } else {
            line.own_lo = line.need_lo = {0};
            line.own_hi = line.need_hi = {side};
        }
        Box box;
        box.hi = {planes, 1, side, side * (j + 1)};
        box.lo[3] = side * j;
        Tensor<float> owned(box, 1.0f);
        Tensor<float> ext = halo_forward(owned, line, pair);
        const double ghost = double(planes) * side * width * sizeof(float);
        // The messages only (pack, post, wait, unpack): the copy of the owned cells into the
        // result is compute, as the runner times it (layers.cpp timed_halo_forward) and as the
        // sequential layers the compute fit reads pad their inputs.
        double fwd = median_message_call([&](double& messages) {
            double t0 = MPI_Wtime();
            HaloInFlight<float> f = halo_forward_post(owned, line, pair);
            messages += MPI_Wtime() - t0;
            halo_local(owned, f);
            t0 = MPI_Wtime();
            ext = halo_complete(f);
            messages += MPI_Wtime() - t0;
        });
        double adj = median_message_call([&](double& messages) {
            double t0 = MPI_Wtime();
            HaloInFlight<float> f = halo_adjoint_post(ext, box, line, pair);
            messages += MPI_Wtime() - t0;
            halo_local(ext, f);
            t0 = MPI_Wtime();
            owned = halo_complete(f);
            messages += MPI_Wtime() - t0;
        });
        // One run of `width` columns per plane and row (tensor.hpp for_each_run).
        const double runs = double(planes) * side;
        c.primitives.push_back({"halo exchange", planner::CommPattern::halo_exchange, clusters::Collective::all_reduce,
                                2, ghost, fwd, 0, runs});
        c.primitives.push_back({"halo adjoint", planner::CommPattern::halo_exchange, clusters::Collective::all_reduce,
                                2, ghost, adj, 0, runs});
    }
    for (double bytes : {64.0, 4096.0, 65536.0, 1048576.0}) {
        std::vector<float> buf(static_cast<std::size_t>(bytes / 4), 1.0f);
        c.primitives.push_back({"all-reduce", planner::CommPattern::collective, clusters::Collective::all_reduce, 2,
                                bytes, median_call([&] { all_sum_reduce(buf, pair); }), 0});
        if (p > 2)
            c.primitives.push_back({"all-reduce", planner::CommPattern::collective, clusters::Collective::all_reduce, p,
                                    bytes, median_call([&] { all_sum_reduce(buf, comm); }), 0});
    }
    if (pair_size == 2) measure_nonblocking_progress(pair, c, median_call, median_message_call);
    MPI_Comm_free(&pair);
    // Repartitions over all ranks of a [2P, planes, 16, 32] tensor: batch split -> width split (an
    // all-to-all of each rank's block) and width split -> replicated (an all-gather of the whole).
    for (Index planes : {Index{1}, Index{8}, Index{64}}) {
        Box whole;
        whole.hi = {2 * p, planes, side, 2 * side};
        std::vector<Box> by_batch(p, whole), by_width(p, whole), replicated(p, whole);
        for (int r = 0; r < p; ++r) {
            by_batch[r].lo[0] = block_begin(2 * p, p, r);
            by_batch[r].hi[0] = block_begin(2 * p, p, r + 1);
            by_width[r].lo[3] = block_begin(2 * side, p, r);
            by_width[r].hi[3] = block_begin(2 * side, p, r + 1);
        }
        const double total = double(whole.volume()) * sizeof(float);
        Repartition a2a(by_batch, by_width, comm), gather(by_width, replicated, comm);
        Tensor<float> x(by_batch[me], 1.0f), y = a2a.forward(x), z = gather.forward(y);
        // Both pack runs of one width block (2 side / p columns) per sample, plane and row
        // (planner::run_elements); a message is the call's bytes / p (the cost model's
        // redistribution: total / p^2 of the all-to-all's total / p, a whole block of the all-gather's).
        const double run_bytes = double(block_begin(2 * side, p, 1)) * sizeof(float);
        const double a2a_runs = total / (double(p) * p) / run_bytes, gather_runs = total / p / run_bytes;
        c.primitives.push_back({"repartition (all-to-all)", planner::CommPattern::collective,
                                clusters::Collective::all_to_all, p, total / p,
                                median_call([&] { y = a2a.forward(x); }), 0, a2a_runs});
        c.primitives.push_back({"repartition (all-gather)", planner::CommPattern::collective,
                                clusters::Collective::all_gather, p, total, median_call([&] { z = gather.forward(y); }),
                                0, gather_runs});
    }
    fit_link_to_primitives(c);
}
}  // namespace

double primitive_model(const PrimitivePoint& p, const clusters::LinkCost& link, const clusters::KernelCost& halo_pack) {
    const clusters::GroupPlacement group{p.group, p.group};
    clusters::Device packing;
    packing.cpu_kernels[clusters::CpuKernel::halo_pack] = halo_pack;
    if (p.pattern != planner::CommPattern::halo_exchange) {
        const double transfer = clusters::cheapest(p.collective, group, p.bytes, link, link).seconds;
        // A repartition packs a piece for each other rank (planner CostModel::redistribute).
        return p.runs > 0 ? transfer + planner::halo_pack_seconds(packing, p.bytes / p.group, p.group - 1, p.runs)
                          : transfer;
    }
    return clusters::halo_exchange_seconds(p.bytes, group, link, link) +
           planner::halo_pack_seconds(packing, p.bytes, clusters::halo_neighbours(p.group), std::max(1.0, p.runs));
}

TestCallsFit fit_test_calls(const std::vector<ProgressPoint>& points) {
    if (points.empty()) return {};
    auto squared_error = [&](double n) {
        double e = 0;
        for (const ProgressPoint& q : points) e += std::pow(planner::SyncProgress::left_after_calls(q.calls, n) - q.left(), 2);
        return e;
    };
    TestCallsFit best{1, std::numeric_limits<double>::infinity()};
    for (int step = 0; step <= 63 * 20; ++step) {  // N = 1, 1.05, ..., 64
        const double n = 1 + step / 20.0, e = squared_error(n);
        if (e < best.rms_residual) best = {n, e};
    }
    best.rms_residual = std::sqrt(best.rms_residual / double(points.size()));
    return best;
}

CallShareFit fit_call_share(const std::vector<ProgressPoint>& points, double test_calls) {
    if (points.empty()) return {};
    auto squared_error = [&](double share) {
        double e = 0;
        for (const ProgressPoint& q : points) {
            const double left = planner::SyncProgress::left_after_calls(q.calls, test_calls);
            e += std::pow(planner::SyncProgress::paid_share(left, share) - q.paid(), 2);
        }
        return e;
    };
    CallShareFit best{0, std::numeric_limits<double>::infinity()};
    for (int step = 0; step <= 200; ++step)
        if (const double e = squared_error(step / 200.0); e < best.rms_residual) best = {step / 200.0, e};
    best.rms_residual = std::sqrt(best.rms_residual / double(points.size()));
    return best;
}

namespace {
// Defined with the compute fit below; the message link's fit solves with it too.
std::vector<double> relative_least_squares(const std::vector<std::vector<double>>& a, const std::vector<double>& y,
                                           const std::vector<double>& t, std::size_t columns);

bool is_halo(const PrimitivePoint& p) { return p.pattern == planner::CommPattern::halo_exchange; }
// Halo exchanges and repartitions: their time includes copies of what they send and receive.
bool is_packed(const PrimitivePoint& p) { return is_halo(p) || p.runs > 0; }

// The packing's per-byte and per-run cost (both >= 0) minimising the squared relative error of
// primitive_model over the halo and repartition points on `link`: the residual (measured -
// transfer) on the copies' bytes and runs (planner::halo_pack_seconds: 2 x messages copies of the
// message's bytes and runs), relative to the measured time, by relative_least_squares (a negative
// part dropped and the other fitted alone).
clusters::KernelCost fit_halo_pack(const std::vector<PrimitivePoint>& points, const clusters::LinkCost& link) {
    std::vector<std::vector<double>> work;
    std::vector<double> residual, measured;
    for (const PrimitivePoint& q : points) {
        if (!is_packed(q)) continue;
        const bool halo = is_halo(q);
        const double messages = halo ? clusters::halo_neighbours(q.group) : q.group - 1.0;
        const double message = halo ? q.bytes : q.bytes / q.group;
        const double copies = 2.0 * messages;
        work.push_back({copies * message, copies * std::max(1.0, q.runs)});
        residual.push_back(q.seconds - primitive_model(q, link));
        measured.push_back(q.seconds);
    }
    const std::vector<double> x = relative_least_squares(work, residual, measured, 2);
    return {x[0], x[1]};
}
}  // namespace

void fit_message_link(Calibration& c) {
    // latency + bytes / bandwidth in relative error (relative_least_squares, the compute fit's
    // solver: a negative latency is dropped and the fit goes through the origin).
    std::vector<std::vector<double>> work;
    std::vector<double> seconds;
    for (const SizePoint& p : c.point_to_point)
        if (p.bytes >= kMessageFitMinBytes && p.bytes <= kMessageFitMaxBytes && p.seconds > 0) {
            work.push_back({1.0, p.bytes});
            seconds.push_back(p.seconds);
        }
    const int n = static_cast<int>(seconds.size());
    c.message = {};
    c.message_fit_points = n;
    if (n < 2) return;
    const std::vector<double> x = relative_least_squares(work, seconds, seconds, 2);
    if (x[1] <= 0) return;
    c.message = clusters::LinkCost{1 / x[1], x[0]};
    double sq = 0;
    for (std::size_t i = 0; i < seconds.size(); ++i)
        sq += std::pow(clusters::point_to_point_seconds(work[i][1], c.message) / seconds[i] - 1, 2);
    c.message_fit_residual = std::sqrt(sq / n);
}

void fit_link_to_primitives(Calibration& c) {
    if (c.primitives.empty()) return;
    const bool only_packed = std::all_of(c.primitives.begin(), c.primitives.end(), is_packed);
    auto cost = [&](double alpha, double bw) {
        double sum = 0;
        for (const PrimitivePoint& q : c.primitives)
            if (only_packed || !is_packed(q))
                sum += std::pow(std::log(primitive_model(q, clusters::LinkCost{bw, alpha}) / q.seconds), 2);
        return sum;
    };
    double best_alpha = 0, best_bw = 0, best_cost = std::numeric_limits<double>::infinity();
    auto search = [&](double a_lo, double a_hi, double b_lo, double b_hi, int steps) {
        for (int i = 0; i <= steps; ++i)
            for (int k = 0; k <= steps; ++k) {
                double alpha = a_lo * std::pow(a_hi / a_lo, double(i) / steps);
                double bw = b_lo * std::pow(b_hi / b_lo, double(k) / steps);
                double v = cost(alpha, bw);
                if (v < best_cost) best_cost = v, best_alpha = alpha, best_bw = bw;
            }
    };
    search(1e-8, 1e-3, 1e8, 1e11, 100);
    const double da = std::pow(1e5, 1.0 / 100), db = std::pow(1e3, 1.0 / 100);
    search(best_alpha / da, best_alpha * da, best_bw / db, best_bw * db, 20);
    c.latency_s = best_alpha;
    c.bandwidth_Bps = best_bw;
    const clusters::LinkCost link{best_bw, best_alpha};
    clusters::KernelCost pack;
    if (!only_packed && std::any_of(c.primitives.begin(), c.primitives.end(), is_packed)) {
        pack = fit_halo_pack(c.primitives, link);
        KernelFit& fit = c.cpu_kernels[clusters::CpuKernel::halo_pack];
        fit.cost = pack;
        fit.points = static_cast<int>(std::count_if(c.primitives.begin(), c.primitives.end(), is_packed));
    }
    double sq = 0, halo_sq = 0;
    for (PrimitivePoint& q : c.primitives) {
        q.model_s = primitive_model(q, link, pack);
        sq += std::pow((q.model_s - q.seconds) / q.seconds, 2);
        if (is_packed(q)) halo_sq += std::pow((q.model_s - q.seconds) / q.seconds, 2);
    }
    c.primitive_fit_residual = std::sqrt(sq / double(c.primitives.size()));
    if (auto fit = c.cpu_kernels.find(clusters::CpuKernel::halo_pack); fit != c.cpu_kernels.end())
        fit->second.rms_relative_residual = std::sqrt(halo_sq / std::max(1, fit->second.points));
}

namespace {
// Forward and backward compute seconds per layer of `network` ([2 i], [2 i + 1]) summed over
// `events`: the runner names each event "<layer name> <what>" (forward, bias, halo, relu, ...).
std::vector<double> layer_seconds(const networks::Network& network, const std::vector<TraceEvent>& events) {
    std::vector<double> out(2 * network.layers.size(), 0.0);
    for (const TraceEvent& e : events) {
        // The loss belongs to the last layer (the cost model adds it there: network_output).
        if (e.op == Op::loss) out[2 * (network.layers.size() - 1)] += e.end - e.start;
        if (e.op != Op::fwd_compute && e.op != Op::bwd_compute) continue;
        // The longest layer name that is a prefix followed by a space.
        for (std::size_t space = e.name.rfind(' '); space != std::string::npos && space > 0;
             space = e.name.rfind(' ', space - 1)) {
            const int index = network.find(e.name.substr(0, space));
            if (index < 0) continue;
            out[2 * static_cast<std::size_t>(index) + (e.op == Op::bwd_compute ? 1 : 0)] += e.end - e.start;
            break;
        }
    }
    return out;
}
}  // namespace

clusters::Device calibrated_device(const Calibration& c) {
    clusters::Device d;
    d.name = "one MPI rank on " + c.cpu;
    d.peak_flops[DType::fp32] = c.gemm_flops;
    d.achievable_fraction = c.gemm_fraction > 0 ? c.gemm_fraction : std::clamp(c.conv_flops / c.gemm_flops, 0.01, 1.0);
    d.memory_bytes = static_cast<std::int64_t>(c.memory_bytes);
    d.memory_bandwidth_Bps = c.memory_bandwidth_Bps;
    d.elementwise_bandwidth_Bps = c.elementwise_bandwidth_Bps;
    d.gemm_operand_bandwidth_Bps = c.gemm_operand_bandwidth_Bps;
    for (const auto& [kernel, fit] : c.cpu_kernels) d.cpu_kernels[kernel] = fit.cost;
    return d;
}

std::vector<double> model_layer_seconds(const networks::Network& network, std::int64_t batch,
                                        const clusters::Device& device) {
    clusters::Cluster one;
    one.name = "calibration";
    one.device = device;
    one.inter_node = clusters::Link{1e9, 1e-6};
    planner::PlannerOptions options;
    options.procs = 1;
    options.batch = batch;
    const planner::CostModel model(network, one, options);
    const planner::ScoredPlan plan = model.layer_costs(std::vector<planner::Layout>(network.layers.size()));
    std::vector<double> out(2 * network.layers.size(), 0.0);
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        out[2 * i] = plan.layers[i].fwd_compute_s;
        out[2 * i + 1] = plan.layers[i].bwd_compute_s;
    }
    return out;
}

namespace {
using clusters::CpuKernel;
constexpr int kKernels = static_cast<int>(CpuKernel::gemm_call) + 1;

// Minimises sum_i ((sum_j a[i][j] x_j - y[i]) / t[i])^2 over x >= 0: the normal equations, a
// column with no work or a negative coefficient dropped (the most negative first) and the rest
// solved again. Returns x (0 for dropped columns).
std::vector<double> relative_least_squares(const std::vector<std::vector<double>>& a, const std::vector<double>& y,
                                           const std::vector<double>& t, std::size_t columns) {
    std::vector<bool> on(columns, true);
    for (std::size_t j = 0; j < columns; ++j) {
        double sum = 0;
        for (const auto& row : a) sum += std::abs(row[j]);
        on[j] = sum > 0;
    }
    for (;;) {
        std::vector<std::size_t> cols;
        for (std::size_t j = 0; j < columns; ++j)
            if (on[j]) cols.push_back(j);
        const std::size_t n = cols.size();
        std::vector<double> x(columns, 0.0);
        if (n == 0) return x;
        std::vector<std::vector<double>> m(n, std::vector<double>(n + 1, 0.0));
        for (std::size_t i = 0; i < a.size(); ++i) {
            const double w = 1 / (t[i] * t[i]);
            for (std::size_t r = 0; r < n; ++r) {
                for (std::size_t q = 0; q < n; ++q) m[r][q] += w * a[i][cols[r]] * a[i][cols[q]];
                m[r][n] += w * a[i][cols[r]] * y[i];
            }
        }
        // Gaussian elimination with partial pivoting; a (near-)singular system drops its last column.
        bool singular = false;
        for (std::size_t k = 0; k < n && !singular; ++k) {
            std::size_t pivot = k;
            for (std::size_t r = k + 1; r < n; ++r)
                if (std::abs(m[r][k]) > std::abs(m[pivot][k])) pivot = r;
            std::swap(m[k], m[pivot]);
            if (std::abs(m[k][k]) <= 1e-12 * std::abs(m[0][0])) singular = true;
            for (std::size_t r = 0; r < n && !singular; ++r)
                if (r != k) {
                    const double f = m[r][k] / m[k][k];
                    for (std::size_t q = k; q <= n; ++q) m[r][q] -= f * m[k][q];
                }
        }
        if (singular) {
            on[cols.back()] = false;
            continue;
        }
        std::size_t worst = n;
        for (std::size_t r = 0; r < n; ++r) {
            x[cols[r]] = m[r][n] / m[r][r];
            if (x[cols[r]] < 0 && (worst == n || x[cols[r]] < x[cols[worst]])) worst = r;
        }
        if (worst == n) return x;
        on[cols[worst]] = false;
    }
}

// One measured layer direction and the work the cost model gives it, probed through
// model_layer_seconds (so planner/compute.cpp's formulas): each kernel's units and calls, and
// whether the layer runs BLAS calls (gemm_call's calls).
struct FitPoint {
    std::size_t layer = 0;  // into Calibration::layers
    int direction = 0;      // 0 forward, 1 backward
    double measured = 0;
    std::array<double, kKernels> units{}, calls{};
    bool uses(int k) const { return units[k] > 0 || calls[k] > 0; }
};

class KernelFitter {
public:
    KernelFitter(Calibration& c, const std::vector<const networks::Network*>& networks) : c_(c) {
        for (const networks::Network* net : networks) nets_[net->name] = net;
        for (const LayerPoint& p : c.layers) groups_[{p.network, batch_of(p)}] = {};
    }
    void run();

private:
    std::int64_t batch_of(const LayerPoint& p) const { return p.batch > 0 ? p.batch : c_.batch; }
    using Times = std::map<std::pair<std::string, std::int64_t>, std::vector<double>>;
    Times times_on(const clusters::Device& d) const {
        Times t;
        for (const auto& [key, unused] : groups_) t[key] = model_layer_seconds(*nets_.at(key.first), key.second, d);
        return t;
    }
    double at(const Times& t, const FitPoint& f) const {
        const LayerPoint& p = c_.layers[f.layer];
        return t.at({p.network, batch_of(p)})[2 * static_cast<std::size_t>(p.index) + f.direction];
    }
    // Every kernel at zero cost, GEMMs free: what is left is a layer without kernels (not fitted).
    clusters::Device probe_device() const {
        clusters::Device d = calibrated_device(c_);
        d.peak_flops[DType::fp32] = 1e30;
        d.achievable_fraction = 1;
        d.gemm_operand_bandwidth_Bps = 1e30;
        d.cpu_kernels.clear();
        for (int k = 0; k < kKernels; ++k) d.cpu_kernels[static_cast<CpuKernel>(k)] = {};
        return d;
    }
    void probe();
    void fit_alone(int k);
    void fit_gemm_layers();
    void fit_beside_fitted(int k);
    void record(int k, clusters::KernelCost cost, std::vector<std::size_t> points) {
        c_.cpu_kernels[static_cast<CpuKernel>(k)].cost = cost;
        used_[k] = std::move(points);
    }
    void finish();

    Calibration& c_;
    std::map<std::string, const networks::Network*> nets_;
    std::map<std::pair<std::string, std::int64_t>, int> groups_;
    std::vector<FitPoint> points_;
    std::map<int, std::vector<std::size_t>> used_;  // kernel -> the points it was fitted to
};

void KernelFitter::probe() {
    const clusters::Device zero = probe_device();
    const Times base = times_on(zero);
    std::vector<Times> per_unit(kKernels), per_call(kKernels);
    for (int k = 0; k < kKernels; ++k) {
        clusters::Device d = zero;
        d.cpu_kernels[static_cast<CpuKernel>(k)] = {1, 0};
        per_unit[k] = times_on(d);
        d.cpu_kernels[static_cast<CpuKernel>(k)] = {0, 1};
        per_call[k] = times_on(d);
    }
    for (std::size_t i = 0; i < c_.layers.size(); ++i)
        for (int dir = 0; dir < 2; ++dir) {
            FitPoint f;
            f.layer = i;
            f.direction = dir;
            f.measured = dir ? c_.layers[i].bwd_s : c_.layers[i].fwd_s;
            // Unmeasured, or a layer the kernels do not cover (costed by the rates, not fitted).
            if (f.measured <= 0 || at(base, f) > 1e-12) continue;
            for (int k = 0; k < kKernels; ++k) {
                f.units[k] = at(per_unit[k], f) - at(base, f);
                f.calls[k] = at(per_call[k], f) - at(base, f);
            }
            points_.push_back(f);
        }
}

// A kernel a layer direction runs alone: seconds = per_unit x units + per_call x calls.
void KernelFitter::fit_alone(int k) {
    std::vector<std::vector<double>> a;
    std::vector<double> y;
    std::vector<std::size_t> used;
    for (std::size_t i = 0; i < points_.size(); ++i) {
        const FitPoint& f = points_[i];
        bool alone = f.uses(k);
        for (int j = 0; j < kKernels && alone; ++j) alone = j == k || !f.uses(j);
        if (!alone) continue;
        a.push_back({f.units[k], f.calls[k]});
        y.push_back(f.measured);
        used.push_back(i);
    }
    if (used.empty()) return;
    const std::vector<double> x = relative_least_squares(a, y, y, 2);
    record(k, {x[0], x[1]}, used);
}
// The GEMM layers (linear, convolution): their GEMMs at peak x fraction or their operands at the
// operand rate (planner::gemm_time), plus per BLAS call, plus the lowering copies per element and
// per contiguous row of the padding copy (their calls, planner/compute.cpp; the row cost measured
// apart, measure_copy_rows). A grid over the two rates; at each point the three linear costs by
// least squares.
void KernelFitter::fit_gemm_layers() {
    const int call = static_cast<int>(CpuKernel::gemm_call), lf = static_cast<int>(CpuKernel::lowering_forward),
              lb = static_cast<int>(CpuKernel::lowering_backward);
    std::vector<std::size_t> used;
    for (std::size_t i = 0; i < points_.size(); ++i) {
        bool ok = points_[i].calls[call] > 0;
        for (int j = 0; j < kKernels && ok; ++j) ok = j == call || j == lf || j == lb || !points_[i].uses(j);
        if (ok) used.push_back(i);
    }
    if (used.empty()) return;
    clusters::Device d = probe_device();
    d.peak_flops[DType::fp32] = c_.gemm_flops;
    double best_cost = std::numeric_limits<double>::infinity(), best_f = 1, best_op = 1e12;
    std::vector<double> best_x(3, 0.0);
    auto try_at = [&](double fraction, double operand) {
        d.achievable_fraction = std::min(1.0, fraction);
        d.gemm_operand_bandwidth_Bps = operand;
        const Times gemms = times_on(d);  // every kernel at zero: the GEMMs alone
        std::vector<std::vector<double>> a;
        std::vector<double> y, t;
        for (std::size_t i : used) {
            const FitPoint& f = points_[i];
            a.push_back({f.calls[call], f.units[lf], f.units[lb]});
            // The copies' rows at their own measured cost (c.copy_row_s: fitted here they were
            // not identifiable where every layer's rows are the same share of its elements).
            y.push_back(f.measured - at(gemms, f) - f.calls[lf] * c_.copy_row_s - f.calls[lb] * c_.copy_row_add_s);
            t.push_back(f.measured);
        }
        const std::vector<double> x = relative_least_squares(a, y, t, 3);
        double cost = 0;
        for (std::size_t r = 0; r < a.size(); ++r) {
            double model = 0;
            for (std::size_t j = 0; j < x.size(); ++j) model += a[r][j] * x[j];
            cost += std::pow((model - y[r]) / t[r], 2);
        }
        if (cost < best_cost) best_cost = cost, best_f = d.achievable_fraction, best_op = operand, best_x = x;
    };
    const int steps = 30;
    for (int i = 0; i <= steps; ++i)
        for (int k = 0; k <= steps; ++k) try_at(1e-3 * std::pow(1e3, double(i) / steps), 1e8 * std::pow(1e4, double(k) / steps));
    const double df = std::pow(1e3, 1.0 / steps), dop = std::pow(1e4, 1.0 / steps);
    const double f0 = best_f, op0 = best_op;
    for (int i = 0; i <= 10; ++i)
        for (int k = 0; k <= 10; ++k)
            try_at(f0 / df * std::pow(df * df, i / 10.0), op0 / dop * std::pow(dop * dop, k / 10.0));
    c_.gemm_fraction = best_f;
    c_.gemm_operand_bandwidth_Bps = best_op;
    record(call, {0, best_x[0]}, used);
    record(lf, {best_x[1], c_.copy_row_s}, used);  // per element, per copied row
    record(lb, {best_x[2], c_.copy_row_add_s}, used);
}

// A kernel met only beside fitted ones (the loss, in the last layer's forward after its GEMM):
// fitted on what the fitted ones leave of those points.
void KernelFitter::fit_beside_fitted(int k) {
    clusters::Device d = calibrated_device(c_);
    for (int j = 0; j < kKernels; ++j) d.cpu_kernels.try_emplace(static_cast<CpuKernel>(j));
    d.cpu_kernels[static_cast<CpuKernel>(k)] = {};
    const Times known = times_on(d);
    std::vector<std::vector<double>> a;
    std::vector<double> y, t;
    std::vector<std::size_t> used;
    for (std::size_t i = 0; i < points_.size(); ++i) {
        const FitPoint& f = points_[i];
        bool ok = f.uses(k);
        for (int j = 0; j < kKernels && ok; ++j)
            ok = j == k || !f.uses(j) || c_.cpu_kernels.count(static_cast<CpuKernel>(j)) > 0;
        if (!ok) continue;
        a.push_back({f.units[k], f.calls[k]});
        y.push_back(f.measured - at(known, f));
        t.push_back(f.measured);
        used.push_back(i);
    }
    if (used.empty()) return;
    const std::vector<double> x = relative_least_squares(a, y, t, 2);
    record(k, {x[0], x[1]}, used);
}

// The model on the written device at every point; the residuals overall and per kernel.
void KernelFitter::finish() {
    const Times model = times_on(calibrated_device(c_));
    double sq = 0;
    int n = 0;
    for (LayerPoint& p : c_.layers) {
        const std::vector<double>& m = model.at({p.network, batch_of(p)});
        p.model_fwd_s = m[2 * static_cast<std::size_t>(p.index)];
        p.model_bwd_s = m[2 * static_cast<std::size_t>(p.index) + 1];
        const double pairs[2][2] = {{p.fwd_s, p.model_fwd_s}, {p.bwd_s, p.model_bwd_s}};
        for (const auto& pair : pairs)
            if (pair[0] > 0 && pair[1] > 0) {
                sq += std::pow((pair[1] - pair[0]) / pair[0], 2);
                ++n;
            }
    }
    c_.layer_fit_points = n;
    c_.layer_fit_residual = n ? std::sqrt(sq / n) : 0;
    for (auto& [k, points] : used_) {
        double ksq = 0;
        for (std::size_t i : points) ksq += std::pow((at(model, points_[i]) - points_[i].measured) / points_[i].measured, 2);
        KernelFit& fit = c_.cpu_kernels[static_cast<CpuKernel>(k)];
        fit.points = static_cast<int>(points.size());
        fit.rms_relative_residual = points.empty() ? 0 : std::sqrt(ksq / double(points.size()));
    }
}

void KernelFitter::run() {
    probe();
    for (int k = 0; k < kKernels; ++k) {
        const auto kernel = static_cast<CpuKernel>(k);
        if (kernel != CpuKernel::gemm_call && kernel != CpuKernel::lowering_forward &&
            kernel != CpuKernel::lowering_backward)
            fit_alone(k);
    }
    fit_gemm_layers();
    for (int k = 0; k < kKernels; ++k)
        if (!c_.cpu_kernels.count(static_cast<CpuKernel>(k))) fit_beside_fitted(k);
    finish();
}
}  // namespace

std::vector<double> median_per_layer(const std::vector<std::vector<double>>& steps) {
    std::vector<double> out(steps.empty() ? 0 : steps.front().size(), 0.0), column;
    for (std::size_t i = 0; i < out.size(); ++i) {
        column.clear();
        for (const auto& step : steps) column.push_back(step.at(i));
        out[i] = median_of(column);
    }
    return out;
}

void fit_compute_to_layers(Calibration& c, const std::vector<const networks::Network*>& networks) {
    for (int k = 0; k < kKernels; ++k) c.cpu_kernels.erase(static_cast<CpuKernel>(k));  // halo_pack is the link's
    // The framework's untimed work is fitted after the layers (fit_framework_overhead); the
    // layers' times are their kernels' alone.
    c.cpu_kernels.erase(CpuKernel::framework);
    c.elementwise_bandwidth_Bps = 0;  // the kernels' own costs replace the one elementwise rate
    if (c.layers.empty()) return;
    KernelFitter(c, networks).run();
}

void fit_framework_overhead(Calibration& c, const std::vector<const networks::Network*>& networks) {
    c.cpu_kernels.erase(CpuKernel::framework);
    if (c.untimed.empty()) return;
    std::map<std::string, const networks::Network*> by_name;
    for (const networks::Network* net : networks) by_name[net->name] = net;
    // The cost model's bytes and kernels of each step: its compute with a unit cost of one term
    // minus its compute without the term.
    const clusters::Device fitted = calibrated_device(c);
    auto step_seconds = [&](const UntimedPoint& p, const clusters::Device& d) {
        double sum = 0;
        for (double v : model_layer_seconds(*by_name.at(p.network), p.batch, d)) sum += v;
        return sum;
    };
    auto with_framework = [&](clusters::KernelCost cost) {
        clusters::Device d = fitted;
        d.cpu_kernels[CpuKernel::framework] = cost;
        return d;
    };
    const clusters::Device per_byte = with_framework({1, 0}), per_kernel = with_framework({0, 1});
    std::vector<std::vector<double>> rows;
    std::vector<double> y;
    std::vector<UntimedPoint*> points;
    for (UntimedPoint& p : c.untimed) {
        if (p.untimed_s <= 0) continue;  // nothing to fit a relative error to
        points.push_back(&p);
        const double base = step_seconds(p, fitted);
        rows.push_back({step_seconds(p, per_byte) - base, step_seconds(p, per_kernel) - base});
        y.push_back(p.untimed_s);
    }
    if (rows.empty()) return;
    const std::vector<double> x = relative_least_squares(rows, y, y, 2);
    KernelFit& fit = c.cpu_kernels[CpuKernel::framework];
    fit.cost = {x[0], x[1]};
    double sum_sq = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        points[i]->model_s = x[0] * rows[i][0] + x[1] * rows[i][1];
        sum_sq += std::pow((points[i]->model_s - y[i]) / y[i], 2);
    }
    fit.points = static_cast<int>(rows.size());
    fit.rms_relative_residual = std::sqrt(sum_sq / static_cast<double>(rows.size()));
}

namespace {
// Per layer of `net`'s sequential training step at `batch` (the validator's own kernels, each
// layer's median step, scaled to the rank's share of the cores): the points c.layers gets.
// Medians, not the fastest step: `validate` compares a plan's prediction with its median
// iteration, and on this shared machine a plan's fastest iteration was up to 1.3x faster than its
// median (the 14:15 accuracy run of 7 Dec 2026, validators/README.md), so a fit to the fastest
// steps predicted every plan too fast. Measured a chunk at a time so that the caller can
// interleave batch sizes (measure_network_layers).
// Every chunk is followed by the speed reference (validators/speed_reference.hpp) on every rank,
// and finish() scales each chunk to the speed of the reference's median over all chunks of the
// calibration, which becomes the spec's measured_on.reference_kernel_s: the cores' speed changes
// within a calibration too (six gpt-pipe calibrations back to back measured one layer at 44-64 us).
class LayerMeasure {
public:
    LayerMeasure(MPI_Comm comm, const networks::Network& net, std::int64_t batch, double target,
                 SpeedReference& reference)
        : comm_(comm), net_(net), batch_(batch),
          seq_(net, std::vector<planner::Layout>(net.layers.size()), batch, MPI_COMM_SELF, false),
          reference_(reference) {
        reps_ = reps_for(comm, target * 5, [&] { seq_.step(timer_); });
        timer_.trace = true;
    }
    void chunk();
    // The ranks' mean speed-reference seconds after each chunk so far.
    const std::vector<double>& chunk_references() const { return chunk_reference_; }
    // Appends the layers' points, at the speed at which the reference takes `reference_s`, to
    // c.layers; returns the median chunk's forward and backward compute per step at that speed.
    double finish(Calibration& c, double reference_s);

private:
    MPI_Comm comm_;
    const networks::Network& net_;
    std::int64_t batch_;
    NetworkRunner<float> seq_;
    SpeedReference& reference_;
    OpTimer timer_;
    int reps_ = 1;
    std::vector<double> per_chunk_;
    std::vector<double> chunk_reference_;
    std::vector<std::vector<double>> steps_;  // per step: forward and backward seconds per layer
    std::vector<double> untimed_;  // per chunk: this rank's seconds per step outside every timed operation
};

void LayerMeasure::chunk() {
    // The span over all ranks (see shared_chunks) times the share of a step that is forward and
    // backward compute (the loss and the SGD update are not counted as FLOPs).
    MPI_Barrier(comm_);
    timer_.reset();
    double t0 = MPI_Wtime();
    std::vector<std::size_t> step_end;
    for (int r = 0; r < reps_; ++r) {
        seq_.step(timer_);
        step_end.push_back(timer_.events.size());
    }
    double t1 = MPI_Wtime(), first = 0, last = 0;
    double compute =
        timer_.seconds[static_cast<int>(Op::fwd_compute)] + timer_.seconds[static_cast<int>(Op::bwd_compute)];
    double share = std::clamp(compute / (t1 - t0), 0.0, 1.0), share_sum = 0;
    MPI_Allreduce(&t0, &first, 1, MPI_DOUBLE, MPI_MIN, comm_);
    MPI_Allreduce(&t1, &last, 1, MPI_DOUBLE, MPI_MAX, comm_);
    MPI_Allreduce(&share, &share_sum, 1, MPI_DOUBLE, MPI_SUM, comm_);
    per_chunk_.push_back((last - first) * share_sum / comm_size(comm_) / reps_);
    double timed = 0;
    for (double v : timer_.seconds) timed += v;
    untimed_.push_back(std::max(0.0, (t1 - t0) - timed) / reps_);
    chunk_reference_.push_back(reference_.time_ranks_mean(comm_));
    // Per layer and step: its events on this rank's clock.
    for (int r = 0; r < reps_; ++r) {
        const std::size_t from = r == 0 ? 0 : step_end[r - 1];
        steps_.push_back(layer_seconds(
            net_, std::vector<TraceEvent>(timer_.events.begin() + from, timer_.events.begin() + step_end[r])));
    }
    timer_.events.clear();
}

double LayerMeasure::finish(Calibration& c, double reference_s) {
    // Each chunk's steps (reps_ of them) and span at the reference speed.
    for (std::size_t k = 0; k < per_chunk_.size(); ++k) {
        const double speed = reference_s / chunk_reference_[k];
        per_chunk_[k] *= speed;
        untimed_[k] *= speed;
        for (int r = 0; r < reps_; ++r)
            for (double& v : steps_[k * reps_ + r]) v *= speed;
    }
    std::vector<double> typical_layers = median_per_layer(steps_);
    // Scaled to the rank's share of the cores: their sum is the median chunk's compute per step
    // (the span over all ranks, above; 1 when every rank has a core of its own and nothing
    // interrupts), then averaged over the ranks.
    double layer_sum = 0;
    for (double v : typical_layers) layer_sum += v;
    const double share_scale = layer_sum > 0 ? std::max(1.0, median_of(per_chunk_) / layer_sum) : 1.0;
    for (double& v : typical_layers) v *= share_scale / comm_size(comm_);
    MPI_Allreduce(MPI_IN_PLACE, typical_layers.data(), int(typical_layers.size()), MPI_DOUBLE, MPI_SUM, comm_);
    for (std::size_t i = 1; i < net_.layers.size(); ++i)
        c.layers.push_back({net_.name, net_.layers[i].name, net_.layers[i].kind, static_cast<int>(i),
                            typical_layers[2 * i], typical_layers[2 * i + 1], 0, 0, batch_});
    // The untimed time as the layers: the median chunk, at the rank's share of the cores, the
    // ranks' mean. (Tracing adds its event records to it, about 0.1 us per operation.)
    double untimed = median_of(untimed_) * share_scale / comm_size(comm_);
    MPI_Allreduce(MPI_IN_PLACE, &untimed, 1, MPI_DOUBLE, MPI_SUM, comm_);
    c.untimed.push_back({net_.name, batch_, untimed, 0});
    return median_of(per_chunk_);
}

// The padding/halo copy per contiguous row (validators/primitives.hpp halo_local: the extended block
// allocated and zeroed, the block copied into it one copy_region run per row; the adjoint adds the
// extended block's rows back into a fresh block): the same 16 x 8 x 8 x 8 elements as rows of 8 and
// as 32 x 8 x 8 x 4, rows of 4 (what a width split makes of a batch split's block), each into a
// block 2 columns wider. The time difference over the 1,024 extra rows; the 2,048 more zeroed
// cells of the narrower extended block are counted in it (as the layers' copies have them).
void measure_copy_rows(MPI_Comm comm, Calibration& c, int chunks, double target) {
    float sink = 0;
    for (bool add : {false, true}) {
        double seconds[2] = {0, 0};
        for (int g = 0; g < 2; ++g) {
            const Index b = Index{16} << g, w = Index{8} >> g;
            Tensor<float> x(Box{{0, 0, 0, 0}, {b, 8, 8, w}});
            for (std::size_t k = 0; k < x.data.size(); ++k) x.data[k] = float(k % 7);
            const Box ext{{0, 0, 0, -1}, {b, 8, 8, w + 1}};
            Tensor<float> e(ext);
            auto body = [&] {
                if (add) {
                    Tensor<float> owned(x.box);
                    copy_region(e, owned, x.box, true);
                    sink += owned.data[1];
                } else {
                    Tensor<float> extended(ext);
                    copy_region(x, extended, x.box, false);
                    sink += extended.data[1];
                }
            };
            const int reps = reps_for(comm, target, body);
            seconds[g] = median_of(timed_chunks(comm, chunks, reps, body));
        }
        (add ? c.copy_row_add_s : c.copy_row_s) = std::max(0.0, (seconds[1] - seconds[0]) / 1024.0);
    }
    if (sink < 0) std::abort();  // keeps the copies
}

// `net`'s layers at `batch` and, when it is at least 2, at a quarter of it: with two sizes per
// layer the fit tells a kernel's cost per call from its cost per unit of work (pipelines run
// micro-batches of a few samples). The two sizes' chunks alternate, so that the host's changing
// speed (this VM's CPU probe moved between 8.7 and 15 ms within minutes, validators/README.md)
// falls on both alike: measured one after the other, resnet-small's batch-16 points once came out
// 1.45x slower per unit than its batch-4 points, a cost growing with the batch that no per-unit
// and per-call cost can express, and the fit split the difference (batch plans predicted 25%
// fast). Returns the full batch's median compute per step.
// Returns the measures, to be finished at one reference speed (measure_layers).
std::vector<std::unique_ptr<LayerMeasure>> measure_network_layers(MPI_Comm comm, const networks::Network& net,
                                                                  std::int64_t batch, int chunks, double target,
                                                                  SpeedReference& reference) {
    std::vector<std::unique_ptr<LayerMeasure>> measures;
    measures.push_back(std::make_unique<LayerMeasure>(comm, net, batch, target, reference));
    if (batch >= 2)
        measures.push_back(
            std::make_unique<LayerMeasure>(comm, net, std::max<std::int64_t>(1, batch / 4), target, reference));
    for (int k = 0; k < chunks; ++k)
        for (auto& m : measures) m->chunk();
    return measures;
}

// Every network's layers (measure_network_layers), scaled to the speed of the speed reference's
// median over all their chunks (c.reference_kernel_s); per network the full batch's median compute
// per step at that speed.
std::vector<double> measure_layers(MPI_Comm comm, const std::vector<const networks::Network*>& networks,
                                   std::int64_t batch, int chunks, double target, Calibration& c) {
    SpeedReference reference;
    std::vector<std::vector<std::unique_ptr<LayerMeasure>>> per_network;
    std::vector<double> references;
    for (const networks::Network* net : networks) {
        per_network.push_back(measure_network_layers(comm, *net, batch, chunks, target, reference));
        for (const auto& m : per_network.back())
            references.insert(references.end(), m->chunk_references().begin(), m->chunk_references().end());
    }
    c.reference_kernel_s = median_of(references);
    std::vector<double> steps;
    for (auto& measures : per_network) {
        steps.push_back(measures.front()->finish(c, c.reference_kernel_s));
        for (std::size_t k = 1; k < measures.size(); ++k) measures[k]->finish(c, c.reference_kernel_s);
    }
    return steps;
}
}  // namespace

Calibration calibrate(MPI_Comm comm, const CalibrationOptions& options) {
    Calibration c;
    c.ranks = comm_size(comm);
    const int me = comm_rank(comm);
    // Many short chunks and their best: on a shared machine most chunks are interrupted by other
    // processes; the fastest chunk is what the hardware and MPI do when left alone.
    const int chunks = options.quick ? 5 : 15;
    const double target = options.quick ? 0.001 : 0.002;
    c.cpu = cpu_model();
    c.host = clusters::local_host_name();
    if (c.host.empty()) c.host = "unknown host";
    c.memory_bytes = total_memory_bytes() / c.ranks;
    c.batch = options.batch;

    // Ping-pong between rank pairs (0,1), (2,3), ... all at once, as a plan's ranks all communicate.
    std::vector<double> sizes = {8, 64, 512, 4096, 32768, 131072, 524288, 1 << 20, 4 << 20, 16 << 20};
    if (options.quick) sizes = {8, 512, 32768, 131072, 1 << 20};
    const int peer = (me ^ 1) < c.ranks ? (me ^ 1) : -1;
    if (c.ranks >= 2) {
        for (double bytes : sizes) {
            std::vector<char> buf(static_cast<std::size_t>(bytes));
            auto pingpong = [&] {
                if (peer < 0) return;
                if (me < peer) {
                    MPI_Send(buf.data(), int(bytes), MPI_CHAR, peer, 1, comm);
                    MPI_Recv(buf.data(), int(bytes), MPI_CHAR, peer, 1, comm, MPI_STATUS_IGNORE);
                } else {
                    MPI_Recv(buf.data(), int(bytes), MPI_CHAR, peer, 1, comm, MPI_STATUS_IGNORE);
                    MPI_Send(buf.data(), int(bytes), MPI_CHAR, peer, 1, comm);
                }
            };
            int reps = reps_for(comm, target, pingpong);
            std::vector<double> t = timed_chunks(comm, chunks, reps, pingpong);
            for (double& x : t) x /= 2;  // one way
            c.point_to_point.push_back({bytes, best(t), spread(t), 0});
        }
        // Alpha: the median one-way time of the small messages; beta: least squares of the relative
        // error of alpha + n / beta over 4 KiB .. 4 MiB, the range of the validated plans' messages.
        c.latency_fit_max_bytes = 512;
        c.bandwidth_fit_min_bytes = 4096;
        c.bandwidth_fit_max_bytes = 4 << 20;
        std::vector<double> small;
        for (const SizePoint& p : c.point_to_point)
            if (p.bytes <= c.latency_fit_max_bytes) small.push_back(p.seconds);
        c.latency_s = median_of(small);
        double sxy = 0, sxx = 0;
        for (const SizePoint& p : c.point_to_point)
            if (p.bytes >= c.bandwidth_fit_min_bytes && p.bytes <= c.bandwidth_fit_max_bytes) {
                double x = p.bytes / p.seconds, y = 1 - c.latency_s / p.seconds;
                sxy += x * y;
                sxx += x * x;
            }
        c.bandwidth_Bps = sxy > 0 ? sxx / sxy : 1e9;
        double sq = 0;
        int n = 0;
        for (SizePoint& p : c.point_to_point) {
            p.model_s = c.latency_s + p.bytes / c.bandwidth_Bps;
            if (p.bytes >= c.bandwidth_fit_min_bytes && p.bytes <= c.bandwidth_fit_max_bytes) {
                sq += std::pow((p.model_s - p.seconds) / p.seconds, 2);
                ++n;
            }
        }
        c.fit_residual = n ? std::sqrt(sq / n) : 0;
        c.pingpong_latency_s = c.latency_s;
        c.pingpong_bandwidth_Bps = c.bandwidth_Bps;

        // All-reduce over every rank against the planner's cheapest algorithm on the fitted link.
        clusters::LinkCost link{c.bandwidth_Bps, c.latency_s};
        for (double bytes :
             options.quick ? std::vector<double>{8, 65536} : std::vector<double>{8, 4096, 65536, 1 << 20}) {
            std::vector<float> buf(static_cast<std::size_t>(bytes / 4) + 1, 1.0f);
            auto reduce = [&] { MPI_Allreduce(MPI_IN_PLACE, buf.data(), int(bytes / 4), MPI_FLOAT, MPI_SUM, comm); };
            int reps = reps_for(comm, target, reduce);
            std::vector<double> t = timed_chunks(comm, chunks, reps, reduce);
            double model = clusters::cheapest(clusters::Collective::all_reduce,
                                              clusters::GroupPlacement{c.ranks, c.ranks}, bytes, link, link)
                               .seconds;
            c.all_reduce.push_back({bytes, best(t), spread(t), model});
        }
    }

    if (c.ranks >= 2) measure_primitives(comm, c, chunks, target);
    fit_message_link(c);

    // OpenBLAS sgemm, every rank at once (what each rank gets while the others compute too).
    double best_gemm = 0;
    for (int n : options.quick ? std::vector<int>{128} : std::vector<int>{128, 256, 512}) {
        std::vector<float> a(std::size_t(n) * n, 0.5f), b(a), d(a);
        auto mm = [&] { gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, d.data(), n); };
        int reps = reps_for(comm, target * 5, mm);
        double t = best(shared_chunks(comm, chunks, reps, mm));
        double rate = 2.0 * n * n * n / t;
        if (rate > best_gemm) {
            best_gemm = rate;
            c.gemm_note = "sgemm " + std::to_string(n) + "^3";
        }
    }
    c.gemm_flops = best_gemm;

    // Achievable DL-kernel rate: the validator's own sequential training step (every layer's
    // forward and backward, as the plan runner executes them) of each given network, FLOPs as the
    // cost model counts them; the geometric mean over the networks.
    double log_sum = 0;
    int counted = 0;
    std::string notes;
    const std::vector<double> steps = measure_layers(comm, options.networks, options.batch, chunks, target, c);
    for (std::size_t n = 0; n < options.networks.size(); ++n) {
        const networks::Network* net = options.networks[n];
        networks::NetworkTotals tot = networks::totals(*net, options.batch);
        const double flops = double(tot.fwd_flops + tot.bwd_input_flops + tot.bwd_weight_flops);
        const double rate = flops / steps[n];
        log_sum += std::log(rate);
        ++counted;
        notes += std::string(notes.empty() ? "" : ", ") + net->name + " batch " + std::to_string(options.batch) + " " +
                 num(rate / 1e9) + " GFLOP/s";
    }
    if (counted == 0) {
        notes = "no network given: the sgemm rate";
        log_sum = std::log(best_gemm);
        counted = 1;
    }
    c.conv_flops = std::exp(log_sum / counted);
    c.conv_note = notes;

    // Memory bandwidth: a 32 MiB copy per rank, all ranks at once (read + write bytes).
    {
        std::size_t n = (options.quick ? 4u : 32u) << 18;  // floats
        std::vector<float> a(n, 1.0f), b(n, 0.0f);
        auto copy = [&] {
            std::copy(a.begin(), a.end(), b.begin());
            a[0] += b[1];
        };
        int reps = reps_for(comm, target * 5, copy);
        // The median chunk, as the training step's (LayerMeasure): the optimizer step streams
        // at this rate inside the plans' median iterations.
        double t = median_of(shared_chunks(comm, chunks, reps, copy));
        c.memory_bandwidth_Bps = 2.0 * double(n) * 4 / t;
    }
    // The copies' rows at the layer points' speed (LayerMeasure): the speed reference around them.
    {
        SpeedReference reference;
        const double before = reference.time_ranks_mean(comm);
        measure_copy_rows(comm, c, chunks, target);
        const double around = 0.5 * (before + reference.time_ranks_mean(comm));
        if (c.reference_kernel_s > 0 && around > 0) {
            c.copy_row_s *= c.reference_kernel_s / around;
            c.copy_row_add_s *= c.reference_kernel_s / around;
        }
    }
    fit_compute_to_layers(c, options.networks);
    fit_framework_overhead(c, options.networks);
    return c;
}

Json cluster_spec(const Calibration& c, const std::string& name) {
    auto src = [](double v, const std::string& s) { return Json{{"value", v}, {"source", s}}; };
    const std::string run =
        "measured by dnnplan calibrate on " + std::to_string(c.ranks) + " MPI ranks of this machine";
    const clusters::Device fitted = calibrated_device(c);
    std::string networks_note;
    for (const LayerPoint& p : c.layers)
        if (networks_note.find(p.network) == std::string::npos)
            networks_note += (networks_note.empty() ? "" : ", ") + p.network;
    std::string batches = std::to_string(c.batch);
    for (const LayerPoint& p : c.layers)
        if (p.batch > 0 && batches.find(std::to_string(p.batch)) == std::string::npos)
            batches += " and " + std::to_string(p.batch);
    const std::string layer_fit =
        run + ": least-squares fit (relative error) of the cost model's per-kernel formulas (planner/compute.cpp "
              "cpu_layer_work: each kernel of the validator per unit of work and per call; GEMMs at peak x "
              "achievable_fraction or their operands at gemm_operand_bandwidth_Bps, whichever is slower, plus "
              "gemm_call per BLAS call) to the validator's own per-layer forward and backward times of the "
              "sequential training step (" +
        networks_note + ", batch " + batches + " per rank; " + std::to_string(c.layer_fit_points) +
        " points, RMS relative residual " + num(100 * c.layer_fit_residual, 2) + "%; per kernel in the report)";
    const std::string fraction_note =
        c.gemm_fraction > 0
            ? layer_fit + ": GEMM layers " + num(fitted.achievable_fraction * c.gemm_flops / 1e9) +
                  " GFLOP/s; the whole step's rate for comparison: " + c.conv_note
            : run + ": FLOPs (cost model's count) per second of the validator's sequential training step "
                    "(forward + backward of every layer) over the sgemm rate; " +
                  c.conv_note + "; geometric mean " + num(c.conv_flops / 1e9) + " GFLOP/s";
    Json device = {
        {"name", "one MPI rank on " + c.cpu},
        {"peak_flops",
         {{"fp32", src(c.gemm_flops, run + ": best OpenBLAS " + c.gemm_note +
                                         " rate per rank, all ranks computing at once (time from the first rank's "
                                         "start to the last rank's end)")}}},
        {"achievable_fraction", src(fitted.achievable_fraction, fraction_note)},
        {"memory_bytes",
         Json{{"value", static_cast<std::int64_t>(c.memory_bytes)},
              {"source", "this machine's physical memory (sysconf) / " + std::to_string(c.ranks) + " ranks"}}},
        {"memory_bandwidth_Bps",
         src(c.memory_bandwidth_Bps,
             run + ": std::copy of 32 MiB per rank, all ranks at once (first start to last end)")}};
    if (c.elementwise_bandwidth_Bps > 0) device["elementwise_bandwidth_Bps"] = src(c.elementwise_bandwidth_Bps, layer_fit);
    if (c.gemm_operand_bandwidth_Bps > 0) device["gemm_operand_bandwidth_Bps"] = src(c.gemm_operand_bandwidth_Bps, layer_fit);
    for (const auto& [kernel, fit] : c.cpu_kernels) {
        const std::string points = std::to_string(fit.points) + " points, RMS relative residual " +
                                   num(100 * fit.rms_relative_residual, 2) + "%";
        const std::string note =
            kernel == clusters::CpuKernel::framework
                ? run + ": least-squares fit (relative error) of seconds per activation byte and per kernel "
                        "(planner/compute.cpp with_dispatch_overhead) to the validator's sequential training "
                        "step's time outside every timed operation (" + networks_note + ", batch " + batches +
                        " per rank; " + points + ")"
                : layer_fit + "; this kernel: " + points;
        device["cpu_kernels"][clusters::to_string(kernel)] = {{"per_unit_s", src(fit.cost.per_unit_s, note)},
                                                               {"per_call_s", src(fit.cost.per_call_s, note)}};
    }
    std::string fit =
        run +
        ": least-squares fit (log ratio) of the cost model's formulas to the validator's own primitives as the "
        "plan runner calls them (the link: all-reduce on pairs and all ranks, which send their buffers as they "
        "are; beside it the packing of the halo exchange and its adjoint on rank pairs and of the repartition "
        "all-to-all and all-gather over all ranks, cpu_kernels.halo_pack per byte and per contiguous run; " +
        std::to_string(c.primitives.size()) + " points, 64 B .. 1 MiB, median of " +
        "chunks, slowest rank), RMS relative residual " + num(100 * c.primitive_fit_residual, 2) +
        "%; raw ping-pong for comparison: latency " + num(c.pingpong_latency_s * 1e6) + " us, bandwidth " +
        num(c.pingpong_bandwidth_Bps / 1e9) + " GB/s (" + human_size(c.bandwidth_fit_min_bytes) + " .. " +
        human_size(c.bandwidth_fit_max_bytes) + ", RMS relative residual " + num(100 * c.fit_residual, 2) + "%)";
    Json link = {{"bandwidth_Bps", src(c.bandwidth_Bps, fit)}, {"latency_s", src(c.latency_s, fit)}};
    if (c.message.bandwidth_Bps > 0) {
        const std::string message_fit =
            run + ": least squares (relative error) of latency + bytes / bandwidth (clusters::point_to_point_seconds) "
                  "over the one-way ping-pong times (best chunk) of " + human_size(kMessageFitMinBytes) + " .. " +
            human_size(kMessageFitMaxBytes) + ", latency and bandwidth both fitted (" +
            std::to_string(c.message_fit_points) + " points, RMS relative residual " +
            num(100 * c.message_fit_residual, 2) + "%): one MPI_Isend / MPI_Recv of a contiguous tensor, as a "
            "pipeline boundary or a graph partition's cut tensor";
        link["message_bandwidth_Bps"] = src(c.message.bandwidth_Bps, message_fit);
        link["message_latency_s"] = src(c.message.latency_s, message_fit);
    }
    if (!c.progress_points.empty()) {
        std::string sizes;
        for (const ProgressPoint& q : c.progress_points)
            if (q.calls == 0) sizes += (sizes.empty() ? "" : ", ") + human_size(q.bytes);
        link["nonblocking_test_calls"] =
            src(c.progress_fit.test_calls,
                run + ": an MPI_Iallreduce on a rank pair, 0 to 8 MPI_Test calls each after busy compute as long as "
                      "the all-reduce alone, then MPI_Wait; least squares of planner::SyncProgress::left_after_calls "
                      "against wait / alone over " + sizes + " (" + std::to_string(c.progress_points.size()) +
                      " points, RMS residual " + num(c.progress_fit.rms_residual, 2) + " of the all-reduce)");
        link["nonblocking_call_share"] =
            src(c.call_share_fit.call_share,
                run + ": the same all-reduces with the start, each MPI_Test and the wait timed (slowest rank); least "
                      "squares of planner::SyncProgress::paid_share against (start + tests + wait) / alone (" +
                      std::to_string(c.progress_points.size()) + " points, RMS residual " +
                      num(c.call_share_fit.rms_residual, 2) + " of the all-reduce)");
    }
    Json spec = {
        {"name", name},
        {"description", "This machine as " + std::to_string(c.ranks) +
                            " MPI ranks (Open MPI, shared memory), calibrated by dnnplan calibrate"},
        {"measured_on", c.reference_kernel_s > 0
                            ? Json{{"host", c.host}, {"ranks", c.ranks}, {"reference_kernel_s", c.reference_kernel_s}}
                            : Json{{"host", c.host}, {"ranks", c.ranks}}},
        {"nodes", 1},
        {"devices_per_node", Json{{"value", c.ranks}, {"source", "one device per MPI rank of the calibration run"}}},
        {"device", device}};
    if (c.ranks > 1) spec["intra_node"] = link;
    Json inter = link;
    if (c.ranks <= 1) {
        inter = {{"bandwidth_Bps", src(c.memory_bandwidth_Bps, "single rank: no network; the memory copy rate")},
                 {"latency_s", src(1e-6, "single rank: no network; a nominal 1 us")}};
    }
    inter["topology"] = "crossbar";
    spec["inter_node"] = inter;
    return spec;
}

namespace {
// Per layer kind: the fitted points and the RMS relative error of the model over them.
struct KindResidual {
    int points = 0;
    double sum_sq = 0;
    double rms() const { return points ? std::sqrt(sum_sq / points) : 0.0; }
};
std::map<std::string, KindResidual> residuals_by_kind(const Calibration& c) {
    std::map<std::string, KindResidual> out;
    for (const LayerPoint& p : c.layers) {
        const double pairs[2][2] = {{p.fwd_s, p.model_fwd_s}, {p.bwd_s, p.model_bwd_s}};
        for (const auto& pair : pairs)
            if (pair[0] > 0 && pair[1] > 0) {
                KindResidual& k = out[networks::to_string(p.kind)];
                ++k.points;
                k.sum_sq += std::pow((pair[1] - pair[0]) / pair[0], 2);
            }
    }
    return out;
}
}  // namespace

namespace {
Json kernels_json(const Calibration& c) {
    Json out = Json::object();
    for (const auto& [kernel, fit] : c.cpu_kernels)
        out[clusters::to_string(kernel)] = {{"per_unit_s", fit.cost.per_unit_s},
                                            {"per_call_s", fit.cost.per_call_s},
                                            {"points", fit.points},
                                            {"rms_relative_residual", fit.rms_relative_residual}};
    return out;
}
}  // namespace

Json calibration_report(const Calibration& c) {
    auto points = [](const std::vector<SizePoint>& v) {
        Json a = Json::array();
        for (const SizePoint& p : v)
            a.push_back({{"bytes", p.bytes},
                         {"seconds", p.seconds},
                         {"spread", p.spread},
                         {"model_s", p.model_s},
                         {"model_relative_error", p.seconds > 0 ? (p.model_s - p.seconds) / p.seconds : 0}});
        return a;
    };
    Json prims = Json::array();
    for (const PrimitivePoint& p : c.primitives)
        prims.push_back({{"what", p.what},
                         {"group", p.group},
                         {"bytes", p.bytes},
                         {"seconds", p.seconds},
                         {"model_s", p.model_s},
                         {"model_relative_error", (p.model_s - p.seconds) / p.seconds}});
    Json layers = Json::array();
    for (const LayerPoint& p : c.layers)
        layers.push_back({{"network", p.network},
                          {"layer", p.layer},
                          {"kind", networks::to_string(p.kind)},
                          {"forward_s", p.fwd_s},
                          {"backward_s", p.bwd_s},
                          {"model_forward_s", p.model_fwd_s},
                          {"model_backward_s", p.model_bwd_s},
                          {"batch", p.batch > 0 ? p.batch : c.batch}});
    Json untimed = Json::array();
    for (const UntimedPoint& p : c.untimed)
        untimed.push_back({{"network", p.network}, {"batch", p.batch}, {"seconds", p.untimed_s}, {"model_s", p.model_s}});
    Json kinds = Json::object();
    for (const auto& [kind, r] : residuals_by_kind(c))
        kinds[kind] = {{"points", r.points}, {"rms_relative_residual", r.rms()}};
    return {{"ranks", c.ranks},
            {"layers", layers},
            {"untimed_per_step", untimed},
            {"layer_fit",
             {{"achievable_fraction", c.gemm_fraction},
              {"gemm_flops_fitted", c.gemm_fraction * c.gemm_flops},
              {"elementwise_bandwidth_Bps", c.elementwise_bandwidth_Bps},
              {"gemm_operand_bandwidth_Bps", c.gemm_operand_bandwidth_Bps},
              {"points", c.layer_fit_points},
              {"rms_relative_residual", c.layer_fit_residual},
              {"by_kind", kinds},
              {"kernels", kernels_json(c)}}},
            {"batch_per_rank", c.batch},
            {"point_to_point", points(c.point_to_point)},
            {"all_reduce", points(c.all_reduce)},
            {"primitives", prims},
            {"nonblocking_test_calls", c.progress_fit.test_calls},
            {"nonblocking_call_share", c.call_share_fit.call_share},
            {"primitive_fit",
             {{"latency_s", c.latency_s},
              {"bandwidth_Bps", c.bandwidth_Bps},
              {"rms_relative_residual", c.primitive_fit_residual}}},
            {"fit",
             {{"latency_s", c.pingpong_latency_s},
              {"bandwidth_Bps", c.pingpong_bandwidth_Bps},
              {"latency_sizes_max_bytes", c.latency_fit_max_bytes},
              {"bandwidth_sizes_bytes", {c.bandwidth_fit_min_bytes, c.bandwidth_fit_max_bytes}},
              {"rms_relative_residual", c.fit_residual}}},
            {"message_fit",
             {{"latency_s", c.message.latency_s},
              {"bandwidth_Bps", c.message.bandwidth_Bps},
              {"sizes_bytes", {kMessageFitMinBytes, kMessageFitMaxBytes}},
              {"rms_relative_residual", c.message_fit_residual}}},
            {"gemm_flops", c.gemm_flops},
            {"conv_flops", c.conv_flops},
            {"memory_bandwidth_Bps", c.memory_bandwidth_Bps}};
}

std::string calibration_text(const Calibration& c) {
    std::ostringstream os;
    os << "calibration on " << c.ranks << " ranks (" << c.cpu << ")\n";
    if (!c.point_to_point.empty()) {
        os << "\nping-pong, one way:\n      size    measured      model   model err  spread\n";
        for (const SizePoint& p : c.point_to_point)
            os << std::setw(10) << human_size(p.bytes) << std::setw(10) << num(p.seconds * 1e6) << " us" << std::setw(8)
               << num(p.model_s * 1e6) << " us" << std::setw(9) << num(100 * (p.model_s - p.seconds) / p.seconds, 2)
               << "%" << std::setw(7) << num(100 * p.spread, 2) << "%\n";
        os << "ping-pong fit: latency " << num(c.pingpong_latency_s * 1e6)
           << " us (sizes <= " << human_size(c.latency_fit_max_bytes) << "), bandwidth "
           << num(c.pingpong_bandwidth_Bps / 1e9) << " GB/s (sizes " << human_size(c.bandwidth_fit_min_bytes) << " .. "
           << human_size(c.bandwidth_fit_max_bytes) << "), RMS relative residual " << num(100 * c.fit_residual, 2)
           << "%\n";
        if (c.message.bandwidth_Bps > 0)
            os << "point-to-point message fit (written as message_latency_s / message_bandwidth_Bps): latency "
               << num(c.message.latency_s * 1e6) << " us, bandwidth " << num(c.message.bandwidth_Bps / 1e9)
               << " GB/s (sizes " << human_size(kMessageFitMinBytes) << " .. " << human_size(kMessageFitMaxBytes)
               << ", both fitted), RMS relative residual " << num(100 * c.message_fit_residual, 2) << "%\n";
        os << "\nall-reduce over all ranks:\n";
        for (const SizePoint& p : c.all_reduce)
            os << std::setw(10) << human_size(p.bytes) << std::setw(10) << num(p.seconds * 1e6) << " us  model "
               << num(p.model_s * 1e6) << " us (" << num(100 * (p.model_s - p.seconds) / p.seconds, 2) << "%)\n";
    }
    if (!c.primitives.empty()) {
        os << "\nthe validator's primitives (median call, slowest rank):\n";
        for (const PrimitivePoint& p : c.primitives)
            os << std::setw(26) << p.what << " on " << p.group << std::setw(10) << human_size(p.bytes) << std::setw(10)
               << num(p.seconds * 1e6) << " us  model " << num(p.model_s * 1e6) << " us ("
               << num(100 * (p.model_s - p.seconds) / p.seconds, 2) << "%)\n";
        os << "link written to the spec (fit to the primitives): latency " << num(c.latency_s * 1e6)
           << " us, bandwidth " << num(c.bandwidth_Bps / 1e9) << " GB/s, RMS relative residual "
           << num(100 * c.primitive_fit_residual, 2) << "%\n";
        for (const ProgressPoint& q : c.progress_points)
            os << "  non-blocking all-reduce on 2 " << std::setw(10) << human_size(q.bytes) << ", " << q.calls
               << " test calls: alone " << num(q.alone_s * 1e6) << " us, left at the wait " << num(q.wait_s * 1e6)
               << " us (" << num(q.left(), 2) << "; model "
               << num(planner::SyncProgress::left_after_calls(q.calls, c.progress_fit.test_calls), 2)
               << "), spent in the calls " << num(q.paid_s * 1e6) << " us (" << num(q.paid(), 2) << "; model "
               << num(planner::SyncProgress::paid_share(
                          planner::SyncProgress::left_after_calls(q.calls, c.progress_fit.test_calls),
                          c.call_share_fit.call_share),
                      2)
               << ")\n";
        if (!c.progress_points.empty())
            os << "nonblocking_test_calls written to the spec: " << num(c.progress_fit.test_calls, 3)
               << " (RMS residual " << num(c.progress_fit.rms_residual, 2) << " of the all-reduce); "
               << "nonblocking_call_share: " << num(c.call_share_fit.call_share, 3) << " (RMS residual "
               << num(c.call_share_fit.rms_residual, 2) << ")\n";
    }
    if (!c.layers.empty()) {
        os << "\nper layer of the sequential training step (us), measured / model:\n";
        for (const LayerPoint& p : c.layers)
            os << std::setw(10) << p.network << " b" << std::setw(3) << std::left << (p.batch > 0 ? p.batch : c.batch)
               << std::right << std::setw(12) << p.layer << std::setw(20)
               << networks::to_string(p.kind) << "  fwd " << std::setw(8) << num(p.fwd_s * 1e6) << " / "
               << std::setw(8) << num(p.model_fwd_s * 1e6) << "  bwd " << std::setw(8) << num(p.bwd_s * 1e6)
               << " / " << std::setw(8) << num(p.model_bwd_s * 1e6) << "\n";
        os << "fitted (" << c.layer_fit_points << " points, RMS relative residual " << num(100 * c.layer_fit_residual, 2)
           << "%): GEMM layers at " << num(c.gemm_fraction * c.gemm_flops / 1e9) << " GFLOP/s (achievable_fraction "
           << num(c.gemm_fraction) << " of sgemm), operands at " << num(c.gemm_operand_bandwidth_Bps / 1e9)
           << " GB/s\nthe validator's kernels (per unit of work, per call; points, RMS relative residual):\n";
        for (const auto& [kernel, fit] : c.cpu_kernels)
            os << std::setw(28) << clusters::to_string(kernel) << std::setw(11) << num(fit.cost.per_unit_s * 1e9)
               << " ns" << std::setw(9) << num(fit.cost.per_call_s * 1e6) << " us" << std::setw(5) << fit.points
               << std::setw(9) << num(100 * fit.rms_relative_residual, 2) << "%\n";
        os << "outside every timed operation per step (us), measured / model (the framework kernel):";
        for (const UntimedPoint& p : c.untimed)
            os << " " << p.network << " b" << p.batch << " " << num(p.untimed_s * 1e6) << " / " << num(p.model_s * 1e6);
        os << "\n";
        os << "residual by layer kind:";
        for (const auto& [kind, r] : residuals_by_kind(c))
            os << " " << kind << " " << num(100 * r.rms(), 2) << "% (" << r.points << ")";
        os << "\n";
    }
    os << "\nsgemm " << num(c.gemm_flops / 1e9) << " GFLOP/s per rank (" << c.gemm_note << "); convolution "
       << num(c.conv_flops / 1e9) << " GFLOP/s (" << c.conv_note << "); memory copy "
       << num(c.memory_bandwidth_Bps / 1e9) << " GB/s per rank\n";
    return os.str();
}

}  // namespace dnnplan::validators
