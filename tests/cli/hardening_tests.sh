#!/usr/bin/env bash
# Hardening tests (issue 19), one or more per finding of the reliability review
# (/work/shared/reviews/reliability-attack.md, M1..M18): inputs that are not regular files, output
# files that cannot be redirected, infeasible results that write nothing, plan sources reported on
# the plan, CSV formula injection and control characters, validate's launcher and signals.
# Expected values are stated independently of the program's output. CTest runs it with
# DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repository root>.
. "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" hardening
H=tests/data/hardening

# run_bounded SECONDS ARGS...: like run, but a hang is ended and shows as status 124.
run_bounded() {
    local seconds=$1
    shift
    timeout -k 2 "$seconds" "$DNNPLAN" "$@" >"$work/stdout" 2>"$work/stderr"
    status=$?
}
one_line_error() { [ "$status" -eq 2 ] && stdout_empty && [ "$(wc -l <"$work/stderr")" -eq 1 ]; }

# --- M5: a FIFO given as any input is refused at once, naming it (no reader ever blocks). ------------
mkfifo "$work/fifo" "$work/fifo.onnx" "$work/fifo.json"
fifo_message="$work/fifo: is a FIFO (named pipe), expected a regular file"
for args in "inspect --net $work/fifo" "--net lenet5 --procs 4 --cluster $work/fifo" "plan --plan $work/fifo" \
    "simulate --plan $work/fifo" "report --net lenet5 --procs 4 --simulated $work/fifo" \
    "report --net lenet5 --procs 4 --measured $work/fifo"; do
    read -r -a argv <<<"$args"
    run_bounded 10 "${argv[@]}"
    check "FIFO refused at once: dnnplan $args" one_line_error
    check "FIFO named in the message: dnnplan $args" stderr_is "$fifo_message"
done
run_bounded 10 inspect --net "$work/fifo.onnx"
check "an ONNX FIFO is refused at once" one_line_error
check "an ONNX FIFO is named" grep -qF "$work/fifo.onnx: " "$work/stderr"
run_bounded 10 simulate --plan "$H/plan_relative_source.json" --platform "$work/fifo"
check "a FIFO --platform is refused at once" one_line_error
check "a FIFO --platform is named" stderr_is "$fifo_message"
# A plan whose network.source is a FIFO.
python3 - "$H/plan_relative_source.json" "$work/plan_fifo_source.json" "$work/fifo.json" <<'EOF'
import json, sys
plan = json.load(open(sys.argv[1]))
plan["network"]["source"] = sys.argv[3]
json.dump(plan, open(sys.argv[2], "w"))
EOF
run_bounded 10 plan --plan "$work/plan_fifo_source.json"
check "a plan's FIFO network.source is refused at once" one_line_error
check "a plan's FIFO network.source is named" stderr_is "$work/fifo.json: is a FIFO (named pipe), expected a regular file"
run_bounded 10 inspect --net /dev/null
check "a device is refused" stderr_is "/dev/null: is not a regular file"

