#!/usr/bin/env bash
# CLI tests: run the dnnplan binary on the committed fixtures and built-ins and check exit
# statuses, the exact one-line diagnostics on stderr, and the output formats. CTest runs it with
# DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repository root>; it prints "N passed, M failed" last
# and exits non-zero when anything failed.
. "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" cli

show() {
    echo "  exit status: $status"
    echo "  stderr: $(head -c 600 "$work/stderr")"
    echo "  stdout: $(head -c 200 "$work/stdout")"
}

# A failing run: exit status exactly 2, nothing on stdout, exactly one line on stderr.
expect_error() {
    local expected=$1
    shift
    run "$@"
    if [ "$status" -eq 2 ] && stdout_empty && stderr_is "$expected"; then
        ok
    else
        not_ok "dnnplan $*"
        echo "  expected: $expected"
        show
    fi
}

# --- Bad input: every message, with its fixture or command, is in docs/errors.md and checked by
# tests/cli/check_error_catalogue.sh; here only what the catalogue cannot say. ----------------------
# --- Paths that are not network files. ---------------------------------------------------------------
run inspect --net no_such_network
check "an unknown built-in name exits 2" [ "$status" -eq 2 ]
check "an unknown built-in name lists the built-ins" \
    grep -q '^no_such_network: no such file or built-in network (built-ins: .*vgg16' "$work/stderr"
check "an unknown built-in name is one line" [ "$(wc -l <"$work/stderr")" -eq 1 ]

# --- inspect on a built-in. ---------------------------------------------------------------------------
run inspect --net vgg16
check "inspect --net vgg16 exits 0" [ "$status" -eq 0 ]
# VGG-16 has 138,357,544 parameters (Simonyan & Zisserman; torchvision's count).
check "inspect --net vgg16 shows 138.4 M parameters" grep -q '138\.4 M' "$work/stdout"
check "inspect --net vgg16 writes nothing on stderr" [ ! -s "$work/stderr" ]

run inspect --net vgg16 --format json
check "inspect --format json exits 0" [ "$status" -eq 0 ]
check "inspect --format json parses" python3 -c 'import json,sys; json.load(sys.stdin)' <"$work/stdout"
check "inspect --format json has totals.params 138357544" \
    python3 -c 'import json,sys; assert json.load(sys.stdin)["totals"]["params"] == 138357544' <"$work/stdout"
cp "$work/stdout" "$work/expected.json"

run inspect --net vgg16 --format csv
check "inspect --format csv exits 0" [ "$status" -eq 0 ]
header=$(head -n 1 "$work/stdout")
# Units are in the column names: FLOPs and bytes.
check "csv header names its units (got: $header)" \
    bash -c '[[ "$1" == layer,* && "$1" == *fwd_flops* && "$1" == *bwd_input_flops* && "$1" == *bwd_weight_flops* && "$1" == *activation_bytes* ]]' _ "$header"
check "csv rows all have the header's number of fields" python3 -c '
import csv, sys
rows = list(csv.reader(sys.stdin))
assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows), [len(r) for r in rows]' <"$work/stdout"

# --- --out writes the file whole, or leaves the old one alone. ----------------------------------------
mkdir -p "$work/out"
run inspect --net vgg16 --format json --out "$work/out/vgg16.json"
check "--out exits 0" [ "$status" -eq 0 ]
check "--out writes nothing on stdout" stdout_empty
check "--out writes the same document as stdout" cmp -s "$work/out/vgg16.json" "$work/expected.json"

printf 'previous content\n' >"$work/out/keep.json"
expect_error "tests/data/bad/net_cycle.json: /layers/1/inputs/1: reading \"relu2\" makes a cycle: sum -> conv2 -> relu2 -> sum" \
    inspect --net tests/data/bad/net_cycle.json --out "$work/out/keep.json"
check "a failed run leaves the existing --out file untouched" \
    bash -c '[ "$(cat "$1")" = "previous content" ]' _ "$work/out/keep.json"
check "a failed run leaves no temporary file behind" \
    bash -c '[ "$(ls -A "$1" | sort | tr "\n" " ")" = "keep.json vgg16.json " ]' _ "$work/out"

