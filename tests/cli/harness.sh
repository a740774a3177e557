# Shared by the shell tests of the dnnplan binary (sourced, not run). CTest runs each script with
# DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repository root>; a script sources this file as
#   . "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" NAME
# and ends with `finish`. Relative fixture paths keep expected messages independent of where the
# checkout lives, so everything runs from the repository root, in a scratch folder $work.
set -u
: "${DNNPLAN:?set DNNPLAN to the dnnplan binary}"
: "${DNNPLAN_SOURCE_DIR:?set DNNPLAN_SOURCE_DIR to the repository root}"
cd "$DNNPLAN_SOURCE_DIR" || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/dnnplan-${1:-test}.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); }
not_ok() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
# check DESCRIPTION COMMAND...: one assertion, counted (the command's own output is not shown).
check() {
    local what=$1
    shift
    if "$@" >/dev/null; then ok; else not_ok "$what"; fi
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

# Prints "N passed, M failed" and fails the script when anything failed (or nothing ran).
finish() {
    echo "$passed passed, $failed failed"
    [ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]
}
