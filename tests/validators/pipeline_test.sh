#!/bin/bash
# Pipeline plans under MPI end to end (validators/pipeline_runner.*): lenet5 / smallcnn cut into
# 2 stages, GPipe and 1F1B with 4 micro-batches, 2 replicas, ZeRO-1 and recomputation, a batch-norm
# ResNet with micro-batches and replicas, each
# checked against the sequential network (exit 0 only when the loss, every weight gradient and
# the SGD losses match) and its byte ledger equal to the plan's calls; and a doctored plan (its
# dtype edited to fp16 while the runner sends fp32) whose ledger differs, so the run fails.
# Needs DNNPLAN (build/dnnplan, with build/dnnplan-validate beside it) and python3.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
report() {  # report NAME STATUS
    if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; sed 's/^/    /' "$tmp/out"; fail=1; fi
}
# plan NAME NET PROCS FIRST_OF_STAGE_1 LAST_OF_STAGE_0 OPTIONS...: a pipeline plan with fixed stage
# ranges (so the byte figures below do not depend on the planner's choice of cut).
plan() {
    local name=$1 net=$2 procs=$3 first1=$4 last0=$5
    shift 5
    "$DNNPLAN" plan --net "$net" --procs "$procs" --batch 16 --cluster cori-knl --stages 2 "$@" \
        --out "$tmp/$name.json" >/dev/null || { echo "FAIL $name: dnnplan plan"; fail=1; return; }
    python3 - "$tmp/$name.json" "$net" "$first1" "$last0" <<'PY'
import json, sys
path, net, first1, last0 = sys.argv[1:]
d = json.load(open(path))
last = d["per_layer"][-1]["name"]
d["pipeline"]["stage_ranges"] = [{"first": d["per_layer"][0]["name"], "last": last0}, {"first": first1, "last": last}]
json.dump(d, open(path, "w"))
PY
}
# run NAME PROCS EXPECTED_STATUS PYTHON_ASSERTIONS: validate, then assertions on the results document `r`.
run() {
    local name=$1 procs=$2 want=$3 asserts=$4
    "$DNNPLAN" validate --plan "$tmp/$name.json" --np "$procs" --warmup 0 --iterations 2 --format json \
        --out "$tmp/$name-results.json" >"$tmp/out" 2>&1
    local got=$?
    if [ "$got" != "$want" ]; then echo "status $got, want $want" >>"$tmp/out"; report "$name" 1; return; fi
    python3 - "$tmp/$name-results.json" >>"$tmp/out" 2>&1 <<PY
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plans"][0]
led = p["pipeline"]["ledger"]
def entries(**kw):
    return [e for e in led["entries"] if all(e.get(k) == v for k, v in kw.items())]
$asserts
PY
    report "$name" $?
}

# lenet5 cut before flatten_0 (layer 7): stage 0 sends pool2's output, 16 x 5 x 5 floats per
# sample; micro-batch 16 / 4 = 4 samples: 4 x 400 x 4 B = 6400 B, 4 times each way.
P2P='
assert p["check"]["passed"] and r["checks_passed"] and led["agrees"], "checks or ledger failed"
fwd = entries(phase="forward", kind="point_to_point")
bwd = entries(phase="backward", kind="point_to_point")
assert [(e["rank"], e["peer"], e["layer"], e["bytes"], e["measured_calls"]) for e in fwd] == [(0, 1, 7, 6400, 4)], fwd
assert [(e["rank"], e["peer"], e["layer"], e["bytes"], e["measured_calls"]) for e in bwd] == [(1, 0, 7, 6400, 4)], bwd
'
# The order each stage ran its micro-batches in, by hand: GPipe all forwards, then all backwards;
# 1F1B on 2 stages: stage 0 one warm-up forward (S - s - 1 = 1), stage 1 none.
plan gpipe lenet5 2 flatten_0 pool2 --micro-batches 4 --schedule gpipe
run gpipe 2 0 "$P2P
assert p['pipeline']['orders'] == ['F0 F1 F2 F3 B0 B1 B2 B3'] * 2, p['pipeline']['orders']"
plan onefoneb lenet5 2 flatten_0 pool2 --micro-batches 4 --schedule 1f1b
run onefoneb 2 0 "$P2P
assert p['pipeline']['orders'] == ['F0 F1 B0 F2 B1 F3 B2 B3', 'F0 B0 F1 B1 F2 B2 F3 B3'], p['pipeline']['orders']"
plan recompute lenet5 2 flatten_0 pool2 --micro-batches 4 --recompute full
run recompute 2 0 "$P2P
assert p['pipeline']['recompute'] == 'full'"

