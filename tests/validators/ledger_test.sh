#!/bin/bash
# The layer-parallel runner's byte ledger (validators/ledger.*, layer_ledger): every rank's sends,
# counted through the MPI profiling interface and attributed to (layer, phase, kind), beside the
# plan's CommCalls. lenet5, batch 8, 2 ranks; every figure below by hand (32 x 32 input; conv1
# 6 x 5 x 5 -> 6 x 28 x 28, pool1 -> 6 x 14 x 14, conv2 16 x 6 x 5 x 5 -> 16 x 10 x 10, pool2 ->
# 16 x 5 x 5, fc1 400 -> 120, fc2 120 -> 84, fc3 84 -> 10; fp32). Layer indices: conv1 1, conv2 4,
# pool2 6, fc1 8, fc2 10, fc3 12.
# Needs DNNPLAN (build/dnnplan, with build/dnnplan-validate beside it) and python3.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$DNNPLAN" validate --net lenet5 --batch 8 --np 2 --cluster cori-knl --warmup 0 --iterations 1 --sgd-steps 1 \
    --format json --out "$tmp/r.json" >"$tmp/out" 2>&1 || { echo "FAIL: dnnplan validate"; cat "$tmp/out"; exit 1; }
python3 - "$tmp/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
plans = {p["strategy"]: p for p in r["plans"]}
def entry(p, layer, phase, kind):
    for e in p["ledger"]["entries"]:
        if (e["layer"], e["phase"], e["kind"]) == (layer, phase, kind):
            return e
    raise AssertionError(f"no ledger entry {layer} {phase} {kind} in {p['label']}")
def collective(p, layer, phase, nbytes):
    e = entry(p, layer, phase, "all_reduce")
    assert e["planned"] == [{"group_size": 2, "bytes": nbytes}], e
    assert e["measured"] == [[{"group_size": 2, "bytes": nbytes}]] * 2, e

# batch: one gradient all-reduce per weighted layer over both ranks, weights + bias in fp32:
# conv1 (150 + 6) x 4 = 624 B, conv2 (2400 + 16) x 4 = 9664, fc1 (48000 + 120) x 4 = 192480,
# fc2 (10080 + 84) x 4 = 40656, fc3 (840 + 10) x 4 = 3400. The ledger equals the plan.
b = plans["batch"]
assert b["ledger"]["agrees"] and b["ledger"]["mismatches"] == [], b["ledger"]["mismatches"]
for layer, nbytes in [(1, 624), (4, 9664), (8, 192480), (10, 40656), (12, 3400)]:
    collective(b, layer, "sync", nbytes)

# model: conv2 reads all of pool1's channels, which conv1 left split 3 + 3: each rank sends its
# 8 x 3 x 14 x 14 x 4 = 18816 B to the other (the plan: an all-gather of 37632 B over 2, half each);
# conv2's input gradient is all-reduced over co: 8 x 6 x 14 x 14 x 4 = 37632 B.
m = plans["model"]
assert m["ledger"]["agrees"], m["ledger"]["mismatches"]
e = entry(m, 4, "forward", "redistribution")
assert [x["bytes_to_peer"] for x in e["measured"]] == [{"1": 18816}, {"0": 18816}], e
assert e["model_rank_bytes"] == 18816, e
collective(m, 4, "backward", 37632)

# domain (columns split 2 ways): the halos, pooling halos, their adjoints and the gather of the
# flattened pool2 into fc1 all agree.
d = plans["domain"]
assert d["check"]["passed"], d["check"]
assert d["ledger"]["agrees"], d["ledger"]["mismatches"]
# conv1's input halo: 2 columns of 32 x 1 per sample each way, 8 x 2 x 32 x 4 = 2048 B: agrees.
e = entry(d, 1, "forward", "halo")
assert e["bytes_agree"] and [x["bytes"] for x in e["measured"]] == [2048, 2048], e
# conv2 backward: the adjoint returns the forward halo's ghost gradients (input channels: 8 x 6 x
# 2 x 14 x 4 = 5376 B), which the plan now charges (before: a halo of the output gradient,
# 8 x 16 x 2 x 10 x 4 = 10240 B).
e = entry(d, 4, "backward", "halo")
assert e["planned"] == [{"group_size": 2, "bytes": 5376}] and e["largest_rank_bytes"] == 5376, e
assert e["bytes_agree"], e
# pool2 (2 x 2, stride 2): conv2's 10 columns split 5 + 5, pool2's 5 output columns 2 + 3; rank 1's
# windows start at input column 4, which rank 0 holds: 8 x 16 x 10 x 1 x 4 = 5120 B, forward, and
# its gradient back; the plan charges it now (before: nothing, windows do not overlap).
for phase in ["forward", "backward"]:
    e = entry(d, 6, phase, "halo")
    assert e["planned"] == [{"group_size": 2, "bytes": 5120}] and e["bytes_agree"], e
