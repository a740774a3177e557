#include "validators/ledger.hpp"

#include <algorithm>
#include <cmath>

#include "validators/layers.hpp"

#include <set>
#include <stdexcept>

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

namespace {
SendCounter* active_counter = nullptr;  // see SendCounter: the profiling interface is per process

int world_rank_of(int rank, MPI_Comm comm) {
    MPI_Group group, world;
    PMPI_Comm_group(comm, &group);
    PMPI_Comm_group(MPI_COMM_WORLD, &world);
    int out = MPI_UNDEFINED;
    PMPI_Group_translate_ranks(group, 1, &rank, world, &out);
    PMPI_Group_free(&group);
    PMPI_Group_free(&world);
    return out;
}
double type_bytes(MPI_Datatype type, int count) {
    int size = 0;
    PMPI_Type_size(type, &size);
    return static_cast<double>(size) * count;
}
void record_point_to_point(int dest, int count, MPI_Datatype type, MPI_Comm comm) {
    if (active_counter && dest != MPI_PROC_NULL) active_counter->add(world_rank_of(dest, comm), 2, type_bytes(type, count));
}
void record_collective(int count, MPI_Datatype type, MPI_Comm comm) {
    if (!active_counter) return;
    int size = 1;
    PMPI_Comm_size(comm, &size);
    if (size > 1) active_counter->add(-1, size, type_bytes(type, count));
}
}  // namespace

SendCounter::SendCounter() {
    if (active_counter) throw std::logic_error("SendCounter: another counter is active");
    active_counter = this;
}
SendCounter::~SendCounter() { active_counter = nullptr; }

