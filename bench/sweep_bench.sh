#!/usr/bin/env bash
# The sweep benchmark, every figure measured in the same run:
#
#  1. Frozen grid: MobileNetV2 (models/mobilenet_v2.tlm) x 5 learning rates x 10 epochs,
#     frozen, on the demo data (data/fashion, validation_split 0.2, test_dir, 96 px),
#     one process. Against one feature-extraction pass over the same images (a sweep of
#     ONE frozen trial of 1 epoch, and the grid's own `features:` line), and against the
#     same grid with `feature_cache: false` (the Keras way: backbone forward every epoch).
#     Targets: grid <= 1.3 x extraction, Keras way >= 10 x grid.
#  2. Scaling: 4 fine-tune trials ({fine_tune_at: 100}, 4 learning rates, threads: 1)
#     under `mpirun -np 2` (1 worker) and `mpirun -np 3` (2 workers), on a smaller
#     Fashion-MNIST set made under the scratch folder. Target: speed-up >= 1.8.
#  3. Engines: the same 4 fine-tune trials under `mpirun -np 3` (2 workers) with
#     TLSWEEP_ENGINE=openblas and with TLSWEEP_ENGINE=auto, alternating, 3 rounds (1 with
#     --quick); medians. Target: openblas / auto wall time >= 1.5.
#
# usage: bench/sweep_bench.sh [--quick]      (from the repo root, after a build)
#   --quick   reduced sizes (smoke check; targets are printed but not judged)
# Environment: TLSWEEP (default build/tlsweep), MPIRUN (default mpirun).
# Wall times are `tlsweep run` from start to exit, fresh out folder each time; the CPU
# column (user+sys of the run and its children) shows whether the run had the cores.
set -eu

QUICK=0
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "sweep_bench.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
BIN=${TLSWEEP:-build/tlsweep}
MPIRUN=${MPIRUN:-mpirun}
PY=/usr/bin/python3
WEIGHTS=models/mobilenet_v2.tlm
for f in "$BIN" "$WEIGHTS" data/fashion/train data/fashion/test; do
    [ -e "$f" ] || { echo "sweep_bench.sh: missing $f (build first; see docs/benchmarks.md)" >&2; exit 1; }
done
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")   # mpirun wants a path it can exec
# shellcheck source=/dev/null
. deploy/env.sh

W=$(mktemp -d /tmp/sweep_bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

if [ $QUICK = 1 ]; then
    EPOCHS=3; FT_EPOCHS=1; FT_PER_CLASS=10; FROZEN_PER_CLASS=20; ENGINE_ROUNDS=1
else
    EPOCHS=10; FT_EPOCHS=2; FT_PER_CLASS=100; FROZEN_PER_CLASS=; ENGINE_ROUNDS=3
fi
LRS="[1.0e-2, 3.0e-3, 1.0e-3, 3.0e-4, 1.0e-4]"
FT_LRS="[1.0e-3, 3.0e-4, 1.0e-4, 3.0e-5]"

say() { printf '%s\n' "$*"; }

# timed NAME CMD... : runs CMD, output to $W/NAME.log, "wall user sys" to $W/NAME.time
timed() {
    local name=$1; shift
    local TIMEFORMAT='%R %U %S' rc=0
    say "  $name: $*"
    { time "$@" >"$W/$name.log" 2>&1; } 2>"$W/$name.time" || rc=$?
    if [ $rc != 0 ]; then
        say "sweep_bench.sh: '$*' exited $rc; last lines of its output:" >&2
        tail -n 20 "$W/$name.log" >&2
        exit 1
    fi
    say "    $(cut -d' ' -f1 "$W/$name.time") s wall (load average now $(cut -d' ' -f1 /proc/loadavg))"
}

# sweep NAME TRAIN TEST MODE LRS EPOCHS EXTRA... : writes $W/NAME.yaml (out: $W/NAME.out)
sweep() {
    local name=$1 train=$2 test=$3 mode=$4 lrs=$5 epochs=$6; shift 6
    {
        say "name: bench-$name"
        say "data:"
        say "  train_dir: $train"
        say "  validation_split: 0.2"
        [ -n "$test" ] && say "  test_dir: $test"
        say "  image_size: 96"
        say "  seed: 42"
        say "model:"
        say "  head: [global_average_pooling, {dense: 128, activation: relu}, {dropout: 0.2}]"
        say "weights:"
        say "  mobilenet_v2: $WEIGHTS"
        say "grid:"
        say "  backbone: [mobilenet_v2]"
        say "  mode: [$mode]"
        say "  learning_rate: $lrs"
        say "  optimizer: [adam]"
        say "  batch_size: [32]"
        say "epochs: $epochs"
        say "select: {metric: val_accuracy, goal: max}"
        say "seed: 0"
        say "out: $W/$name.out"
        for l in "$@"; do say "$l"; done
    } >"$W/$name.yaml"
}

say "sweep benchmark$([ $QUICK = 1 ] && echo ' (--quick)'): $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "  $("$BIN" version 2>/dev/null | head -n 1) ($BIN) at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), scratch $W"

