#!/usr/bin/env bash
# `dnnplan report` and `dnnplan sweep` on the built binary: formats by extension, the golden
# report, files written whole or not at all, and one-line diagnostics with exit status 2.
# CTest runs it with DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repository root>.
. "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" report
data=tests/data/reports

# The Markdown report on stdout is the reviewed golden file.
run report --net lenet5 --procs 4
check "report md on stdout equals the golden file" cmp -s "$work/stdout" "$data/lenet5_cori-knl_p4.md"
# Written to a file, it embeds its charts as SVG files beside it, each confirmed on stderr.
run report --net lenet5 --procs 4 --out "$work/l.md"
check "report .md exits 0" [ "$status" -eq 0 ]
check "report with --out prints nothing on stdout" [ ! -s "$work/stdout" ]
check "report .md links its time chart" grep -qx '!\[Time per iteration by component\](l-time.svg)' "$work/l.md"
check "the time chart is an SVG file beside it" grep -q '^<svg xmlns="http://www.w3.org/2000/svg"' "$work/l-time.svg"
check "the Gantt chart is written too" test -s "$work/l-timeline.svg"
check "every written file is confirmed" grep -qx 'wrote .*/l.md (Markdown, best: .*)' "$work/stderr"

# Formats follow the extension; --format overrides it.
run report --net lenet5 --procs 4 --out "$work/l.html"
check "html starts with a doctype" grep -q '^<!DOCTYPE html>' "$work/l.html"
check "html has inline svg" grep -q '<svg xmlns="http://www.w3.org/2000/svg"' "$work/l.html"
check "html has no script" bash -c "! grep -qi '<script' '$work/l.html'"
run report --net lenet5 --procs 4 --out "$work/l.json"
check "json parses" python3 -c "import json,sys; d=json.load(open('$work/l.json')); sys.exit(0 if d['format']=='dnnplan-report' else 1)"
run report --net lenet5 --procs 4 --format csv
check "csv to stdout" grep -q '^table,rank,strategy,pr,pc,family,tensor,stages,replicas,micro_batches,micro_batch_size,schedule,interleave,zero,recompute,sequence_parallel,processes_per_node,iteration_s,' "$work/stdout"

# A saved plan's training-software options (written by `plan --out` from the typed options) are
# rows of the report's inputs table, in every format.
run --net networks/gpt2.json --procs 4 --cluster dgx-a100 --batch 8 --dtype fp16 --tensor 2 --stages 2 \
  --replicas 1 --micro-batches 4 --schedule 1f1b --grad-accumulation autograd --mixed-precision-step deepspeed \
  --boundary-send deepspeed --out "$work/ds.json"
check "the plan with DeepSpeed's options is saved" [ "$status" -eq 0 ]
run report --plan "$work/ds.json" --format csv
check "report csv: gradient accumulation" grep -qx 'inputs,gradient accumulation,autograd,' "$work/stdout"
check "report csv: optimizer step" grep -qx 'inputs,mixed-precision optimizer step,deepspeed,' "$work/stdout"
check "report csv: boundary sends" grep -qx 'inputs,pipeline boundary sends,deepspeed,' "$work/stdout"
run report --plan "$work/ds.json" --format md
check "report md: gradient accumulation" grep -qx '| gradient accumulation | autograd |' "$work/stdout"
check "report md: boundary sends" grep -qx '| pipeline boundary sends | deepspeed |' "$work/stdout"

# With simulated and measured results beside the prediction.
run report --net lenet5 --procs 4 --simulated "$data/simulated.json" --measured "$data/measured.json" --out "$work/c.md"
check "report with results exits 0" [ "$status" -eq 0 ]
check "comparison table present" grep -q '^### Predicted, simulated and measured' "$work/c.md"

