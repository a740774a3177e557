// Sweeps: lists of values on the command line, and a runner that evaluates N numbered
// configurations either in this process or, when started by mpirun, split over the MPI ranks.
// The gathered result is in configuration order whatever the number of ranks, so a sweep under
// `mpirun -np K` writes the same file as the serial one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dnnplan::sweep {

// "vgg16,resnet50" -> {"vgg16", "resnet50"}; empty items are an InputError naming `option`.
std::vector<std::string> split_list(const std::string& text, const std::string& option);
// "8:4096" -> 8, 16, ..., 4096 (doubling from the first; the last is included even when it is
// not a power-of-two multiple); "8,64,512" and mixes ("1,8:64") too; sorted, duplicates removed.
std::vector<std::int64_t> parse_procs(const std::string& text, const std::string& option = "--procs");

// True when this process was started by Open MPI's mpirun (OMPI_COMM_WORLD_SIZE is set): only
// then is MPI initialised, so a plain `dnnplan sweep` never touches MPI.
bool under_mpirun();

struct RunOptions;

// MPI for the lifetime of the object when under mpirun (MPI_Init ... MPI_Finalize); a single
// rank 0 of 1 otherwise. Under mpirun a watchdog covers the start-up (MPI_Init, loading the
// inputs, the check that every rank has the same ones: until run() has checked them) with the
// options' timeout_s: a rank frozen or dead in start-up would otherwise hold every other rank in
// MPI_Init for ever. When it fires, the ranks found stopped are named and the job ends (exit 3).
class Session {
public:
    Session();
    explicit Session(const RunOptions& options);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    int rank() const { return rank_; }
    int size() const { return size_; }
    bool distributed() const { return mpi_; }
    // The start-up is over: the watchdog stops (run() calls it once the inputs are checked).
    void started() const;

private:
    bool mpi_ = false;
    int rank_ = 0, size_ = 1;
    struct Watchdog;
    std::unique_ptr<Watchdog> watchdog_;
};

// The ranks of an Open MPI job on this machine whose processes are stopped (SIGSTOP, a debugger):
// processes whose environment has PMIX_NAMESPACE = `job` (any job when "") and, when `ancestor`
// is not 0, that descend from that process (mpirun). From Linux's /proc; empty elsewhere.
std::vector<int> stopped_ranks(const std::string& job, long ancestor = 0);
// "rank 3" or "ranks 1, 3" (for messages).
std::string rank_list(const std::vector<int>& ranks);

// Called after each configuration this rank finishes: (done, total) of this rank's share.
using ProgressFn = std::function<void(std::size_t done, std::size_t total)>;

// Evaluates configurations 0..count-1 with `evaluate` (configuration i on rank i mod size) and
// returns every result in index order on rank 0; other ranks get an empty vector. `evaluate`
// must not throw across ranks: an exception aborts the whole MPI job (one message, exit 2)
// rather than leave the other ranks waiting.
//
// Under mpirun, rank 0 waits at most `options.timeout_s` for every other rank's results; a rank
// that has not reported by then is named ("rank 2 sent no results within 600 s") and the job is
// aborted with exit status 3. A rank that dies is reported by mpirun itself, naming the rank.
struct RunOptions {
    double timeout_s = 600;
    // Testing only: "kill:RANK" or "hang:RANK" makes that rank die (SIGKILL) or hang before its
    // first configuration, "freeze:RANK" stops that rank's process (SIGSTOP) before MPI_Init, to
    // exercise the fault handling.
    std::string inject_fault;
    // The inputs this rank was given; under mpirun every rank must have rank 0's, else the ranks
    // that differ are named and the job ends (exit 2) before any configuration runs.
    std::string fingerprint;
};
std::vector<std::string> run(const Session& session, std::size_t count,
                             const std::function<std::string(std::size_t)>& evaluate, const ProgressFn& progress = {},
                             const RunOptions& options = {});

// A progress bar with the time left, on stderr when it is a terminal; silent otherwise.
class ProgressBar {
public:
    explicit ProgressBar(bool enabled);
    void operator()(std::size_t done, std::size_t total);
    void finish();

private:
    bool enabled_;
    double start_;
    bool drawn_ = false;
};
bool stderr_is_terminal();

}  // namespace dnnplan::sweep
