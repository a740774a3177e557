// Kendall's tau and the validation document on hand-made inputs (no MPI communication).
#include <cmath>
#include <cstdio>

#include "validators/validate.hpp"

using namespace dnnplan::validators;

int main() {
    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        if (!ok) {
            std::printf("FAILED: %s\n", what);
            ++failures;
        }
    };
    // Pairs of [1,2,3] vs [1,3,2]: (1,2) and (1,3) concordant, (2,3) discordant: (2 - 1) / 3.
    check(std::abs(kendall_tau({1, 2, 3}, {1, 3, 2}) - 1.0 / 3) < 1e-15, "tau of one swap in three");
    check(kendall_tau({1, 2, 3, 4}, {4, 3, 2, 1}) == -1.0, "tau of a reversed ranking");
    check(kendall_tau({1, 2, 3, 4}, {10, 20, 30, 40}) == 1.0, "tau of the same ranking");
    // A tie in one ranking counts as neither: [1,1,2] vs [1,2,3]: pairs (1,2) tie, (1,3) and (2,3)
    // concordant: 2 / 3.
    check(std::abs(kendall_tau({1, 1, 2}, {1, 2, 3}) - 2.0 / 3) < 1e-15, "tau with a tie");
    std::printf("%s\n", failures ? "report tests FAILED" : "report tests ok");
    return failures ? 1 : 0;
}
