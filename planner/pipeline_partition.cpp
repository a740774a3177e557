#include <algorithm>
#include <limits>

#include "pipeline.hpp"

namespace dnnplan::planner {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

StageWeights weights_from(const LayerTable& c, const clusters::LinkCost& link, Recompute recompute) {
    StageWeights w;
    const int n = c.layer_count;
    w.layer_s.assign(n, 0.0);
    w.recv_fwd_s.assign(n + 1, 0.0);
    w.recv_bwd_s.assign(n + 1, 0.0);
    for (int i = 1; i < n; ++i) {
        const LayerCost& lc = c.plan.layers[i];
        const double f = lc.fwd_compute_s + lc.fwd_comm_s;
        w.layer_s[i] = f + lc.bwd_compute_s + lc.bwd_comm_s + c.sum(i, i).recomputed(recompute);
    }
    for (int i = 2; i < n; ++i) {
        double t = c.boundary_seconds(i, link);
        w.recv_fwd_s[i] = t;  // the activations into a stage starting at i
        w.recv_bwd_s[i] = t;  // their gradient back into the stage ending at i - 1
    }
    return w;
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

StageWeights stage_weights(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts) {
    const std::int64_t micro = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
    const LayerTable c = make_layer_table(model, spec.tensor, micro, layouts, spec.sequence_parallel);
    return weights_from(c, stage_link(model, spec.tensor, spec.stages), spec.recompute);
}

namespace {
// Prefix sums of the layer seconds: layers [first, end) sum to pre[end] - pre[first].
std::vector<double> layer_prefix(const StageWeights& w) {
    std::vector<double> pre(w.layer_s.size() + 1, 0.0);
    for (std::size_t i = 0; i < w.layer_s.size(); ++i) pre[i + 1] = pre[i] + w.layer_s[i];
    return pre;
}
// Seconds of each stage (chunk) of a partition: its layers and its received transfers.
std::vector<double> stage_seconds(const StageWeights& w, const std::vector<double>& pre,
                                  const std::vector<int>& stage_first) {
    const int n = static_cast<int>(w.layer_s.size());
    std::vector<double> out(stage_first.size(), 0.0);
    for (std::size_t s = 0; s < stage_first.size(); ++s) {
        int first = stage_first[s];
        int end = s + 1 < stage_first.size() ? stage_first[s + 1] : n;
        double t = pre[end] - pre[first];
        if (s > 0) t += w.recv_fwd_s[first];
        if (s + 1 < stage_first.size()) t += w.recv_bwd_s[end];
        out[s] = t;
    }
    return out;
}
std::vector<double> device_seconds(const std::vector<double>& stage_s, int devices) {
    std::vector<double> out(devices, 0.0);
    for (std::size_t s = 0; s < stage_s.size(); ++s) out[s % devices] += stage_s[s];
    return out;
}
}  // namespace

double slowest_stage(const StageWeights& w, const std::vector<int>& stage_first) {
    double worst = 0;  // summed layer by layer, as the tests' brute force does
    const int n = static_cast<int>(w.layer_s.size());
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

double slowest_device(const StageWeights& w, const std::vector<int>& stage_first, int devices) {
    const std::vector<double> d = device_seconds(stage_seconds(w, layer_prefix(w), stage_first), std::max(1, devices));
    return *std::max_element(d.begin(), d.end());
}

std::vector<int> balance_devices(const StageWeights& w, const std::vector<int>& cuts, std::vector<int> starts,
                                 int devices) {
    const int chunks = static_cast<int>(starts.size()), n = static_cast<int>(w.layer_s.size());
    if (devices <= 1 || chunks <= devices) return starts;
    const std::vector<double> pre = layer_prefix(w);
    std::vector<int> u;  // the positions a chunk may start at, in order
    for (int c : cuts)
        if (c > 1 && c < n) u.push_back(c);
    auto index_of = [&](int position) {
        return static_cast<int>(std::lower_bound(u.begin(), u.end(), position) - u.begin());
    };
    // Each accepted move lowers one device below the busiest sum and keeps its neighbour below it,
    // so the sorted loads fall lexicographically; the cap bounds the work all the same.
    for (int step = 0; step < 4 * chunks * chunks; ++step) {
        const std::vector<double> load = device_seconds(stage_seconds(w, pre, starts), devices);
        const int busiest = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
        double best = load[busiest];
        std::vector<int> best_starts;
        // Boundary b separates chunk b - 1 (device (b - 1) mod S) from chunk b (device b mod S).
        for (int b = 1; b < chunks; ++b) {
            const int left = (b - 1) % devices, right = b % devices;
            if (left != busiest && right != busiest) continue;
            const int k = index_of(starts[b]);
            const int target = right == busiest ? k + 1 : k - 1;  // shrink the busiest device's chunk
            if (target < 0 || target >= static_cast<int>(u.size())) continue;
            if (u[target] <= starts[b - 1] || (b + 1 < chunks && u[target] >= starts[b + 1])) continue;
            std::vector<int> trial = starts;
            trial[b] = u[target];
            const std::vector<double> trial_load = device_seconds(stage_seconds(w, pre, trial), devices);
            const double pair = std::max(trial_load[left], trial_load[right]);
            if (pair < best) best = pair, best_starts = std::move(trial);
        }
        if (best_starts.empty()) break;
        starts = std::move(best_starts);
    }
    return starts;
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

}  // namespace dnnplan::planner
