#!/bin/bash
# `dnnplan validate` / `dnnplan calibrate` end to end: the dry-run line, errors before anything
# starts, a quick calibration whose cluster file the planner then loads, a validated plan on the
# calibrated machine, and the fault messages (a killed and a hung rank named with their step).
# Needs DNNPLAN (build/dnnplan, with build/dnnplan-validate beside it).
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check NAME EXPECTED_STATUS GREP_PATTERN -- command...
    local name=$1 want=$2 pattern=$3
    shift 4
    "$@" >"$tmp/out" 2>&1
    local got=$?
    if [ "$got" != "$want" ] || ! grep -Eq -- "$pattern" "$tmp/out"; then
        echo "FAIL $name: status $got (want $want), output:"; sed 's/^/    /' "$tmp/out"; fail=1
    else
        echo "ok   $name"
    fi
}

data=$(dirname "$0")/data
plan4=$data/lenet5-p4.json  # `dnnplan --net lenet5 --procs 4 --batch 8 --out` (per-layer on cori-knl)
check "dry run prints the mpirun line" 0 "mpirun .*-np 4 .*dnnplan-validate validate --plan $plan4" -- \
    "$DNNPLAN" validate --plan "$plan4" --np 4 --dry-run
check "P against --np before starting" 2 "lenet5-p4.json: /procs: the plan is for P = 4 processes, but --np is 2" -- \
    "$DNNPLAN" validate --plan "$plan4" --np 2
check "a plan file's layouts run and pass the checks" 0 "lenet5-p4.json .* ok " -- \
    "$DNNPLAN" validate --plan "$plan4" --np 4 --iterations 2
# 880 GiB by the validator's estimate: refused on any machine with less than 1.1 TB available.
check "a network too large for this machine is refused before anything starts" 2 \
    "toolarge.json: running toolarge batch on 2 ranks needs about .* GiB, more than 80% of this machine's available" -- \
    "$DNNPLAN" validate --net "$data/toolarge.json" --strategies batch --np 2 --cluster cori-knl
# --image: lenet5 at 12 x 12 leaves conv2 a 4 x 4 input for its 5 x 5 kernel (32 -> conv1 8 -> pool 4):
# refused by dnnplan before mpirun starts; at 16 x 16 it runs and passes the checks on the smaller input.
check "an image too small for a layer is refused, naming it" 2 \
    "--image: the network no longer fits a 12x12 image: layer conv2 .*kernel 5 is larger than the padded input height 4" -- \
    "$DNNPLAN" validate --net lenet5 --np 2 --cluster cori-knl --image 12
check "the validation runs at --image 16" 0 '"checks_passed":true.*' -- \
    bash -c "\"$DNNPLAN\" validate --net lenet5 --batch 8 --np 2 --cluster cori-knl --iterations 2 --image 16 \
             --format json | tr -d ' \n'"
check "--image 16 re-infers the input shape" 0 '"input_shape":\[1,16,16\]' -- \
    bash -c "\"$DNNPLAN\" validate --net lenet5 --batch 8 --np 2 --cluster cori-knl --iterations 1 --image 16 \
             --strategies batch --format json | tr -d ' \n'"
check "calibration writes a cluster file" 0 "wrote $tmp/this-machine.json" -- \
    "$DNNPLAN" calibrate --np 2 --quick --out "$tmp/this-machine.json"
# The planner's library (cluster loader, cost model, DP) reads the calibrated file here.
check "validate the candidates on the calibrated machine" 0 '"checks_passed": true' -- \
    "$DNNPLAN" validate --net lenet5 --batch 8 --np 2 --cluster "$tmp/this-machine.json" --iterations 3 --format json
# The speed reference (validators/speed_reference.hpp): the calibration records its time, the run
# times it between iterations, and the plan is scored again at the run's speed: slowdown = the
# run's time over the calibration's; compute scaled by it, all-reduces as predicted, halos and
# repartitions between the two (by hand: clusters::at_compute_speed scales every compute cost of a
# calibrated CPU, the packing copies included, and no link).
cp "$tmp/out" "$tmp/validated.json"
if python3 - "$tmp/this-machine.json" "$tmp/validated.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
doc = json.loads(text[text.index("{"):])
ref = spec["measured_on"]["reference_kernel_s"]
assert ref > 0, ref
close = lambda a, b: abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)
for p in doc["plans"]:
    s = p["speed"]
    assert close(s["calibration_reference_kernel_s"], ref), s
    assert s["reference_kernel_s"] > 0 and close(s["slowdown"], s["reference_kernel_s"] / ref), s
    pred, run = p["predicted"], p["predicted_at_run_speed"]
    for op in ["fwd_compute_s", "bwd_compute_s"]:
        assert close(run[op], pred[op] * s["slowdown"]), (p["label"], op, run[op], pred[op], s["slowdown"])
    assert close(run["all_reduce_s"], pred["all_reduce_s"]), (p["label"], run, pred)
    # Halos and repartitions: the transfer as predicted, the packing copies (per run) scaled.
    lo, hi = sorted([1.0, s["slowdown"]])
    for op in ["halo_s", "redistribution_s"]:
        assert pred[op] * lo * (1 - 1e-9) <= run[op] <= pred[op] * hi * (1 + 1e-9), (p["label"], op, run[op], pred[op])
    assert close(p["relative_error_at_run_speed"], abs(run["iteration_s"] - p["measured"]["iteration_s"]) / p["measured"]["iteration_s"])
