// A fixed compute kernel timed beside the measurements it stands for, so that a calibration and a
// validation made minutes apart can be set against the compute speed each ran at.
//
// Why: each core of this VM switches between compute speeds up to 1.5x apart for seconds to
// minutes at a time (validators/README.md, "Accuracy"), and a calibration made a minute before a
// validation predicted it with a per-round error of 17-21% while the two runs' deviations
// correlated at r = 0.31. The kernel is a cache-resident single-precision GEMM, timed alone on the
// calling rank: over 80 s on each core its per-second medians moved with a 256 x 256 GEMM and a
// scalar exp loop (correlation 0.90-0.97), not with an 8 MiB memcpy (7 Dec 2026), so it stands for
// the validator's compute kernels, not for its copies or messages.
#pragma once

#include <mpi.h>

#include <vector>

namespace dnnplan::validators {

class SpeedReference {
public:
    SpeedReference();
    // Seconds for one run of the kernel on this rank (about 70 us on this machine): kRepeats
    // products of two kSize x kSize matrices. Costs nothing in the timed parts of a run: callers
    // run it between them.
    double time_once();
    // time_once() on every rank of `comm` at once; the ranks' mean. Collective.
    double time_ranks_mean(MPI_Comm comm);

    static constexpr int kSize = 64;
    static constexpr int kRepeats = 20;

private:
    std::vector<float> a_, b_, c_;
};

}  // namespace dnnplan::validators
