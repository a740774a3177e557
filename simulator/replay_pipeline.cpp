// The pipeline replay: rank t + T (s + S r) runs stage s of replica r, micro-batch by micro-batch
// in the schedule's order, and its gradient syncs over the replicas.
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "simulator/child.hpp"
#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

namespace {

struct PipelineReplay : ReplayBase {
    const planner::PipelineSpec& spec;
    const planner::PipelineProgram& program;
    std::vector<LayerSteps> layers;  // of one micro-batch on T ranks
    GroupMap inner;                  // the T ranks of a stage, numbered 0..T-1
    // When each rank posted its activations (direction 0) and gradients (1) of each micro-batch,
    // so that a receiver can tell waiting for the sender (bubble) from the transfer itself.
    std::vector<double> put_time;

    int T() const { return spec.tensor; }
    int S() const { return spec.stages; }
    int M() const { return spec.micro_batches; }
    double& posted(int rank, int direction, int micro) { return put_time[(rank * 2 + direction) * M() + micro]; }

    // Stage-internal calls: the call's group inside the tensor group, shifted to its base rank.
    auto stage_members(int rank) const {
        const int t = rank % T(), base = rank - t;
        return [this, t, base](const CommCall& call, const auto& body) {
            const int index = inner.my_index(call.group, t);
            if (index < 0) return;
            body(index, [&, base](int i) { return base + inner.member(call.group, t, i); });
        };
    }

    // The replica sync group of `rank` for layer `layer`: the inner sync group's members in every
    // replica's copy of the stage, in rank order (a node's members are then consecutive, as the
    // collective's per_node placement assumes).
    std::vector<int> sync_members(int rank, int layer) const {
        const int t = rank % T(), s = (rank / T()) % S();
        const clusters::GroupPlacement& g = program.inner_sync_group[layer];
        std::vector<int> local;
        if (g.size <= 1) {
            local.push_back(t);
        } else {
            if (inner.my_index(g, t) < 0) return {};
            for (int i = 0; i < g.size; ++i) local.push_back(inner.member(g, t, i));
        }
        std::vector<int> out;
        for (int r = 0; r < spec.replicas; ++r)
            for (int l : local) out.push_back(T() * (s + S() * r) + l);
        std::sort(out.begin(), out.end());
        return out;
    }

    void run_sync(const CommCall& call, int rank, const std::string& channel, Boxes& boxes, RankClock& clock,
                  int track) {
        std::vector<int> members = sync_members(rank, call.layer);
        auto it = std::find(members.begin(), members.end(), rank);
        if (members.empty()) return;  // an incomplete inner group (its size does not divide T): nothing to replay
        // The model's group and the ranks found for it must agree, or the replay would cost another group.
        if (it == members.end() || static_cast<int>(members.size()) != call.group.size)
            throw std::logic_error("pipeline replay: the sync group of layer " + std::to_string(call.layer) + " has " +
                                   std::to_string(members.size()) + " ranks, the model's " +
                                   std::to_string(call.group.size));
        const double start = sg4::Engine::get_clock();
        run_call(
            call, rank, static_cast<int>(it - members.begin()), [&](int i) { return members[i]; }, channel, boxes,
            clock);
        clock.sync_total += sg4::Engine::get_clock() - start;
        record(clock, rank, track, "sync", start, call_name(call));
    }

    // Blocking receive of micro-batch `micro` from `from` (direction 0: activations, 1: gradients).
    void receive(int rank, int from, int direction, int micro, Boxes& boxes, RankClock& clock) {
        const double posted_at = sg4::Engine::get_clock();
        int* received = nullptr;
        mailbox(boxes, direction == 0 ? "a" : "g", from, rank)->get_async<int>(&received)->wait();
        const double end = sg4::Engine::get_clock();
        // Rendezvous: the transfer starts when both sides have posted.
        const double start = std::max(posted_at, posted(from, direction, micro));
        clock.idle += start - posted_at;
        clock.by_kind[planner::index_of(CommKind::point_to_point)] += end - start;
        if (!timeline) return;
        const std::string what = std::string(direction == 0 ? "activations" : "gradients") + " mb" +
                                 std::to_string(micro) + " from rank " + std::to_string(from);
        if (start > posted_at)
            clock.slices.push_back(Slice{rank, "waiting for " + what, "idle", 0, posted_at, start - posted_at});
        clock.slices.push_back(Slice{rank, "receive " + what, "communication", 0, start, end - start});
    }

