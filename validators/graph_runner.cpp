#include "validators/graph_runner.hpp"

#include "validators/iteration_samples.hpp"
#include "validators/pipeline_runner.hpp"
#include "validators/sequential_reference.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace dnnplan::validators {

std::string graph_unsupported_reason(const planner::PipelineSpec& spec) {
    if (spec.zero) return "graph-partition plans with ZeRO-1 are not run by the validator yet";
    if (spec.recompute != planner::Recompute::none)
        return "graph-partition plans with recomputation are not run by the validator yet";
    return "";
}

namespace {

// The cut tensors by layer: for input k of layer i the transfer carrying it (-1: same device or the
// network's input), and per layer the transfers it produces. GraphPartitionProgram::transfers lists
// them by consumer, then the consumer's inputs in order; checked here, not assumed.
struct CutEdges {
    std::vector<std::vector<int>> in, out;
};
CutEdges cut_edges(const networks::Network& net, const planner::GraphPartitionProgram& program,
                   const planner::PipelineSpec& spec) {
    const int n = static_cast<int>(net.layers.size());
    CutEdges edges{std::vector<std::vector<int>>(n), std::vector<std::vector<int>>(n)};
    int next = 0;
    for (int i = 1; i < n; ++i)
        for (int p : net.layers[i].inputs) {
            int e = -1;
            if (p > 0 && spec.device_of[p] != spec.device_of[i]) {
                e = next++;
                if (e >= static_cast<int>(program.transfers.size()) || program.transfers[e].producer != p ||
                    program.transfers[e].consumer != i)
                    throw std::logic_error("graph runner: the plan's transfers are not in consumer order");
                edges.out[p].push_back(e);
            }
            edges.in[i].push_back(e);
        }
    if (next != static_cast<int>(program.transfers.size()))
        throw std::logic_error("graph runner: the plan has transfers no layer reads");
    return edges;
}

int rank_of(const planner::PipelineSpec& spec, int layer, int replica) {
    return spec.device_of[static_cast<std::size_t>(layer)] + spec.stages * replica;
}

// The step name a send runs under while the SendCounter listens: the plan operation it belongs to.
std::string ledger_step(int layer, planner::Phase phase, planner::CommKind kind) {
    return "graph " + std::to_string(layer) + " " + std::to_string(static_cast<int>(phase)) + " " +
           std::to_string(static_cast<int>(kind));
}

}  // namespace

ByteLedger graph_planned_ledger(const planner::GraphPartitionProgram& program, const planner::PipelineSpec& spec,
                                int rank) {
    ByteLedger ledger;
    const int dev = rank % spec.stages, replica = rank / spec.stages;
    for (const auto& t : program.transfers) {
        if (spec.device_of[t.producer] == dev)
            ledger.record({t.producer, planner::Phase::forward, planner::CommKind::point_to_point,
                           rank_of(spec, t.consumer, replica), 2, t.bytes},
                          spec.micro_batches);
        if (spec.device_of[t.consumer] == dev)
            ledger.record({t.consumer, planner::Phase::backward, planner::CommKind::point_to_point,
                           rank_of(spec, t.producer, replica), 2, t.bytes},
                          spec.micro_batches);
    }
    for (std::size_t i = 1; i < program.sync.size(); ++i)
        if (spec.device_of[i] == dev)
            for (const planner::CommCall& call : program.sync[i])
                if (call.group.size > 1)
                    ledger.record({static_cast<int>(i), call.phase, call.kind, -1, call.group.size, call.bytes});
    return ledger;
}

namespace {

template <class T>
void accumulate(Tensor<T>& acc, char& has, Tensor<T>&& g) {
    if (!has) {
        acc = std::move(g);
        has = 1;
        return;
    }
    if (!(acc.box == g.box)) throw std::logic_error("graph runner: gradient blocks of one tensor differ");
    for (std::size_t k = 0; k < g.data.size(); ++k) acc.data[k] += g.data[k];
}

// Device dev of replica r on this rank. One NetworkRunner per micro-batch on MPI_COMM_SELF (every
// layout a single process, the micro-batch's own samples) runs this device's layers one at a time
// and keeps that micro-batch's saved activations. The device holds one weight and one gradient per
// layer (LentParameters, as the pipeline runner's stages): a micro-batch's forward and backward
// borrow it (Shard::trade, no copy), its gradient accumulates in place, zeroed once per step.
template <class T>
class GraphDevice {
public:
    GraphDevice(const networks::Network& net, const planner::GraphPartitionProgram& program,
                const planner::PipelineSpec& spec, Index batch, MPI_Comm comm, bool overlap_sync);
    ~GraphDevice() {
        if (replica_comm_ != MPI_COMM_NULL) MPI_Comm_free(&replica_comm_);
    }
    GraphDevice(const GraphDevice&) = delete;
    GraphDevice& operator=(const GraphDevice&) = delete;

