#!/bin/sh
# The report page in a real browser: a tiny sweep (random MobileNetV2 from
# cli/tiny_model, a few Fashion-MNIST images per class), `tlsweep report
# OUT`, then headless Chromium renders OUT/report.html to a PNG, which must
# have the window's size, not be blank, and show the learning curves (the
# best trial's line colour) and the heat maps (their darkest blue), and no
# running banner. Then the report a longer sweep writes while it runs
# (caught with a trial done and the next running, the sweep then stopped by
# SIGTERM) renders too, with the banner saying the sweep is still running.
# Its results.json, said to be written an hour ago, makes a page whose
# script shows the notice that the page is old (the DOM Chromium dumps);
# written now, the notice stays hidden.
# Last a tiny asha sweep with a log-uniform learning rate: its page has the
# Rungs section, whose funnel Chromium draws, and one point per finished
# trial in the learning rate's scatter.
#   render_chromium.sh TLSWEEP TINY_MODEL
# Chromium is required, not optional: deploy/install-deps.sh installs it.
set -eu
tlsweep=$1
tiny=$2
py=/usr/bin/python3
chromium=${CHROMIUM:-/usr/bin/chromium}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
[ -x "$chromium" ] || fail "$chromium not found: the report is checked in a real browser" \
    "(Debian: apt-get install chromium, as deploy/install-deps.sh does)"
$py -c 'import PIL' 2> /dev/null || fail "$py has no PIL (Debian: apt-get install python3-pil)"
. "$(dirname "$0")/../lib/tiny.sh"
need_fashion_mnist
export OMP_WAIT_POLICY=passive
d=$(mktemp -d /tmp/tl_report_XXXXXX)
trap 'rm -rf "$d"' EXIT

tiny_data "$tlsweep" "$tiny" "$d" 8
tiny_sweep "$d" report-check 3 "[frozen, {fine_tune_at: 100}]" "[1.0e-2, 1.0e-3]" \
    "[global_average_pooling, {dense: 16}]" "out: $d/out" > "$d/sweep.yaml"
"$tlsweep" run --quiet "$d/sweep.yaml" > "$d/run.log" 2>&1 || { cat "$d/run.log"; fail "tlsweep run"; }
written=$("$tlsweep" report "$d/out") || fail "tlsweep report"
[ "$written" = "$d/out/report.html" ] || fail "report printed '$written', not $d/out/report.html"
[ -s "$d/out/report.html" ] || fail "no report.html"
if grep -qi 'http' "$d/out/report.html"; then
    fail "report.html refers to the network"
fi

# render HTML PNG: HTML to a PNG of 1200x2400 in a fresh profile and HOME
# (no first-run state, nothing of the user's)
render() {
    mkdir -p "$d/home"
    HOME=$d/home timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --user-data-dir="$d/home/profile" \
        --screenshot="$2" --window-size=1200,2400 \
        "file://$1" > "$d/chromium.log" 2>&1 ||
        { cat "$d/chromium.log"; fail "chromium exited with $?"; }
    [ -s "$2" ] || { cat "$d/chromium.log"; fail "chromium wrote no screenshot"; }
}

# check PNG LIVE: not blank, the best curve and the heat map's best cell
# drawn; the running banner's blue (#dbeafe) filling a band across the page
# when LIVE is 1, nowhere when 0
check() {
    $py - "$1" "$2" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
live = sys.argv[2] == "1"
assert im.size == (1200, 2400), f"screenshot is {im.size}, expected (1200, 2400)"
px = im.getdata()
n = len(px)
colours = im.getcolors(maxcolors=1 << 24)
white = sum(c for c, rgb in colours if min(rgb) >= 250)
inked = 1 - white / n
print(f"{len(colours)} colours, {inked:.1%} of pixels not white")
assert len(colours) > 300, f"only {len(colours)} distinct colours: blank or unstyled page"
assert inked > 0.05, f"only {inked:.1%} of the page is not white"
count = dict((rgb, c) for c, rgb in colours)
# the best trial's curve (#1f77b4, 3.5 px wide) and the darkest heat-map cell (#08306b)
for name, rgb, least in (("best trial's curve", (0x1f, 0x77, 0xb4), 300),
                         ("heat map's best cell", (0x08, 0x30, 0x6b), 1000)):
    got = count.get(rgb, 0)
    print(f"{name}: {got} pixels of #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}")
    assert got >= least, f"{name} not drawn: {got} pixels of {rgb}, expected >= {least}"
banner = count.get((0xdb, 0xea, 0xfe), 0)
print(f"running banner: {banner} pixels of #dbeafe")
if live:
    assert banner >= 20000, f"no running banner: {banner} pixels of #dbeafe"
else:
    assert banner == 0, f"a finished sweep's page shows the running banner ({banner} pixels)"
PY
}

render "$d/out/report.html" "$d/report.png"
check "$d/report.png" 0

