#include "validators/pipeline_runner.hpp"

#include "validators/iteration_samples.hpp"
#include "validators/sequential_reference.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace dnnplan::validators {

using networks::Layer;
using networks::LayerKind;

std::string pipeline_unsupported_reason(const planner::PipelineSpec& spec) {
    if (!spec.device_of.empty())
        return "graph-partition plans (pipeline.device_of) are not run by the validator yet";
    if (spec.sequence_parallel && spec.tensor > 1)  // its stages' tensors, boundaries included, split along tokens
        return "sequence-parallel stages (pipeline.sequence_parallel) are not run by the validator yet";
    return "";
}

std::vector<StageOp> stage_ops(const planner::PipelineSpec& spec, int stage) {
    std::vector<StageOp> out;
    for (const planner::PipelineOp& op :
         planner::pipeline_order(spec.schedule, spec.stages, stage, spec.micro_batches, spec.interleave))
        out.push_back({op.chunk, op.micro, op.forward});
    return out;
}

namespace {
// A rank's place in the pipeline (planner/pipeline.hpp: tensor innermost, then stages, replicas).
struct Role {
    int stage = 0, replica = 0, tensor = 0;
};
Role role_of(const planner::PipelineSpec& spec, int rank) {
    return {(rank / spec.tensor) % spec.stages, rank / (spec.tensor * spec.stages), rank % spec.tensor};
}
int rank_of(const planner::PipelineSpec& spec, int stage, int replica, int tensor) {
    return tensor + spec.tensor * (stage + spec.stages * replica);
}

// Tags: per virtual stage v (chunk c of device d is v = c S + d) and micro-batch m, the activations
// entering v and the errors leaving it.
int activation_tag(const planner::PipelineSpec& spec, int v, int m) { return 1000 + v * spec.micro_batches + m; }
int error_tag(const planner::PipelineSpec& spec, int v, int m) { return 2000000 + v * spec.micro_batches + m; }
}  // namespace

ByteLedger planned_ledger(const planner::PipelineProgram& program, const planner::PipelineSpec& spec, int rank) {
    ByteLedger ledger;
    const Role me = role_of(spec, rank);
    const auto& stages = program.stages;
    const int S = spec.stages, V = spec.virtual_stages();
    for (int c = 0; c < spec.interleave; ++c) {
        const int v = c * S + me.stage;
        if (v + 1 < V) {  // activations to the next virtual stage's rank of the same tensor index
            const auto& next = stages[static_cast<std::size_t>(v + 1)];
            ledger.record({next.first, planner::Phase::forward, planner::CommKind::point_to_point,
                           rank_of(spec, (v + 1) % S, me.replica, me.tensor), 2, next.recv_bytes},
                          spec.micro_batches);
        }
        const auto& st = stages[static_cast<std::size_t>(v)];
        if (v > 0)  // partial errors back
            ledger.record({st.first, planner::Phase::backward, planner::CommKind::point_to_point,
                           rank_of(spec, (v - 1) % S, me.replica, me.tensor), 2, st.recv_bytes},
                          spec.micro_batches);
        // A scattered boundary (PipelineProgram::Stage::recv_gather_bytes) is all-gathered over the
        // receiving stage's T ranks: the activations entering v, the errors entering v from v + 1.
        if (v > 0 && st.recv_gather_bytes > 0)
            ledger.record({st.first, planner::Phase::forward, planner::CommKind::all_gather, -1, spec.tensor,
                           st.recv_gather_bytes},
                          spec.micro_batches);
        if (v + 1 < V && stages[static_cast<std::size_t>(v + 1)].recv_gather_bytes > 0)
            ledger.record({stages[static_cast<std::size_t>(v + 1)].first, planner::Phase::backward,
                           planner::CommKind::all_gather, -1, spec.tensor,
                           stages[static_cast<std::size_t>(v + 1)].recv_gather_bytes},
                          spec.micro_batches);
        for (int i = st.first; i <= st.last; ++i)
            for (const planner::CommCall& call : program.sync[static_cast<std::size_t>(i)])
                if (call.group.size > 1) ledger.record({i, call.phase, call.kind, -1, call.group.size, call.bytes});
        // Stage-internal calls of a tensor-parallel stage, once per micro-batch; the forward's twice
        // under full recomputation (the redone forward, as the stage evaluator books it).
        const bool redo = spec.recompute == planner::Recompute::full;
        for (const planner::CommCall& call : program.micro.calls)
            if (call.phase != planner::Phase::sync && call.group.size > 1 && call.layer >= st.first &&
                call.layer <= st.last)
                ledger.record({call.layer, call.phase, call.kind, -1, call.group.size, call.bytes},
                              spec.micro_batches * (redo && call.phase == planner::Phase::forward ? 2 : 1));
    }
    // Tied weights on two devices: the embedding group's all-reduce, once per iteration on each.
    for (const auto& tied : program.tied)
        if (me.stage == tied.copy.device || me.stage == tied.copy.embedding_device)
            ledger.record({tied.all_reduce.layer, tied.all_reduce.phase, tied.all_reduce.kind, -1,
                           tied.all_reduce.group.size, tied.all_reduce.bytes});
    return ledger;
}