# The plan-level redistribution (the model's point-to-point seconds) counts the receive of an
# arrived message, not the wait for the peer stage: with M = 1 stage 1 waits for stage 0's whole
# forward before its receive, which used to be counted (measured redistribution >= stage 0's
# forward); the transfer of 6400 B is a small part of that forward.
plan onewait lenet5 2 flatten_0 pool2 --micro-batches 1 --schedule gpipe
run onewait 2 0 "
stage0 = p['pipeline']['per_stage'][0]['measured']
assert p['measured']['redistribution_s'] < 0.5 * stage0['fwd_compute_s'], (p['measured']['redistribution_s'], stage0)
assert p['pipeline']['per_stage'][1]['measured']['receive_wait_s'] > p['measured']['redistribution_s'], p['pipeline']['per_stage'][1]
"

# 3 stages, 2 micro-batches, 1F1B (the planner's stage ranges): warm-up forwards min(S - s - 1, M)
# = 2, 1, 0, so stages 0 and 1 run F0 F1 B0 B1 and stage 2 F0 B0 F1 B1.
"$DNNPLAN" plan --net lenet5 --procs 3 --batch 12 --cluster cori-knl --stages 3 --micro-batches 2 \
    --schedule 1f1b --out "$tmp/three.json" >/dev/null
run three 3 0 "
assert p['check']['passed'] and led['agrees']
assert p['pipeline']['orders'] == ['F0 F1 B0 B1', 'F0 F1 B0 B1', 'F0 B0 F1 B1'], p['pipeline']['orders']
"

# smallcnn, 2 stages x 2 replicas (ranks 0, 1 replica 0; 2, 3 replica 1), 2 micro-batches of 4:
# every layer with weights all-reduces its gradient over the 2 ranks of its stage. conv1 is
# 3 -> 16 channels 3x3 with bias: (16 x 27 + 16) x 4 B = 1792 B (networks/smallcnn.json); the cut
# before conv3 (layer 6) carries pool1's 16 x 16 x 16 output: 4 samples x 4096 x 4 B = 65536 B.
plan replicas smallcnn 4 conv3 pool1 --micro-batches 2 --replicas 2
run replicas 4 0 "
assert p['check']['passed'] and led['agrees']
ar = entries(kind='all_reduce', layer=1)
assert sorted(e['rank'] for e in ar) == [0, 2] and all(e['group_size'] == 2 and e['measured_calls'] == 1 for e in ar), ar
assert ar[0]['bytes'] == 1792, ar
p2p = entries(kind='point_to_point', phase='forward')
assert sorted((e['rank'], e['peer'], e['layer'], e['bytes']) for e in p2p) == [(0, 1, 6, 65536), (2, 3, 6, 65536)], p2p
"

# ZeRO-1 on lenet5, 2 stages x 2 replicas: a reduce-scatter of each gradient and an all-gather of
# the updated weights over the 2 replicas. conv1: (6 x 25 + 6) x 4 B = 624 B; fc1 (400 -> 120):
# (120 x 400 + 120) x 4 B = 192480 B.
plan zero lenet5 4 flatten_0 pool2 --micro-batches 2 --replicas 2 --zero
run zero 4 0 "
assert p['check']['passed'] and led['agrees']
for kind in ('reduce_scatter', 'all_gather'):
    assert [(e['rank'], e['bytes'], e['group_size']) for e in entries(kind=kind, layer=1)] == [(0, 624, 2), (2, 624, 2)]
    assert sorted((e['rank'], e['bytes']) for e in entries(kind=kind, layer=8)) == [(1, 192480), (3, 192480)]
assert not entries(kind='all_reduce')
"

# Batch norm under micro-batching (tests/validators/data/resnet-small.json, cut after the first
# residual block's add): each micro-batch normalises with its own statistics, as GPipe does, so the
# sequential reference runs the R x M micro-batches one by one (validators/sequential_reference).
# Checked against the whole batch at once the gradients differed by 0.39-0.95 (relative) at M > 1.
resnet="$(dirname "$0")/data/resnet-small.json"
BN='
assert p["check"]["passed"] and led["agrees"], p["check"]
assert p["check"]["gradient_error"] < 1e-10 and p["check"]["output_error"] < 1e-10, p["check"]
'
plan bn-micro "$resnet" 2 layer1_0.0.relu2 layer1_0.0.add --micro-batches 4 --schedule 1f1b
run bn-micro 2 0 "$BN
assert p['pipeline']['micro_batches'] == 4"
plan bn-replicas "$resnet" 4 layer1_0.0.relu2 layer1_0.0.add --micro-batches 2 --replicas 2 --schedule gpipe
run bn-replicas 4 0 "$BN
assert p['pipeline']['micro_batches'] == 2 and p['pipeline']['replicas'] == 2"

