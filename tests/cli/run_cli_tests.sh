#!/usr/bin/env bash
# CLI tests: run the dnnplan binary on the committed fixtures and built-ins and check exit
# statuses, the exact one-line diagnostics on stderr, and the output formats. CTest runs it with
# DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repository root>; it prints "N passed, M failed" last
# and exits non-zero when anything failed.
set -u

: "${DNNPLAN:?set DNNPLAN to the dnnplan binary}"
: "${DNNPLAN_SOURCE_DIR:?set DNNPLAN_SOURCE_DIR to the repository root}"

# Relative fixture paths keep the expected messages independent of where the checkout lives.
cd "$DNNPLAN_SOURCE_DIR" || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/dnnplan-cli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); }
not_ok() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
# check DESCRIPTION COMMAND...: one assertion, counted.
check() {
    local what=$1
    shift
    if "$@"; then ok; else not_ok "$what"; fi
}

# run ARGS...: runs dnnplan, leaving $status, $work/stdout and $work/stderr.
status=0
run() {
    "$DNNPLAN" "$@" >"$work/stdout" 2>"$work/stderr"
    status=$?
}
stdout_empty() { [ ! -s "$work/stdout" ]; }
# stderr is exactly this one line (with its newline).
stderr_is() { printf '%s\n' "$1" | cmp -s - "$work/stderr"; }
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

# --- Bad network specs: one fixture per failure, the message after the file name. ---------------
# The same table is in tests/networks/bad_input_test.cpp (which checks the library directly).
# Format: FIXTURE MESSAGE_AFTER_PATH (split at the first space; the message starts with ':').
bad_cases=$(
    cat <<'EOF'
net_syntax.json :6:3: syntax error while parsing value - unexpected ']'; expected '[', '{', or a literal
net_empty.json :1:1: syntax error: empty file, expected a JSON document
net_not_object.json : /: expected a network object, got an array
net_number_out_of_range.json :3:26: number 1e400 is out of range
net_missing_layers.json : /: missing required field "layers"
net_unknown_field.json : /layers/0/kernal: unknown field "kernal" (valid fields: out_channels, kernel, stride, padding, dilation, groups, bias, name, kind or inputs)
net_string_for_integer.json : /layers/0/out_channels: expected an integer, got "64"
net_unknown_kind.json : /layers/1/kind: unknown layer kind "conv3d" (valid kinds: conv2d, conv_transpose2d, linear, maxpool2d, avgpool2d, adaptive_avgpool2d, global_avgpool2d, batchnorm2d, layernorm, relu, leaky_relu, elu, gelu, sigmoid, tanh, silu, hardswish, dropout, flatten, reshape, softmax, add, concat, embedding, position_embedding, attention or upsample)
net_unknown_dtype.json : /dtype: unknown value "fp64" (valid: fp32, fp16 or bf16)
net_unknown_input.json : /layers/2/inputs/1: no layer named "conv9" (layers: input, conv1, conv2 or sum)
net_unknown_input_in_block.json : /layers/0/layers/2/inputs/1: no layer named "conv3" (did you mean "conv1"?)
net_cycle.json : /layers/1/inputs/1: reading "relu2" makes a cycle: sum -> conv2 -> relu2 -> sum
net_reads_itself.json : /layers/0/inputs/1: layer "sum" reads itself
net_linear_after_conv.json : /layers/1: linear acts on [F] or [S, F]; got [8, 30, 30] from layer "conv1" (add a flatten layer first)
net_concat_spatial.json : /layers/2: concat inputs differ outside axis 0: [8, 32, 32] from layer "a" and [8, 16, 16] from layer "b"
net_kernel_too_large.json : /layers/0: kernel 9 is larger than the padded input height 7 (5 + 2x1 padding)
net_kernel_too_large_in_block.json : /layers/0/layers/0: kernel 3 is larger than the padded input height 1 (1 + 2x0 padding) (in layer "down.2.conv")
net_zero_size.json : /layers/0/out_channels: must be a positive integer, got 0
net_negative_size.json : /layers/0/kernel/1: must be a positive integer, got -3
net_zero_input.json : /input/shape/1: must be a positive integer, got 0
net_overflow_input.json : /input/shape: input shape [1000000000, 1000000000, 1000000000] has too many elements for 64-bit counts
net_overflow_linear.json : /layers/0: counts overflow 64-bit integers (sizes too large)
net_overflow_batch.json : /layers/0: counts for batch 4000000000000 overflow 64-bit integers
net_integer_too_large.json : /layers/0/out_channels: integer 18446744073709551615 is too large (at most 9223372036854775807)
net_duplicate_name.json : /layers/2/name: duplicate layer name "conv1" (first defined at /layers/0)
net_reserved_input_name.json : /layers/0/name: the name "input" is reserved for the network's input
net_add_shapes.json : /layers/2: add inputs have different shapes: [8, 32, 32] from layer "conv1" and [16, 32, 32] from layer "conv2"
net_groups.json : /layers/0: input channels 3 are not divisible by groups 2
net_embedding_image.json : /layers/0: embedding reads the token input ({"tokens": S}), got [3, 32, 32] from layer "input"
net_tokens_to_linear.json : /layers/0: linear cannot read integer token ids; add an embedding layer first
net_repeat_no_name.json : /layers/0: missing required field "name"
net_repeat_too_large.json : /layers/0: repeat block "outer" expands to 10000000000 layers, more than the limit of 100000
net_too_many_inputs.json : /layers/0: repeat block "wide" expands to 1001000 input references, more than the limit of 1000000
net_rank_too_large.json : /input/shape: expected at most 16 sizes, got 17
net_name_too_long.json : /layers/0/layers/0/name: layer name "blockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblock.0.blockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblock" is longer than 256 characters
net_repeat_too_deep.json : /layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0: repeat blocks nest more than 16 levels deep
net_tied_not_embedding.json : /layers/2/tied_to: layer "proj" is not an embedding of 100 x 32
net_reshape_mismatch.json : /layers/0/shape: cannot reshape [3, 32, 32] from layer "input" to [-1, 7]
net_pool_padding.json : /layers/0: padding 2 is more than half the kernel size 3
EOF
)