namespace {
// The plan layer a step belongs to: the longest layer name that starts the step's name.
int layer_of_step(const networks::Network& network, const std::string& step) {
    int best = -1;
    std::size_t best_len = 0;
    for (std::size_t i = 1; i < network.layers.size(); ++i) {
        const std::string& n = network.layers[i].name;
        if (n.size() > best_len && step.size() > n.size() && step.compare(0, n.size(), n) == 0 && step[n.size()] == ' ') {
            best = static_cast<int>(i);
            best_len = n.size();
        }
    }
    return best;
}
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Phase and kind of a send from its step: halos' adjoints and redistributions "back" run in the
// backward pass, as do the all-reduces of input gradients and of backward statistics.
Json attribute(const networks::Network& network, const SentMessage& m) {
    using planner::CommKind;
    using planner::Phase;
    const Op op = static_cast<Op>(m.op);
    Phase phase = Phase::forward;
    CommKind kind = CommKind::all_reduce;
    switch (op) {
        case Op::halo:
            kind = CommKind::halo;
            if (contains(m.step, "adjoint")) phase = Phase::backward;
            break;
        case Op::redistribution:
            kind = CommKind::redistribution;
            if (contains(m.step, " back")) phase = Phase::backward;
            break;
        case Op::all_reduce:
            if (contains(m.step, "backward") || contains(m.step, "input gradient")) phase = Phase::backward;
            break;
        case Op::sync:
            phase = Phase::sync;
            break;
        default:  // a send in a compute step is not in any plan: reported under its step
            return Json{{"layer", layer_of_step(network, m.step)}, {"unexpected_step", m.step}, {"bytes", m.bytes}};
    }
    Json j = {{"layer", layer_of_step(network, m.step)},
              {"phase", planner::to_string(phase)},
              {"kind", planner::to_string(kind)},
              {"bytes", m.bytes}};
    if (m.peer >= 0)
        j["peer"] = m.peer;
    else
        j["group_size"] = m.group_size;
    return j;
}

struct KeyRecord {
    std::vector<std::pair<int, double>> planned;                   // (group size, bytes) per call
    std::map<int, std::vector<std::pair<int, double>>> collective;  // per rank: (group size, bytes) per call
    std::map<int, std::map<int, double>> to_peer;                  // per rank: bytes per peer
};
using Key = std::tuple<int, std::string, std::string>;  // layer, phase, kind

std::string key_name(const networks::Network& network, const Key& k) {
    const int l = std::get<0>(k);
    return (l > 0 ? network.layers[static_cast<std::size_t>(l)].name : std::string("(no layer)")) + " " +
           std::get<1>(k) + " " + std::get<2>(k);
}

// The comparison of one key on rank 0 (see layer_ledger): the entry, and mismatches appended.
Json compare_key(const networks::Network& network, const Key& key, KeyRecord& r, int ranks,
                 std::vector<std::string>& mismatches) {
    const std::string name = key_name(network, key);
    Json e = {{"layer", std::get<0>(key)}, {"phase", std::get<1>(key)}, {"kind", std::get<2>(key)}};
    Json planned = Json::array();
    for (auto [g, b] : r.planned) planned.push_back({{"group_size", g}, {"bytes", b}});
    e["planned"] = planned;
    const bool point_to_point = std::get<2>(key) == "halo" || std::get<2>(key) == "redistribution";
    auto close = [](double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(b)); };
    if (!point_to_point) {
        std::sort(r.planned.begin(), r.planned.end());
        double largest_planned = 0, largest_sent = 0;
        for (auto [g, b] : r.planned) largest_planned = std::max(largest_planned, b);
        Json per_rank = Json::array();
        for (int q = 0; q < ranks; ++q) {
            auto& mine = r.collective[q];
            std::sort(mine.begin(), mine.end());
            Json calls = Json::array();
            for (auto [g, b] : mine) {
                calls.push_back({{"group_size", g}, {"bytes", b}});
                largest_sent = std::max(largest_sent, b);
            }
            per_rank.push_back(calls);
            bool same = mine.size() == r.planned.size();
            for (std::size_t i = 0; same && i < mine.size(); ++i) same = mine[i].first == r.planned[i].first;
            if (!same)
                mismatches.push_back(name + ": rank " + std::to_string(q) + " made " + std::to_string(mine.size()) +
                                     " collective call(s) " + calls.dump() + ", the plan has " + planned.dump());
        }
        e["measured"] = per_rank;
        if (!close(largest_sent, largest_planned))
            mismatches.push_back(name + ": the largest rank's buffer is " + std::to_string(largest_sent) +
                                 " B, the plan's " + std::to_string(largest_planned) + " B");
        return e;
    }
    // Point-to-point kinds: the plan's groups bound the peers; halo_exchange reaches two neighbours.
    std::size_t peer_bound = 0;
    double planned_bytes = 0;
    for (auto [g, b] : r.planned) {
        peer_bound += static_cast<std::size_t>(std::get<2>(key) == "halo" ? std::min(2, g - 1) : g - 1);
        planned_bytes += b;
    }
    // A halo's cost is the busiest rank's traffic either way (full-duplex links): its adjoint sends
    // back what the forward exchange received, so forward and backward weigh the same although
    // one-sided halos make a rank's sends and receives differ.
    const bool halo = std::get<2>(key) == "halo";
    std::map<int, double> received;
    for (int q = 0; q < ranks; ++q)
        for (auto [peer, b] : r.to_peer[q]) received[peer] += b;
    Json per_rank = Json::array();
    double largest_sent = 0;
    for (int q = 0; q < ranks; ++q) {
        double total = 0;
        Json peers = Json::object();
        for (auto [peer, b] : r.to_peer[q]) {
            peers[std::to_string(peer)] = b;
            total += b;
        }
        largest_sent = std::max({largest_sent, total, halo ? received[q] : 0.0});
        per_rank.push_back({{"bytes_to_peer", peers}, {"bytes", total}});
        if (halo) per_rank.back()["bytes_received"] = received[q];
        if (r.to_peer[q].size() > peer_bound && !r.planned.empty())
            mismatches.push_back(name + ": rank " + std::to_string(q) + " sends to " +
                                 std::to_string(r.to_peer[q].size()) + " peers, the plan's groups reach " +
                                 std::to_string(peer_bound));
    }
    e["measured"] = per_rank;
    e["largest_rank_bytes"] = largest_sent;
    // What the cost model's formula has the busiest rank send (or, for a halo, send or receive): a
    // halo exchange `bytes` to each neighbour; a redistribution collective of `bytes` over g ranks (g - 1) / g of them.
    double model_bytes = 0;
    for (auto [g, b] : r.planned)
        model_bytes += std::get<2>(key) == "halo" ? std::min(2, g - 1) * b : b * (g - 1) / g;
    e["model_rank_bytes"] = model_bytes;
    e["bytes_agree"] = close(largest_sent, model_bytes);
    if ((largest_sent > 0) != (!r.planned.empty()))
        mismatches.push_back(name + ": " + (largest_sent > 0 ? "data sent, the plan has no call"
                                                             : "the plan has a call, nothing was sent"));
    else if (!close(largest_sent, model_bytes))
        mismatches.push_back(name + ": the busiest rank " + (halo ? "sends or receives " : "sends ") +
                             std::to_string(static_cast<long long>(largest_sent)) +
                             " B, the plan's calls " + std::to_string(static_cast<long long>(model_bytes)) + " B");
    return e;
}
}  // namespace