    // Forward, loss, backward and the replicas' gradient syncs; returns this rank's share of the
    // batch's mean loss (the sum over ranks is the loss).
    double step(OpTimer& timer);
    void sgd(T learning_rate, OpTimer& timer);
    // Per layer on this device with weights: the flattened [weight, bias] gradient of the batch
    // (the layer's storage itself, Shard::grad).
    const std::vector<std::pair<int, GradientView<T>>>& gradients() const { return grads_; }
    SendCounter* counter = nullptr;  // set while the byte ledger listens
    double send_s = 0, recv_s = 0;   // this step's point-to-point time (sends; receive waits)

private:
    void forward_micro(int m, OpTimer& timer);
    void backward_micro(int m, OpTimer& timer);
    // Sends `t` (forward: an activation kept in acts_ until the step's sends are complete) or
    // `owned` (backward: a gradient the device no longer needs), from the tensor itself as NCCL and
    // MPI send: no copy into a send buffer.
    void send(const Tensor<T>& t, int edge, int direction, int micro, OpTimer& timer, Tensor<T>&& owned = {});
    // Receives into the message's buffer (inbox_) and returns it.
    Tensor<T>& receive(int edge, int direction, int micro, OpTimer& timer);
    void sync_layer(std::size_t g, OpTimer& timer);
    int tag(int edge, int direction, int micro) const { return (edge * spec_.micro_batches + micro) * 2 + direction; }

