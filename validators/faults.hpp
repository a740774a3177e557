// Fault handling for the MPI worker: every rank records the step it is in (in memory and in a
// small memory-mapped status file that outlives the process), a watchdog thread ends the whole run
// when a step makes no progress within the timeout, naming the rank and the step, and a fault can
// be injected for tests (a rank killed or hung at a named step). The status file also carries when
// the step began and a heartbeat, so a rank that waited too long names the rank that is frozen
// (stopped process) rather than itself.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace dnnplan::validators {

class StepMonitor {
public:
    // `status_dir` "" keeps no file; `inject` is "" or "kill:RANK:STEP" / "hang:RANK:STEP" (STEP: a
    // substring of the step name).
    StepMonitor(int rank, double timeout_s, const std::string& status_dir, const std::string& inject);
    ~StepMonitor();
    StepMonitor(const StepMonitor&) = delete;
    StepMonitor& operator=(const StepMonitor&) = delete;

    // `waits_on_others`: the step communicates, so a rank stuck in it may be waiting for another
    // one; it gets half the timeout again, so the rank actually stuck reports first.
    void enter(const std::string& step, bool waits_on_others);
    void finish();  // the run is over: the watchdog stops

    // The step recorded in `status_dir` for `rank` ("" when there is none).
    static std::string recorded_step(const std::string& status_dir, int rank);

private:
    void watch();
    void report_timeout(const std::string& step, double idle, bool waits) const;
    int rank_;
    double timeout_s_;
    std::string status_dir_;
    std::string inject_kind_, inject_step_;
    int inject_rank_ = -1;
    std::mutex mutex_;
    std::string step_ = "start-up";
    double step_start_ = 0;
    bool waits_ = false;
    std::atomic<bool> stop_{false};
    char* status_ = nullptr;  // mmap'ed status file
    std::thread watchdog_;
};

}  // namespace dnnplan::validators
