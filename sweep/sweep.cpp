#include "sweep.hpp"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "common/diagnostics.hpp"

namespace dnnplan::sweep {

std::vector<std::string> split_list(const std::string& text, const std::string& option) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (item.empty()) throw InputError("dnnplan", "", option + ": " + "empty item in the list \"" + text + "\"");
        out.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

namespace {
std::int64_t parse_count(const std::string& text, const std::string& option) {
    std::int64_t value = 0;
    if (text.empty() || text.size() > 8 || text.find_first_not_of("0123456789") != std::string::npos ||
        (value = std::stoll(text)) < 1 || value > (1 << 22))
        throw InputError("dnnplan", "", option + ": " + "\"" + text + "\" is not a process count from 1 to 4194304");
    return value;
}
}  // namespace

std::vector<std::int64_t> parse_procs(const std::string& text, const std::string& option) {
    std::vector<std::int64_t> out;
    for (const auto& item : split_list(text, option)) {
        std::size_t colon = item.find(':');
        if (colon == std::string::npos) {
            out.push_back(parse_count(item, option));
            continue;
        }
        std::int64_t lo = parse_count(item.substr(0, colon), option), hi = parse_count(item.substr(colon + 1), option);
        if (hi < lo) throw InputError("dnnplan", "", option + ": " + "range \"" + item + "\" ends below its start");
        for (std::int64_t p = lo; p < hi; p *= 2) out.push_back(p);
        out.push_back(hi);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

bool under_mpirun() {
    const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
    return size && *size;
}

namespace {
// /proc/PID/environ's value of `name` ("" when absent or unreadable).
std::string environ_value(const std::string& pid, const std::string& name) {
    std::ifstream in("/proc/" + pid + "/environ", std::ios::binary);
    const std::string key = name + "=";
    for (std::string entry; std::getline(in, entry, '\0');)
        if (entry.compare(0, key.size(), key) == 0) return entry.substr(key.size());
    return "";
}
// /proc/PID/stat's state letter and parent pid (the command name, in parentheses, may hold spaces).
bool read_stat(const std::string& pid, char& state, long& ppid) {
    std::ifstream in("/proc/" + pid + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return close != std::string::npos && std::sscanf(text.c_str() + close + 1, " %c %ld", &state, &ppid) == 2;
}
int rank_from_environment() {
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    return rank && *rank ? std::atoi(rank) : 0;
}
}  // namespace

std::vector<int> stopped_ranks(const std::string& job, long ancestor) {
    std::map<long, long> parent;
    std::map<long, char> state;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        char s = 0;
        long ppid = 0;
        if (read_stat(pid, s, ppid)) {
            parent[std::stol(pid)] = ppid;
            state[std::stol(pid)] = s;
        }
    }
    auto descends = [&](long pid) {
        for (int depth = 0; depth < 64 && pid > 1; ++depth) {
            auto it = parent.find(pid);
            if (it == parent.end()) return false;
            if (it->second == ancestor) return true;
            pid = it->second;
        }
        return false;
    };
    std::vector<int> ranks;
    for (const auto& [pid, s] : state) {
        if (s != 'T' && s != 't') continue;  // stopped by a signal, or by a debugger
        if (ancestor != 0 && !descends(pid)) continue;
        const std::string id = std::to_string(pid), rank = environ_value(id, "OMPI_COMM_WORLD_RANK");
        if (rank.empty() || rank.find_first_not_of("0123456789") != std::string::npos || rank.size() > 7) continue;
        if (!job.empty() && environ_value(id, "PMIX_NAMESPACE") != job) continue;
        ranks.push_back(std::stoi(rank));
    }
    std::sort(ranks.begin(), ranks.end());
    ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
    return ranks;
}

std::string rank_list(const std::vector<int>& ranks) {
    std::string out = ranks.size() == 1 ? "rank " : "ranks ";
    for (std::size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
    return out;
}

// Ends this rank (exit 3) when the start-up has not finished within the timeout. One rank reports:
// the lowest one not found stopped; the others wait a second first (mpirun usually ends them then).
struct Session::Watchdog {
    std::mutex mutex;
    std::condition_variable wake;
    bool done = false;
    std::thread thread;

    Watchdog(double timeout_s, int rank) {
        thread = std::thread([this, timeout_s, rank] {
            std::unique_lock<std::mutex> lock(mutex);
            if (wake.wait_for(lock, std::chrono::duration<double>(timeout_s), [this] { return done; })) return;
            const std::vector<int> stopped = stopped_ranks(std::getenv("PMIX_NAMESPACE") ? std::getenv("PMIX_NAMESPACE") : "");
            int reporter = 0;
            while (std::find(stopped.begin(), stopped.end(), reporter) != stopped.end()) ++reporter;
            if (rank != reporter) std::this_thread::sleep_for(std::chrono::seconds(1));
            std::string message = "dnnplan: sweep: rank " + std::to_string(rank) + ": the MPI start-up (MPI_Init, " +
                                  "loading and checking the inputs) did not finish within " + std::to_string(timeout_s);
            message.erase(message.find_last_not_of('0') + 1);
            if (message.back() == '.') message.pop_back();
            message += " s; " + (stopped.empty() ? std::string("a rank is dead, stopped or too slow")
                                                 : rank_list(stopped) + (stopped.size() == 1 ? " is" : " are") +
                                                       " stopped (SIGSTOP or a debugger)") +
                       " (--timeout sets the limit); aborting\n";
            std::fputs(message.c_str(), stderr);
            std::fflush(stderr);
            ::_exit(3);
        });
    }
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            done = true;
        }
        wake.notify_all();
        if (thread.joinable()) thread.join();
    }
};

Session::Session() : Session(RunOptions{}) {}

Session::Session(const RunOptions& options) {
    if (!under_mpirun()) return;
    const int rank = rank_from_environment();
    if (options.timeout_s > 0) watchdog_ = std::make_unique<Watchdog>(options.timeout_s, rank);
    if (options.inject_fault == "freeze:" + std::to_string(rank)) ::raise(SIGSTOP);
    MPI_Init(nullptr, nullptr);
    mpi_ = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

void Session::started() const {
    if (!watchdog_) return;
    {
        std::lock_guard<std::mutex> lock(watchdog_->mutex);
        watchdog_->done = true;
    }
    watchdog_->wake.notify_all();
}

Session::~Session() {
    if (mpi_) MPI_Finalize();
}

namespace {
// "kill:R" or "hang:R" on rank R: die or hang before the first configuration (tests only).
void inject_fault(const std::string& fault, std::size_t rank) {
    if (fault.empty()) return;
    const auto colon = fault.find(':');
    const std::string kind = fault.substr(0, colon);
    if (kind == "freeze") return;  // done before MPI_Init (Session)
    if (colon == std::string::npos || (kind != "kill" && kind != "hang"))
        throw std::invalid_argument("--inject-fault: expected kill:RANK, hang:RANK or freeze:RANK, got '" + fault + "'");
    if (std::stoul(fault.substr(colon + 1)) != rank) return;
    if (kind == "kill") ::raise(SIGKILL);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

// Every rank compares a digest of its inputs with rank 0's; rank 0 names the ranks that differ.
void check_same_inputs(const std::string& fingerprint, std::size_t rank, std::size_t size) {
    unsigned long long digest = 1469598103934665603ULL;
    for (unsigned char c : fingerprint) digest = (digest ^ c) * 1099511628211ULL;
    std::vector<unsigned long long> all(size);
    MPI_Allgather(&digest, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    std::string differing;
    for (std::size_t r = 1; r < size; ++r)
        if (all[r] != all[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
    if (differing.empty()) return;
    if (rank == 0)
        std::cerr << "dnnplan: sweep: " << (differing.find(',') == std::string::npos ? "rank " : "ranks ") << differing
                  << (differing.find(',') == std::string::npos ? " was" : " were")
                  << " given different inputs than rank 0 (every rank must run the same command)\n";
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    std::exit(2);
}

// Rank 0 receives every other rank's header {result count, bytes} by polling, so that a rank that
// never reports is named after the timeout instead of blocking the sweep for ever.
void gather_headers(std::size_t size, double timeout_s, std::vector<int>& counts, std::vector<int>& bytes) {
    std::vector<std::array<int, 2>> headers(size);
    std::vector<MPI_Request> requests(size, MPI_REQUEST_NULL);
    for (std::size_t r = 1; r < size; ++r)
        MPI_Irecv(headers[r].data(), 2, MPI_INT, static_cast<int>(r), 17, MPI_COMM_WORLD, &requests[r]);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
        int done = 0;
        MPI_Testall(static_cast<int>(size), requests.data(), &done, MPI_STATUSES_IGNORE);
        if (done) break;
        if (std::chrono::steady_clock::now() > deadline) {
            std::string missing;
            for (std::size_t r = 1; r < size; ++r) {
                int arrived = 0;
                if (requests[r] != MPI_REQUEST_NULL) MPI_Test(&requests[r], &arrived, MPI_STATUS_IGNORE);
                if (requests[r] != MPI_REQUEST_NULL) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
            }
            std::cerr << "dnnplan: sweep: rank " << missing << " sent no results within " << timeout_s
                      << " s (hung or too slow; --timeout sets the limit); aborting\n";
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (std::size_t r = 1; r < size; ++r) {
        counts[r] = headers[r][0];
        bytes[r] = headers[r][1];
    }
}
}  // namespace

std::vector<std::string> run(const Session& session, std::size_t count,
                             const std::function<std::string(std::size_t)>& evaluate, const ProgressFn& progress,
                             const RunOptions& options) {
    const std::size_t size = static_cast<std::size_t>(session.size()), rank = static_cast<std::size_t>(session.rank());
    if (session.distributed()) {
        check_same_inputs(options.fingerprint, rank, size);
        session.started();
        inject_fault(options.inject_fault, rank);
    }
    // Round robin: neighbouring configurations (e.g. growing P) have similar costs, so every rank
    // gets a similar mix.
    std::size_t mine = count > rank ? (count - rank + size - 1) / size : 0;
    std::vector<std::string> local;
    local.reserve(mine);
    for (std::size_t i = rank; i < count; i += size) {
        try {
            local.push_back(evaluate(i));
        } catch (const std::exception& e) {
            if (!session.distributed()) throw;
            std::cerr << "dnnplan: rank " << rank << ": configuration " << i << ": " << e.what() << "\n";
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        if (progress) progress(local.size(), mine);
    }
    if (!session.distributed()) return local;

    // Gather: every rank sends the lengths of its results and their concatenation to rank 0.
    std::vector<long long> lengths;
    std::string packed;
    for (const auto& s : local) {
        lengths.push_back(static_cast<long long>(s.size()));
        packed += s;
    }
    int n_lengths = static_cast<int>(lengths.size());
    long long n_bytes = static_cast<long long>(packed.size());
    if (n_bytes > (1LL << 30)) {
        std::cerr << "dnnplan: rank " << rank << ": more than 1 GiB of results\n";
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int bytes = static_cast<int>(n_bytes);
    std::vector<int> all_counts(rank == 0 ? size : 0), all_bytes(rank == 0 ? size : 0);
    if (rank == 0) {
        all_counts[0] = n_lengths;
        all_bytes[0] = bytes;
        gather_headers(size, options.timeout_s, all_counts, all_bytes);
    } else {
        const std::array<int, 2> header{n_lengths, bytes};
        MPI_Send(header.data(), 2, MPI_INT, 0, 17, MPI_COMM_WORLD);
    }
    std::vector<int> count_offsets(size, 0), byte_offsets(size, 0);
    std::vector<long long> all_lengths;
    std::string all_packed;
    if (rank == 0) {
        long long total_bytes = 0;
        int total_counts = 0;
        for (std::size_t r = 0; r < size; ++r) {
            count_offsets[r] = total_counts;
            byte_offsets[r] = static_cast<int>(total_bytes);
            total_counts += all_counts[r];
            total_bytes += all_bytes[r];
        }
        if (total_bytes > (1LL << 30)) {
            std::cerr << "dnnplan: more than 1 GiB of results to gather\n";
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        all_lengths.resize(static_cast<std::size_t>(total_counts));
        all_packed.resize(static_cast<std::size_t>(total_bytes));
    }
    MPI_Gatherv(lengths.data(), n_lengths, MPI_LONG_LONG, all_lengths.data(), all_counts.data(), count_offsets.data(),
                MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    MPI_Gatherv(packed.data(), bytes, MPI_CHAR, all_packed.data(), all_bytes.data(), byte_offsets.data(), MPI_CHAR, 0,
                MPI_COMM_WORLD);
    if (rank != 0) return {};

    // Configuration i is rank (i mod size)'s (i div size)-th result.
    std::vector<std::string> out(count);
    for (std::size_t r = 0; r < size; ++r) {
        std::size_t offset = static_cast<std::size_t>(byte_offsets[r]);
        for (int k = 0; k < all_counts[r]; ++k) {
            std::size_t length = static_cast<std::size_t>(all_lengths[static_cast<std::size_t>(count_offsets[r] + k)]);
            out[r + static_cast<std::size_t>(k) * size] = all_packed.substr(offset, length);
            offset += length;
        }
    }
    return out;
}

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(bool enabled) : enabled_(enabled), start_(now_s()) {}

void ProgressBar::operator()(std::size_t done, std::size_t total) {
    if (!enabled_ || total == 0) return;
    double elapsed = now_s() - start_;
    double left = done > 0 ? elapsed * static_cast<double>(total - done) / static_cast<double>(done) : 0;
    const int width = 30;
    int filled = static_cast<int>(static_cast<double>(width) * static_cast<double>(done) / static_cast<double>(total));
    char line[160];
    std::snprintf(line, sizeof line, "\r[%-*s] %zu/%zu configurations, %.0f s elapsed, about %.0f s left ", width,
                  std::string(static_cast<std::size_t>(filled), '#').c_str(), done, total, elapsed, left);
    std::cerr << line << std::flush;
    drawn_ = true;
}

void ProgressBar::finish() {
    if (drawn_) std::cerr << "\r" << std::string(100, ' ') << "\r" << std::flush;
    drawn_ = false;
}

}  // namespace dnnplan::sweep
