#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "planner/families.hpp"

namespace dnnplan::planner {

using networks::LayerKind;

namespace {
// One input of a layer produced in another segment.
struct Edge {
    int consumer;
    int input_index;
    int producer;
};

// Seconds of all edges from segment `from` (layout lf) into segment `to` (layout lt).
double edge_seconds(const CostModel& model, const std::vector<Edge>& edges, const Layout& lf, const Layout& lt) {
    double total = 0;
    for (const Edge& e : edges) {
        Dist have = model.segment_output_dist(e.producer, lf);
        Dist want = model.required_input_dist(e.consumer, lt, e.input_index);
        if (have == want) continue;
        double bytes = static_cast<double>(model.options().batch) * model.network().layers[e.producer].output_elements *
                       dtype_bytes(model.options().dtype);
        total += model.redistribution_seconds(have, want, bytes);
    }
    return total;
}
}  // namespace

namespace {
// One chain link of the DP: the edges' dists on either side as indices into the edge's distinct
// dists (they take few values), and the redistribution seconds memoised per (have, want) pair.
struct LinkMemo {
    std::size_t link_size = 0;
    std::vector<int> have, want;
    std::vector<std::vector<Dist>> have_values, want_values;
    std::vector<std::vector<double>> pair_seconds;  // per edge: [have * |want| + want], NaN until computed
    std::vector<double> link_bytes;
};

// Every anchor's candidate layouts and their segment costs, evaluated once per search and reused
// by the DP runs with different sync weights.
struct SegmentTable {
    std::vector<std::vector<Layout>> candidates;  // per layer (anchors only)
    std::vector<std::vector<SegmentCost>> costs;
    std::vector<LinkMemo> links;  // per position on the DP's chain, shared by the DP runs
};

SegmentTable segment_table(const CostModel& model, long long* evaluations) {
    SegmentTable table;
    const auto n = model.network().layers.size();
    table.candidates.resize(n);
    table.costs.resize(n);
    for (int a : model.anchors()) {
        table.candidates[a] = model.candidates(a);
        for (const Layout& l : table.candidates[a]) table.costs[a].push_back(model.segment_cost(a, l));
        // Each evaluation costs every layer of the segment under the layout.
        if (evaluations) *evaluations += static_cast<long long>(table.candidates[a].size() * model.segment(a).size());
    }
    return table;
}

std::vector<Layout> dp_over_table(const CostModel& model, SegmentTable& table, long long* evaluations,
                                  double sync_weight);
}  // namespace

std::vector<Layout> dynamic_programme(const CostModel& model, long long* evaluations, double sync_weight) {
    SegmentTable table = segment_table(model, evaluations);
    return dp_over_table(model, table, evaluations, sync_weight);
}

namespace {
std::vector<Layout> dp_over_table(const CostModel& model, SegmentTable& table, long long* evaluations,
                                  double sync_weight) {
    const auto& layers = model.network().layers;
    const auto& anchors = model.anchors();
    std::vector<Layout> result(layers.size());
    if (anchors.empty()) return result;
    long long evals = 0;

    // Segment graph: edges between segments, each a list of layer-level edges.
    std::map<std::pair<int, int>, std::vector<Edge>> edges;
    std::map<int, std::vector<int>> predecessors, successors;
    for (std::size_t x = 1; x < layers.size(); ++x)
        for (std::size_t k = 0; k < layers[x].inputs.size(); ++k) {
            int y = layers[x].inputs[k];
            int from = model.anchor_of(y), to = model.anchor_of(static_cast<int>(x));
            if (y == 0 || from == 0 || from == to) continue;
            auto& list = edges[{from, to}];
            if (list.empty()) {
                predecessors[to].push_back(from);
                successors[from].push_back(to);
            }
            list.push_back(Edge{static_cast<int>(x), static_cast<int>(k), y});
        }

    // Topological order of segments (Kahn); segments are anchors.
    std::map<int, int> indegree;
    for (int a : anchors) indegree[a] = static_cast<int>(predecessors[a].size());
    std::vector<int> order;
    std::vector<int> ready;
    for (int a : anchors)
        if (indegree[a] == 0) ready.push_back(a);
    while (!ready.empty()) {
        std::sort(ready.begin(), ready.end(), std::greater<>());
        int a = ready.back();
        ready.pop_back();
        order.push_back(a);
        for (int s : successors[a])
            if (--indegree[s] == 0) ready.push_back(s);
    }
    if (order.size() != anchors.size()) order = anchors;  // segment cycle: fall back to layer order

    // The main chain: the heaviest path (by forward FLOPs) ending at the last layer's segment.
    std::map<int, double> path_weight;
    std::map<int, int> path_prev;
    for (int a : order) {
        double own = 0;
        for (int i : model.segment(a)) own += static_cast<double>(layers[i].fwd_flops);
        double best = 0;
        int prev = -1;
        for (int p : predecessors[a])
            if (path_weight.count(p) && path_weight[p] > best) {
                best = path_weight[p];
                prev = p;
            }
        path_weight[a] = best + own;
        path_prev[a] = prev;
    }
    int end = model.anchor_of(static_cast<int>(layers.size()) - 1);
    if (end == 0) end = order.back();
    std::vector<int> chain;
    for (int a = end; a >= 0; a = path_prev[a]) chain.push_back(a);
    std::reverse(chain.begin(), chain.end());

    // Exact DP along the chain; skip connections are left to the exact final score.
    std::vector<std::vector<Layout>> cands(chain.size());
    std::vector<std::vector<double>> value(chain.size());
    std::vector<std::vector<int>> choice(chain.size());
    for (std::size_t i = 0; i < chain.size(); ++i) {
        cands[i] = table.candidates[chain[i]];
        value[i].assign(cands[i].size(), std::numeric_limits<double>::infinity());
        choice[i].assign(cands[i].size(), -1);
        // Predecessor candidates sorted by value: once a value alone exceeds the best total, stop.
        std::vector<int> sorted;
        // The link's dists once per candidate on either side (edge_seconds recomputes them per
        // pair, and a follower's dist walks back to its anchor); summed in edge_seconds' order.
        if (table.links.size() != chain.size()) table.links.assign(chain.size(), LinkMemo{});
        LinkMemo& memo = table.links[i];
        auto index_of = [](std::vector<Dist>& values, const Dist& d) {
            auto it = std::find(values.begin(), values.end(), d);
            if (it != values.end()) return static_cast<int>(it - values.begin());
            values.push_back(d);
            return static_cast<int>(values.size()) - 1;
        };
        if (i > 0) {
            sorted.resize(cands[i - 1].size());
            for (std::size_t c = 0; c < sorted.size(); ++c) sorted[c] = static_cast<int>(c);
            std::sort(sorted.begin(), sorted.end(), [&](int x, int y) { return value[i - 1][x] < value[i - 1][y]; });
        }
        if (i > 0 && memo.link_bytes.empty()) {
            const std::vector<Edge>& link = edges[{chain[i - 1], chain[i]}];
            memo.link_size = link.size();
            memo.have.resize(cands[i - 1].size() * memo.link_size);
            memo.want.resize(cands[i].size() * memo.link_size);
            memo.have_values.resize(memo.link_size);
            memo.want_values.resize(memo.link_size);
            memo.pair_seconds.resize(memo.link_size);
            for (std::size_t k = 0; k < memo.link_size; ++k) {
                const Edge& e = link[k];
                memo.link_bytes.push_back(static_cast<double>(model.options().batch) *
                                          model.network().layers[e.producer].output_elements *
                                          dtype_bytes(model.options().dtype));
                for (std::size_t p = 0; p < cands[i - 1].size(); ++p)
                    memo.have[p * memo.link_size + k] =
                        index_of(memo.have_values[k], model.segment_output_dist(e.producer, cands[i - 1][p]));
                for (std::size_t c = 0; c < cands[i].size(); ++c)
                    memo.want[c * memo.link_size + k] = index_of(
                        memo.want_values[k], model.required_input_dist(e.consumer, cands[i][c], e.input_index));
                memo.pair_seconds[k].assign(memo.have_values[k].size() * memo.want_values[k].size(),
                                            std::numeric_limits<double>::quiet_NaN());
            }
        }
        const std::size_t link_size = memo.link_size;
        for (std::size_t c = 0; c < cands[i].size(); ++c) {
            const SegmentCost& sc = table.costs[chain[i]][c];
            double own = sc.seconds + sync_weight * sc.sync_s;
            if (i == 0) {
                value[i][c] = own;
                continue;
            }
            double best = std::numeric_limits<double>::infinity();
            int arg = -1;
            for (int p : sorted) {
                if (value[i - 1][p] >= best) break;
                double e = 0;
                for (std::size_t k = 0; k < link_size; ++k) {
                    const int h = memo.have[p * link_size + k], w = memo.want[c * link_size + k];
                    double& seconds =
                        memo.pair_seconds[k][static_cast<std::size_t>(h) * memo.want_values[k].size() + w];
                    if (std::isnan(seconds)) {
                        const Dist& from = memo.have_values[k][h];
                        const Dist& to = memo.want_values[k][w];
                        seconds = from == to ? 0.0 : model.redistribution_seconds(from, to, memo.link_bytes[k]);
                    }
                    e += seconds;
                }
                ++evals;
                if (value[i - 1][p] + e < best) {
                    best = value[i - 1][p] + e;
                    arg = p;
                }
            }
            value[i][c] = own + best;
            choice[i][c] = arg;
        }
    }
    std::set<int> assigned;
    if (!cands.back().empty()) {
        int c = static_cast<int>(std::min_element(value.back().begin(), value.back().end()) - value.back().begin());
        for (std::size_t i = chain.size(); i-- > 0 && c >= 0;) {
            result[chain[i]] = cands[i][c];
            assigned.insert(chain[i]);
            c = choice[i][c];
        }
    }
    // Side segments (branches off the chain), greedily against their assigned neighbours.
    for (int a : order) {
        if (assigned.count(a)) continue;
        const auto& cs = table.candidates[a];
        double best = std::numeric_limits<double>::infinity();
        // The assigned neighbours' side of every edge is fixed: its dist once, not per candidate.
        struct Fixed {
            const Edge* edge;
            Dist dist;  // the neighbour's output (into a) or required input (out of a)
            bool into_a;
            double bytes;
            int group;                                  // one per neighbour: edge_seconds' subtotal
            std::vector<std::pair<Dist, double>> seen;  // this side's dists take few values: memo
        };
        std::vector<Fixed> fixed;
        int groups = 0;
        auto fix = [&](const std::vector<Edge>& list, bool into_a, const Layout& neighbour) {
            ++groups;
            for (const Edge& e : list) {
                double bytes = static_cast<double>(model.options().batch) *
                               model.network().layers[e.producer].output_elements * dtype_bytes(model.options().dtype);
                fixed.push_back(Fixed{&e,
                                      into_a ? model.segment_output_dist(e.producer, neighbour)
                                             : model.required_input_dist(e.consumer, neighbour, e.input_index),
                                      into_a,
                                      bytes,
                                      groups,
                                      {}});
            }
        };
        for (int p : predecessors[a])
            if (assigned.count(p)) fix(edges[{p, a}], true, result[p]);
        for (int s : successors[a])
            if (assigned.count(s)) fix(edges[{a, s}], false, result[s]);
        for (std::size_t c = 0; c < cs.size(); ++c) {
            const Layout& l = cs[c];
            double t = table.costs[a][c].seconds + sync_weight * table.costs[a][c].sync_s;
            // Summed as before: per neighbour a subtotal (edge_seconds), predecessors first.
            double subtotal = 0;
            int group = 0;
            for (Fixed& f : fixed) {
                if (f.group != group) {
                    t += subtotal;
                    subtotal = 0;
                    group = f.group;
                }
                Dist mine = f.into_a ? model.required_input_dist(f.edge->consumer, l, f.edge->input_index)
                                     : model.segment_output_dist(f.edge->producer, l);
                auto known = std::find_if(f.seen.begin(), f.seen.end(), [&](const auto& s) { return s.first == mine; });
                if (known == f.seen.end()) {
                    const Dist& have = f.into_a ? f.dist : mine;
                    const Dist& want = f.into_a ? mine : f.dist;
                    f.seen.emplace_back(mine, have == want ? 0.0 : model.redistribution_seconds(have, want, f.bytes));
                    known = f.seen.end() - 1;
                }
                subtotal += known->second;
            }
            t += subtotal;
            evals += groups;  // one layout-pair evaluation per assigned neighbour, as on DP edges
            if (t < best) {
                best = t;
                result[a] = l;
            }
        }
        assigned.insert(a);
    }
    if (evaluations) *evaluations += evals;
    return result;
}
}  // namespace

namespace {
// Feasible beats infeasible, then the shorter iteration.
bool better(const CostBreakdown& a, const CostBreakdown& b) {
    if (a.feasible != b.feasible) return a.feasible;
    return a.iteration_s < b.iteration_s;
}

// Coordinate descent with the exact score: change one anchor's layout at a time while that
// shortens the iteration. Only where the exact scores fit a small budget (each costs a pass over
// every layer), which covers the CNNs of tens of anchors but not ResNet-1001.
void improve_locally(const CostModel& model, const SegmentTable& table, std::vector<Layout>& layouts, ScoredPlan& plan,
                     long long* evaluations) {
    if (!plan.cost.feasible) return;
    const long long layers = static_cast<long long>(model.network().layers.size());
    long long options = 0;
    for (int a : model.anchors()) options += static_cast<long long>(table.candidates[a].size());
    constexpr long long kBudget = 2'000'000;  // layer evaluations, about 20 ms
    if (options * layers > kBudget) return;
    for (int pass = 0; pass < 2 && options * layers * (pass + 1) <= kBudget; ++pass) {
        bool improved = false;
        for (int a : model.anchors()) {
            const Layout kept = layouts[a];
            for (const Layout& l : table.candidates[a]) {
                if (l == kept) continue;
                layouts[a] = l;
                ScoredPlan trial = model.score(layouts);
                *evaluations += layers - 1;
                if (better(trial.cost, plan.cost)) {
                    plan = std::move(trial);
                    improved = true;
                } else {
                    layouts[a] = plan.anchor_layouts[a];
                }
            }
            layouts[a] = plan.anchor_layouts[a];
        }
        if (!improved) break;
    }
}
}  // namespace

Candidate per_layer_candidate(const CostModel& model, const std::vector<Candidate>& baselines, long long* evaluations) {
    long long local = 0;
    long long& count = evaluations ? *evaluations : local;
    // The DP's objective is additive, but how much gradient sync the backward pass hides depends on
    // the whole plan: run it with sync weighted 1, 1/2, 1/4 and 0 over one table of segment costs,
    // and keep the best exact score. A uniform assignment is a per-layer assignment too, so the
    // best baseline competes; then single-anchor changes are tried with exact scoring.
    SegmentTable table = segment_table(model, &count);
    std::vector<Layout> best_layouts;
    ScoredPlan best_plan;
    auto consider = [&](std::vector<Layout> layouts) {
        ScoredPlan scored = model.score(layouts);
        count += static_cast<long long>(model.network().layers.size() - 1);
        if (best_layouts.empty() || better(scored.cost, best_plan.cost)) {
            best_layouts = std::move(layouts);
            best_plan = std::move(scored);
        }
    };
    std::vector<double> weights{1.0};
    if (model.options().overlap_sync) weights.insert(weights.end(), {0.5, 0.25, 0.0});
    for (double weight : weights) consider(dp_over_table(model, table, &count, weight));
    for (const auto& c : baselines)
        if (c.plan.cost.feasible && better(c.plan.cost, best_plan.cost)) {
            best_layouts = c.plan.anchor_layouts;
            best_plan = c.plan;
        }
    improve_locally(model, table, best_layouts, best_plan, &count);
    Candidate per_layer;
    per_layer.strategy = Strategy::per_layer;
    per_layer.grid = {0, 0};
    per_layer.plan = std::move(best_plan);
    return per_layer;
}

}  // namespace dnnplan::planner
