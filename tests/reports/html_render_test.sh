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
# print_pdf PAGE SIZE: prints a checked copy of PAGE to $work/print.pdf on SIZE paper (A4 or
# letter; the report's own @page rule says `size:auto`, so an added rule picks the paper) and
# leaves the print layout's check (the PDF's /Title, see render_check.js) in $work/print-check.
print_pdf() {
    local page=$1 size=$2 copy="$work/printed.html"
    sed -e 's|<head>|<head><script>window.__errors=[];window.addEventListener("error",function(e){window.__errors.push(String(e.message))});</script>|' \
        -e "s|</head>|<style>@page{size:$size}</style></head>|" \
        -e 's|</body>|<script src="render_check.js"></script></body>|' "$page" >"$copy"
    cp "$DNNPLAN_SOURCE_DIR/tests/reports/render_check.js" "$work/render_check.js"
    rm -f "$work/print.pdf"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --user-data-dir="$work/profile" --no-pdf-header-footer --virtual-time-budget=5000 \
        --print-to-pdf="$work/print.pdf" "file://$copy" >/dev/null 2>"$work/browser.err"
    # Chromium writes the title as a literal string; its parentheses are escaped in it.
    LC_ALL=C sed -n 's|.*/Title (render-check: \(.*\))$|\1|p' "$work/print.pdf" 2>/dev/null | sed 's|\\\([()]\)|\1|g' >"$work/print-check"
}
# The paper's printable width in CSS px (96 per inch) inside the report's 12 mm margins:
# A4 210 mm -> 186 mm = 703.0 px; Letter 8.5 in = 816 px - 2 x 45.35 px = 725.3 px.
printable_width() { case $1 in A4) echo 703 ;; letter) echo 725 ;; esac; }
# The print layout is clean and as wide as the paper (not laid out wider to be shrunk onto it).
printed_clean() {
    local width
    width=$(sed -n 's|^ok width=\([0-9]*\) tables=[1-9][0-9]* figures=[0-9]*$|\1|p' "$work/print-check")
    [ -n "$width" ] && [ "$width" -le "$(printable_width "$1")" ]
}
# The paper size Chromium used, from the first page's /MediaBox (PDF points: A4 595 x 842,
# Letter 612 x 792).
paper_is() { LC_ALL=C grep -aq "/MediaBox \[0 0 $1" "$work/print.pdf"; }

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
# Its layouts strip drew 290 nearly identical rows: the 96 transformer blocks are drawn once, and
# dashed lines mark where the stages change; no bar label is cut ("...").
check "gpt3 layouts strip collapses the blocks" grep -q '>h\.0 \.\.\. h\.95 (x96):<' "$work/gpt3.html"
check "gpt3 layouts strip marks stage boundaries" grep -q 'Dashed lines: where the next pipeline stage' "$work/gpt3.html"
check "gpt3 bar labels whole" sh -c '! grep -q "text-anchor=\"end\">[^<]*\.\.\.<" "$1"' - "$work/gpt3.html"
render "$work/gpt3.html"
check "gpt3 report loads without errors and no table overflows ($(cat "$work/check"))" rendered_clean

# Printed on A4 and Letter paper (F-M8: the ranked table was cut after "grad sync" in print).
for paper in A4 letter; do
    for page in vgg16 gpt3; do
        print_pdf "$work/$page.html" "$paper"
        check "$page report printed on $paper paper" paper_is "$([ "$paper" = A4 ] && echo 594 || echo 612)"
        [ -n "${SHOW_CHECKS:-}" ] && echo "$page $paper: $(cat "$work/print-check")"
        check "$page report printed on $paper: no table overflows, laid out at the paper's width ($(cat "$work/print-check"))" printed_clean "$paper"
    done
done

# The sweep's HTML form.
run sweep --net vgg16,resnet50 --procs 8:64 --out "$work/sweep.html"
check "sweep html written" [ "$status" -eq 0 ]
render "$work/sweep.html"
check "sweep page loads without errors and no table overflows ($(cat "$work/check"))" rendered_clean

# The check itself can fail: a table wider than its container is reported.
printf '<!DOCTYPE html><html><head></head><body style="width:1200px"><div><table><tr><td style="min-width:3000px">x</td></tr></table></div></body></html>\n' >"$work/wide.html"
render "$work/wide.html"
check "an overflowing table is caught" grep -q 'overflow' "$work/check"
print_pdf "$work/wide.html" A4
check "an overflowing table is caught in print ($(cat "$work/print-check"))" grep -q 'overflow' "$work/print-check"
check "the wide table's page is laid out wider than A4 to be shrunk onto it" sh -c '! grep -q "^ok width=" "$1"' - "$work/print-check"

[ -n "${SHOW_CHECKS:-}" ] && cat "$work/check"
finish
