#include "graph_partition.hpp"

#include "planner/stage_evaluator.hpp"

#include <metis.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>

namespace dnnplan::planner {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Layer-level view: the weight of each layer (forward + backward) and each producer-consumer
// tensor's bytes (forward activation + its gradient), the pairs being contracted.
struct LayerGraphView {
    std::vector<double> weight;                                 // per layer
    std::vector<std::pair<std::pair<int, int>, double>> edges;  // (producer, consumer) -> bytes
};

LayerGraphView layer_view(const DataflowGraph& g) {
    LayerGraphView v;
    v.weight.assign(g.layers, 0.0);
    for (int i = 1; i < g.layers; ++i) v.weight[i] = g.seconds[2 * i] + g.seconds[2 * i + 1];
    for (const auto& e : g.edges) {
        int a = e.from / 2, b = e.to / 2;
        if (a == b) continue;  // saved activations stay with their layer
        int u = std::min(a, b), w = std::max(a, b);
        v.edges.push_back({{u, w}, e.bytes});
    }
    return v;
}

}  // namespace

DataflowGraph training_graph(const CostModel& micro_model) {
    const auto& layers = micro_model.network().layers;
    const int n = static_cast<int>(layers.size());
    std::vector<Layout> ones(n);
    ScoredPlan plan = micro_model.layer_costs(ones);
    DataflowGraph g;
    g.layers = n;
    g.seconds.assign(2 * n, 0.0);
    const double eb = static_cast<double>(dtype_bytes(micro_model.options().dtype));
    const double b = static_cast<double>(micro_model.options().batch);
    for (int i = 1; i < n; ++i) {
        const LayerCost& lc = plan.layers[i];
        g.seconds[2 * i] = lc.fwd_compute_s + lc.fwd_comm_s;
        g.seconds[2 * i + 1] = lc.bwd_compute_s + lc.bwd_comm_s;
        g.edges.push_back({2 * i, 2 * i + 1, lc.activation_bytes});
        for (int p : layers[i].inputs) {
            if (p == 0) continue;
            const double bytes = output_bytes(layers[p], b, eb);
            g.edges.push_back({2 * p, 2 * i, bytes});          // the activation
            g.edges.push_back({2 * i + 1, 2 * p + 1, bytes});  // its gradient
        }
    }
    return g;
}

GraphPartition measure(const DataflowGraph& graph, std::vector<int> part, int parts) {
    GraphPartition out;
    out.part = std::move(part);
    out.parts = parts;
    LayerGraphView v = layer_view(graph);
    std::vector<double> load(parts, 0.0);
    double total = 0;
    for (int i = 1; i < graph.layers; ++i) {
        load[out.part[i]] += v.weight[i];
        total += v.weight[i];
    }
    double heaviest = *std::max_element(load.begin(), load.end());
    out.balance = total > 0 ? heaviest / (total / parts) : 1;
    for (const auto& [uv, bytes] : v.edges)
        if (out.part[uv.first] != out.part[uv.second]) out.cut_bytes += bytes;
    return out;
}

GraphPartition greedy_topological_split(const DataflowGraph& graph, int parts) {
    LayerGraphView v = layer_view(graph);
    double total = std::accumulate(v.weight.begin(), v.weight.end(), 0.0);
    std::vector<int> part(graph.layers, -1);
    int current = 0;
    double filled = 0;
    for (int i = 1; i < graph.layers; ++i) {
        // Close the part when adding this layer overshoots the target by more than leaving it out.
        double target = total / parts * (current + 1);
        if (current + 1 < parts && filled + v.weight[i] > target && filled + v.weight[i] - target > target - filled)
            ++current;
        part[i] = current;
        filled += v.weight[i];
    }
    return measure(graph, std::move(part), parts);
}

