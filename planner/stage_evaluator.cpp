#include "stage_evaluator.hpp"

#include <numeric>

namespace dnnplan::planner {

using clusters::GroupPlacement;

LayerTable::Sums LayerTable::sum(int first, int last) const {
    const Sums& a = prefix[last + 1];
    const Sums& b = prefix[first];
    Sums s;
    s.fwd_compute = a.fwd_compute - b.fwd_compute;
    s.bwd_compute = a.bwd_compute - b.bwd_compute;
    s.optimizer_step = a.optimizer_step - b.optimizer_step;
    s.fwd_comm = a.fwd_comm - b.fwd_comm;
    s.params = a.params - b.params;
    s.weight_bytes = a.weight_bytes - b.weight_bytes;
    s.activation_bytes = a.activation_bytes - b.activation_bytes;
    s.attention_core_bytes = a.attention_core_bytes - b.attention_core_bytes;
    s.checkpoint_bytes = a.checkpoint_bytes - b.checkpoint_bytes;
    s.checkpoints = a.checkpoints - b.checkpoints;
    s.fwd_core_compute = a.fwd_core_compute - b.fwd_core_compute;
    for (std::size_t k = 0; k < kCommKindCount; ++k) {
        s.comm[k] = a.comm[k] - b.comm[k];
        s.fwd_comm_by_kind[k] = a.fwd_comm_by_kind[k] - b.fwd_comm_by_kind[k];
    }
    return s;
}

namespace {

// Bytes crossing each possible stage boundary c (tensors made before c and read at or after it),
// per rank (each rank sends its shard to its counterpart in the next stage) and in total.
void boundaries(LayerTable& t, const networks::Network& network, const clusters::LinkModel& links) {
    const auto& layers = network.layers;
    const int n = t.layer_count;
    const double eb = static_cast<double>(dtype_bytes(t.options.dtype));
    std::vector<int> last_use(n, 0);
    for (int i = 1; i < n; ++i)
        for (int p : layers[i].inputs) last_use[p] = std::max(last_use[p], i);
    const double T = t.tensor;
    std::vector<double> delta(n + 1, 0.0), delta_total(n + 1, 0.0), delta_send(n + 1, 0.0), delta_gather(n + 1, 0.0);
    for (int j = 1; j < n; ++j) {
        if (last_use[j] <= j) continue;
        const double total = output_bytes(layers[j], static_cast<double>(t.micro_batch), eb);
        const double parts = static_cast<double>(t.plan.layers[j].out_dist.parts());
        const double per_rank = total / parts;
        // Replicated over the tensor group: scattered (1/T per rank), gathered after unless split
        // along the sequence already; sent whole by every rank under whole_tensor, unless split along
        // the sequence (each rank holds 1/T then: Megatron-LM sends the sequence-parallel shard).
        const bool scatter = t.options.boundary_send != PipelineBoundarySend::whole_tensor || t.options.sequence_parallel;
        const bool scattered = T > 1 && parts == 1 && scatter;
        const double send = scattered ? per_rank / T : per_rank;
        const double gather = scattered && !t.options.sequence_parallel ? total : 0.0;
        // Crosses every boundary in (j, last_use].
        for (auto [d, v] : {std::pair{&delta, per_rank}, {&delta_total, total}, {&delta_send, send}, {&delta_gather, gather}}) {
            (*d)[j + 1] += v;
            (*d)[last_use[j] + 1] -= v;
        }
    }
    t.boundary_bytes.assign(n + 1, 0.0);
    t.boundary_total.assign(n + 1, 0.0);
    t.boundary_send_bytes.assign(n + 1, 0.0);
    t.boundary_gather_bytes.assign(n + 1, 0.0);
    t.boundary_gather_s.assign(n + 1, 0.0);
    t.boundary_gather_choice.assign(n + 1, clusters::CollectiveChoice{});
    double run = 0, run_total = 0, run_send = 0, run_gather = 0;
    const clusters::GroupPlacement group{t.tensor, std::gcd(t.tensor, links.devices_per_node)};  // node by node
    t.boundary_gather_group = group;
    for (int i = 0; i <= n; ++i) {
        run += delta[i];
        run_total += delta_total[i];
        run_send += delta_send[i];
        run_gather += delta_gather[i];
        t.boundary_bytes[i] = std::max(0.0, run);
        t.boundary_total[i] = std::max(0.0, run_total);
        t.boundary_send_bytes[i] = std::max(0.0, run_send);
        t.boundary_gather_bytes[i] = std::max(0.0, run_gather);
        if (run_gather > 0) {  // all-gather of the whole tensor (n bytes in all, clusters/collectives.hpp)
            t.boundary_gather_choice[i] =
                clusters::cheapest(clusters::Collective::all_gather, group, run_gather, links.intra, links.inter);
            t.boundary_gather_s[i] = t.boundary_gather_choice[i].seconds;
        }
    }
}
}  // namespace

LayerTable make_layer_table(const CostModel& micro_model, ScoredPlan layer_plan) {
    LayerTable t;
    t.options = micro_model.options();
    t.tensor = static_cast<int>(t.options.procs);
    t.micro_batch = t.options.batch;
    t.plan = std::move(layer_plan);
    const auto& network = micro_model.network();
    const auto& layers = network.layers;
    const int n = static_cast<int>(layers.size());
    t.layer_count = n;
    // Each layer's own figures in prefix[i + 1], summed into prefixes below (prefix[1] holds the
    // input's zeros, so prefix[n] is the sum in layer order).
    t.prefix.assign(n + 1, LayerTable::Sums{});
    t.buffer_bytes.assign(n, 0.0);
    t.sync_group.assign(n, clusters::GroupPlacement{1, 1});
    t.sync_bytes.assign(n, 0.0);
    for (int i = 1; i < n; ++i) {
        const LayerCost& lc = t.plan.layers[i];
        LayerTable::Sums& own = t.prefix[i + 1];
        own.fwd_compute = lc.fwd_compute_s;
        own.bwd_compute = lc.bwd_compute_s;
        own.optimizer_step = lc.optimizer_step_s;
        own.fwd_comm = lc.fwd_comm_s;
        own.params = lc.local_params;
        own.weight_bytes = lc.weight_bytes;
        own.activation_bytes = lc.activation_bytes;
        own.attention_core_bytes = lc.attention_core_bytes;
        own.checkpoint_bytes = lc.checkpoint_bytes;
        own.checkpoints = layers[i].kind == networks::LayerKind::attention ? 1 : 0;
        // The attention core's share of the layer's forward compute, by FLOPs.
        if (layers[i].fwd_flops > 0)
            own.fwd_core_compute = lc.fwd_compute_s * static_cast<double>(layers[i].attention_core_flops) /
                                   static_cast<double>(layers[i].fwd_flops);
        if (layers[i].params > 0) t.sync_bytes[i] = lc.weight_bytes;
    }
    for (const CommCall& call : t.plan.calls) {
        t.buffer_bytes[call.layer] = std::max(t.buffer_bytes[call.layer], buffer_bytes(call));
        if (call.phase == Phase::sync) {
            t.sync_group[call.layer] = call.group;
            t.sync_bytes[call.layer] = call.bytes;
            continue;
        }
        LayerTable::Sums& own = t.prefix[call.layer + 1];
        own.comm[index_of(call.kind)] += call.seconds;
        if (call.phase == Phase::forward) own.fwd_comm_by_kind[index_of(call.kind)] += call.seconds;
    }
    for (int i = 1; i <= n; ++i) {
        LayerTable::Sums& s = t.prefix[i];
        const LayerTable::Sums& before = t.prefix[i - 1];
        s.fwd_compute += before.fwd_compute;
        s.bwd_compute += before.bwd_compute;
        s.optimizer_step += before.optimizer_step;
        s.fwd_comm += before.fwd_comm;
        s.params += before.params;
        s.weight_bytes += before.weight_bytes;
        s.activation_bytes += before.activation_bytes;
        s.attention_core_bytes += before.attention_core_bytes;
        s.checkpoint_bytes += before.checkpoint_bytes;
        s.checkpoints += before.checkpoints;
        s.fwd_core_compute += before.fwd_core_compute;
        for (std::size_t k = 0; k < kCommKindCount; ++k) {
            s.comm[k] += before.comm[k];
            s.fwd_comm_by_kind[k] += before.fwd_comm_by_kind[k];
        }
    }
    boundaries(t, network, micro_model.links());
    for (int i = 1; i < n; ++i)
        if (!layers[i].attrs.tied_to.empty())
            for (int j = 1; j < i; ++j)
                if (layers[j].name == layers[i].attrs.tied_to) t.ties.push_back({i, j});
    // The input micro-batch, split as the first layer's layout splits the batch.
    const int first_n = n > 1 ? std::max(1, t.plan.layers[1].in_dist.n) : 1;
    t.input_bytes = static_cast<double>(t.micro_batch) / first_n * layers[0].output_elements *
                    static_cast<double>(networks::input_element_bytes(network, t.options.dtype));
    return t;
}

LayerTable make_layer_table(const CostModel& model, int tensor, std::int64_t micro_batch,
                            const std::vector<Layout>& layouts, bool sequence_parallel) {
    PlannerOptions options = model.options();
    options.procs = tensor;
    options.batch = micro_batch;
    options.sequence_parallel = sequence_parallel && tensor > 1;
    CostModel micro(model.network(), model.cluster(), options);
    return make_layer_table(micro, micro.layer_costs(layouts));
}

clusters::LinkCost stage_link(const CostModel& model, int tensor, int stages) {
    const clusters::LinkModel& links = model.links();
    return links.fits_in_node(static_cast<std::int64_t>(tensor) * stages) ? links.intra_message : links.inter_message;
}

clusters::LinkCost boundary_link(const CostModel& model, const PipelineSpec& spec, int s) {
    const clusters::LinkModel& links = model.links();
    const std::int64_t d = links.devices_per_node, T = spec.tensor, S = spec.stages;
    // Virtual stage s (interleaving) is on device s mod S; device S - 1 feeds device 0's next chunk.
    const std::int64_t from_device = (s - 1) % S, to_device = s % S;
    // (T S r) mod d repeats with a period of at most d replicas.
    const std::int64_t replicas = std::min<std::int64_t>(spec.replicas, d);
    for (std::int64_t r = 0; r < replicas; ++r)
        for (std::int64_t t = 0; t < T; ++t)
            if (!links.same_node(t + T * (from_device + S * r), t + T * (to_device + S * r)))
                return links.inter_message;
    return links.intra_message;
}

std::vector<std::vector<CommCall>> replica_sync_calls(const CostModel& model, const LayerTable& table, int stages,
                                                      int replicas, bool zero) {
    std::vector<std::vector<CommCall>> out(table.layer_count);
    const clusters::LinkModel& links = model.links();
    const int d = links.devices_per_node;
    const std::int64_t pipeline_procs = static_cast<std::int64_t>(table.tensor) * stages;
    const int replicas_per_node = pipeline_procs < d ? static_cast<int>(d / pipeline_procs) : 1;
    if (replicas == 1 && !zero) {  // the micro-batch plan's own sync calls
        for (const CommCall& call : table.plan.calls)
            if (call.phase == Phase::sync) out[call.layer].push_back(call);
        return out;
    }
    for (int i = 1; i < table.layer_count; ++i) {
        if (table.sync_bytes[i] <= 0) continue;
        const GroupPlacement& g = table.sync_group[i];
        const int size = g.size * replicas;
        const int per_node = std::gcd(size, g.per_node * std::min(replicas, replicas_per_node));
        if (size <= 1) continue;
        out[i] = gradient_sync_calls(i, GroupPlacement{size, std::max(1, per_node)}, table.sync_bytes[i], zero, links);
    }
    return out;
}

std::vector<LayerSync> replica_sync(const CostModel& model, const LayerTable& table, int stages, int replicas,
                                    bool zero) {
    std::vector<LayerSync> out(table.layer_count);
    auto progress = [&](bool network) {
        return SyncProgress::of(network ? model.cluster().inter_node : model.cluster().intra_node);
    };
    if (replicas == 1 && !zero) {  // what the layer pass already summed (LayerCost::sync_s)
        for (int i = 1; i < table.layer_count; ++i)
            out[i] = LayerSync{table.plan.layers[i].sync_s, table.plan.layers[i].sync_network,
                               progress(table.plan.layers[i].sync_network)};
        return out;
    }
    const std::vector<std::vector<CommCall>> calls = replica_sync_calls(model, table, stages, replicas, zero);
    for (int i = 1; i < table.layer_count; ++i)
        for (const CommCall& call : calls[i]) {  // ZeRO: reduce-scatter + all-gather
            out[i].seconds += call.seconds;
            out[i].network = clusters::node_count(call.group) > 1;
            out[i].progress = progress(out[i].network);
        }
    return out;
}

namespace {
// The device (stage) running layer i: virtual stage v holds [stage_first[v], stage_first[v + 1]).
int device_of_layer(const PipelineSpec& spec, int i) {
    const auto after = std::upper_bound(spec.stage_first.begin(), spec.stage_first.end(), i);
    return static_cast<int>(after - spec.stage_first.begin() - 1) % spec.stages;
}
}  // namespace

std::vector<TiedCopy> tied_copies(const LayerTable& table, const PipelineSpec& spec) {
    std::vector<TiedCopy> out;
    if (spec.stages <= 1) return out;  // one device: the two layers share one weight
    for (const LayerTable::Tie& tie : table.ties) {
        const int device = device_of_layer(spec, tie.layer), embedding_device = device_of_layer(spec, tie.embedding);
        if (device == embedding_device) continue;
        const LayerCost& e = table.plan.layers[tie.embedding];
        out.push_back({tie.layer, tie.embedding, device, embedding_device, e.local_params, e.weight_bytes,
                       e.optimizer_step_s});
    }
    return out;
}

CommCall tied_copy_all_reduce(const CostModel& model, const PipelineSpec& spec, const TiedCopy& copy) {
    const clusters::LinkModel& links = model.links();
    const std::int64_t T = spec.tensor, S = spec.stages;
    // (T S r) mod d repeats with a period of at most d replicas (as boundary_link()).
    const std::int64_t replicas = std::min<std::int64_t>(spec.replicas, links.devices_per_node);
    bool same_node = true;
    for (std::int64_t r = 0; r < replicas && same_node; ++r)
        for (std::int64_t t = 0; t < T && same_node; ++t)
            same_node = links.same_node(t + T * (copy.embedding_device + S * r), t + T * (copy.device + S * r));
    const GroupPlacement group{2, same_node ? 2 : 1};
    return collective_call(copy.layer, Phase::sync, clusters::Collective::all_reduce,
                           clusters::cheapest(clusters::Collective::all_reduce, group, copy.weight_bytes, links.intra,
                                              links.inter),
                           group, copy.weight_bytes, "tied weight gradient (embedding group)");
}

// Gradient accumulation per micro-batch and local parameter: the software's adds over the
// iteration spread evenly over its M backwards (PyTorch's autograd skips the first micro-batch's
// add: exact in total, up to one add's time early or late on the critical path).
double accumulation_per_param(const clusters::Device& device, const PlannerOptions& options, int micro_batches) {
    const GradAccumulation how = options.grad_accumulation.value_or(default_grad_accumulation(options.dtype));
    return grad_accumulation_seconds(device, options.dtype, how, 1.0, micro_batches, options.compute) / micro_batches;
}

double accumulation_per_param(const CostModel& model, const LayerTable& t, const PipelineSpec& spec) {
    return accumulation_per_param(model.cluster().device, t.options, spec.micro_batches);
}

namespace {
struct StageRange {
    int first = 1, last = 1;
};
StageRange stage_range(const PipelineSpec& spec, int s, int layer_count) {
    return {spec.stage_first[s], s + 1 < spec.virtual_stages() ? spec.stage_first[s + 1] - 1 : layer_count - 1};
}

// Per micro-batch: forward F and backward B of every (virtual) stage, each with its receive (the
// backward redoes the stage's forward first under recomputation), and the slowest device by the
// F + B of its chunks (interleaving: V receives each way per micro-batch, SC'21 section 2.2.2).
struct StageTimes {
    std::vector<double> forward, backward, recv_forward, recv_backward;
    std::vector<double> send_forward, send_backward;  // the stage's own blocking sends (deepspeed_sends)
    std::vector<double> accumulate;  // per stage: adding a micro-batch's weight gradients (inside backward)
    double accumulate_per_param = 0;  // seconds per local parameter per micro-batch
    double max_fb = 0, total_fb = 0, cut_bytes = 0;
    int slowest = 0;  // a device
};
// DeepSpeed's pipeline engine (PipelineBoundarySend::deepspeed, planner/software_options.hpp): a
// stage waits for its own sends too, each a blocking p2p.send after the step's receive: in its
// forward step the input gradient of the previous micro-batch back to stage s - 1 (SendGrad), in
// its backward step the previous micro-batch's output to stage s + 1 (SendActivation), which it
// also all-gathers again over its tensor group before the backward (its output was dropped when
// partitioned). The transfers are the receives' (LayerTable::boundary_send_bytes, the same links).
void deepspeed_sends(const CostModel& model, const LayerTable& t, const PipelineSpec& spec, int s, int first, int last,
                     StageTimes& st) {
    if (s > 0)
        st.send_forward[s] =
            clusters::point_to_point_seconds(t.boundary_send_bytes[first], boundary_link(model, spec, s));
    if (s + 1 < spec.virtual_stages())
        st.send_backward[s] =
            clusters::point_to_point_seconds(t.boundary_send_bytes[last + 1], boundary_link(model, spec, s + 1)) +
            t.boundary_gather_s[last + 1];
}

StageTimes stage_times(const CostModel& model, const LayerTable& t, const PipelineSpec& spec) {
    const int S = spec.virtual_stages();
    StageTimes st;
    st.forward.assign(S, 0.0), st.backward.assign(S, 0.0), st.recv_forward.assign(S, 0.0),
        st.recv_backward.assign(S, 0.0), st.accumulate.assign(S, 0.0);
    st.send_forward.assign(S, 0.0), st.send_backward.assign(S, 0.0);
    st.accumulate_per_param = accumulation_per_param(model, t, spec);
    std::vector<double> device_fb(spec.stages, 0.0);
    for (int s = 0; s < S; ++s) {
        const auto [first, last] = stage_range(spec, s, t.layer_count);
        if (s > 0) st.recv_forward[s] = t.boundary_seconds(first, boundary_link(model, spec, s));
        if (s + 1 < S) st.recv_backward[s] = t.boundary_seconds(last + 1, boundary_link(model, spec, s + 1));
        if (t.options.boundary_send == PipelineBoundarySend::deepspeed) deepspeed_sends(model, t, spec, s, first, last, st);
        const LayerTable::Sums sums = t.sum(first, last);
        const double forward = sums.fwd_compute + sums.fwd_comm;
        const double backward = sums.bwd_compute + (sums.blocking() - sums.fwd_comm);
        st.forward[s] = forward + st.recv_forward[s] + st.send_forward[s];
        st.accumulate[s] = st.accumulate_per_param * sums.params;
        st.backward[s] =
            backward + sums.recomputed(spec.recompute) + st.accumulate[s] + st.recv_backward[s] + st.send_backward[s];
        device_fb[s % spec.stages] += st.forward[s] + st.backward[s];
        st.total_fb += st.forward[s] + st.backward[s];
        if (s + 1 < S) st.cut_bytes += t.boundary_total[last + 1];
    }
    for (int d = 0; d < spec.stages; ++d)
        if (device_fb[d] > st.max_fb) st.max_fb = device_fb[d], st.slowest = d;
    return st;
}

// Gradient synchronisation per stage: each layer's all-reduce starts when its last micro-batch's
// backward is done, inside its stage's last backward, one at a time (SyncOverlap). Under
// recomputation that backward first redoes the stage's whole forward from its checkpointed input.
// Measured from the start of the stage's last backward, so before the schedule. Interleaved, a
// device's chunks are fed last chunk first as if their last backwards ran back to back (they are
// separated by other micro-batches' backwards in fact: less overlap than there is, never more).
struct StageSyncs {
    std::vector<double> total, exposed, contention;
    double max_total = 0;
};
StageSyncs stage_syncs(const LayerTable& t, const PipelineSpec& spec, const std::vector<LayerSync>& sync,
                       const std::vector<TiedCopy>& copies, double accumulate_per_param) {
    const int S = spec.stages;
    // A tied layer's copy of the embedding syncs over the replicas as the embedding does.
    auto sync_of = [&](int i) -> const LayerSync& {
        for (const TiedCopy& c : copies)
            if (c.layer == i) return sync[c.embedding];
        return sync[i];
    };
    StageSyncs out;
    out.total.assign(S, 0.0), out.exposed.assign(S, 0.0), out.contention.assign(S, 0.0);
    for (int s = 0; s < S; ++s) {
        SyncOverlap overlap(t.options.overlap_sync);
        for (int chunk = spec.interleave - 1; chunk >= 0; --chunk) {
            const auto [first, last] = stage_range(spec, chunk * S + s, t.layer_count);
            const LayerTable::Sums sums = t.sum(first, last);
            // Recomputation first redoes the chunk's forward (or its attention cores).
            if (const double redo = sums.recomputed(spec.recompute); redo > 0) overlap.layer(redo, 0, 0, 0, false);
            for (int i = last; i >= first; --i) {
                const LayerCost& lc = t.plan.layers[i];
                // The layer's gradient add precedes its all-reduce (DDP's hook runs after AccumulateGrad).
                overlap.layer(lc.bwd_compute_s + accumulate_per_param * t.sum(i, i).params, lc.bwd_comm_s,
                              lc.bwd_comm_network_s, sync_of(i).seconds, sync_of(i).network, sync_of(i).progress);
            }
        }
        out.total[s] = overlap.total_s();
        out.contention[s] = overlap.contention_s();
        out.exposed[s] = overlap.exposed_s();
        out.max_total = std::max(out.max_total, out.total[s]);
    }
    return out;
}

// Stage s sends its last micro-batch's input gradient to stage s - 1 when its last backward ends,
// while its syncs still have exposed[s] seconds to run on the same card: fair sharing delays both
// by min(the transfer's bandwidth time, remaining sync) (latency is not shared), and stage s - 1's
// last backward with it. Indexed by the receiving stage.
std::vector<double> send_delays(const CostModel& model, const LayerTable& t, const PipelineSpec& spec,
                                const StageSyncs& syncs) {
    std::vector<double> delay(spec.stages, 0.0);
    for (int s = 1; s < spec.stages; ++s) {
        const double bandwidth_s =
            t.boundary_send_bytes[spec.stage_first[s]] / boundary_link(model, spec, s).bandwidth_Bps;
        delay[s - 1] = std::min(bandwidth_s, syncs.exposed[s]);
    }
    return delay;
}

// Interleaved 1F1B on device d: the most bytes its chunk-micro-batches in flight hold, `held[c]`
// per micro-batch on chunk c. In flight after the steady phase's j-th forward: forwards 0..w + j
// less backwards 0..j - 1 (w = interleaved_warmup); the per-chunk counts repeat every S V steps,
// so one period is scanned (O(S V)).
double interleaved_in_flight_bytes(const PipelineSpec& spec, int d, const std::vector<double>& held) {
    const int S = spec.stages, V = spec.interleave, M = spec.micro_batches, units = M * V;
    const int warmup = interleaved_warmup(S, d, M, V);
    std::vector<int> count(V, 0);
    for (int k = 0; k <= std::min(warmup, units - 1); ++k) ++count[op_at(spec.schedule, S, d, M, k, V).chunk];
    auto bytes = [&] {
        double total = 0;
        for (int c = 0; c < V; ++c) total += count[c] * held[c];
        return total;
    };
    double peak = bytes();
    // op_at's index of the steady phase's j-th backward is warmup + 2 j + 1, of its forward warmup + 2 j.
    for (int j = 1; j < std::min(units - warmup, S * V + 1); ++j) {
        --count[op_at(spec.schedule, S, d, M, warmup + 2 * (j - 1) + 1, V).chunk];
        ++count[op_at(spec.schedule, S, d, M, warmup + 2 * j, V).chunk];
        peak = std::max(peak, bytes());
    }
    return peak;
}

// The copies of tied weights device d keeps (TiedCopy): weights, gradients and optimizer state.
void add_tied_copies(StageMemoryInput& in, const std::vector<TiedCopy>& copies, int d) {
    for (const TiedCopy& c : copies)
        if (c.device == d) in.params += c.params, in.weight_bytes += c.weight_bytes;
}

// A device's V chunks as one stage for planner/memory: the sums of all chunks, and the in-flight
// activations folded into one "micro-batch" (in_flight = 1) of the peak's bytes: the chunks'
// inputs (and full activations without recomputation) per chunk-micro-batch in flight, plus under
// recomputation the largest chunk's activations being recomputed.
StageMemoryInput interleaved_memory_input(const LayerTable& t, const PipelineSpec& spec, int d) {
    StageMemoryInput in;
    std::vector<double> held(spec.interleave, 0.0);
    double largest = 0;
    for (int c = 0; c < spec.interleave; ++c) {
        const int v = c * spec.stages + d;
        const auto [first, last] = stage_range(spec, v, t.layer_count);
        const LayerTable::Sums sums = t.sum(first, last);
        in.params += sums.params;
        in.weight_bytes += sums.weight_bytes;
        StageMemoryInput chunk;
        chunk.activation_bytes = sums.activation_bytes;
        chunk.attention_core_bytes = sums.attention_core_bytes;
        chunk.checkpoint_bytes = sums.checkpoint_bytes;
        chunk.checkpoints = static_cast<int>(sums.checkpoints);
        chunk.input_bytes = v == 0 ? t.input_bytes : t.boundary_bytes[first];
        held[c] = kept_per_micro_batch(chunk, spec.recompute);
        largest = std::max(largest, recomputed_at_once(chunk, spec.recompute));
        for (int i = first; i <= last; ++i) {
            in.buffer_bytes = std::max(in.buffer_bytes, t.buffer_bytes[i]);
            in.working_set_bytes = std::max(in.working_set_bytes, t.plan.layers[i].working_set_bytes);
        }
    }
    in.input_bytes = interleaved_in_flight_bytes(spec, d, held);
    add_tied_copies(in, tied_copies(t, spec), d);
    // stage_memory with in_flight = 1 and no per-layer checkpoints adds `largest` once under full
    // recomputation (recomputed_at_once), and nothing else beyond the folded input otherwise.
    in.activation_bytes = spec.recompute == Recompute::full ? largest : 0.0;
    return in;
}

// Memory per process of every stage (device, when interleaved) (planner/memory.hpp).
std::vector<MemoryBreakdown> stage_memories(const LayerTable& t, const PipelineSpec& spec) {
    const int S = spec.stages, M = spec.micro_batches;
    const std::vector<TiedCopy> copies = tied_copies(t, spec);
    std::vector<MemoryBreakdown> memory(S);
    for (int s = 0; s < S; ++s) {
        if (spec.interleave > 1) {
            StageMemoryOptions options;
            options.optimizer = t.options.optimizer;
            options.dtype = t.options.dtype;
            options.recompute = spec.recompute;
            options.zero_shards = spec.zero ? spec.replicas : 1;
            memory[s] = stage_memory(interleaved_memory_input(t, spec, s), options);
            continue;
        }
        const auto [first, last] = stage_range(spec, s, t.layer_count);
        const LayerTable::Sums sums = t.sum(first, last);
        StageMemoryInput in;
        in.params = sums.params;
        in.weight_bytes = sums.weight_bytes;
        in.activation_bytes = sums.activation_bytes;
        in.attention_core_bytes = sums.attention_core_bytes;
        in.checkpoint_bytes = sums.checkpoint_bytes;
        in.checkpoints = static_cast<int>(sums.checkpoints);
        in.input_bytes = s == 0 ? t.input_bytes : t.boundary_bytes[first];
        add_tied_copies(in, copies, s);
        for (int i = first; i <= last; ++i) {
            in.buffer_bytes = std::max(in.buffer_bytes, t.buffer_bytes[i]);
            in.working_set_bytes = std::max(in.working_set_bytes, t.plan.layers[i].working_set_bytes);
        }
        StageMemoryOptions options;
        options.optimizer = t.options.optimizer;
        options.dtype = t.options.dtype;
        options.in_flight = spec.schedule == Schedule::gpipe ? M : std::min(M, S - s);
        options.recompute = spec.recompute;
        options.zero_shards = spec.zero ? spec.replicas : 1;
        memory[s] = stage_memory(in, options);
    }
    return memory;
}

// The slowest stage's M micro-batches of compute and blocking communication (the forward's
// redone under recomputation, by kind), with its receives as point-to-point.
void slowest_stage_work(const LayerTable& t, const PipelineSpec& spec, const StageTimes& times, CostBreakdown& k) {
    const double m = spec.micro_batches;
    k.fwd_compute_s = k.bwd_compute_s = 0;
    k.comm_s = {};
    for (int chunk = 0; chunk < spec.interleave; ++chunk) {  // the slowest device's chunks
        const int v = chunk * spec.stages + times.slowest;
        const auto [first, last] = stage_range(spec, v, t.layer_count);
        const LayerTable::Sums sums = t.sum(first, last);
        k.fwd_compute_s += m * sums.fwd_compute;
        const bool full = spec.recompute == Recompute::full;
        const double redone_compute = full                                    ? sums.fwd_compute
                                      : spec.recompute == Recompute::selective ? sums.fwd_core_compute
                                                                               : 0.0;
        k.bwd_compute_s += m * (sums.bwd_compute + redone_compute + times.accumulate[v]);
        for (std::size_t kind = 0; kind < kCommKindCount; ++kind)
            k.comm_s[kind] += m * (sums.comm[kind] + (full ? sums.fwd_comm_by_kind[kind] : 0.0));
        k.comm_s[index_of(CommKind::point_to_point)] += m * (times.recv_forward[v] + times.recv_backward[v] +
                                                            times.send_forward[v] + times.send_backward[v]);
    }
}
}  // namespace

namespace {
int worst_of(const std::vector<MemoryBreakdown>& memory) {
    return static_cast<int>(
        std::max_element(memory.begin(), memory.end(),
                         [](const MemoryBreakdown& a, const MemoryBreakdown& b) { return a.total() < b.total(); }) -
        memory.begin());
}
}  // namespace

WorstStageMemory worst_stage_memory(const LayerTable& t, const PipelineSpec& spec) {
    const std::vector<MemoryBreakdown> memory = stage_memories(t, spec);
    const int worst = worst_of(memory);
    return WorstStageMemory{memory[worst], worst};
}

void record_memory(CostBreakdown& cost, const MemoryBreakdown& worst, const clusters::Device& device,
                   const std::string& where) {
    cost.weights_bytes = worst.weights;
    cost.gradients_bytes = worst.gradients;
    cost.optimizer_bytes = worst.optimizer;
    cost.activations_bytes = worst.activations;
    cost.buffers_bytes = worst.buffers;
    cost.memory_bytes = worst.total();
    if (cost.feasible && cost.memory_capacity_bytes > 0 && cost.memory_bytes > cost.memory_capacity_bytes)
        cost.set_infeasible(Infeasibility::memory, over_memory_reason(cost.memory_bytes, device, where));
}

namespace {
// Per stage, how long it runs past the schedule (stage 0's last backward): its own last backward's
// end, its sync's contention and exposed part, the delayed send; then each tied weight on two
// devices adds its embedding-group all-reduce, which starts once both devices' syncs are done and
// holds both until it ends (TiedCopy), to both devices' sync totals too.
std::vector<double> past_schedule(const CostModel& model, const PipelineSpec& spec, const std::vector<double>& ends,
                                  const std::vector<double>& delay, const std::vector<TiedCopy>& copies,
                                  StageSyncs& syncs) {
    std::vector<double> beyond(spec.stages);
    for (int s = 0; s < spec.stages; ++s)
        beyond[s] = (ends[s] - ends[0]) + syncs.contention[s] + syncs.exposed[s] + (s > 0 ? delay[s - 1] : 0.0);
    for (const TiedCopy& c : copies) {
        const double seconds = tied_copy_all_reduce(model, spec, c).seconds;
        beyond[c.device] = beyond[c.embedding_device] = std::max(beyond[c.device], beyond[c.embedding_device]) + seconds;
        for (int d : {c.device, c.embedding_device}) {
            syncs.total[d] += seconds;
            syncs.max_total = std::max(syncs.max_total, syncs.total[d]);
        }
    }
    return beyond;
}
}  // namespace

StageEvaluation evaluate_stages(const CostModel& model, const LayerTable& t, const PipelineSpec& spec,
                                const std::vector<LayerSync>& sync, bool keep_stages) {
    StageEvaluation e;
    CostBreakdown& k = e.cost;
    k.memory_capacity_bytes = static_cast<double>(model.cluster().device.usable_memory_bytes());
    if (!t.plan.cost.feasible) k.set_infeasible(t.plan.cost.infeasibility, t.plan.cost.reason);
    const int S = spec.stages;
    const StageTimes times = stage_times(model, t, spec);
    const std::vector<TiedCopy> copies = tied_copies(t, spec);
    StageSyncs syncs = stage_syncs(t, spec, sync, copies, times.accumulate_per_param);
    const std::vector<double> delay = send_delays(model, t, spec, syncs);
    const bool delayed = std::any_of(delay.begin(), delay.end(), [](double d) { return d > 0; });

    // The schedule itself: when every stage's last backward ends (GPipe: the forwards, then the
    // backwards, fill and drain separately; 1F1B: its dependency graph, exactly, whichever stage
    // is the slowest). Stage 0's is the makespan.
    const std::vector<double> ends =
        last_backward_ends(times.forward, times.backward, spec.schedule, spec.micro_batches,
                           delayed ? delay : std::vector<double>{}, spec.interleave);
    e.pipeline_s = ends[0];
    e.balance = times.max_fb > 0 ? times.max_fb / (times.total_fb / S) : 1;
    e.cut_bytes = times.cut_bytes;
    // The stage whose synchronisation ends last past the schedule, and by how much: summed from its
    // parts (not as an end time minus pipeline_s, whose rounding would swamp a small sync after a
    // long schedule).
    const std::vector<double> beyond = past_schedule(model, spec, ends, delay, copies, syncs);
    double latest = e.pipeline_s, past = 0;
    int critical = -1;
    for (int s = 0; s < S; ++s)
        if (e.pipeline_s + beyond[s] > latest) latest = e.pipeline_s + beyond[s], past = beyond[s], critical = s;

    // The breakdown from the slowest stage's point of view: its M micro-batches of work, the
    // bubble (the schedule's idle time on top of them) and the synchronisation past the schedule.
    slowest_stage_work(t, spec, times, k);
    k.sync_total_s = syncs.max_total;  // the exposed part comes from one stage's, so never exceeds this
    k.bubble_s = std::max(0.0, e.pipeline_s - spec.micro_batches * times.max_fb);
    k.sync_contention_s = critical >= 0 ? std::min(syncs.contention[critical], past) : 0.0;
    k.sync_exposed_s = past - k.sync_contention_s;
    // The optimizer steps after the synchronisation, each device on its own, over all its chunks
    // (ZeRO-1: on its shard).
    for (int s = 0; s < S; ++s) {
        double own = 0;
        for (int chunk = 0; chunk < spec.interleave; ++chunk) {
            const auto [first, last] = stage_range(spec, chunk * S + s, t.layer_count);
            own += t.sum(first, last).optimizer_step;
        }
        for (const TiedCopy& c : copies) own += c.device == s ? c.optimizer_step_s : 0.0;
        const double step = optimizer_step_share(own, spec);
        k.optimizer_step_s = std::max(k.optimizer_step_s, step);
    }
    k.iteration_s = e.pipeline_s + past + k.optimizer_step_s;

    // Memory: the plan's is its largest stage's.
    const std::vector<MemoryBreakdown> memory = stage_memories(t, spec);
    const int worst = worst_of(memory);
    record_memory(k, memory[worst], model.cluster().device, spec.active() ? "stage " + std::to_string(worst) : "");
    if (keep_stages)  // per virtual stage (chunk) when interleaved, with its device's sync and memory
        for (int v = 0; v < spec.virtual_stages(); ++v) {
            const int s = v % S;
            StageCost sc;
            sc.first = stage_range(spec, v, t.layer_count).first;
            sc.last = stage_range(spec, v, t.layer_count).last;
            sc.forward_s = times.forward[v];
            sc.backward_s = times.backward[v];
            sc.recv_forward_s = times.recv_forward[v];
            sc.recv_backward_s = times.recv_backward[v];
            sc.sync_s = syncs.total[s];
            sc.memory_bytes = memory[s].total();
            sc.boundary_bytes = v + 1 < spec.virtual_stages() ? t.boundary_total[sc.last + 1] : 0.0;
            e.stages.push_back(sc);
        }
    return e;
}

}  // namespace dnnplan::planner
