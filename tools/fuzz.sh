#!/usr/bin/env bash
# Runs one libFuzzer harness: tools/fuzz.sh TARGET SECONDS, TARGET one of network, cluster, plan
# (and onnx once the ONNX loader has a harness). Builds build-fuzz/ with clang, seeds the corpus
# with the committed examples, and keeps any crashing input in build-fuzz/findings-TARGET/.
set -euo pipefail
target=${1:?usage: tools/fuzz.sh TARGET SECONDS}
seconds=${2:?usage: tools/fuzz.sh TARGET SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"

CXX=clang++ CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDNNPLAN_FUZZ=ON \
    -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "fuzz_$target"

corpus="$build/corpus-$target"
findings="$build/findings-$target"
mkdir -p "$corpus" "$findings"
case "$target" in
    network) seeds=("$root"/networks/*.json "$root"/tests/data/bad/net_*.json) ;;
    cluster) seeds=("$root"/clusters/*.json "$root"/tests/data/bad/cluster_*.json) ;;
    plan) seeds=("$root"/tests/data/planner/*.json "$root"/tests/data/bad/plan_*.json) ;;
    onnx) seeds=("$root"/tests/data/onnx/*.onnx "$root"/tests/data/onnx/bad/*) ;;
    *) echo "unknown target $target (network, cluster, plan, onnx)" >&2; exit 2 ;;
esac
cp -n "${seeds[@]}" "$corpus"/ 2>/dev/null || true

# -rss_limit_mb bounds memory, -timeout flags a hang of one input; a leak fails the run (ASan).
"$build/tests/fuzz/fuzz_$target" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -max_len=65536 -artifact_prefix="$findings/" -print_final_stats=1