namespace {

// Boundary refinement (Fiduccia-Mattheyses-like, greedy, no hill climbing): first move vertices
// out of parts above the cap with the least cut increase, then move any vertex to the neighbouring
// part that lowers the cut most while every part stays under the cap.
std::vector<int> refine(const DataflowGraph& graph, std::vector<int> part, int parts, double tolerance) {
    LayerGraphView v = layer_view(graph);
    const int n = graph.layers;
    std::vector<std::vector<std::pair<int, double>>> adjacency(n);
    for (const auto& [uv, bytes] : v.edges) {
        adjacency[uv.first].push_back({uv.second, bytes});
        adjacency[uv.second].push_back({uv.first, bytes});
    }
    std::vector<double> load(parts, 0.0);
    double total = 0;
    for (int i = 1; i < n; ++i) load[part[i]] += v.weight[i], total += v.weight[i];
    const double cap = (1 + tolerance) * total / parts;
    std::vector<double> conn(parts, 0.0);
    auto connections = [&](int i) {
        std::fill(conn.begin(), conn.end(), 0.0);
        for (const auto& [u, w] : adjacency[i]) conn[part[u]] += w;
    };
    for (int pass = 0; pass < 8; ++pass) {
        bool moved = false;
        // Balance: the cheapest moves out of overfull parts.
        for (int guard = 0; guard < n; ++guard) {
            int heavy = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
            if (load[heavy] <= cap) break;
            int best_v = -1, best_q = -1;
            double best_gain = -kInf;
            for (int i = 1; i < n; ++i) {
                if (part[i] != heavy) continue;
                connections(i);
                for (int q = 0; q < parts; ++q) {
                    if (q == heavy || load[q] + v.weight[i] > std::max(cap, load[heavy] - v.weight[i])) continue;
                    double gain = conn[q] - conn[heavy];
                    if (gain > best_gain) best_gain = gain, best_v = i, best_q = q;
                }
            }
            if (best_v < 0) break;
            load[heavy] -= v.weight[best_v];
            load[best_q] += v.weight[best_v];
            part[best_v] = best_q;
            moved = true;
        }
        // Cut: strictly improving moves that keep every part under the cap.
        for (int i = 1; i < n; ++i) {
            int p = part[i];
            connections(i);
            int best_q = -1;
            double best_gain = 0;
            for (int q = 0; q < parts; ++q) {
                if (q == p || load[q] + v.weight[i] > cap) continue;
                double gain = conn[q] - conn[p];
                if (gain > best_gain * (1 + 1e-12) + 1e-9) best_gain = gain, best_q = q;
            }
            if (best_q < 0) continue;
            load[p] -= v.weight[i];
            load[best_q] += v.weight[i];
            part[i] = best_q;
            moved = true;
        }
        if (!moved) break;
    }
    return part;
}

// The contiguous split with the lightest heaviest part (the stage partitioner, transfers free).
std::vector<int> minmax_topological_split(const DataflowGraph& graph, int parts) {
    LayerGraphView v = layer_view(graph);
    StageWeights w;
    w.layer_s = v.weight;
    w.recv_fwd_s.assign(graph.layers + 1, 0.0);
    w.recv_bwd_s.assign(graph.layers + 1, 0.0);
    std::vector<int> cuts;
    for (int c = 2; c < graph.layers; ++c) cuts.push_back(c);
    std::vector<int> starts = partition_stages(w, cuts, parts);
    std::vector<int> part(graph.layers, -1);
    for (std::size_t s = 0; s < starts.size(); ++s) {
        int end = s + 1 < starts.size() ? starts[s + 1] : graph.layers;
        for (int i = starts[s]; i < end; ++i) part[i] = static_cast<int>(s);
    }
    return part;
}

GraphPartition metis_kway(const DataflowGraph& graph, int parts, double tolerance) {
    const int n = graph.layers - 1;  // METIS vertex v = layer v + 1
    if (parts == 1 || n < parts) {
        std::vector<int> part(graph.layers, 0);
        part[0] = -1;
        if (n < parts)
            for (int i = 1; i < graph.layers; ++i) part[i] = (i - 1) % parts;
        return measure(graph, std::move(part), parts);
    }
    LayerGraphView v = layer_view(graph);
    // METIS takes integer weights: scale compute to about 10^6 in total and bytes to at most
    // 10^6 per edge, keeping every weight at least 1.
    double total = std::accumulate(v.weight.begin(), v.weight.end(), 0.0);
    double max_bytes = 0;
    std::map<std::pair<int, int>, double> merged;
    for (const auto& [uv, bytes] : v.edges) {
        merged[uv] += bytes;
        max_bytes = std::max(max_bytes, merged[uv]);
    }
    std::vector<std::vector<std::pair<int, idx_t>>> adjacency(n);
    for (const auto& [uv, bytes] : merged) {
        idx_t w = static_cast<idx_t>(std::max(1.0, std::round(max_bytes > 0 ? bytes / max_bytes * 1e6 : 1)));
        adjacency[uv.first - 1].push_back({uv.second - 1, w});
        adjacency[uv.second - 1].push_back({uv.first - 1, w});
    }
    std::vector<idx_t> xadj{0}, adjncy, adjwgt, vwgt(n);
    for (int i = 0; i < n; ++i) {
        for (const auto& [to, w] : adjacency[i]) {
            adjncy.push_back(to);
            adjwgt.push_back(w);
        }
        xadj.push_back(static_cast<idx_t>(adjncy.size()));
        vwgt[i] = static_cast<idx_t>(std::max(1.0, std::round(total > 0 ? v.weight[i + 1] / total * 1e6 : 1)));
    }
    idx_t nvtxs = n, ncon = 1, nparts = parts, objval = 0;
    real_t ubvec = static_cast<real_t>(1.0 + tolerance);
    idx_t options[METIS_NOPTIONS];
    METIS_SetDefaultOptions(options);
    options[METIS_OPTION_SEED] = 1;  // deterministic
    options[METIS_OPTION_NUMBERING] = 0;
    options[METIS_OPTION_NCUTS] = 4;
    std::vector<idx_t> part(n, 0);
    int status = METIS_PartGraphKway(&nvtxs, &ncon, xadj.data(), adjncy.data(), vwgt.data(), nullptr, adjwgt.data(),
                                     &nparts, nullptr, &ubvec, options, &objval, part.data());
    if (status != METIS_OK)
        throw std::runtime_error("METIS_PartGraphKway failed with status " + std::to_string(status));
    std::vector<int> out(graph.layers, -1);
    for (int i = 0; i < n; ++i) out[i + 1] = static_cast<int>(part[i]);
    return measure(graph, std::move(out), parts);
}

}  // namespace

