#!/bin/sh
# `tlsweep run` end to end on a tiny random MobileNetV2 (alpha 0.35, 32x32,
# from cli/tiny_model) and a few Fashion-MNIST images per class.
#   sweep_test.sh CASE TLSWEEP TINY_MODEL
# CASE:
#   mpi_equals_local  a 3-rank mpirun sweep ends with the same leaderboard,
#                     figure for figure, as a single-process run; the frozen
#                     grid (3 learning rates) ran the backbone once per image
#   sigterm_resume    SIGTERM to the coordinator mid-trial (once a fine-tune
#                     trial has a checkpoint): exit 75 within seconds, the
#                     checkpoint left; the re-run resumes from it
#                     and ends with the uninterrupted run's leaderboard
#   kill9_resume      kill -9 of a worker rank under mpirun takes the job
#                     down; the re-run finishes with the same leaderboard
#   slices_merge      a job array's way: three `--slice I/3` runs and `merge`
#                     give the whole run's leaderboard and best.tlm
#   random_search     search: random with a log-uniform learning rate: the
#                     dry run is the same twice, a 3-rank run ends with the
#                     single-process leaderboard (every rank drew the same
#                     trials), so do two --slice runs merged, and a re-run
#                     changes nothing
#   early_stopping    early_stopping: stops each trial where Keras would (the
#                     two-stage recipe in its fine-tune stage); results.json
#                     says so, and a re-run finds the trials finished
#   early_stopping_resume  sigterm_resume with early stopping: the resumed
#                     trials stop at the epochs the uninterrupted ones did
#   successive_halving  9 trials in rungs of 1, 2 and 4 epochs: the dry
#                     run's rung plan; one process, 3 ranks and a run
#                     interrupted by SIGTERM and resumed end with the same
#                     leaderboard and promotions (4, then 2); results.json
#                     says which trials stopped at which rung; no
#                     checkpoint left behind
#   asha_resume       asha on 3 ranks, SIGTERM to the coordinator mid-rung,
#                     resumed on 3 ranks: it finishes, no promotion is taken
#                     twice, the results agree with the rungs, and a
#                     re-run finds the sweep finished
#   bad_sweeps        each kind of bad sweep file: one line, exit 1, no out/;
#                     bf16 on a CPU without AVX512_BF16 too (a dry run notes it)
#   setup_error_no_hang  a run that cannot start (out/journal locked by
#                     another run, not a journal, out: under a file), alone
#                     and as 3 ranks under mpirun: non-zero exit within 60 s
#                     and the one line (the workers were told to stop)
#   groups_fixed      ranks_per_trial: 2 on 3 ranks: every epoch of the two
#                     fine-tune trials trained by ranks 1 and 2, each loss
#                     within 1e-5 (relative) of a one-rank run's, the same
#                     leaderboard order
#   groups_auto       auto, two fine-tune trials on 3 workers: all 3 train
#                     (the union of the epochs' ranks), the one-rank ranking
#   groups_join       auto: the worker a frozen trial frees joins the
#                     fine-tune trial at an epoch boundary (Stop YIELD); its
#                     epochs go from one rank to two, each epoch once, the
#                     group's first within 1e-4 of the one-rank run
#   groups_sigterm    SIGTERM to the coordinator during a group's epoch: exit
#                     75, the checkpoint kept; resumed on 2 ranks (a group of
#                     one), every epoch once in the history
#   groups_local      ranks_per_trial: 2 in one process: the trials run alone
#                     (the dry run names the setting)
# Every run uses `threads: 1`, so results are bit-identical across runs; the
# runs compared figure for figure train each trial on one rank
# (ranks_per_trial: 1: a group's sums round otherwise).
set -eu
case_=$1
tlsweep=$2
tiny=$3
py=/usr/bin/python3
. "$(dirname "$0")/../lib/tiny.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
d=$(mktemp -d /tmp/tl_sweep_XXXXXX)
trap 'rm -rf "$d"' EXIT

tiny_data "$tlsweep" "$tiny" "$d" 16

# sweep OUT EPOCHS: 3 learning rates, each frozen, fine-tuned from layer 100,
# and Keras's two-stage recipe (1 frozen epoch, then fine-tuning)
sweep() {
    tiny_sweep "$d" tiny "$2" \
        "[frozen, {fine_tune_at: 100}, {frozen_then_fine_tune: {fine_tune_at: 100, epochs: 1}}]" \
        "[1.0e-2, 3.0e-3, 1.0e-3]" "[global_average_pooling, {dense: 32}, {dropout: 0.1}]" \
        "checkpoint_seconds: 0
out: $1
ranks_per_trial: 1
${extra_yaml:-}"
}

# group_sweep OUT EPOCHS RANKS_PER_TRIAL: two fine-tune trials (2 learning
# rates), the backbone trained from layer 100 on
group_sweep() {
    tiny_sweep "$d" tiny "$2" "[{fine_tune_at: 100}]" "[1.0e-2, 1.0e-3]" \
        "[global_average_pooling, {dense: 32}, {dropout: 0.1}]" "checkpoint_seconds: 0
out: $1
ranks_per_trial: $3" > "$1.yaml"
}

