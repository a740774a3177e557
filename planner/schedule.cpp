#include "schedule.hpp"

#include <algorithm>

namespace dnnplan::planner {

std::string to_string(Schedule schedule) { return schedule == Schedule::one_f_one_b ? "1f1b" : "gpipe"; }
std::string to_string(Recompute recompute) {
    return recompute == Recompute::full ? "full" : recompute == Recompute::selective ? "selective" : "none";
}

PipelineOp op_at(Schedule schedule, int stages, int stage, int M, int k) {
    if (schedule == Schedule::gpipe) return k < M ? PipelineOp{true, k} : PipelineOp{false, k - M};
    const int warmup = std::min(stages - stage - 1, M);
    if (k < warmup) return {true, k};
    const int j = k - warmup, steady = 2 * (M - warmup);
    if (j < steady) return j % 2 == 0 ? PipelineOp{true, warmup + j / 2} : PipelineOp{false, j / 2};
    return {false, M - warmup + (j - steady)};
}

std::vector<PipelineOp> pipeline_order(Schedule schedule, int stages, int stage, int micro_batches) {
    std::vector<PipelineOp> ops;
    for (int k = 0; k < 2 * micro_batches; ++k) ops.push_back(op_at(schedule, stages, stage, micro_batches, k));
    return ops;
}

std::vector<double> last_backward_ends(const std::vector<double>& F, const std::vector<double>& B, Schedule schedule,
                                       int micro_batches, const std::vector<double>& last_extra) {
    const int S = static_cast<int>(F.size()), M = micro_batches;
    std::vector<double> ends(S, 0.0);
    if (S == 0 || M < 1) return ends;
    auto extra = [&](int s) { return last_extra.empty() ? 0.0 : last_extra[s]; };
    if (schedule == Schedule::gpipe || S == 1) {  // one stage runs its M forward-backward pairs either way
        // Forwards: a flow shop of M identical jobs over stages 0..S-1 ends at sum F + (M - 1) max F.
        // The backwards are one over S-1..0 starting then: the first M - 1 micro-batches' last
        // ends at sum_{j>=s} B_j + (M - 2) max_{j>=s} B_j more, and the last micro-batch (which
        // may carry an extra) starts at stage s when both it and the stage are free. Without
        // extras that is sum_{j>=s} B_j + (M - 1) max_{j>=s} B_j after the forwards.
        double forwards = 0, max_f = 0;
        for (double f : F) forwards += f, max_f = std::max(max_f, f);
        forwards += (M - 1) * max_f;
        double sum_b = 0, max_b = 0, last = forwards;
        for (int s = S - 1; s >= 0; --s) {
            sum_b += B[s];
            max_b = std::max(max_b, B[s]);
            if (last_extra.empty()) {
                ends[s] = forwards + sum_b + (M - 1) * max_b;
                continue;
            }
            const double previous = M >= 2 ? forwards + sum_b + (M - 2) * max_b : 0.0;
            last = std::max(previous, last) + B[s] + extra(s);
            ends[s] = last;
        }
        return ends;
    }
    // 1F1B: every operation once, in an order that respects both each stage's sequence and the
    // data dependencies (a stage is revisited only when a neighbour finished what it waits for).
    constexpr double kUnset = -1;
    std::vector<double> fwd_end(static_cast<std::size_t>(S) * M, kUnset), bwd_end(fwd_end);
    std::vector<int> next(S, 0);
    std::vector<double> free_at(S, 0.0);
    std::vector<int> pending;
    for (int s = 0; s < S; ++s) pending.push_back(s);
    while (!pending.empty()) {
        const int s = pending.back();
        pending.pop_back();
        while (next[s] < 2 * M) {
            const PipelineOp op = op_at(schedule, S, s, M, next[s]);
            const std::size_t at = static_cast<std::size_t>(s) * M + op.micro;
            double ready;
            if (op.forward)
                ready = s == 0 ? 0.0 : fwd_end[at - M];
            else
                ready = s == S - 1 ? fwd_end[at] : bwd_end[at + M];
            if (ready == kUnset) break;
            const double end = std::max(free_at[s], ready) + (op.forward ? F[s] : B[s]) +
                               (!op.forward && op.micro == M - 1 ? extra(s) : 0.0);
            (op.forward ? fwd_end : bwd_end)[at] = end;
            free_at[s] = end;
            ++next[s];
            if (op.forward && s + 1 < S) pending.push_back(s + 1);
            if (!op.forward && s > 0) pending.push_back(s - 1);
        }
    }
    for (int s = 0; s < S; ++s) ends[s] = free_at[s];
    return ends;
}

}  // namespace dnnplan::planner
