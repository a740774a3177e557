#!/bin/bash
# Graph-partition plans under MPI end to end (validators/graph_runner.*): the plans `dnnplan` writes
# for the GoogLeNet-like inception-small (tests/validators/data/inception-small-graph-p{2,4}.json,
# from `dnnplan --net tests/validators/data/inception-small.json --procs 2 --batch 8 --cluster
# cori-knl --out ...` and `--procs 4 --batch 16`: graph-partition ranks first, k = 2 devices, M = 1,
# R = 1 and 2), the P = 2 plan edited to M = 2 micro-batches, each checked against the sequential
# network (exit 0 only when the loss, every weight gradient and the SGD losses match) with its byte
# ledger equal to the plan's transfers and syncs; M = 1, 2, 4 giving the same SGD losses without batch
# norm; and a doctored plan (dtype fp16 while the runner
# sends fp32) whose ledger differs, so the run fails, and a ZeRO-1 one refused. Needs DNNPLAN (build/dnnplan, with
# build/dnnplan-validate beside it) and python3; run from the source directory.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
data=tests/validators/data
report() {  # report NAME STATUS
    if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; sed 's/^/    /' "$tmp/out"; fail=1; fi
}
# run NAME PLAN PROCS PYTHON_ASSERTIONS: validate (status 0 wanted), then assertions on the results
# document `r`, its plan `p`, the graph-partition details `g` and ledger entries `entries(...)`.
run() {
    local name=$1 plan=$2 procs=$3 asserts=$4
    "$DNNPLAN" validate --plan "$plan" --np "$procs" --warmup 0 --iterations 2 --format json \
        --out "$tmp/$name-results.json" >"$tmp/out" 2>&1
    local got=$?
    if [ "$got" != 0 ]; then echo "status $got, want 0" >>"$tmp/out"; report "$name" 1; return; fi
    python3 - "$tmp/$name-results.json" >>"$tmp/out" 2>&1 <<PY
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plans"][0]
g = p["graph_partition"]
led = g["ledger"]
def entries(**kw):
    return sorted((e["rank"], e["peer"], e["layer"], e["bytes"], e["measured_calls"])
                  for e in led["entries"] if all(e.get(k) == v for k, v in kw.items()))
assert p["check"]["passed"] and p["check"]["gradient_error"] < 1e-10 and r["checks_passed"], p["check"]
assert led["agrees"] and r["ledgers_agree"] and p["check"]["ledger_agrees"], led["mismatches"]
$asserts
PY
    report "$name" $?
}

# The cut tensors by hand. The plans put conv1, bn1, relu1, maxpool1 (layers 1-4), b2a_conv, b2a_bn,
# b2a_relu (8-10), b3a_conv (14), b4_pool and b4_conv (20, 21) on device 1, the rest on device 0.
# Shapes (15 x 15 input, 3 x 3 stride-2 ceil-mode max pool: ceil((15 - 3) / 2) + 1 = 7):
#   maxpool1 -> b1_conv   8 x 7 x 7 = 392 floats = 1568 B per sample
#   b2a_relu -> b2b_conv  4 x 7 x 7 = 196 floats =  784 B per sample
#   b3a_conv -> b3a_bn    2 x 7 x 7 =  98 floats =  392 B per sample
#   b4_conv  -> b4_bn     2 x 7 x 7 =  98 floats =  392 B per sample
# (maxpool1's other consumers b2a_conv, b3a_conv, b4_pool are on its own device.) Micro-batch of 8
# samples: 12544, 6272, 3136, 3136 B, sent once forward (rank 1 -> 0, layer = the producer) and once
# back (rank 0 -> 1, layer = the consumer).
CUT='
assert [(t["producer"], t["consumer"], t["bytes"]) for t in g["transfers"]] == [
    ("maxpool1", "inception.0.b1_conv", 12544), ("inception.0.b2a_relu", "inception.0.b2b_conv", 6272),
    ("inception.0.b3a_conv", "inception.0.b3a_bn", 3136), ("inception.0.b4_conv", "inception.0.b4_bn", 3136)], g["transfers"]
