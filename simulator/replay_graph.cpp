// The graph-partition replay: rank dev + k r runs device dev of replica r in the model's list
// order, with point-to-point transfers between devices and gradient syncs over the replicas.
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "planner/graph_partition.hpp"
#include "simulator/child.hpp"
#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

namespace {

struct GraphReplay : ReplayBase {
    const planner::PipelineSpec& spec;
    const planner::GraphPartitionProgram& program;
    std::vector<std::vector<int>> in_edges, out_edges;  // per layer: indices into program.transfers
    std::vector<double> put_time;                       // per (replica, direction, transfer, micro-batch)

    int k() const { return spec.stages; }
    int M() const { return spec.micro_batches; }
    bool overlap() const { return model.options().overlap_sync; }
    int E() const { return static_cast<int>(program.transfers.size()); }
    std::size_t message(int replica, int direction, int edge, int micro) const {
        return ((static_cast<std::size_t>(replica) * 2 + direction) * E() + edge) * M() + micro;
    }
    // One mailbox per message: the devices' list orders do not send and receive a pair's messages
    // in the same order, so a shared FIFO mailbox would match the wrong ones.
    static sg4::Mailbox* box(int replica, int direction, int edge, int micro) {
        return sg4::Mailbox::by_name("gp" + std::to_string(direction) + ":" + std::to_string(replica) + ":" +
                                     std::to_string(edge) + ":" + std::to_string(micro));
    }
    int rank_of(int layer, int replica) const { return spec.device_of[layer] + k() * replica; }

    void compute(int rank, RankClock& clock, int layer, int micro, bool forward) {
        const double seconds = forward ? program.forward_s[layer] : program.backward_s[layer];
        if (seconds <= 0) return;
        const double start = sg4::Engine::get_clock();
        sg4::this_actor::execute(seconds * speed);
        count_shared_event();
        (forward ? clock.fwd_compute : clock.bwd_compute) += sg4::Engine::get_clock() - start;
        record(
            clock, rank, 0, "compute", start,
            model.network().layers[layer].name + (forward ? " forward" : " backward") + " mb" + std::to_string(micro));
    }

    // Waits for a message whose receive was posted at the start (the model's transfers do not wait
    // for the receiving device: data arrive while it computes). Waiting before the sender has put
    // the message is idle (the bubble); after, the transfer.
    void receive(int rank, int replica, int direction, int edge, int micro, const sg4::CommPtr& comm,
                 RankClock& clock) {
        const double posted_at = sg4::Engine::get_clock();
        comm->wait();
        // The receiving device copies the message into the operation's input (the model's
        // receive_copy_s, in step before the operation; 0 off calibrated CPUs).
        if (const double copy = program.transfers[edge].receive_copy_s; copy > 0) {
            sg4::this_actor::execute(copy * speed);
            count_shared_event();
        }
        const double end = sg4::Engine::get_clock();
        const double sent = put_time[message(replica, direction, edge, micro)];
        const double start = std::min(end, std::max(posted_at, sent));
        clock.idle += start - posted_at;
        clock.by_kind[planner::index_of(CommKind::point_to_point)] += end - start;
        const auto& t = program.transfers[edge];
        const int from = rank_of(direction == 0 ? t.producer : t.consumer, replica);
        flow(from, rank, t.bytes, start, direction == 0 ? "activations (point_to_point)" : "gradients (point_to_point)");
        if (!timeline || end <= posted_at) return;
        const std::string what = std::string(direction == 0 ? "activations" : "gradients") + " mb" +
                                 std::to_string(micro) + " from rank " + std::to_string(from);
        if (start > posted_at)
            clock.slices.push_back(Slice{rank, "waiting for " + what, "idle", 0, posted_at, start - posted_at});
        if (end > start) clock.slices.push_back(Slice{rank, "receive " + what, "communication", 0, start, end - start});
    }

    void send(int rank, int replica, int direction, int edge, int micro, RankClock& clock,
              std::vector<sg4::CommPtr>& pending) {
        put_time[message(replica, direction, edge, micro)] = sg4::Engine::get_clock();
        const auto& t = program.transfers[edge];
        const int to = rank_of(direction == 0 ? t.consumer : t.producer, replica);
        pending.push_back(box(replica, direction, edge, micro)->put_async(&dummy, message_bytes(rank, to, t.bytes)));
        count_message(clock);
    }

    // The messages the actors will send (the pre-run summary and the progress bar): per replica
    // and micro-batch each transfer forward and back, and each device's syncs.
    std::int64_t count_messages() {
        std::int64_t total = 2LL * spec.replicas * M() * E();
        for (int rank = 0; rank < static_cast<int>(clocks.size()); ++rank)
            for (int i = 1; i < static_cast<int>(program.sync.size()); ++i)
                if (spec.device_of[i] == rank % k())
                    for (const CommCall& call : program.sync[i]) total += sends(call, rank / k());
        return total;
    }