    const networks::Network& net_;
    const planner::GraphPartitionProgram& program_;
    planner::PipelineSpec spec_;
    int dev_ = 0, replica_ = 0, n_ = 0;
    Index batch_ = 1, micro_batch_ = 1;
    MPI_Comm comm_, replica_comm_ = MPI_COMM_NULL;
    bool overlap_sync_ = true;
    CutEdges edges_;
    std::vector<int> mine_;  // this device's layers, ascending
    std::vector<std::unique_ptr<NetworkRunner<T>>> micro_;
    std::vector<Tensor<T>> dlogits_;  // per micro-batch, when the last layer is here
    LentParameters<T> params_;  // slot m: micro-batch m's runner
    std::vector<std::pair<int, GradientView<T>>> grads_;  // views of params_' gradients (buffers stay put)
    std::vector<MPI_Request> sync_requests_;
    struct PendingSend {
        Tensor<T> owned;  // the gradient sent (forward sends read acts_)
        MPI_Request request = MPI_REQUEST_NULL;
    };
    std::vector<PendingSend> sends_;
    std::vector<std::vector<Tensor<T>>> acts_;  // per micro-batch, per layer: this step's outputs
    // Per message (tag()): the buffer a received cut tensor lands in, kept from step to step as a
    // framework's caching allocator keeps it, so that a receive does not allocate and zero-fill a
    // tensor MPI then overwrites (a gradient buffer moved into the backward pass is made again).
    std::vector<Tensor<T>> inbox_;
    double loss_share_ = 0;
};

template <class T>
GraphDevice<T>::GraphDevice(const networks::Network& net, const planner::GraphPartitionProgram& program,
                            const planner::PipelineSpec& spec, Index batch, MPI_Comm comm, bool overlap_sync)
    : net_(net), program_(program), spec_(spec), batch_(batch), micro_batch_(program.micro_batch), comm_(comm),
      overlap_sync_(overlap_sync), edges_(cut_edges(net, program, spec)) {
    const int me = comm_rank(comm);
    dev_ = me % spec.stages;
    replica_ = me / spec.stages;
    n_ = static_cast<int>(net.layers.size());
    MPI_Comm_split(comm, dev_, replica_, &replica_comm_);
    const std::vector<planner::Layout> single(net.layers.size());
    for (int m = 0; m < spec.micro_batches; ++m) {
        const Index first = Index(replica_) * (batch / spec.replicas) + Index(m) * micro_batch_;
        micro_.push_back(std::make_unique<NetworkRunner<T>>(net, single, micro_batch_, MPI_COMM_SELF, true,
                                                         Segment{.sample_offset = first}));
    }
    for (int i = 1; i < n_; ++i)
        if (spec.device_of[i] == dev_) mine_.push_back(i);
    std::vector<std::vector<std::pair<int, Shard<T>*>>> slot_shards;
    for (auto& run : micro_) {
        slot_shards.emplace_back();
        for (int i : mine_)
            if (Shard<T>* sh = run->shard_of(i)) slot_shards.back().emplace_back(i, sh);
    }
    params_.adopt(slot_shards);
    for (auto& [layer, storage] : params_.params)
        grads_.emplace_back(layer, GradientView<T>(storage.grad.data(), storage.grad.size()));
    dlogits_.resize(static_cast<std::size_t>(spec.micro_batches));
    acts_.resize(static_cast<std::size_t>(spec.micro_batches));
    inbox_.resize(static_cast<std::size_t>(2 * spec.micro_batches) * program.transfers.size());
    // Every send of a step is pending until its end: no reallocation moves a request meanwhile.
    sends_.reserve(static_cast<std::size_t>(2 * spec.micro_batches) * program.transfers.size());
    sync_requests_.assign(grads_.size(), MPI_REQUEST_NULL);
}

template <class T>
void GraphDevice<T>::send(const Tensor<T>& t, int edge, int direction, int micro, OpTimer& timer, Tensor<T>&& owned) {
    const auto& tr = program_.transfers[static_cast<std::size_t>(edge)];
    // Forward: the producer's output to the consumer's device; backward: its gradient back.
    const int layer = direction == 0 ? tr.producer : tr.consumer;
    const int peer = rank_of(spec_, direction == 0 ? tr.consumer : tr.producer, replica_);
    const planner::Phase phase = direction == 0 ? planner::Phase::forward : planner::Phase::backward;
    PendingSend& pending = sends_.emplace_back();
    pending.owned = std::move(owned);
    const Tensor<T>& sent = pending.owned.data.empty() ? t : pending.owned;
    if (counter) counter->set_step(static_cast<int>(Op::redistribution), ledger_step(layer, phase, planner::CommKind::point_to_point));
    const double t0 = MPI_Wtime();
    timer.time(Op::redistribution, net_.layers[layer].name + (direction == 0 ? " activations" : " gradients") +
                                       " to rank " + std::to_string(peer),
               [&] {
                   MPI_Isend(sent.data.data(), static_cast<int>(sent.data.size()), mpi_type<T>(), peer,
                             tag(edge, direction, micro), comm_, &pending.request);
               });
    send_s += MPI_Wtime() - t0;
}

template <class T>
Tensor<T>& GraphDevice<T>::receive(int edge, int direction, int micro, OpTimer& timer) {
    const auto& tr = program_.transfers[static_cast<std::size_t>(edge)];
    // Either way the tensor is the producer's output block (a one-process layer holds all of it).
    const Box box = micro_[static_cast<std::size_t>(micro)]->output_box(tr.producer);
    Tensor<T>& t = inbox_[static_cast<std::size_t>(tag(edge, direction, micro))];
    if (!(t.box == box) || static_cast<Index>(t.data.size()) != box.volume()) t = Tensor<T>(box);
    const int peer = rank_of(spec_, direction == 0 ? tr.producer : tr.consumer, replica_);
    const double t0 = MPI_Wtime();
    const std::string what = net_.layers[tr.consumer].name +
                             (direction == 0 ? " receive activations of " : " receive gradients for ") +
                             net_.layers[tr.producer].name + " mb" + std::to_string(micro);
    // Waiting for the producer's device is idle time (receive wait), not the transfer the plan's
    // point-to-point seconds model: only the receive of the arrived message is the operation's.
    if (timer.on_step) timer.on_step(what + " (waiting)", true);
    MPI_Probe(peer, tag(edge, direction, micro), comm_, MPI_STATUS_IGNORE);
    timer.time(Op::redistribution, what, [&] {
        MPI_Recv(t.data.data(), static_cast<int>(t.data.size()), mpi_type<T>(), peer, tag(edge, direction, micro),
                 comm_, MPI_STATUS_IGNORE);
    });
    recv_s += MPI_Wtime() - t0;
    return t;
}

template <class T>
void GraphDevice<T>::forward_micro(int m, OpTimer& timer) {
    NetworkRunner<T>& run = *micro_[static_cast<std::size_t>(m)];
    const typename LentParameters<T>::Loan loan(params_, static_cast<std::size_t>(m));
    std::vector<Tensor<T>>& acts = acts_[static_cast<std::size_t>(m)];
    acts.resize(static_cast<std::size_t>(n_));
    for (int i : mine_) {
        const auto& inputs = net_.layers[i].inputs;
        std::vector<const Tensor<T>*> xs(inputs.size(), nullptr);
        for (std::size_t k = 0; k < inputs.size(); ++k) {
            const int e = edges_.in[i][k];
            if (e >= 0) {
                xs[k] = &receive(e, 0, m, timer);
            } else if (inputs[k] > 0) {
                xs[k] = &acts[inputs[k]];
            }
        }
        acts[i] = run.forward_one(i, xs, timer);
        if (i == n_ - 1) {
            // The batch's mean loss = sum over micro-batches of (micro-batch / batch) x its mean.
            timer.time(Op::loss, "loss mb" + std::to_string(m), [&] {
                double loss = 0;
                Tensor<T> d = run.loss_one(acts[i], loss);
                const double share = double(micro_batch_) / double(batch_);
                loss_share_ += share * loss;
                for (T& v : d.data) v *= static_cast<T>(share);
                dlogits_[static_cast<std::size_t>(m)] = std::move(d);
            });
        }
        for (int e : edges_.out[i]) send(acts[i], e, 0, m, timer);
    }
}

template <class T>
void GraphDevice<T>::backward_micro(int m, OpTimer& timer) {
    NetworkRunner<T>& run = *micro_[static_cast<std::size_t>(m)];
    const typename LentParameters<T>::Loan loan(params_, static_cast<std::size_t>(m));
    std::vector<Tensor<T>> grads(static_cast<std::size_t>(n_));
    std::vector<char> has(static_cast<std::size_t>(n_), 0);
    if (spec_.device_of[n_ - 1] == dev_) {
        grads[n_ - 1] = std::move(dlogits_[static_cast<std::size_t>(m)]);
        has[n_ - 1] = 1;
    }
    for (auto it = mine_.rbegin(); it != mine_.rend(); ++it) {
        const int i = *it;
        for (int e : edges_.out[i]) accumulate(grads[i], has[i], std::move(receive(e, 1, m, timer)));
        // A layer no loss path reads gets a zero gradient: its producers' devices wait for the
        // message the plan has either way.
        if (!has[i]) grads[i] = Tensor<T>(run.output_box(i));
        std::vector<Tensor<T>> dxs = run.backward_one(i, std::move(grads[i]), timer);
        const auto& inputs = net_.layers[i].inputs;
        for (std::size_t k = 0; k < inputs.size(); ++k) {
            if (inputs[k] == 0) continue;
            if (edges_.in[i][k] >= 0)
                send(dxs[k], edges_.in[i][k], 1, m, timer, std::move(dxs[k]));
            else
                accumulate(grads[inputs[k]], has[inputs[k]], std::move(dxs[k]));
        }
        // The layer's gradient is complete after its last micro-batch: with overlap its sync starts
        // now (otherwise after the device's backward pass, as the model and the replay have it).
        if (overlap_sync_ && m + 1 == spec_.micro_batches)
            for (std::size_t g = 0; g < grads_.size(); ++g)
                if (grads_[g].first == i) sync_layer(g, timer);
    }
}

// The replicas' sum of the layer's gradient (the plan's sync calls), in its storage: the
// micro-batches have accumulated into it.
template <class T>
void GraphDevice<T>::sync_layer(std::size_t g, OpTimer& timer) {
    const auto& [layer, values] = grads_[g];
    for (const planner::CommCall& call : program_.sync[static_cast<std::size_t>(layer)]) {
        if (call.group.size <= 1) continue;
        if (call.kind != planner::CommKind::all_reduce || call.group.size != spec_.replicas)
            throw std::logic_error("graph runner: layer " + net_.layers[layer].name + " has a sync call other than an "
                                   "all-reduce over the replicas");
        if (counter) counter->set_step(static_cast<int>(Op::sync), ledger_step(layer, call.phase, call.kind));
        timer.time(Op::sync, net_.layers[layer].name + " gradient all-reduce", [&] {
            if (overlap_sync_)
                MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), mpi_type<T>(), MPI_SUM,
                               replica_comm_, &sync_requests_[g]);
            else
                MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), mpi_type<T>(), MPI_SUM,
                              replica_comm_);
        });
    }
}

