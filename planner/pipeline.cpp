#include "pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <tuple>

#include "planner/graph_partition.hpp"
#include "planner/search.hpp"

namespace dnnplan::planner {

using clusters::Collective;
using clusters::GroupPlacement;
using networks::Layer;
using networks::LayerKind;

std::string to_string(Schedule schedule) { return schedule == Schedule::one_f_one_b ? "1f1b" : "gpipe"; }

namespace {
// Operation k of stage `stage`'s order, without building the list (the search walks millions).
PipelineOp op_at(Schedule schedule, int stages, int stage, int M, int k) {
    if (schedule == Schedule::gpipe) return k < M ? PipelineOp{true, k} : PipelineOp{false, k - M};
    const int warmup = std::min(stages - stage - 1, M);
    if (k < warmup) return {true, k};
    const int j = k - warmup, steady = 2 * (M - warmup);
    if (j < steady) return j % 2 == 0 ? PipelineOp{true, warmup + j / 2} : PipelineOp{false, j / 2};
    return {false, M - warmup + (j - steady)};
}
}  // namespace

std::vector<CommCall> gradient_sync_calls(int layer, const GroupPlacement& group, double bytes, bool zero,
                                          const clusters::LinkCost& intra, const clusters::LinkCost& inter) {
    auto call = [&](Collective collective, const char* what) {
        return collective_call(layer, Phase::sync, collective, clusters::cheapest(collective, group, bytes, intra, inter),
                               group, bytes, what);
    };
    if (zero)
        return {call(Collective::reduce_scatter, "weight gradient (ZeRO-1 reduce-scatter)"),
                call(Collective::all_gather, "updated weights (ZeRO-1 all-gather)")};
    return {call(Collective::all_reduce, "weight gradient")};
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

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<int> divisors_of(std::int64_t n) {
    std::vector<int> out;
    for (std::int64_t d = 1; d <= n; ++d)
        if (n % d == 0) out.push_back(static_cast<int>(d));
    return out;
}

// Everything about one (T, micro-batch) pair that the configurations sharing it reuse: the stage
// layouts scored on one micro-batch, and prefix sums over the layers.
struct MicroContext {
    int tensor = 1;
    std::int64_t micro_batch = 1;
    PlannerOptions options;
    ScoredPlan plan;
    int layer_count = 0;  // network layers incl. the input
    // Per layer (index 0 unused): seconds per micro-batch and bytes per process.
    std::vector<double> fwd_compute, bwd_compute, fwd_comm, bwd_comm, bwd_comm_network, kind_s[7], weight_bytes, activation_bytes,
        buffer_bytes, gradient_bytes;
    // Prefix sums: pre[x][i] = sum of x over layers 1..i-1.
    std::vector<double> pre_fwd_compute, pre_bwd_compute, pre_kind[7], pre_weight, pre_activation;
    std::vector<GroupPlacement> sync_group;  // inner sync group per layer ({1,1} when none)
    std::vector<double> sync_bytes;          // inner sync bytes per layer
    std::vector<double> boundary_bytes;      // per cut position c: bytes per rank per micro-batch crossing into c
    std::vector<double> boundary_total;      // the same, all ranks of the tensor group
    double input_bytes = 0;                  // the input micro-batch resident on stage 0, per rank
};

std::vector<double> prefix(const std::vector<double>& v) {
    std::vector<double> p(v.size() + 1, 0.0);
    for (std::size_t i = 0; i < v.size(); ++i) p[i + 1] = p[i] + v[i];
    return p;
}

int kind_index(CommKind kind) { return static_cast<int>(kind); }

MicroContext make_context(const CostModel& model, int tensor, std::int64_t micro_batch,
                          const std::vector<Layout>& layouts) {
    MicroContext c;
    c.tensor = tensor;
    c.micro_batch = micro_batch;
    c.options = model.options();
    c.options.procs = tensor;
    c.options.batch = micro_batch;
    CostModel micro(model.network(), model.cluster(), c.options);
    c.plan = micro.score(layouts);
    const auto& layers = model.network().layers;
    const int n = static_cast<int>(layers.size());
    c.layer_count = n;
    auto zeros = [&] { return std::vector<double>(n, 0.0); };
    c.fwd_compute = zeros(), c.bwd_compute = zeros(), c.fwd_comm = zeros(), c.bwd_comm = zeros();
    c.bwd_comm_network = zeros();
    c.weight_bytes = zeros(), c.activation_bytes = zeros(), c.buffer_bytes = zeros(), c.gradient_bytes = zeros();
    for (auto& k : c.kind_s) k = zeros();
    c.sync_group.assign(n, GroupPlacement{1, 1});
    c.sync_bytes = zeros();
    for (int i = 1; i < n; ++i) {
        const LayerCost& lc = c.plan.layers[i];
        c.fwd_compute[i] = lc.fwd_compute_s;
        c.bwd_compute[i] = lc.bwd_compute_s;
        c.fwd_comm[i] = lc.fwd_comm_s;
        c.bwd_comm[i] = lc.bwd_comm_s;
        c.bwd_comm_network[i] = lc.bwd_comm_network_s;
        c.weight_bytes[i] = lc.weight_bytes;
        c.activation_bytes[i] = lc.activation_bytes;
        if (layers[i].params > 0) c.sync_bytes[i] = lc.weight_bytes;
        // The backward working set: this layer's output and input gradients (as score()).
        const double eb_i = static_cast<double>(dtype_bytes(c.options.dtype));
        const double b_i = static_cast<double>(micro_batch) / lc.in_dist.n;
        c.gradient_bytes[i] =
            b_i * eb_i *
            (layers[i].output_elements / static_cast<double>(lc.out_dist.c * lc.out_dist.h * lc.out_dist.w) +
             layers[layers[i].inputs.front()].output_elements /
                 static_cast<double>(lc.in_dist.c * lc.in_dist.h * lc.in_dist.w));
    }
    for (const CommCall& call : c.plan.calls) {
        if (call.phase == Phase::sync) {
            c.sync_group[call.layer] = call.group;
            c.sync_bytes[call.layer] = call.bytes;
            continue;
        }
        c.kind_s[kind_index(call.kind)][call.layer] += call.seconds;
        double buffer = call.kind == CommKind::all_gather || call.what.find("all-gather") != std::string::npos
                            ? call.bytes * call.group.size
                            : call.bytes;
        c.buffer_bytes[call.layer] = std::max(c.buffer_bytes[call.layer], buffer);
    }
    c.pre_fwd_compute = prefix(c.fwd_compute);
    c.pre_bwd_compute = prefix(c.bwd_compute);
    for (int k = 0; k < 7; ++k) c.pre_kind[k] = prefix(c.kind_s[k]);
    c.pre_weight = prefix(c.weight_bytes);
    c.pre_activation = prefix(c.activation_bytes);

    // Bytes crossing each possible boundary c (tensors made before c and read at or after it),
    // per rank: each rank sends its shard to its counterpart in the next stage.
    const double eb = static_cast<double>(dtype_bytes(c.options.dtype));
    std::vector<int> last_use(n, 0);
    for (int i = 1; i < n; ++i)
        for (int p : layers[i].inputs) last_use[p] = std::max(last_use[p], i);
    std::vector<double> delta(n + 1, 0.0), delta_total(n + 1, 0.0);
    for (int j = 1; j < n; ++j) {
        if (last_use[j] <= j) continue;
        double total = static_cast<double>(micro_batch) * layers[j].output_elements * eb;
        double per_rank = total / static_cast<double>(c.plan.layers[j].out_dist.parts());
        // Crosses every boundary in (j, last_use].
        delta[j + 1] += per_rank;
        delta[last_use[j] + 1] -= per_rank;
        delta_total[j + 1] += total;
        delta_total[last_use[j] + 1] -= total;
    }
    c.boundary_bytes.assign(n + 1, 0.0);
    c.boundary_total.assign(n + 1, 0.0);
    double run = 0, run_total = 0;
    for (int i = 0; i <= n; ++i) {
        run += delta[i];
        run_total += delta_total[i];
        c.boundary_bytes[i] = std::max(0.0, run);
        c.boundary_total[i] = std::max(0.0, run_total);
    }
    int a = model.anchor_of(n > 1 ? 1 : 0);
    int first_n = a == 0 ? static_cast<int>(std::gcd<std::int64_t>(tensor, micro_batch)) : std::max(1, layouts[a].n);
    c.input_bytes = static_cast<double>(micro_batch) / first_n * layers[0].output_elements *
                    (model.network().token_input ? 8.0 : eb);
    return c;
}

clusters::LinkCost link_cost(const clusters::Link& link) { return clusters::LinkCost{link.bandwidth_Bps, link.latency_s}; }

// Point-to-point between neighbouring stages, for the stage partitioner (which does not know
// which boundary a cut becomes): inside a node when the whole pipeline of one replica fits in a
// node, over the network otherwise.
clusters::LinkCost stage_link(const CostModel& model, int tensor, int stages) {
    const auto& cl = model.cluster();
    bool intra = cl.devices_per_node > 1 && static_cast<std::int64_t>(tensor) * stages <= cl.devices_per_node;
    return link_cost(intra ? cl.intra_node : cl.inter_node);
}

// The link the transfer into stage s (from s - 1) crosses, for scoring: inside a node when every
// pair of counterparts (rank t + T (s - 1 + S r) and the rank T later) shares a node, over the
// network otherwise (a stage starts when its slowest member has its input).
clusters::LinkCost boundary_link(const CostModel& model, const PipelineSpec& spec, int s) {
    const auto& cl = model.cluster();
    const std::int64_t d = cl.devices_per_node, T = spec.tensor, S = spec.stages;
    if (d <= 1) return link_cost(cl.inter_node);
    // (T S r) mod d repeats with a period of at most d replicas.
    const std::int64_t replicas = std::min<std::int64_t>(spec.replicas, d);
    for (std::int64_t r = 0; r < replicas; ++r)
        for (std::int64_t t = 0; t < T; ++t) {
            const std::int64_t from = t + T * (s - 1 + S * r);
            if (from / d != (from + T) / d) return link_cost(cl.inter_node);
        }
    return link_cost(cl.intra_node);
}

StageWeights weights_from(const MicroContext& c, const clusters::LinkCost& link, bool recompute) {
    StageWeights w;
    const int n = c.layer_count;
    w.layer_s.assign(n, 0.0);
    w.recv_fwd_s.assign(n + 1, 0.0);
    w.recv_bwd_s.assign(n + 1, 0.0);
    for (int i = 1; i < n; ++i) {
        double f = c.fwd_compute[i] + c.fwd_comm[i];
        w.layer_s[i] = f + c.bwd_compute[i] + c.bwd_comm[i] + (recompute ? f : 0.0);
    }
    for (int i = 2; i < n; ++i) {
        double t = clusters::point_to_point_seconds(c.boundary_bytes[i], link);
        w.recv_fwd_s[i] = t;  // the activations into a stage starting at i
        w.recv_bwd_s[i] = t;  // their gradient back into the stage ending at i - 1
    }
    return w;
}

// A stage's sums over layers [first, last], exact totals when it is the whole network (so a
// one-stage pipeline reproduces score() bit for bit).
struct StageSums {
    double fwd_compute = 0, bwd_compute = 0, kind[7] = {0, 0, 0, 0, 0, 0, 0}, weight = 0, activation = 0, buffer = 0;
    double comm() const { return kind[0] + kind[1] + kind[2] + kind[3] + kind[4] + kind[5] + kind[6]; }
};

StageSums stage_sums(const MicroContext& c, int first, int last) {
    StageSums s;
    if (first == 1 && last == c.layer_count - 1) {
        const CostBreakdown& k = c.plan.cost;
        s.fwd_compute = k.fwd_compute_s;
        s.bwd_compute = k.bwd_compute_s;
        s.kind[0] = k.all_reduce_s, s.kind[1] = k.all_gather_s, s.kind[2] = k.reduce_scatter_s;
        s.kind[3] = k.all_to_all_s, s.kind[4] = k.halo_s, s.kind[5] = k.point_to_point_s;
        s.kind[6] = k.redistribution_s;
        s.weight = k.weights_bytes;
        s.activation = k.activations_bytes - c.input_bytes;
        s.buffer = k.buffers_bytes;
        return s;
    }
    s.fwd_compute = c.pre_fwd_compute[last + 1] - c.pre_fwd_compute[first];
    s.bwd_compute = c.pre_bwd_compute[last + 1] - c.pre_bwd_compute[first];
    for (int k = 0; k < 7; ++k) s.kind[k] = c.pre_kind[k][last + 1] - c.pre_kind[k][first];
    s.weight = c.pre_weight[last + 1] - c.pre_weight[first];
    s.activation = c.pre_activation[last + 1] - c.pre_activation[first];
    double gradients = 0;
    for (int i = first; i <= last; ++i) {
        s.buffer = std::max(s.buffer, c.buffer_bytes[i]);
        gradients = std::max(gradients, c.gradient_bytes[i]);
    }
    s.buffer += gradients;  // as score(): the largest buffer plus the largest pair of activation gradients
    return s;
}



// Per-layer gradient synchronisation over the inner batch group times the R replicas (ZeRO-1:
// reduce-scatter of the gradients, then all-gather of the updated weights), as the calls the
// replicas make: the collectives clusters::cheapest chooses. With one replica and no ZeRO they
// are the micro-batch plan's own (inner) sync calls. Shared by replica_sync() (the seconds) and
// pipeline_program() (the replay), so both see one choice.
std::vector<std::vector<CommCall>> replica_sync_calls(const CostModel& model, const MicroContext& c, int stages,
                                                      int replicas, bool zero) {
    std::vector<std::vector<CommCall>> out(c.layer_count);
    const auto& cl = model.cluster();
    clusters::LinkCost intra{cl.intra_node.bandwidth_Bps, cl.intra_node.latency_s};
    clusters::LinkCost inter{cl.inter_node.bandwidth_Bps, cl.inter_node.latency_s};
    if (cl.devices_per_node <= 1) intra = inter;
    const int d = std::max(1, cl.devices_per_node);
    const std::int64_t pipeline_procs = static_cast<std::int64_t>(c.tensor) * stages;
    const int replicas_per_node = pipeline_procs < d ? static_cast<int>(d / pipeline_procs) : 1;
    for (int i = 1; i < c.layer_count; ++i) {
        if (c.sync_bytes[i] <= 0) continue;
        if (replicas == 1 && !zero) {
            for (const CommCall& call : c.plan.calls)
                if (call.phase == Phase::sync && call.layer == i) out[i].push_back(call);
            continue;
        }
        const GroupPlacement& g = c.sync_group[i];
        int size = g.size * replicas;
        int per_node = std::gcd(size, g.per_node * std::min(replicas, replicas_per_node));
        GroupPlacement group{size, std::max(1, per_node)};
        if (size <= 1) continue;
        out[i] = gradient_sync_calls(i, group, c.sync_bytes[i], zero, intra, inter);
    }
    return out;
}

// Per layer: the seconds of its gradient synchronisation over the replicas, and whether its group
// spans nodes (for SyncOverlap's contention).
struct LayerSync {
    double seconds = 0;
    bool network = true;
};
std::vector<LayerSync> replica_sync(const CostModel& model, const MicroContext& c, int stages, int replicas,
                                    bool zero) {
    std::vector<LayerSync> out(c.layer_count);
    std::vector<std::vector<CommCall>> calls = replica_sync_calls(model, c, stages, replicas, zero);
    for (int i = 1; i < c.layer_count; ++i) {
        if (c.sync_bytes[i] <= 0) continue;
        if (replicas == 1 && !zero) {
            out[i] = {c.plan.layers[i].sync_s, c.plan.layers[i].sync_network};
            continue;
        }
        for (const CommCall& call : calls[i]) {  // ZeRO: reduce-scatter + all-gather
            out[i].seconds += call.seconds;
            out[i].network = clusters::node_count(call.group) > 1;
        }
    }
    return out;
}

struct Evaluation {
    CostBreakdown cost;
    std::vector<StageCost> stages;
    double pipeline_s = 0, balance = 1, cut_bytes = 0;
};

// The schedule, memory and synchronisation of one configuration on a prepared context.
Evaluation evaluate(const CostModel& model, const MicroContext& c, const PipelineSpec& spec,
                    const std::vector<LayerSync>& sync, bool keep_stages) {
    Evaluation e;
    CostBreakdown& k = e.cost;
    k.memory_capacity_bytes = static_cast<double>(model.cluster().device.usable_memory_bytes());
    if (!c.plan.cost.feasible && c.plan.cost.reason.rfind("needs ", 0) != 0) {
        k.feasible = false;
        k.reason = c.plan.cost.reason;
    }
    const int S = spec.stages, M = spec.micro_batches, L = c.layer_count;
    const double eb = static_cast<double>(dtype_bytes(c.options.dtype));
    double states = c.options.optimizer == Optimizer::adam ? 2 : 1;
    if (c.options.dtype != DType::fp32) states += 1;

    std::vector<double> F(S), Bk(S), recv_f(S, 0.0), recv_b(S, 0.0);
    std::vector<StageSums> sums(S);
    double sum_fb = 0, max_fb = 0, total_fb = 0;
    int slowest = 0;
    for (int s = 0; s < S; ++s) {
        int first = spec.stage_first[s];
        int last = s + 1 < S ? spec.stage_first[s + 1] - 1 : L - 1;
        sums[s] = stage_sums(c, first, last);
        const StageSums& ss = sums[s];
        if (s > 0) recv_f[s] = clusters::point_to_point_seconds(c.boundary_bytes[first], boundary_link(model, spec, s));
        if (s + 1 < S)
            recv_b[s] = clusters::point_to_point_seconds(c.boundary_bytes[last + 1], boundary_link(model, spec, s + 1));
        double fwd_comm = 0, bwd_comm = 0;
        for (int i = first; i <= last; ++i) fwd_comm += c.fwd_comm[i], bwd_comm += c.bwd_comm[i];
        // Forward and backward per micro-batch; their sum is (compute + comm) in score()'s order.
        double fb = (ss.fwd_compute + ss.bwd_compute) + ss.comm();
        if (spec.recompute) fb += ss.fwd_compute + fwd_comm;
        fb += recv_f[s] + recv_b[s];
        double f = ss.fwd_compute + fwd_comm + recv_f[s];
        F[s] = f;
        Bk[s] = fb - f;
        sum_fb = sum_fb + fb;
        if (fb > max_fb) max_fb = fb, slowest = s;
        total_fb += fb;
        if (s + 1 < S) e.cut_bytes += c.boundary_total[last + 1];
    }
    // Gradient synchronisation: each layer's all-reduce starts when its last micro-batch's
    // backward is done, inside its stage's last backward, one at a time (as in score()). Under
    // recomputation that backward first redoes the stage's whole forward from its checkpointed
    // input. Measured from the start of the stage's last backward, so before the schedule.
    double sync_total_max = 0;
    std::vector<double> stage_sync(S, 0.0), stage_exposed(S, 0.0), stage_contention(S, 0.0);
    for (int s = 0; s < S; ++s) {
        int first = spec.stage_first[s];
        int last = s + 1 < S ? spec.stage_first[s + 1] - 1 : L - 1;
        double recomputed = 0;
        if (spec.recompute)
            for (int i = first; i <= last; ++i) recomputed += c.fwd_compute[i] + c.fwd_comm[i];
        SyncOverlap overlap(c.options.overlap_sync, recomputed);
        for (int i = last; i >= first; --i)
            overlap.layer(c.bwd_compute[i], c.bwd_comm[i], c.bwd_comm_network[i], sync[i].seconds, sync[i].network);
        stage_sync[s] = overlap.total_s();
        stage_contention[s] = overlap.contention_s();
        stage_exposed[s] = overlap.exposed_s();
        sync_total_max = std::max(sync_total_max, stage_sync[s]);
    }
    // Stage s sends its last micro-batch's input gradient to stage s - 1 when its last backward
    // ends, while its syncs still have stage_exposed[s] seconds to run on the same card: fair
    // sharing delays both by min(the transfer's bandwidth time, remaining sync) (latency is not
    // shared), and stage s - 1's last backward with it.
    std::vector<double> send_delay(S, 0.0);  // indexed by the receiving stage
    bool delayed = false;
    for (int s = 1; s < S; ++s) {
        const int boundary = spec.stage_first[s];
        const double bandwidth_s = c.boundary_bytes[boundary] / boundary_link(model, spec, s).bandwidth_Bps;
        send_delay[s - 1] = std::min(bandwidth_s, stage_exposed[s]);
        delayed = delayed || send_delay[s - 1] > 0;
    }

    // The schedule itself: when every stage's last backward ends (GPipe: the forwards, then the
    // backwards, fill and drain separately; 1F1B: its dependency graph, exactly, whichever stage
    // is the slowest). Stage 0's is the makespan.
    std::vector<double> ends = last_backward_ends(F, Bk, spec.schedule, M, delayed ? send_delay : std::vector<double>{});
    if (S == 1) ends[0] = sum_fb + (M - 1) * max_fb;  // F + B rounds differently from score()'s sum
    e.pipeline_s = ends[0];
    e.balance = max_fb > 0 ? max_fb / (total_fb / S) : 1;
    double iteration = e.pipeline_s;
    int critical = -1;  // the stage whose synchronisation ends last, past the schedule
    for (int s = 0; s < S; ++s) {
        const double end = ends[s] + stage_contention[s] + stage_exposed[s] + (s > 0 ? send_delay[s - 1] : 0.0);
        if (end > iteration) iteration = end, critical = s;
    }

    // Memory per process of each stage; the plan's is the largest.
    double worst_memory = -1;
    int worst = 0;
    std::vector<double> memory(S);
    std::vector<StageSums> mem_parts(S);
    for (int s = 0; s < S; ++s) {
        const StageSums& ss = sums[s];
        int first = spec.stage_first[s];
        double in_flight = spec.schedule == Schedule::gpipe ? M : std::min(M, S - s);
        double input = s == 0 ? c.input_bytes : c.boundary_bytes[first];
        double activations;
        if (spec.recompute)
            activations = in_flight * input + ss.activation;  // checkpoints + one micro-batch redone
        else if (S == 1 && M == 1)
            activations = c.plan.cost.activations_bytes;  // score()'s own sum
        else
            activations = in_flight * (ss.activation + (s == 0 ? c.input_bytes : 0.0));
        double optimizer = ss.weight / eb * 4 * states / (spec.zero ? spec.replicas : 1);
        if (S == 1 && !spec.zero) optimizer = c.plan.cost.optimizer_bytes;
        StageSums m = ss;
        m.activation = activations;
        m.kind[0] = optimizer;  // reused as the optimizer slot
        mem_parts[s] = m;
        memory[s] = ss.weight + ss.weight + optimizer + activations + ss.buffer;
        if (memory[s] > worst_memory) worst_memory = memory[s], worst = s;
    }

    // The breakdown from the slowest stage's point of view: its M micro-batches of work, the
    // bubble (the schedule's idle time on top of them) and the exposed synchronisation.
    const StageSums& ss = sums[slowest];
    const double m = M;
    double fwd_comm_slowest = 0;
    {
        int first = spec.stage_first[slowest];
        int last = slowest + 1 < S ? spec.stage_first[slowest + 1] - 1 : L - 1;
        for (int i = first; i <= last; ++i) fwd_comm_slowest += c.fwd_comm[i];
    }
    k.fwd_compute_s = m * ss.fwd_compute;
    k.bwd_compute_s = m * (ss.bwd_compute + (spec.recompute ? ss.fwd_compute : 0.0));
    k.all_reduce_s = m * ss.kind[0];
    k.all_gather_s = m * ss.kind[1];
    k.reduce_scatter_s = m * ss.kind[2];
    k.all_to_all_s = m * ss.kind[3];
    k.halo_s = m * ss.kind[4];
    k.point_to_point_s = m * (ss.kind[5] + recv_f[slowest] + recv_b[slowest]);
    k.redistribution_s = m * ss.kind[6];
    if (spec.recompute) k.all_reduce_s += m * fwd_comm_slowest;  // the forward's communication, redone
    k.sync_total_s = sync_total_max;  // the exposed part comes from one stage's, so never exceeds this
    k.bubble_s = S == 1 && M == 1 ? 0.0 : std::max(0.0, e.pipeline_s - m * max_fb);
    if (S == 1 && M == 1) {
        // score()'s own sum, term by term.
        k.sync_contention_s = stage_contention[0];
        k.sync_exposed_s = stage_exposed[0];
        k.iteration_s =
            k.fwd_compute_s + k.bwd_compute_s + k.blocking_comm_s() + k.sync_contention_s + k.sync_exposed_s;
    } else {
        const double past = iteration - e.pipeline_s;  // what the critical stage's sync adds
        k.sync_contention_s = critical >= 0 ? std::min(stage_contention[critical], past) : 0.0;
        k.sync_exposed_s = past - k.sync_contention_s;
        k.iteration_s = iteration;
    }
    const StageSums& w = mem_parts[worst];
    k.weights_bytes = w.weight;
    k.gradients_bytes = w.weight;
    k.optimizer_bytes = w.kind[0];
    k.activations_bytes = w.activation;
    k.buffers_bytes = w.buffer;
    k.memory_bytes = k.weights_bytes + k.gradients_bytes + k.optimizer_bytes + k.activations_bytes + k.buffers_bytes;
    if (k.feasible && k.memory_capacity_bytes > 0 && k.memory_bytes > k.memory_capacity_bytes) {
        k.feasible = false;
        k.reason = over_memory_reason(k.memory_bytes, model.cluster().device, "stage " + std::to_string(worst));
    }
    if (keep_stages) {
        for (int s = 0; s < S; ++s) {
            StageCost sc;
            sc.first = spec.stage_first[s];
            sc.last = s + 1 < S ? spec.stage_first[s + 1] - 1 : L - 1;
            sc.forward_s = F[s];
            sc.backward_s = Bk[s];
            sc.recv_forward_s = recv_f[s];
            sc.recv_backward_s = recv_b[s];
            sc.sync_s = stage_sync[s];
            sc.memory_bytes = memory[s];
            sc.boundary_bytes = s + 1 < S ? c.boundary_total[sc.last + 1] : 0.0;
            e.stages.push_back(sc);
        }
    }
    return e;
}

double model_flops_per_device(const CostModel& model) {
    const auto& o = model.options();
    networks::NetworkTotals t = networks::totals(model.network(), o.batch);
    return (static_cast<double>(t.fwd_flops) + t.bwd_input_flops + t.bwd_weight_flops) / static_cast<double>(o.procs);
}

}  // namespace

std::string pipeline_problem(const CostModel& model, const PipelineSpec& spec) {
    const auto& o = model.options();
    const int layers = static_cast<int>(model.network().layers.size()) - 1;
    if (spec.tensor < 1 || spec.stages < 1 || spec.replicas < 1 || spec.micro_batches < 1)
        return "tensor, stages, replicas and micro-batches must be at least 1";
    std::int64_t used = std::int64_t{spec.tensor} * spec.stages * spec.replicas;
    if (used != o.procs)
        return "T x S x R = " + std::to_string(spec.tensor) + " x " + std::to_string(spec.stages) + " x " +
               std::to_string(spec.replicas) + " = " + std::to_string(used) + " is not P = " + std::to_string(o.procs);
    if (spec.stages > layers)
        return std::to_string(spec.stages) + " stages but the network has only " + std::to_string(layers) + " layers";
    if (o.batch % spec.replicas != 0)
        return "batch " + std::to_string(o.batch) + " cannot be split over " + std::to_string(spec.replicas) +
               " replicas";
    if ((o.batch / spec.replicas) % spec.micro_batches != 0)
        return std::to_string(spec.micro_batches) + " micro-batches do not divide the per-replica batch " +
               std::to_string(o.batch / spec.replicas);
    if (spec.device_of.empty()) {
        if (static_cast<int>(spec.stage_first.size()) != spec.stages)
            return "stage_first has " + std::to_string(spec.stage_first.size()) + " entries for " +
                   std::to_string(spec.stages) + " stages";
        if (spec.stage_first.front() != 1) return "the first stage must start at layer 1";
        for (int s = 1; s < spec.stages; ++s)
            if (spec.stage_first[s] <= spec.stage_first[s - 1] || spec.stage_first[s] > layers)
                return "stage " + std::to_string(s) + " starts at layer " + std::to_string(spec.stage_first[s]) +
                       ", not after stage " + std::to_string(s - 1) + " and within the network";
    }
    return "";
}

std::vector<int> cut_positions(const CostModel& model) {
    const auto& layers = model.network().layers;
    const int n = static_cast<int>(layers.size());
    std::vector<int> last_use(n, 0);
    for (int i = 1; i < n; ++i)
        for (int p : layers[i].inputs) last_use[p] = std::max(last_use[p], i);
    std::vector<int> crossing(n + 1, 0);
    for (int j = 1; j < n; ++j)
        if (last_use[j] > j) {
            crossing[j + 1] += 1;
            crossing[last_use[j] + 1] -= 1;
        }
    std::vector<int> out;
    int run = 0;
    for (int c = 0; c < n; ++c) {
        run += crossing[c];
        if (c >= 2 && run == 1) out.push_back(c);
    }
    return out;
}

std::vector<Layout> tensor_layouts(const CostModel& model, int tensor) {
    const auto& layers = model.network().layers;
    std::vector<Layout> out(layers.size());
    for (int a : model.anchors()) {
        const Layer& layer = layers[a];
        std::vector<Layout> prefs;
        Layout col{1, tensor, 1, 1, 1}, row{1, 1, tensor, 1, 1};
        if (layer.kind == LayerKind::linear) {
            int producer = layer.inputs.front();
            int pa = producer == 0 ? 0 : model.anchor_of(producer);
            Dist arriving = pa == 0 ? Dist{} : model.segment_output_dist(producer, out[pa]);
            // Megatron's pair: a column-split layer's output arrives split, so the next takes rows.
            if (arriving.c == tensor && tensor > 1)
                prefs = {row, col};
            else
                prefs = {col, row};
        } else if (layer.kind == LayerKind::conv2d || layer.kind == LayerKind::conv_transpose2d) {
            prefs = {col, row};
        } else {
            prefs = {col};  // attention (heads), embedding (dimension)
        }
        bool found = false;
        for (const Layout& l : prefs)
            if (model.layout_problem(a, l).empty()) {
                out[a] = l;
                found = true;
                break;
            }
        if (!found) return {};
    }
    return out;
}

StageWeights stage_weights(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts) {
    const std::int64_t micro = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
    MicroContext c = make_context(model, spec.tensor, micro, layouts);
    return weights_from(c, stage_link(model, spec.tensor, spec.stages), spec.recompute);
}

double slowest_stage(const StageWeights& w, const std::vector<int>& stage_first) {
    const int n = static_cast<int>(w.layer_s.size());
    double worst = 0;
    for (std::size_t s = 0; s < stage_first.size(); ++s) {
        int first = stage_first[s];
        int end = s + 1 < stage_first.size() ? stage_first[s + 1] : n;
        double t = 0;
        for (int i = first; i < end; ++i) t += w.layer_s[i];
        if (s > 0) t += w.recv_fwd_s[first];
        if (s + 1 < stage_first.size()) t += w.recv_bwd_s[end];
        worst = std::max(worst, t);
    }
    return worst;
}

std::vector<int> partition_stages(const StageWeights& w, const std::vector<int>& cuts, int stages,
                                  std::vector<std::vector<int>>* all_stage_counts) {
    const int n = static_cast<int>(w.layer_s.size());
    // Boundaries u_0 = 1 < u_1 < ... < u_K = n; a stage runs from u_a to u_b - 1.
    std::vector<int> u{1};
    for (int c : cuts)
        if (c > 1 && c < n) u.push_back(c);
    u.push_back(n);
    const int K = static_cast<int>(u.size()) - 1;
    if (all_stage_counts) all_stage_counts->assign(stages + 1, {});
    if (stages < 1 || stages > K) return {};
    std::vector<double> W(K + 1, 0.0);
    {
        std::vector<double> pre(n + 1, 0.0);
        for (int i = 1; i < n; ++i) pre[i + 1] = pre[i] + w.layer_s[i];
        for (int k = 0; k <= K; ++k) W[k] = pre[u[k]];
    }
    auto cost = [&](int a, int b) {
        return W[b] - W[a] + (a > 0 ? w.recv_fwd_s[u[a]] : 0.0) + (b < K ? w.recv_bwd_s[u[b]] : 0.0);
    };
    // f[s][b]: the best slowest stage for layers before u_b in s stages. For fixed b, scanning a
    // downwards only makes W[b] - W[a] grow, so the scan stops once that alone is no better.
    std::vector<std::vector<double>> f(stages + 1, std::vector<double>(K + 1, kInf));
    std::vector<std::vector<int>> parent(stages + 1, std::vector<int>(K + 1, -1));
    for (int b = 1; b <= K; ++b) f[1][b] = cost(0, b);
    for (int s = 2; s <= stages; ++s) {
        for (int b = s; b <= K; ++b) {
            double best = kInf;
            int arg = -1;
            for (int a = b - 1; a >= s - 1; --a) {
                if (W[b] - W[a] >= best) break;
                double t = std::max(f[s - 1][a], cost(a, b));
                if (t < best) best = t, arg = a;
            }
            f[s][b] = best;
            parent[s][b] = arg;
        }
    }
    auto extract = [&](int s) {
        std::vector<int> starts(s);
        int b = K;
        for (int t = s; t >= 1; --t) {
            int a = t == 1 ? 0 : parent[t][b];
            starts[t - 1] = u[a];
            b = a;
        }
        return starts;
    };
    if (all_stage_counts)
        for (int s = 1; s <= stages; ++s) (*all_stage_counts)[s] = extract(s);
    return extract(stages);
}

PipelineScore score_pipeline(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts) {
    PipelineScore out;
    std::string problem = pipeline_problem(model, spec);
    out.model_flops = model_flops_per_device(model);
    if (!problem.empty()) {
        out.plan.anchor_layouts = layouts;
        out.plan.layers.assign(model.network().layers.size(), LayerCost{});
        out.plan.cost.feasible = false;
        out.plan.cost.reason = problem;
        return out;
    }
    if (!spec.device_of.empty()) return score_graph_partition(model, spec, layouts);
    const std::int64_t micro = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
    MicroContext c = make_context(model, spec.tensor, micro, layouts);
    std::vector<LayerSync> sync = replica_sync(model, c, spec.stages, spec.replicas, spec.zero);
    Evaluation e = evaluate(model, c, spec, sync, true);
    out.plan = std::move(c.plan);
    out.plan.cost = e.cost;
    out.stages = std::move(e.stages);
    out.pipeline_s = e.pipeline_s;
    out.balance = e.balance;
    out.cut_bytes = e.cut_bytes;
    return out;
}

std::string pipeline_label(const PipelineSpec& spec, const PipelineScore& score) {
    char buffer[256];
    std::string opts = to_string(spec.schedule);
    if (spec.zero) opts += ", zero-1";
    if (spec.recompute) opts += ", recompute";
    std::snprintf(buffer, sizeof buffer, "TP=%d x PP=%d x DP=%d, M=%d, %s, balance %.2f, cut %s, %.3g TFLOP/s/proc",
                  spec.tensor, spec.stages, spec.replicas, spec.micro_batches, opts.c_str(), score.balance,
                  human_bytes(score.cut_bytes).c_str(), score.flops_per_device() / 1e12);
    return buffer;
}

std::vector<PipelineCandidate> search_pipelines(const CostModel& model, PipelineSearchStats* stats) {
    PipelineSearchStats local;
    PipelineSearchStats& st = stats ? *stats : local;
    const auto& o = model.options();
    const std::int64_t P = o.procs, B = o.batch;
    const int d = std::max(1, model.cluster().devices_per_node);
    const int layers = static_cast<int>(model.network().layers.size()) - 1;
    const std::vector<int> cuts = cut_positions(model);
    const int max_stages = static_cast<int>(cuts.size()) + 1;
    const double flops = model_flops_per_device(model);

    struct Best {
        PipelineSpec spec;
        double iteration = kInf, memory = kInf;
        bool feasible = false;
    };
    std::map<std::pair<int, int>, Best> best;  // per (T, S)
    for (int T : divisors_of(P)) {
        if (T > d) break;  // tensor groups stay inside a node (hierarchical placement)
        std::vector<Layout> layouts = tensor_layouts(model, T);
        std::vector<int> stage_counts;
        for (int S : divisors_of(P / T))
            if (S <= max_stages && S <= layers) stage_counts.push_back(S);
        if (layouts.empty()) {
            st.skipped += static_cast<long long>(stage_counts.size());
            continue;
        }
        // Micro-batch sizes that some (S, M) of this T uses.
        std::map<std::int64_t, std::vector<std::pair<int, int>>> by_micro;  // b -> (S, M)
        for (int S : stage_counts) {
            std::int64_t R = P / (std::int64_t{T} * S);
            if (B % R != 0) {
                ++st.skipped;
                continue;
            }
            for (int M : divisors_of(B / R)) by_micro[B / R / M].emplace_back(S, M);
        }
        std::map<std::tuple<int, bool>, std::vector<LayerSync>> sync_cache;  // (S, zero) -> per-layer sync
        for (const auto& [b, uses] : by_micro) {
            MicroContext c = make_context(model, T, b, layouts);
            // Stage partitions for every S at once, per link kind and recomputation setting.
            std::map<std::tuple<bool, bool>, std::vector<std::vector<int>>> partitions;
            int s_max = 1;
            for (auto [S, M] : uses) s_max = std::max(s_max, S);
            for (auto [S, M] : uses) {
                (void)M;
                for (bool recompute : {false, true}) {
                    bool intra = d > 1 && std::int64_t{T} * S <= d;
                    auto key = std::make_tuple(intra, recompute);
                    if (!partitions.count(key)) {
                        StageWeights w = weights_from(c, stage_link(model, T, S), recompute);
                        std::vector<std::vector<int>> all;
                        partition_stages(w, cuts, intra ? std::min(s_max, d / T) : s_max, &all);
                        partitions[key] = std::move(all);
                    }
                    const auto& all = partitions[key];
                    if (S >= static_cast<int>(all.size()) || all[S].empty()) continue;
                    for (Schedule schedule : {Schedule::gpipe, Schedule::one_f_one_b}) {
                        for (bool zero : {false, true}) {
                            PipelineSpec spec;
                            spec.tensor = T;
                            spec.stages = S;
                            spec.micro_batches = M;
                            spec.replicas = static_cast<int>(P / (std::int64_t{T} * S));
                            spec.schedule = schedule;
                            spec.zero = zero;
                            spec.recompute = recompute;
                            spec.stage_first = all[S];
                            auto sync_key = std::make_tuple(S, zero);
                            auto it = sync_cache.find(sync_key);
                            if (it == sync_cache.end())
                                it = sync_cache.emplace(sync_key, replica_sync(model, c, S, spec.replicas, zero)).first;
                            Evaluation e = evaluate(model, c, spec, it->second, false);
                            ++st.configurations;
                            if (!e.cost.feasible) ++st.infeasible;
                            Best& slot = best[{T, S}];
                            bool better = e.cost.feasible ? (!slot.feasible || e.cost.iteration_s < slot.iteration)
                                                          : (!slot.feasible && e.cost.memory_bytes < slot.memory);
                            if (better) slot = Best{spec, e.cost.iteration_s, e.cost.memory_bytes, e.cost.feasible};
                        }
                    }
                }
            }
        }
    }
    std::vector<PipelineCandidate> out;
    for (const auto& [key, slot] : best) {
        PipelineCandidate pc;
        pc.spec = slot.spec;
        pc.layouts = tensor_layouts(model, slot.spec.tensor);
        pc.score = score_pipeline(model, pc.spec, pc.layouts);
        pc.score.model_flops = flops;
        out.push_back(std::move(pc));
    }
    std::stable_sort(out.begin(), out.end(), [](const PipelineCandidate& a, const PipelineCandidate& b) {
        const auto& x = a.score.plan.cost;
        const auto& y = b.score.plan.cost;
        if (x.feasible != y.feasible) return x.feasible;
        return x.feasible ? x.iteration_s < y.iteration_s : x.memory_bytes < y.memory_bytes;
    });
    return out;
}

PipelineCandidate plan_pipeline(const CostModel& model, PipelineSpec spec, const std::string& origin) {
    const auto& o = model.options();
    const int layers = static_cast<int>(model.network().layers.size()) - 1;
    auto fail = [&](const char* option, const std::string& why) { throw InputError(origin, option, why); };
    if (spec.tensor < 1 || o.procs % spec.tensor != 0)
        fail("--tensor",
             std::to_string(spec.tensor) + " processes per stage do not divide P = " + std::to_string(o.procs));
    if (spec.stages < 1 || (o.procs / spec.tensor) % spec.stages != 0)
        fail("--stages", std::to_string(spec.stages) + " stages of " + std::to_string(spec.tensor) +
                             " processes do not divide P = " + std::to_string(o.procs));
    if (spec.stages > layers)
        fail("--stages", std::to_string(spec.stages) + " stages but " + model.network().name + " has only " +
                             std::to_string(layers) + " layers");
    if (spec.replicas < 1 || std::int64_t{spec.tensor} * spec.stages * spec.replicas != o.procs)
        fail("--replicas", std::to_string(spec.replicas) + " replicas x " + std::to_string(spec.stages) + " stages x " +
                               std::to_string(spec.tensor) + " processes is not P = " + std::to_string(o.procs));
    if (o.batch % spec.replicas != 0)
        fail("--replicas", "batch " + std::to_string(o.batch) + " cannot be split over " +
                               std::to_string(spec.replicas) + " replicas");
    if (spec.micro_batches < 1 || (o.batch / spec.replicas) % spec.micro_batches != 0)
        fail("--micro-batches", std::to_string(spec.micro_batches) +
                                    " micro-batches do not divide the per-replica batch " +
                                    std::to_string(o.batch / spec.replicas));
    PipelineCandidate pc;
    pc.layouts = tensor_layouts(model, spec.tensor);
    if (pc.layouts.empty())
        fail("--tensor",
             "some layer of " + model.network().name + " cannot be split " + std::to_string(spec.tensor) + " ways");
    const std::vector<int> cuts = cut_positions(model);
    if (spec.stages > static_cast<int>(cuts.size()) + 1)
        fail("--stages", std::to_string(spec.stages) + " stages but " + model.network().name + " has only " +
                             std::to_string(cuts.size() + 1) + " places to cut (where a single tensor crosses)");
    spec.device_of.clear();
    spec.stage_first = {1};
    spec.stage_first = partition_stages(stage_weights(model, spec, pc.layouts), cuts, spec.stages);
    pc.spec = spec;
    pc.score = score_pipeline(model, spec, pc.layouts);
    return pc;
}

void append_pipeline_candidates(const CostModel& model, SearchResult& result) {
    PipelineSearchStats stats;
    for (PipelineCandidate& pc : search_pipelines(model, &stats)) {
        Candidate c;
        c.strategy = pc.spec.tensor > 1 ? "tp-pp-dp" : "pipeline";
        c.grid = pipeline_label(pc.spec, pc.score);
        c.pr = pc.spec.tensor * pc.spec.stages;
        c.pc = pc.spec.replicas;
        c.plan = std::move(pc.score.plan);
        c.pipeline = pc.spec;
        result.ranked.push_back(std::move(c));
    }
    result.layout_evaluations += stats.configurations;
    result.pipeline_configurations += stats.configurations;
    result.pipeline_skipped += stats.skipped;
    result.pipeline_over_memory += stats.infeasible;
    for (GraphPartitionCandidate& gc : search_graph_partitions(model)) {
        Candidate c;
        c.strategy = "graph-partition";
        c.grid = graph_partition_label(gc);
        c.pr = gc.spec.stages;
        c.pc = gc.spec.replicas;
        c.plan = std::move(gc.score.plan);
        c.pipeline = gc.spec;
        result.ranked.push_back(std::move(c));
    }
}

PipelineProgram pipeline_program(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts) {
    std::string problem = pipeline_problem(model, spec);
    if (!problem.empty()) throw std::invalid_argument("pipeline_program: " + problem);
    if (!spec.device_of.empty())
        throw std::invalid_argument("pipeline_program: graph partitions (device_of) have no stage program");
    PipelineProgram out;
    out.micro_batch = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
    MicroContext c = make_context(model, spec.tensor, out.micro_batch, layouts);
    const int L = c.layer_count;
    for (int s = 0; s < spec.stages; ++s) {
        PipelineProgram::Stage st;
        st.first = spec.stage_first[s];
        st.last = s + 1 < spec.stages ? spec.stage_first[s + 1] - 1 : L - 1;
        if (s > 0) {
            st.recv_bytes = c.boundary_bytes[st.first];
            st.recv_s = clusters::point_to_point_seconds(st.recv_bytes, boundary_link(model, spec, s));  // evaluate()'s recv_f
        }
        out.stages.push_back(st);
    }
    out.inner_sync_group = c.sync_group;
    out.sync = replica_sync_calls(model, c, spec.stages, spec.replicas, spec.zero);
    out.micro = std::move(c.plan);
    return out;
}

}  // namespace dnnplan::planner