# --- M6, M7, M11: --out cannot be redirected or hung, and takes any valid name. -----------------------
mkdir "$work/o"
printf 'ORIGINAL\n' >"$work/o/victim.txt"
ln -s victim.txt "$work/o/plan.json"
run_bounded 30 --net lenet5 --procs 4 --out "$work/o/plan.json"
check "--out over a planted symlink exits 0" [ "$status" -eq 0 ]
check "the symlink's target is left alone" bash -c '[ "$(cat "$1")" = ORIGINAL ]' _ "$work/o/victim.txt"
check "the symlink is replaced by a regular file" bash -c '[ -f "$1" ] && [ ! -L "$1" ]' _ "$work/o/plan.json"
check "the replacing file is the plan" grep -q '"format": "dnnplan-plan"' "$work/o/plan.json"
mkfifo "$work/o/fifo_out.json"
run_bounded 30 --net lenet5 --procs 4 --out "$work/o/fifo_out.json"
check "--out over a FIFO does not hang" [ "$status" -eq 0 ]
check "--out over a FIFO replaces it with the plan" bash -c '[ -f "$1" ] && [ ! -p "$1" ]' _ "$work/o/fifo_out.json"
# Predictable temporary names (PATH.tmp.PID) planted for every pid near ours are never used.
for i in $(seq 0 50); do mkfifo "$work/o/p.json.tmp.$(($$ + i))"; done
run_bounded 30 --net lenet5 --procs 4 --out "$work/o/p.json"
check "planted FIFOs at guessable temporary names do not hang --out" [ "$status" -eq 0 ]
rm -f "$work"/o/p.json.tmp.*
long=$(printf 'o%.0s' $(seq 250)).json  # 255 bytes: NAME_MAX
run_bounded 30 --net lenet5 --procs 4 --out "$work/o/$long"
check "a 255-byte --out name works" [ "$status" -eq 0 ]
check "the 255-byte file is written" [ -s "$work/o/$long" ]
printf 'read-only\n' >"$work/o/ro.json"
chmod 0444 "$work/o/ro.json"
run_bounded 30 --net lenet5 --procs 4 --out "$work/o/ro.json"
check "a read-only --out file keeps its mode 0444" bash -c '[ "$(stat -c %a "$1")" = 444 ]' _ "$work/o/ro.json"
check "no temporary file is left in the output directory" \
    bash -c '[ -z "$(ls -A "$1" | grep -v -e "^victim.txt$" -e "^plan.json$" -e "^fifo_out.json$" -e "^p.json$" -e "^ro.json$" -e "^o*\.json$")" ]' _ "$work/o"
# System files are written in place, never replaced (a /dev/stdout symlink stays a symlink).
run_bounded 30 inspect --net lenet5 --format json --out /dev/stdout
check "--out /dev/stdout writes the document to standard output" \
    python3 -c 'import json,sys; assert json.load(sys.stdin)["totals"]["params"] > 0' <"$work/stdout"
run_bounded 30 --net lenet5 --procs 4 --out /dev/null
check "--out /dev/null exits 0" [ "$status" -eq 0 ]
check "/dev/null is still a character device" test -c /dev/null
run_bounded 30 --net lenet5 --procs 4 --out ""
check "an empty --out is refused" stderr_is "dnnplan: --out: the output file name is empty"

# --- M1, M2: infeasible results exit 1 with the reason and write no --out file. -----------------------
run_bounded 30 plan --plan "$H/plan_infeasible.json" --out "$work/inf.json"
check "re-scoring an infeasible plan exits 1" [ "$status" -eq 1 ]
check "re-scoring an infeasible plan gives its reason" \
    grep -q "^dnnplan: the plan is infeasible: needs .* per process.*more than the device's .*; $work/inf.json was not written$" "$work/stderr"
check "re-scoring an infeasible plan writes no --out file" [ ! -e "$work/inf.json" ]
run_bounded 60 --net gpt3-175b --procs 8 --cluster dgx-a100 --stages 2 --out "$work/inf2.json"
check "an infeasible explicit pipeline exits 1" [ "$status" -eq 1 ]
check "an infeasible explicit pipeline gives its reason" grep -q '^dnnplan: this pipeline is infeasible: ' "$work/stderr"
check "an infeasible explicit pipeline writes no --out file" [ ! -e "$work/inf2.json" ]
run_bounded 120 report --net gpt3-175b --procs 8 --cluster dgx-a100 --no-scaling --out "$work/inf3.html"
check "an infeasible report exits 1" [ "$status" -eq 1 ]
check "an infeasible report gives the reasons" grep -q 'more than the device' "$work/stderr"
check "an infeasible report writes no --out file" [ ! -e "$work/inf3.html" ]
# A feasible re-score writes the plan as JSON to --out (its help says so), whatever --format.
run_bounded 30 plan --plan "$H/plan_relative_source.json" --out "$work/rescored.json"
check "a feasible re-score exits 0" [ "$status" -eq 0 ]
check "a feasible re-score writes JSON to --out" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["format"] == "dnnplan-plan"' "$work/rescored.json"

# --- M9: plan sources are reported on the plan, and relative ones resolve beside it. -------------------
run_bounded 30 plan --plan "$H/plan_unknown_source.json"
check "an unknown network.source is reported on the plan" \
    grep -q "^$H/plan_unknown_source.json: /network/source: \"no_such_net_x\": no such file or built-in network" "$work/stderr"