    // The computes: every layer's forward and backward and every receive copy, per replica and
    // micro-batch.
    std::int64_t count_steps() const {
        std::int64_t n = 0;
        for (std::size_t i = 1; i < program.forward_s.size(); ++i)
            n += (program.forward_s[i] > 0 ? 1 : 0) + (program.backward_s[i] > 0 ? 1 : 0);
        for (const auto& t : program.transfers) n += t.receive_copy_s > 0 ? 2 : 0;  // both directions' copies
        return n * spec.replicas * M();
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        const int dev = rank % k(), replica = rank / k();
        const int n = static_cast<int>(program.forward_s.size());
        // Every receive posted now, so that a transfer starts when its sender puts it.
        std::vector<std::vector<sg4::CommPtr>> incoming(static_cast<std::size_t>(2) * E());
        int* received = nullptr;
        for (int e = 0; e < E(); ++e) {
            const auto& t = program.transfers[e];
            const int direction = spec.device_of[t.consumer] == dev ? 0 : spec.device_of[t.producer] == dev ? 1 : -1;
            if (direction < 0) continue;
            for (int m = 0; m < M(); ++m)
                incoming[direction * E() + e].push_back(box(replica, direction, e, m)->get_async<int>(&received));
        }
        std::vector<sg4::CommPtr> pending;
        // The model's list order: all forwards (micro-batch by micro-batch, layers ascending), then
        // all backwards (layers descending).
        for (int m = 0; m < M(); ++m)
            for (int i = 1; i < n; ++i) {
                if (spec.device_of[i] != dev) continue;
                for (int e : in_edges[i]) receive(rank, replica, 0, e, m, incoming[e][m], clock);
                compute(rank, clock, i, m, true);
                for (int e : out_edges[i]) send(rank, replica, 0, e, m, clock, pending);
            }
        for (int m = 0; m < M(); ++m)
            for (int i = n - 1; i >= 1; --i) {
                if (spec.device_of[i] != dev) continue;
                for (int e : out_edges[i]) receive(rank, replica, 1, e, m, incoming[E() + e][m], clock);
                compute(rank, clock, i, m, false);
                for (int e : in_edges[i]) send(rank, replica, 1, e, m, clock, pending);
                // The layer's gradients are complete after its last micro-batch: its sync may start
                // (with overlap; otherwise once the device's backward pass is done, as the model).
                if (overlap() && m + 1 == M() && !program.sync[i].empty()) ready->release();
            }
        if (!overlap())
            for (int i = 1; i < n; ++i)
                if (spec.device_of[i] == dev && !program.sync[i].empty()) ready->release();
        clock.backward_end = sg4::Engine::get_clock();
        done->acquire();
        for (auto& comm : pending) comm->wait();
        run_optimizer_step(program.device_optimizer_step_s[dev], rank, clock);
        clock.end = sg4::Engine::get_clock();
    }

    // The device's gradient syncs over the replicas (ranks dev + k r), last layer first, one at a
    // time, each once its layer's last backward is done (or, without overlap, once the device's
    // backward pass is).
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        const int dev = rank % k(), replica = rank / k();
        for (int i = static_cast<int>(program.sync.size()) - 1; i >= 1; --i) {
            if (spec.device_of[i] != dev || program.sync[i].empty()) continue;
            ready->acquire();
            for (const CommCall& call : program.sync[i]) {
                if (call.group.size != spec.replicas)
                    throw std::logic_error("graph-partition replay: the sync group of layer " + std::to_string(i) +
                                           " has " + std::to_string(call.group.size) + " ranks, not R");
                const double start = sg4::Engine::get_clock();
                run_call(
                    call, rank, replica, [&](int r) { return dev + k() * r; }, "c1", boxes, clock);
                clock.sync_total += sg4::Engine::get_clock() - start;
                record(clock, rank, 1, "sync", start, call_name(call));
            }
        }
        done->release();
    }
};

}  // namespace

SimResult simulate_graph_partition(const planner::CostModel& model, const planner::PipelineSpec& spec,
                                   const std::vector<planner::Layout>& layouts, const SimOptions& options) {
    if (spec.device_of.empty())
        throw InputError("simulate", "/pipeline/device_of", "not a graph partition (no device_of)");
    planner::GraphPartitionProgram program;
    try {
        program = planner::graph_partition_program(model, spec, layouts);
    } catch (const std::invalid_argument& e) {
        std::string why = e.what();
        const std::string prefix = "graph_partition_program: ";
        if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
        throw InputError("simulate", "/pipeline", why);
    }
    return run_in_child(model, options, [&] {
        const int procs = static_cast<int>(model.options().procs);
        std::unique_ptr<GraphReplay> replay;
        return run_simulation(
            model, options, [&](const std::vector<sg4::Host*>& hosts, double speed) -> ReplayStart {
                const std::size_t n = program.forward_s.size();
                replay.reset(new GraphReplay{{model, speed, options.timeline, std::vector<RankClock>(procs)},
                                             spec,
                                             program,
                                             std::vector<std::vector<int>>(n),
                                             std::vector<std::vector<int>>(n),
                                             {}});
                for (int e = 0; e < static_cast<int>(program.transfers.size()); ++e) {
                    replay->in_edges[program.transfers[e].consumer].push_back(e);
                    replay->out_edges[program.transfers[e].producer].push_back(e);
                }
                replay->put_time.assign(
                    static_cast<std::size_t>(spec.replicas) * 2 * program.transfers.size() * spec.micro_batches, 0.0);
                replay->message_links = MessageLinks::install(model.cluster(), hosts, options.platform);
                spawn_rank_actors(replay.get(), hosts, procs, true);  // a sync actor per rank; overlap() times it
                return {replay->clocks, replay->count_messages(), replay->count_steps(), "", &replay->link_stats};
            });
    });
}

}  // namespace dnnplan::simulator
