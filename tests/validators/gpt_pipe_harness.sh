# Shared by the MPI test scripts of 2-stage plans of the small GPTs (pipeline3d_test.sh,
# pipeline_tied_test.sh): source it after setting `net` (the network file). Defines `tmp`, `fail`,
# `report`, `plan` and `run`; `run_asserts` (python, optional) is checked on every run before the
# run's own assertions.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
run_asserts=${run_asserts:-}
report() {  # report NAME STATUS
    if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; sed 's/^/    /' "$tmp/out"; fail=1; fi
}
# plan NAME PROCS TENSOR OPTIONS...: an S = 2 plan with the cut fixed between blocks h.1 and h.2 (so
# the byte figures of the scripts do not depend on the planner's choice of cut).
plan() {
    local name=$1 procs=$2 tensor=$3
    shift 3
    "$DNNPLAN" plan --net "$net" --procs "$procs" --batch 8 --cluster cori-knl --tensor "$tensor" --stages 2 "$@" \
        --out "$tmp/$name.json" >/dev/null || { echo "FAIL $name: dnnplan plan"; fail=1; return; }
    python3 - "$tmp/$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["pipeline"]["stage_ranges"] = [{"first": "wte", "last": "h.1.add_2"}, {"first": "h.2.ln_1", "last": "lm_head"}]
json.dump(d, open(sys.argv[1], "w"))
PY
}
# run NAME PROCS PYTHON_ASSERTIONS: validate (status 0: the checks to 1e-10 and the ledger equal to
# the plan's calls), then assertions on the results document `r` (`d` its pipeline part, `led` its
# ledger, `entries(**fields)` the ledger entries matching them).
run() {
    local name=$1 procs=$2 asserts=$3
    "$DNNPLAN" validate --plan "$tmp/$name.json" --np "$procs" --warmup 0 --iterations 1 --format json \
        --out "$tmp/$name-results.json" >"$tmp/out" 2>&1
    local got=$?
    if [ "$got" != 0 ]; then echo "status $got, want 0" >>"$tmp/out"; report "$name" 1; return; fi
    python3 - "$tmp/$name-results.json" >>"$tmp/out" 2>&1 <<PY
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plans"][0]
d = p["pipeline"]
led = d["ledger"]
def entries(**kw):
    return [e for e in led["entries"] if all(e.get(k) == v for k, v in kw.items())]
c = p["check"]
assert c["passed"] and r["checks_passed"] and led["agrees"], (c, led["mismatches"])
assert c["ledger_agrees"] and r["ledgers_agree"], (c, r["ledgers_agree"])  # the document's verdicts
assert c["gradient_error"] <= 1e-10 and c["loss_error"] <= 1e-10, c
$run_asserts
$asserts
PY
    report "$name" $?
}