run_bounded 30 plan --plan "$H/plan_relative_source.json"
check "a relative network.source resolves beside the plan" [ "$status" -eq 0 ]
check "the plan beside its network names it" grep -q '^dnnplan: mynet on cori-knl, P = 4' "$work/stdout"

# --- M3: a graph partition with a device out of range (k = 2, device_of[3] = 7): bad input, exit 2,
# the plan file and the entry's pointer, in plan and simulate alike; no --out file.
run_bounded 60 simulate --plan "$H/plan_device_of_7.json"
check "simulate: device 7 of 2 is bad input (exit 2)" [ "$status" -eq 2 ]
check "simulate names the plan file and the entry" \
    stderr_is "$H/plan_device_of_7.json: /pipeline/device_of/3: must be at most 1, got 7"
run_bounded 60 plan --plan "$H/plan_device_of_7.json" --out "$work/d7.json"
check "plan --plan: device 7 of 2 is bad input (exit 2)" [ "$status" -eq 2 ]
check "plan --plan names the plan file and the entry" \
    stderr_is "$H/plan_device_of_7.json: /pipeline/device_of/3: must be at most 1, got 7"
check "plan --plan with device 7 of 2 writes no --out file" [ ! -e "$work/d7.json" ]

# --- M10: a plan's batch that overflows names the plan, in simulate as in plan. ------------------------
run_bounded 30 simulate --plan tests/data/bad/plan_batch_overflow.json
check "simulate names the plan for an overflowing batch" \
    stderr_is "tests/data/bad/plan_batch_overflow.json: /batch: counts for batch 4611686018427387904 overflow 64-bit integers (network lenet5)"

# --- Simulating an infeasible plan says so (the replay has no notion of memory). ---------------------
run_bounded 120 simulate --plan "$H/plan_infeasible.json"
check "simulating an infeasible plan warns that it is infeasible" \
    grep -q "^dnnplan: warning: $H/plan_infeasible.json: the plan is infeasible (needs .* per process" "$work/stderr"

# --- M8: planning time and memory do not grow with the batch (alexnet at 2^31 took 12 GB before). ------
for args in "--net lenet5 --procs 4 --batch 16777216" "--net alexnet --procs 4 --batch 2147483648"; do
    read -r -a argv <<<"$args"
    # Under AddressSanitizer (tools/sanitize.sh sets ASAN_OPTIONS) the shadow memory needs terabytes
    # of address space, so the 4 GB limit applies to the plain build only; the time bound stays.
    ( [ -n "${ASAN_OPTIONS:-}" ] || ulimit -v 4000000
      run_bounded 30 "${argv[@]}"; [ "$status" -eq 0 ] || [ "$status" -eq 1 ] )
    check "a huge batch is planned within 30 s and 4 GB: dnnplan $args" [ "$?" -eq 0 ]
done

# --- M4: subnormal cluster constants never reach the output as nan or inf. -----------------------------
for f in cluster_subnormal_fraction cluster_subnormal_bandwidth cluster_tiny_peak; do
    run_bounded 30 --net lenet5 --procs 4 --cluster "tests/data/bad/$f.json"
    check "$f is refused" one_line_error
    check "$f gives the allowed range" grep -q 'must be between .* and .*, got ' "$work/stderr"
done

# --- Numeric options: reversed CLI11 ranges of 309 digits never appear. ------------------------------
run_bounded 30 report --net lenet5 --procs 4 --top 0
check "no 309-digit range in a CLI message" bash -c '! grep -q 1797693134862315708 "$1"' _ "$work/stderr"

# --- M13: ONNX names that are not UTF-8 are refused at import, naming the file, the node and the byte
# (every output needs text), in every command that reads the model; nothing is written.
for args in "inspect --net $H/badutf8_nodename.onnx --format json" "--net $H/badutf8_nodename.onnx --procs 2 --out $work/utf8.json"; do
    read -r -a argv <<<"$args"
    run_bounded 30 "${argv[@]}"
    check "invalid UTF-8 in an ONNX name is refused: dnnplan $args" one_line_error
    check "the message names the file, the node and the bad byte: dnnplan $args" \
        grep -Eq "^$H/badutf8_nodename.onnx: /graph/node/[0-9]+: node [0-9]+ \([A-Za-z]+\): its name \"\\\\xFFool\" is not valid UTF-8 \(byte 0\)$" "$work/stderr"