# group_check OUT ONE_RANK_OUT WANT: OUT finished, every trial done; WANT
# "12": every epoch trained by ranks 1 and 2, each loss within 1e-5 of
# ONE_RANK_OUT's epoch; "all": the epochs' ranks cover every worker of
# OUT's run; either way the leaderboard order is ONE_RANK_OUT's.
group_check() {
    $py - "$1/results.json" "$2/results.json" "$3" <<'EOF'
import json, sys
r, one = (json.load(open(p)) for p in sys.argv[1:3])
want = sys.argv[3]
assert r["state"] == "finished", r["state"]
assert [t["id"] for t in r["trials"]] == [t["id"] for t in one["trials"]], ("leaderboard order", [(t["id"], t.get("val_accuracy"), [e["val_accuracy"] for e in t["history"]]) for t in r["trials"] + one["trials"]])
ref = {t["id"]: t for t in one["trials"]}
used = set()
for t in r["trials"]:
    assert t["status"] == "done", t
    assert len(t["history"]) == t["epochs"], t["history"]
    for e, o in zip(t["history"], ref[t["id"]]["history"]):
        used |= set(e["ranks"])
        if want == "12":
            assert sorted(e["ranks"]) == [1, 2], (t["id"], e)
            assert e["comm_seconds"] is not None and 0 <= e["comm_seconds"] <= e["seconds"], e
            for k in ["loss", "val_loss"]:
                assert abs(e[k] - o[k]) <= 1e-5 * abs(o[k]), (t["id"], e["epoch"], k, e[k], o[k])
    print(t["id"], [e["ranks"] for e in t["history"]], [e["loss"] for e in t["history"]])
if want == "all":
    assert used == set(range(1, r["workers"] + 1)), (used, r["workers"])
EOF
}


run_local() { # OUT EPOCHS [ENV...]
    out=$1
    ep=$2
    shift 2
    sweep "$out" "$ep" > "$out.yaml"
    env "$@" "$tlsweep" run --quiet "$out.yaml" > "$out.log" 2>&1
}

run_mpi() { # OUT EPOCHS
    sweep "$1" "$2" > "$1.yaml"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$1.yaml" > "$1.log" 2>&1
}

# Waits (up to a minute) for a fine-tune trial's first checkpoint in OUT:
# that trial is part way through.
wait_for_ft_checkpoint() {
    i=0
    while [ $i -lt 600 ]; do
        if ls "$1/checkpoints/"*ft100*.ckpt > /dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    fail "no fine-tune checkpoint appeared in $1"
}

# stop_mpi_run OUT LOG: 3 ranks run OUT.yaml; once a fine-tune trial has a
# checkpoint the coordinator rank gets SIGTERM: mpirun must exit 75.
stop_mpi_run() {
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$1.yaml" > "$2" 2>&1 &
    mpi=$!
    wait_for_ft_checkpoint "$1"
    coordinator=$(rank_pid "tlsweep run --quiet $1.yaml" 0)
    [ -n "$coordinator" ] || { cat "$2"; fail "no coordinator rank to stop"; }
    kill -TERM "$coordinator"
    set +e
    wait $mpi
    rc=$?
    set -e
    [ $rc -eq 75 ] || { cat "$2"; fail "SIGTERM: mpirun exit $rc, expected 75"; }
}

# SIGTERM to a run (OUT b, EPOCHS) once a fine-tune trial has a checkpoint:
# exit 75 within seconds, the checkpoint left; the re-run resumes from it and
# ends with the leaderboard of an uninterrupted run (OUT a).
interrupt_and_resume() {
    run_local "$d/a" 10 || { cat "$d/a.log"; fail "uninterrupted run"; }
    sweep "$d/b" 10 > "$d/b.yaml"
    "$tlsweep" run --quiet "$d/b.yaml" > "$d/b.log" 2>&1 &
    pid=$!
    wait_for_ft_checkpoint "$d/b"
    start=$(date +%s)
    kill -TERM $pid
    set +e
    wait $pid
    rc=$?
    set -e
    took=$(($(date +%s) - start))
    cat "$d/b.log"
    [ $rc -eq 75 ] || fail "SIGTERM: exit $rc, expected 75 (interrupted, resumable)"
    [ "$took" -lt 10 ] || fail "took ${took}s to stop"
    grep -q "re-run the same command to resume" "$d/b.log" || fail "no resume hint"
    ls "$d/b/checkpoints/"*.ckpt > /dev/null 2>&1 || fail "no checkpoint left for the stopped trial"
    run_local "$d/b" 10 || { cat "$d/b.log"; fail "resumed run"; }
    cat "$d/b.log"
    grep -q "resuming from its checkpoint" "$d/b.log" || fail "the stopped trial did not resume"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    diff "$d/a.board" "$d/b.board" || fail "resumed leaderboard differs from the uninterrupted one"
    if ls "$d/b/checkpoints/"*.ckpt > /dev/null 2>&1; then
        fail "checkpoints of finished trials left behind"
    fi
}

# The 9 trials of sweep() in rungs of 1, 2 and 4 epochs.
rung_yaml="search: {method: successive_halving, min_epochs: 1, reduction_factor: 2}"

# Promotions as "trial rung" lines, from run logs (stdin).
promotions() {
    sed -n 's/^promoted \([^:]*\):.* on to rung \([0-9]*\) .*/\1 \2/p'
}

