#!/usr/bin/env bash
# The sweep under mpirun -np 3 (and -np 2) must write exactly the file the serial sweep writes.
# CTest runs it with DNNPLAN=<binary>, MPIRUN=<mpirun> and DNNPLAN_SOURCE_DIR=<repository root>.
set -u
: "${DNNPLAN:?}" "${DNNPLAN_SOURCE_DIR:?}"
MPIRUN=${MPIRUN:-mpirun}
cd "$DNNPLAN_SOURCE_DIR" || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/dnnplan-sweep.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

# 2 networks x 3 clusters x 6 process counts = 36 configurations, some invalid (dgx-a100 has
# fewer devices than 4096? no: the list stays within every preset) and some infeasible.
args=(sweep --net lenet5,smallcnn --cluster cori-knl,dgx-a100,frontera --procs 1:32)
"$DNNPLAN" "${args[@]}" --out "$work/serial.csv" 2>"$work/serial.err" || fail "serial sweep exited $?"
# Only the line confirming the file (no progress bar when not a terminal).
grep -qv '^wrote .* configurations: ' "$work/serial.err" && fail "serial sweep wrote to stderr: $(head -c 300 "$work/serial.err")"
lines=$(wc -l <"$work/serial.csv")
[ "$lines" -eq 37 ] || fail "serial sweep: $lines lines, expected 1 header + 36 rows"

for np in 3 2; do
    "$MPIRUN" --allow-run-as-root --oversubscribe -np "$np" "$DNNPLAN" "${args[@]}" --out "$work/mpi$np.csv" \
        >"$work/mpi$np.out" 2>"$work/mpi$np.err" || fail "mpirun -np $np exited $?: $(head -c 300 "$work/mpi$np.err")"
    cmp -s "$work/serial.csv" "$work/mpi$np.csv" || fail "mpirun -np $np: the file differs from the serial sweep"
done

# Written to stdout (no --out), only rank 0 prints: the same bytes again.
"$MPIRUN" --allow-run-as-root --oversubscribe -np 3 "$DNNPLAN" "${args[@]}" >"$work/stdout.csv" 2>/dev/null ||
    fail "mpirun to stdout exited $?"
cmp -s "$work/serial.csv" "$work/stdout.csv" || fail "mpirun -np 3 to stdout differs from the serial sweep"

# A bad input under mpirun: one message (from rank 0 only), exit status 2, no file.
"$MPIRUN" --allow-run-as-root --oversubscribe -np 3 "$DNNPLAN" sweep --net lenet5,nosuchnet --procs 1:4 \
    --out "$work/bad.csv" >"$work/bad.out" 2>"$work/bad.err"
status=$?
[ "$status" -ne 0 ] || fail "bad input under mpirun exited 0"
[ -e "$work/bad.csv" ] && fail "bad input under mpirun wrote a file"
n=$(grep -c "nosuchnet" "$work/bad.err")
[ "$n" -eq 1 ] || fail "bad input under mpirun: $n messages naming nosuchnet, expected 1: $(cat "$work/bad.err")"

# Faults (issue 9): a rank that dies is named by mpirun; a rank that hangs is named by rank 0
# after --timeout; either way the exit status is non-zero and no result file is written.
"$MPIRUN" --allow-run-as-root --oversubscribe -np 3 "$DNNPLAN" "${args[@]}" --out "$work/killed.csv" \
    --inject-fault kill:1 >"$work/killed.out" 2>"$work/killed.err"
status=$?
[ "$status" -ne 0 ] || fail "a killed rank: exit status 0"
grep -q "process rank 1 .*exited on signal 9" "$work/killed.err" || fail "a killed rank is not named: $(head -c 400 "$work/killed.err")"
[ -e "$work/killed.csv" ] && fail "a killed rank: a result file was written"

start=$(date +%s)
timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe -np 3 "$DNNPLAN" "${args[@]}" --out "$work/hung.csv" \
    --inject-fault hang:2 --timeout 2 >"$work/hung.out" 2>"$work/hung.err"
status=$?
elapsed=$(($(date +%s) - start))
[ "$status" -ne 0 ] || fail "a hung rank: exit status 0"
[ "$status" -ne 124 ] || fail "a hung rank was not detected within 120 s"
grep -q "^dnnplan: sweep: rank 2 sent no results within 2 s" "$work/hung.err" ||
    fail "a hung rank is not named: $(head -c 400 "$work/hung.err")"
[ "$elapsed" -lt 60 ] || fail "a hung rank took $elapsed s to be reported with --timeout 2"
[ -e "$work/hung.csv" ] && fail "a hung rank: a result file was written"

# Ranks given different inputs (an MPMD launch) are named before any configuration runs.
timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe -np 1 "$DNNPLAN" sweep --net lenet5 --procs 1:8 \
    --out "$work/mixed.csv" : -np 2 "$DNNPLAN" sweep --net smallcnn --procs 1:8 --out "$work/mixed.csv" \
    >"$work/mixed.out" 2>"$work/mixed.err"
status=$?
[ "$status" -ne 0 ] || fail "ranks with different inputs: exit status 0"
grep -q "^dnnplan: sweep: ranks 1, 2 were given different inputs than rank 0" "$work/mixed.err" ||
    fail "ranks with different inputs are not named: $(head -c 400 "$work/mixed.err")"
[ -e "$work/mixed.csv" ] && fail "ranks with different inputs: a result file was written"

[ "$failed" -eq 0 ] && echo "sweep under mpirun: identical to the serial sweep ($((lines - 1)) configurations)"
exit "$failed"
