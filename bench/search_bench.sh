#!/usr/bin/env bash
# The search benchmark: one space, four methods, every figure measured in the same run.
#
# The space: MobileNetV2 (models/mobilenet_v2.tlm, real weights) on the demo data
# (data/fashion: validation_split 0.2, test_dir, 96 px), 3 modes (frozen, fine-tuned from
# layer 100, fine-tuned whole) x the learning rate x 3 of a third axis (SEARCH_AXIS, default
# the head: GAP alone, GAP + Dense 128 ReLU + Dropout 0.2, GAP + Dense 256 ReLU + Dropout 0.5),
# 9 epochs at most, Adam, batch 32, under `mpirun -np 3` (2 workers).
#   grid                    27 configurations (learning rates 1e-3, 1e-4, 1e-5), 9 epochs each
#   random                  27 draws, the learning rate log-uniform in [1e-5, 1e-2], 9 epochs
#   successive_halving      the same 27 draws in rungs of 1, 3, 9 epochs (eta 3), ranked at
#                           each rung by val_loss (search.metric; the best still by val_accuracy)
#   asha                    the same, asynchronously
#   successive_halving_grid the rung searches on the grid's 27 configurations: what stopping
#   asha_grid               early costs against the grid itself
#   successive_halving_acc  the rung searches on the draws ranked by val_accuracy (the select
#   asha_acc                metric, the default): what search.metric changes
# For each: epochs trained (sum of epochs_done), wall time, the best trial's validation
# accuracy (the select metric) and test accuracy, and the workers' busy share
# (results.json: every task's seconds from the journal, over workers x wall time).
# Targets: successive_halving and asha train <= 1/3 of the grid's epochs and reach a best
# validation accuracy within 1 point of the grid's; asha keeps the workers busy >= 90%.
#
# usage: bench/search_bench.sh [--quick]   (from the repo root, after a build and the demo data)
#   --quick   3 epochs at most, rungs 1 and 3 (smoke check; targets printed, not judged)
# Environment: TLSWEEP (default build/tlsweep), MPIRUN (default mpirun), NP (default 3),
#   SEARCH_AXIS=head|optimizer (the third axis; optimizer: adam, sgd, rmsprop), KEEP=1,
#   METHODS="successive_halving asha" with REUSE=DIR (a KEEP=1 folder of an earlier
#   run): run only those methods, the others' figures read from DIR.
set -eu

QUICK=0
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "search_bench.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
MPIRUN=${MPIRUN:-mpirun}
NP=${NP:-3}
AXIS=${SEARCH_AXIS:-head}
PY=/usr/bin/python3
WEIGHTS=models/mobilenet_v2.tlm
# KEEP=1 keeps the four out/ folders (results.json, journals, logs) in $W
# shellcheck source=bench/bench_env.sh
. bench/bench_env.sh
bench_setup search_bench.sh "$WEIGHTS" data/fashion/train data/fashion/test

EPOCHS=9; RUNGS="min_epochs: 1, reduction_factor: 3"
[ $QUICK = 1 ] && EPOCHS=3

case $AXIS in
    head) THIRD="  head: [[global_average_pooling], [global_average_pooling, {dense: 128, activation: relu}, {dropout: 0.2}], [global_average_pooling, {dense: 256, activation: relu}, {dropout: 0.5}]]" ;;
    optimizer) THIRD="  optimizer: [adam, sgd, rmsprop]" ;;
    *) echo "search_bench.sh: SEARCH_AXIS must be head or optimizer" >&2; exit 2 ;;
esac
OPT="  optimizer: [adam]"
[ "$AXIS" = optimizer ] && OPT=""

# sweep METHOD LR SEARCH: the space with learning rates LR and search: SEARCH
sweep() {
    cat <<EOF
name: search-$1
data:
  train_dir: $PWD/data/fashion/train
  test_dir: $PWD/data/fashion/test
  validation_split: 0.2
  image_size: 96
  seed: 42
weights:
  mobilenet_v2: $PWD/$WEIGHTS
grid:
  backbone: [mobilenet_v2]
  mode: [frozen, {fine_tune_at: 100}, fine_tune]
  learning_rate: $2
$THIRD
$OPT
  batch_size: [32]
epochs: $EPOCHS
select: {metric: val_accuracy, goal: max}
out: $W/$1
search: $3
EOF
}

