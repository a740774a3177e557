#!/usr/bin/env bash
# The HTML reports in a real browser (issue 18, item 5): headless Chromium loads each page with a
# 1,280 px window (the report's container is 1,200 px) and a script added to a copy of the page
# writes, into the DOM, every script error and every table or chart wider than its container;
# --dump-dom returns that DOM. Skips (exit 77) only when Chromium is not installed: setup.sh
# installs Debian's `chromium`, so CI always runs it.
# CTest runs it with DNNPLAN=<binary> and DNNPLAN_SOURCE_DIR=<repository root>.
. "${DNNPLAN_SOURCE_DIR:?}/tests/cli/harness.sh" html-render

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "SKIP: no chromium on the PATH (setup.sh installs Debian's chromium package)"
    exit 77
fi

# render PAGE: the checked copy's DOM in $work/dom.html, the <pre id="render-check"> text in $work/check.
render() {
    local page=$1 copy="$work/checked.html"
    # The error handler goes first in <head>, the checks last in <body>.
    sed -e 's|<head>|<head><script>window.__errors=[];window.addEventListener("error",function(e){window.__errors.push(String(e.message))});</script>|' \
        -e 's|</body>|<script src="render_check.js"></script></body>|' "$page" >"$copy"
    cp "$DNNPLAN_SOURCE_DIR/tests/reports/render_check.js" "$work/render_check.js"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --user-data-dir="$work/profile" --window-size=1280,1000 --virtual-time-budget=5000 \
        --dump-dom "file://$copy" >"$work/dom.html" 2>"$work/browser.err"
    sed -n 's|.*<pre id="render-check">\([^<]*\)</pre>.*|\1|p' "$work/dom.html" >"$work/check"
}
# The check ran and found nothing: "ok tables=N figures=M".
rendered_clean() { grep -q '^ok tables=[1-9][0-9]* figures=[0-9]*$' "$work/check"; }

# vgg16 at P = 512 (the README's report; 20 columns before zero columns were left out).
run report --net vgg16 --procs 512 --out "$work/vgg16.html"
check "vgg16 report written" [ "$status" -eq 0 ]
render "$work/vgg16.html"
check "vgg16 report loads without errors and no table overflows ($(cat "$work/check"))" rendered_clean

# GPT-3's 3-D plan (long labels, the pipeline Gantt chart); no scaling study, to keep it quick.
run report --net gpt3-175b --procs 1024 --cluster dgx-a100 --batch 1536 --no-scaling --out "$work/gpt3.html"
check "gpt3 report written" [ "$status" -eq 0 ]
check "gpt3 report has the Gantt chart" grep -q 'Predicted iteration of the best plan' "$work/gpt3.html"
render "$work/gpt3.html"
check "gpt3 report loads without errors and no table overflows ($(cat "$work/check"))" rendered_clean

# The sweep's HTML form.
run sweep --net vgg16,resnet50 --procs 8:64 --out "$work/sweep.html"
check "sweep html written" [ "$status" -eq 0 ]
render "$work/sweep.html"
check "sweep page loads without errors and no table overflows ($(cat "$work/check"))" rendered_clean

# The check itself can fail: a table wider than its container is reported.
printf '<!DOCTYPE html><html><head></head><body style="width:1200px"><div><table><tr><td style="min-width:3000px">x</td></tr></table></div></body></html>\n' >"$work/wide.html"
render "$work/wide.html"
check "an overflowing table is caught" grep -q 'overflow' "$work/check"

[ -n "${SHOW_CHECKS:-}" ] && cat "$work/check"
finish