# --- Help, listing and usage errors. -------------------------------------------------------------------
run --help
check "--help exits 0" [ "$status" -eq 0 ]
for sub in inspect networks clusters; do
    check "--help lists the $sub subcommand" grep -Eq "^  $sub( |$)" "$work/stdout"
done
run inspect --help
check "inspect --help exits 0" [ "$status" -eq 0 ]
check "inspect --help shows --net" grep -q -- '--net' "$work/stdout"

run networks
check "networks exits 0" [ "$status" -eq 0 ]
check "networks lists vgg16" grep -q '^vgg16 ' "$work/stdout"

run --no-such-option
check "an unknown option exits 2" [ "$status" -eq 2 ]
check "an unknown option prints nothing on stdout" stdout_empty
check "an unknown option is explained on stderr" [ -s "$work/stderr" ]
run inspect --net vgg16 --no-such-option
check "an unknown inspect option exits 2" [ "$status" -eq 2 ]
run inspect --net vgg16 --format xml
check "an invalid --format exits 2" [ "$status" -eq 2 ]
run inspect
check "inspect without --net exits 2" [ "$status" -eq 2 ]

# ======================================================================================================
# PLANNER COMMANDS (`dnnplan --net X --procs P`, `dnnplan plan ...`)
# ======================================================================================================

run --net vgg16 --procs 512
check "the default command exits 0" [ "$status" -eq 0 ]
check "the default command names its inputs" grep -q '^dnnplan: vgg16 on cori-knl, P = 512, batch 256' "$work/stdout"
check "the ranked table has the per-layer plan" grep -Eq '^[0-9]+ +per-layer ' "$work/stdout"
check "the best plan is named" grep -q '^best: ' "$work/stdout"
check "the best plan's per-layer layouts follow" grep -Eq '^fc8 +linear ' "$work/stdout"

# The training software's options (planner/README.md, "Training software"): stated on the first
# line, kept in the plan file, fixed by it, and checked.
run --net gpt2 --procs 64 --cluster dgx-a100 --batch 512 --dtype fp16 --stages 4 --micro-batches 8 --tensor 4 \
    --grad-accumulation autograd --mixed-precision-step deepspeed --boundary-send deepspeed --out "$work/ds.json"
check "the training-software options plan" [ "$status" -eq 0 ]
check "the header states them" bash -c "tr -s ' \n' ' ' <'$work/stdout' | grep -q 'gradient accumulation autograd, optimizer step deepspeed, boundary sends deepspeed)'"
check "the plan file keeps them" grep -q '"boundary_send": "deepspeed"' "$work/ds.json"
run plan --plan "$work/ds.json"
check "the plan file re-scores with them" bash -c "tr -s ' \n' ' ' <'$work/stdout' | grep -q 'gradient accumulation autograd, optimizer step deepspeed, boundary sends deepspeed)'"
# A hand-edited micro-batch count is re-scored under its own label (the label states M and the
# scored figures; it used to keep the saved one, "M=8").
jq '.pipeline.micro_batches = 4' "$work/ds.json" >"$work/ds-m4.json"
run plan --plan "$work/ds-m4.json"
check "an edited M is labelled anew" grep -q '^plan: tp-pp-dp TP=4 x PP=4 x DP=4, M=4, 1f1b' "$work/stdout"
check "the old label is gone" bash -c "! grep -q 'M=8' '$work/stdout'"
run plan --plan "$work/ds.json" --boundary-send whole-tensor
check "--boundary-send does not apply to --plan" [ "$status" -eq 2 ]
run --net gpt2 --procs 8 --cluster dgx-a100 --grad-accumulation sometimes
check "an unknown --grad-accumulation exits 2" [ "$status" -eq 2 ]

# --out writes the best plan; `plan --plan` re-scores it to the very same document.
run --net alexnet --procs 64 --batch 512 --out "$work/plan.json"
check "--out exits 0" [ "$status" -eq 0 ]
check "--out writes a plan" grep -q '"format": "dnnplan-plan"' "$work/plan.json"
run plan --plan "$work/plan.json" --format json
check "plan --plan exits 0" [ "$status" -eq 0 ]
check "plan --plan re-scores to the same plan document" cmp -s "$work/stdout" "$work/plan.json"
run plan --plan "$work/plan.json"
check "plan --plan prints the breakdown" grep -q '^  iteration ' "$work/stdout"