fwd, bwd = entry(d, 6, "forward", "halo"), entry(d, 6, "backward", "halo")
assert [x["bytes"] for x in fwd["measured"]] == [5120, 0] and [x["bytes"] for x in bwd["measured"]] == [0, 5120], (fwd, bwd)
# fc1 gathers pool2's columns 2 + 3: rank 1 sends 8 x 16 x 5 x 3 x 4 = 7680 B, rank 0 5120 B. The
# flattened tensor keeps pool2's column split (planner::dist_shape), so the plan's all-gather over
# 2 is of the largest block twice, 2 x 7680 B, the busiest rank sending 7680 B (before: 400
# features taken as 200 + 200, 6400 B).
e = entry(d, 8, "forward", "redistribution")
assert [x["bytes"] for x in e["measured"]] == [5120, 7680] and e["model_rank_bytes"] == 7680, e
assert e["planned"] == [{"group_size": 2, "bytes": 15360}], e
print("ok")
PY
[ $? = 0 ] || exit 1

# 3 ranks, the domain plan: conv1 (5 x 5, no padding, 32 -> 28 rows) splits its output rows
# [0,9) [9,18) [18,28) and its input rows [0,10) [10,21) [21,32); output [0,9) reads input [0,13)
# and [18,28) reads [18,32): 3 rows, not floor(5/2) = 2. Rank 1 sends rows [10,13) to rank 0 and
# [18,21) to rank 2: 2 x 8 x 1 x 3 x 32 x 4 = 6144 B, which the plan's halo calls now charge
# (2 neighbours x 3072 B; before, with 2 rows: 2048 B each, 4096 B). Ranks 0 and 2 send one row
# each (8 x 1 x 1 x 32 x 4 = 1024 B): rank 1's output [9,18) reads input [9,22).
"$DNNPLAN" validate --net lenet5 --batch 8 --np 3 --cluster cori-knl --warmup 0 --iterations 1 --sgd-steps 1 \
    --format json --out "$tmp/r3.json" >"$tmp/out" 2>&1 || { echo "FAIL: dnnplan validate on 3 ranks"; cat "$tmp/out"; exit 1; }
python3 - "$tmp/r3.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = [p for p in r["plans"] if p["strategy"] == "domain"][0]
def entry(layer, phase, kind):
    return [e for e in d["ledger"]["entries"] if (e["layer"], e["phase"], e["kind"]) == (layer, phase, kind)][0]
e = entry(1, "forward", "halo")
assert e["planned"] == [{"group_size": 3, "bytes": 3072}], e
assert [x["bytes_to_peer"] for x in e["measured"]] == [{"1": 1024}, {"0": 3072, "2": 3072}, {"1": 1024}], e
assert e["bytes_agree"], e
# The model plan: conv2 (co3) leaves pool2's 16 channels split 5 + 5 + 6 (floor(16 k / 3)); fc1
# (co3) reads all of them: rank 2 sends its 8 x 6 x 25 x 4 = 4800 B to each of 2 peers, 9600 B
# (the plan: an all-gather over 3 of 3 x 4800 B; before, 400 features as 134 + 133 + 133).
m = [p for p in r["plans"] if p["strategy"] == "model"][0]
e = [e for e in m["ledger"]["entries"] if (e["layer"], e["phase"], e["kind"]) == (8, "forward", "redistribution")][0]
assert e["planned"] == [{"group_size": 3, "bytes": 14400}] and e["largest_rank_bytes"] == 9600, e
assert all(p["ledger"]["agrees"] for p in r["plans"]), [p["ledger"]["mismatches"] for p in r["plans"]]
print("ok")
PY
[ $? = 0 ] || exit 1

# smallcnn at batch 4 on 4 ranks, the per-layer plan conv3 n2 x co2, fc1 ci4 (pool2 [32, 8, 8]):
# rank r = 2 n + c holds samples [2n, 2n+2) x channels [16c, 16c+16) (8192 B), fc1 reads channels
# [8r, 8r+8) of all 4 samples. Rank 1 (samples 0-1, channels 16-31) keeps nothing and sends
# channels 16-23 to rank 2 and 24-31 to rank 3, 2 x 8 x 64 x 4 = 4096 B each (rank 2 likewise);
# ranks 0 and 3 keep half and send 4096 B to one peer. The plan: an all-to-all over 3 of
# 3 x 4096 = 12288 B (each sends 2/3: 8192 B), forward and backward (rank 1, channels 8-15 of
# samples 0-3, sends samples 0-1 to rank 0 and 2-3 to rank 2; before: over 2, 4096 B).
# (The search no longer picks this plan, so it is written by hand: the planner's best plan with
# its layouts replaced, re-scored by validate.)
"$DNNPLAN" plan --net smallcnn --procs 4 --batch 4 --cluster cori-knl --out "$tmp/s4plan.json" >/dev/null 2>&1 ||
    { echo "FAIL: dnnplan plan smallcnn"; exit 1; }
