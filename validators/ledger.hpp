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
#include "networks/network.hpp"
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

// One send this process asked MPI for while a SendCounter was active, during step `step` of
// operation `op` (validators::Op): to `peer` (a rank of MPI_COMM_WORLD) for a point-to-point send or
// each non-empty destination of an all-to-all, or a collective over `group_size` ranks (peer -1).
struct SentMessage {
    int op = -1;
    std::string step;
    int peer = -1;
    int group_size = 1;
    double bytes = 0;
};

// Counts what this process sends through the MPI profiling interface (MPI 3.1 chapter 14): this
// library defines MPI_Isend, MPI_Send, MPI_Alltoallv, MPI_Allreduce and MPI_Iallreduce, records the
// call when a counter is active and forwards to PMPI_*. The counter sees what the code really asks
// MPI to move, whatever path led there. Process-global by the nature of that interface: one counter
// may be active at a time (the constructor throws otherwise).
class SendCounter {
public:
    SendCounter();
    ~SendCounter();
    SendCounter(const SendCounter&) = delete;
    SendCounter& operator=(const SendCounter&) = delete;
    void set_step(int op, const std::string& step) {
        op_ = op;
        step_ = step;
    }
    void add(int peer, int group_size, double bytes) { messages_.push_back({op_, step_, peer, group_size, bytes}); }
    const std::vector<SentMessage>& messages() const { return messages_; }

private:
    int op_ = -1;
    std::string step_;
    std::vector<SentMessage> messages_;
};

// Rank 0 of `comm` receives every rank's strings (in rank order); others get an empty vector.
std::vector<std::string> gather_strings(const std::string& mine, MPI_Comm comm);

// The layer-parallel runner's ledger (validators/README.md, "The byte ledger"): every rank's sends,
// attributed to (layer, phase, kind) by the step they ran in, set beside `calls` (the plan's
// CommCalls). Collectives must equal the plan (group size, count, and the largest rank's bytes equal
// to the call's bytes, which are the busiest rank's); halos and redistributions must be present
// exactly where the plan has them, reach no more peers than the plan's groups, and each rank's
// bytes are reported beside the call's. Rank 0 gets {"agrees", "entries", "mismatches"}.
Json layer_ledger(const networks::Network& network, const std::vector<planner::CommCall>& calls,
                  const std::vector<SentMessage>& sent, MPI_Comm comm);

// The plan operation one counted send belongs to, by the layer-parallel ledger's rules (the step's
// layer, phase and kind): {"layer", "phase", "kind", "bytes", "peer" or "group_size"}, or
// {"layer", "unexpected_step", "bytes"} for a send in a step no plan call covers. The pipeline
// runner attributes its stages' tensor-parallel collectives with it.
Json attribute_send(const networks::Network& network, const SentMessage& message);

}  // namespace dnnplan::validators