GraphPartition partition_graph(const DataflowGraph& graph, int parts, double tolerance) {
    if (parts < 1) throw std::invalid_argument("partition_graph: parts must be at least 1");
    if (parts == 1 || graph.layers - 1 < parts) return metis_kway(graph, parts, tolerance);
    // METIS complains (on stdout) and fails on graphs with few vertices per part: splits only.
    const bool small = graph.layers - 1 < 8 * parts;
    // METIS is built for meshes; on these nearly sequential graphs a topological split can cut
    // less. So: METIS k-way, the greedy and the min-max topological splits, the first and last
    // refined; the
    // smallest cut among those within the tolerance (else the best balanced) wins.
    std::vector<GraphPartition> tried;
    if (!small) tried.push_back(metis_kway(graph, parts, tolerance));
    tried.push_back(greedy_topological_split(graph, parts));
    tried.push_back(measure(graph, minmax_topological_split(graph, parts), parts));
    std::size_t count = tried.size();
    // The greedy split (second to last) is the baseline, kept as it is; the others are refined.
    for (std::size_t t = 0; t < count; ++t)
        if (t + 2 != count) tried.push_back(measure(graph, refine(graph, tried[t].part, parts, tolerance), parts));
    const GraphPartition* best = nullptr;
    auto within = [&](const GraphPartition& p) { return p.balance <= 1 + tolerance + 1e-9; };
    for (const GraphPartition& p : tried) {
        if (!best)
            best = &p;
        else if (within(p) != within(*best))
            best = within(p) ? &p : best;
        else if (within(p) ? p.cut_bytes < best->cut_bytes : p.balance < best->balance)
            best = &p;
    }
    return *best;
}

double receive_copy_seconds(const clusters::Device& device, double bytes) {
    return device.cpu_kernels.empty() ? 0.0 : memory_copy_seconds(device, bytes);
}

namespace {

// Why spec cannot be scored as a graph partition ("" when it can).
std::string graph_partition_problem(const CostModel& model, const PipelineSpec& spec,
                                    const std::vector<Layout>& layouts) {
    const auto& layers = model.network().layers;
    const int n = static_cast<int>(layers.size());
    const int k = spec.stages;
    std::string problem = pipeline_problem(model, spec);
    if (problem.empty() && spec.tensor != 1) problem = "a graph partition places whole layers (tensor = 1)";
    if (problem.empty() && static_cast<int>(spec.device_of.size()) != n)
        problem =
            "device_of has " + std::to_string(spec.device_of.size()) + " entries for " + std::to_string(n) + " layers";
    for (int i = 1; problem.empty() && i < n; ++i)
        if (spec.device_of[i] < 0 || spec.device_of[i] >= k)
            problem = "layer " + layers[i].name + " is on device " + std::to_string(spec.device_of[i]) +
                      ", not in 0.." + std::to_string(k - 1);
    for (int a : model.anchors())
        if (problem.empty() && layouts.size() == layers.size() && layouts[a].procs() != 1)
            problem = "layer " + layers[a].name + ": a graph partition places whole layers (layout 1)";
    return problem;
}

// The links and the micro-batch both the score and the replay program use, so that a transfer and
// a gradient sync are chosen in one place.
struct GraphContext {
    PlannerOptions micro_options;
    clusters::LinkModel links;
    double element_bytes = 4, micro_batch = 1;
    GraphContext(const CostModel& model, const PipelineSpec& spec) {
        micro_options = model.options();
        micro_options.procs = 1;
        micro_options.batch = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
        links = model.links();
        element_bytes = static_cast<double>(dtype_bytes(micro_options.dtype));
        micro_batch = static_cast<double>(micro_options.batch);
    }
    // The point-to-point transfer of producer's output to consumer (and of its gradient back):
    // none on one device, the intra-node link when both devices share a node (device / d), else
    // the inter-node link.
    GraphPartitionProgram::Transfer transfer(const CostModel& model, const PipelineSpec& spec, int producer,
                                             int consumer) const {
        GraphPartitionProgram::Transfer t;
        t.producer = producer;
        t.consumer = consumer;
        const int from = spec.device_of[producer], to = spec.device_of[consumer];
        if (from == to) return t;
        t.bytes = output_bytes(model.network().layers[producer], micro_batch, element_bytes);
        t.link = links.message_between(from, to);
        t.seconds = clusters::point_to_point_seconds(t.bytes, t.link);
        t.receive_copy_s = receive_copy_seconds(model.cluster().device, t.bytes);
        return t;
    }
    // Layer's weight-gradient sync over the R replicas (ZeRO: reduce-scatter, then all-gather),
    // the collectives clusters::cheapest chooses; none without weights or with one replica.
    std::vector<CommCall> sync(const CostModel& model, const PipelineSpec& spec, int layer) const {
        const auto& l = model.network().layers[layer];
        const int R = spec.replicas, k = spec.stages, d = links.devices_per_node;
        if (l.params == 0 || R == 1) return {};
        // Replicas of a device: k < d puts d / k replicas on a node (rank dev + k r).
        const int replicas_per_node = k < d ? d / k : 1;
        clusters::GroupPlacement group{R, std::max(1, std::gcd(R, std::min(R, replicas_per_node)))};
        const double bytes = l.params * element_bytes;
        return gradient_sync_calls(layer, group, bytes, spec.zero, links);
    }
};

}  // namespace