Json layer_ledger(const networks::Network& network, const std::vector<planner::CommCall>& calls,
                  const std::vector<SentMessage>& sent, MPI_Comm comm) {
    Json mine = Json::array();
    for (const SentMessage& m : sent)
        if (m.op != static_cast<int>(Op::loss)) mine.push_back(attribute(network, m));
    const std::vector<std::string> all = gather_strings(mine.dump(), comm);
    if (comm_rank(comm) != 0) return Json();
    std::map<Key, KeyRecord> records;
    std::vector<std::string> mismatches;
    for (const planner::CommCall& c : calls)
        if (c.group.size > 1 && c.bytes > 0)
            records[{c.layer, planner::to_string(c.phase), planner::to_string(c.kind)}].planned.push_back(
                {c.group.size, c.bytes});
    const int ranks = static_cast<int>(all.size());
    for (int q = 0; q < ranks; ++q)
        for (const Json& j : Json::parse(all[static_cast<std::size_t>(q)])) {
            if (j.contains("unexpected_step")) {
                mismatches.push_back("rank " + std::to_string(q) + " sent " + j["bytes"].dump() + " B in step '" +
                                     j["unexpected_step"].get<std::string>() + "', which the plan has no call for");
                continue;
            }
            KeyRecord& r = records[{j["layer"].get<int>(), j["phase"].get<std::string>(), j["kind"].get<std::string>()}];
            if (j.contains("peer"))
                r.to_peer[q][j["peer"].get<int>()] += j["bytes"].get<double>();
            else
                r.collective[q].push_back({j["group_size"].get<int>(), j["bytes"].get<double>()});
        }
    Json entries = Json::array();
    for (auto& [key, r] : records) entries.push_back(compare_key(network, key, r, ranks, mismatches));
    return Json{{"agrees", mismatches.empty()}, {"entries", entries}, {"mismatches", mismatches}};
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

Json attribute_send(const networks::Network& network, const SentMessage& message) { return attribute(network, message); }

}  // namespace dnnplan::validators

// The MPI profiling interface's entry points (see SendCounter).
extern "C" {
int MPI_Send(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
    dnnplan::validators::record_point_to_point(dest, count, type, comm);
    return PMPI_Send(buf, count, type, dest, tag, comm);
}
int MPI_Isend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm, MPI_Request* request) {
    dnnplan::validators::record_point_to_point(dest, count, type, comm);
    return PMPI_Isend(buf, count, type, dest, tag, comm, request);
}
int MPI_Alltoallv(const void* sendbuf, const int sendcounts[], const int sdispls[], MPI_Datatype sendtype,
                  void* recvbuf, const int recvcounts[], const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm) {
    int me = 0, size = 1;
    PMPI_Comm_rank(comm, &me);
    PMPI_Comm_size(comm, &size);
    for (int r = 0; r < size; ++r)
        if (r != me && sendcounts[r] > 0) dnnplan::validators::record_point_to_point(r, sendcounts[r], sendtype, comm);
    return PMPI_Alltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts, rdispls, recvtype, comm);
}
int MPI_Allreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
    dnnplan::validators::record_collective(count, type, comm);
    return PMPI_Allreduce(sendbuf, recvbuf, count, type, op, comm);
}
int MPI_Iallreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request* request) {
    dnnplan::validators::record_collective(count, type, comm);
    return PMPI_Iallreduce(sendbuf, recvbuf, count, type, op, comm, request);
}
}
