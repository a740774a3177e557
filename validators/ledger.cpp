#include "validators/ledger.hpp"

#include <set>

namespace dnnplan::validators {

namespace {
Json key_json(const LedgerKey& k) {
    Json j = {{"layer", k.layer},
              {"phase", planner::to_string(k.phase)},
              {"kind", planner::to_string(k.kind)},
              {"bytes", k.bytes}};
    if (k.peer >= 0)
        j["peer"] = k.peer;
    else
        j["group_size"] = k.group_size;
    return j;
}
std::string key_text(const LedgerKey& k) {
    std::string who = k.peer >= 0 ? "to rank " + std::to_string(k.peer) : "over " + std::to_string(k.group_size) + " ranks";
    return "layer " + std::to_string(k.layer) + " " + planner::to_string(k.phase) + " " + planner::to_string(k.kind) +
           " of " + std::to_string(static_cast<long long>(k.bytes)) + " B " + who;
}
}  // namespace

LedgerComparison compare_ledgers(const ByteLedger& measured, const ByteLedger& planned, int rank) {
    LedgerComparison out;
    std::set<LedgerKey> keys;
    for (const auto& [k, n] : measured.counts()) keys.insert(k);
    for (const auto& [k, n] : planned.counts()) keys.insert(k);
    for (const LedgerKey& k : keys) {
        auto m = measured.counts().find(k), p = planned.counts().find(k);
        const int mc = m == measured.counts().end() ? 0 : m->second;
        const int pc = p == planned.counts().end() ? 0 : p->second;
        Json e = key_json(k);
        e["rank"] = rank;
        e["measured_calls"] = mc;
        e["planned_calls"] = pc;
        out.entries.push_back(e);
        if (mc != pc)
            out.mismatches.push_back("rank " + std::to_string(rank) + ": " + key_text(k) + ": " + std::to_string(mc) +
                                     " call(s) made, the plan has " + std::to_string(pc));
    }
    return out;
}

std::vector<std::string> gather_strings(const std::string& mine, MPI_Comm comm) {
    int me = 0, p = 1;
    MPI_Comm_rank(comm, &me);
    MPI_Comm_size(comm, &p);
    int n = static_cast<int>(mine.size());
    std::vector<int> counts(static_cast<std::size_t>(p)), displs(static_cast<std::size_t>(p));
    MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm);
    for (int r = 1; r < p; ++r) displs[r] = displs[r - 1] + counts[r - 1];
    std::string all(me == 0 ? static_cast<std::size_t>(displs[p - 1] + counts[p - 1]) : 0, '\0');
    MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, 0, comm);
    std::vector<std::string> out;
    if (me == 0)
        for (int r = 0; r < p; ++r) out.push_back(all.substr(static_cast<std::size_t>(displs[r]), static_cast<std::size_t>(counts[r])));
    return out;
}

}  // namespace dnnplan::validators
