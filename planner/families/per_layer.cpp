#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "planner/families.hpp"
#include "planner/rescore.hpp"

namespace dnnplan::planner {

using networks::LayerKind;

namespace {
// One input of a layer produced in another segment.
struct Edge {
    int consumer;
    int input_index;
    int producer;
};

// The segment graph: segments are named by their anchors; an edge between two segments is the
// list of layer edges from one into the other.
struct SegmentGraph {
    std::map<std::pair<int, int>, std::vector<Edge>> edges;
    std::map<int, std::vector<int>> predecessors, successors;

    const std::vector<Edge>& link(int from, int to) const { return find_or_empty(edges, {from, to}); }
    const std::vector<int>& predecessors_of(int a) const { return find_or_empty(predecessors, a); }
    const std::vector<int>& successors_of(int a) const { return find_or_empty(successors, a); }

private:
    template <class Map>
    static const typename Map::mapped_type& find_or_empty(const Map& map, const typename Map::key_type& key) {
        static const typename Map::mapped_type empty{};
        auto it = map.find(key);
        return it == map.end() ? empty : it->second;
    }
};

SegmentGraph segment_graph(const CostModel& model) {
    const auto& layers = model.network().layers;
    SegmentGraph graph;
    for (std::size_t x = 1; x < layers.size(); ++x)
        for (std::size_t k = 0; k < layers[x].inputs.size(); ++k) {
            int y = layers[x].inputs[k];
            int from = model.anchor_of(y), to = model.anchor_of(static_cast<int>(x));
            if (y == 0 || from == 0 || from == to) continue;
            auto& list = graph.edges[{from, to}];
            if (list.empty()) {
                graph.predecessors[to].push_back(from);
                graph.successors[from].push_back(to);
            }
            list.push_back(Edge{static_cast<int>(x), static_cast<int>(k), y});
        }
    return graph;
}

// Kahn's algorithm, the lowest ready anchor first; layer order when the segments form a cycle.
std::vector<int> topological_order(const CostModel& model, const SegmentGraph& graph) {
    const auto& anchors = model.anchors();
    std::map<int, int> indegree;
    for (int a : anchors) indegree[a] = static_cast<int>(graph.predecessors_of(a).size());
    std::vector<int> order;
    std::vector<int> ready;
    for (int a : anchors)
        if (indegree[a] == 0) ready.push_back(a);
    while (!ready.empty()) {
        std::sort(ready.begin(), ready.end(), std::greater<>());
        int a = ready.back();
        ready.pop_back();
        order.push_back(a);
        for (int s : graph.successors_of(a))
            if (--indegree[s] == 0) ready.push_back(s);
    }
    if (order.size() != anchors.size()) order = anchors;
    return order;
}

// The DP's main chain: the heaviest path (by forward FLOPs) ending at the last layer's segment.
std::vector<int> heaviest_chain(const CostModel& model, const SegmentGraph& graph, const std::vector<int>& order) {
    const auto& layers = model.network().layers;
    std::map<int, double> path_weight;
    std::map<int, int> path_prev;
    for (int a : order) {
        double own = 0;
        for (int i : model.segment(a)) own += static_cast<double>(layers[i].fwd_flops);
        double best = 0;
        int prev = -1;
        for (int p : graph.predecessors_of(a))
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
    return chain;
}

// One chain link of the DP: the edges' dists on either side as indices into the edge's distinct
// dists (they take few values), and the redistribution seconds memoised per (have, want) pair.
// The dists once per candidate on either side, not per pair: a follower's dist walks back to its
// anchor.
struct LinkMemo {
    std::size_t link_size = 0;
    std::vector<int> have, want;
    std::vector<std::vector<Dist>> have_values, want_values;
    std::vector<std::vector<double>> pair_seconds;  // per edge: [have * |want| + want], NaN until computed
    std::vector<int> link_producers;  // per edge: the layer whose output it carries

    bool filled() const { return !link_producers.empty(); }
    void fill(const CostModel& model, const std::vector<Edge>& link, const std::vector<Layout>& from,
              const std::vector<Layout>& to);
    // Seconds of the whole link from candidate p of the previous segment into candidate c, summed
    // edge by edge in the link's order.
    double seconds(const CostModel& model, std::size_t p, std::size_t c);
};

int index_of(std::vector<Dist>& values, const Dist& d) {
    auto it = std::find(values.begin(), values.end(), d);
    if (it != values.end()) return static_cast<int>(it - values.begin());
    values.push_back(d);
    return static_cast<int>(values.size()) - 1;
}

void LinkMemo::fill(const CostModel& model, const std::vector<Edge>& link, const std::vector<Layout>& from,
                    const std::vector<Layout>& to) {
    link_size = link.size();
    have.resize(from.size() * link_size);
    want.resize(to.size() * link_size);
    have_values.resize(link_size);
    want_values.resize(link_size);
    pair_seconds.resize(link_size);
    for (std::size_t k = 0; k < link_size; ++k) {
        const Edge& e = link[k];
        link_producers.push_back(e.producer);
        for (std::size_t p = 0; p < from.size(); ++p)
            have[p * link_size + k] = index_of(have_values[k], model.segment_output_dist(e.producer, from[p]));
        for (std::size_t c = 0; c < to.size(); ++c)
            want[c * link_size + k] =
                index_of(want_values[k], model.required_input_dist(e.consumer, to[c], e.input_index));
        pair_seconds[k].assign(have_values[k].size() * want_values[k].size(), std::numeric_limits<double>::quiet_NaN());
    }
}

double LinkMemo::seconds(const CostModel& model, std::size_t p, std::size_t c) {
    double e = 0;
    for (std::size_t k = 0; k < link_size; ++k) {
        const int h = have[p * link_size + k], w = want[c * link_size + k];
        double& pair = pair_seconds[k][static_cast<std::size_t>(h) * want_values[k].size() + w];
        if (std::isnan(pair)) {
            const Dist& from = have_values[k][h];
            const Dist& to = want_values[k][w];
            pair = from == to ? 0.0 : model.redistribution_seconds(from, to, link_producers[k]);
        }
        e += pair;
    }
    return e;
}

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

// A segment's own seconds at one candidate, its sync weighted.
double own_seconds(const SegmentCost& cost, double sync_weight) { return cost.seconds + sync_weight * cost.sync_s; }

// The DP along the chain: per position, per candidate, the best total up to it and the
// predecessor's candidate achieving it.
struct ChainValues {
    std::vector<std::vector<double>> value;
    std::vector<std::vector<int>> choice;
};

// Candidate indices by ascending value, so that the scan can stop once a value alone reaches the
// best total.
std::vector<int> by_value(const std::vector<double>& value) {
    std::vector<int> sorted(value.size());
    for (std::size_t c = 0; c < sorted.size(); ++c) sorted[c] = static_cast<int>(c);
    std::sort(sorted.begin(), sorted.end(), [&](int x, int y) { return value[x] < value[y]; });
    return sorted;
}

// Position i's values from position i - 1's over their link; the first of equal totals wins.
void relax_link(const CostModel& model, const std::vector<SegmentCost>& costs, double sync_weight,
                const std::vector<double>& prev_value, LinkMemo& memo, std::vector<double>& value,
                std::vector<int>& choice, long long& evals) {
    const std::vector<int> sorted = by_value(prev_value);
    for (std::size_t c = 0; c < value.size(); ++c) {
        double best = std::numeric_limits<double>::infinity();
        int arg = -1;
        for (int p : sorted) {
            if (prev_value[p] >= best) break;
            double e = memo.seconds(model, static_cast<std::size_t>(p), c);
            ++evals;
            if (prev_value[p] + e < best) {
                best = prev_value[p] + e;
                arg = p;
            }
        }
        value[c] = own_seconds(costs[c], sync_weight) + best;
        choice[c] = arg;
    }
}

// Exact DP along the chain; skip connections are left to the exact final score.
ChainValues chain_dp(const CostModel& model, SegmentTable& table, const SegmentGraph& graph,
                     const std::vector<int>& chain, double sync_weight, long long& evals) {
    ChainValues dp;
    dp.value.resize(chain.size());
    dp.choice.resize(chain.size());
    if (table.links.size() != chain.size()) table.links.assign(chain.size(), LinkMemo{});
    for (std::size_t i = 0; i < chain.size(); ++i) {
        const std::vector<Layout>& cands = table.candidates[chain[i]];
        const std::vector<SegmentCost>& costs = table.costs[chain[i]];
        dp.value[i].assign(cands.size(), std::numeric_limits<double>::infinity());
        dp.choice[i].assign(cands.size(), -1);
        if (i == 0) {
            for (std::size_t c = 0; c < cands.size(); ++c) dp.value[i][c] = own_seconds(costs[c], sync_weight);
            continue;
        }
        LinkMemo& memo = table.links[i];
        if (!memo.filled()) memo.fill(model, graph.link(chain[i - 1], chain[i]), table.candidates[chain[i - 1]], cands);
        relax_link(model, costs, sync_weight, dp.value[i - 1], memo, dp.value[i], dp.choice[i], evals);
    }
    return dp;
}

// Follows the DP's choices back from the cheapest end; returns the segments it assigned.
std::set<int> assign_chain(const SegmentTable& table, const std::vector<int>& chain, const ChainValues& dp,
                           std::vector<Layout>& result) {
    std::set<int> assigned;
    if (table.candidates[chain.back()].empty()) return assigned;
    const std::vector<double>& last = dp.value.back();
    int c = static_cast<int>(std::min_element(last.begin(), last.end()) - last.begin());
    for (std::size_t i = chain.size(); i-- > 0 && c >= 0;) {
        result[chain[i]] = table.candidates[chain[i]][c];
        assigned.insert(chain[i]);
        c = dp.choice[i][c];
    }
    return assigned;
}

// An edge between a side segment and an assigned neighbour, whose side is fixed: its dist once,
// not per candidate.
struct FixedEdge {
    const Edge* edge;
    Dist dist;  // the neighbour's output (into the segment) or required input (out of it)
    bool into_segment;
    int group;                                  // one per neighbour, summed as a subtotal
    std::vector<std::pair<Dist, double>> seen;  // the segment's side takes few dists: memo
};

// The fixed edges of segment a, grouped by assigned neighbour, predecessors first.
std::vector<FixedEdge> fixed_edges(const CostModel& model, const SegmentGraph& graph, int a,
                                   const std::set<int>& assigned, const std::vector<Layout>& result, int& groups) {
    std::vector<FixedEdge> fixed;
    groups = 0;
    auto fix = [&](const std::vector<Edge>& list, bool into_segment, const Layout& neighbour) {
        ++groups;
        for (const Edge& e : list)
            fixed.push_back(FixedEdge{&e,
                                      into_segment ? model.segment_output_dist(e.producer, neighbour)
                                                   : model.required_input_dist(e.consumer, neighbour, e.input_index),
                                      into_segment,
                                      groups,
                                      {}});
    };
    for (int p : graph.predecessors_of(a))
        if (assigned.count(p)) fix(graph.link(p, a), true, result[p]);
    for (int s : graph.successors_of(a))
        if (assigned.count(s)) fix(graph.link(a, s), false, result[s]);
    return fixed;
}

// own plus the fixed edges' seconds at layout l. Summed per neighbour into a subtotal, which is
// added to the total: the order of the earlier per-neighbour sum, so the results stay bit for bit.
double plus_fixed_edges(const CostModel& model, std::vector<FixedEdge>& fixed, const Layout& l, double own) {
    double t = own;
    double subtotal = 0;
    int group = 0;
    for (FixedEdge& f : fixed) {
        if (f.group != group) {
            t += subtotal;
            subtotal = 0;
            group = f.group;
        }
        Dist mine = f.into_segment ? model.required_input_dist(f.edge->consumer, l, f.edge->input_index)
                                   : model.segment_output_dist(f.edge->producer, l);
        auto known = std::find_if(f.seen.begin(), f.seen.end(), [&](const auto& s) { return s.first == mine; });
        if (known == f.seen.end()) {
            const Dist& have = f.into_segment ? f.dist : mine;
            const Dist& want = f.into_segment ? mine : f.dist;
            f.seen.emplace_back(mine, have == want ? 0.0 : model.redistribution_seconds(have, want, f.edge->producer));
            known = f.seen.end() - 1;
        }
        subtotal += known->second;
    }
    return t + subtotal;
}

// A side segment (a branch off the chain), greedily against its assigned neighbours; the first of
// equal totals wins.
void assign_side_segment(const CostModel& model, const SegmentTable& table, const SegmentGraph& graph, int a,
                         double sync_weight, const std::set<int>& assigned, std::vector<Layout>& result,
                         long long& evals) {
    int groups = 0;
    std::vector<FixedEdge> fixed = fixed_edges(model, graph, a, assigned, result, groups);
    const auto& cs = table.candidates[a];
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < cs.size(); ++c) {
        double t = plus_fixed_edges(model, fixed, cs[c], own_seconds(table.costs[a][c], sync_weight));
        evals += groups;  // one layout-pair evaluation per assigned neighbour, as on DP edges
        if (t < best) {
            best = t;
            result[a] = cs[c];
        }
    }
}

std::vector<Layout> dp_over_table(const CostModel& model, SegmentTable& table, long long* evaluations,
                                  double sync_weight) {
    std::vector<Layout> result(model.network().layers.size());
    if (model.anchors().empty()) return result;
    long long evals = 0;
    const SegmentGraph graph = segment_graph(model);
    const std::vector<int> order = topological_order(model, graph);
    const std::vector<int> chain = heaviest_chain(model, graph, order);
    const ChainValues dp = chain_dp(model, table, graph, chain, sync_weight, evals);
    std::set<int> assigned = assign_chain(table, chain, dp, result);
    for (int a : order) {
        if (assigned.count(a)) continue;
        assign_side_segment(model, table, graph, a, sync_weight, assigned, result, evals);
        assigned.insert(a);
    }
    if (evaluations) *evaluations += evals;
    return result;
}
}  // namespace

std::vector<Layout> dynamic_programme(const CostModel& model, long long* evaluations, double sync_weight) {
    SegmentTable table = segment_table(model, evaluations);
    return dp_over_table(model, table, evaluations, sync_weight);
}

namespace {
// Feasible beats infeasible, then the shorter iteration.
bool better(const CostBreakdown& a, const CostBreakdown& b) {
    if (a.feasible != b.feasible) return a.feasible;
    return a.iteration_s < b.iteration_s;
}

// A lower bound of the exact score's iteration, kept for the plan of improve_locally and
// updated for a trial that changes one anchor's layout. The one-stage, one-micro-batch stage
// evaluator (planner/stage_evaluator.cpp stage_times, evaluate_stages) gives
//   iteration = F + B + past + step,
// F the layers' forward compute and blocking communication, B their backward ones and the
// gradient accumulation, step the optimizer's. past = contention + exposed sync (no tied copies on
// one stage) >= 0, and >= S - B with S the layers' syncs: SyncOverlap serialises the all-reduces
// (its network_free ends >= S) while its clock ends at B + contention, so exposed >= S - B -
// contention. Hence iteration >= F + max(B, S) + step.
// F + B + step are the segments' own seconds with the sync weighted 0 (CostModel::segment_cost:
// compute, blocking communication, step, accumulation, redistributions inside the segment; B's
// part in SegmentCost::backward_s) plus the redistributions on the edges between segments (charged
// to the consumer in both). Edges count wholly in B (B only over-estimated, F as much under:
// F + max(B, S) does not grow). Left out, each >= 0 or lowering S: segment 0 (the input's
// followers) and its edges. So the bound <= iteration in exact arithmetic.
class IterationBound {
public:
    IterationBound(const CostModel& model, const SegmentTable& table, const std::vector<Layout>& layouts)
        : model_(&model), table_(&table), own_(layouts.size()) {
        for (const auto& [pair, edges] : segment_graph(model).edges)
            if (pair.second != 0)  // into segment 0 (its layout is not in `layouts`): left out
                for (const Edge& e : edges) {
                    kept_edges_.push_back(e);
                    touching_[pair.first].push_back(e), touching_[pair.second].push_back(e);
                }
        reset(layouts);
    }
    // After the plan's layouts changed.
    void reset(const std::vector<Layout>& layouts) {
        total_ = Parts{};
        for (int a : model_->anchors()) {
            own_[a] = own_parts(a, layouts[a]);
            total_ += own_[a];
        }
        for (const Edge& e : kept_edges_) total_ += edge_parts(e, layouts);
    }
    // Whether the exact score of `layouts` (the plan's, `plan_layout` at anchor a, but a's set to
    // its trial) is not below `best`, by the bound less a rounding allowance: a generous 1e-9 of
    // the magnitudes summed (the sums and the evaluator's own rounding are within a few hundred
    // ulps of them, about 1e-13 relative).
    bool cannot_beat(int a, const std::vector<Layout>& layouts, const Layout& plan_layout, double best) const {
        std::vector<Layout>& old_layouts = scratch_;
        old_layouts = layouts;
        old_layouts[a] = plan_layout;
        Parts trial = total_, magnitude = total_;
        const Parts now = own_parts(a, layouts[a]);
        trial += now - own_[a];
        magnitude += now + own_[a];
        for (const Edge& e : touching(a)) {
            const Parts after = edge_parts(e, layouts), before = edge_parts(e, old_layouts);
            trial += after - before;
            magnitude += after + before;
        }
        const double bound = trial.seconds - trial.backward + std::max(trial.backward, trial.sync);
        return bound - 1e-9 * (magnitude.seconds + magnitude.backward + magnitude.sync) >= best;
    }

private:
    struct Parts {
        double seconds = 0, backward = 0, sync = 0;  // F + B + step, B, S
        Parts& operator+=(const Parts& o) {
            seconds += o.seconds, backward += o.backward, sync += o.sync;
            return *this;
        }
        Parts operator+(const Parts& o) const { return Parts{seconds + o.seconds, backward + o.backward, sync + o.sync}; }
        Parts operator-(const Parts& o) const { return Parts{seconds - o.seconds, backward - o.backward, sync - o.sync}; }
    };
    Parts own_parts(int a, const Layout& l) const {
        const std::vector<Layout>& cands = table_->candidates[a];
        const auto at = std::find(cands.begin(), cands.end(), l);
        const SegmentCost c =
            at == cands.end() ? model_->segment_cost(a, l) : table_->costs[a][static_cast<std::size_t>(at - cands.begin())];
        return Parts{c.seconds, c.backward_s, c.sync_s};
    }
    Parts edge_parts(const Edge& e, const std::vector<Layout>& layouts) const {
        const Dist have = model_->segment_output_dist(e.producer, layouts[model_->anchor_of(e.producer)]);
        const Dist want = model_->required_input_dist(e.consumer, layouts[model_->anchor_of(e.consumer)], e.input_index);
        const double seconds = have == want ? 0.0 : model_->redistribution_seconds(have, want, e.producer);
        return Parts{seconds, seconds, 0.0};
    }
    const std::vector<Edge>& touching(int a) const {
        static const std::vector<Edge> none;
        const auto it = touching_.find(a);
        return it == touching_.end() ? none : it->second;
    }
    const CostModel* model_;
    const SegmentTable* table_;
    std::vector<Edge> kept_edges_;               // between anchored segments
    std::map<int, std::vector<Edge>> touching_;  // per anchor, the edges into or out of its segment
    std::vector<Parts> own_;                     // per anchor, at the plan's layout
    Parts total_;
    mutable std::vector<Layout> scratch_;
};

// Coordinate descent with the exact score: change one anchor's layout at a time while that
// shortens the iteration. Only where the exact scores fit a small budget (each costs a pass over
// every layer), which covers the CNNs of tens of anchors but not ResNet-1001. A trial is scored
// by PlanRescorer (only the layers the change reaches costed again; the same score), or with
// `rescoring` full by CostModel::score (the reference the tests compare it with).
void improve_locally(const CostModel& model, const SegmentTable& table, std::vector<Layout>& layouts, ScoredPlan& plan,
                     long long* evaluations, TrialScoring scoring) {
    if (!plan.cost.feasible) return;
    const long long layers = static_cast<long long>(model.network().layers.size());
    long long options = 0;
    for (int a : model.anchors()) options += static_cast<long long>(table.candidates[a].size());
    // Layer evaluations. Each costs about 2 us in an exact score (not 10 ns): resnet50 at P = 512
    // spends most of its search here (perf, 2026-12-07).
    constexpr long long kBudget = 2'000'000;
    if (options * layers > kBudget) return;
    // A trial scored before on exactly the same layouts cannot win now: its score is the same and
    // the plan's only shortened since (it was rejected, or adopted and bettered). So per anchor, the
    // other anchors' layouts at its last visit and the layouts it tried then: a second pass skips
    // those while the others are unchanged (it re-scores the plan's former layout, kept then).
    std::vector<std::vector<Layout>> context(layouts.size());
    std::vector<std::vector<Layout>> tried(layouts.size());
    IterationBound bound(model, table, layouts);
    std::optional<PlanRescorer> rescorer;
    if (scoring == TrialScoring::incremental) rescorer.emplace(model, plan.anchor_layouts);
    const long long costed_before = rescorer ? rescorer->layers_costed() : 0;
    bool adopted = false;
    for (int pass = 0; pass < 2 && options * layers * (pass + 1) <= kBudget; ++pass) {
        bool improved = false;
        for (int a : model.anchors()) {
            const Layout kept = layouts[a];
            std::vector<Layout> others = layouts;
            others[a] = Layout{};
            const bool same_context = others == context[a];
            if (!same_context) tried[a].clear();
            context[a] = std::move(others);
            for (const Layout& l : table.candidates[a]) {
                if (l == kept) continue;
                if (same_context && std::find(tried[a].begin(), tried[a].end(), l) != tried[a].end()) continue;
                tried[a].push_back(l);
                layouts[a] = l;
                // The plan is feasible: a trial whose iteration cannot be shorter cannot win.
                if (bound.cannot_beat(a, layouts, plan.anchor_layouts[a], plan.cost.iteration_s)) {
                    layouts[a] = plan.anchor_layouts[a];
                    continue;
                }
                ScoredPlan trial = rescorer ? rescorer->score_with(a, l) : model.score(layouts, CostModel::CallText::omitted);
                if (!rescorer) *evaluations += layers - 1;
                if (better(trial.cost, plan.cost)) {
                    if (rescorer) rescorer->adopt(a, l);
                    plan = std::move(trial);
                    bound.reset(plan.anchor_layouts);
                    improved = true;
                } else {
                    layouts[a] = plan.anchor_layouts[a];
                }
            }
            layouts[a] = plan.anchor_layouts[a];
        }
        if (!improved) break;
        adopted = true;
    }
    if (rescorer) *evaluations += rescorer->layers_costed() - costed_before;
    // The trials' calls carry no text: the plan kept is scored again with it (the same numbers).
    if (adopted) {
        plan = model.score(plan.anchor_layouts);
        *evaluations += layers - 1;
    }
}
}  // namespace

Candidate per_layer_candidate(const CostModel& model, const std::vector<Candidate>& baselines, long long* evaluations,
                              TrialScoring scoring) {
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
    improve_locally(model, table, best_layouts, best_plan, &count, scoring);
    Candidate per_layer;
    per_layer.strategy = Strategy::per_layer;
    per_layer.grid = {0, 0};
    per_layer.plan = std::move(best_plan);
    return per_layer;
}

}  // namespace dnnplan::planner