# Gradient accumulation over micro-batches: a stage keeps one weight and one gradient per layer,
# which every micro-batch's backward adds into (no batch norm here, so the batch's gradient does
# not depend on M). The same batch of 16 at M = 1, 4 (1F1B), 4 (GPipe) and 8 must give the same
# SGD losses (--sgd-steps 4): the first from the common initial weights, the next three from
# weights updated with the accumulated gradients, so a gradient of one micro-batch only (16 / M of
# the batch), one added twice, or one not zeroed between iterations (the previous step's added in)
# changes losses 2-4. Relative 1e-12: the runs differ only in the order of their sums in double.
# The losses must move (each step changes the weights), else equal losses would prove nothing.
# The replicas' gradient sync: started after each layer's last backward, in flight during the rest
# (the plan's default overlap), or blocking after the stage's last backward (--no-overlap).
acc_run() {  # acc_run NAME PROCS: validate with 4 SGD steps; the losses to $tmp/NAME.losses
    "$DNNPLAN" validate --plan "$tmp/$1.json" --np "$2" --warmup 0 --iterations 1 --sgd-steps 4 --format json \
        --out "$tmp/$1-results.json" >"$tmp/out" 2>&1 || { echo "status $? for $1" >>"$tmp/out"; return 1; }
    python3 - "$tmp/$1-results.json" >"$tmp/$1.losses" 2>>"$tmp/out" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["plans"][0]["check"]
assert c["passed"] and c["gradient_error"] < 1e-10, c
print(json.dumps(c["losses"]))
PY
}
acc_same() {  # acc_same NAME REFERENCE: NAME's losses equal REFERENCE's to 1e-12 relative
    python3 - "$tmp/$1.losses" "$tmp/$2.losses" >>"$tmp/out" 2>&1 <<'PY'
import json, sys
got, want = (json.load(open(f)) for f in sys.argv[1:])
assert len(got) == len(want) == 4, (got, want)
assert max(abs(a - b) / abs(b) for a, b in zip(got, want)) < 1e-12, (got, want)
assert min(abs(want[k + 1] - want[k]) / abs(want[k]) for k in range(3)) > 1e-6, want
PY
}
plan acc-m1 lenet5 2 flatten_0 pool2 --micro-batches 1
acc_run acc-m1 2
report "accumulation: M = 1 runs" $?
for m in "4 1f1b" "4 gpipe" "8 1f1b"; do
    set -- $m
    plan "acc-m$1-$2" lenet5 2 flatten_0 pool2 --micro-batches "$1" --schedule "$2"
    acc_run "acc-m$1-$2" 2 && acc_same "acc-m$1-$2" acc-m1
    report "accumulation: M = $1 ($2) gives M = 1's SGD losses" $?
done
plan acc-r2 lenet5 4 flatten_0 pool2 --micro-batches 2 --replicas 2
acc_run acc-r2 4 && acc_same acc-r2 acc-m1
report "accumulation: 2 replicas x M = 2, overlapped sync, give M = 1's SGD losses" $?
plan acc-r2-blocking lenet5 4 flatten_0 pool2 --micro-batches 2 --replicas 2 --no-overlap
acc_run acc-r2-blocking 4 && acc_same acc-r2-blocking acc-m1
report "accumulation: 2 replicas x M = 2, blocking sync, give M = 1's SGD losses" $?
plan acc-zero lenet5 4 flatten_0 pool2 --micro-batches 4 --replicas 2 --zero
acc_run acc-zero 4 && acc_same acc-zero acc-m1
report "accumulation: ZeRO-1 over 2 replicas x M = 4 gives M = 1's SGD losses" $?

# The doctored plan: dtype fp16 (on a cluster with an fp16 rate), so its calls carry 2-byte
# elements while the runner sends fp32: the ledger differs (3200 B planned, 6400 B sent) and the
# run fails with status 1 though the numerical checks pass.
plan doctored lenet5 2 flatten_0 pool2 --micro-batches 4
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['dtype']='fp16'; json.dump(d, open(sys.argv[1],'w'))" "$tmp/doctored.json"
"$DNNPLAN" validate --plan "$tmp/doctored.json" --cluster dgx-a100 --np 2 --warmup 0 --iterations 1 >"$tmp/out" 2>&1
status=$?
grep -q "rank 0: layer 7 forward point_to_point of 3200 B to rank 1: 0 call(s) made, the plan has 4" "$tmp/out" &&
    grep -q "DIFFERS" "$tmp/out" && [ $status = 1 ]
report "doctored plan fails the byte ledger (status $status)" $?

exit $fail
