#include "validators/speed_reference.hpp"

#include "validators/kernels.hpp"

namespace dnnplan::validators {

SpeedReference::SpeedReference() : a_(kSize * kSize), b_(kSize * kSize), c_(kSize * kSize) {
    // Fixed operands: the same work in every run (values away from 0 and denormals).
    for (int k = 0; k < kSize * kSize; ++k) {
        a_[k] = 1.0f + float(k % 7) / 8.0f;
        b_[k] = 0.5f - float(k % 5) / 16.0f;
    }
}

double SpeedReference::time_once() {
    const double start = MPI_Wtime();
    for (int r = 0; r < kRepeats; ++r)
        gemm<float>(false, false, kSize, kSize, kSize, 1.0f, a_.data(), kSize, b_.data(), kSize, 0.0f, c_.data(),
                    kSize);
    return MPI_Wtime() - start;
}

double SpeedReference::time_ranks_mean(MPI_Comm comm) {
    double seconds = time_once(), sum = 0;
    int ranks = 1;
    MPI_Comm_size(comm, &ranks);
    MPI_Allreduce(&seconds, &sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    return sum / ranks;
}

}  // namespace dnnplan::validators