template <class T>
double GraphDevice<T>::step(OpTimer& timer) {
    send_s = recv_s = loss_share_ = 0;
    for (auto& [layer, storage] : params_.params) storage.zero_grad();
    // The model's list order (simulator/replay_graph.cpp).
    for (int m = 0; m < spec_.micro_batches; ++m) forward_micro(m, timer);
    for (int m = 0; m < spec_.micro_batches; ++m) backward_micro(m, timer);
    if (!overlap_sync_)
        for (std::size_t g = grads_.size(); g-- > 0;) sync_layer(g, timer);  // last layer first
    const double t0 = MPI_Wtime();  // waiting for the peers to take the messages: send time only
    if (timer.on_step) timer.on_step("device " + std::to_string(dev_) + " send completion", true);
    for (auto& p : sends_) MPI_Wait(&p.request, MPI_STATUS_IGNORE);
    send_s += MPI_Wtime() - t0;
    sends_.clear();
    for (auto& acts : acts_) acts.clear();  // the activations the sends read
    timer.time(Op::sync, "gradient all-reduce wait", [&] {
        MPI_Waitall(static_cast<int>(sync_requests_.size()), sync_requests_.data(), MPI_STATUSES_IGNORE);
    });
    return loss_share_;
}

template <class T>
void GraphDevice<T>::sgd(T learning_rate, OpTimer& timer) {
    timer.time(Op::optimizer, "sgd", [&] {
        for (auto& [layer, sh] : params_.params) {  // in place, the layer's one weight
            const std::size_t nw = sh.weight.size();
            for (std::size_t e = 0; e < nw; ++e) sh.weight[e] -= learning_rate * sh.grad[e];
            for (std::size_t e = 0; e < sh.bias.size(); ++e) sh.bias[e] -= learning_rate * sh.grad[nw + e];
        }
    });
}