# Pipeline configurations that cannot run are skipped with a count: with P = 6 and batch 64, every
# configuration with 3 or 6 replicas leaves 64/3 or 64/6 samples per replica, not an integer.
run --net lenet5 --procs 6 --batch 64 --format json
check "pipeline search counts skipped configurations" \
    jq -e '.pipeline_search.skipped > 0 and .pipeline_search.configurations > 0' "$work/stdout"
run --net lenet5 --procs 6 --batch 64
check "the text output states the skipped count" grep -Eq '^pipeline search: [0-9]+ configurations scored \([0-9]+ over memory\), [1-9][0-9]* skipped' "$work/stdout"

# An interrupted run (issue 9): a sweep killed mid-way leaves the previous output intact and no
# partial or temporary file (outputs are written to a temporary name and renamed at the end).
mkdir -p "$work/kill"
printf 'previous\n' >"$work/kill/sweep.csv"
"$DNNPLAN" sweep --net resnet1001,resnet152,unet,gpt2 --procs 1:4096 --cluster cori-knl,frontera,stampede2-skx \
    --out "$work/kill/sweep.csv" >/dev/null 2>&1 &
sweep_pid=$!
sleep 0.5
check "the long sweep is still running when it is killed" kill -0 "$sweep_pid"
kill -9 "$sweep_pid" 2>/dev/null
wait "$sweep_pid" 2>/dev/null
check "a killed sweep leaves the previous file intact" bash -c '[ "$(cat "$1")" = previous ]' _ "$work/kill/sweep.csv"
check "a killed sweep leaves no temporary file" bash -c '[ "$(ls -A "$1")" = sweep.csv ]' _ "$work/kill"

# Nothing feasible: exit 1, the closest candidates' reasons on stderr, "best": null in JSON.
run --net gpt3-175b --procs 8 --cluster dgx-a100
check "no feasible plan exits 1" [ "$status" -eq 1 ]
check "no feasible plan says why" grep -q '^dnnplan: no feasible plan among ' "$work/stderr"
check "no feasible plan gives the reasons" grep -q 'more than the device' "$work/stderr"
run --net gpt3-175b --procs 8 --cluster dgx-a100 --format json
check "no feasible plan: best is null in JSON" grep -q '"best": null' "$work/stdout"
run --net gpt3-175b --procs 8 --cluster dgx-a100 --out "$work/none.json"
check "no feasible plan writes no plan file" [ ! -e "$work/none.json" ]


# --- ONNX (issue 8): --net model.onnx everywhere --net works; bad ONNX exits 2 with one line. ----
onnx=tests/data/onnx
for n in alexnet vgg16 resnet50; do
    # The torchvision export (dynamic batch) and the JSON built-in give the same totals at batch 256.
    run inspect --net "$onnx/$n.onnx" --batch 256
    check "inspect $n.onnx exits 0" [ "$status" -eq 0 ]
    grep -E '^(parameters|forward|backward|activations):' "$work/stdout" >"$work/onnx_totals"
    run inspect --net "$n" --batch 256
    grep -E '^(parameters|forward|backward|activations):' "$work/stdout" >"$work/json_totals"
    check "inspect $n.onnx has the totals of the $n built-in" cmp -s "$work/onnx_totals" "$work/json_totals"
done
run --net "$onnx/alexnet.onnx" --procs 64 --batch 256
check "planning an ONNX model exits 0" [ "$status" -eq 0 ]
check "planning an ONNX model names it" grep -q '^dnnplan: alexnet on cori-knl, P = 64, batch 256' "$work/stdout"
check "planning an ONNX model ends with the best plan" grep -q '^best: ' "$work/stdout"
expect_error "$onnx/bad/truncated.onnx: cannot be parsed as an ONNX model (truncated, corrupt or not ONNX)" \
    inspect --net "$onnx/bad/truncated.onnx"
