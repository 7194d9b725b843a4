#!/usr/bin/env bash
# A trial trained by a group of ranks against the same trial on one rank (issue 15): the
# same 2 cores, used as 2 ranks x 1 thread or as 1 rank x 2 threads.
#
# The trial: MobileNetV2 (models/mobilenet_v2.tlm, real weights) fine-tuned whole on the
# demo data (data/fashion/train, validation_split 0.2), 224 px, Adam 1e-4, batch 32 (the
# global batch), EPOCHS epochs (default 2). Two sides, alternating, ROUNDS rounds (default
# 3, the order reversed every other round), each a fresh sweep:
#   group    mpirun -np 3: 2 workers, `ranks_per_trial: 2`, `threads: 1`
#   single   mpirun -np 2: 1 worker,  `ranks_per_trial: 1`, `threads: 2`
# From each run's results.json: the trial's epochs (history: seconds, ranks, comm_seconds),
# the first epoch left out when there are more (it pays the first touch of every buffer);
# images/s = dataset.train / epoch seconds (the epoch's training pass), the comm share =
# comm_seconds / seconds (of that pass). Each round starts with the FMA peak of both cores
# (tlsweep-bench --peak --threads 2), so a round that lost its cores shows. Printed: every round, the medians, group / single
# images/s (target >= 0.9) and the group's comm share. The group run must have trained
# every epoch on 2 ranks (per-epoch `ranks`), else the script stops with one line.
#
# usage: bench/group_sweep.sh [--quick] [--rounds N] [--epochs E]   (from the repo root,
#        after a build and the demo data; see docs/benchmarks.md)
#   --quick   96 px, 1 epoch, 1 round: a smoke check (the target is printed, not judged)
# Environment: TLSWEEP (default build/tlsweep), MPIRUN (default mpirun), KEEP=1 (keep the
#   out folders), DRY=1 (write the sweep files and check them with `run --dry-run`, no run),
#   REUSE=DIR (a KEEP=1 folder of an earlier run with the same rounds: its figures, no run).
set -eu

QUICK=0 ROUNDS=3 EPOCHS=2 SIZE=224
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
need_int() {  # NAME VALUE: a whole number >= 1, or one line and exit 2
    case $2 in ''|*[!0-9]*|0*) echo "group_sweep.sh: $1 must be a whole number >= 1, not '$2'" >&2; exit 2 ;; esac
}
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --rounds|--epochs)
            [ $# -ge 2 ] || { echo "group_sweep.sh: $1 needs a value" >&2; exit 2; }
            need_int "$1" "$2"
            if [ "$1" = --rounds ]; then ROUNDS=$2; else EPOCHS=$2; fi
            shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "group_sweep.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ $QUICK = 1 ] && { SIZE=96; EPOCHS=1; ROUNDS=1; }

cd "$(dirname "$0")/.."
MPIRUN=${MPIRUN:-mpirun}
PY=/usr/bin/python3
WEIGHTS=models/mobilenet_v2.tlm
# shellcheck source=bench/bench_env.sh
. bench/bench_env.sh
bench_setup group_sweep.sh "$WEIGHTS" data/fashion/train

# sweep NAME RANKS_PER_TRIAL THREADS OUT
sweep() {
    cat <<EOF
name: group-$1
data:
  train_dir: $PWD/data/fashion/train
  validation_split: 0.2
  image_size: $SIZE
  seed: 42
weights:
  mobilenet_v2: $PWD/$WEIGHTS
grid:
  backbone: [mobilenet_v2]
  mode: [fine_tune]
  learning_rate: [1.0e-4]
  optimizer: [adam]
  batch_size: [32]
epochs: $EPOCHS
ranks_per_trial: $2
threads: $3
select: {metric: val_accuracy, goal: max}
out: $4
EOF
}

# side NAME ROUND: one fresh sweep of that side; its results.json in $W/NAME-ROUND
side() {
    local np rpt th out="$W/$1-$2"
    case $1 in
        group) np=3 rpt=2 th=1 ;;
        single) np=2 rpt=1 th=2 ;;
    esac
    sweep "$1" $rpt $th "$out" > "$out.yaml"
    if ! "$MPIRUN" -np $np --oversubscribe --bind-to none "$BIN" run --quiet "$out.yaml" > "$out.log" 2>&1; then
        cat "$out.log" >&2
        echo "group_sweep.sh: the $1 sweep of round $2 failed" >&2
        exit 1
    fi
    echo "  round $2: $1 done"
}

