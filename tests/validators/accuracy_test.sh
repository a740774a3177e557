#!/bin/bash
# tools/accuracy.sh and tools/accuracy_table.py (issue 17, item 5): the table renderer on
# hand-made results documents (figures by hand below), the script's usage errors and its idle wait
# giving up, and one tiny end-to-end run (lenet5, quick calibration, 1 iteration, no idle wait)
# whose Markdown shows validate's own Kendall tau and verdict for every family, checked against a
# Kendall tau recomputed here from the documents' per-plan times. Needs DNNPLAN (build/dnnplan) and
# python3; run from the source directory.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
report() {  # report NAME STATUS
    if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; sed 's/^/    /' "$tmp/out"; fail=1; fi
}

# 1. The renderer on two hand-made documents. lenet5 layer-parallel: 3 plans with relative errors
# 0.10, 0.20, 0.50; lenet5 pipeline: 2 plans with 0.30, 0.40. Median over the 5 plans: 0.30 (the
# third of 0.10 0.20 0.30 0.40 0.50); layer-parallel's own median 0.20, the pipeline's 0.35.
# The pipeline's predicted best is measured 1.04x the measured best: "within 5% (+4.0%)".
mkdir -p "$tmp/fixture"
python3 - "$tmp/fixture" <<'PY' >"$tmp/out" 2>&1
import json, sys
d = sys.argv[1]
def plan(label, pred, meas, err, passed=True):
    ops = {k: 0.0 for k in ["fwd_compute_s", "bwd_compute_s", "all_reduce_s", "halo_s", "redistribution_s", "sync_exposed_s"]}
    return {"label": label, "batch": 32, "predicted": dict(ops, iteration_s=pred), "measured": dict(ops, iteration_s=meas),
            "measured_best": dict(ops, iteration_s=meas), "relative_error": err, "relative_error_best": err,
            "check": {"performed": True, "passed": passed, "output_error": 0, "gradient_error": 0.5 if not passed else 0,
                      "loss_error": 0}, "ledger": {"agrees": True}}
def doc(plans, tau, pb, mb, same, ratio, median):
    return {"ranks": 2, "warmup": 0, "iterations": 1, "plans": plans, "kendall_tau": tau, "kendall_tau_best": tau,
            "predicted_best": pb, "measured_best": mb, "predicted_best_is_measured_best": same,
            "predicted_best_over_measured_best": ratio, "median_relative_error": median,
            "median_relative_error_best": median, "predicted_best_is_measured_best_best": same,
            "predicted_best_over_measured_best_best": ratio}
json.dump(doc([plan("lenet5 batch", 1e-3, 1.1e-3, 0.10), plan("lenet5 domain", 2e-3, 2.5e-3, 0.20),
               plan("lenet5 model", 3e-3, 6e-3, 0.50, passed=False)], 1.0, "lenet5 batch", "lenet5 batch", True, 1.0, 0.20),
          open(f"{d}/lenet5-layer-parallel.json", "w"))
json.dump(doc([plan("lenet5-pipe-S2-M1-1f1b.json", 1e-3, 1.04e-3, 0.30), plan("lenet5-pipe-S2-M2-1f1b.json", 2e-3, 1e-3, 0.40)],
              -1.0, "lenet5-pipe-S2-M1-1f1b.json", "lenet5-pipe-S2-M2-1f1b.json", False, 1.04, 0.35),
          open(f"{d}/lenet5-pipeline.json", "w"))
with open(f"{d}/runs.tsv", "w") as f:
    f.write("network\tfamily\tstart_utc\tend_utc\twaited_s\tidle\tload_before\tload_after\tstatus\n")
    for fam in ["calibrate", "layer-parallel", "pipeline"]:
        f.write(f"lenet5\t{fam}\t07:00:00\t07:00:05\t17\tyes\t0.10 0.20 0.30\t0.90 0.30 0.30\t0\n")
PY
python3 tools/accuracy_table.py --dir "$tmp/fixture" --np 2 --warmup 0 --iterations 1 --idle "95% for 15 s" \
    --elapsed 42 >"$tmp/fixture.md" 2>>"$tmp/out"