expect_error "$onnx/bad/not_onnx.onnx: cannot be parsed as an ONNX model (truncated, corrupt or not ONNX)" \
    --net "$onnx/bad/not_onnx.onnx" --procs 4
expect_error "$onnx/bad/opset_too_new.onnx: opset 99 is newer than this build supports (ONNX opsets up to 17); export with opset_version=17 or lower" \
    inspect --net "$onnx/bad/opset_too_new.onnx"
expect_error "$onnx/bad/uninferable_reshape.onnx: /graph/node/1: Reshape node \"reshape\": ONNX shape inference could not infer the shape of its output \"y\"" \
    inspect --net "$onnx/bad/uninferable_reshape.onnx"
expect_error "$onnx/unknown_op.onnx: unsupported ONNX operators: Selu x2 (first: \"selu_a\"), com.example.FancyNorm x1 (first: \"fancy\"); --allow-unknown-ops imports them as elementwise layers without parameters" \
    inspect --net "$onnx/unknown_op.onnx"
run inspect --net "$onnx/unknown_op.onnx" --allow-unknown-ops
check "--allow-unknown-ops imports the model" [ "$status" -eq 0 ]
check "--allow-unknown-ops says so in inspect" grep -q 'UNSUPPORTED OPERATORS imported as elementwise' "$work/stdout"
check "--allow-unknown-ops marks the layers" grep -q '^selu_a  *unknown:Selu ' "$work/stdout"
run --net "$onnx/unknown_op.onnx" --allow-unknown-ops --procs 4
check "--allow-unknown-ops plans" [ "$status" -eq 0 ]
check "--allow-unknown-ops says so in the plan" grep -q '^dnnplan: unknown_op \[unknown ops as elementwise: Selu x2, com.example.FancyNorm x1\] on ' "$work/stdout"
# --- end of ONNX ----------------------------------------------------------------------------------

# --- Processes per node (issue 16, item 5): k processes share a CPU node; the plan records k and
# every command that reads the plan rebuilds the same cluster view. -------------------------------------
run --net lenet5 --procs 8 --cluster frontera --processes-per-node 2 --out "$work/ppn.json"
check "--processes-per-node 2 plans" [ "$status" -eq 0 ]
check "the header names k and the nodes" grep -q '^dnnplan: lenet5 on frontera, P = 8 (2 processes per node on 4 nodes)' "$work/stdout"
check "the plan records processes_per_node 2" \
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["processes_per_node"] == 2' "$work/ppn.json"
run --net lenet5 --procs 8 --cluster frontera --processes-per-node 2 --format csv
check "every ranked row carries processes_per_node 2" python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
assert rows and all(r["processes_per_node"] == "2" for r in rows), rows[:1]' <"$work/stdout"
run plan --plan "$work/ppn.json" --format json
check "plan --plan re-scores the k = 2 plan" python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(sys.stdin)
assert b["processes_per_node"] == 2
assert abs(a["predicted"]["iteration_s"] - b["predicted"]["iteration_s"]) <= 1e-12 * a["predicted"]["iteration_s"]' "$work/ppn.json" <"$work/stdout"
run plan --plan "$work/ppn.json" --cluster dgx-a100
check "a k = 2 plan on a cluster without cores exits 2" [ "$status" -eq 2 ]
check "... naming the plan's processes_per_node" grep -q '/processes_per_node: cluster dgx-a100 does not describe its cores' "$work/stderr"
run --net lenet5 --procs 8 --cluster frontera
check "without --processes-per-node plan searches k" grep -q '^processes per node k (P / k nodes), best plan:$' "$work/stdout"
check "... over 1, 2, 4, 8 and 56 cores" bash -c 'grep "^  k=" "$1" | tr -s " " | cut -d" " -f2 | paste -sd, | grep -qx "k=1,k=2,k=4,k=8,k=56"' _ "$work/stdout"
check "... and says why k = 56 is not tried at P = 8" grep -q '^  k=56   not searched: P not a multiple$' "$work/stdout"
run --net lenet5 --procs 8 --cluster dgx-a100
check "GPU clusters print no search over k" bash -c '! grep -q "processes per node" "$1"' _ "$work/stdout"
# --- end of processes per node ---------------------------------------------------------------------

finish