namespace {

// Tied weights (a linear layer with `tied_to` reads its embedding's table): the embedding's shard
// holds [E, V] (rows: the hidden axis, columns: its vocabulary block), the tied layer's [V, E] (rows:
// the same vocabulary block). A gradient of the tie keeps the embedding's order; the tied layer's
// element e (row-major in its shard) is then at tied_index(), and value k is its element shard_index().
template <class T>
Index tied_index(const Shard<T>& sh, Index e) {
    const Index nc = sh.col_hi - sh.col_lo, nr = sh.row_hi - sh.row_lo;
    return (e % nc) * nr + e / nc;
}
template <class T>
Index shard_index(const Shard<T>& sh, Index k) {
    const Index nc = sh.col_hi - sh.col_lo, nr = sh.row_hi - sh.row_lo;
    return (k % nr) * nc + k / nr;
}
// A shard's weights (and bias) in a gradient's order, and back.
template <class T>
std::vector<T> flat_values(const Shard<T>& sh, bool transposed) {
    std::vector<T> flat(sh.weight);
    if (transposed)
        for (Index e = 0; e < static_cast<Index>(sh.weight.size()); ++e) flat[static_cast<std::size_t>(tied_index(sh, e))] = sh.weight[static_cast<std::size_t>(e)];
    flat.insert(flat.end(), sh.bias.begin(), sh.bias.end());
    return flat;
}
template <class T>
void set_values(Shard<T>& sh, bool transposed, const std::vector<T>& flat) {
    for (Index e = 0; e < static_cast<Index>(sh.weight.size()); ++e)
        sh.weight[static_cast<std::size_t>(e)] = flat[static_cast<std::size_t>(transposed ? tied_index(sh, e) : e)];
    std::copy(flat.begin() + static_cast<std::ptrdiff_t>(sh.weight.size()), flat.end(), sh.bias.begin());
}
template <class T>
void add_gradient(const Shard<T>& sh, bool transposed, std::vector<T>& values) {
    for (Index e = 0; e < static_cast<Index>(sh.dweight.size()); ++e)
        values[static_cast<std::size_t>(transposed ? tied_index(sh, e) : e)] += sh.dweight[static_cast<std::size_t>(e)];
    for (std::size_t e = 0; e < sh.dbias.size(); ++e) values[sh.dweight.size() + e] += sh.dbias[e];
}

// One device of one replica on this rank: per model chunk and micro-batch a NetworkRunner segment
// of the chunk's layers on the stage's T ranks (the plan's tensor-parallel layouts; one runner per
// micro-batch keeps its activations until its backward, one in all with full recomputation). As
// GPipe, PipeDream-1F1B and Megatron-LM do, the chunk holds one set of weights and one gradient
// per layer (Chunk::params, LentParameters), which every micro-batch reads and accumulates its
// gradient into in place: the runners' own shards stay empty and are lent the chunk's storage for
// the operation they run (Loan: Shard::trade, O(1)).
template <class T>
class PipelineStage {
public:
    // `overlap_sync`: each layer's replica sync starts after its last backward (RunOptions).
    PipelineStage(const networks::Network& net, const planner::PipelineProgram& program,
                  const planner::PipelineSpec& spec, Index batch, MPI_Comm comm, bool overlap_sync);
    ~PipelineStage() {
        for (MPI_Comm* c : {&replica_comm_, &tensor_comm_})
            if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
        for (Tie& tie : ties_)
            if (tie.group != MPI_COMM_NULL) MPI_Comm_free(&tie.group);
    }
    PipelineStage(const PipelineStage&) = delete;
    PipelineStage& operator=(const PipelineStage&) = delete;

    double step(OpTimer& timer, ByteLedger& ledger);  // the global mean loss
    void sgd(T learning_rate, OpTimer& timer, ByteLedger& ledger);
    // Per layer with weights: this rank's shard's flattened [weight, bias] gradient (summed over
    // the micro-batches and the replicas); entries [lo, hi) are valid (all of them, or this
    // replica's ZeRO-1 slice). `shard`: the geometry (rows and columns this rank holds).
    struct Gradient {
        int layer = 0;
        // The gradient, flattened [weight, bias], `size` values at `data`: the layer's storage
        // itself (Shard::grad, no copy) when the layer is its only source and untransposed and
        // no tie over two devices all-reduces it; else `values`, gathered from the sources.
        T* data = nullptr;
        Index size = 0;
        std::vector<T> values;
        bool gathered() const { return !values.empty(); }
        Index lo = 0, hi = 0;
        const Shard<T>* shard = nullptr;
        // A tied layer's copy of its embedding's table (a tie over two devices): values in the
        // embedding's order (tied_index).
        bool transposed = false;
        // The layers whose weights these are (transposed or not): the layer, and a layer tied to
        // it on the same device (one weight: its gradient adds in, its weights follow the update).
        std::vector<std::pair<int, bool>> sources;
        // The replicas' sum in flight (RunOptions::overlap_sync): its request, and under ZeRO-1
        // this replica's slice as it arrives.
        MPI_Request request = MPI_REQUEST_NULL;
        std::vector<T> slice;
        bool started = false;
        // The layer whose backward completes the gradient: the lowest of `sources` (the last
        // backward pass of the stage reaches it last).
        int completed_by = 0;
    };
    const std::vector<Gradient>& gradients() const { return grads_; }
    const Role& role() const { return me_; }
    // The operations of the last step in the order they ran ("F0 F1 B0 ...", chunk c > 0 as "F0.c").
    std::string executed() const {
        std::ostringstream out;
        for (std::size_t k = 0; k < executed_.size(); ++k) {
            const StageOp& op = executed_[k];
            out << (k ? " " : "") << (op.forward ? 'F' : 'B') << op.micro;
            if (op.chunk) out << '.' << op.chunk;
        }
        return out.str();
    }
    double send_s = 0, recv_s = 0;  // this step's point-to-point time (sends; receive waits)

private:
    struct Chunk : LentParameters<T> {  // params: Gradient::shard points at them
        int v = 0, first = 1, last = 1;
        std::vector<std::unique_ptr<NetworkRunner<T>>> slots;  // per micro-batch (one with recomputation)
        std::vector<Tensor<T>> inputs;                          // recomputation: the received input per micro-batch
        int last_backward = 0;  // the micro-batch of the chunk's last backward in the stage's order
    };
    using Loan = typename LentParameters<T>::Loan;
    std::size_t slot_of(int m) const {
        return spec_.recompute == planner::Recompute::full ? 0 : static_cast<std::size_t>(m);
    }
    NetworkRunner<T>& runner(Chunk& c, int m) { return *c.slots[slot_of(m)]; }
    void run_op(const StageOp& op, OpTimer& timer, ByteLedger& ledger);
    // The tensor crossing boundary `into_v` (into virtual stage into_v: activations forward, their
    // gradients backward) travels as 1/T slices and is all-gathered by the receivers when the plan
    // scatters it (Megatron-LM, SC'21 section 4.1; PipelineProgram::Stage::recv_gather_bytes).
    bool scattered(int into_v) const {
        return spec_.tensor > 1 && boundary_gather_[static_cast<std::size_t>(into_v)] > 0;
    }
    void send(Tensor<T>&& t, int to_v, int tag, int layer, planner::Phase phase, bool slice, OpTimer& timer,
              ByteLedger& ledger);
    Tensor<T> receive(const Box& box, int from_v, int tag, const std::string& what, int layer, planner::Phase phase,
                      bool slice, OpTimer& timer, ByteLedger& ledger);
    // Starts the replicas' sum of g (blocking without overlap), from the storage's gradients.
    void sync_gradient(Gradient& g, OpTimer& timer, ByteLedger& ledger);
    // After layer `layer`'s backward in a backward operation (NetworkRunner::after_backward): in a
    // chunk's last backward, the syncs of the gradients it completes start; the ones in flight
    // are tested once (the progress Open MPI makes only inside MPI calls).
    void layer_backward_done(int layer, OpTimer& timer);
    void finish_syncs(OpTimer& timer);
    std::vector<std::pair<int, Shard<T>*>> shards_of(NetworkRunner<T>& r, const Chunk& c);
    // The shard holding layer `layer`'s parameters and gradient on this device now: its chunk's
    // storage, or the runner it is lent to (nullptr: not on this device).
    Shard<T>* storage_of(int layer);
    Gradient* gradient_of(int layer);
    void tie_weights(const planner::PipelineProgram& program);
    // A tie over two devices this rank takes part in (PipelineProgram::tied): the embedding group,
    // tensor rank t of both devices in this replica.
    struct Tie {
        int layer = 0, embedding = 0;
        MPI_Comm group = MPI_COMM_NULL;
    };
    std::vector<Tie> ties_;