# check_rungs OUT MAX1 MAX2: OUT's results.json after a rung search:
# finished, every trial done, the rung each reached and why it stopped
# agree, all 9 at rung 0, at most MAX1 at rung 1 and MAX2 at rung 2 (the
# plan's 4 and 2 for successive halving; asha may pass them at the end), the
# best at the last.
check_rungs() {
    $py - "$1/results.json" "$2" "$3" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
max1, max2 = int(sys.argv[2]), int(sys.argv[3])
assert r["state"] == "finished", r["state"]
ends = [1, 2, 4]
at = [0, 0, 0]
for t in r["trials"]:
    assert t["status"] == "done", t
    k = t["rung"]
    assert t["epochs_done"] == ends[k] == len(t["history"]), t
    want = "epochs" if k == 2 else "rung"
    assert t["stop_reason"] == want, t
    assert t["stopped_epoch"] == (ends[k] if k < 2 else None), t
    for j in range(k + 1):
        at[j] += 1
assert at[0] == 9 and 1 <= at[1] <= max1 and 1 <= at[2] <= min(max2, at[1]), at
assert r["trials"][0]["rung"] == 2, r["trials"][0]
print("trials reaching rungs 0, 1, 2:", at)
EOF
    if ls "$1/checkpoints/"*.ckpt > /dev/null 2>&1; then
        fail "checkpoints left behind"
    fi
}

case $case_ in
successive_halving)
    extra_yaml=$rung_yaml
    sweep "$d/a" 4 > "$d/a.yaml"
    "$tlsweep" run --dry-run "$d/a.yaml" > "$d/dry" || { cat "$d/dry"; fail "dry run"; }
    grep -A4 "^rungs" "$d/dry"
    grep -q "^  rung 1: at most 4 trials to epoch 2, 4 epochs$" "$d/dry" || fail "dry run: rung 1"
    grep -q "^  epoch budget: at most 17 epochs, against 36 for every trial to epoch 4" "$d/dry" ||
        fail "dry run: no epoch budget"
    run_local "$d/a" 4 || { cat "$d/a.log"; fail "single-process run"; }
    run_mpi "$d/b" 4 || { cat "$d/b.log"; fail "3-rank run"; }
    cat "$d/b.log"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    cat "$d/a.board"
    diff "$d/a.board" "$d/b.board" || fail "3 ranks and 1 process disagree"
    promotions < "$d/a.log" > "$d/a.prom"
    promotions < "$d/b.log" > "$d/b.prom"
    [ "$(wc -l < "$d/a.prom")" -eq 6 ] || fail "expected 4 + 2 promotions"
    diff "$d/a.prom" "$d/b.prom" || fail "3 ranks and 1 process promoted differently"
    check_rungs "$d/a" 4 2
    # a trial trained rung by rung, resumed from its checkpoints, is the trial
    # trained straight through: the same epochs, figure for figure
    extra_yaml=""
    run_local "$d/g" 4 || { cat "$d/g.log"; fail "grid run"; }
    $py - "$d/a/results.json" "$d/g/results.json" <<'EOF'
import json, sys
sha = {t["id"]: t for t in json.load(open(sys.argv[1]))["trials"]}
grid = {t["id"]: t for t in json.load(open(sys.argv[2]))["trials"]}
assert sha.keys() == grid.keys(), (sha.keys(), grid.keys())
keys = ["loss", "accuracy", "val_loss", "val_accuracy"]
for i, t in sha.items():
    n = t["epochs_done"]
    a = [[e[k] for k in keys] for e in t["history"]]
    b = [[e[k] for k in keys] for e in grid[i]["history"][:n]]
    assert a == b, (i, a, b)
    if t["rung"] == 2:
        for k in ["val_accuracy", "eval_accuracy", "best_epoch"]:
            assert t[k] == grid[i][k], (i, k, t[k], grid[i][k])
print("rung by rung = straight through:", len(sha), "trials")
EOF
    # search.metric: val_loss ranks the rungs by the loss (the winner still by
    # select's val_accuracy): the promotions are those the straight-through
    # histories give when each rung keeps the best half by the lowest val_loss
    # up to its end, ties to the earlier trial
    extra_yaml="search: {method: successive_halving, min_epochs: 1, reduction_factor: 2, metric: val_loss}"
    sweep "$d/v" 4 > "$d/v.yaml"
    "$tlsweep" run --dry-run "$d/v.yaml" | grep -q "^rungs (successive_halving, min_epochs 1, reduction_factor 2, ranked by val_loss, min):$" ||
        fail "dry run: not ranked by val_loss"
    run_local "$d/v" 4 || { cat "$d/v.log"; fail "run ranked by val_loss"; }
    promotions < "$d/v.log" | sort > "$d/v.prom"
    $py - "$d/g/results.json" "$d/v/results.json" <<'EOF' | sort | diff - "$d/v.prom" || fail "promotions by val_loss"