# Bad input: exit 2, one line naming the file and pointer, no output file.
run report --net lenet5 --procs 4 --measured "$data/bad_measured.json" --out "$work/bad.html"
check "bad measured file exits 2" [ "$status" -eq 2 ]
check "bad measured file message" diff <(printf '%s\n' "$data/bad_measured.json: /plans/0/measured: missing required field \"iteration_s\"") "$work/stderr"
check "bad measured file leaves no file" [ ! -e "$work/bad.html" ]
# A simulated result for another plan is refused (issue 18, item 4): simulate writes the plan's identity.
run --net lenet5 --procs 4 --out "$work/l4.json"
run simulate --plan "$work/l4.json" --topology star --format json --out "$work/sim.json"
check "simulate exits 0" [ "$status" -eq 0 ]
check "simulate names the plan" python3 -c "import json,sys; p=json.load(open('$work/sim.json'))['plan']; sys.exit(0 if (p['network'], p['procs'], p['batch'], p['cluster']) == ('lenet5', 4, 64, 'cori-knl') else 1)"
run report --net lenet5 --procs 4 --simulated "$work/sim.json" --out "$work/sim.md"
check "its own report accepts it" [ "$status" -eq 0 ]
run report --net lenet5 --procs 8 --simulated "$work/sim.json" --out "$work/bad.html"
check "another P is refused" [ "$status" -eq 2 ]
check "another P message" diff <(printf '%s\n' "$work/sim.json: /plan/procs: the result is for P = 4, not the report's P = 8") "$work/stderr"
run report --net lenet5 --procs 4 --batch 32 --simulated "$work/sim.json" --out "$work/bad.html"
check "another batch is refused" grep -q '/plan/batch: the result is for batch 64' "$work/stderr"
run report --net lenet5 --procs 4 --cluster dgx-a100 --simulated "$work/sim.json" --out "$work/bad.html"
check "another cluster is refused" grep -q '/plan/cluster: the result is for cluster cori-knl' "$work/stderr"
run report --net smallcnn --procs 4 --simulated "$work/sim.json" --out "$work/bad.html"
check "another network is refused" grep -q '/plan/fingerprint: the result is for network "lenet5"' "$work/stderr"
check "refusals leave no file" [ ! -e "$work/bad.html" ]
run report --net lenet5 --procs 100000 --cluster dgx-a100 --out "$work/bad.html"
check "too many processes exits 2" [ "$status" -eq 2 ]
check "too many processes leaves no file" [ ! -e "$work/bad.html" ]
run report --net lenet5 --procs 4 --format pdf
check "unknown format exits 2" [ "$status" -eq 2 ]

# An existing output file is replaced whole, or kept when the run fails.
echo "previous" >"$work/keep.md"
run report --net nosuchnet --procs 4 --out "$work/keep.md"
check "failed run keeps the previous file" grep -qx previous "$work/keep.md"

# Sweep: CSV when not a terminal (no progress bar), invalid configurations as rows.
run sweep --net lenet5 --procs 2:8,100000 --cluster dgx-a100 --out "$work/s.csv"
check "sweep exits 0" [ "$status" -eq 0 ]
check "sweep: header + 4 rows (P = 2, 4, 8, 100000)" [ "$(wc -l <"$work/s.csv")" -eq 5 ]
# No progress bar when not a terminal; one line confirming the file, with the count by status
# (P = 100000 exceeds dgx-a100's devices: invalid).
check "sweep: only the summary on stderr when not a terminal" stderr_is "wrote $work/s.csv (4 configurations: 3 ok, 0 infeasible, 1 invalid)"
run sweep --net lenet5 --procs 2:8 --cluster dgx-a100 --format text
check "sweep --format text: a table and its summary" grep -qx '3 configurations: 3 ok, 0 infeasible, 0 invalid' "$work/stdout"
check "sweep: P above the cluster is an invalid row" grep -q '^lenet5,dgx-a100,100000,,,invalid,' "$work/s.csv"
run sweep --net lenet5 --procs 2:8,100000 --cluster dgx-a100
check "sweep without --out prints the same CSV" cmp -s "$work/stdout" "$work/s.csv"
run sweep --net lenet5 --procs 8:4
check "sweep bad range exits 2" [ "$status" -eq 2 ]
check "sweep bad range message" diff <(printf '%s\n' 'dnnplan: --procs: range "8:4" ends below its start') "$work/stderr"
run sweep --net lenet5 --procs 1:4 --out "$work/s.json"
check "sweep json by extension" python3 -c "import json,sys; d=json.load(open('$work/s.json')); sys.exit(0 if len(d['rows'])==3 else 1)"

finish
