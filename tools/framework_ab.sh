#!/usr/bin/env bash
# The framework term's effect on one accuracy run, on the same measurements: every round's plans
# predicted again on that round's calibration without device.cpu_kernels.framework (validate with
# one iteration and no check: a prediction does not depend on the run), then per plan the median
# relative error over the rounds with and without it, per family, and each set's best-plan ratio.
# Usage (from the source directory): tools/framework_ab.sh ACCURACY_DIR [BUILD_DIR]
# Writes ACCURACY_DIR/without-framework/ (calibrations and results documents); prints the table.
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 ACCURACY_DIR [BUILD_DIR]" >&2; exit 2; }
acc=$1
build=${2:-build}
data=tests/validators/data
. tools/accuracy_networks.sh  # net_source, batch_of: the suite's own
[ -d "$acc" ] || { echo "$0: $acc: no such directory" >&2; exit 2; }
ls "$acc"/*-r[0-9].json >/dev/null 2>&1 || { echo "$0: $acc: no round documents (NET-FAMILY-rR.json) of tools/accuracy.sh" >&2; exit 2; }
[ -x "$build/dnnplan" ] || { echo "$0: $build/dnnplan not found (build it first, or give BUILD_DIR)" >&2; exit 2; }
# Written beside, then moved into place: a failed run leaves no partial without-framework/.
out=$(mktemp -d "$acc/.without-framework.XXXXXX")
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
for f in "$acc"/*-r[0-9].json; do
    b=$(basename "$f" .json)
    case $b in cal*) continue ;; esac
    r=${b##*-r}
    rest=${b%-r$r}
    for fam in layer-parallel pipeline graph-partition tp-pp-dp; do
        case $rest in *-$fam) net=${rest%-$fam} family=$fam ;; esac
    done
    python3 - "$acc/cal-$net-r$r.json" "$out/cal-$net-r$r.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["device"].get("cpu_kernels", {}).pop("framework", None)
json.dump(spec, open(sys.argv[2], "w"), indent=1)
PY
    ranks=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ranks"])' "$f")
    if [ "$family" = layer-parallel ]; then
        args=(--net "$(net_source "$net")" --batch "$(batch_of "$net")")
    else
        args=(); for p in "$acc"/plans/"$net"-*.json; do args+=(--plan "$p"); done
    fi
    "$build"/dnnplan validate "${args[@]}" --cluster "$out/cal-$net-r$r.json" --np "$ranks" --warmup 0 --iterations 1 \
        --no-check --out "$out/$b.json" >/dev/null 2>"$out/$b.log" || { echo "$0: $b: validate failed ($out/$b.log)" >&2; exit 1; }
done
rm -rf "$acc/without-framework"
mv "$out" "$acc/without-framework"
trap - EXIT
out=$acc/without-framework
python3 - "$acc" "$out" <<'PY'
import collections, glob, json, os, statistics, sys
acc, out = sys.argv[1:]
per_plan = collections.defaultdict(list)  # (set, label) -> [(measured, with, without)] per round
for f in sorted(glob.glob(os.path.join(acc, "*-r[0-9].json"))):
    name = os.path.basename(f)
    if name.startswith("cal"):
        continue
    without = {p["label"]: p["predicted"]["iteration_s"] for p in json.load(open(os.path.join(out, name)))["plans"]}
    for p in json.load(open(f))["plans"]:
        if p["label"] in without:
            per_plan[(name.rsplit("-r", 1)[0], p["label"])].append(
                (p["measured"]["iteration_s"], p["predicted"]["iteration_s"], without[p["label"]]))
rounds = max(len(v) for v in per_plan.values())
sets = collections.defaultdict(list)
for (s, label), v in per_plan.items():
    if len(v) == rounds:  # as accuracy_table.py: a plan in every round
        sets[s].append(tuple(statistics.median(x[i] for x in v) for i in range(3)))
def errors(rows, i, signed=False):
    return [(r[i] - r[0]) / r[0] if signed else abs(r[i] - r[0]) / r[0] for r in rows]
every = [r for rows in sets.values() for r in rows]
print(f"{len(every)} plans, {rounds} rounds: median relative error with the framework term "
      f"{100 * statistics.median(errors(every, 1)):.1f}%, without {100 * statistics.median(errors(every, 2)):.1f}%; "
      f"median signed {100 * statistics.median(errors(every, 1, True)):+.1f}% / {100 * statistics.median(errors(every, 2, True)):+.1f}%")
for family in ["layer-parallel", "pipeline", "graph-partition", "tp-pp-dp"]:
    rows = [r for s, rs in sets.items() if s.endswith(family) for r in rs]
    if rows:
        print(f"  {family:16s} {100 * statistics.median(errors(rows, 1)):5.1f}% / {100 * statistics.median(errors(rows, 2)):5.1f}%")
for s, rows in sorted(sets.items()):
    best = min(r[0] for r in rows)
    print(f"  {s:34s} predicted best over measured best {100 * (min(rows, key=lambda r: r[1])[0] / best - 1):+.1f}% "
          f"/ {100 * (min(rows, key=lambda r: r[2])[0] / best - 1):+.1f}%")
PY