assert "median_relative_error_at_run_speed" in doc and "kendall_tau_at_run_speed" in doc
PY
then echo "ok   the run is predicted at its own compute speed beside the calibration's"
else echo "FAIL the prediction at the run's compute speed (above)"; fail=1; fi
# The calibrated spec records where it was measured (a typed field, not its description): on this
# host validate has nothing to note; a spec measured elsewhere and a preset are named as such.
if grep -q "note: the predictions are for cluster" "$tmp/out"; then
    echo "FAIL validate on this host's calibration notes a foreign cluster:"; sed 's/^/    /' "$tmp/out"; fail=1
else
    echo "ok   validate on this host's calibration has no foreign-cluster note"
fi
check "the calibrated spec records this host" 0 "\"host\": \"$(hostname)\"" -- cat "$tmp/this-machine.json"
# The calibration measures what the calls of a non-blocking all-reduce cost their caller.
check "the calibrated spec has the per-call share of the progress" 0 '"nonblocking_call_share": \{' -- \
    cat "$tmp/this-machine.json"
# The runner's MPI_Test calls that progress the gradient all-reduces during the backward pass are
# timed as sync (they do the copies and the reduction), on the trace's sync lane.
check "the gradient all-reduces' progress calls are timed as sync" 0 '"cat": *"sync"[^}]*"name": *"gradient all-reduce progress"|"name": *"gradient all-reduce progress"[^}]*"cat": *"sync"' -- \
    bash -c "\"$DNNPLAN\" validate --net lenet5 --batch 8 --np 2 --strategies batch --cluster \"$tmp/this-machine.json\" \
             --iterations 2 --no-check --trace \"$tmp/trace.json\" >/dev/null && tr -d '\n' < \"$tmp/trace.json\""
sed "s/\"host\": \"$(hostname)\"/\"host\": \"elsewhere-node7\"/" "$tmp/this-machine.json" >"$tmp/elsewhere.json"
check "a spec calibrated on another host is noted" 0 "calibrate on host elsewhere-node7, not on this one" -- \
    "$DNNPLAN" validate --net lenet5 --batch 8 --np 2 --strategies batch --cluster "$tmp/elsewhere.json" --iterations 1
check "a preset is noted as not this machine" 0 "predictions are for cluster cori-knl, not this machine" -- \
    "$DNNPLAN" validate --net lenet5 --batch 8 --np 2 --strategies batch --cluster cori-knl --iterations 1
# Pipelines run (tests/validators/pipeline_test.sh), stages of T = 2 ranks too (pipeline3d_test.sh):
# here lenet5's, whose stage-internal redistribution the byte ledger sets beside the plan's call.
if "$DNNPLAN" --net lenet5 --procs 4 --batch 8 --stages 2 --tensor 2 --out "$tmp/pipeline4.json" >/dev/null 2>&1; then
    check "tensor-parallel pipeline stages run, checked and ledgered" 0 "byte ledger: .* equal to the plan's calls" -- \
        "$DNNPLAN" validate --plan "$tmp/pipeline4.json" --np 4 --iterations 1 --warmup 0
else
    echo "skip tensor-parallel pipeline stages run: dnnplan --stages 2 --tensor 2 could not make a plan (planner problem)"
fi
check "a killed rank is named with its step" 3 "rank 1 died \(exited on signal 9.*during step 'conv2" -- \
    "$DNNPLAN" validate --net lenet5 --batch 8 --strategies grid-domain --cluster cori-knl --np 4 --iterations 1 \
    --inject-fault kill:1:conv2
check "a hung rank is named with its step, within the timeout" 3 "rank 2 hung in step 'fc2" -- \
    timeout 60 "$DNNPLAN" validate --net lenet5 --batch 8 --strategies grid-domain --cluster cori-knl --np 4 \
    --iterations 1 --timeout 2 --inject-fault hang:2:fc2
# Ranks given different plans (an MPMD launch): named before anything communicates, exit 2.
worker=$(dirname "$DNNPLAN")/dnnplan-validate
check "ranks given different plans are named" 2 "rank 1 was given different plans than rank 0" -- \
    timeout 120 mpirun --allow-run-as-root --oversubscribe \
    -np 1 "$worker" validate --net lenet5 --batch 8 --cluster cori-knl --strategies batch : \
    -np 1 "$worker" validate --net lenet5 --batch 8 --cluster cori-knl --strategies model
# An error on one rank during a run (unet-small's domain plan on 3 ranks: up1's input rows split
# 3 ways do not divide evenly) ends the job at once, naming the rank and the layer, exit 2; before,
# the other ranks waited for their watchdog (1.5 x --timeout). The --timeout of 100 s and the
# timeout of 60 s make a wait for the watchdog fail this check.
check "an error on one rank ends the run at once, naming the rank" 2 \
    "^dnnplan-validate: rank [0-2]: up1: transposed convolution needs spatial splits" -- \
    timeout 60 "$DNNPLAN" validate --net "$data/unet-small.json" --strategies domain --cluster cori-knl --np 3 \
    --iterations 1 --warmup 0 --timeout 100
if grep -q "help message\|orte_base_help_aggregate" "$tmp/out"; then
    echo "FAIL Open MPI's help aggregation notes are shown"; fail=1
fi
exit $fail