# ---- data ----------------------------------------------------------------------------
if [ -n "$FROZEN_PER_CLASS" ]; then
    "$BIN" data fashion-mnist "$W/frozen-data" --per-class "$FROZEN_PER_CLASS" --size 96 >/dev/null
    FTRAIN=$W/frozen-data/train; FTEST=$W/frozen-data/test
else
    FTRAIN=data/fashion/train; FTEST=data/fashion/test
fi
"$BIN" data fashion-mnist "$W/ft-data" --per-class "$FT_PER_CLASS" --size 96 >/dev/null

# ---- 1. frozen grid ------------------------------------------------------------------
say ""
say "1. frozen grid: mobilenet_v2 x 5 learning rates x $EPOCHS epochs on $FTRAIN (+ $FTEST)"
sweep extract "$FTRAIN" "$FTEST" frozen "[1.0e-3]" 1
sweep grid "$FTRAIN" "$FTEST" frozen "$LRS" "$EPOCHS"
sweep keras "$FTRAIN" "$FTEST" frozen "$LRS" "$EPOCHS" "feature_cache: false"
timed extract "$BIN" run "$W/extract.yaml" --quiet
timed grid "$BIN" run "$W/grid.yaml" --quiet
timed keras "$BIN" run "$W/keras.yaml" --quiet

# ---- 2. scaling ----------------------------------------------------------------------
say ""
say "2. scaling: 4 fine-tune trials (fine_tune_at 100, $FT_EPOCHS epochs, threads: 1) on $W/ft-data"
sweep np2 "$W/ft-data/train" "" "{fine_tune_at: 100}" "$FT_LRS" "$FT_EPOCHS" "threads: 1"
sweep np3 "$W/ft-data/train" "" "{fine_tune_at: 100}" "$FT_LRS" "$FT_EPOCHS" "threads: 1"
timed np2 "$MPIRUN" --oversubscribe -np 2 "$BIN" run "$W/np2.yaml" --quiet
timed np3 "$MPIRUN" --oversubscribe -np 3 "$BIN" run "$W/np3.yaml" --quiet

# ---- 3. engines ----------------------------------------------------------------------
say ""
say "3. engines: the 4 fine-tune trials, mpirun -np 3, TLSWEEP_ENGINE=openblas vs auto," \
    "$ENGINE_ROUNDS round(s), order alternating"
for r in $(seq 1 "$ENGINE_ROUNDS"); do
    order="openblas auto"
    [ $((r % 2)) = 0 ] && order="auto openblas"
    for e in $order; do
        sweep "eng-$e-$r" "$W/ft-data/train" "" "{fine_tune_at: 100}" "$FT_LRS" "$FT_EPOCHS" "threads: 1"
        timed "eng-$e-$r" env TLSWEEP_ENGINE="$e" "$MPIRUN" --oversubscribe -np 3 "$BIN" run \
            "$W/eng-$e-$r.yaml" --quiet
    done