python3 - "$tmp/s4plan.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
L = lambda n=1, co=1, ci=1: {"n": n, "co": co, "ci": ci, "h": 1, "w": 1}
d["layouts"] = [{"name": "conv1", "layout": L(4)}, {"name": "conv2", "layout": L(4)}, {"name": "conv3", "layout": L(2, 2)},
                {"name": "fc1", "layout": L(ci=4)}, {"name": "fc2", "layout": L(co=4)}]
json.dump(d, open(sys.argv[1], "w"))
PY
"$DNNPLAN" validate --plan "$tmp/s4plan.json" --np 4 --warmup 0 --iterations 1 --format json --out "$tmp/s4.json" \
    >"$tmp/out" 2>&1 || { echo "FAIL: smallcnn on 4 ranks"; cat "$tmp/out"; exit 1; }
python3 - "$tmp/s4.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plans"][0]
assert "conv3 n2 x co2, fc1 ci4" in p["layouts"], p["layouts"]
fc1 = [e for e in p["ledger"]["entries"] if e["layer"] == 10 and e["kind"] == "redistribution"]
assert len(fc1) == 2, fc1
for e in fc1:
    assert e["planned"] == [{"group_size": 3, "bytes": 12288}] and e["largest_rank_bytes"] == 8192, e
fwd = [e for e in fc1 if e["phase"] == "forward"][0]
assert [x["bytes_to_peer"] for x in fwd["measured"]] == [{"1": 4096}, {"2": 4096, "3": 4096}, {"0": 4096, "1": 4096},
                                                       {"2": 4096}], fwd
assert p["ledger"]["agrees"], p["ledger"]["mismatches"]
print("ok")
PY
[ $? = 0 ] || exit 1

# resnet-small at batch 8 on 3 ranks, the domain plan (columns split 3 ways): layer2_0.0.down_conv
# (1 x 1, stride 2, no padding) reads maxpool's 8 x 8 x 8 per sample; input columns [0,2) [2,5)
# [5,8), output columns [0,1) [1,2) [2,4): rank 2's outputs 2, 3 read input columns 4 and 6, so
# rank 1 sends column 4 ([4,7) less its own [5,8)) and nobody else sends. Rows are not split, but
# the column exchange carries the rows the windows read, [0,7) (output rows 0..3 read rows 0, 2,
# 4, 6): 8 samples x 8 channels x 7 rows x 1 column x 4 B = 1792 B, forward and (the adjoint)
# backward. The plan: 1792 B over 3 ranks, 896 B to each of 2 neighbours (before: 8 rows, 2048 B).
"$DNNPLAN" validate --net "$(dirname "$0")/data/resnet-small.json" --strategies domain --batch 8 --np 3 \
    --cluster cori-knl --warmup 0 --iterations 1 --format json --out "$tmp/rs3.json" >"$tmp/out" 2>&1 ||
    { echo "FAIL: resnet-small domain on 3 ranks"; cat "$tmp/out"; exit 1; }
python3 - "$tmp/rs3.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = [p for p in r["plans"] if p["strategy"] == "domain"][0]
assert "down_conv w3" in d["layouts"], d["layouts"]
down = [e for e in d["ledger"]["entries"] if e["kind"] == "halo" and e["layer"] == 17]
assert sorted(e["phase"] for e in down) == ["backward", "forward"], down
for e in down:
    assert e["planned"] == [{"group_size": 3, "bytes": 896}] and e["largest_rank_bytes"] == 1792, e
fwd = [e for e in down if e["phase"] == "forward"][0]
assert [x["bytes_to_peer"] for x in fwd["measured"]] == [{}, {"2": 1792}, {}], fwd
assert d["ledger"]["agrees"], d["ledger"]["mismatches"]
print("ok")
PY
[ $? = 0 ] || exit 1

# A doctored layer-parallel plan: lenet5's best plan on 2 ranks with its dtype edited to fp16 (on a
# cluster with an fp16 rate), so its calls carry 2-byte elements while the runner sends fp32: the
# numerical checks pass, the ledger differs and the run fails with status 1, naming the operation.
"$DNNPLAN" plan --net lenet5 --procs 2 --batch 8 --cluster dgx-a100 --out "$tmp/plan.json" >/dev/null 2>&1 ||
    { echo "FAIL: dnnplan plan"; exit 1; }
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['pipeline']['stages'] == 1 and 'device_of' not in d['pipeline'], d['strategy']; d['dtype']='fp16'; json.dump(d, open(sys.argv[1],'w'))" "$tmp/plan.json" ||
    { echo "FAIL: the best plan is not layer-parallel"; exit 1; }
"$DNNPLAN" validate --plan "$tmp/plan.json" --cluster dgx-a100 --np 2 --warmup 0 --iterations 1 >"$tmp/out" 2>&1
status=$?
if [ $status != 1 ] || ! grep -q "byte ledger of plan.json differs from the plan" "$tmp/out" ||
    ! grep -Eq "the plan's [0-9.]+ B|the plan's calls [0-9]+ B" "$tmp/out"; then
    echo "FAIL: the doctored plan (status $status)"; cat "$tmp/out"; exit 1
fi
echo "ok doctored plan fails (status $status)"