namespace {

struct ListSchedule {
    double makespan = 0, iteration = 0;
    std::vector<double> busy, received, sync_total;  // per device
    std::vector<double> copies;                      // per device: its receive copies (in busy)
};

// The list schedule of the dataflow graph, GPipe order on every device: all forwards (micro-batch
// by micro-batch, layers ascending), then all backwards (layers descending); an operation starts
// when its device is free and its inputs have arrived. Transfers do not occupy the devices but
// the links: a transfer pays its latency, then moves its bytes over its sender's outgoing and its
// receiver's incoming link (split duplex; the intra-node pair inside a node, the network card's
// otherwise), which every transfer or sync in flight on them shares equally (a flow's rate is its
// tighter link's bandwidth / flows on it). Each layer's gradient sync over the replicas starts
// when its last micro-batch's backward is done, one at a time per device, and occupies both of
// the device's links of its kind for its seconds. Events in time order, so the sharing is the
// SimGrid replay's (max-min on a star) wherever one link is the bottleneck.
class ListScheduler {
public:
    ListScheduler(const CostModel& model, const PipelineSpec& spec, const GraphContext& context, const DataflowGraph& g,
                  const std::vector<std::vector<int>>& consumers);
    ListSchedule run();

private:
    // A flow: a transfer (latency first, then its bytes) for operation `target`, or a sync.
    struct Flow {
        int from = 0, to = 0, target = -1;  // target < 0: device `from`'s sync
        bool network = true;                // through the network cards, else the intra-node links
        double starts = 0, work = 0;        // bandwidth phase from `starts`; seconds at full rate
    };

    // Operations per device in order; op id = (backward ? n * M : 0) + m * n + layer.
    int op_id(bool backward, int m, int layer) const { return (backward ? n_ * M_ : 0) + m * n_ + layer; }
    void order_operations();
    void start_ready(int dev);
    void finish(int dev, int op);
    void send(int producer, int consumer, int target);
    void queue_sync(int dev, int layer);
    void start_sync(int dev);
    // Each device's outgoing (in out_count_) and incoming (in in_count_) link of either kind.
    int link(int dev, bool network) const { return 2 * dev + (network ? 1 : 0); }
    void count_flows();
    double rate(const Flow& f) const;
    double next_event() const;
    void complete_flows();
    void finish_operations();

