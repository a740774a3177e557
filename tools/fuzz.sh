#!/usr/bin/env bash
# Runs the libFuzzer harnesses of tests/fuzz: tools/fuzz.sh TARGET [SECONDS], TARGET one of network,
# cluster, plan, onnx, or all (each in turn, SECONDS apiece; default $FUZZ_SECONDS, else 180).
# Builds build-fuzz/ with clang (ASan + UBSan), seeds each corpus with the committed examples,
# keeps any crashing, leaking or slow input in build-fuzz/findings-TARGET/ and exits non-zero when
# a harness found something. FUZZ_JOBS sets the build's parallelism (default: nproc).
set -uo pipefail
usage="usage: tools/fuzz.sh network|cluster|plan|onnx|all [SECONDS]"
target=${1:?$usage}
seconds=${2:-${FUZZ_SECONDS:-180}}
case "$seconds" in '' | *[!0-9]*) echo "$usage (SECONDS a whole number, got '$seconds')" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"
case "$target" in
    all) targets=(network cluster plan onnx) ;;
    network | cluster | plan | onnx) targets=("$target") ;;
    *) echo "unknown target $target; $usage" >&2; exit 2 ;;
esac

CXX=clang++ CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDNNPLAN_FUZZ=ON \
    -DBUILD_TESTING=OFF >/dev/null || exit 2
cmake --build "$build" -j"${FUZZ_JOBS:-$(nproc)}" --target "${targets[@]/#/fuzz_}" || exit 2

failed=()
for t in "${targets[@]}"; do
    corpus="$build/corpus-$t"
    findings="$build/findings-$t"
    mkdir -p "$corpus" "$findings"
    case "$t" in
        network) seeds=("$root"/networks/*.json "$root"/tests/data/bad/net_*.json) ;;
        cluster) seeds=("$root"/clusters/*.json "$root"/tests/data/bad/cluster_*.json) ;;
        plan) seeds=("$root"/tests/data/planner/*.json "$root"/tests/data/bad/plan_*.json) ;;
        onnx) seeds=("$root"/tests/data/onnx/*.onnx "$root"/tests/data/onnx/bad/* "$root"/tests/data/hardening/*.onnx) ;;
    esac
    cp -n "${seeds[@]}" "$corpus"/ 2>/dev/null || true
    echo "== fuzz_$t: $seconds s" >&2
    # -rss_limit_mb bounds memory, -timeout flags a hang of one input; a leak fails the run (ASan).
    if ! "$build/tests/fuzz/fuzz_$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -max_len=65536 -artifact_prefix="$findings/" -print_final_stats=1; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (inputs in $build/findings-*/)" >&2
    exit 1
fi
echo "fuzz.sh: no findings in ${targets[*]} ($seconds s each)" >&2