done

say ""
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- figures -------------------------------------------------------------------------
"$PY" - "$W" "$QUICK" "$ENGINE_ROUNDS" <<'EOF'
import json, re, statistics, sys

w, quick, engine_rounds = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])

def times(name):
    wall, user, sys_ = (float(x) for x in open(f"{w}/{name}.time").read().split())
    return wall, user + sys_

def results(name):
    return json.load(open(f"{w}/{name}.out/results.json"))

FEAT = re.compile(r"^features: .*?: (\d+) images through the frozen backbone once "
                  r"\(([0-9.]+) s, ([0-9.]+) img/s\)", re.M)

def features(name):
    m = FEAT.search(open(f"{w}/{name}.log").read())
    if not m:
        sys.exit(f"sweep_bench.sh: no 'features:' line in {name}'s output")
    return int(m[1]), float(m[2]), float(m[3])

def passes(r):
    """Backbone forward passes per image: the cache's counter, else the trials' own."""
    if r["feature_caches"]:
        return sum(c["passes_per_image"] for c in r["feature_caches"])
    return sum(t.get("backbone_images", 0) for t in r["trials"]) / r["dataset"]["images"]

def verdict(ok):
    return "(quick: not judged)" if quick else ("MET" if ok else "NOT MET")

ext_wall, ext_cpu = times("extract")
grid_wall, grid_cpu = times("grid")
keras_wall, keras_cpu = times("keras")
n2_wall, n2_cpu = times("np2")
n3_wall, n3_cpu = times("np3")
ext_imgs, ext_s, ext_rate = features("extract")
g_imgs, g_s, g_rate = features("grid")
rg, rk, r2, r3 = results("grid"), results("keras"), results("np2"), results("np3")

ds = rg["dataset"]
ntr = len(rg["trials"])
epochs = rg["trials"][0]["epochs"]
keras_expected = ntr * (epochs * (ds["train"] + ds["val"]) + ds["test"]) / ds["images"]

acc_g = {t["id"]: t.get("val_accuracy") for t in rg["trials"]}
acc_k = {t["id"]: t.get("val_accuracy") for t in rk["trials"]}
same_best = rg["best"]["trial"] == rk["best"]["trial"]
max_diff = max(abs(acc_g[i] - acc_k[i]) for i in acc_g)

ratio_ext = grid_wall / ext_s
ratio_own = grid_wall / g_s
ratio_sweep1 = grid_wall / ext_wall
ratio_keras = keras_wall / grid_wall
speedup = n2_wall / n3_wall
tsum2 = sum(t["seconds"] for t in r2["trials"])
tsum3 = sum(t["seconds"] for t in r3["trials"])

eng = {}   # engine -> (median wall, median cpu, median sum of trial seconds, walls)
for e in ("openblas", "auto"):
    runs = [times(f"eng-{e}-{r}") for r in range(1, engine_rounds + 1)]
    tsum = [sum(t["seconds"] for t in results(f"eng-{e}-{r}")["trials"])
            for r in range(1, engine_rounds + 1)]
    eng[e] = (statistics.median(x[0] for x in runs), statistics.median(x[1] for x in runs),
              statistics.median(tsum), [x[0] for x in runs])
engine_ratio = eng["openblas"][0] / eng["auto"][0]

print()
print(f"data: {ds['images']} images ({ds['train']} train, {ds['val']} val, {ds['test']} test); "
      f"grid {ntr} trials x {epochs} epochs")
print(f"one extraction pass, separate sweep (1 trial, 1 epoch): {ext_imgs} images in {ext_s:.2f} s "
      f"({ext_rate:.0f} img/s); that sweep's wall time {ext_wall:.2f} s")
print(f"the grid's own extraction line: {g_imgs} images in {g_s:.2f} s ({g_rate:.0f} img/s)")
print(f"grid / extraction: {ratio_ext:.2f} (separate pass), {ratio_own:.2f} (grid's own pass), "
      f"{ratio_sweep1:.2f} (vs the whole 1-trial sweep, same start-up costs)")