import json, sys
grid = sorted(json.load(open(sys.argv[1]))["trials"], key=lambda t: t["index"])
r = json.load(open(sys.argv[2]))
assert r["search"]["metric"] == "val_loss" and r["search"]["goal"] == "min", r["search"]
assert r["select"]["metric"] == "val_accuracy", r["select"]
ends, entrants = [1, 2, 4], grid
for k in range(2):
    ranked = sorted(entrants, key=lambda t: (min(e["val_loss"] for e in t["history"][:ends[k]]), t["index"]))
    entrants = ranked[:max(1, len(entrants) // 2)]
    for t in sorted(entrants, key=lambda t: t["index"]):
        print(t["id"], k + 1)
EOF
    # on this data the loss keeps other trials than the accuracy would
    sort "$d/a.prom" | cmp -s - "$d/v.prom" && fail "val_loss promoted as val_accuracy did"
    echo "ranked by val_loss: $(wc -l < "$d/v.prom") promotions, as the histories give"
    extra_yaml=$rung_yaml
    # interrupted by SIGTERM once a fine-tune trial has a checkpoint, resumed
    sweep "$d/c" 4 > "$d/c.yaml"
    "$tlsweep" run --quiet "$d/c.yaml" > "$d/c1.log" 2>&1 &
    pid=$!
    wait_for_ft_checkpoint "$d/c"
    kill -TERM $pid
    set +e
    wait $pid
    rc=$?
    set -e
    [ $rc -eq 75 ] || { cat "$d/c1.log"; fail "SIGTERM: exit $rc, expected 75"; }
    "$tlsweep" run --quiet "$d/c.yaml" > "$d/c2.log" 2>&1 || { cat "$d/c2.log"; fail "resumed run"; }
    board "$d/c" > "$d/c.board"
    diff "$d/a.board" "$d/c.board" || fail "resumed leaderboard differs from the uninterrupted one"
    cat "$d/c1.log" "$d/c2.log" | promotions | sort > "$d/c.prom"
    sort "$d/a.prom" | diff - "$d/c.prom" || fail "the resumed run promoted differently"
    ;;
asha_resume)
    extra_yaml="search: {method: asha, min_epochs: 1, reduction_factor: 2}"
    sweep "$d/a" 4 > "$d/a.yaml"
    stop_mpi_run "$d/a" "$d/a1.log"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/a.yaml" > "$d/a2.log" 2>&1 ||
        { cat "$d/a2.log"; fail "resumed run"; }
    cat "$d/a1.log" "$d/a2.log"
    cat "$d/a1.log" "$d/a2.log" | promotions | sort > "$d/a.prom"
    [ -s "$d/a.prom" ] || fail "nothing promoted"
    sort -u "$d/a.prom" | diff - "$d/a.prom" || fail "a promotion was taken twice"
    check_rungs "$d/a" 8 8
    "$tlsweep" run --quiet "$d/a.yaml" > "$d/a3.log" 2>&1 || { cat "$d/a3.log"; fail "re-run"; }
    grep -q "9 of 9 trials already finished" "$d/a3.log" || { cat "$d/a3.log"; fail "the re-run trained again"; }
    if promotions < "$d/a3.log" | grep -q .; then
        fail "the re-run promoted again"
    fi
    ;;
mpi_equals_local)
    run_local "$d/a" 3 || { cat "$d/a.log"; fail "single-process run"; }
    run_mpi "$d/b" 3 || { cat "$d/b.log"; fail "3-rank run"; }
    cat "$d/b.log"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    diff "$d/a.board" "$d/b.board" || fail "3 ranks and 1 process disagree"
    [ "$(wc -l < "$d/a.board")" -eq 10 ] || fail "expected 9 trials in results.csv"
    for f in best.tlm results.json journal sweep.yaml; do
        [ -s "$d/b/$f" ] || fail "out/$f missing"
    done
    $py - "$d/b/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "finished", r["state"]
fc = r["feature_caches"]
assert len(fc) == 1 and fc[0]["trials"] == 6, fc  # frozen and two-stage
# the frozen grid's backbone work: one pass per image, not trials x epochs
assert fc[0]["extractions"] == 1 and fc[0]["passes_per_image"] == 1.0, fc
assert r["best"]["trial"] == r["trials"][0]["id"]
assert all(t["status"] == "done" for t in r["trials"])
assert len(r["trials"][0]["history"]) == 3
print("best", r["best"], "features", fc[0]["passes_per_image"], "passes per image")
EOF
    # the written best model is the best trial's: evaluate reproduces its
    # test accuracy. Compared as counts of correct images, not as printed
    # figures: at a rounding tie (31/160 = 0.19375) the float32 in
    # results.json prints "0.1937" and evaluate's double "0.1938".
    "$tlsweep" evaluate --model "$d/b/best.tlm" "$d/fm/test" > "$d/eval.txt" ||
        { cat "$d/eval.txt"; fail "evaluate best.tlm"; }
    $py - "$d/b/results.json" "$d/eval.txt" <<'EOF' ||
import json, re, sys
r = json.load(open(sys.argv[1]))
m = re.search(r"^accuracy \S+ \((\d+)/(\d+)\)", open(sys.argv[2]).read(), re.M)
assert m, "no 'accuracy X (hits/seen)' line from evaluate"
hits, seen = int(m.group(1)), int(m.group(2))
acc = r["trials"][0]["eval_accuracy"]  # float32: within 1e-6 of a count / seen
assert seen > 0 and abs(acc * seen - round(acc * seen)) < 1e-3, (acc, seen)
assert round(acc * seen) == hits, "best trial: %d of %d correct (%r); best.tlm: %d" % (
    round(acc * seen), seen, acc, hits)
print("best.tlm: %d of %d test images correct, as its trial" % (hits, seen))
EOF
        fail "best.tlm does not give the best trial's test accuracy"
    ;;
sigterm_resume)
    interrupt_and_resume
    ;;
kill9_resume)
    run_local "$d/a" 6 || { cat "$d/a.log"; fail "uninterrupted run"; }
    sweep "$d/b" 6 > "$d/b.yaml"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/b.yaml" > "$d/b.log" 2>&1 &
    mpi=$!
    wait_for_ft_checkpoint "$d/b"
    victim=$(rank_pid "tlsweep run --quiet $d/b.yaml" '[12]')
    [ -n "$victim" ] || { cat "$d/b.log"; fail "no worker rank to kill"; }
    kill -9 "$victim"
    set +e
    wait $mpi
    rc=$?
    set -e
    [ $rc -ne 0 ] || fail "mpirun exited 0 after a worker was killed"
    echo "mpirun exited $rc after kill -9 of worker pid $victim"
    run_mpi "$d/b" 6 || { cat "$d/b.log"; fail "resumed run"; }
    cat "$d/b.log"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    diff "$d/a.board" "$d/b.board" || fail "resumed leaderboard differs from the uninterrupted one"
    ;;