    const networks::Network& net_;
    planner::PipelineSpec spec_;
    Role me_;
    Index batch_, micro_batch_;
    MPI_Comm comm_, replica_comm_ = MPI_COMM_NULL, tensor_comm_ = MPI_COMM_NULL;
    std::vector<Chunk> chunks_;
    std::vector<double> boundary_gather_;  // per virtual stage: the program's recv_gather_bytes
    std::vector<Gradient> grads_;
    struct PendingSend {
        std::vector<T> data;
        MPI_Request request = MPI_REQUEST_NULL;
    };
    std::vector<std::unique_ptr<PendingSend>> sends_;
    double loss_sum_ = 0;
    std::vector<StageOp> executed_;
    bool overlap_sync_ = true;
    int replicas_ = 1;
    // While a chunk's last backward runs (the last micro-batch's gradients arrive): its ledger.
    ByteLedger* finishing_ = nullptr;
};

// Every layer's layout: the plan's micro-batch plan on T processes (a follower: its anchor's).
std::vector<planner::Layout> layer_layouts(const planner::PipelineProgram& program, std::size_t layers) {
    std::vector<planner::Layout> out(layers);
    for (std::size_t i = 1; i < layers && i < program.micro.layers.size(); ++i) out[i] = program.micro.layers[i].layout;
    return out;
}

template <class T>
std::vector<std::pair<int, Shard<T>*>> PipelineStage<T>::shards_of(NetworkRunner<T>& r, const Chunk& c) {
    std::vector<std::pair<int, Shard<T>*>> out;
    for (const auto& [index, sh] : r.shards())
        if (index >= c.first && index <= c.last) out.emplace_back(index, const_cast<Shard<T>*>(sh));
    return out;
}

template <class T>
PipelineStage<T>::PipelineStage(const networks::Network& net, const planner::PipelineProgram& program,
                                const planner::PipelineSpec& spec, Index batch, MPI_Comm comm, bool overlap_sync)
    : net_(net), spec_(spec), batch_(batch), micro_batch_(program.micro_batch), comm_(comm),
      overlap_sync_(overlap_sync) {
    const int rank = comm_rank(comm);
    me_ = role_of(spec, rank);
    MPI_Comm_split(comm, rank % (spec.tensor * spec.stages), me_.replica, &replica_comm_);
    replicas_ = comm_size(replica_comm_);
    MPI_Comm_split(comm, rank / spec.tensor, me_.tensor, &tensor_comm_);
    const std::vector<planner::Layout> layouts = layer_layouts(program, net.layers.size());
    for (const auto& st : program.stages) boundary_gather_.push_back(st.recv_gather_bytes);
    // A batch or spatial split inside a stage would all-reduce each micro-batch's weight gradient
    // inside the segment, on top of the previous micro-batches' sum: not run (the planner's
    // tensor-parallel layouts split co and ci only).
    for (std::size_t i = 1; i < layouts.size(); ++i)
        if (layouts[i].n * layouts[i].h * layouts[i].w > 1)
            throw std::invalid_argument("layer " + net.layers[i].name + ": layout " + planner::to_string(layouts[i]) +
                                        " splits the batch or the image inside a pipeline stage; the validator runs "
                                        "stages whose layouts split co and ci only");
    const int slots = spec.recompute == planner::Recompute::full ? 1 : spec.micro_batches;
    chunks_.reserve(static_cast<std::size_t>(spec.interleave));
    for (int c = 0; c < spec.interleave; ++c) {
        Chunk ch;
        ch.v = c * spec.stages + me_.stage;
        ch.first = program.stages[static_cast<std::size_t>(ch.v)].first;
        ch.last = program.stages[static_cast<std::size_t>(ch.v)].last;
        for (int m = 0; m < slots; ++m) {
            Segment seg;
            seg.first = ch.first, seg.last = ch.last;
            seg.sample_offset = Index(me_.replica) * (batch / spec.replicas) + Index(m) * micro_batch_;
            seg.loss_scale = double(micro_batch_) / double(batch);
            ch.slots.push_back(std::make_unique<NetworkRunner<T>>(net, layouts, micro_batch_, tensor_comm_, false, seg));
            ch.slots.back()->after_backward = [this](int layer, OpTimer& timer) { layer_backward_done(layer, timer); };
        }
        ch.inputs.resize(static_cast<std::size_t>(spec.micro_batches));
        std::vector<std::vector<std::pair<int, Shard<T>*>>> slot_shards;
        for (auto& slot : ch.slots) slot_shards.push_back(shards_of(*slot, ch));
        ch.adopt(slot_shards);
        for (auto& [index, storage] : ch.params) {
            Shard<T>* sh = &storage;
            Gradient g;
            g.layer = index;
            g.shard = sh;
            g.values.assign(sh->weight.size() + sh->bias.size(), T{0});
            g.hi = static_cast<Index>(g.values.size());
            if (spec.zero && spec.replicas > 1) {
                g.lo = block_begin(g.hi, spec.replicas, me_.replica);
                g.hi = block_begin(g.hi, spec.replicas, me_.replica + 1);
            }
            g.sources = {{index, false}};
            grads_.push_back(std::move(g));
        }
        chunks_.push_back(std::move(ch));
    }
    for (const StageOp& op : stage_ops(spec, me_.stage))
        if (!op.forward) chunks_[static_cast<std::size_t>(op.chunk)].last_backward = op.micro;
    tie_weights(program);
    for (Gradient& g : grads_) {
        g.completed_by = g.layer;
        for (const auto& source : g.sources) g.completed_by = std::min(g.completed_by, source.first);
        g.size = static_cast<Index>(g.values.size());
        const bool tied = std::any_of(ties_.begin(), ties_.end(),
                                      [&](const Tie& t) { return t.layer == g.layer || t.embedding == g.layer; });
        if (g.sources.size() == 1 && !g.transposed && !tied) std::vector<T>().swap(g.values);
        // The storage's buffer stays put when loans trade it between shards.
        g.data = g.gathered() ? g.values.data() : storage_of(g.layer)->grad.data();
    }
}

template <class T>
Shard<T>* PipelineStage<T>::storage_of(int layer) {
    for (auto& ch : chunks_)
        if (auto it = ch.holder.find(layer); it != ch.holder.end()) return it->second;
    return nullptr;
}

template <class T>
typename PipelineStage<T>::Gradient* PipelineStage<T>::gradient_of(int layer) {
    for (Gradient& g : grads_)
        if (g.layer == layer) return &g;
    return nullptr;
}

// Tied weights. On two devices, as Megatron-LM (megatron/core/models/common/language_module/
// language_module.py, setup_embeddings_and_output_layer): the tied layer's device keeps a copy,
// zeroed, and the embedding group all-reduces the weights once so that it starts equal to the
// embedding's; every iteration then all-reduces the two gradients (step()). On one device the tied
// layer's weights are the embedding's: its gradient adds into the embedding's.
template <class T>
void PipelineStage<T>::tie_weights(const planner::PipelineProgram& program) {
    for (const auto& tied : program.tied) {  // every rank takes part in each split
        const bool in = me_.stage == tied.copy.device || me_.stage == tied.copy.embedding_device;
        Tie tie{tied.copy.layer, tied.copy.embedding};
        MPI_Comm_split(comm_, in ? me_.replica * spec_.tensor + me_.tensor : MPI_UNDEFINED, me_.stage, &tie.group);
        if (!in) continue;
        const bool copy = me_.stage == tied.copy.device;
        Gradient& g = *gradient_of(copy ? tie.layer : tie.embedding);
        if (copy) g.transposed = true, g.sources = {{tie.layer, true}};
        // The two shards must cover the same vocabulary block.
        const long long mine[2] = {static_cast<long long>(copy ? g.shard->row_lo : g.shard->col_lo),
                                   static_cast<long long>(copy ? g.shard->row_hi : g.shard->col_hi)};
        long long both[4] = {};
        MPI_Allgather(mine, 2, MPI_LONG_LONG, both, 2, MPI_LONG_LONG, tie.group);
        if (both[0] != both[2] || both[1] != both[3] || comm_size(tie.group) != 2)
            throw std::logic_error("tied layer " + net_.layers[static_cast<std::size_t>(tie.layer)].name +
                                   ": its copy and the embedding hold different vocabulary blocks");
        std::vector<T> flat = copy ? std::vector<T>(g.values.size(), T{0}) : flat_values(*g.shard, false);
        MPI_Allreduce(MPI_IN_PLACE, flat.data(), static_cast<int>(flat.size()), mpi_type<T>(), MPI_SUM, tie.group);
        if (copy) set_values(*storage_of(tie.layer), true, flat);
        ties_.push_back(tie);
    }
    for (std::size_t i = 1; i < net_.layers.size(); ++i) {  // both on this device
        const std::string& to = net_.layers[i].attrs.tied_to;
        Gradient* tied = gradient_of(static_cast<int>(i));
        Gradient* embedding = to.empty() ? nullptr : gradient_of(net_.find(to));
        if (!tied || !embedding) continue;
        embedding->sources.emplace_back(static_cast<int>(i), true);
        const std::vector<T> flat = flat_values(*embedding->shard, false);
        set_values(*storage_of(static_cast<int>(i)), true, flat);
        grads_.erase(grads_.begin() + (tied - grads_.data()));
    }
}

namespace {
// Tensor rank t's slice of a flattened boundary tensor of n elements: a balanced 1/T block.
std::pair<Index, Index> boundary_slice(Index n, int tensor, int t) {
    return {block_begin(n, tensor, t), block_begin(n, tensor, t + 1)};
}
}  // namespace

template <class T>
void PipelineStage<T>::send(Tensor<T>&& t, int to_v, int tag, int layer, planner::Phase phase, bool slice,
                            OpTimer& timer, ByteLedger& ledger) {
    auto pending = std::make_unique<PendingSend>();
    if (slice) {  // only this tensor rank's 1/T of the tensor every tensor rank holds whole
        const auto [lo, hi] = boundary_slice(static_cast<Index>(t.data.size()), spec_.tensor, me_.tensor);
        pending->data.assign(t.data.begin() + static_cast<std::ptrdiff_t>(lo), t.data.begin() + static_cast<std::ptrdiff_t>(hi));
    } else {
        pending->data = std::move(t.data);
    }
    const int peer = rank_of(spec_, to_v % spec_.stages, me_.replica, me_.tensor);
    const double t0 = MPI_Wtime();
    timer.time(Op::redistribution, "stage " + std::to_string(me_.stage) + " send to stage " + std::to_string(to_v % spec_.stages),
               [&] {
                   MPI_Isend(pending->data.data(), static_cast<int>(pending->data.size()), mpi_type<T>(), peer, tag,
                             comm_, &pending->request);
               });
    send_s += MPI_Wtime() - t0;
    ledger.record({layer, phase, planner::CommKind::point_to_point, peer, 2,
                   double(pending->data.size() * sizeof(T))});
    sends_.push_back(std::move(pending));
}

template <class T>
Tensor<T> PipelineStage<T>::receive(const Box& box, int from_v, int tag, const std::string& what, int layer,
                                    planner::Phase phase, bool slice, OpTimer& timer, ByteLedger& ledger) {
    Tensor<T> t(box);
    const Index n = static_cast<Index>(t.data.size());
    const auto [lo, hi] = slice ? boundary_slice(n, spec_.tensor, me_.tensor) : std::pair<Index, Index>{0, n};
    const double t0 = MPI_Wtime();
    const std::string where = "stage " + std::to_string(me_.stage);
    const int source = rank_of(spec_, from_v % spec_.stages, me_.replica, me_.tensor);
    // Waiting for the peer stage to produce the message is the schedule's idle time (the bubble),
    // not the transfer the plan's point-to-point seconds model: it counts as receive wait only
    // (per-stage table); the receive of the arrived message is the operation's time.
    if (timer.on_step) timer.on_step(where + " wait for " + what, true);
    MPI_Probe(source, tag, comm_, MPI_STATUS_IGNORE);
    timer.time(Op::redistribution, where + " receive " + what, [&] {
        MPI_Recv(t.data.data() + lo, static_cast<int>(hi - lo), mpi_type<T>(), source, tag, comm_, MPI_STATUS_IGNORE);
    });
    if (slice) {  // the whole tensor again from the T slices, over the stage's tensor group
        std::vector<int> counts(static_cast<std::size_t>(spec_.tensor)), displs(counts.size());
        for (int r = 0; r < spec_.tensor; ++r) {
            const auto [rlo, rhi] = boundary_slice(n, spec_.tensor, r);
            displs[static_cast<std::size_t>(r)] = static_cast<int>(rlo);
            counts[static_cast<std::size_t>(r)] = static_cast<int>(rhi - rlo);
        }
        timer.time(Op::redistribution, where + " all-gather " + what, [&] {
            MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), t.data.data(), counts.data(), displs.data(), mpi_type<T>(),
                           tensor_comm_);
        });
        ledger.record({layer, phase, planner::CommKind::all_gather, -1, spec_.tensor, double(t.data.size() * sizeof(T))});
    }
    recv_s += MPI_Wtime() - t0;  // the all-gather included, as the plan's recv_s folds it in
    return t;
}

