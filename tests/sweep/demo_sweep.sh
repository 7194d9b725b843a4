#!/bin/sh
# The README's demo sweep end to end: examples/fashion-mnist.yaml under
# mpirun on 3 ranks, real MobileNetV2 weights (deploy/fetch-weights.sh) and
# the Fashion-MNIST demo folders; then evaluate and predict on its best.tlm.
# Label 'demo': it needs the demo's setup.
#   demo_sweep.sh TLSWEEP_BINARY
set -eu
tlsweep=$(realpath "$1")
cd "$(dirname "$0")/../.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
TLSWEEP=$tlsweep deploy/fetch-weights.sh
if [ ! -d data/fashion/train ]; then
    "$tlsweep" data fashion-mnist data/fashion --per-class 100 --size 96
fi
d=$(mktemp -d /tmp/tl_demo_XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
sed "s|^out: .*|out: $d/out|" examples/fashion-mnist.yaml > "$d/sweep.yaml"
mpirun -np 3 --oversubscribe "$tlsweep" run "$d/sweep.yaml" | tee "$d/log"
grep -q "^leaderboard (val_accuracy, max; 6 of 6 trials)" "$d/log" || fail "no full leaderboard"
grep -q "1.00 backbone passes per image over 3 trials" "$d/log" || fail "frozen trials re-ran the backbone"
for f in best.tlm results.csv results.json journal; do
    [ -s "$d/out/$f" ] || fail "out/$f missing"
done
/usr/bin/python3 - "$d/out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
best = r["trials"][0]
assert r["state"] == "finished" and len(r["trials"]) == 6
assert all(t["status"] == "done" for t in r["trials"])
# the demo's best trial is a real classifier, not chance (10 classes)
assert best["val_accuracy"] >= 0.7 and best["eval_accuracy"] >= 0.7, best
print("best", best["id"], "val", best["val_accuracy"], "test", best["eval_accuracy"])
PY
"$tlsweep" evaluate --model "$d/out/best.tlm" data/fashion/test | tee "$d/eval"
grep -q "^accuracy 0\.[7-9]" "$d/eval" || fail "best.tlm evaluates below 0.7"
img=data/fashion/test/Bag/$(ls data/fashion/test/Bag | head -1)
"$tlsweep" predict --model "$d/out/best.tlm" --top 3 --json "$img" > "$d/pred.json"
/usr/bin/python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["predictions"][0]; assert len(p["top"]) == 3; print(p["path"], p["top"][0])' "$d/pred.json"
# a second run resumes: every trial is skipped
mpirun -np 3 --oversubscribe "$tlsweep" run --quiet "$d/sweep.yaml" > "$d/log2"
grep -q "6 of 6 trials already finished" "$d/log2" || fail "the re-run did not resume"