template class GraphDevice<float>;
template class GraphDevice<double>;

double max_over(MPI_Comm comm, double v) {
    double r = 0;
    MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm);
    return r;
}
double sum_over(MPI_Comm comm, double v) {
    double r = 0;
    MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_SUM, comm);
    return r;
}



// The double-precision check: loss and every weight gradient against the sequential network, then
// the losses of SGD steps.
void check_graph(const networks::Network& net, const planner::GraphPartitionProgram& program,
                 const planner::PipelineSpec& spec, Index batch, const RunOptions& options, MPI_Comm comm,
                 RunResult& result) {
    SequentialReference seq(net, spec, batch);
    GraphDevice<double> device(net, program, spec, batch, comm, options.overlap_sync);
    const std::vector<int> weighted = seq.weighted_layers();
    OpTimer t;
    t.on_step = options.on_step;
    for (int s = 0; s < std::max(1, options.sgd_steps); ++s) {
        const double ld = sum_over(comm, device.step(t)), ls = seq.step(t);
        const double loss_error = std::abs(ld - ls) / std::max(1e-300, std::abs(ls));
        if (s == 0) {
            double worst = 0;
            for (const auto& [layer, values] : device.gradients()) {
                const std::vector<double> ref = seq.gradient(layer);
                double err = 0, scale = 0;
                for (std::size_t e = 0; e < ref.size(); ++e) {
                    scale = std::max(scale, std::abs(ref[e]));
                    err = std::max(err, std::abs(values[e] - ref[e]));
                }
                worst = std::max(worst, scale > 0 ? err / scale : err);
            }
            result.gradient_error = max_over(comm, worst);
            result.output_error = loss_error;  // the logits are not gathered: the loss stands for them
        }
        result.losses.push_back(ld);
        result.reference_losses.push_back(ls);
        result.loss_error = std::max(result.loss_error, loss_error);
        device.sgd(options.learning_rate, t);
        seq.sgd(options.learning_rate, t, weighted);
    }
    result.checked = true;
}