print(f"backbone passes per image: cached grid {passes(rg):.2f}, Keras way {passes(rk):.2f} "
      f"(expected {keras_expected:.2f} = {ntr} x ({epochs} x {ds['train'] + ds['val']} + "
      f"{ds['test']}) / {ds['images']})")
print(f"best trial: cached {rg['best']['trial']} ({rg['best']['value']:.4f}), "
      f"Keras way {rk['best']['trial']} ({rk['best']['value']:.4f}); "
      f"max |val_accuracy difference| over the trials {max_diff:.4f}")
print(f"scaling: sum of trial seconds 1 worker {tsum2:.1f} s, 2 workers {tsum3:.1f} s "
      f"(per-trial slow-down with 2 workers {tsum3 / tsum2:.2f}x)")
print(f"engines, wall per round: openblas {' '.join(f'{x:.2f}' for x in eng['openblas'][3])} s, "
      f"auto {' '.join(f'{x:.2f}' for x in eng['auto'][3])} s; median sum of trial seconds "
      f"openblas {eng['openblas'][2]:.1f} s, auto {eng['auto'][2]:.1f} s")

rows = [
    ("extraction pass (separate sweep)", f"{ext_s:.2f} s", f"{ext_rate:.0f} img/s", ""),
    ("1-trial 1-epoch sweep, wall", f"{ext_wall:.2f} s", f"cpu {ext_cpu:.1f} s", ""),
    ("frozen grid 5x%d, wall" % epochs, f"{grid_wall:.2f} s", f"cpu {grid_cpu:.1f} s",
     f"passes/image {passes(rg):.2f}"),
    ("  grid's own extraction", f"{g_s:.2f} s", f"{g_rate:.0f} img/s", ""),
    ("Keras way (feature_cache: false)", f"{keras_wall:.2f} s", f"cpu {keras_cpu:.1f} s",
     f"passes/image {passes(rk):.2f}"),
    ("grid / extraction", f"{ratio_ext:.2f}", "target <= 1.3", verdict(ratio_ext <= 1.3)),
    ("  grid / grid's own extraction", f"{ratio_own:.2f}", "", ""),
    ("  grid / 1-trial sweep wall", f"{ratio_sweep1:.2f}", "", ""),
    ("Keras way / grid", f"{ratio_keras:.1f}", "target >= 10", verdict(ratio_keras >= 10)),
    ("best trial agrees", "yes" if same_best else "NO", rg["best"]["trial"], ""),
    ("fine-tune x4, mpirun -np 2 (1 worker)", f"{n2_wall:.2f} s", f"cpu {n2_cpu:.1f} s", ""),
    ("fine-tune x4, mpirun -np 3 (2 workers)", f"{n3_wall:.2f} s", f"cpu {n3_cpu:.1f} s", ""),
    ("speed-up 2 workers vs 1", f"{speedup:.2f}", "target >= 1.8", verdict(speedup >= 1.8)),
    ("fine-tune x4, -np 3, openblas (median)", f"{eng['openblas'][0]:.2f} s",
     f"cpu {eng['openblas'][1]:.1f} s", f"{engine_rounds} round(s)"),
    ("fine-tune x4, -np 3, auto (median)", f"{eng['auto'][0]:.2f} s",
     f"cpu {eng['auto'][1]:.1f} s", f"{engine_rounds} round(s)"),
    ("openblas / auto wall", f"{engine_ratio:.2f}", "target >= 1.5",
     verdict(engine_ratio >= 1.5)),
]
print()
print("summary" + (" (--quick: reduced sizes)" if quick else ""))
wid = [max(len(r[i]) for r in rows) for i in range(4)]
for r in rows:
    print("  " + "  ".join(c.ljust(wid[i]) if i != 1 else c.rjust(wid[i]) for i, c in enumerate(r)).rstrip())
EOF