    const CostModel& model_;
    const PipelineSpec& spec_;
    const GraphContext& context_;
    const DataflowGraph& g_;
    const std::vector<std::vector<int>>& consumers_;
    const int n_, k_, M_, d_;
    ListSchedule out_;
    std::vector<std::vector<int>> order_;  // per device
    std::vector<int> missing_;             // inputs still in flight per operation
    std::vector<Flow> flows_;
    std::vector<int> out_count_, in_count_;        // flows in their bandwidth phase per link
    std::vector<std::vector<double>> sync_queue_;  // seconds of the syncs waiting, per device
    std::vector<char> sync_network_, syncing_;     // per device
    std::vector<std::size_t> next_;                // per device: its next operation in order_
    std::vector<double> device_free_;              // per device: when its running operation ends
    std::vector<char> running_;                    // per device
    std::vector<int> current_;                     // per device: its running operation
    double now_ = 0;
};

ListScheduler::ListScheduler(const CostModel& model, const PipelineSpec& spec, const GraphContext& context,
                             const DataflowGraph& g, const std::vector<std::vector<int>>& consumers)
    : model_(model),
      spec_(spec),
      context_(context),
      g_(g),
      consumers_(consumers),
      n_(static_cast<int>(model.network().layers.size())),
      k_(spec.stages),
      M_(spec.micro_batches),
      d_(context.links.devices_per_node),
      sync_queue_(k_),
      sync_network_(k_, 1),
      syncing_(k_, 0),
      next_(k_, 0),
      device_free_(k_, 0.0),
      running_(k_, 0),
      current_(k_, -1) {
    out_.busy.assign(k_, 0.0), out_.received.assign(k_, 0.0), out_.sync_total.assign(k_, 0.0);
    out_.copies.assign(k_, 0.0);
    order_operations();
}

void ListScheduler::order_operations() {
    const auto& layers = model_.network().layers;
    order_.assign(k_, {});
    for (int m = 0; m < M_; ++m)
        for (int i = 1; i < n_; ++i) order_[spec_.device_of[i]].push_back(op_id(false, m, i));
    for (int m = 0; m < M_; ++m)
        for (int i = n_ - 1; i >= 1; --i) order_[spec_.device_of[i]].push_back(op_id(true, m, i));
    missing_.assign(2 * n_ * M_, 0);
    for (int m = 0; m < M_; ++m)
        for (int i = 1; i < n_; ++i) {
            for (int p : layers[i].inputs)
                if (p > 0 && spec_.device_of[p] != spec_.device_of[i]) ++missing_[op_id(false, m, i)];
            for (int c : consumers_[i])
                if (spec_.device_of[c] != spec_.device_of[i]) ++missing_[op_id(true, m, i)];
        }
}

void ListScheduler::start_ready(int dev) {
    if (running_[dev] || next_[dev] >= order_[dev].size()) return;
    const int op = order_[dev][next_[dev]];
    if (missing_[op] > 0) return;
    const bool backward = op >= n_ * M_;
    const int i = (backward ? op - n_ * M_ : op) % n_;
    // The device first copies the cut tensors it received for the operation (receive_copy_seconds).
    double copies = 0;
    if (!backward) {
        for (int p : model_.network().layers[i].inputs)
            if (p > 0 && spec_.device_of[p] != dev) copies += context_.transfer(model_, spec_, p, i).receive_copy_s;
    } else {
        for (int c : consumers_[i])
            if (spec_.device_of[c] != dev) copies += context_.transfer(model_, spec_, i, c).receive_copy_s;
    }
    const double seconds = g_.seconds[2 * i + (backward ? 1 : 0)] + copies;
    out_.copies[dev] += copies;
    running_[dev] = 1, current_[dev] = op;
    device_free_[dev] = now_ + seconds;
    out_.busy[dev] += seconds;
    ++next_[dev];
}

// An operation finished: send its output (or gradient) to the devices waiting for it, and
// queue the layer's sync after its last micro-batch's backward.
void ListScheduler::finish(int dev, int op) {
    const bool backward = op >= n_ * M_;
    const int rest = backward ? op - n_ * M_ : op, m = rest / n_, i = rest % n_;
    if (!backward) {
        for (int c : consumers_[i])
            if (spec_.device_of[c] != dev) send(i, c, op_id(false, m, c));
        return;
    }
    for (int p : model_.network().layers[i].inputs)
        if (p > 0 && spec_.device_of[p] != dev) send(p, i, op_id(true, m, p));
    if (m == M_ - 1) queue_sync(dev, i);
}

void ListScheduler::send(int producer, int consumer, int target) {
    GraphPartitionProgram::Transfer t = context_.transfer(model_, spec_, producer, consumer);
    const int from = spec_.device_of[target >= n_ * M_ ? consumer : producer];
    const int to = spec_.device_of[target >= n_ * M_ ? producer : consumer];
    out_.received[to] += t.seconds;
    Flow f;
    f.from = from, f.to = to, f.target = target;
    f.network = from / d_ != to / d_;
    f.starts = now_ + t.link.latency_s;
    f.work = t.bytes / t.link.bandwidth_Bps;
    flows_.push_back(f);
}

void ListScheduler::queue_sync(int dev, int layer) {
    double seconds = 0;
    for (const CommCall& call : context_.sync(model_, spec_, layer)) {  // ZeRO: reduce-scatter + all-gather
        seconds += call.seconds;
        sync_network_[dev] = clusters::node_count(call.group) > 1;
    }
    if (seconds > 0) sync_queue_[dev].push_back(seconds), out_.sync_total[dev] += seconds;
    start_sync(dev);
}

void ListScheduler::start_sync(int dev) {
    if (syncing_[dev] || sync_queue_[dev].empty()) return;
    // Without overlap a device's syncs wait until its last operation is done (--no-overlap).
    if (!model_.options().overlap_sync && (running_[dev] || next_[dev] < order_[dev].size())) return;
    Flow f;
    f.from = f.to = dev;
    f.network = sync_network_[dev];
    f.starts = now_;
    f.work = sync_queue_[dev].front();
    sync_queue_[dev].erase(sync_queue_[dev].begin());
    flows_.push_back(f);
    syncing_[dev] = 1;
}

// Rates: equal shares of each link among the flows in their bandwidth phase.
void ListScheduler::count_flows() {
    out_count_.assign(2 * k_, 0), in_count_.assign(2 * k_, 0);
    for (const Flow& f : flows_)
        if (f.starts <= now_) ++out_count_[link(f.from, f.network)], ++in_count_[link(f.to, f.network)];
}

double ListScheduler::rate(const Flow& f) const {
    return 1.0 / std::max(out_count_[link(f.from, f.network)], in_count_[link(f.to, f.network)]);
}

// The next operation's end, flow's start of its bandwidth phase or flow's end at the current rates.
double ListScheduler::next_event() const {
    double event = kInf;
    for (int dev = 0; dev < k_; ++dev)
        if (running_[dev]) event = std::min(event, device_free_[dev]);
    for (const Flow& f : flows_) event = std::min(event, f.starts > now_ ? f.starts : now_ + f.work / rate(f));
    return event;
}

// Completed flows (a relative tolerance absorbs the rounding of the shares) deliver their input,
// or free their device for its next sync.
void ListScheduler::complete_flows() {
    for (std::size_t x = 0; x < flows_.size();) {
        Flow& f = flows_[x];
        if (f.starts <= now_ && f.work <= 1e-12 * std::max(1.0, now_)) {
            if (f.target < 0) {
                syncing_[f.from] = 0;
                const int dev = f.from;
                flows_[x] = flows_.back();
                flows_.pop_back();
                start_sync(dev);
            } else {
                --missing_[f.target];
                flows_[x] = flows_.back();
                flows_.pop_back();
            }
            continue;
        }
        ++x;
    }
}

void ListScheduler::finish_operations() {
    for (int dev = 0; dev < k_; ++dev)
        if (running_[dev] && device_free_[dev] <= now_) {
            running_[dev] = 0;
            finish(dev, current_[dev]);
            start_sync(dev);  // the device may just have become free for its syncs (no overlap)
            out_.makespan = std::max(out_.makespan, now_);
        }
}

ListSchedule ListScheduler::run() {
    for (int dev = 0; dev < k_; ++dev) start_ready(dev);
    for (;;) {
        count_flows();
        const double event = next_event();
        if (event == kInf) break;
        for (Flow& f : flows_)
            if (f.starts <= now_) f.work -= (event - now_) * rate(f);
        now_ = event;
        complete_flows();
        finish_operations();
        for (int dev = 0; dev < k_; ++dev) start_ready(dev);
    }
    out_.iteration = std::max(out_.makespan, now_);
    return out_;
}

// Each layer's backward operation also adds its micro-batch's weight gradients into the
// iteration's (the stage evaluator's accumulation_per_param over the M micro-batches), in the
// score's list schedule and the simulator's program alike.
void add_accumulation(DataflowGraph& g, const CostModel& model, const PlannerOptions& micro_options,
                      const PipelineSpec& spec, const ScoredPlan& costs) {
    const double per_param = accumulation_per_param(model.cluster().device, micro_options, spec.micro_batches);
    for (int i = 1; i < g.layers; ++i) g.seconds[2 * i + 1] += per_param * costs.layers[i].local_params;
}

// One device's share of a graph partition: its layers' memory inputs and the compute seconds of
// one micro-batch (the backward's with its gradient accumulation).
struct DeviceShare {
    StageMemoryInput memory;
    double fwd_compute_s = 0, bwd_compute_s = 0;
    double optimizer_step_s = 0;  // once per iteration
};

// Memory per device (planner/memory.hpp): its layers' weights, gradients and optimizer state,
// and the activations of all M micro-batches (GPipe keeps them until the backward pass) with
// the network's input on the device of the first layer.
std::vector<DeviceShare> device_shares(const LayerTable& table, const PipelineSpec& spec, int layers,
                                       double accumulate_per_param) {
    std::vector<DeviceShare> shares(spec.stages);
    for (int i = 1; i < layers; ++i) {
        const LayerCost& lc = table.plan.layers[i];
        DeviceShare& share = shares[spec.device_of[i]];
        StageMemoryInput& d = share.memory;
        d.params += lc.local_params;
        d.weight_bytes += lc.weight_bytes;
        d.activation_bytes += lc.activation_bytes;
        d.buffer_bytes = std::max(d.buffer_bytes, table.buffer_bytes[i]);
        d.working_set_bytes = std::max(d.working_set_bytes, lc.working_set_bytes);
        share.fwd_compute_s += lc.fwd_compute_s;
        share.bwd_compute_s += lc.bwd_compute_s + accumulate_per_param * lc.local_params;
        share.optimizer_step_s += lc.optimizer_step_s;
    }
    shares[spec.device_of[1]].memory.input_bytes = table.input_bytes;
    return shares;
}

// The iteration as the busiest device sees it, the memory as the fullest device holds it.
CostBreakdown schedule_cost(const CostModel& model, const PipelineSpec& spec, const GraphContext& context,
                            const ListSchedule& sched, const std::vector<DeviceShare>& shares) {
    const int k = spec.stages, M = spec.micro_batches, R = spec.replicas;
    const double makespan = sched.makespan, iteration = sched.iteration;
    StageMemoryOptions memory_options;
    memory_options.optimizer = context.micro_options.optimizer;
    memory_options.dtype = context.micro_options.dtype;
    memory_options.in_flight = M;
    memory_options.zero_shards = spec.zero ? R : 1;
    int worst = 0, busiest = 0;
    std::vector<MemoryBreakdown> memory(k);
    for (int dev = 0; dev < k; ++dev) {
        memory[dev] = stage_memory(shares[dev].memory, memory_options);
        if (memory[dev].total() > memory[worst].total()) worst = dev;
        if (sched.busy[dev] > sched.busy[busiest]) busiest = dev;
    }
    CostBreakdown k_cost;
    k_cost.memory_capacity_bytes = static_cast<double>(model.cluster().device.usable_memory_bytes());
    k_cost.fwd_compute_s = M * shares[busiest].fwd_compute_s;
    k_cost.bwd_compute_s = M * shares[busiest].bwd_compute_s;
    double idle = std::max(0.0, makespan - sched.busy[busiest]);
    const double waited = std::min(sched.received[busiest], idle);
    // The receive copies are the device's own time (busy), the transfers only where it idles.
    k_cost.comm_s[index_of(CommKind::point_to_point)] = sched.copies[busiest] + waited;
    k_cost.bubble_s = idle - waited;
    k_cost.sync_total_s = *std::max_element(sched.sync_total.begin(), sched.sync_total.end());
    // What runs past the schedule: the sync itself, and beyond it what sharing cards with the
    // transfers added to it.
    k_cost.sync_exposed_s = std::min(iteration - makespan, k_cost.sync_total_s);
    k_cost.sync_contention_s = (iteration - makespan) - k_cost.sync_exposed_s;
    // Every device steps its own layers after the synchronisation (ZeRO-1: its shard of them).
    for (const DeviceShare& share : shares)
        k_cost.optimizer_step_s = std::max(k_cost.optimizer_step_s, optimizer_step_share(share.optimizer_step_s, spec));
    k_cost.iteration_s = iteration + k_cost.optimizer_step_s;
    record_memory(k_cost, memory[worst], model.cluster().device, "device " + std::to_string(worst));
    return k_cost;
}

}  // namespace