listed=0
while IFS= read -r line; do
    fixture=${line%% *}
    after=${line#* }
    path="tests/data/bad/$fixture"
    listed=$((listed + 1))
    if [ ! -f "$path" ]; then
        not_ok "fixture $path is missing"
        continue
    fi
    expect_error "$path$after" inspect --net "$path"
done <<<"$bad_cases"

# Every net_*.json fixture must be in the table above.
on_disk=$(find tests/data/bad -maxdepth 1 -name 'net_*.json' | wc -l)
check "all $on_disk net_*.json fixtures are listed (listed: $listed)" [ "$on_disk" -eq "$listed" ]

# --- Paths that are not network files. ---------------------------------------------------------------
expect_error "tests/data/bad/net_does_not_exist.json: no such file" inspect --net tests/data/bad/net_does_not_exist.json
expect_error "tests/data/bad: is a directory, expected a file" inspect --net tests/data/bad
expect_error "/dev/zero: is not a regular file" inspect --net /dev/zero
run inspect --net no_such_network
check "an unknown built-in name exits 2" [ "$status" -eq 2 ]
check "an unknown built-in name lists the built-ins" \
    grep -q '^no_such_network: no such file or built-in network (built-ins: .*vgg16' "$work/stderr"
check "an unknown built-in name is one line" [ "$(wc -l <"$work/stderr")" -eq 1 ]

# A batch whose totals overflow is reported at the first layer that overflows (VGG-16's input:
# 3*224*224 elements x 4 bytes x 9e18 does not fit 64 bits).
expect_error "$DNNPLAN_SOURCE_DIR/networks/vgg16.json: /input: counts for batch 9000000000000000000 overflow 64-bit integers" \
    inspect --net vgg16 --batch 9000000000000000000

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

# --out writes the best plan; `plan --plan` re-scores it to the very same document.
run --net alexnet --procs 64 --batch 512 --out "$work/plan.json"
check "--out exits 0" [ "$status" -eq 0 ]
check "--out writes a plan" grep -q '"format": "dnnplan-plan"' "$work/plan.json"
run plan --plan "$work/plan.json" --format json
check "plan --plan exits 0" [ "$status" -eq 0 ]
check "plan --plan re-scores to the same plan document" cmp -s "$work/stdout" "$work/plan.json"
run plan --plan "$work/plan.json"
check "plan --plan prints the breakdown" grep -q '^  iteration ' "$work/stdout"

expect_error "dnnplan: --procs must be a positive number of processes" --net vgg16 --procs 0
expect_error "$DNNPLAN_SOURCE_DIR/clusters/cori-knl.json: /nodes: P = 100000 exceeds the cluster's 9688 devices" \
    --net vgg16 --procs 100000
run --net vgg16 --procs 8 --batch 0
check "--batch 0 exits 2" [ "$status" -eq 2 ]
check "--batch 0 prints nothing on stdout" stdout_empty
expect_error "dnnplan: --net is required (a spec file or a built-in name)" --procs 8

# Nothing feasible: exit 1, the closest candidates' reasons on stderr, "best": null in JSON.
run --net gpt2 --procs 4 --cluster dgx-a100
check "no feasible plan exits 1" [ "$status" -eq 1 ]
check "no feasible plan says why" grep -q '^dnnplan: no feasible plan among ' "$work/stderr"
check "no feasible plan gives the reasons" grep -q 'more than the device' "$work/stderr"
run --net gpt2 --procs 4 --cluster dgx-a100 --format json
check "no feasible plan: best is null in JSON" grep -q '"best": null' "$work/stdout"
run --net gpt2 --procs 4 --cluster dgx-a100 --out "$work/none.json"
check "no feasible plan writes no plan file" [ ! -e "$work/none.json" ]

# Hand-edited plans: one fixture per failure (the lenet5 P = 4 plan with one edit).
plan_cases=$(
    cat <<'EOF'
plan_other_cluster.json : /cluster/name: the plan was made for cluster "frontera", not "cori-knl" (loaded from "cori-knl")
plan_layout_not_dividing_p.json : /layouts/2/layout: layout n2 x co3 uses 6 processes, which does not divide P = 4
plan_layout_bad_split.json : /layouts/4/layout: output features 10 cannot be split 4 ways
plan_unknown_layer.json : /layouts/3/name: "fc4" is not a layer that takes a layout in network "lenet5"
plan_missing_layout.json : /layouts: no layout for layer "fc3"
plan_not_a_plan.json : /: not a dnnplan plan (expected "format": "dnnplan-plan")
plan_negative_factor.json : /layouts/3/layout/n: must be a positive integer, got -2
plan_dtype_not_on_cluster.json : /dtype: cluster cori-knl has no peak rate for fp16
EOF
)
while IFS= read -r line; do
    fixture=${line%% *}
    after=${line#* }
    expect_error "tests/data/bad/$fixture$after" plan --plan "tests/data/bad/$fixture"
done <<<"$plan_cases"
# The plan names smallcnn's fingerprint; re-scoring it on lenet5 (--net) is refused.
expect_error 'tests/data/bad/plan_other_network.json: /network/fingerprint: the plan was made for another network (fingerprint 2ac3b14f19ddf8df, network "lenet5" has df4466db94fa9bbc)' \
    plan --plan tests/data/bad/plan_other_network.json --net lenet5
run plan --plan tests/data/bad/no_such_plan.json
check "a missing plan file exits 2" [ "$status" -eq 2 ]
check "a missing plan file is named" grep -q '^tests/data/bad/no_such_plan.json: ' "$work/stderr"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
