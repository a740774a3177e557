// Readers for the result files a report can put beside the prediction: `dnnplan simulate
// --format json` and `dnnplan validate --format json`. Both are read tolerantly (unknown keys are
// ignored) so either side may add fields; the accepted shapes are in reports/README.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/diagnostics.hpp"

namespace dnnplan::reports {

// One breakdown entry present in both the predicted and the other block ("all_reduce_s", ...).
struct BreakdownPair {
    std::string key;
    double predicted = 0, other = 0;
};

// The plan a result is about, as `dnnplan simulate` writes it ("plan": {...}); absent in older files.
struct ResultIdentity {
    std::string network, fingerprint, cluster;
    std::int64_t procs = 0, batch = 0;
};

// One of the most loaded links of a simulation ("links": {"most_loaded": [...]}, issue 20 item 3).
struct LinkLoad {
    std::string link, senders;  // senders: "weight gradient 1.2 GiB, ..." (the top collectives on it)
    double bytes = 0, busy_fraction = 0, utilisation = 0;
};

struct SimulatedResult {
    std::vector<LinkLoad> links;  // most bytes first; empty when the file has none
    std::string strategy, grid;  // "" when the file does not say (then: the simulated plan)
    std::optional<ResultIdentity> plan;
    double predicted_s = 0, simulated_s = 0;
    std::optional<double> relative_difference;
    std::vector<BreakdownPair> breakdown;  // keys ending in _s present in both blocks
};

struct MeasuredPlan {
    std::string strategy, grid;
    std::optional<ResultIdentity> plan;  // absent in files written before the identity was added
    double predicted_s = 0, measured_s = 0;
    std::optional<double> relative_error;
    std::vector<BreakdownPair> breakdown;
};
struct MeasuredResult {
    std::vector<MeasuredPlan> plans;
};

// InputError naming `file` and the JSON pointer of anything missing or of the wrong type.
SimulatedResult parse_simulated_result(const Json& json, const std::string& file);
MeasuredResult parse_measured_result(const Json& json, const std::string& file);

// InputError (exit 2) at the file's /plan/... pointer when the result's plan is for another
// network (by fingerprint), P, batch or cluster than these; nothing when the file has no identity.
void check_result_identity(const SimulatedResult& result, const std::string& file, const std::string& network,
                           const std::string& fingerprint, std::int64_t procs, std::int64_t batch,
                           const std::string& cluster);
// The same for every plan of a measured result (`dnnplan validate --format json`), at /plans/i/plan/...
void check_result_identity(const MeasuredResult& result, const std::string& file, const std::string& network,
                           const std::string& fingerprint, std::int64_t procs, std::int64_t batch,
                           const std::string& cluster);

}  // namespace dnnplan::reports
