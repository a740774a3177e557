#!/usr/bin/env bash
# Checks docs/errors.md against the program: every table row's command must exit with status 2,
# print nothing on stdout and exactly the row's message on stderr; every fixture in tests/data/bad/
# must be named by some row. CTest runs it with DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repo>.
. "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" errors
catalogue=docs/errors.md

# Rows look like: | `dnnplan ARGS` | `MESSAGE` | cause | fix |
while IFS= read -r row; do
    command=$(sed -E 's/^\| `dnnplan ([^`]*)` \| `([^`]*)` \|.*$/\1/' <<<"$row")
    message=$(sed -E 's/^\| `dnnplan ([^`]*)` \| `([^`]*)` \|.*$/\2/' <<<"$row")
    message=${message//<repo>/$DNNPLAN_SOURCE_DIR}
    read -r -a args <<<"$command"
    run "${args[@]}"
    if [ "$status" -eq 2 ] && stdout_empty && stderr_is "$message"; then
        ok
    else
        not_ok "dnnplan $command"
        echo "  expected (exit 2): $message"
        echo "  got (exit $status): $(head -c 600 "$work/stderr")"
    fi
done < <(grep -E '^\| `dnnplan ' "$catalogue")

for fixture in tests/data/bad/*; do
    [ -f "$fixture" ] || continue
    if grep -qF "$fixture" "$catalogue"; then
        ok
    else
        not_ok "$fixture has no row in $catalogue"
    fi
done

finish