template <class T>
void PipelineStage<T>::run_op(const StageOp& op, OpTimer& timer, ByteLedger& ledger) {
    executed_.push_back(op);
    const int m = op.micro;
    Chunk& ch = chunks_[static_cast<std::size_t>(op.chunk)];
    NetworkRunner<T>& r = runner(ch, m);
    const Loan loan(ch, slot_of(m));
    const bool first_v = ch.v == 0, last_v = ch.v + 1 == spec_.virtual_stages();
    const bool full = spec_.recompute == planner::Recompute::full;
    const Index base = Index(me_.replica) * (batch_ / spec_.replicas) + Index(m) * micro_batch_;
    const std::string mtext = "micro-batch " + std::to_string(m);
    if (full) r.set_sample_offset(base);  // the one runner serves every micro-batch
    if (op.forward) {
        Tensor<T> x;
        if (!first_v)
            x = receive(r.boundary_box(), ch.v - 1, activation_tag(spec_, ch.v, m), "activations of " + mtext, ch.first,
                        planner::Phase::forward, scattered(ch.v), timer, ledger);
        if (full) ch.inputs[static_cast<std::size_t>(m)] = x;
        Tensor<T> y = r.forward_segment(std::move(x), timer);
        if (!last_v)
            send(std::move(y), ch.v + 1, activation_tag(spec_, ch.v + 1, m), ch.last + 1, planner::Phase::forward,
                 scattered(ch.v + 1), timer, ledger);
        return;
    }
    Tensor<T> dy;
    if (!last_v)
        dy = receive(r.output_box(), ch.v + 1, error_tag(spec_, ch.v, m), "errors of " + mtext, ch.last + 1,
                     planner::Phase::backward, scattered(ch.v + 1), timer, ledger);
    if (full) r.forward_segment(ch.inputs[static_cast<std::size_t>(m)], timer);  // the redone forward
    finishing_ = m == ch.last_backward ? &ledger : nullptr;
    Tensor<T> dx = r.backward_segment(std::move(dy), timer);
    finishing_ = nullptr;
    if (last_v) loss_sum_ += r.loss();
    if (!first_v)
        send(std::move(dx), ch.v - 1, error_tag(spec_, ch.v - 1, m), ch.first, planner::Phase::backward, scattered(ch.v),
             timer, ledger);
}

