#!/usr/bin/env bash
# Checks docs/errors.md against the program: every table row's command must exit with status 2,
# print nothing on stdout and exactly the row's message on stderr; every fixture in tests/data/bad/
# must be named by some row. CTest runs it with DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repo>.
set -u
: "${DNNPLAN:?set DNNPLAN to the dnnplan binary}"
: "${DNNPLAN_SOURCE_DIR:?set DNNPLAN_SOURCE_DIR to the repository root}"
cd "$DNNPLAN_SOURCE_DIR" || exit 1
catalogue=docs/errors.md
work=$(mktemp -d "${TMPDIR:-/tmp}/dnnplan-errors.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
# Rows look like: | `dnnplan ARGS` | `MESSAGE` | cause | fix |
while IFS= read -r row; do
    command=$(sed -E 's/^\| `dnnplan ([^`]*)` \| `([^`]*)` \|.*$/\1/' <<<"$row")
    message=$(sed -E 's/^\| `dnnplan ([^`]*)` \| `([^`]*)` \|.*$/\2/' <<<"$row")
    message=${message//<repo>/$DNNPLAN_SOURCE_DIR}
    read -r -a args <<<"$command"
    "$DNNPLAN" "${args[@]}" >"$work/stdout" 2>"$work/stderr"
    status=$?
    if [ "$status" -eq 2 ] && [ ! -s "$work/stdout" ] && printf '%s\n' "$message" | cmp -s - "$work/stderr"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: dnnplan $command"
        echo "  expected (exit 2): $message"
        echo "  got (exit $status): $(head -c 600 "$work/stderr")"
    fi
done < <(grep -E '^\| `dnnplan ' "$catalogue")

for fixture in tests/data/bad/*; do
    [ -f "$fixture" ] || continue
    if grep -qF "$fixture" "$catalogue"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $fixture has no row in $catalogue"
    fi
done

echo "$passed passed, $failed failed"
[ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]
