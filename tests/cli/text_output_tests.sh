#!/usr/bin/env bash
# The text output fits a terminal (issue 18, item 1): the README's first command at most 120
# columns by default, $COLUMNS obeyed, --wide shows every column, GPT-3's plan under 150 lines with
# its repeated blocks collapsed and a per-stage table, --layers all lists every layer.
. "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" text

widest() { awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$1"; }
lines() { wc -l <"$1"; }

# The README's first command, as written there (after `./setup.sh && `).
first=$(grep -m1 -o 'build/dnnplan --net [^`]*' README.md)
check "README's first command is the vgg16 one" test "$first" = "build/dnnplan --net networks/vgg16.json --procs 512"
read -r -a args <<<"${first#build/dnnplan }"
unset COLUMNS
run "${args[@]}"
check "README's first command succeeds" test "$status" -eq 0
check "README's first command fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
check "the ranking names its configuration column" grep -q '^#  *strategy  *configuration  *iteration' "$work/stdout"
cp "$work/stdout" "$work/default"

COLUMNS=100 run "${args[@]}"
check "COLUMNS=100 is obeyed ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 100
check "what is left out is said" grep -q 'left out to fit 100 columns' "$work/stdout"

run "${args[@]}" --wide
check "--wide is wider than the default" test "$(widest "$work/stdout")" -gt "$(widest "$work/default")"
check "--wide shows the gradient sync in all" grep -q 'grad sync' "$work/stdout"

# GPT-3 (README): under 150 lines, 96 blocks collapsed, a per-stage table naming the peak stage.
# The search's best plan (interleaved, with many chunks: the layer table's stage cell shows the
# range a collapsed group spans), then the explicit non-interleaved plan.
run --net gpt3-175b --procs 1024 --cluster dgx-a100 --batch 1536
check "gpt3 search succeeds" test "$status" -eq 0
check "gpt3 search under 150 lines ($(lines "$work/stdout"))" test "$(lines "$work/stdout")" -lt 150
check "gpt3 search fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
run --net gpt3-175b --procs 1024 --cluster dgx-a100 --batch 1536 --tensor 8 --stages 4 --micro-batches 48 --zero
check "gpt3 succeeds" test "$status" -eq 0
check "gpt3 under 150 lines ($(lines "$work/stdout"))" test "$(lines "$work/stdout")" -lt 150
check "gpt3 fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
check "gpt3 blocks collapsed" grep -Eq '^h\.[0-9]+ \.\.\. h\.[0-9]+ \(x[0-9]+\):$' "$work/stdout"
check "gpt3 per-stage table" grep -q '^stage  *layers  *count' "$work/stdout"
check "gpt3 peak-memory stage named" grep -q '^peak memory: stage [0-9]' "$work/stdout"
check "gpt3 summary has point-to-point and the bubble" grep -q 'point-to-point.*pipeline bubble' <(tr '\n' ' ' <"$work/stdout")
collapsed=$(lines "$work/stdout")
run --net gpt3-175b --procs 1024 --cluster dgx-a100 --batch 1536 --tensor 8 --stages 4 --micro-batches 48 --zero --layers all
# (Residual adds have nothing to show since the residual stream stays whole: 5 rows per block, so
# 96 x 5 = 480 rows instead of one collapsed group of 5 rows and its heading per stage, at most 8 x 6.)
check "--layers all lists every block" grep -q '^h\.95\.ln_2 ' "$work/stdout"
check "--layers all is longer" test "$(lines "$work/stdout")" -ge $((collapsed + 480 - 48))

# An explicit pipeline (README) gets the stage table too.
run --net gpt2 --procs 64 --cluster dgx-a100 --batch 512 --stages 4 --micro-batches 8 --tensor 4 --schedule gpipe --zero --recompute full
check "explicit pipeline succeeds" test "$status" -eq 0
check "explicit pipeline: 4 stage rows" test "$(grep -cE '^[0-3]  +[^ ]+ \.\.\. ' "$work/stdout")" -eq 4
check "explicit pipeline fits 120 columns" test "$(widest "$work/stdout")" -le 120

# --micro-batch-size m sets M = B / (R m): 512 / (64 / 16 = 4 replicas) / 8 = 16; selective
# recomputation and sequence parallelism show in the configuration.
run --net gpt2 --procs 64 --cluster dgx-a100 --batch 512 --stages 4 --micro-batch-size 8 --tensor 4 --recompute selective --sequence-parallel
check "micro-batch size succeeds" test "$status" -eq 0
check "micro-batch size: M = 16" grep -q 'M=16, 1f1b, recompute selective, sequence-parallel' "$work/stdout"
run --net gpt2 --procs 64 --cluster dgx-a100 --batch 512 --stages 4 --micro-batch-size 7 --tensor 4
check "micro-batch size not dividing: exit 2" test "$status" -eq 2
check "micro-batch size not dividing: named" grep -q -- '--micro-batch-size' "$work/stderr"

# inspect collapses repeated blocks too (783 lines for GPT-3 before), --layers all lists each.
run inspect --net gpt3-175b
check "inspect gpt3 succeeds" test "$status" -eq 0
check "inspect gpt3 under 100 lines ($(lines "$work/stdout"))" test "$(lines "$work/stdout")" -lt 100
check "inspect gpt3 fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
check "inspect gpt3 blocks collapsed" grep -q '^h\.0 \.\.\. h\.95 (x96):$' "$work/stdout"
# networks and clusters are aligned tables within the width (1,078 and 391 columns before).
run networks
check "networks fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
check "networks header" grep -q '^name  *layers  *params  *fwd/sample  *input  *dtype  *batch  *description$' "$work/stdout"
check "networks: vgg16's default batch 256 in its column" grep -Eq '^vgg16 +40 +138\.4 M +31\.0 GFLOP +3x224x224 +fp32 +256 ' "$work/stdout"
run clusters
check "clusters fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
check "clusters: dgx-a100 has fp16 and bf16 rates" grep -Eq '^dgx-a100 +140 x 8 +80\.0 GiB +[0-9.]+ +[0-9.]+ +[0-9.]+ ' "$work/stdout"
COLUMNS=200 run networks
check "COLUMNS=200 gives the descriptions more room" test "$(widest "$work/stdout")" -gt 120
run inspect --net gpt3-175b --layers all
check "inspect --layers all lists h.95" grep -q '^h\.95\.attn ' "$work/stdout"

# ONNX layer names ("/layer1/layer1.0/downsample/downsample.1/BatchNormalization") made inspect
# 166 columns wide. A path prefix shared by a run of rows is written once above them and longer
# names continue on the next line, so every name can still be read whole: the names put back
# together from the table equal the CSV's (a shortened "/layer1/.../Conv" would not).
run inspect --net tests/data/onnx/resnet50.onnx
check "inspect resnet50.onnx succeeds" test "$status" -eq 0
check "inspect resnet50.onnx fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
cp "$work/stdout" "$work/onnx.txt"
# The names read back (these have no spaces): a line of one word has no cells; it is a group's
# prefix when it is not indented, or the rest of the name above it when it is.
awk 'NR > 1 && /^layer  *kind / { col = index($0, "kind"); next }
     col && /^---/ { table = 1; next }
     table && /^$/ { if (name != "") print name; exit }
     table {
         if (NF == 1) {
             if ($0 ~ /^  /) { sub(/^ +/, ""); name = name $0 } else { if (name != "") print name; name = ""; prefix = $0 }
             next
         }
         if (name != "") print name
         cell = substr($0, 1, col - 1); sub(/ +$/, "", cell)
         if (cell ~ /^  /) { sub(/^ +/, "", cell); name = prefix cell } else { name = cell; prefix = "" }
     }' "$work/onnx.txt" >"$work/names.txt"
run inspect --net tests/data/onnx/resnet50.onnx --format csv
tail -n +2 "$work/stdout" | cut -d, -f1 >"$work/csv-names.txt"
check "inspect resnet50.onnx: every name read back whole ($(wc -l <"$work/names.txt") of $(wc -l <"$work/csv-names.txt"))" \
    cmp -s "$work/names.txt" "$work/csv-names.txt"
check "inspect resnet50.onnx: layer2.0's conv1 apart from layer1.0's" grep -q '^/layer2/layer2\.0/$' "$work/onnx.txt"
# sweep's text table (147 columns with a pipeline's label): the best plan's label continues
# under itself; the label read back whole equals the CSV's.
run sweep --net resnet50 --procs 8,16 --format text
check "sweep text succeeds" test "$status" -eq 0
check "sweep text fits 120 columns ($(widest "$work/stdout"))" test "$(widest "$work/stdout")" -le 120
check "sweep text: a label continues under the best plan column" \
    grep -Eq "^ {$(($(head -1 "$work/stdout" | sed 's/best plan.*//' | wc -c) - 1))}[^ ]" "$work/stdout"
COLUMNS=200 run sweep --net resnet50 --procs 8,16 --format text
check "sweep text at COLUMNS=200: a line per configuration" test "$(lines "$work/stdout")" -eq 5
COLUMNS=200 run inspect --net tests/data/onnx/resnet50.onnx
check "COLUMNS=200: ONNX names on one line" grep -q '^/layer1/layer1\.0/downsample/downsample\.1/BatchNormalization ' "$work/stdout"
# A search narrowed to pipelines (--recompute alone) scores no pure-batch plan: said as such, not
# as "infeasible"; vgg16 at P = 4096 > its batch 256 has an infeasible pure batch.
run --net gpt2 --procs 8 --cluster dgx-a100 --recompute full
check "narrowed search: pure batch not scored" grep -q 'pure batch was not scored' "$work/stdout"
run --net vgg16 --procs 4096
check "P above the batch: pure batch infeasible" grep -q 'best: .*pure batch is infeasible' "$work/stdout"
finish