// The replicas' sum of one layer's gradient (ZeRO-1: each replica keeps the sum of its slice),
// started from the storage's gradient: the gradient in one buffer in the sync's order (one call per
// layer, as the plan has it; the copy is the sync's, timed with it, as the layer-parallel runner's
// start_sync), non-blocking under overlap (finish_syncs waits).
template <class T>
void PipelineStage<T>::sync_gradient(Gradient& g, OpTimer& timer, ByteLedger& ledger) {
    g.started = true;
    auto gather = [&] {
        if (!g.gathered()) return;
        std::fill(g.values.begin(), g.values.end(), T{0});
        for (const auto& [layer, transposed] : g.sources) add_gradient(*storage_of(layer), transposed, g.values);
    };
    if (replicas_ <= 1) return gather();
    const double bytes = double(g.size) * sizeof(T);
    const std::string name = net_.layers[static_cast<std::size_t>(g.layer)].name;
    if (spec_.zero) {
        std::vector<int> counts(static_cast<std::size_t>(replicas_));
        const Index n = g.size;
        for (int r = 0; r < replicas_; ++r)
            counts[static_cast<std::size_t>(r)] = static_cast<int>(block_begin(n, replicas_, r + 1) - block_begin(n, replicas_, r));
        g.slice.resize(static_cast<std::size_t>(g.hi - g.lo));
        timer.time(Op::sync, name + " gradient reduce-scatter", [&] {
            gather();
            if (overlap_sync_)
                MPI_Ireduce_scatter(g.data, g.slice.data(), counts.data(), mpi_type<T>(), MPI_SUM,
                                    replica_comm_, &g.request);
            else
                MPI_Reduce_scatter(g.data, g.slice.data(), counts.data(), mpi_type<T>(), MPI_SUM, replica_comm_);
        });
        ledger.record({g.layer, planner::Phase::sync, planner::CommKind::reduce_scatter, -1, replicas_, bytes});
    } else {
        timer.time(Op::sync, name + " gradient all-reduce", [&] {
            gather();
            if (overlap_sync_)
                MPI_Iallreduce(MPI_IN_PLACE, g.data, static_cast<int>(g.size), mpi_type<T>(), MPI_SUM,
                               replica_comm_, &g.request);
            else
                MPI_Allreduce(MPI_IN_PLACE, g.data, static_cast<int>(g.size), mpi_type<T>(), MPI_SUM,
                              replica_comm_);
        });
        ledger.record({g.layer, planner::Phase::sync, planner::CommKind::all_reduce, -1, replicas_, bytes});
    }
}

template <class T>
void PipelineStage<T>::layer_backward_done(int layer, OpTimer& timer) {
    if (!overlap_sync_ || replicas_ <= 1) return;
    if (finishing_)
        for (Gradient& g : grads_)
            if (!g.started && g.completed_by == layer) sync_gradient(g, timer, *finishing_);
    const bool any = std::any_of(grads_.begin(), grads_.end(), [](const Gradient& g) { return g.request != MPI_REQUEST_NULL; });
    if (!any) return;
    timer.time(Op::sync, "gradient sync progress", [&] {
        for (Gradient& g : grads_)
            if (g.request != MPI_REQUEST_NULL) {
                int done = 0;
                MPI_Test(&g.request, &done, MPI_STATUS_IGNORE);
            }
    });
}

// The syncs in flight end; under ZeRO-1 each gradient keeps its slice of the sum.
template <class T>
void PipelineStage<T>::finish_syncs(OpTimer& timer) {
    if (replicas_ <= 1) return;
    if (overlap_sync_)
        timer.time(Op::sync, "gradient sync wait", [&] {
            for (Gradient& g : grads_)
                if (g.request != MPI_REQUEST_NULL) MPI_Wait(&g.request, MPI_STATUS_IGNORE);
        });
    if (spec_.zero)
        for (Gradient& g : grads_) {
            std::fill(g.values.begin(), g.values.end(), T{0});  // a gathered one: zeros outside the slice
            std::copy(g.slice.begin(), g.slice.end(), g.data + g.lo);
        }
}

