#!/usr/bin/env bash
# Renders a dnnplan HTML report to PNG with Debian's headless Chromium, for looking at it (the test
# suite does not need it). Usage: tools/render_report.sh report.html [report.png] [width]
# Needs the `chromium` package (apt-get install chromium); the page fetches nothing, so no network.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: $0 REPORT.html [OUT.png] [WIDTH]" >&2
    exit 2
fi
html=$1
png=${2:-${html%.*}.png}
width=${3:-1280}
[ -f "$html" ] || { echo "$0: $html: no such file" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "$0: chromium is not installed (apt-get install chromium)" >&2; exit 2; }

# A tall window holds the whole page (Chromium crops the screenshot to the window; 16000 pixels at
# most, so very long reports are cut at the bottom).
height=$(( $(grep -c '' "$html") * 10 + 3000 ))
[ "$height" -gt 16000 ] && height=16000
profile=$(mktemp -d "${TMPDIR:-/tmp}/render-report.XXXXXX")
trap 'rm -rf "$profile"' EXIT
tmp="$png.tmp.$$.png"
# --no-sandbox: root in a container has no user namespaces for the sandbox.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size="$width,$height" --screenshot="$tmp" "file://$(realpath "$html")" >/dev/null 2>&1
[ -s "$tmp" ] || { echo "$0: chromium wrote no screenshot" >&2; rm -f "$tmp"; exit 1; }
mv "$tmp" "$png"  # whole or not at all
echo "$png"
