// The byte ledger (issue 17, item 4): every rank counts the bytes it sends, per plan operation
// (layer, phase, kind) with the peer of a point-to-point message or the size of a collective's
// group, and the plan's CommCalls give the same entries for that rank's role. The two sets must be
// equal: the independent check that the communication the cost model predicts is the
// communication the code performs (the simulator replays the same CommCalls, so it cannot give it).
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <mpi.h>

#include "common/diagnostics.hpp"
#include "planner/comm.hpp"

namespace dnnplan::validators {

// One operation's messages: a point-to-point send to `peer` (a rank of the run's communicator), or
// a collective over `group_size` ranks (peer -1). `bytes` per call: for a collective the whole
// buffer it works on (all-reduce: the buffer; reduce-scatter: its input; all-gather: its output),
// as planner::gradient_sync_calls writes CommCall::bytes.
struct LedgerKey {
    int layer = 0;
    planner::Phase phase = planner::Phase::forward;
    planner::CommKind kind = planner::CommKind::point_to_point;
    int peer = -1;
    int group_size = 1;
    double bytes = 0;
    auto operator<=>(const LedgerKey&) const = default;
};

class ByteLedger {
public:
    void record(const LedgerKey& key, int calls = 1) { counts_[key] += calls; }
    void clear() { counts_.clear(); }
    const std::map<LedgerKey, int>& counts() const { return counts_; }

private:
    std::map<LedgerKey, int> counts_;  // calls per iteration
};

// Every entry of either ledger with both counts ("measured_calls", "planned_calls"), and the
// entries that differ as sentences naming the rank.
struct LedgerComparison {
    Json entries = Json::array();
    std::vector<std::string> mismatches;
};
LedgerComparison compare_ledgers(const ByteLedger& measured, const ByteLedger& planned, int rank);

// Rank 0 of `comm` receives every rank's strings (in rank order); others get an empty vector.
std::vector<std::string> gather_strings(const std::string& mine, MPI_Comm comm);

}  // namespace dnnplan::validators
