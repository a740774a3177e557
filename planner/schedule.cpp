#include "schedule.hpp"

#include <algorithm>

namespace dnnplan::planner {

std::string to_string(Schedule schedule) { return schedule == Schedule::one_f_one_b ? "1f1b" : "gpipe"; }
std::string to_string(Recompute recompute) {
    return recompute == Recompute::full ? "full" : recompute == Recompute::selective ? "selective" : "none";
}

std::string interleave_problem(const PipelineSpec& spec) {
    if (spec.interleave <= 1) return "";
    const std::string v = "interleave " + std::to_string(spec.interleave);
    if (spec.schedule != Schedule::one_f_one_b) return v + " needs the 1f1b schedule";
    if (spec.stages < 2) return v + " needs at least 2 stages";
    if (!spec.device_of.empty()) return v + " does not apply to graph partitions";
    if (spec.micro_batches % spec.stages != 0)
        return v + ": " + std::to_string(spec.micro_batches) + " micro-batches are not a multiple of the " +
               std::to_string(spec.stages) + " stages";
    return "";
}

std::vector<int> micro_batch_counts(std::int64_t n, int stages) {
    std::vector<int> out;
    auto offer = [&](std::int64_t m) {
        if (m >= 1 && m <= kMaxMicroBatches && m <= n && n % m == 0) out.push_back(static_cast<int>(m));
    };
    for (std::int64_t p = 1; p <= n; p *= 2) {
        offer(p);
        offer(p * stages);
        if (n % p == 0) offer(n / p);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

int interleaved_warmup(int stages, int stage, int M, int V) {
    if (M == stages) return M * V;  // Megatron-LM runs every forward first then
    return std::min(2 * (stages - stage - 1) + (V - 1) * stages, M * V);
}

PipelineOp op_at(Schedule schedule, int stages, int stage, int M, int k, int V) {
    if (schedule == Schedule::gpipe) return k < M ? PipelineOp{true, k, 0} : PipelineOp{false, k - M, 0};
    // The k-th chunk-forward (or backward) of the device: micro-batch and chunk (V = 1: k, 0).
    const int group = stages * V;
    auto unit = [&](bool forward, int i) {
        const int in_group = i % group, chunk = in_group / stages;
        return PipelineOp{forward, (i / group) * stages + in_group % stages, forward ? chunk : V - 1 - chunk};
    };
    const int units = M * V;
    const int warmup = V == 1 ? std::min(stages - stage - 1, M) : interleaved_warmup(stages, stage, M, V);
    if (k < warmup) return unit(true, k);
    const int j = k - warmup, steady = 2 * (units - warmup);
    if (j < steady) return j % 2 == 0 ? unit(true, warmup + j / 2) : unit(false, j / 2);
    return unit(false, units - warmup + (j - steady));
}

double optimizer_step_share(double step_s, const PipelineSpec& spec) {
    return step_s / (spec.zero ? spec.replicas : 1);
}

PipelineOpCursor::PipelineOpCursor(Schedule schedule, int stages, int stage, int micro_batches, int interleave)
    : stages_(stages), interleave_(interleave), units_(micro_batches * interleave),
      gpipe_(schedule == Schedule::gpipe) {
    warmup_ = gpipe_             ? units_
              : interleave == 1 ? std::min(stages - stage - 1, micro_batches)
                                : interleaved_warmup(stages, stage, micro_batches, interleave);
}

PipelineOp PipelineOpCursor::Units::take(bool forward, int stages, int interleave) {
    // op_at's unit(i): chunk = (i % S V) / S, micro = (i / S V) S + i % S; backwards run the chunks
    // in reverse. Without interleaving (V = 1) that is micro = i, chunk 0.
    const PipelineOp op{forward, micro_base + in_chunk, forward ? chunk : interleave - 1 - chunk};
    if (++in_chunk == stages) {
        in_chunk = 0;
        if (++chunk == interleave) chunk = 0, micro_base += stages;
    }
    return op;
}

PipelineOp PipelineOpCursor::next() {
    const int k = k_++;
    if (gpipe_) {  // GPipe: M forwards, then M backwards, micro-batch order (V = 1)
        if (k < units_) return PipelineOp{true, k, 0};
        return PipelineOp{false, k - units_, 0};
    }
    if (k < warmup_) return forwards_.take(true, stages_, interleave_);
    const int j = k - warmup_, steady = 2 * (units_ - warmup_);
    if (j < steady && j % 2 == 0) return forwards_.take(true, stages_, interleave_);
    return backwards_.take(false, stages_, interleave_);
}

std::vector<PipelineOp> pipeline_order(Schedule schedule, int stages, int stage, int micro_batches, int V) {
    std::vector<PipelineOp> ops;
    for (int k = 0; k < 2 * micro_batches * V; ++k) ops.push_back(op_at(schedule, stages, stage, micro_batches, k, V));
    return ops;
}

namespace {
// End times one virtual stage has produced and its neighbour has not consumed yet, in micro-batch
// order (both sides run a chunk's micro-batches in increasing order): a ring that grows to the
// micro-batches in flight, never to M.
class EndQueue {
public:
    bool empty() const { return count_ == 0; }
    double front() const { return ring_[head_]; }
    void pop() { head_ = (head_ + 1) % ring_.size(), --count_; }
    void push(double t) {
        if (count_ == ring_.size()) {
            std::vector<double> grown(std::max<std::size_t>(4, 2 * ring_.size()));
            for (std::size_t i = 0; i < count_; ++i) grown[i] = ring_[(head_ + i) % ring_.size()];
            ring_ = std::move(grown);
            head_ = 0;
        }
        ring_[(head_ + count_++) % ring_.size()] = t;
    }

private:
    std::vector<double> ring_;
    std::size_t head_ = 0, count_ = 0;
};

// GPipe: forwards, then backwards, each a flow shop of M identical jobs (closed form).
void gpipe_ends(const std::vector<double>& F, const std::vector<double>& B, int M,
                const std::vector<double>& last_extra, std::vector<double>& ends) {
    const int S = static_cast<int>(F.size());
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
        last = std::max(previous, last) + B[s] + last_extra[s];
        ends[s] = last;
    }
}
}  // namespace

std::vector<double> last_backward_ends(const std::vector<double>& F, const std::vector<double>& B, Schedule schedule,
                                       int micro_batches, const std::vector<double>& last_extra, int V) {
    const int n = static_cast<int>(F.size()), S = n / std::max(1, V), M = micro_batches;
    std::vector<double> ends(S, 0.0);
    if (S == 0 || M < 1) return ends;
    if (V == 1 && (schedule == Schedule::gpipe || S == 1)) {  // one stage runs its M pairs either way
        gpipe_ends(F, B, M, last_extra, ends);
        return ends;
    }
    // 1F1B: every operation once, in an order that respects both each device's sequence and the
    // data dependencies (a device is revisited only when a neighbour finished what it waits for).
    // forwards[v] holds virtual stage v's forward ends not yet used by v + 1 (by v's own backward
    // for the last one), backwards[v] its backward ends not yet used by v - 1.
    std::vector<EndQueue> forwards(n), backwards(n);
    std::vector<int> next(S, 0);
    std::vector<double> free_at(S, 0.0);
    std::vector<int> pending;
    for (int d = 0; d < S; ++d) pending.push_back(d);
    const int ops = 2 * M * V;
    std::vector<PipelineOpCursor> cursors;
    std::vector<PipelineOp> upcoming;  // each device's next operation (cursors only move forward)
    for (int d = 0; d < S; ++d) {
        cursors.emplace_back(schedule, S, d, M, V);
        upcoming.push_back(cursors.back().next());
    }
    while (!pending.empty()) {
        const int d = pending.back();
        pending.pop_back();
        while (next[d] < ops) {
            const PipelineOp op = upcoming[d];
            const int v = op.chunk * S + d;
            EndQueue* input = op.forward ? (v > 0 ? &forwards[v - 1] : nullptr)
                                         : (v + 1 < n ? &backwards[v + 1] : &forwards[v]);
            if (input && input->empty()) break;
            const double ready = input ? input->front() : 0.0;
            if (input) input->pop();
            const bool last = !op.forward && op.micro == M - 1 && op.chunk == 0 && !last_extra.empty();
            const double end = std::max(free_at[d], ready) + (op.forward ? F[v] : B[v]) + (last ? last_extra[d] : 0.0);
            free_at[d] = end;
            if (++next[d] < ops) upcoming[d] = cursors[d].next();
            if (op.forward) {
                forwards[v].push(end);
                if (v + 1 < n) pending.push_back((v + 1) % S);
            } else if (v > 0) {
                backwards[v].push(end);
                pending.push_back((v - 1) % S);
            }
        }
    }
    for (int d = 0; d < S; ++d) ends[d] = free_at[d];
    return ends;
}

}  // namespace dnnplan::planner
