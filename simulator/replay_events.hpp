// The layer-parallel replay without actors (simulator/README.md, "Event-driven replay"). Private to
// simulator/.
#pragma once

#include <memory>

#include "simulator/child.hpp"
#include "simulator/replay_base.hpp"

namespace dnnplan::simulator {

// Starts the event-driven replay of `program` on `hosts` (rank r on hosts[r]); `holder` keeps it
// alive through the engine's run. `messages` and `steps` are the counts the progress bar expects.
ReplayStart start_event_replay(std::shared_ptr<void>& holder, const planner::CostModel& model,
                               const ReplayProgram& program, const SimOptions& options,
                               const std::vector<sg4::Host*>& hosts, double speed, std::int64_t messages,
                               std::int64_t steps);

}  // namespace dnnplan::simulator
