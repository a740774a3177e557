#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <tuple>

#include "pipeline.hpp"
#include "planner/graph_partition.hpp"

namespace dnnplan::planner {

using networks::Layer;
using networks::LayerKind;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// Every divisor of n in increasing order, in O(sqrt n).
std::vector<int> divisors_of(std::int64_t n) {
    std::vector<int> small, large;
    for (std::int64_t d = 1; d * d <= n; ++d)
        if (n % d == 0) {
            small.push_back(static_cast<int>(d));
            if (d * d != n) large.push_back(static_cast<int>(n / d));
        }
    small.insert(small.end(), large.rbegin(), large.rend());
    return small;
}
}  // namespace

double model_flops_per_device(const CostModel& model) {
    const auto& o = model.options();
    networks::NetworkTotals t = networks::totals(model.network(), o.batch);
    return (t.fwd_flops + t.bwd_input_flops + t.bwd_weight_flops) / static_cast<double>(o.procs);
}

double hardware_flops_per_device(const CostModel& model, Recompute recompute) {
    const auto& o = model.options();
    double extra = 0;  // per sample
    for (const Layer& layer : model.network().layers)
        extra += static_cast<double>(recompute == Recompute::full        ? layer.fwd_flops
                                     : recompute == Recompute::selective ? layer.attention_core_flops
                                                                         : 0);
    return model_flops_per_device(model) + extra * static_cast<double>(o.batch) / static_cast<double>(o.procs);
}