PipelineScore score_graph_partition(const CostModel& model, const PipelineSpec& spec,
                                    const std::vector<Layout>& layouts) {
    PipelineScore out;
    const auto& layers = model.network().layers;
    const int n = static_cast<int>(layers.size());
    CostBreakdown& cost = out.plan.cost;
    cost.memory_capacity_bytes = static_cast<double>(model.cluster().device.usable_memory_bytes());
    std::string problem = graph_partition_problem(model, spec, layouts);
    if (!problem.empty()) {
        out.plan.anchor_layouts = layouts;
        out.plan.layers.assign(n, LayerCost{});
        cost.set_infeasible(Infeasibility::configuration, problem);
        return out;
    }
    const GraphContext context(model, spec);
    CostModel micro(model.network(), model.cluster(), context.micro_options);
    LayerTable table = make_layer_table(micro, micro.layer_costs(std::vector<Layout>(n)));
    DataflowGraph g = training_graph(micro);
    add_accumulation(g, model, context.micro_options, spec, table.plan);

    std::vector<std::vector<int>> consumers(n);
    for (int i = 1; i < n; ++i)
        for (int p : layers[i].inputs)
            if (p > 0) consumers[p].push_back(i);

    const ListSchedule sched = ListScheduler(model, spec, context, g, consumers).run();
    const std::vector<DeviceShare> shares = device_shares(
        table, spec, n, accumulation_per_param(model.cluster().device, context.micro_options, spec.micro_batches));
    out.plan = std::move(table.plan);
    out.plan.cost = schedule_cost(model, spec, context, sched, shares);
    out.pipeline_s = sched.makespan;
    GraphPartition measured = measure(g, spec.device_of, spec.stages);
    out.balance = measured.balance;
    out.cut_bytes = measured.cut_bytes;
    out.model_flops = model_flops_per_device(model);
    return out;
}

