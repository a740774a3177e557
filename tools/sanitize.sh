#!/usr/bin/env bash
# The whole test suite again, with every target built with AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/). Part of the README's test command and of .ci/run.
# Leaks inside Open MPI and SimGrid's own start-up are suppressed (tools/lsan.supp); ours are not.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDNNPLAN_SANITIZE=ON >/dev/null
cmake --build "$root/build-asan" -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Everything but the MPI tests with leak detection; then the MPI tests without it: Open MPI's
# dlopen'ed components leave allocations that LSan sees after they are unloaded ("<unknown
# module>"), which no suppression by library name can match. ASan and UBSan still check them.
status=0
ctest --test-dir "$root/build-asan" --output-on-failure -LE mpi "$@" || status=1
ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}" \
    ctest --test-dir "$root/build-asan" --output-on-failure -L mpi "$@" || status=1
exit $status