template <class T>
double PipelineStage<T>::step(OpTimer& timer, ByteLedger& ledger) {
    send_s = recv_s = loss_sum_ = 0;
    executed_.clear();
    for (auto& ch : chunks_)
        for (auto& [index, storage] : ch.params) storage.zero_grad();
    for (Gradient& g : grads_) g.started = false;
    for (const StageOp& op : stage_ops(spec_, me_.stage)) run_op(op, timer, ledger);
    {  // waiting for the peers to take the last messages: send time, not the plan's transfer
        const double t0 = MPI_Wtime();
        if (timer.on_step) timer.on_step("stage " + std::to_string(me_.stage) + " send completion", true);
        for (auto& p : sends_) MPI_Wait(&p->request, MPI_STATUS_IGNORE);
        send_s += MPI_Wtime() - t0;
        sends_.clear();
    }
    // The replicas' sums not started in the last backward pass (all of them without overlap, as
    // Megatron-LM's finalize_model_grads without --overlap-grad-reduce), in backward order.
    for (std::size_t k = grads_.size(); k-- > 0;)
        if (!grads_[k].started) sync_gradient(grads_[k], timer, ledger);
    finish_syncs(timer);
    // Tied weights on two devices: after the replicas' syncs, the embedding group's all-reduce of
    // the whole gradient (megatron/core/distributed/finalize_model_grads.py, finalize_model_grads ->
    // _allreduce_word_embedding_grads; under ZeRO-1 both hold the same slice, zeros elsewhere).
    for (const Tie& tie : ties_) {
        Gradient* g = gradient_of(tie.layer);
        if (!g) g = gradient_of(tie.embedding);
        timer.time(Op::sync, net_.layers[static_cast<std::size_t>(tie.layer)].name + " tied gradient all-reduce", [&] {
            MPI_Allreduce(MPI_IN_PLACE, g->values.data(), static_cast<int>(g->values.size()), mpi_type<T>(), MPI_SUM,
                          tie.group);
        });
        ledger.record({tie.layer, planner::Phase::sync, planner::CommKind::all_reduce, -1, 2,
                       double(g->values.size() * sizeof(T))});
    }
    // The loss is reported, not part of the plan: the last stages' shares summed over one tensor
    // rank of each replica (not in the ledger).
    double mine = me_.tensor == 0 ? loss_sum_ : 0, loss = 0;
    timer.time(Op::loss, "loss all-reduce", [&] { MPI_Allreduce(&mine, &loss, 1, MPI_DOUBLE, MPI_SUM, comm_); });
    return loss;
}

template <class T>
void PipelineStage<T>::sgd(T learning_rate, OpTimer& timer, ByteLedger& ledger) {
    const int replicas = comm_size(replica_comm_);
    for (Gradient& g : grads_) {
        if (!g.gathered() && !(spec_.zero && replicas > 1)) {  // in place, the layer's one weight
            Shard<T>& sh = *storage_of(g.layer);
            timer.time(Op::optimizer, "sgd", [&] {
                const std::size_t nw = sh.weight.size();
                for (std::size_t e = 0; e < nw; ++e) sh.weight[e] -= learning_rate * g.data[e];
                for (std::size_t e = 0; e < sh.bias.size(); ++e) sh.bias[e] -= learning_rate * g.data[nw + e];
            });
            continue;
        }
        std::vector<T> flat = flat_values(*g.shard, g.transposed);
        // ZeRO-1: each replica updates its own slice (the optimizer state lives with it), then the
        // updated parameters are all-gathered.
        timer.time(Op::optimizer, "sgd", [&] {
            for (Index e = g.lo; e < g.hi; ++e) flat[static_cast<std::size_t>(e)] -= learning_rate * g.data[e];
        });
        if (spec_.zero && replicas > 1) {
            std::vector<int> counts(static_cast<std::size_t>(replicas)), displs(static_cast<std::size_t>(replicas));
            const Index n = static_cast<Index>(flat.size());
            for (int r = 0; r < replicas; ++r) {
                displs[static_cast<std::size_t>(r)] = static_cast<int>(block_begin(n, replicas, r));
                counts[static_cast<std::size_t>(r)] = static_cast<int>(block_begin(n, replicas, r + 1) - block_begin(n, replicas, r));
            }
            timer.time(Op::sync, net_.layers[static_cast<std::size_t>(g.layer)].name + " parameter all-gather", [&] {
                MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), flat.data(), counts.data(), displs.data(), mpi_type<T>(),
                               replica_comm_);
            });
            ledger.record({g.layer, planner::Phase::sync, planner::CommKind::all_gather, -1, replicas,
                           double(flat.size() * sizeof(T))});
        }
        // The layer, and a layer tied to it, take the same parameters.
        for (const auto& [layer, transposed] : g.sources) set_values(*storage_of(layer), transposed, flat);
    }
}

template class PipelineStage<float>;
template class PipelineStage<double>;

double max_over(MPI_Comm comm, double v) {
    double r = 0;
    MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm);
    return r;
}


// Max relative error of one layer's gradient on this rank's shard (entries [lo, hi) of the
// flattened [weight, bias]) against the sequential network's whole gradient `want` (flattened
// [weight, bias] of the unsplit layer `whole`).
double shard_gradient_error(const PipelineStage<double>::Gradient& g, const Shard<double>& whole,
                            const std::vector<double>& want) {
    double err = 0, scale = 0;
    for (double v : want) scale = std::max(scale, std::abs(v));
    const Shard<double>& sh = *g.shard;
    const Index nc = sh.col_hi - sh.col_lo, nw = static_cast<Index>(sh.weight.size());
    const std::size_t whole_nw = whole.dweight.size();
    for (Index k = g.lo; k < g.hi; ++k) {
        const Index e = g.transposed && k < nw ? shard_index(sh, k) : k;  // the shard's element
        const double w = e < nw ? want[static_cast<std::size_t>((sh.row_lo + e / nc) * whole.cols + sh.col_lo + e % nc)]
                                : want[whole_nw + static_cast<std::size_t>((sh.bias_size > 0 ? 0 : sh.row_lo) + e - nw)];
        err = std::max(err, std::abs(g.data[k] - w));
    }
    return scale > 0 ? err / scale : err;
}

// The sequential network's tied weights (one process holds both layers): the tied layer starts with
// its embedding's weights, and each step both take the sum of the two gradients (the gradient of
// the one shared weight), so that they stay equal.
// Per chunk of the reference (SequentialReference), before its chunks' gradients are averaged.
void tie_reference(SequentialReference& seq, const networks::Network& net, bool initial) {
    for (auto& chunk : seq.chunks)
    for (std::size_t i = 1; i < net.layers.size(); ++i) {
        if (net.layers[i].attrs.tied_to.empty()) continue;
        Shard<double>& tied = *chunk->shard_of(static_cast<int>(i));
        Shard<double>& embedding = *chunk->shard_of(net.find(net.layers[i].attrs.tied_to));
        for (Index e = 0; e < static_cast<Index>(tied.weight.size()); ++e) {
            const auto k = static_cast<std::size_t>(tied_index(tied, e)), j = static_cast<std::size_t>(e);
            if (initial) {
                tied.weight[j] = embedding.weight[k];
                continue;
            }
            embedding.dweight[k] = tied.dweight[j] = embedding.dweight[k] + tied.dweight[j];
        }
    }
}

