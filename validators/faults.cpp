#include "validators/faults.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace dnnplan::validators {

namespace {
constexpr std::size_t kStatusBytes = 256;
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
std::string status_path(const std::string& dir, int rank) { return dir + "/rank" + std::to_string(rank) + ".step"; }
}  // namespace

StepMonitor::StepMonitor(int rank, double timeout_s, const std::string& status_dir, const std::string& inject)
    : rank_(rank), timeout_s_(timeout_s), step_start_(now_s()) {
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
        std::size_t n = std::min(step.size(), kStatusBytes - 1);
        std::memcpy(status_, step.data(), n);
        status_[n] = '\0';
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
        if (idle > (waits ? 1.5 : 1.0) * timeout_s_) {
            std::fprintf(stderr,
                         waits
                             ? "dnnplan-validate: rank %d waited %.1f s for other ranks in step '%s' (timeout %.1f s); "
                               "ending the run\n"
                             : "dnnplan-validate: rank %d made no progress for %.1f s in step '%s' (timeout %.1f s); "
                               "ending the run\n",
                         rank_, idle, step.c_str(), timeout_s_);
            std::fflush(stderr);
            ::_exit(3);
        }
    }
}

std::string StepMonitor::recorded_step(const std::string& status_dir, int rank) {
    std::ifstream in(status_path(status_dir, rank), std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s.substr(0, s.find('\0'));
}

}  // namespace dnnplan::validators
