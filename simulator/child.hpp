// The forked child that owns a SimGrid engine (one engine per process, and a SimGrid abort must
// not take the caller down), and the JSON that carries its result back over a pipe. Private to
// simulator/.
#pragma once

#include <functional>
#include <vector>

#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

// Creates a replay's actors on `hosts` (rank r on hosts[r]), each host executing `speed` FLOP/s,
// and returns the clocks they will fill; they must outlive the engine's run.
using StartActors = std::function<const std::vector<RankClock>&(const std::vector<sg4::Host*>& hosts, double speed)>;

// In the child: builds the engine and the platform, lets `start` create the actors, runs, and
// returns the result (the critical rank's clock, counts, platform, slices) as JSON.
Json run_simulation(const planner::CostModel& model, const SimOptions& options, const StartActors& start);

// Runs `body` (which builds an engine, e.g. through run_simulation) in a child process and returns
// its result. An InputError in the child is thrown again here as an InputError; any other failure,
// or a child that dies, as std::runtime_error with SimGrid's first line of complaint.
SimResult run_in_child(const planner::CostModel& model, const std::function<Json()>& body);

}  // namespace dnnplan::simulator