// The sends the counter saw, as ledger entries: the plan operation from the step name, the peer as
// a rank of `comm`.
ByteLedger measured_ledger(const std::vector<SentMessage>& sent, MPI_Comm comm) {
    MPI_Group world, group;
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    MPI_Comm_group(comm, &group);
    ByteLedger ledger;
    for (const SentMessage& m : sent) {
        LedgerKey key;
        key.layer = -1;  // a send outside any plan operation: never in the plan, so it differs
        std::istringstream in(m.step);
        std::string word;
        int phase = 0, kind = 0;
        if (in >> word >> key.layer >> phase >> kind && word == "graph") {
            key.phase = static_cast<planner::Phase>(phase);
            key.kind = static_cast<planner::CommKind>(kind);
        }
        key.peer = -1;
        if (m.peer >= 0) MPI_Group_translate_ranks(world, 1, &m.peer, group, &key.peer);
        key.group_size = m.group_size;
        key.bytes = m.bytes;
        ledger.record(key);
    }
    MPI_Group_free(&world);
    MPI_Group_free(&group);
    return ledger;
}

// Rank 0 gets every rank's entries and mismatches under details["ledger"]; true when all agree.
bool compare_graph_ledger(const ByteLedger& measured, const ByteLedger& planned, MPI_Comm comm, Json& details) {
    const int me = comm_rank(comm);
    LedgerComparison cmp = compare_ledgers(measured, planned, me);
    int mismatches = static_cast<int>(cmp.mismatches.size()), total = 0;
    MPI_Allreduce(&mismatches, &total, 1, MPI_INT, MPI_SUM, comm);
    std::string text;
    for (const std::string& line : cmp.mismatches) text += line + "\n";
    std::vector<std::string> entries = gather_strings(cmp.entries.dump(), comm);
    std::vector<std::string> problems = gather_strings(text, comm);
    if (me == 0) {
        Json ledger = {{"agrees", total == 0}, {"entries", Json::array()}, {"mismatches", Json::array()}};
        for (const std::string& e : entries)
            for (const Json& j : Json::parse(e)) ledger["entries"].push_back(j);
        for (const std::string& t : problems) {
            std::istringstream lines(t);
            for (std::string line; std::getline(lines, line);) ledger["mismatches"].push_back(line);
        }
        details["ledger"] = ledger;
    }
    return total == 0;
}

// Per device: the plan's compute (M x its layers' forward and backward per micro-batch), the
// transfers it receives (M x their seconds, both directions), beside the slowest of its replicas.
Json device_details(const planner::GraphPartitionProgram& program, const planner::PipelineSpec& spec,
                    const std::vector<double>& all_stats, int ranks) {
    Json devices = Json::array();
    const double m = spec.micro_batches;
    for (int d = 0; d < spec.stages; ++d) {
        std::vector<int> device_ranks;  // the device's replicas
        for (int r = d; r < ranks; r += spec.stages) device_ranks.push_back(r);
        const Json measured = WorkerSamples::slowest(all_stats, device_ranks);
        double fwd = 0, bwd = 0, recv = 0;
        std::vector<int> layers;
        for (std::size_t i = 1; i < program.forward_s.size(); ++i)
            if (spec.device_of[i] == d) {
                fwd += program.forward_s[i];
                bwd += program.backward_s[i];
                layers.push_back(static_cast<int>(i));
            }
        for (const auto& t : program.transfers)
            if (spec.device_of[t.consumer] == d || spec.device_of[t.producer] == d) recv += t.seconds;
        devices.push_back({{"device", d},
                           {"layers", layers},
                           {"predicted",
                            {{"fwd_compute_s", m * fwd},
                             {"bwd_compute_s", m * bwd},
                             {"receive_s", m * recv},
                             {"optimizer_s", program.device_optimizer_step_s[static_cast<std::size_t>(d)]}}},
                           {"measured", measured}});
    }
    return devices;
}

}  // namespace