    void send(int rank, int to, int direction, int micro, double bytes, Boxes& boxes, RankClock& clock,
              std::vector<sg4::CommPtr>& pending) {
        posted(rank, direction, micro) = sg4::Engine::get_clock();
        pending.push_back(mailbox(boxes, direction == 0 ? "a" : "g", rank, to)
                              ->put_async(&dummy, static_cast<std::uint64_t>(std::llround(bytes))));
        ++clock.messages;
    }

    void main_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        std::vector<sg4::CommPtr> pending;
        const int s = (rank / T()) % S();
        const auto& stage = program.stages[s];
        const auto members = stage_members(rank);
        const bool overlap = model.options().overlap_sync;
        std::vector<const CommCall*> deferred;
        const std::vector<PipelineOp> ops = pipeline_order(spec.schedule, S(), s, M());
        for (std::size_t k = 0; k < ops.size(); ++k) {
            const PipelineOp& op = ops[k];
            const std::string mb = " mb" + std::to_string(op.micro);
            if (op.forward) {
                if (s > 0) receive(rank, rank - T(), 0, op.micro, boxes, clock);
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward)
                        run_step(step, rank, members, "c0", boxes, clock, mb, false);
                if (s + 1 < S())
                    send(rank, rank + T(), 0, op.micro, program.stages[s + 1].recv_bytes, boxes, clock, pending);
                continue;
            }
            if (s + 1 < S()) receive(rank, rank + T(), 1, op.micro, boxes, clock);
            // Recomputation: only the stage's input was kept; its forward runs again first.
            if (spec.recompute)
                for (int i = stage.first; i <= stage.last; ++i)
                    for (const Step& step : layers[i].forward)
                        run_step(step, rank, members, "c0", boxes, clock, mb + " (recomputed)", true);
            const bool last = k + 1 == ops.size();
            for (int i = stage.last; i >= stage.first; --i) {
                for (const Step& step : layers[i].backward) run_step(step, rank, members, "c0", boxes, clock, mb, true);
                // The layer's gradients are complete after its last micro-batch: its sync may start.
                if (last && !program.sync[i].empty()) {
                    if (overlap)
                        ready->release();
                    else
                        for (const CommCall& call : program.sync[i]) deferred.push_back(&call);
                }
            }
            if (s > 0) send(rank, rank - T(), 1, op.micro, stage.recv_bytes, boxes, clock, pending);
        }
        clock.backward_end = sg4::Engine::get_clock();
        if (overlap)
            done->acquire();
        else
            for (const CommCall* call : deferred) run_sync(*call, rank, "c0", boxes, clock, 0);
        for (auto& comm : pending) comm->wait();
        clock.end = sg4::Engine::get_clock();
    }

    // The stage's gradient syncs, last layer first, each once its layer's last backward is done.
    void sync_actor(int rank, sg4::SemaphorePtr ready, sg4::SemaphorePtr done) {
        RankClock& clock = clocks[rank];
        Boxes boxes;
        const auto& stage = program.stages[(rank / T()) % S()];
        for (int i = stage.last; i >= stage.first; --i) {
            if (program.sync[i].empty()) continue;
            ready->acquire();
            for (const CommCall& call : program.sync[i]) run_sync(call, rank, "c1", boxes, clock, 1);
        }
        done->release();
    }
};

}  // namespace

SimResult simulate_pipeline(const planner::CostModel& model, const planner::PipelineSpec& spec,
                            const std::vector<planner::Layout>& layouts, const SimOptions& options) {
    if (!spec.device_of.empty()) return simulate_graph_partition(model, spec, layouts, options);
    std::string problem = planner::pipeline_problem(model, spec);
    if (!problem.empty()) throw InputError("simulate", "/pipeline", problem);
    const planner::PipelineProgram program = planner::pipeline_program(model, spec, layouts);
    return run_in_child(model, [&] {
        const int procs = static_cast<int>(model.options().procs);
        const int d = std::max(1, std::min(model.cluster().devices_per_node, spec.tensor));
        std::unique_ptr<PipelineReplay> replay;
        const bool overlap = model.options().overlap_sync;
        return run_simulation(
            model, options, [&](const std::vector<sg4::Host*>& hosts, double speed) -> const std::vector<RankClock>& {
                replay.reset(new PipelineReplay{
                    {model, speed, options.timeline, std::vector<RankClock>(procs)},
                    spec,
                    program,
                    layer_steps(model.network(), program.micro),
                    GroupMap{spec.tensor, d},
                    std::vector<double>(static_cast<std::size_t>(procs) * 2 * spec.micro_batches, 0.0)});
                spawn_rank_actors(replay.get(), hosts, procs, overlap);
                return replay->clocks;
            });
    });
}

}  // namespace dnnplan::simulator