random_search)
    for x in a b c; do
        tiny_sweep "$d" tiny 2 "[frozen, {fine_tune_at: 100}]" "{log_uniform: [1.0e-3, 1.0e-2]}" \
            "[global_average_pooling]" "checkpoint_seconds: 0
out: $d/$x
ranks_per_trial: 1
search: {method: random, trials: 4, seed: 3}" > "$d/$x.yaml"
    done
    "$tlsweep" run --dry-run "$d/a.yaml" > "$d/dry1" || { cat "$d/dry1"; fail "dry run"; }
    "$tlsweep" run --dry-run "$d/a.yaml" > "$d/dry2"
    cat "$d/dry1"
    cmp "$d/dry1" "$d/dry2" || fail "two dry runs drew different trials"
    grep -q "^search: random, 4 configurations drawn with seed 3" "$d/dry1" || fail "dry run: no search line"
    "$tlsweep" run --quiet "$d/a.yaml" > "$d/a.log" 2>&1 || { cat "$d/a.log"; fail "single-process run"; }
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/b.yaml" > "$d/b.log" 2>&1 ||
        { cat "$d/b.log"; fail "3-rank run"; }
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    cat "$d/a.board"
    diff "$d/a.board" "$d/b.board" || fail "3 ranks and 1 process disagree"
    [ "$(wc -l < "$d/a.board")" -eq 5 ] || fail "expected 4 trials in results.csv"
    $py - "$d/a/results.json" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "finished", r["state"]
for t in r["trials"]:
    assert t["status"] == "done", t
    lr = float(re.search(r"-lr([0-9.]+e-[0-9]+)-", t["id"]).group(1))
    assert lr == t["learning_rate"] and 1e-3 <= lr <= 1e-2, (t["id"], t["learning_rate"])
EOF
    # a job array's way: two slices of the drawn trials, merged
    for i in 0 1; do
        "$tlsweep" run --quiet --slice $i/2 "$d/c.yaml" > "$d/c$i.log" 2>&1 ||
            { cat "$d/c$i.log"; fail "slice $i/2"; }
    done
    "$tlsweep" merge "$d/c" > "$d/merge.log" 2>&1 || { cat "$d/merge.log"; fail "merge"; }
    board "$d/c" > "$d/c.board"
    diff "$d/a.board" "$d/c.board" || fail "merged slices differ from the whole run"
    # a re-run finds every drawn trial finished
    "$tlsweep" run --quiet "$d/a.yaml" > "$d/a2.log" 2>&1 || { cat "$d/a2.log"; fail "re-run"; }
    grep -q "4 of 4 trials already finished" "$d/a2.log" || { cat "$d/a2.log"; fail "the re-run trained again"; }
    board "$d/a" > "$d/a2.board"
    diff "$d/a.board" "$d/a2.board" || fail "the re-run changed the leaderboard"
    ;;
early_stopping)
    # min_delta 1000: only a stage's first epoch improves, so with patience 1
    # each trial stops after its last stage's second epoch
    tiny_sweep "$d" tiny 4 \
        "[frozen, {fine_tune_at: 100}, {frozen_then_fine_tune: {fine_tune_at: 100, epochs: 1}}]" \
        "[1.0e-3]" "[global_average_pooling]" "checkpoint_seconds: 0
out: $d/a
early_stopping: {monitor: loss, patience: 1, min_delta: 1000}" > "$d/a.yaml"
    "$tlsweep" run --dry-run "$d/a.yaml" | grep -q "^early_stopping: loss, patience 1, min_delta 1000" ||
        fail "dry run: no early_stopping line"
    "$tlsweep" run "$d/a.yaml" > "$d/a.log" 2>&1 || { cat "$d/a.log"; fail "run"; }
    grep "early stopping" "$d/a.log" || true
    $py - "$d/a/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "finished", r["state"]
want = {"frozen": 2, "ft100": 2, "frozen1-ft100": 3}
for t in r["trials"]:
    tag = t["id"].split("-")[1] if "frozen1" not in t["id"] else "frozen1-ft100"
    assert t["status"] == "done", t
    assert t["stop_reason"] == "early_stopping", t
    assert t["stopped_epoch"] == want[tag] == len(t["history"]), (t["id"], t["stopped_epoch"], len(t["history"]))
    assert 1 <= t["best_epoch"] <= t["stopped_epoch"], t
print("stopped:", [(t["id"], t["stopped_epoch"]) for t in r["trials"]])
EOF
    # a re-run finds every stopped trial finished
    "$tlsweep" run --quiet "$d/a.yaml" > "$d/a2.log" 2>&1 || { cat "$d/a2.log"; fail "re-run"; }
    grep -q "3 of 3 trials already finished" "$d/a2.log" || { cat "$d/a2.log"; fail "the re-run trained again"; }
    ;;
early_stopping_resume)
    # min_delta 1000 and patience 6: a trial stops 6 epochs after its last
    # stage's first; interrupted and resumed, it stops at the same epoch
    extra_yaml="early_stopping: {monitor: loss, patience: 6, min_delta: 1000}"
    interrupt_and_resume
    $py - "$d/b/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