ALL="grid random successive_halving asha successive_halving_grid asha_grid successive_halving_acc asha_acc"
LRS="[1.0e-3, 1.0e-4, 1.0e-5]"
LOGU="{log_uniform: [1.0e-5, 1.0e-2]}"
DRAWS="trials: 27, seed: 1"
sweep grid "$LRS" "{method: grid}" > "$W/grid.yaml"
sweep random "$LOGU" "{method: random, $DRAWS}" > "$W/random.yaml"
for m in successive_halving asha; do
    sweep $m "$LOGU" "{method: $m, $DRAWS, $RUNGS, metric: val_loss}" > "$W/$m.yaml"
    sweep ${m}_grid "$LRS" "{method: $m, $RUNGS, metric: val_loss}" > "$W/${m}_grid.yaml"
    sweep ${m}_acc "$LOGU" "{method: $m, $DRAWS, $RUNGS}" > "$W/${m}_acc.yaml"
done

echo "search benchmark: 27 configurations, $EPOCHS epochs at most, $((NP - 1)) workers, third axis: $AXIS"
"$BIN" run --dry-run "$W/asha.yaml" | sed -n '/^rungs/,/epoch budget/p'
METHODS=${METHODS:-$ALL}
if [ -n "${REUSE:-}" ]; then
    for m in $ALL; do
        case " $METHODS " in *" $m "*) continue ;; esac
        cp -r "$REUSE/$m" "$W/$m"
        grep "^$m " "$REUSE/walls" >> "$W/walls"
        echo "  $m: figures from $REUSE"
    done
fi
for m in $METHODS; do
    start=$(date +%s.%N)
    if ! "$MPIRUN" -np "$NP" --oversubscribe "$BIN" run --quiet "$W/$m.yaml" > "$W/$m.log" 2>&1; then
        cat "$W/$m.log" >&2
        echo "search_bench.sh: the $m sweep failed" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    echo "$m $start $end" >> "$W/walls"
    echo "  $m: done"
done

"$PY" - "$W" "$QUICK" $ALL <<'EOF'
import json, sys
w, quick, methods = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
walls = {l.split()[0]: float(l.split()[2]) - float(l.split()[1]) for l in open(w + "/walls")}
rows = {}
for m in methods:
    r = json.load(open("%s/%s/results.json" % (w, m)))
    assert r["state"] == "finished", (m, r["state"])
    done = [t for t in r["trials"] if t["status"] == "done"]
    best = done[0]
    rows[m] = dict(epochs=sum(t["epochs_done"] for t in done), wall=walls[m],
                   val=best["val_accuracy"], test=best.get("eval_accuracy"),
                   busy=r.get("busy_share"), best=best["id"], trials=len(done),
                   at_end=sum(1 for t in done if t["stop_reason"] != "rung"),
                   ids=sorted(t["id"] for t in r["trials"]))
g, rnd = rows["grid"], rows["random"]
# the rung searches draw as random does: the same 27 configurations, so random is
# what they would give with every trial trained to the end
for m in methods[2:]:
    full = g if m.endswith("_grid") else rnd
    assert rows[m]["ids"] == full["ids"], (m, "searched other configurations")
print()
# "vs whole": against the same configurations each trained to the end (grid or random)
print("%-23s %7s %8s %7s %9s %9s %9s %7s %6s  %s" % ("method", "epochs", "of grid", "wall s",
      "best val", "vs grid", "vs whole", "test", "busy", "best trial"))
for m, x in rows.items():
    full = g if m == "grid" or m.endswith("_grid") else rnd
    print("%-23s %7d %7.0f%% %7.1f %9.4f %+8.1fpt %+8.1fpt %7.4f %5.0f%%  %s" % (
        m, x["epochs"], 100.0 * x["epochs"] / g["epochs"], x["wall"], x["val"],
        100 * (x["val"] - g["val"]), 100 * (x["val"] - full["val"]), x["test"] or 0,
        100 * (x["busy"] or 0), x["best"]))
print()
ok = True
for m in ["successive_halving", "asha"]:
    x = rows[m]
    e_ok = x["epochs"] * 3 <= g["epochs"]
    a_ok = g["val"] - x["val"] <= 0.01 + 1e-6  # float32 figures: 0.920 - 0.910 is one point
    ok &= e_ok and a_ok
    print("target %s: epochs %d <= 1/3 of %d: %s; best val within 1 point of the grid's: %s" % (
        m, x["epochs"], g["epochs"], "yes" if e_ok else "NO", "yes" if a_ok else "NO"))
b_ok = (rows["asha"]["busy"] or 0) >= 0.9
ok &= b_ok
print("target asha busy share >= 90%%: %.0f%%: %s" % (100 * (rows["asha"]["busy"] or 0), "yes" if b_ok else "NO"))
if quick:
    print("(--quick: targets not judged)")
EOF