std::vector<GraphPartitionCandidate> search_graph_partitions(const CostModel& model) {
    const auto& o = model.options();
    const int layers = static_cast<int>(model.network().layers.size()) - 1;
    std::vector<GraphPartitionCandidate> out;
    for (int k = 2; k <= std::min(8, layers); k *= 2) {
        if (o.procs % k != 0) break;
        const int R = static_cast<int>(o.procs / k);
        if (o.batch % R != 0) continue;
        PlannerOptions micro_options = o;
        micro_options.procs = 1;
        micro_options.batch = o.batch / R;
        CostModel micro(model.network(), model.cluster(), micro_options);
        DataflowGraph g = training_graph(micro);
        GraphPartitionCandidate best;
        best.partition = partition_graph(g, k, 0.05);
        best.greedy = greedy_topological_split(g, k);
        bool have = false;
        for (int M = 1; M <= 2 * k && (o.batch / R) % M == 0; M *= 2) {
            PipelineSpec spec;
            spec.tensor = 1;
            spec.stages = k;
            spec.replicas = R;
            spec.micro_batches = M;
            spec.device_of = best.partition.part;
            spec.device_of[0] = 0;
            PipelineScore s = score_graph_partition(model, spec, std::vector<Layout>(model.network().layers.size()));
            const auto& c = s.plan.cost;
            const auto& kept = best.score.plan.cost;
            bool better = !have || (c.feasible ? (!kept.feasible || c.iteration_s < kept.iteration_s)
                                               : (!kept.feasible && c.memory_bytes < kept.memory_bytes));
            if (better) {
                best.spec = spec;
                best.score = std::move(s);
                have = true;
            }
        }
        if (have) out.push_back(std::move(best));
    }
    return out;
}