if [ "${DRY:-0}" = 1 ]; then
    for s in group single; do
        sweep $s 2 1 "$W/$s" > "$W/$s.yaml"
        "$BIN" run --dry-run "$W/$s.yaml" > "$W/$s.dry" 2>&1 || { cat "$W/$s.dry" >&2; exit 1; }
        echo "  $s: the sweep file checks"
    done
    exit 0
fi

echo "groups benchmark: MobileNetV2 $SIZE px fine-tune, batch 32, $EPOCHS epochs, $ROUNDS rounds"
FIGURES=$W
if [ -n "${REUSE:-}" ]; then
    FIGURES=$REUSE
    echo "  figures from $REUSE"
else
    for r in $(seq 1 "$ROUNDS"); do
        "$(dirname "$BIN")/tlsweep-bench" --peak --threads 2 > "$W/peak-$r.json"
        if [ $((r % 2)) = 1 ]; then side group "$r"; side single "$r"; else side single "$r"; side group "$r"; fi
    done
fi

"$PY" - "$FIGURES" "$ROUNDS" "$QUICK" <<'EOF'
import json, statistics, sys
w, rounds, quick = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"

def epochs(side, r):
    """the trial's epochs after the first (all when there is one), and its train images"""
    res = json.load(open("%s/%s-%d/results.json" % (w, side, r)))
    if res["state"] != "finished":
        sys.exit("group_sweep.sh: the %s sweep of round %d ended %s" % (side, r, res["state"]))
    hist = res["trials"][0]["history"]
    if side == "group":
        for e in hist:
            if "ranks" not in e or "comm_seconds" not in e:
                sys.exit("group_sweep.sh: results.json's epochs have no ranks/comm_seconds: "
                         "this build trains no groups of ranks")
            # the ranks that trained the epoch (a count would do as well)
            n = e["ranks"] if isinstance(e["ranks"], int) else len(e["ranks"])
            if n != 2:
                sys.exit("group_sweep.sh: round %d epoch %d trained on ranks %s, not a group of 2"
                         % (r, e["epoch"], e["ranks"]))
    kept = hist[1:] if len(hist) > 1 else hist
    return kept, res["dataset"]["train"]

def peak(r):
    try:
        return json.load(open("%s/peak-%d.json" % (w, r)))["gflops"]
    except (OSError, ValueError, KeyError):
        return float("nan")

rows = []
for r in range(1, rounds + 1):
    row = {"peak": peak(r)}
    for side in ("group", "single"):
        kept, train = epochs(side, r)
        secs = statistics.median(e["seconds"] for e in kept)
        comm = statistics.median(e.get("comm_seconds", 0.0) / e["seconds"] for e in kept)
        row[side] = (train / secs, secs, comm)
    rows.append(row)
    print("round %d: FMA peak %.1f GFLOP/s; group %.2f img/s (epoch %.1f s, comm %.1f%%), single %.2f img/s (epoch %.1f s), "
          "group/single %.3f" % (r, row["peak"], row["group"][0], row["group"][1], 100 * row["group"][2],
                                 row["single"][0], row["single"][1], row["group"][0] / row["single"][0]))
med = lambda side, k: statistics.median(x[side][k] for x in rows)
ratio = statistics.median(x["group"][0] / x["single"][0] for x in rows)
print()
print("median: 2 ranks x 1 thread %.2f img/s, 1 rank x 2 threads %.2f img/s, ratio %.3f "
      "(median of the rounds' ratios)" % (med("group", 0), med("single", 0), ratio))
print("FMA peak, 2 threads: median %.1f GFLOP/s over the rounds"
      % statistics.median(x["peak"] for x in rows))
print("the group's epoch spent %.1f%% of its time in communication (comm_seconds / seconds)"
      % (100 * med("group", 2)))
verdict = "yes" if ratio >= 0.9 else "NO"
print("target 2 ranks x 1 thread >= 0.9 x 1 rank x 2 threads: %s%s" % (
    verdict, " (--quick: not judged)" if quick else ""))
EOF
