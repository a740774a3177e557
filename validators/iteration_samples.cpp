#include "validators/iteration_samples.hpp"

#include <algorithm>

namespace dnnplan::validators {

double median_of(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double IterationSamples::add(double local_s, const OpTimer& timer, MPI_Comm comm) {
    double slowest = 0;
    MPI_Allreduce(&local_s, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
    iterations_.push_back(slowest);
    std::array<double, static_cast<int>(Op::count)> worst{};
    MPI_Allreduce(timer.seconds.data(), worst.data(), static_cast<int>(Op::count), MPI_DOUBLE, MPI_MAX, comm);
    ops_.push_back(worst);
    MPI_Allreduce(timer.waited.data(), worst.data(), static_cast<int>(Op::count), MPI_DOUBLE, MPI_MAX, comm);
    waits_.push_back(worst);
    references_.push_back(reference_.time_ranks_mean(comm));
    return slowest;
}

void IterationSamples::summarise(RunResult& r) const {
    r.iteration_samples = iterations_;
    r.iteration_s = median_of(iterations_);
    r.iteration_best_s = iterations_.empty() ? 0 : *std::min_element(iterations_.begin(), iterations_.end());
    r.reference_kernel_s = median_of(references_);
    for (std::size_t o = 0; o < r.op_s.size(); ++o) {
        std::vector<double> v;
        for (const auto& a : ops_) v.push_back(a[o]);
        r.op_s[o] = median_of(v);
        r.op_best_s[o] = v.empty() ? 0 : *std::min_element(v.begin(), v.end());
        v.clear();
        for (const auto& a : waits_) v.push_back(a[o]);
        r.op_wait_s[o] = median_of(v);
    }
}

const char* const kWorkerStatNames[kWorkerStats] = {"fwd_compute_s", "bwd_compute_s", "send_s",      "receive_wait_s",
                                                    "loss_s",        "sync_s",        "optimizer_s", "idle_s"};

void WorkerSamples::add(double local_s, const OpTimer& timer, double send_s, double recv_s, MPI_Comm comm) {
    const double slowest = iterations_.add(local_s, timer, comm);
    auto sec = [&](Op o) { return timer.seconds[static_cast<int>(o)]; };
    std::array<double, kWorkerStats> st{sec(Op::fwd_compute), sec(Op::bwd_compute), send_s,  recv_s,
                                        sec(Op::loss),        sec(Op::sync),        sec(Op::optimizer), 0};
    st[kIdle] = slowest - (st[kFwd] + st[kBwd] + st[kSend] + st[kLoss] + st[kSync] + st[kOptimizer]);
    stats_.push_back(st);
}

std::vector<double> WorkerSamples::summarise(RunResult& r, MPI_Comm comm) const {
    iterations_.summarise(r);
    std::array<double, kWorkerStats> mine{};
    for (std::size_t k = 0; k < mine.size(); ++k) {
        std::vector<double> v;
        for (const auto& a : stats_) v.push_back(a[k]);
        mine[k] = median_of(v);
    }
    int me = 0, p = 1;
    MPI_Comm_rank(comm, &me);
    MPI_Comm_size(comm, &p);
    std::vector<double> all(me == 0 ? static_cast<std::size_t>(p) * kWorkerStats : 0);
    MPI_Gather(mine.data(), kWorkerStats, MPI_DOUBLE, all.data(), kWorkerStats, MPI_DOUBLE, 0, comm);
    return all;
}

Json WorkerSamples::slowest(const std::vector<double>& all_ranks, const std::vector<int>& ranks) {
    Json out = Json::object();
    for (int k = 0; k < kWorkerStats; ++k) {
        double worst = 0;
        for (int r : ranks) worst = std::max(worst, all_ranks[static_cast<std::size_t>(r) * kWorkerStats + k]);
        out[kWorkerStatNames[k]] = worst;
    }
    return out;
}

}  // namespace dnnplan::validators