python3 - "$tmp/fixture.md" <<'PY' >>"$tmp/out" 2>&1
import sys
md = open(sys.argv[1]).read()
print(md)
assert "Median relative error over all 5 plans at P = 2: 30.0%" in md
assert "target <= 10%: missed" in md
assert "layer-parallel 20.0% (3 plans), pipeline 35.0% (2 plans)" in md
assert "| lenet5 | layer-parallel | 3 | 20.0% | 20.0% | 1.00 | yes | 2/3 ok |" in md
assert "| lenet5 | pipeline | 2 | 35.0% | 35.0% | -1.00 | within 5% (+4.0%) | 2/2 ok |" in md
assert "in 2 of 2 network-family sets" in md
assert "| pipe-S2-M1-1f1b | 1000 | 1040 | 30.0% |" in md
assert "FAILED (0e+00 / 5e-01 / 0e+00)" in md
assert "waited 17 s for an idle machine" in md and "idle wait was skipped" not in md
assert "the script took 42 s" in md
PY
report "accuracy_table.py on hand-made documents" $?

# 2. Usage errors (status 2) and an idle wait that cannot succeed (101% idle): status 1, no table.
tools/accuracy.sh --np two --out "$tmp/bad" >"$tmp/out" 2>&1
[ $? = 2 ] && grep -q -- "--np wants a whole number, got 'two'" "$tmp/out"
report "bad --np refused (status 2)" $?
tools/accuracy.sh --build "$(dirname "$DNNPLAN")" --networks resnet50 --out "$tmp/bad" >"$tmp/out" 2>&1
[ $? = 2 ] && grep -q "unknown network 'resnet50'" "$tmp/out"
report "unknown network refused (status 2)" $?
tools/accuracy.sh --build "$(dirname "$DNNPLAN")" --networks lenet5 --idle-percent 101 --idle-timeout 2 \
    --out "$tmp/busy" >"$tmp/out" 2>&1
status=$?
[ $status = 1 ] && grep -q "not 101% idle for 15 s within 2 s" "$tmp/out" && [ ! -e "$tmp/busy/accuracy.md" ] &&
    [ ! -e "$tmp/busy/cal-lenet5.json" ]
report "idle wait gives up (status $status), nothing measured" $?

# 3. End to end on lenet5 (both of its families), checks on: every plan passes, the table has a
# row per plan of each document, and validate's Kendall tau matches one recomputed here.
tools/accuracy.sh --build "$(dirname "$DNNPLAN")" --networks lenet5 --warmup 0 --iterations 1 --idle-timeout 0 \
    --quick-calibration --out "$tmp/run" >"$tmp/out" 2>&1
status=$?
[ $status = 0 ] && python3 - "$tmp/run" <<'PY' >>"$tmp/out" 2>&1
import json, sys
d = sys.argv[1]
md = open(f"{d}/accuracy.md").read()
print(md)
assert "idle wait was skipped" in md
# layer-parallel: batch, domain, model, and per-layer when it differs from them, which depends on
# the quick calibration's constants (3 or 4 plans); pipeline: M = 1, 2, 4, 8 under 1F1B, 2, 4, 8 GPipe.
for family, allowed in [("layer-parallel", (3, 4)), ("pipeline", (7,))]:
    doc = json.load(open(f"{d}/lenet5-{family}.json"))
    plans = len(doc["plans"])
    assert plans in allowed, (family, plans)
    assert all(p["check"]["passed"] for p in doc["plans"]), family
    pred = [p["predicted"]["iteration_s"] for p in doc["plans"]]
    meas = [p["measured"]["iteration_s"] for p in doc["plans"]]
    n = len(pred)
    s = sum((1 if (pred[i] - pred[j]) * (meas[i] - meas[j]) > 0 else -1 if (pred[i] - pred[j]) * (meas[i] - meas[j]) < 0 else 0)
            for i in range(n) for j in range(i + 1, n))
    tau = s / (n * (n - 1) / 2)
    row = [l for l in md.splitlines() if l.startswith(f"| lenet5 | {family} | {plans} |")]
    assert len(row) == 1 and f"| {tau:.2f} |" in row[0], (row, tau)
    section = md.split(f"### lenet5: {family}")[1].split("###")[0]
    assert section.count("\n| ") == plans + 1, section  # header + one row per plan
PY
report "tools/accuracy.sh end to end on lenet5 (status $status)" $?
exit $fail