// The double-precision check: loss, every weight gradient against the sequential network (the
// whole batch on one process; per micro-batch with batch norm, SequentialReference), then SGD
// steps' losses.
void check_pipeline(const networks::Network& net, const planner::PipelineProgram& program,
                    const planner::PipelineSpec& spec, Index batch, const RunOptions& options, MPI_Comm comm,
                    RunResult& result) {
    SequentialReference seq(net, spec, batch);
    const std::vector<int> weighted = seq.weighted_layers();
    tie_reference(seq, net, true);
    PipelineStage<double> stage(net, program, spec, batch, comm, options.overlap_sync);
    OpTimer t;
    t.on_step = options.on_step;
    ByteLedger ignored;
    for (int s = 0; s < std::max(1, options.sgd_steps); ++s) {
        const double ld = stage.step(t, ignored), ls = seq.step(t);
        tie_reference(seq, net, false);
        if (s == 0) {
            double worst = 0;
            for (const auto& g : stage.gradients())
                worst = std::max(worst, shard_gradient_error(g, seq.shard(g.layer), seq.gradient(g.layer)));
            result.gradient_error = max_over(comm, worst);
            result.output_error = max_over(comm, std::abs(ld - ls) / std::max(1e-300, std::abs(ls)));  // the loss
        }
        result.losses.push_back(ld);
        result.reference_losses.push_back(ls);
        result.loss_error = std::max(result.loss_error, max_over(comm, std::abs(ld - ls) / std::max(1e-300, std::abs(ls))));
        stage.sgd(options.learning_rate, t, ignored);
        seq.sgd(options.learning_rate, t, weighted);
    }
    result.checked = true;
}
}  // namespace

namespace {
Json stage_details(const planner::PipelineSpec& spec, const planner::PipelineScore& score,
                   const std::vector<double>& all_stats, int ranks) {
    Json stages = Json::array();
    const double m = spec.micro_batches;
    for (int s = 0; s < spec.stages; ++s) {
        std::vector<int> stage_ranks;  // the slowest of the stage's ranks (its replicas) is measured
        for (int r = 0; r < ranks; ++r)
            if (role_of(spec, r).stage == s) stage_ranks.push_back(r);
        const Json measured = WorkerSamples::slowest(all_stats, stage_ranks);
        const planner::StageCost& c = score.stages[static_cast<std::size_t>(s)];
        const double busy = m * (c.forward_s + c.backward_s);
        Json predicted = {{"forward_per_micro_batch_s", c.forward_s},
                          {"backward_per_micro_batch_s", c.backward_s},
                          {"receive_per_micro_batch_s", c.recv_forward_s + c.recv_backward_s},
                          {"sync_s", c.sync_s},
                          {"busy_s", busy},
                          // Idle = the schedule's wait + the receives' own transfer time (a blocking
                          // receive measures both).
                          {"idle_s", score.pipeline_s - busy + m * (c.recv_forward_s + c.recv_backward_s)}};
        stages.push_back({{"stage", s}, {"layers", {c.first, c.last}}, {"predicted", predicted}, {"measured", measured}});
    }
    return stages;
}
// The ledger of the last timed iteration against the plan's calls on every rank; rank 0 gets
// every entry and mismatch under details["ledger"]. True when all ranks agree.
bool check_ledger(const ByteLedger& ledger, const planner::PipelineProgram& program, const planner::PipelineSpec& spec,
                  MPI_Comm comm, Json& details) {
    const int me = comm_rank(comm);
    LedgerComparison cmp = compare_ledgers(ledger, planned_ledger(program, spec, me), me);
    int mismatches = static_cast<int>(cmp.mismatches.size()), total = 0;
    MPI_Allreduce(&mismatches, &total, 1, MPI_INT, MPI_SUM, comm);
    std::string text;
    for (const std::string& line : cmp.mismatches) text += line + "\n";
    std::vector<std::string> entries = gather_strings(cmp.entries.dump(), comm);
    std::vector<std::string> problems = gather_strings(text, comm);
    if (me == 0) {
        Json ledger_json = {{"agrees", total == 0}, {"entries", Json::array()}, {"mismatches", Json::array()}};
        for (const std::string& e : entries)
            for (const Json& j : Json::parse(e)) ledger_json["entries"].push_back(j);
        for (const std::string& t : problems) {
            std::size_t pos = 0, nl;
            while ((nl = t.find('\n', pos)) != std::string::npos) {
                ledger_json["mismatches"].push_back(t.substr(pos, nl - pos));
                pos = nl + 1;
            }
        }
        details["ledger"] = ledger_json;
    }
    return total == 0;
}
}  // namespace

namespace {
// The tensor-parallel sends of a stage (layers' partial sums and input gradients), attributed by
// the layer-parallel ledger's rules; the pipeline's point-to-point messages ("stage ..." steps) and
// replica syncs are recorded where they are made, the loss is no plan operation. A redistribution
// or halo (point-to-point messages inside the stage's tensor group, `tensor_ranks`) counts as the
// plan's call of the same layer, phase and kind, once per step it ran in (the step names carry a
// serial number), as the layer-parallel ledger checks them: present where the plan has them and
// reaching no rank outside the plan's group; their bytes per peer are not compared.
void record_stage_internal(const networks::Network& net, const planner::PipelineProgram& program,
                           const std::vector<SentMessage>& sent, const std::vector<int>& tensor_ranks,
                           ByteLedger& ledger) {
    std::string last_exchange;
    for (const SentMessage& m : sent) {
        if (m.op == static_cast<int>(Op::loss) || m.op == static_cast<int>(Op::sync) || m.step.rfind("stage ", 0) == 0)
            continue;
        const Json j = attribute_send(net, m);
        if (j.contains("unexpected_step")) {  // no plan call can match it: a ledger entry the plan lacks
            ledger.record({j["layer"].get<int>(), planner::Phase::forward, planner::CommKind::redistribution, -1, 0, m.bytes});
            continue;
        }
        const bool p2p = j.contains("peer");
        LedgerKey key{j["layer"].get<int>(), planner::Phase::forward, planner::CommKind::all_reduce,
                      p2p ? m.peer : -1, p2p ? 2 : m.group_size, m.bytes};
        for (planner::Phase ph : {planner::Phase::forward, planner::Phase::backward, planner::Phase::sync})
            if (planner::to_string(ph) == j["phase"].get<std::string>()) key.phase = ph;
        for (std::size_t k = 0; k < planner::kCommKindCount; ++k)
            if (planner::to_string(static_cast<planner::CommKind>(k)) == j["kind"].get<std::string>())
                key.kind = static_cast<planner::CommKind>(k);
        const bool inside = std::find(tensor_ranks.begin(), tensor_ranks.end(), m.peer) != tensor_ranks.end();
        if (p2p && inside && (key.kind == planner::CommKind::redistribution || key.kind == planner::CommKind::halo)) {
            if (m.step == last_exchange) continue;  // the same exchange's next peer
            last_exchange = m.step;
            for (const planner::CommCall& call : program.micro.calls)
                if (call.layer == key.layer && call.phase == key.phase && call.kind == key.kind && call.group.size > 1) {
                    key = {call.layer, call.phase, call.kind, -1, call.group.size, call.bytes};
                    break;
                }
        }
        ledger.record(key);
    }
}
}  // namespace