std::string graph_partition_label(const GraphPartitionCandidate& c) {
    char buffer[256];
    std::snprintf(buffer, sizeof buffer, "k=%d x DP=%d, M=%d, balance %.2f, cut %s (greedy split: %.2f, %s)",
                  c.spec.stages, c.spec.replicas, c.spec.micro_batches, c.partition.balance,
                  human_bytes(c.partition.cut_bytes).c_str(), c.greedy.balance,
                  human_bytes(c.greedy.cut_bytes).c_str());
    return buffer;
}

std::vector<Candidate> graph_partition_candidates(const CostModel& model) {
    std::vector<Candidate> out;
    for (GraphPartitionCandidate& gc : search_graph_partitions(model)) {
        Candidate c;
        c.strategy = Strategy::graph_partition;
        c.label = graph_partition_label(gc);
        c.plan = std::move(gc.score.plan);
        c.pipeline = gc.spec;
        out.push_back(std::move(c));
    }
    return out;
}

GraphPartitionProgram graph_partition_program(const CostModel& model, const PipelineSpec& spec,
                                              const std::vector<Layout>& layouts) {
    std::string problem = graph_partition_problem(model, spec, layouts);
    if (!problem.empty()) throw std::invalid_argument("graph_partition_program: " + problem);
    const auto& layers = model.network().layers;
    const int n = static_cast<int>(layers.size());
    const GraphContext context(model, spec);
    CostModel micro(model.network(), model.cluster(), context.micro_options);
    DataflowGraph g = training_graph(micro);
    GraphPartitionProgram out;
    out.micro_batch = context.micro_options.batch;
    out.forward_s.assign(n, 0.0);
    out.backward_s.assign(n, 0.0);
    out.sync.resize(n);
    out.device_optimizer_step_s.assign(spec.stages, 0.0);
    const ScoredPlan costs = micro.layer_costs(layouts);
    add_accumulation(g, model, context.micro_options, spec, costs);
    for (int i = 1; i < n; ++i)
        out.device_optimizer_step_s[spec.device_of[i]] +=
            optimizer_step_share(costs.layers[i].optimizer_step_s, spec);
    for (int i = 1; i < n; ++i) {
        out.forward_s[i] = g.seconds[2 * i];
        out.backward_s[i] = g.seconds[2 * i + 1];
        for (int p : layers[i].inputs)
            if (p > 0 && spec.device_of[p] != spec.device_of[i])
                out.transfers.push_back(context.transfer(model, spec, p, i));
        out.sync[i] = context.sync(model, spec, i);
    }
    return out;
}

}  // namespace dnnplan::planner
