// The SimGrid replay of a plan (DESIGN.md section 6): a platform built from the Cluster (or loaded
// from a SimGrid XML file), one actor per rank replaying the plan's compute and the very message
// steps of every collective the cost model costed (clusters::rank_steps), and the simulated
// iteration time beside the analytical one. No SimGrid header appears here: callers (CLI, tests,
// benchmarks) see plain values only.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "planner/cost_model.hpp"
#include "planner/pipeline.hpp"
#include "planner/pipeline_program.hpp"

namespace dnnplan::simulator {

// SimGrid's network models as users choose them (--network-model). See simulator/README.md.
enum class NetworkModel {
    cm02,  // plain latency + size / bandwidth, max-min sharing: the alpha-beta model exactly (default)
    lv08,  // SimGrid's default, calibrated on TCP: latency x 13.01, bandwidth x 0.97, cross traffic
    smpi,  // SimGrid's MPI calibration: piecewise latency and bandwidth factors by message size
};
std::string to_string(NetworkModel model);
const std::vector<std::string>& network_model_names();
// InputError on `file` at `where` listing the valid names when `name` is none of them.
NetworkModel parse_network_model(const std::string& name, const std::string& file, const std::string& where);

// Which platform to build. "cluster": the cluster's own topology (crossbar = star with private
// links, fat_tree, torus, dragonfly); "star": a star with private links whatever the cluster says
// (the contention-free platform on which simulation and prediction must agree).
struct PlatformOptions {
    std::string topology = "cluster";
    std::string platform_file;       // a SimGrid platform XML instead of the cluster's topology
    std::vector<std::string> hosts;  // rank r runs on hosts[r] (XML only); empty: all hosts, natural name order
    std::string hosts_source;        // where `hosts` came from, for diagnostics
    NetworkModel network_model = NetworkModel::cm02;
    double oversubscription = 0;  // > 0 overrides the cluster's fat-tree oversubscription
    // Set by the reduced replay (not by users): each active device stands for this many identical
    // devices of its node, so the topology's links get 1 / lanes of the node's injection bandwidth.
    int lanes = 1;
    // SimGrid's lazy max-min update of the flows' shares (network/optim:Lazy, its default for CM02);
    // false recomputes every share at every event (network/optim:Full): slower, the reference the
    // event-driven replay is tested against (simulator/README.md, "Event-driven replay").
    bool lazy_sharing = true;
    // Set by the folded replay (not by users): every link is one SHARED resource for both
    // directions instead of a split-duplex pair (simulator/README.md, "Folded exchanges").
    bool shared_duplex = false;
    // Set by the router-symmetric replay (not by users): one node per dragonfly router is replayed
    // and stands for the router's `router_lanes` nodes, so the router-to-router and global links get
    // 1 / router_lanes of their bandwidth (simulator/README.md, "Router symmetry").
    int router_lanes = 1;
};

// What a running simulation has done so far (SimOptions::on_progress).
struct SimProgress {
    bool started = false;  // the actors exist: ranks, actors and expected_messages are known
    std::int64_t ranks = 0, actors = 0, expected_messages = 0;
    std::int64_t expected_steps = 0;  // computes, and the reduced replay's timed calls
    std::int64_t events = 0;          // messages and steps done so far
    double wall_s = 0;  // since the child started
};

// Thrown by simulate*() when SimOptions::max_seconds ran out: the child was stopped, nothing kept.
struct SimulationStopped : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct SimOptions {
    PlatformOptions platform;
    double max_seconds = 0;  // > 0: stop the simulation after this many wall seconds (SimulationStopped)
    std::function<void(const SimProgress&)> on_progress;  // called about five times a second while it runs
    bool timeline = false;  // record slices for the Chrome trace (costs memory: slices x ranks)
    // Pipelines: replay one tensor rank per stage where the symmetry allows it (simulator/README.md,
    // "Reduced replay"); false forces the full replay (the tests compare both).
    bool reduce = true;
    int top_links = 10;  // links in the per-link report (SimResult::links), most bytes first
    // Layer-parallel plans: replay without actors, advancing each rank's streams from SimGrid's
    // completion signal (the same flows at the same times; simulator/README.md, "Event-driven
    // replay"). Off by default: SimGrid 3.32 makes it quadratic in the flows in flight (slower
    // than the actors from a few thousand ranks); the tests compare both.
    bool event_driven = false;
    // The child's small allocations from never-returned free lists instead of malloc
    // (simulator/memory_pool.cpp): the same flows at the same times, 23-30% less CPU at P = 512, 42-46% at P = 4,096
    // (simulator/README.md, "Scale"); the test compares both.
    bool memory_pool = true;
    // Layer-parallel plans on a built star or dragonfly under CM02: each pair exchange (two ranks
    // sending each other the same bytes at the same step) replayed as one flow on links that carry
    // both directions as one resource: exact when every call is made of pair exchanges
    // (simulator/README.md, "Folded exchanges"); false forces the unfolded replay.
    bool fold_exchanges = true;
    // Fold also when some calls send lone flows (halos over 3 or more parts, rings and shifts over
    // more than 2 ranks): those flows then share a folded link with both directions' traffic, an
    // approximation (measured, not exact; off by default).
    bool fold_lone_flows = false;
    // Layer-parallel plans on a built dragonfly with one device per node under CM02: replay one node
    // per router (the first) when every partner of a replayed rank is in its router or is replayed
    // too (simulator/README.md, "Router symmetry"). Exact when every call maps onto itself under
    // rank xor 1 .. R-1 (R nodes per router) and is made of pair exchanges; with halos over 3 or more
    // parts or shifts inside a router, the replayed node's partners there are assumed to post with
    // it: an approximation (measured, not exact). Off by default; SimResult::reduction says which.
    bool router_symmetry = false;
};

// One named slice of one rank's timeline: compute, a collective, a sync all-reduce.
struct Slice {
    int rank = 0;
    std::string name;  // "conv1_1 forward", "conv1_1 weight gradient all_reduce (ring)"
    std::string cat;   // "compute", "communication", "sync"
    int track = 0;     // 0: the rank's main stream, 1: its gradient-synchronisation stream
    double start_s = 0, duration_s = 0;
};

struct SimResult {
    planner::CostBreakdown simulated;  // time fields only (memory stays the prediction's)
    int critical_rank = 0;             // the rank whose iteration ended last; its breakdown is reported
    std::int64_t messages = 0;         // simulated messages in all
    double wall_s = 0;                 // wall time of the simulation itself (engine.run())
    double cpu_s = 0;                  // CPU time of the same
    double peak_rss_bytes = 0;         // peak resident memory of the simulating (child) process
    std::string platform_kind;         // "star", "fat_tree", "torus", "dragonfly", "xml"
    std::string platform_summary;      // one line: hosts, links, parameters
    std::int64_t platform_hosts = 0;
    double link_bandwidth_Bps = 0, link_latency_s = 0;  // per-link parameters used (built platforms)
    std::string rank_mapping;                           // how group ranks map onto hosts, in words
    std::vector<Slice> slices;                          // with SimOptions::timeline
    std::int64_t ranks = 0;                             // ranks of the plan
    std::int64_t actors = 0;                            // actors actually simulated
    std::string reduction;  // "" for the full replay, else what the reduced replay collapsed
    // The most loaded links: {"links_used", "bytes_on_links", "most_loaded": [{"link",
    // "bandwidth_Bps", "bytes", "busy_s", "busy_fraction", "utilisation", "top_senders"}]}.
    Json links;
};

// The replayed program of a layer-parallel plan (ReplayProgram; planner::Schedule is something
// else, a pipeline's operation order), rank-independent: per layer in forward order, then backward
// order, the compute seconds and the plan's CommCalls (pointers into the ScoredPlan).
struct Step {
    enum class Type { compute, comm, sync_ready } type = Type::compute;
    int layer = 0;
    planner::Phase phase = planner::Phase::forward;
    double seconds = 0;                       // compute
    const planner::CommCall* call = nullptr;  // comm
};
struct ReplayProgram {
    std::vector<Step> main;                                   // forward then backward
    std::vector<std::vector<const planner::CommCall*>> sync;  // per sync_ready step, in order
    bool overlap_sync = true;
    double optimizer_step_s = 0;  // the optimizer's update once the gradients are synchronised (planner/compute.hpp)
};
// Forward: each layer's incoming redistributions and halos, its compute, its other forward calls.
// Backward (reverse order): halos, compute, the other backward calls, then its weight-gradient
// all-reduce handed to the sync stream (overlapped) or run at the end (no overlap).
ReplayProgram build_replay_program(const planner::CostModel& model, const planner::ScoredPlan& plan);

// Where member `index` of a group of `group` (size, per_node) that contains `rank` lives, and
// which member `rank` is. Group members are laid out as the cost model assumes: per_node
// consecutive members share a node (a "lane" of per_node devices), the group spans
// size / per_node consecutive nodes in the same lane. Falls back to contiguous blocks of `size`
// ranks when per_node does not divide the devices per node.
struct GroupMap {
    int procs = 1, devices_per_node = 1;
    int my_index(const clusters::GroupPlacement& group, int rank) const;
    int member(const clusters::GroupPlacement& group, int rank, int index) const;
};

// The steps of one layer (shared by the single-stage and the pipeline replays): forward (incoming
// redistributions and halos, compute, the other forward calls), backward (the output gradient's
// halo, compute, the other backward calls) and its weight-gradient sync calls.
struct LayerSteps {
    std::vector<Step> forward, backward;
    std::vector<const planner::CommCall*> sync;
};
std::vector<LayerSteps> layer_steps(const networks::Network& network, const planner::ScoredPlan& plan);

// The stages' operation order is the planner's (planner/pipeline.hpp), so the replay runs what the model costed.
using planner::pipeline_order;
using planner::PipelineOp;

// Runs one simulation in a child process (SimGrid allows one engine per process; a child also
// keeps any SimGrid abort away from the caller). Throws InputError for bad platform input
// (unknown host, too few hosts, unreadable XML) and std::runtime_error if the child dies.
SimResult simulate(const planner::CostModel& model, const planner::ScoredPlan& plan, const SimOptions& options);

// A pipeline plan (spec.active(), no graph partition): rank t + T (s + S r) replays stage s of
// replica r as planner::pipeline_program() describes it: per micro-batch, receive the activations
// from stage s - 1 (a blocking get; the sender's put is asynchronous), the stage's layers'
// forward steps among its T ranks, and symmetrically backward with the gradients from s + 1, in
// the spec's schedule (recomputation: the stage's forward steps again before each backward);
// after the last backward of a layer, its gradient sync over the replicas (overlapped or not as
// the options say). A graph partition goes to simulate_graph_partition(). Throws InputError for a
// spec the model rejects.
SimResult simulate_pipeline(const planner::CostModel& model, const planner::PipelineSpec& spec,
                            const std::vector<planner::Layout>& layouts, const SimOptions& options);

// A graph-partition plan (spec.device_of set): rank dev + k r replays device dev of replica r as
// planner::graph_partition_program() describes it, in score_graph_partition()'s list order (for
// each micro-batch, its layers' forwards in ascending order; then for each micro-batch its
// backwards in descending order): a blocking wait for each input from another device (the
// receives are posted at the start, so a transfer runs while the device computes, as the model
// assumes), the compute, then an asynchronous put of the output to each consumer on another
// device (forward) or of the gradient to each producer on another device (backward). After the
// last micro-batch's backward of a layer its gradient sync over the replicas (ranks dev + k r)
// runs on the rank's sync actor, one at a time, always overlapped like the model's. Throws
// InputError for a spec the model rejects.
SimResult simulate_graph_partition(const planner::CostModel& model, const planner::PipelineSpec& spec,
                                   const std::vector<planner::Layout>& layouts, const SimOptions& options);

// Output. `predicted` is the analytical breakdown of the same plan on the same cluster.
Json result_to_json(const SimResult& result, const planner::CostBreakdown& predicted, const SimOptions& options);
std::string result_text(const SimResult& result, const planner::CostBreakdown& predicted, const SimOptions& options);
std::string result_csv(const SimResult& result, const planner::CostBreakdown& predicted);
// One sentence: agreement, or the slowdown the analytical model misses and why.
std::string verdict(const SimResult& result, const planner::CostBreakdown& predicted);
// Chrome trace event format (JSON object form): "X" complete events, ts/dur in microseconds,
// pid 0, tid = rank (x2, +1 for the sync stream), thread_name metadata per track.
Json chrome_trace(const SimResult& result);

}  // namespace dnnplan::simulator