want = {"frozen": 7, "ft100": 7, "frozen1-ft100": 8}
for t in r["trials"]:
    tag = "frozen1-ft100" if "frozen1-ft100" in t["id"] else t["id"].split("-")[1]
    assert t["stop_reason"] == "early_stopping" and t["stopped_epoch"] == want[tag], t
EOF
    ;;
slices_merge)
    run_local "$d/a" 3 || { cat "$d/a.log"; fail "whole run"; }
    sweep "$d/b" 3 > "$d/b.yaml"
    for i in 0 1 2; do
        "$tlsweep" run --quiet --slice $i/3 "$d/b.yaml" > "$d/b$i.log" 2>&1 ||
            { cat "$d/b$i.log"; fail "slice $i/3"; }
        grep -q "3 trials on 1 worker" "$d/b$i.log" || { cat "$d/b$i.log"; fail "slice $i/3: not 3 trials"; }
    done
    # one extraction for all slices: the first wrote out/cache, the others read it
    [ "$(grep -l "features: reusing" "$d"/b?.log | wc -l)" -ge 1 ] || fail "slices did not share the cache"
    set +e
    "$tlsweep" merge "$d/b" > "$d/merge.log" 2>&1
    rc=$?
    set -e
    cat "$d/merge.log"
    [ $rc -eq 0 ] || fail "merge exited $rc"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    diff "$d/a.board" "$d/b.board" || fail "merged slices differ from the whole run"
    cmp "$d/a/best.tlm" "$d/b/best.tlm" || fail "merged best.tlm is not the whole run's"
    # a bit flipped in the middle of slice 1's journal: merge refuses it with
    # journal_open's line and the slice's --repair; after that, merged again
    $py -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=4; open(p,'wb').write(b)" \
        "$d/b/slices/1/journal"
    set +e
    "$tlsweep" merge "$d/b" > "$d/merge1.log" 2>&1
    rc=$?
    set -e
    [ $rc -eq 1 ] && grep -q "slices/1/journal: damaged record at byte" "$d/merge1.log" &&
        grep -q -- "--slice 1/3 --repair" "$d/merge1.log" ||
        { cat "$d/merge1.log"; fail "merge of a slice damaged in the middle"; }
    "$tlsweep" run --quiet --slice 1/3 --repair "$d/b.yaml" > "$d/b1r.log" 2>&1 ||
        { cat "$d/b1r.log"; fail "slice 1/3 --repair"; }
    "$tlsweep" merge "$d/b" > "$d/merge3.log" 2>&1 || { cat "$d/merge3.log"; fail "merge after repair"; }
    board "$d/b" > "$d/b.board"
    diff "$d/a.board" "$d/b.board" || fail "merged slices after a repair differ from the whole run"
    cmp "$d/a/best.tlm" "$d/b/best.tlm" || fail "merged best.tlm after a repair is not the whole run's"
    # a missing slice: merged anyway, exit 1, the gap named
    rm -rf "$d/b/slices/2"
    set +e
    "$tlsweep" merge "$d/b" > "$d/merge2.log" 2>&1
    rc=$?
    set -e
    [ $rc -eq 1 ] && grep -q "3 of 9 trials have not finished" "$d/merge2.log" ||
        { cat "$d/merge2.log"; fail "merge with a slice missing"; }
    ;;