'
run "k=2 x R=1, M=1 on 2 ranks" $data/inception-small-graph-p2.json 2 "$CUT
assert entries(phase='forward') == [(1, 0, 4, 12544, 1), (1, 0, 10, 6272, 1), (1, 0, 14, 3136, 1), (1, 0, 21, 3136, 1)], entries(phase='forward')
assert entries(phase='backward') == [(0, 1, 5, 12544, 1), (0, 1, 11, 6272, 1), (0, 1, 15, 3136, 1), (0, 1, 22, 3136, 1)], entries(phase='backward')
assert not entries(phase='sync')
"

# M = 2: micro-batches of 4 samples, half the bytes, two messages each way; batch norm's statistics
# are per micro-batch, so the reference is the sequential network on each micro-batch.
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['pipeline']['micro_batches']=2; json.dump(d, open(sys.argv[2],'w'))" \
    $data/inception-small-graph-p2.json "$tmp/m2.json"
run "k=2 x R=1, M=2 on 2 ranks" "$tmp/m2.json" 2 "
assert entries(phase='forward') == [(1, 0, 4, 6272, 2), (1, 0, 10, 3136, 2), (1, 0, 14, 1568, 2), (1, 0, 21, 1568, 2)], entries(phase='forward')
assert entries(phase='backward') == [(0, 1, 5, 6272, 2), (0, 1, 11, 3136, 2), (0, 1, 15, 1568, 2), (0, 1, 22, 1568, 2)], entries(phase='backward')
"

# R = 2 on 4 ranks (batch 16, micro-batch 8): rank dev + 2 r; the cut tensors as above between ranks
# 1 -> 0 and 3 -> 2, and each layer's gradient all-reduced over its device's 2 replicas once per
# iteration: conv1 8 x 3 x 3 x 3 = 216 floats = 864 B on ranks 1 and 3 (no bias), fc (16 -> 10)
# 160 + 10 = 170 floats = 680 B on ranks 0 and 2 (the concat has 4 + 6 + 4 + 2 = 16 channels).
run "k=2 x R=2, M=1 on 4 ranks" $data/inception-small-graph-p4.json 4 "$CUT
assert entries(phase='forward') == [(1, 0, 4, 12544, 1), (1, 0, 10, 6272, 1), (1, 0, 14, 3136, 1), (1, 0, 21, 3136, 1),
                                    (3, 2, 4, 12544, 1), (3, 2, 10, 6272, 1), (3, 2, 14, 3136, 1), (3, 2, 21, 3136, 1)], entries(phase='forward')
syncs = sorted((e['rank'], e['group_size'], e['bytes'], e['measured_calls']) for e in led['entries'] if e['phase'] == 'sync' and e['layer'] in (1, 28))
assert syncs == [(0, 2, 680, 1), (1, 2, 864, 1), (2, 2, 680, 1), (3, 2, 864, 1)], syncs
"

# Gradient accumulation over micro-batches: a device keeps one weight and one gradient per layer,
# which every micro-batch's backward adds into. Batch norm's statistics are per micro-batch, so here
# inception-small's batch norms become relus (same names and shapes: the plan's placement and cut
# tensors stand) and the batch's gradient does not depend on M. The same batch of 16 at M = 1, 2
# and 4 must give the same SGD losses (--sgd-steps 4): the first from the common initial weights,
# the next three from weights updated with the accumulated gradients, so a gradient of one
# micro-batch only, one added twice, or one not zeroed between iterations changes losses 2-4.
# Relative 1e-12: the runs differ only in the order of their sums in double. The losses must move.
# The edited network's fingerprint: from a plan dnnplan writes for it (whatever its best strategy).
sed 's/"batchnorm2d"/"relu"/' $data/inception-small.json >"$tmp/inception-nobn.json"
"$DNNPLAN" --net "$tmp/inception-nobn.json" --procs 2 --batch 16 --cluster cori-knl --out "$tmp/nobn-any.json" >/dev/null 2>&1
for m in 1 2 4; do
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['network']=json.load(open(sys.argv[2]))['network']; d['batch']=16; d['pipeline']['micro_batches']=int(sys.argv[3]); json.dump(d, open(sys.argv[4],'w'))" \
        $data/inception-small-graph-p2.json "$tmp/nobn-any.json" $m "$tmp/acc-m$m.json"
    "$DNNPLAN" validate --plan "$tmp/acc-m$m.json" --np 2 --warmup 0 --iterations 1 --sgd-steps 4 --format json \
        --out "$tmp/acc-m$m-results.json" >"$tmp/out" 2>&1
    status=$?
    python3 - "$tmp/acc-m$m-results.json" "$tmp/acc-m1-results.json" >>"$tmp/out" 2>&1 <<'PY'
