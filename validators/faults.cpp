#include "validators/faults.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace dnnplan::validators {

namespace {
// The status file: the step's name (NUL-terminated) in the first kNameBytes, then two doubles at
// fixed 8-byte-aligned offsets: when the step was entered and the watchdog's last heartbeat. The
// times are steady_clock (CLOCK_MONOTONIC on Linux), which every process of a machine shares.
constexpr std::size_t kStatusBytes = 256, kNameBytes = 192, kEnteredAt = 192, kHeartbeatAt = 200;
// A heartbeat older than this means the whole process is frozen (SIGSTOP, a debugger, swapped
// out): its watchdog thread, which beats every 50 ms, has stopped too.
constexpr double kStaleHeartbeatS = 2.0;
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
std::string status_path(const std::string& dir, int rank) { return dir + "/rank" + std::to_string(rank) + ".step"; }
void store_time(char* status, std::size_t offset, double t) { std::memcpy(status + offset, &t, sizeof t); }

struct RankStatus {
    int rank = -1;
    std::string step;
    double entered = 0, heartbeat = 0;
};
// Every rank's status in `dir` (the files rankN.step).
std::vector<RankStatus> read_statuses(const std::string& dir) {
    std::vector<RankStatus> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        int rank = -1;
        char tail[8] = {};
        if (std::sscanf(name.c_str(), "rank%d.%7s", &rank, tail) != 2 || std::strcmp(tail, "step") != 0) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (bytes.size() < kStatusBytes) continue;
        RankStatus s;
        s.rank = rank;
        s.step = bytes.substr(0, std::min(bytes.find('\0'), kNameBytes));
        std::memcpy(&s.entered, bytes.data() + kEnteredAt, sizeof s.entered);
        std::memcpy(&s.heartbeat, bytes.data() + kHeartbeatAt, sizeof s.heartbeat);
        out.push_back(s);
    }
    return out;
}
}  // namespace

StepMonitor::StepMonitor(int rank, double timeout_s, const std::string& status_dir, const std::string& inject)
    : rank_(rank), timeout_s_(timeout_s), status_dir_(status_dir), step_start_(now_s()) {
    if (!inject.empty()) {
        std::size_t a = inject.find(':'), b = inject.find(':', a == std::string::npos ? a : a + 1);
        if (a == std::string::npos || b == std::string::npos)
            throw std::invalid_argument("--inject-fault: expected kill:RANK:STEP or hang:RANK:STEP, got '" + inject +
                                        "'");
        inject_kind_ = inject.substr(0, a);
        inject_rank_ = std::stoi(inject.substr(a + 1, b - a - 1));
        inject_step_ = inject.substr(b + 1);
    }
    if (!status_dir.empty()) {
        // A memory-mapped file: recording a step is a memcpy, and the text survives the process.
        int fd = ::open(status_path(status_dir, rank).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0 && ::ftruncate(fd, kStatusBytes) == 0) {
            void* p = ::mmap(nullptr, kStatusBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p != MAP_FAILED) status_ = static_cast<char*>(p);
        }
        if (status_) {
            store_time(status_, kEnteredAt, step_start_);
            store_time(status_, kHeartbeatAt, step_start_);
            std::memcpy(status_, step_.c_str(), step_.size() + 1);
        }
        if (fd >= 0) ::close(fd);
    }
    if (timeout_s_ > 0) watchdog_ = std::thread([this] { watch(); });
}

StepMonitor::~StepMonitor() {
    finish();
    if (status_) ::munmap(status_, kStatusBytes);
}

void StepMonitor::finish() {
    stop_ = true;
    if (watchdog_.joinable()) watchdog_.join();
}

void StepMonitor::enter(const std::string& step, bool waits_on_others) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        step_ = step;
        step_start_ = now_s();
        waits_ = waits_on_others;
    }
    if (status_) {
        std::size_t n = std::min(step.size(), kNameBytes - 1);
        std::memcpy(status_, step.data(), n);
        status_[n] = '\0';
        store_time(status_, kEnteredAt, now_s());
    }
    if (rank_ == inject_rank_ && step.find(inject_step_) != std::string::npos) {
        if (inject_kind_ == "kill") ::raise(SIGKILL);
        if (inject_kind_ == "hang") {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                waits_ = false;  // stuck in this rank's own code, before the step's communication
            }
            for (;;) ::pause();
        }
    }
}

void StepMonitor::watch() {
    while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::string step;
        double idle = 0;
        bool waits = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            step = step_;
            idle = now_s() - step_start_;
            waits = waits_;
        }
        if (status_) store_time(status_, kHeartbeatAt, now_s());
        if (idle > (waits ? 1.5 : 1.0) * timeout_s_) {
            report_timeout(step, idle, waits);
            std::fflush(stderr);
            ::_exit(3);
        }
    }
}

// This rank's step took too long. Whether it waits on others or not (its own step may hold a
// collective, and the start-up does), the rank to blame is one whose process is frozen: its
// heartbeat stopped. Without one, this rank reports its own wait or hang.
void StepMonitor::report_timeout(const std::string& step, double idle, bool waits) const {
    const double now = now_s();
    const RankStatus* culprit = nullptr;
    std::vector<RankStatus> statuses = status_dir_.empty() ? std::vector<RankStatus>{} : read_statuses(status_dir_);
    for (const RankStatus& s : statuses) {
        if (s.rank == rank_ || now - s.heartbeat <= kStaleHeartbeatS) continue;
        if (!culprit || s.heartbeat < culprit->heartbeat) culprit = &s;
    }
    if (culprit) {
        std::fprintf(stderr,
                     "dnnplan-validate: rank %d stopped responding (no heartbeat for %.1f s) in step '%s'; rank %d "
                     "waited %.1f s for it in step '%s' (timeout %.1f s); ending the run\n",
                     culprit->rank, now - culprit->heartbeat, culprit->step.c_str(), rank_, idle, step.c_str(),
                     timeout_s_);
        return;
    }
    std::fprintf(stderr,
                 waits ? "dnnplan-validate: rank %d waited %.1f s for other ranks in step '%s' (timeout %.1f s); "
                         "ending the run\n"
                       : "dnnplan-validate: rank %d made no progress for %.1f s in step '%s' (timeout %.1f s); "
                         "ending the run\n",
                 rank_, idle, step.c_str(), timeout_s_);
}

std::string StepMonitor::recorded_step(const std::string& status_dir, int rank) {
    std::ifstream in(status_path(status_dir, rank), std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s.substr(0, std::min(s.find('\0'), kNameBytes));
}

}  // namespace dnnplan::validators