bad_sweeps)
    sweep "$d/ok" 2 > "$d/ok.yaml"
    "$tlsweep" run --dry-run "$d/ok.yaml" > /dev/null || fail "the good sweep does not load"
    n=0
    check() { # NAME EXPECTED-TEXT (stdin: the sweep)
        n=$((n + 1))
        cat > "$d/bad$n.yaml"
        set +e
        "$tlsweep" run --quiet "$d/bad$n.yaml" > "$d/bad$n.out" 2> "$d/bad$n.err"
        rc=$?
        set -e
        [ $rc -eq 1 ] || fail "$1: exit $rc, expected 1"
        [ "$(wc -l < "$d/bad$n.err")" -eq 1 ] || { cat "$d/bad$n.err"; fail "$1: not one line"; }
        grep -q "$2" "$d/bad$n.err" || { cat "$d/bad$n.err"; fail "$1: no '$2'"; }
        [ ! -e "$d/ok" ] || fail "$1: out/ was created"
        echo "$1: $(cat "$d/bad$n.err")"
    }
    sed 's/^epochs: 2$/epochs: 2\nepoch: 3/' "$d/ok.yaml" | check "unknown key" "epoch"
    sed 's/learning_rate: \[1.0e-2,/learning_rate: [-1.0e-2,/' "$d/ok.yaml" | check "bad value" "grid.learning_rate\[0\]"
    sed 's/^  image_size: 32$/  image_size: [32/' "$d/ok.yaml" | check "YAML syntax" "bad$n.yaml:\|bad[0-9]*.yaml:"
    sed "s|mobilenet_v2: $d/tiny.tlm|mobilenet_v2: $d/missing.tlm|" "$d/ok.yaml" | check "weights file missing" "missing.tlm"
    sed "s|train_dir: $d/fm/train|train_dir: $d/nowhere|" "$d/ok.yaml" | check "no dataset" "nowhere"
    sed 's/mode: \[frozen, {fine_tune_at: 100}/mode: [frozen, {fine_tune_at: -4}/' "$d/ok.yaml" | check "bad fine_tune_at" "fine_tune_at"
    # bf16 on a CPU without AVX512_BF16 (TLSWEEP_CPU_NO_BF16=1 plays one):
    # refused before anything is written; a dry run (a login node) notes it
    sed 's/^  batch_size: \[16\]$/&\n  precision: [fp32, bf16]/' "$d/ok.yaml" > "$d/bf16.yaml"
    grep -q "^  precision: \[fp32, bf16\]$" "$d/bf16.yaml" || fail "no precision in the bf16 sweep"
    export TLSWEEP_CPU_NO_BF16=1
    # a build without oneDNN says that first (tlsweep info: "onednn: ... not built in")
    if "$tlsweep" info | grep -q "^onednn: .*not built in"; then
        why="bf16 needs oneDNN, and this tlsweep is built without oneDNN (.*)"
    else
        why="bf16 needs a CPU with AVX512_BF16, and this one (.*) has none: use fp32 here"
    fi
    check "bf16 on a CPU without it" "yaml:[0-9]*:[0-9]*: grid.precision\[1\]: $why\$" \
        < "$d/bf16.yaml"
    "$tlsweep" run --dry-run "$d/bf16.yaml" > "$d/bf16.dry" || fail "bf16 dry run: exit $?"
    grep -q "^  note: .*: grid.precision\[1\]: $why.* (a real run here is refused)$" \
        "$d/bf16.dry" || { cat "$d/bf16.dry"; fail "bf16 dry run: no note"; }
    unset TLSWEEP_CPU_NO_BF16
    # a job array cannot run a rung search: one line naming the methods
    sed "s/^seed: 7$/seed: 7\n$rung_yaml/" "$d/ok.yaml" > "$d/sha.yaml"
    set +e
    "$tlsweep" run --quiet --slice 0/2 "$d/sha.yaml" > "$d/sha.out" 2> "$d/sha.err"
    rc=$?
    set -e
    { [ $rc -eq 1 ] && [ "$(wc -l < "$d/sha.err")" -eq 1 ]; } ||
        { cat "$d/sha.err"; fail "--slice with successive_halving: exit $rc"; }
    grep -q "search method successive_halving decides on all the trials' results together; a job array (--slice, merge) supports methods grid and random" "$d/sha.err" ||
        { cat "$d/sha.err"; fail "--slice with successive_halving: not the line"; }
    [ ! -e "$d/ok" ] || fail "--slice with successive_halving: out/ was created"
    echo "--slice with successive_halving: $(cat "$d/sha.err")"
    ;;
setup_error_no_hang)
    # expect_setup_error WHAT TEXT LAUNCH...: non-zero within 60 s, the
    # coordinator's line once on stderr (mpirun adds lines of its own)
    n=0
    expect_setup_error() {
        what=$1
        text=$2
        shift 2
        n=$((n + 1))
        set +e
        timeout 60 "$@" > "$d/s$n.out" 2> "$d/s$n.err"
        rc=$?
        set -e
        [ $rc -ne 124 ] || { cat "$d/s$n.out" "$d/s$n.err"; fail "$what: still running after 60 s"; }
        [ $rc -ne 0 ] || fail "$what: exit 0"
        [ "$(grep -c '^tlsweep run:' "$d/s$n.err")" -eq 1 ] || { cat "$d/s$n.err"; fail "$what: not one line"; }
        grep -q "$text" "$d/s$n.err" || { cat "$d/s$n.err"; fail "$what: no '$text'"; }
        echo "$what: exit $rc: $(grep '^tlsweep run:' "$d/s$n.err")"
    }
    sweep "$d/a" 2 > "$d/a.yaml"
    mkdir -p "$d/a"
    # another run's lock on the journal (flock(1) takes the same kind)
    (exec 9>> "$d/a/journal" && flock -x 9 && exec sleep 120) > /dev/null 2>&1 &
    holder=$!
    trap 'kill $holder 2> /dev/null || true; rm -rf "$d"' EXIT
    i=0
    while [ ! -e "$d/a/journal" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 0.3
    expect_setup_error "locked, one process" "another writer" "$tlsweep" run --quiet "$d/a.yaml"
    [ "$(grep -c '' "$d/s$n.err")" -eq 1 ] || { cat "$d/s$n.err"; fail "one process: more than one line"; }
    expect_setup_error "locked, 3 ranks" "another writer"         mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/a.yaml"
    kill $holder
    wait $holder 2> /dev/null || true
    echo "this is not a journal" > "$d/a/journal"
    expect_setup_error "not a journal, 3 ranks" "not a tlsweep journal"         mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/a.yaml"
    echo x > "$d/file"
    sweep "$d/file/out" 2 > "$d/f.yaml"
    expect_setup_error "out: under a file, one process" "not a folder" "$tlsweep" run --quiet "$d/f.yaml"
    ;;
groups_fixed)
    group_sweep "$d/one" 2 1
    "$tlsweep" run --quiet "$d/one.yaml" > "$d/one.log" 2>&1 || { cat "$d/one.log"; fail "one-rank run"; }
    group_sweep "$d/g" 2 2
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/g.yaml" > "$d/g.log" 2>&1 ||
        { cat "$d/g.log"; fail "ranks_per_trial 2 on 3 ranks"; }
    cat "$d/g.log"
    group_check "$d/g" "$d/one" 12
    grep -q "on ranks 1,2$" "$d/g.log" || fail "no line naming the group"
    ;;