PipelineRunResult run_pipeline(const planner::CostModel& model, const planner::PipelineSpec& spec,
                               const std::vector<planner::Layout>& anchor_layouts, const RunOptions& options,
                               MPI_Comm comm) {
    if (std::string why = pipeline_unsupported_reason(spec); !why.empty()) throw std::invalid_argument(why);
    const networks::Network& net = model.network();
    const Index batch = model.options().batch;
    const planner::PipelineProgram program = planner::pipeline_program(model, spec, anchor_layouts);
    const planner::PipelineScore score = planner::score_pipeline(model, spec, anchor_layouts);
    const int me = comm_rank(comm), p = comm_size(comm);
    PipelineRunResult out;
    if (options.check) check_pipeline(net, program, spec, batch, options, comm, out.run);

    PipelineStage<float> stage(net, program, spec, batch, comm, options.overlap_sync);
    OpTimer timer;
    timer.on_step = options.on_step;
    ByteLedger ledger;
    WorkerSamples samples;
    const int total = options.warmup + options.iterations;
    for (int it = 0; it < total; ++it) {
        timer.reset();
        ledger.clear();
        if (options.on_step) options.on_step("iteration " + std::to_string(it) + " start (barrier)", true);
        MPI_Barrier(comm);
        // The last iteration's stage-internal (tensor-parallel) collectives are counted through
        // the MPI profiling interface; the pipeline's own sends are recorded where they are made.
        std::optional<SendCounter> counter;
        if (it == total - 1 && spec.tensor > 1) {
            counter.emplace();
            timer.on_op = [&counter, serial = 0](Op op, const std::string& name) mutable {
                counter->set_step(static_cast<int>(op), name + " #" + std::to_string(++serial));
            };
        }
        const double t0 = MPI_Wtime();
        stage.step(timer, ledger);
        stage.sgd(static_cast<float>(options.learning_rate), timer, ledger);
        const double local = MPI_Wtime() - t0;
        timer.on_op = nullptr;
        if (counter) {
            std::vector<int> tensor_ranks;  // this rank's tensor group, as MPI_COMM_WORLD ranks (the counter's)
            const int world_first = comm_rank(MPI_COMM_WORLD) - comm_rank(comm) % spec.tensor;
            for (int t = 0; t < spec.tensor; ++t) tensor_ranks.push_back(world_first + t);
            record_stage_internal(net, program, counter->messages(), tensor_ranks, ledger);
            counter.reset();
        }
        if (it >= options.warmup) samples.add(local, timer, stage.send_s, stage.recv_s, comm);
    }
    const std::vector<double> all_stats = samples.summarise(out.run, comm);

    std::vector<std::string> orders = gather_strings(stage.executed(), comm);
    out.ledger_agrees = check_ledger(ledger, program, spec, comm, out.details);
    if (me == 0) {
        out.details.update({{"tensor", spec.tensor},
                            {"stages", spec.stages},
                            {"micro_batches", spec.micro_batches},
                            {"micro_batch", program.micro_batch},
                            {"replicas", spec.replicas},
                            {"schedule", planner::to_string(spec.schedule)},
                            {"zero", spec.zero},
                            {"recompute", planner::to_string(spec.recompute)},
                            {"predicted_pipeline_s", score.pipeline_s},
                            {"predicted_bubble_s", score.plan.cost.bubble_s},
                            {"per_stage", stage_details(spec, score, all_stats, p)},
                            {"orders", orders}});  // per rank: the operations of its last step as they ran
    }
    return out;
}

}  // namespace dnnplan::validators

namespace dnnplan::validators {

void attach_pipeline_results(Json& results, const std::vector<PipelineRunResult>& pipelines) {
    attach_run_details(results, "pipeline", pipelines);
}

std::string pipeline_text(const Json& results) {
    std::ostringstream os;
    auto us = [](double s) {
        std::ostringstream o;
        o << std::fixed << std::setprecision(1) << s * 1e6;
        return o.str();
    };
    for (const Json& p : results["plans"]) {
        if (!p.contains("pipeline")) continue;
        const Json& d = p["pipeline"];
        os << "\n" << p["label"].get<std::string>() << ": " << d["stages"].get<int>() << " stages, "
           << d["micro_batches"].get<int>() << " micro-batches of " << d["micro_batch"].get<int>() << ", "
           << d["replicas"].get<int>() << " replica(s), " << d["schedule"].get<std::string>()
           << (d["zero"].get<bool>() ? ", ZeRO-1" : "") << (d["recompute"].get<std::string>() != "none" ? ", recomputation " + d["recompute"].get<std::string>() : std::string())
           << "; predicted bubble " << us(d["predicted_bubble_s"].get<double>()) << " us\n";
        os << "stage  fwd us (pred/meas)   bwd us (pred/meas)   idle us (pred/meas)   send us  recv wait us  sync us\n";
        for (const Json& s : d["per_stage"]) {
            const Json &pr = s["predicted"], &me = s["measured"];
            const double m = d["micro_batches"].get<double>();
            os << std::setw(5) << s["stage"].get<int>() << std::setw(21)
               << (us(m * pr["forward_per_micro_batch_s"].get<double>()) + "/" + us(me["fwd_compute_s"].get<double>()))
               << std::setw(21)
               << (us(m * pr["backward_per_micro_batch_s"].get<double>()) + "/" + us(me["bwd_compute_s"].get<double>()))
               << std::setw(22) << (us(pr["idle_s"].get<double>()) + "/" + us(me["idle_s"].get<double>()))
               << std::setw(10) << us(me["send_s"].get<double>()) << std::setw(14)
               << us(me["receive_wait_s"].get<double>()) << std::setw(9) << us(me["sync_s"].get<double>()) << "\n";
        }
        const Json& l = d["ledger"];
        os << "byte ledger: " << l["entries"].size() << " entries over all ranks, "
           << (l["agrees"].get<bool>() ? "equal to the plan's calls" : "DIFFERS from the plan's calls") << "\n";
        for (const Json& m : l["mismatches"]) os << "  " << m.get<std::string>() << "\n";
    }
    return os.str();
}

}  // namespace dnnplan::validators