std::string pipeline_problem(const CostModel& model, const PipelineSpec& spec) {
    const auto& o = model.options();
    const int layers = static_cast<int>(model.network().layers.size()) - 1;
    if (spec.tensor < 1 || spec.stages < 1 || spec.replicas < 1 || spec.micro_batches < 1 || spec.interleave < 1)
        return "tensor, stages, replicas, micro-batches and interleave must be at least 1";
    if (std::string why = interleave_problem(spec); !why.empty()) return why;
    if (spec.micro_batches > kMaxMicroBatches)
        return std::to_string(spec.micro_batches) + " micro-batches, more than the limit of " +
               std::to_string(kMaxMicroBatches);
    std::int64_t used = std::int64_t{spec.tensor} * spec.stages * spec.replicas;
    if (used != o.procs)
        return "T x S x R = " + std::to_string(spec.tensor) + " x " + std::to_string(spec.stages) + " x " +
               std::to_string(spec.replicas) + " = " + std::to_string(used) + " is not P = " + std::to_string(o.procs);
    if (spec.virtual_stages() > layers)
        return std::to_string(spec.virtual_stages()) + " stages but the network has only " + std::to_string(layers) +
               " layers";
    if (o.batch % spec.replicas != 0)
        return "batch " + std::to_string(o.batch) + " cannot be split over " + std::to_string(spec.replicas) +
               " replicas";
    if ((o.batch / spec.replicas) % spec.micro_batches != 0)
        return std::to_string(spec.micro_batches) + " micro-batches do not divide the per-replica batch " +
               std::to_string(o.batch / spec.replicas);
    if (spec.device_of.empty()) {
        if (static_cast<int>(spec.stage_first.size()) != spec.virtual_stages())
            return "stage_first has " + std::to_string(spec.stage_first.size()) + " entries for " +
                   std::to_string(spec.virtual_stages()) + " stages";
        if (spec.stage_first.front() != 1) return "the first stage must start at layer 1";
        for (int s = 1; s < spec.virtual_stages(); ++s)
            if (spec.stage_first[s] <= spec.stage_first[s - 1] || spec.stage_first[s] > layers)
                return "stage " + std::to_string(s) + " starts at layer " + std::to_string(spec.stage_first[s]) +
                       ", not after stage " + std::to_string(s - 1) + " and within the network";
    }
    return "";
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
        } else if (layer.kind == LayerKind::embedding) {
            prefs = {row, col};  // the vocabulary (the residual stream stays whole), else the dimension
        } else {
            prefs = {col};  // attention (heads)
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

PipelineScore score_pipeline(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts) {
    PipelineScore out;
    std::string problem = pipeline_problem(model, spec);
    out.model_flops = model_flops_per_device(model);
    if (!problem.empty()) {
        out.plan.anchor_layouts = layouts;
        out.plan.layers.assign(model.network().layers.size(), LayerCost{});
        out.plan.cost.set_infeasible(Infeasibility::configuration, problem);
        return out;
    }
    if (!spec.device_of.empty()) return score_graph_partition(model, spec, layouts);
    const std::int64_t micro = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
    LayerTable table = make_layer_table(model, spec.tensor, micro, layouts, spec.sequence_parallel);
    const std::vector<LayerSync> sync = replica_sync(model, table, spec.stages, spec.replicas, spec.zero);
    StageEvaluation e = evaluate_stages(model, table, spec, sync, true);
    out.plan = std::move(table.plan);
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
    if (spec.interleave > 1) opts += " x" + std::to_string(spec.interleave) + " chunks";
    if (spec.zero) opts += ", zero-1";
    if (spec.recompute != Recompute::none) opts += ", recompute " + to_string(spec.recompute);
    if (spec.sequence_parallel) opts += ", sequence-parallel";
    std::snprintf(buffer, sizeof buffer, "TP=%d x PP=%d x DP=%d, M=%d, %s, balance %.2f, cut %s, %.3g TFLOP/s/proc",
                  spec.tensor, spec.stages, spec.replicas, spec.micro_batches, opts.c_str(), score.balance,
                  human_bytes(score.cut_bytes).c_str(), score.flops_per_device() / 1e12);
    return buffer;
}

namespace {
// The best configuration found so far for one (T, S): the fastest feasible one or, while nothing
// fits, the least over memory.
struct Best {
    PipelineSpec spec;
    double iteration = kInf, memory = kInf;
    bool feasible = false;
    void offer(const PipelineSpec& candidate, const CostBreakdown& cost) {
        const bool better =
            cost.feasible ? (!feasible || cost.iteration_s < iteration) : (!feasible && cost.memory_bytes < memory);
        if (better) *this = Best{candidate, cost.iteration_s, cost.memory_bytes, cost.feasible};
    }
};
using BestPerShape = std::map<std::pair<int, int>, Best>;  // per (T, S)

// The (S, M) pairs of tensor width T, grouped by micro-batch size B / (R M): the configurations
// that share one LayerTable. M is a divisor of the per-replica batch, at most kMaxMicroBatches.
std::map<std::int64_t, std::vector<std::pair<int, int>>> configurations_by_micro_batch(
    const CostModel& model, int T, const std::vector<int>& stage_counts, std::int64_t micro_batch_size,
    PipelineSearchStats& stats) {
    const std::int64_t P = model.options().procs, B = model.options().batch;
    std::map<std::int64_t, std::vector<std::pair<int, int>>> by_micro;
    for (int S : stage_counts) {
        const std::int64_t R = P / (std::int64_t{T} * S);
        if (B % R != 0) {
            ++stats.skipped;
            continue;
        }
        if (micro_batch_size > 0) {  // narrowed: the one M of that size, when it divides
            if ((B / R) % micro_batch_size != 0 || (B / R) / micro_batch_size > kMaxMicroBatches) {
                ++stats.skipped;
                continue;
            }
            by_micro[micro_batch_size].emplace_back(S, static_cast<int>((B / R) / micro_batch_size));
            continue;
        }
        for (int M : micro_batch_counts(B / R, S)) by_micro[B / R / M].emplace_back(S, M);
    }
    return by_micro;
}

// The schedules searched for S stages and M micro-batches: GPipe, 1F1B and interleaved 1F1B with
// V = 2, 4, ... kMaxSearchInterleave chunks when M is a multiple of S and the partitions (up to
// `max_parts` virtual stages) hold S V stages.
std::vector<std::pair<Schedule, int>> schedules_of(int S, int M, int max_parts) {
    std::vector<std::pair<Schedule, int>> out{{Schedule::gpipe, 1}, {Schedule::one_f_one_b, 1}};
    if (S < 2 || M % S != 0) return out;
    for (int V = 2; V <= kMaxSearchInterleave && S * V <= max_parts; V *= 2) out.emplace_back(Schedule::one_f_one_b, V);
    return out;
}

// Scores every schedule, ZeRO and recomputation setting of the (S, M) pairs that share the
// micro-batch of `table`, each with its best stage partition, into `best`.
void score_micro_batch(const CostModel& model, const LayerTable& table, const std::vector<std::pair<int, int>>& uses,
                       const std::vector<int>& cuts,
                       std::map<std::tuple<int, bool>, std::vector<LayerSync>>& sync_cache, BestPerShape& best,
                       const std::optional<Recompute>& only_recompute, PipelineSearchStats& stats) {
    const int T = table.tensor;
    const int d = model.links().devices_per_node;
    const double capacity = static_cast<double>(model.cluster().device.usable_memory_bytes());
    // Stage partitions for every S at once, per link kind and recomputation setting.
    std::map<std::tuple<bool, Recompute>, std::vector<std::vector<int>>> partitions;
    std::map<std::tuple<bool, Recompute>, StageWeights> weights;
    // Interleaved: the chunk partition rebalanced per device (balance_devices), per (key, S, V).
    std::map<std::tuple<bool, Recompute, int, int>, std::vector<int>> device_balanced;
    int s_max = 1;
    for (auto [S, M] : uses) s_max = std::max(s_max, S);
    const int pieces = static_cast<int>(cuts.size()) + 1;  // the most (virtual) stages a partition can have
    // Selective recomputation only differs from none where there is attention.
    const bool attention = table.prefix.back().checkpoints > 0;
    for (auto [S, M] : uses)
        for (Recompute recompute : {Recompute::none, Recompute::selective, Recompute::full}) {
            if (recompute == Recompute::selective && !attention) continue;
            if (only_recompute && *only_recompute != recompute) continue;
            const bool intra = model.links().fits_in_node(std::int64_t{T} * S);
            const auto key = std::make_tuple(intra, recompute);
            if (!partitions.count(key)) {
                const StageWeights& w = weights[key] = weights_from(table, stage_link(model, T, S), recompute);
                std::vector<std::vector<int>> all;
                partition_stages(w, cuts, std::min(pieces, (intra ? std::min(s_max, d / T) : s_max) * kMaxSearchInterleave),
                                 &all);
                partitions[key] = std::move(all);
            }
            const auto& all = partitions[key];
            if (S >= static_cast<int>(all.size()) || all[S].empty()) continue;
            for (auto [schedule, V] : schedules_of(S, M, static_cast<int>(all.size()) - 1))
                for (bool zero : {false, true}) {
                    PipelineSpec spec;
                    spec.tensor = T;
                    spec.stages = S;
                    spec.micro_batches = M;
                    spec.replicas = static_cast<int>(model.options().procs / (std::int64_t{T} * S));
                    spec.schedule = schedule;
                    spec.interleave = V;
                    spec.zero = zero;
                    spec.recompute = recompute;
                    spec.sequence_parallel = table.options.sequence_parallel;
                    if (V > 1) {
                        const auto balanced_key = std::make_tuple(intra, recompute, S, V);
                        auto it = device_balanced.find(balanced_key);
                        if (it == device_balanced.end())
                            it = device_balanced
                                     .emplace(balanced_key, balance_devices(weights.at(key), cuts, all[S * V], S))
                                     .first;
                        spec.stage_first = it->second;
                    } else {
                        spec.stage_first = all[S * V];
                    }
                    auto sync = sync_cache.find({S, zero});
                    if (sync == sync_cache.end())
                        sync =
                            sync_cache
                                .emplace(std::make_tuple(S, zero), replica_sync(model, table, S, spec.replicas, zero))
                                .first;
                    ++stats.configurations;
                    // Once (T, S) has a feasible plan, one over memory cannot win (Best::offer): its
                    // memory decides it, without walking its schedule (most of the search's time).
                    Best& shape_best = best[{T, S}];
                    if (shape_best.feasible &&
                        (!table.plan.cost.feasible ||
                         (capacity > 0 && worst_stage_memory(table, spec).memory.total() > capacity))) {
                        ++stats.infeasible;
                        continue;
                    }
                    const StageEvaluation e = evaluate_stages(model, table, spec, sync->second, false);
                    if (!e.cost.feasible) ++stats.infeasible;
                    shape_best.offer(spec, e.cost);
                }
        }
}
}  // namespace

std::vector<PipelineCandidate> search_pipelines(const CostModel& model, PipelineSearchStats* stats,
                                                const PipelineNarrowing& narrowing) {
    PipelineSearchStats local;
    PipelineSearchStats& st = stats ? *stats : local;
    const std::int64_t P = model.options().procs;
    const int d = model.links().devices_per_node;
    const int layers = static_cast<int>(model.network().layers.size()) - 1;
    const std::vector<int> cuts = cut_positions(model);
    const int max_stages = static_cast<int>(cuts.size()) + 1;

    BestPerShape best;
    for (int T : divisors_of(P)) {
        if (T > d) break;  // tensor groups stay inside a node (hierarchical placement)
        const std::vector<Layout> layouts = tensor_layouts(model, T);
        std::vector<int> stage_counts;
        for (int S : divisors_of(P / T))
            if (S <= max_stages && S <= layers) stage_counts.push_back(S);
        if (layouts.empty()) {
            st.skipped += static_cast<long long>(stage_counts.size());
            continue;
        }
        // Sequence parallelism: where a tensor group holds attention (Korthikanti et al. 2022).
        const bool attention = std::any_of(model.network().layers.begin(), model.network().layers.end(),
                                           [](const Layer& l) { return l.kind == LayerKind::attention; });
        for (bool sequence_parallel : {false, true}) {
            if (sequence_parallel && (T == 1 || !attention)) continue;
            if (narrowing.sequence_parallel && *narrowing.sequence_parallel != sequence_parallel) continue;
            // (S, zero) -> per-layer sync (the weights' shards do not depend on sequence parallelism,
            // but the table does: one cache per setting)
            std::map<std::tuple<int, bool>, std::vector<LayerSync>> sync_cache;
            for (const auto& [b, uses] :
                 configurations_by_micro_batch(model, T, stage_counts, narrowing.micro_batch_size, st))
                score_micro_batch(model, make_layer_table(model, T, b, layouts, sequence_parallel), uses, cuts,
                                  sync_cache, best, narrowing.recompute, st);
        }
    }
    std::vector<PipelineCandidate> out;
    for (const auto& [key, slot] : best) {
        PipelineCandidate pc;
        pc.spec = slot.spec;
        pc.layouts = tensor_layouts(model, slot.spec.tensor);
        pc.score = score_pipeline(model, pc.spec, pc.layouts);
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
    if (spec.micro_batches > kMaxMicroBatches)
        fail("--micro-batches", std::to_string(spec.micro_batches) + " micro-batches, more than the limit of " +
                                    std::to_string(kMaxMicroBatches));
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
    spec.sequence_parallel = spec.sequence_parallel && spec.tensor > 1;  // nothing to split with one process
    if (spec.virtual_stages() > static_cast<int>(cuts.size()) + 1)
        fail("--interleave", std::to_string(spec.stages) + " stages x " + std::to_string(spec.interleave) +
                                 " chunks but " + model.network().name + " has only " +
                                 std::to_string(cuts.size() + 1) + " pieces between places to cut");
    if (std::string why = interleave_problem(spec); !why.empty()) fail("--interleave", why);
    const StageWeights weights = stage_weights(model, spec, pc.layouts);
    spec.stage_first = balance_devices(weights, cuts, partition_stages(weights, cuts, spec.virtual_stages()),
                                       spec.stages);
    pc.spec = spec;
    pc.score = score_pipeline(model, spec, pc.layouts);
    return pc;
}

std::vector<Candidate> pipeline_candidates(const CostModel& model, PipelineSearchStats* stats,
                                           const PipelineNarrowing& narrowing) {
    std::vector<Candidate> out;
    for (PipelineCandidate& pc : search_pipelines(model, stats, narrowing)) {
        Candidate c;
        c.strategy = pc.spec.tensor > 1 ? Strategy::tp_pp_dp : Strategy::pipeline;
        c.label = pipeline_label(pc.spec, pc.score);
        c.plan = std::move(pc.score.plan);
        c.pipeline = pc.spec;
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace dnnplan::planner
