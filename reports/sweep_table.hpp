// One row of a sweep (`dnnplan sweep`) per (network, cluster, P): the best plan and pure batch,
// as a JSON object (what the sweep's ranks exchange) and the whole sweep as CSV or JSON.
#pragma once

#include <string>
#include <vector>

#include "common/diagnostics.hpp"
#include "planner/search.hpp"

namespace dnnplan::reports {

// Column names in order; units in the names.
const std::vector<std::string>& sweep_columns();

// A planned configuration. `status`: "ok" (a feasible plan), "infeasible" (none; the reason of the
// first candidate), "invalid" (the configuration itself cannot be planned: P above the cluster's
// devices, dtype without a peak rate, ...; `reason` says why).
Json sweep_row(const std::string& network, const std::string& cluster, std::int64_t procs,
               const planner::PlannerOptions& options, const planner::SearchResult& result);
Json invalid_sweep_row(const std::string& network, const std::string& cluster, std::int64_t procs,
                       const std::string& reason);

std::string sweep_csv(const std::vector<Json>& rows);   // numbers with 10 significant digits
std::string sweep_json(const std::vector<Json>& rows);  // {"format": "dnnplan-sweep", "rows": [...]}
// For a person: one aligned line per configuration (network, cluster, P, status, best plan,
// iteration, speed-up over pure batch, memory), then the count of ok, infeasible and invalid rows.
// The best plan's label continues on the next lines past `width` columns (0: no limit).
std::string sweep_text(const std::vector<Json>& rows, int width = 0);
// "240 configurations: 191 ok, 9 infeasible, 40 invalid" (the line sweep prints on stderr).
std::string sweep_summary(const std::vector<Json>& rows);
// A self-contained HTML page: per network and cluster, iteration time and parallel efficiency
// against P (log-log, SVG), then the table of sweep_text.
std::string sweep_html(const std::vector<Json>& rows);

}  // namespace dnnplan::reports