done
check "no --out file for a refused ONNX model" [ ! -e "$work/utf8.json" ]
mkfifo "$work/fifo2.onnx"
run_bounded 10 --net "$work/fifo2.onnx" --procs 2
check "an ONNX FIFO is refused by the planner too" stderr_is "$work/fifo2.onnx: is a FIFO (named pipe), expected a regular file"

# --- Options that would silently change the request. ---------------------------------------------
run_bounded 30 --net lenet5 --procs 4 --micro-batches 4
check "--micro-batches without --stages is refused (exit 2)" one_line_error
check "--micro-batches without --stages says what to add" \
    stderr_is "dnnplan: --micro-batches: applies to an explicit pipeline: give --stages S too (--stages 1 for micro-batches without pipelining)"
run_bounded 60 --net lenet5 --procs 4 --micro-batches 4 --stages 1
check "--micro-batches with --stages 1 is accepted" [ "$status" -eq 0 ]
# A sweep in which nothing can be planned (P above dgx-a100's 8 devices everywhere) is not a success.
run_bounded 60 sweep --net lenet5 --procs 100000,200000 --cluster dgx-a100 --out "$work/all_invalid.csv"
check "a sweep whose every row is invalid exits 1" [ "$status" -eq 1 ]
check "a sweep whose every row is invalid says so" grep -q '^dnnplan: sweep: every configuration is invalid' "$work/stderr"
check "a sweep whose every row is invalid gives each reason" grep -q '^  lenet5 on dgx-a100, P = 200000: .*exceeds the cluster' "$work/stderr"
check "a sweep whose every row is invalid writes no --out file" [ ! -e "$work/all_invalid.csv" ]

# --- --input-shape (issue 18): the symbolic height of an ONNX input is fixed from the command line. ---
sym=tests/data/onnx/bad/symbolic_height.onnx
run_bounded 30 inspect --net $sym --input-shape x=1x3x32x8 --format json
check "--input-shape fixes a symbolic height" [ "$status" -eq 0 ]
check "--input-shape: the Relu's output is 3 x 32 x 8 per sample" python3 -c '
import json, sys
layers = json.load(sys.stdin)["layers"]
assert layers[-1]["output_shape"] == [3, 32, 8], layers[-1]' <"$work/stdout"
run_bounded 30 --net $sym --procs 2 --input-shape x=1x3x32x8
check "--input-shape works when planning" [ "$status" -eq 0 ]
run_bounded 30 inspect --net $sym --input-shape x=1x3x32x9
check "--input-shape cannot change a fixed size" \
    stderr_is "$sym: --input-shape x: dimension 3 is fixed at 8 by the model, not 9 (Nx3x<height>x8)"
run_bounded 30 inspect --net $sym --input-shape y=1x3x32x8
check "--input-shape names an input the model has" stderr_is "$sym: --input-shape: the model has no graph input \"y\" (its inputs: \"x\")"
for bad in x=1x3x0x8 x=1x3xx8 x= =1x3 x1x3 x=1x3x32x8x; do
    run_bounded 30 inspect --net $sym --input-shape "$bad"
    check "--input-shape $bad is refused (exit 2)" one_line_error
done

# --- M18: CSV formula injection and control characters. ---------------------------------------------
# evil_names.json names layers "=HYPERLINK(...)", "+1+1", "@SUM(A1)", "-2+3", TAB "cmd", and one with
# BEL and ESC; the network's name has an OSC title sequence.
csv_safe() {
    python3 -c '
import csv, re, sys
number = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-?(inf|nan)$")
rows = list(csv.reader(sys.stdin))
bad = [c for r in rows for c in r if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number.match(c)]
ctrl = [c for r in rows for c in r if any(ord(ch) < 32 or ord(ch) == 127 for ch in c)]
assert not bad and not ctrl, (bad, ctrl)
quoted = {c for r in rows for c in r}
for name in ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "@SUM(A1)", "-2+3"]:
    assert "\x27" + name in quoted, name