GraphRunResult run_graph(const planner::CostModel& model, const planner::PipelineSpec& spec,
                         const std::vector<planner::Layout>& layouts, const RunOptions& options, MPI_Comm comm) {
    if (std::string why = graph_unsupported_reason(spec); !why.empty()) throw std::invalid_argument(why);
    const networks::Network& net = model.network();
    const Index batch = model.options().batch;
    const planner::GraphPartitionProgram program = planner::graph_partition_program(model, spec, layouts);
    const planner::PipelineScore score = planner::score_graph_partition(model, spec, layouts);
    const int me = comm_rank(comm), p = comm_size(comm);
    GraphRunResult out;
    if (options.check) check_graph(net, program, spec, batch, options, comm, out.run);

    GraphDevice<float> device(net, program, spec, batch, comm, options.overlap_sync);
    OpTimer timer;
    timer.on_step = options.on_step;
    ByteLedger measured;
    WorkerSamples samples;
    const int total = options.warmup + options.iterations;
    for (int it = 0; it < total; ++it) {
        timer.reset();
        if (options.on_step) options.on_step("iteration " + std::to_string(it) + " start (barrier)", true);
        MPI_Barrier(comm);
        std::optional<SendCounter> counter;  // the last iteration's sends go to the ledger
        if (it == total - 1) device.counter = &counter.emplace();
        const double t0 = MPI_Wtime();
        device.step(timer);
        device.sgd(static_cast<float>(options.learning_rate), timer);
        const double local = MPI_Wtime() - t0;
        device.counter = nullptr;
        if (counter) measured = measured_ledger(counter->messages(), comm);
        counter.reset();
        if (it >= options.warmup) samples.add(local, timer, device.send_s, device.recv_s, comm);
    }
    RunResult& r = out.run;
    const std::vector<double> all_stats = samples.summarise(r, comm);
    out.ledger_agrees = compare_graph_ledger(measured, graph_planned_ledger(program, spec, me), comm, out.details);
    r.ledger = out.details.is_object() ? out.details["ledger"] : Json();
    if (me == 0) {
        Json transfers = Json::array();
        for (const auto& t : program.transfers)
            transfers.push_back({{"producer", net.layers[t.producer].name},
                                 {"consumer", net.layers[t.consumer].name},
                                 {"bytes", t.bytes},
                                 {"seconds", t.seconds}});
        out.details.update({{"devices", spec.stages},
                            {"micro_batches", spec.micro_batches},
                            {"micro_batch", program.micro_batch},
                            {"replicas", spec.replicas},
                            {"device_of", spec.device_of},
                            {"transfers", transfers},
                            {"predicted_iteration_s", score.plan.cost.iteration_s},
                            {"predicted_makespan_s", score.pipeline_s},
                            {"per_device", device_details(program, spec, all_stats, p)}});
    }
    return out;
}

void attach_graph_results(Json& results, const std::vector<GraphRunResult>& graphs) {
    attach_run_details(results, "graph_partition", graphs);
}

std::string graph_text(const Json& results) {
    std::ostringstream os;
    auto us = [](double s) {
        std::ostringstream o;
        o << std::fixed << std::setprecision(1) << s * 1e6;
        return o.str();
    };
    for (const Json& p : results["plans"]) {
        if (!p.contains("graph_partition")) continue;
        const Json& d = p["graph_partition"];
        os << "\n" << p["label"].get<std::string>() << ": " << d["devices"].get<int>() << " devices, "
           << d["micro_batches"].get<int>() << " micro-batch(es) of " << d["micro_batch"].get<int>() << ", "
           << d["replicas"].get<int>() << " replica(s), " << d["transfers"].size() << " cut tensor(s)\n";
        os << "device  fwd us (pred/meas)   bwd us (pred/meas)   recv us (pred/wait)   send us  sync us  idle us\n";
        for (const Json& s : d["per_device"]) {
            const Json &pr = s["predicted"], &me = s["measured"];
            os << std::setw(6) << s["device"].get<int>() << std::setw(21)
               << (us(pr["fwd_compute_s"].get<double>()) + "/" + us(me["fwd_compute_s"].get<double>())) << std::setw(21)
               << (us(pr["bwd_compute_s"].get<double>()) + "/" + us(me["bwd_compute_s"].get<double>())) << std::setw(22)
               << (us(pr["receive_s"].get<double>()) + "/" + us(me["receive_wait_s"].get<double>())) << std::setw(10)
               << us(me["send_s"].get<double>()) << std::setw(9) << us(me["sync_s"].get<double>()) << std::setw(9)
               << us(me["idle_s"].get<double>()) << "\n";
        }
        const Json& l = d["ledger"];
        os << "byte ledger: " << l["entries"].size() << " entries over all ranks, "
           << (l["agrees"].get<bool>() ? "equal to the plan's calls" : "DIFFERS from the plan's calls") << "\n";
        for (const Json& m : l["mismatches"]) os << "  " << m.get<std::string>() << "\n";
    }
    return os.str();
}

}  // namespace dnnplan::validators