groups_auto)
    group_sweep "$d/one" 3 1
    "$tlsweep" run --quiet "$d/one.yaml" > "$d/one.log" 2>&1 || { cat "$d/one.log"; fail "one-rank run"; }
    group_sweep "$d/g" 3 auto
    mpiexec -n 4 --oversubscribe "$tlsweep" run --quiet "$d/g.yaml" > "$d/g.log" 2>&1 ||
        { cat "$d/g.log"; fail "auto on 4 ranks"; }
    cat "$d/g.log"
    group_check "$d/g" "$d/one" all
    ;;
groups_join)
    # the frozen trial (on the cache: milliseconds) frees its worker while
    # the fine-tune trial has epochs left: that worker joins it at an epoch
    # boundary (Stop YIELD), and the trial goes on as a group of two. The
    # epochs before the join are the one-rank run's, figure for figure; the
    # group's first epoch's loss within 1e-4 (a group sums in another order,
    # and training a random backbone magnifies that from step to step: its
    # val_loss moved 5e-4 there, as much as a group's from the start had by
    # that epoch)
    for x in one g; do
        tiny_sweep "$d" tiny 8 "[frozen, {fine_tune_at: 100}]" "[1.0e-3]" "[global_average_pooling]" \
            "checkpoint_seconds: 0
out: $d/$x
ranks_per_trial: $([ $x = one ] && echo 1 || echo auto)" > "$d/$x.yaml"
    done
    "$tlsweep" run --quiet "$d/one.yaml" > "$d/one.log" 2>&1 || { cat "$d/one.log"; fail "one-rank run"; }
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/g.yaml" > "$d/g.log" 2>&1 ||
        { cat "$d/g.log"; fail "auto on 3 ranks"; }
    cat "$d/g.log"
    grep -q "yield at the end of the epoch, to take idle ranks$" "$d/g.log" || fail "no yield to take the idle rank"
    grep -q "resuming from its checkpoint on ranks [12],[12]$" "$d/g.log" || fail "the trial was not regrouped"
    $py - "$d/g/results.json" "$d/one/results.json" <<'EOF'
import json, sys
r, one = (json.load(open(p)) for p in sys.argv[1:3])
assert r["state"] == "finished", r["state"]
ft = [t for t in r["trials"] if "ft100" in t["id"]][0]
ref = [t for t in one["trials"] if "ft100" in t["id"]][0]
assert ft["status"] == "done", ft
assert [e["epoch"] for e in ft["history"]] == list(range(1, 9)), ft["history"]
n = [len(e["ranks"]) for e in ft["history"]]
assert n[0] == 1 and n[-1] == 2 and n == sorted(n), n
assert sorted(ft["ranks"]) == [1, 2], ft["ranks"]
j = n.index(2)  # the group's first epoch is j + 1
for e, o in zip(ft["history"][:j], ref["history"]):
    assert all(e[k] == o[k] for k in ["loss", "val_loss", "val_accuracy"]), (e, o)
e, o = ft["history"][j], ref["history"][j]
assert abs(e["loss"] - o["loss"]) <= 1e-4 * o["loss"], (e["epoch"], e["loss"], o["loss"])
print("fine-tune epochs' ranks:", [e["ranks"] for e in ft["history"]])
EOF
    ;;
groups_sigterm)
    tiny_sweep "$d" tiny 10 "[{fine_tune_at: 100}]" "[1.0e-2]" "[global_average_pooling]" \
        "checkpoint_seconds: 0
out: $d/g
ranks_per_trial: 2" > "$d/g.yaml"
    stop_mpi_run "$d/g" "$d/g1.log"
    cat "$d/g1.log"
    grep -q "stopped .* after [0-9]* epochs\? (checkpointed)" "$d/g1.log" || fail "the group's trial did not stop"
    ls "$d/g/checkpoints/"*.ckpt > /dev/null 2>&1 || fail "no checkpoint left for the stopped trial"
    # 2 ranks: one worker, so a group of one
    mpiexec -n 2 --oversubscribe "$tlsweep" run --quiet "$d/g.yaml" > "$d/g2.log" 2>&1 ||
        { cat "$d/g2.log"; fail "resumed run"; }
    cat "$d/g2.log"
    grep -q "resuming from its checkpoint on rank 1$" "$d/g2.log" || fail "the trial did not resume alone"
    $py - "$d/g/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "finished", r["state"]
t = r["trials"][0]
assert t["status"] == "done", t
assert [e["epoch"] for e in t["history"]] == list(range(1, 11)), t["history"]
ranks = [sorted(e["ranks"]) for e in t["history"]]
assert ranks[0] == [1, 2] and ranks[-1] == [1], ranks
assert t["ranks"] == [1], t["ranks"]
print("epochs' ranks:", ranks)
EOF
    ;;
groups_local)
    group_sweep "$d/g" 2 2
    "$tlsweep" run --dry-run "$d/g.yaml" | grep -q "^ranks_per_trial: 2 " || fail "dry run: no ranks_per_trial line"
    "$tlsweep" run --quiet "$d/g.yaml" > "$d/g.log" 2>&1 || { cat "$d/g.log"; fail "one process"; }
    $py - "$d/g/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "finished", r["state"]
for t in r["trials"]:
    assert t["status"] == "done" and t["ranks"] == [1], t
    assert all(e["ranks"] == [1] for e in t["history"]), t["history"]
print("alone:", [(t["id"], t["ranks"]) for t in r["trials"]])
EOF
    tail -1 "$d/g/results.csv" | grep -q ",1,[0-9.]*$" || { cat "$d/g/results.csv"; fail "results.csv: no ranks column of 1"; }
    ;;
*)
    fail "unknown case $case_"
    ;;
esac
echo "ok: $case_"