'
}
run_bounded 30 inspect --net "$H/evil_names.json" --format csv
check "inspect csv: no cell starts a formula, names are prefixed with '" csv_safe <"$work/stdout"
run_bounded 60 report --net "$H/evil_names.json" --procs 4 --no-scaling --format csv
check "report csv: no cell starts a formula" bash -c 'python3 -c "
import csv,sys,re
number = re.compile(r\"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$\")
cells=[c for r in csv.reader(sys.stdin) for c in r]
assert not [c for c in cells if c[:1] in \"=+-@\t\r\" and c and not number.match(c)]
assert not [c for c in cells if any(ord(ch)<32 for ch in c)]" <"$1"' _ "$work/stdout"
run_bounded 60 sweep --net "$H/evil_names.json" --procs 4
check "sweep csv: the network name carries no control character" bash -c '! grep -q $'"'"'[\x01-\x08\x0b-\x1f\x7f]'"'"' "$1"' _ "$work/stdout"
for format in md html; do
    run_bounded 60 report --net "$H/evil_names.json" --procs 4 --no-scaling --format $format
    check "report $format exits 0" [ "$status" -eq 0 ]
    check "report $format has no raw ESC or BEL" bash -c '! grep -q $'"'"'[\x07\x1b]'"'"' "$1"' _ "$work/stdout"
    check "report $format shows the ESC as \\x1b" grep -qF '\x1b' "$work/stdout"
done
run_bounded 30 --net "$H/evil_names.json" --procs 4
check "the terminal output has no raw ESC or BEL" bash -c '! grep -q $'"'"'[\x07\x1b]'"'"' "$1"' _ "$work/stdout"

# --- M12, M14, M15: validate's launcher, timeout and signals (with the MPI worker built). ----------------
if [ -x "$(dirname "$DNNPLAN")/dnnplan-validate" ] && command -v mpirun >/dev/null; then
    plan=tests/validators/data/lenet5-p4.json
    # A private TMPDIR (validate's status directories and Open MPI's session files go there), so
    # the globs below never see the runs of tests running beside this one.
    export TMPDIR="$work/tmp"
    mkdir -p "$TMPDIR"
    run_bounded 30 validate --plan $plan --np 4 --mpirun /nonexistent
    check "a missing --mpirun is a usage error" stderr_is "dnnplan: --mpirun: /nonexistent is not an executable file"
    check "a missing --mpirun exits 2" [ "$status" -eq 2 ]
    run_bounded 30 validate --plan $plan --np 4 --mpirun no-such-mpirun-here
    check "an --mpirun not on the PATH exits 2" [ "$status" -eq 2 ]
    check "an --mpirun not on the PATH says so" grep -q '^dnnplan: --mpirun: no-such-mpirun-here is not on the PATH' "$work/stderr"
    # An mpirun that fails with a message of its own: its status and its words are reported.
    printf '#!/bin/sh\necho "mpirun: cannot reach the daemons" >&2\nexit 7\n' >"$work/failing-mpirun"
    chmod +x "$work/failing-mpirun"
    run_bounded 30 validate --plan $plan --np 4 --mpirun "$work/failing-mpirun"
    check "an mpirun that fails on its own is exit 3" [ "$status" -eq 3 ]
    check "an mpirun that fails on its own: its message is shown" grep -qx 'mpirun: cannot reach the daemons' "$work/stderr"
    check "an mpirun that fails on its own: its status is given" grep -q '^dnnplan: the MPI run failed with status 7' "$work/stderr"
    # M15: a timeout of 0, negative or not a number would switch the watchdog off: refused.
    for t in 0 -1 nan inf; do
        run_bounded 30 validate --plan $plan --np 4 --timeout $t
        check "validate --timeout $t is refused (exit 2)" one_line_error
        run_bounded 30 sweep --net lenet5 --procs 4 --timeout $t
        check "sweep --timeout $t is refused (exit 2)" one_line_error
    done
    run_bounded 30 validate --plan $plan --np 4 --mpirun /bin/false
    check "an mpirun that exits 1 silently is exit 3" [ "$status" -eq 3 ]
    check "an mpirun that exits 1 silently is explained" \
        stderr_is "dnnplan: /bin/false exited with status 1 without starting the worker and without a message; the run was ended"
    run_bounded 30 calibrate --np 2 --out "$work/c.json" --mpirun /bin/false
    check "calibrate: an mpirun that exits 1 silently is exit 3" [ "$status" -eq 3 ]
    check "calibrate: no --out file" [ ! -e "$work/c.json" ]
    # M16: a rank frozen in start-up (MPI_Init) cannot hold the other ranks for ever: after --timeout
    # the run ends (exit 3), naming the stopped rank; every process of the job is gone.
    started=$(date +%s)
    timeout -k 2 60 mpirun --oversubscribe -np 3 "$DNNPLAN" sweep --net lenet5 --procs 4 --timeout 3 \
        --inject-fault freeze:2 >"$work/stdout" 2>"$work/stderr"
    status=$?
    check "sweep: a rank frozen in MPI_Init ends the sweep with exit 3" [ "$status" -eq 3 ]
    check "sweep: ... within the timeout and a few seconds" [ $(($(date +%s) - started)) -le 20 ]
    check "sweep: the frozen rank is named" grep -q 'did not finish within 3 s; rank 2 is stopped' "$work/stderr"
    check "sweep: no rank is left behind" bash -c '! pgrep -f "dnnplan sweep --net lenet5 --procs [4] --timeout 3" >/dev/null'
    # rank_pid ANCESTOR RANK: the pid of MPI rank RANK descending from ANCESTOR ("" until it exists).
    rank_pid() {
        local p q
        for p in $(pgrep -f dnnplan-validate); do
            { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" || continue
            q=$p
            while [ -n "$q" ] && [ "$q" -gt 1 ]; do
                q=$(awk '{print $4}' "/proc/$q/stat" 2>/dev/null)
                if [ "$q" = "$1" ]; then echo "$p"; return; fi
            done
        done
    }
    # validate: rank 2 stopped as soon as it exists (in start-up, usually in MPI_Init). Whether the
    # stop lands before or after the ranks' own watchdogs start, rank 2 must be the one named.
    started=$(date +%s)
    "$DNNPLAN" validate --plan $plan --np 4 --timeout 3 --iterations 100000 >"$work/v.out" 2>"$work/v.err" &
    pid=$!
    for _ in $(seq 2000); do r=$(rank_pid $pid 2); [ -n "$r" ] && break; sleep 0.01; done
    [ -n "$r" ] && kill -STOP "$r"
    wait $pid
    status=$?
    check "validate: a rank frozen in start-up ends the run with exit 3" [ "$status" -eq 3 ]
    check "validate: ... within the timeout and a few seconds" [ $(($(date +%s) - started)) -le 25 ]
    check "validate: the rank frozen in start-up is named" \
        grep -Eq '^dnnplan: (the MPI start-up .*rank 2 is stopped|rank 2 stopped responding)' "$work/v.err"
    for _ in $(seq 50); do kill -0 "$r" 2>/dev/null || break; sleep 0.1; done
    check "validate: the frozen rank is gone" bash -c '! kill -0 "$1" 2>/dev/null' _ "$r"
    # M17: rank 3 frozen mid-run: the ranks waiting for it name rank 3, not themselves.
    "$DNNPLAN" validate --plan $plan --np 4 --timeout 3 --iterations 100000 >"$work/v.out" 2>"$work/v.err" &
    pid=$!
    for _ in $(seq 2000); do [ -n "$(ls "$TMPDIR"/dnnplan-validate.*/rank3.step 2>/dev/null)" ] && break; sleep 0.01; done
    sleep 1
    r=$(rank_pid $pid 3)
    [ -n "$r" ] && kill -STOP "$r"
    wait $pid
    status=$?
    check "validate: a rank frozen mid-run ends the run with exit 3" [ "$status" -eq 3 ]
    check "validate: the frozen rank 3 is named, with the rank that waited for it" \
        grep -Eq "^dnnplan: rank 3 stopped responding \(frozen: no heartbeat for [0-9.]+ s\) in step '[^']+'; rank [012] waited for it past the timeout of 3 s; the run was ended$" "$work/v.err"
    # --simulate-top K under mpirun: the K replays are shared out; the table is the serial one.
    run_bounded 300 --net lenet5 --procs 4 --simulate-top 3
    cp "$work/stdout" "$work/serial.txt"
    check "--simulate-top 3 serially exits 0" [ "$status" -eq 0 ]
    check "--simulate-top 3 serially simulates 3 candidates" [ "$(grep -c '^simulating candidate' "$work/stderr")" -eq 3 ]
    timeout -k 2 300 mpirun --oversubscribe -np 2 "$DNNPLAN" --net lenet5 --procs 4 --simulate-top 3 \
        >"$work/stdout" 2>"$work/stderr"
    check "--simulate-top 3 under mpirun -np 2 exits 0" [ "$?" -eq 0 ]
    check "--simulate-top 3 under mpirun prints exactly the serial output" cmp -s "$work/serial.txt" "$work/stdout"
    check "--simulate-top 3 under mpirun: rank 1 simulated candidate 2" grep -q '^rank 1: simulating candidate 2 of 3' "$work/stderr"
    check "--simulate-top 3 under mpirun: rank 0 simulated candidates 1 and 3" \
        [ "$(grep -c '^rank 0: simulating candidate [13] of 3' "$work/stderr")" -eq 2 ]
    # sweep --simulate-top K: each configuration's K best replayed, the same rows under mpirun.
    run_bounded 300 sweep --net lenet5 --procs 4,8 --cluster dgx-a100 --simulate-top 2 --format json
    cp "$work/stdout" "$work/sweep_serial.json"
    check "sweep --simulate-top 2 serially exits 0" [ "$status" -eq 0 ]
    check "sweep --simulate-top 2: two replays per row, best simulated first, the analytical ranks 1 and 2" python3 -c '
import json, sys
rows = json.load(sys.stdin)["rows"]
assert len(rows) == 2
for row in rows:
    sims = row["simulated"]
    assert sorted(s["analytical_rank"] for s in sims) == [1, 2], sims
    assert all(s["simulated_s"] > 0 and s["predicted_s"] > 0 for s in sims), sims
    assert sims[0]["simulated_s"] <= sims[1]["simulated_s"], sims' <"$work/stdout"
    timeout -k 2 300 mpirun --oversubscribe -np 2 "$DNNPLAN" sweep --net lenet5 --procs 4,8 --cluster dgx-a100 \
        --simulate-top 2 --format json >"$work/stdout" 2>"$work/stderr"
    check "sweep --simulate-top 2 under mpirun -np 2 exits 0" [ "$?" -eq 0 ]
    check "sweep --simulate-top 2 under mpirun gives the serial rows (wall times aside)" python3 -c '
import json, sys
def strip(d):
    for row in d["rows"]:
        for s in row["simulated"]: s.pop("wall_s", None)
    return d
a, b = (strip(json.load(open(f))) for f in sys.argv[1:3])
assert a == b' "$work/sweep_serial.json" "$work/stdout"
    run_bounded 30 sweep --net lenet5 --procs 4 --simulate-top 2
    check "sweep --simulate-top with CSV is refused" one_line_error
    # SIGTERM to dnnplan: the ranks end, the status directory goes, no --out file appears later.
    before=$(ls -d "$TMPDIR"/dnnplan-validate.* 2>/dev/null | wc -l)
    "$DNNPLAN" validate --plan $plan --np 4 --inject-fault hang:2:fc2 --timeout 60 --out "$work/v.json" \
        >"$work/v.out" 2>"$work/v.err" &
    pid=$!
    # Wait for the ranks to start (up to 20 s), then terminate dnnplan alone.
    for _ in $(seq 200); do
        [ -n "$(pgrep -P "$(pgrep -P $pid | head -1)" 2>/dev/null)" ] && break
        sleep 0.1
    done
    launcher=$(pgrep -P $pid | head -1)
    kill -TERM $pid
    wait $pid
    check "SIGTERM to validate ends it with status 143" [ "$?" -eq 143 ]
    sleep 1
    check "SIGTERM to validate ends mpirun too" bash -c '[ -z "$1" ] || ! kill -0 "$1" 2>/dev/null' _ "$launcher"
    check "SIGTERM to validate removes its status directory" \
        [ "$(ls -d "$TMPDIR"/dnnplan-validate.* 2>/dev/null | wc -l)" -le "$before" ]
    check "SIGTERM to validate says so" grep -q '^dnnplan: interrupted (Terminated); the MPI run was ended$' "$work/v.err"
    check "SIGTERM to validate writes no --out file" [ ! -e "$work/v.json" ]
fi

finish
