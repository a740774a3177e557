// The forked child that owns a SimGrid engine (one engine per process, and a SimGrid abort must
// not take the caller down), and the JSON that carries its result back over a pipe. Private to
// simulator/.
#pragma once

#include <functional>
#include <vector>

#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

// What a replay hands back once its actors exist: the clocks they will fill (they must outlive the
// engine's run), the messages they will send, and what the reduced replay collapsed ("" for none).
struct ReplayStart {
    const std::vector<RankClock>& clocks;
    std::int64_t expected_messages = 0;
    std::int64_t expected_steps = 0;  // computes, and the reduced replay's timed calls
    std::string reduction;
    const LinkStats* links = nullptr;  // the per-link report's figures, filled during the run
    // The event-driven replay has no actors: the rank streams it advances instead (-1: the actors).
    std::int64_t streams = -1;
};
// Creates a replay's actors on `hosts` (rank r on hosts[r]), each host executing `speed` FLOP/s.
using StartActors = std::function<ReplayStart(const std::vector<sg4::Host*>& hosts, double speed)>;
// Adjusts the options once the engine exists, before the platform is built (the reduced replay).
using Configure = std::function<void(SimOptions& options)>;

// In the child: builds the engine and the platform, lets `start` create the actors, runs, and
// returns the result (the critical rank's clock, counts, platform, slices) as JSON.
Json run_simulation(const planner::CostModel& model, const SimOptions& options, const StartActors& start,
                    const Configure& configure = {});

// Runs `body` (which builds an engine, e.g. through run_simulation) in a child process and returns
// its result. An InputError in the child is thrown again here as an InputError; a run stopped by
// options.max_seconds as SimulationStopped; any other failure, or a child that dies, as
// std::runtime_error with SimGrid's first line of complaint. While it runs, options.on_progress
// hears about it about five times a second.
SimResult run_in_child(const planner::CostModel& model, const SimOptions& options, const std::function<Json()>& body);

// After a reduced replay: the slices of every replayed rank r are copied to ranks r + k x step for
// 0 < k < copies (the ranks it stood for, whose timelines are its own by the reduction's symmetry).
void replicate_slices(SimResult& result, int copies, int step);

// Makes the calling thread's small allocations come from free lists that are never given back
// (simulator/memory_pool.cpp): called by the child right after the fork.
void enable_memory_pool();

// Counts one message, or one compute or timed call, of the running child (the parent's progress bar
// reads the count).
void count_shared_event();

}  // namespace dnnplan::simulator