# the report written during a run: enough epochs to be caught running
tiny_sweep "$d" report-live 100 "[{fine_tune_at: 100}, fine_tune]" "[1.0e-2, 1.0e-3]" \
    "[global_average_pooling, {dense: 16}]" "out: $d/live" > "$d/live.yaml"
"$tlsweep" run --quiet "$d/live.yaml" > "$d/live.log" 2>&1 &
pid=$!
# a trial done (curves, heat map) and the next one running
live_page() {
    grep -q '<td class="l done">done</td>' "$d/live/report.html" &&
        grep -q '<td class="l running">running</td>' "$d/live/report.html"
}
wait_until "a report.html with a trial done and one running" live_page
cp "$d/live/results.json" "$d/midrun.json"
cp "$d/live/report.html" "$d/midrun.html"
kill -TERM $pid
wait $pid || true
grep -q 'The sweep is still running' "$d/midrun.html" || fail "no running banner in the mid-run page"
if grep -qi 'http' "$d/midrun.html"; then
    fail "the mid-run report.html refers to the network"
fi
render "$d/midrun.html" "$d/midrun.png"
check "$d/midrun.png" 1

# stale_page DIR AGO: the mid-run results.json as if written AGO seconds
# before now, its page, and the DOM Chromium has after the page's script
stale_page() {
    mkdir -p "$1"
    $py - "$d/midrun.json" "$1/results.json" "$2" <<'PY'
import json, sys, time
r = json.load(open(sys.argv[1]))
assert r["state"] == "running", r["state"]
r["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - int(sys.argv[3])))
json.dump(r, open(sys.argv[2], "w"))
PY
    "$tlsweep" report "$1" > /dev/null || fail "tlsweep report $1"
    HOME=$d/home timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --user-data-dir="$d/home/profile" --dump-dom \
        "file://$1/report.html" > "$1/dom.html" 2> "$d/chromium.log" ||
        { cat "$d/chromium.log"; fail "chromium --dump-dom exited with $?"; }
}
stale_page "$d/stale" 3600
grep -q '<p class="live stale" id="stale" data-written="[0-9TZ:-]*"><b>This page has not been rewritten for <span id="stale-min">60</span> min</b>' \
    "$d/stale/dom.html" || { grep -o '<p class="live stale".*' "$d/stale/dom.html"; fail "no notice on a page written an hour ago"; }
grep -q "<code>tlsweep status $d/stale</code> tells" "$d/stale/dom.html" || fail "the notice does not name tlsweep status OUT"
stale_page "$d/fresh" 0
grep -q '<p class="live stale" id="stale" hidden="" data-written=' "$d/fresh/dom.html" ||
    { grep -o '<p class="live stale".*' "$d/fresh/dom.html"; fail "the notice shows on a page written now"; }

tiny_sweep "$d" report-asha 4 "[frozen]" "{log_uniform: [1.0e-4, 1.0e-1]}" \
    "[global_average_pooling, {dense: 16}]" \
    "search: {method: asha, trials: 6, seed: 3, min_epochs: 1, reduction_factor: 2}
out: $d/asha" > "$d/asha.yaml"
"$tlsweep" run --quiet "$d/asha.yaml" > "$d/asha.log" 2>&1 || { cat "$d/asha.log"; fail "tlsweep run (asha)"; }
"$tlsweep" report "$d/asha" > /dev/null || fail "tlsweep report (asha)"
HOME=$d/home timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --user-data-dir="$d/home/profile" \
    --screenshot="$d/asha.png" --window-size=1200,1600 \
    "file://$d/asha/report.html" > "$d/chromium.log" 2>&1 ||
    { cat "$d/chromium.log"; fail "chromium exited with $? (asha)"; }
$py - "$d/asha/results.json" "$d/asha/report.html" "$d/asha.png" <<'PY'
import json, sys
from PIL import Image
res = json.load(open(sys.argv[1]))
page = open(sys.argv[2]).read()
assert res["search"]["rungs"] == [1, 2, 4], res["search"]["rungs"]
assert "<h2>Rungs</h2>" in page, "no Rungs section"
done = sum(t["status"] == "done" for t in res["trials"])
scatter = page[page.index('<svg class="chart scatter"'):]
scatter = scatter[:scatter.index("</svg>")]
points = scatter.count('<circle class="pt"')
print(f"{done} finished trials, {points} points against learning_rate")
assert points == done == 6, f"{points} points for {done} finished trials"
# the funnel's light blue bars (#9ecae1), drawn nowhere else on the page
got = dict((rgb, c) for c, rgb in Image.open(sys.argv[3]).convert("RGB").getcolors(1 << 24))
light = got.get((0x9e, 0xca, 0xe1), 0)
print(f"rung funnel: {light} pixels of #9ecae1")
assert light >= 500, f"the rung funnel is not drawn: {light} pixels of #9ecae1"
PY
echo "report renders: $d/out/report.html, mid-run, and $d/asha/report.html"