import json, sys
def check(f):
    p = json.load(open(f))["plans"][0]
    c = p["check"]
    assert c["passed"] and c["gradient_error"] < 1e-10 and p["graph_partition"]["ledger"]["agrees"], c
    return c["losses"]
got, want = check(sys.argv[1]), check(sys.argv[2])
assert len(got) == len(want) == 4, (got, want)
assert max(abs(a - b) / abs(b) for a, b in zip(got, want)) < 1e-12, (got, want)
assert min(abs(want[k + 1] - want[k]) / abs(want[k]) for k in range(3)) > 1e-6, want
PY
    [ $? = 0 ] && [ $status = 0 ]
    report "accumulation: M = $m gives M = 1's SGD losses (status $status; M = 1: its own run checked)" $?
done

# The search's graph partitions (validate --net ... --strategies graph-partition): on 4 ranks k = 2
# x R = 2 and k = 4 x R = 1, both checked, both ledgers equal to their plans.
"$DNNPLAN" validate --net $data/inception-small.json --np 4 --batch 16 --cluster cori-knl --strategies graph-partition \
    --warmup 0 --iterations 1 --format json --out "$tmp/search.json" >"$tmp/out" 2>&1
status=$?
python3 - "$tmp/search.json" >>"$tmp/out" 2>&1 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert sorted((p["graph_partition"]["devices"], p["graph_partition"]["replicas"]) for p in r["plans"]) == [(2, 2), (4, 1)]
assert all(p["check"]["passed"] and p["graph_partition"]["ledger"]["agrees"] for p in r["plans"])
PY
[ $? = 0 ] && [ $status = 0 ]
report "the search's graph partitions on 4 ranks (status $status)" $?

# The doctored plan: dtype fp16 (on a cluster with an fp16 rate), so its transfers carry 2-byte
# elements while the runner sends fp32: the ledger differs (6272 B planned for maxpool1's output,
# 12544 B sent) and the run fails with status 1 though the numerical checks pass.
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['dtype']='fp16'; json.dump(d, open(sys.argv[2],'w'))" \
    $data/inception-small-graph-p2.json "$tmp/doctored.json"
"$DNNPLAN" validate --plan "$tmp/doctored.json" --cluster dgx-a100 --np 2 --warmup 0 --iterations 1 >"$tmp/out" 2>&1
status=$?
grep -q "rank 1: layer 4 forward point_to_point of 6272 B to rank 0: 0 call(s) made, the plan has 1" "$tmp/out" &&
    grep -q "DIFFERS" "$tmp/out" && [ $status = 1 ]
report "doctored plan fails the byte ledger (status $status)" $?

# ZeRO-1 in a graph partition (the search never writes it): refused before anything starts.
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['pipeline']['zero']=True; json.dump(d, open(sys.argv[2],'w'))" \
    $data/inception-small-graph-p4.json "$tmp/zero.json"
"$DNNPLAN" validate --plan "$tmp/zero.json" --np 4 >"$tmp/out" 2>&1
status=$?
grep -qx "$tmp/zero.json: /pipeline: graph-partition plans with ZeRO-1 are not run by the validator yet" "$tmp/out" && [ $status = 2 ]
report "ZeRO-1 graph partition refused (status $status)" $?

exit $fail
