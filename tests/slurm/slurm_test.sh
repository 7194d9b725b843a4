#!/bin/sh
# The Slurm templates (slurm/) on a real single-node Slurm cluster, started by
# tests/slurm/cluster.sh in a temporary folder and stopped at the end (only
# the daemons it started). A tiny sweep (the random MobileNetV2 of
# cli/tiny_model, a few Fashion-MNIST images per class, 6 trials) runs on
# 3 ranks (--overcommit: more tasks than cores) with `srun --mpi=pmix`:
#   1. sbatch --wait slurm/sweep.sbatch: exit 0, leaderboard, results.json
#   2. again on a fresh out: `scontrol requeue` once a checkpoint exists, the
#      requeued job released at once (StartTime=now): run 2 logs
#      SLURM_RESTART_COUNT=1, resumes from the checkpoints, exits 0 and ends
#      with run 1's leaderboard
#   3. the warning signal's way, with LAUNCH=mpirun: `scancel -b -s USR1`
#      (what --signal=B:USR1 sends): mpirun hands it to the ranks, the sweep
#      stops with exit 75 and the script requeues the job itself; released,
#      it resumes and ends with run 1's leaderboard
#   4. slurm/submit-array.sh with 2 array tasks and the dependent merge job:
#      the merged leaderboard is run 1's
#   slurm_test.sh TLSWEEP TINY_MODEL
# Needs root and Debian's slurm-wlm and munge (deploy/install-deps.sh): fails,
# never skips, without them.
set -eu
# absolute: the jobs run elsewhere
tlsweep=$(readlink -f "$1")
tiny=$(readlink -f "$2")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
for b in slurmctld slurmd munged sbatch srun scontrol squeue scancel; do
    PATH=$PATH:/usr/sbin:/sbin command -v $b > /dev/null ||
        fail "$b not found: this test needs a real Slurm (Debian's slurm-wlm and munge; deploy/install-deps.sh installs them)"
done
[ "$(id -u)" -eq 0 ] || fail "needs root: it starts slurmd and munged (the CI container runs as root)"
. "$here/../lib/tiny.sh"
need_fashion_mnist

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
d=$(mktemp -d /tmp/tl_slurm_XXXXXX)
chmod 755 "$d" # munged (user munge) reaches its socket below
cleanup() {
    sh "$here/cluster.sh" stop "$d/cluster" || true
    rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
t0=$(date +%s)
elapsed() {
    echo $(($(date +%s) - t0))
}

start=$(sh "$here/cluster.sh" start "$d/cluster") || fail "the cluster did not start"
eval "$start"
[ -n "${SLURM_CONF:-}" ] || fail "cluster.sh start printed no SLURM_CONF"
echo "cluster up in $(elapsed) s: $(sinfo -h -o '%P %T %c CPUs %N')"

tiny_data "$tlsweep" "$tiny" "$d" 16

# OUT: 2 modes x 3 learning rates, up to 30 epochs (early stopping); one
# rank per trial: the resumed runs are compared figure for figure with the
# first, and when a group forms depends on when the run was stopped (a
# group's sums round otherwise than one rank's, and 30 epochs of Adam carry
# the last bits into the leaderboard)
sweep() {
    tiny_sweep "$d" tiny 30 "[frozen, {fine_tune_at: 100}]" "[1.0e-2, 3.0e-3, 1.0e-3]" \
        "[global_average_pooling, {dense: 32}, {dropout: 0.1}]" "checkpoint_seconds: 0
out: $1
ranks_per_trial: 1" > "$1.yaml"
}
board() { # the leaderboard without timings
    sed 's/,[^,]*$//' "$1/results.csv" # all but the last column, seconds
}
best() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["best"]["trial"])' "$1/results.json"
}
check_results() { # OUT NAME
    if [ ! -s "$1/results.json" ] || [ ! -s "$1/best.tlm" ]; then
        fail "$2: no results.json or best.tlm in $1"
    fi
    python3 - "$1/results.json" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "finished", (sys.argv[2], r["state"])
assert len(r["trials"]) == 6 and all(t["status"] == "done" for t in r["trials"]), sys.argv[2]
assert r["best"]["trial"] == r["trials"][0]["id"], sys.argv[2]
EOF
}
# Submits slurm/sweep.sbatch for OUT on 3 ranks over 1 CPU each; extra
# sbatch options first. The job's log: OUT.log.
submit() { # OUT [SBATCH OPTIONS...]
    out=$1
    shift
    sweep "$out"
    SWEEP=$out.yaml TLSWEEP=$tlsweep sbatch -N 1 -n 3 -c 1 --overcommit -o "$out.log" "$@" \
        "$repo/slurm/sweep.sbatch"
}
state() {
    squeue -h -j "$1" -o %T 2> /dev/null || true
}
wait_state() { # JOB STATE SECONDS: until squeue says STATE ('' = gone)
    i=0
    while [ "$(state "$1")" != "$2" ]; do
        [ $i -lt $(($3 * 5)) ] || return 1
        sleep 0.2
        i=$((i + 1))
    done
}
wait_checkpoint() { # OUT
    i=0
    until ls "$1/checkpoints/"*.ckpt > /dev/null 2>&1; do
        [ $i -lt 300 ] || fail "no checkpoint in $1/checkpoints after 60 s"
        sleep 0.2
        i=$((i + 1))
    done
}
# JOB OUT: release the requeued (pending) job now instead of in ~120 s, wait
# for its end and check its second run
release_and_check() {
    wait_state "$1" PENDING 60 || { cat "$2.log"; fail "job $1 is '$(state "$1")', not pending, after the requeue"; }
    echo "job $1 requeued after $(($(date +%s) - t1)) s: $(squeue -h -j "$1" -o '%T, start %S, %r')"
    # Released while the last run's slurmstepd still cleans up, the new run's
    # srun can fail to launch (and exit 0): a real requeue waits ~120 s anyway.
    i=0
    while grep -qsa "^slurmstepd: \[$1\." /proc/[0-9]*/cmdline; do
        [ $i -lt 150 ] || fail "job $1's last run still has a slurmstepd after 30 s"
        sleep 0.2
        i=$((i + 1))
    done
    # and until the node is idle again (not "completing": a job released onto
    # a completing node was seen to vanish without running)
    i=0
    until [ "$(sinfo -h -o %T | sort -u)" = idle ]; do
        [ $i -lt 150 ] || fail "the node is '$(sinfo -h -o %T)', not idle, 30 s after the requeue"
        sleep 0.2
        i=$((i + 1))
    done
    sleep 1
    scontrol update JobId="$1" StartTime=now
    # the second run's last line (the log, not squeue: a job that has just
    # ended leaves squeue soon, and squeue can miss a job for a moment)
    i=0
    until [ "$(grep -c '^tlsweep job: exit' "$2.log")" -ge 2 ]; do
        [ $i -lt 900 ] || { cat "$2.log"; fail "job $1 ('$(state "$1")') not done 180 s after its release"; }
        sleep 0.2
        i=$((i + 1))
    done
    cat "$2.log"
    grep -q "SLURM_RESTART_COUNT=1" "$2.log" || fail "the requeued run did not log SLURM_RESTART_COUNT=1"
    grep -Eq "resuming from its checkpoint|already finished" "$2.log" ||
        fail "the requeued run did not resume from the checkpoints"
    [ "$(grep '^tlsweep job: exit' "$2.log" | tail -n 1 | cut -d' ' -f4)" = 0 ] ||
        fail "the requeued run did not exit 0"
    check_results "$2" "requeued run"
    board "$2" > "$2.board"
    [ "$(best "$2")" = "$best1" ] || fail "requeued: best $(best "$2"), not run 1's $best1"
    diff "$d/a.board" "$2.board" || fail "the resumed leaderboard differs from run 1's"
}

echo "== 1. sbatch --wait slurm/sweep.sbatch, 3 ranks with srun --mpi=pmix ($(elapsed) s)"
set +e
submit "$d/a" --wait
rc=$?
set -e
cat "$d/a.log"
[ $rc -eq 0 ] || fail "sbatch --wait: exit $rc"
grep -q "^leaderboard (val_accuracy, max; 6 of 6 trials)" "$d/a.log" || fail "no leaderboard in the job's log"
grep -q "tiny: 6 trials on 2 workers" "$d/a.log" || fail "not 3 ranks (1 coordinator, 2 workers)"
check_results "$d/a" "run 1"
board "$d/a" > "$d/a.board"
best1=$(best "$d/a")
echo "run 1 best: $best1"

echo "== 2. scontrol requeue mid-run ($(elapsed) s)"
job=$(submit "$d/b" --parsable)
wait_checkpoint "$d/b"
t1=$(date +%s)
scontrol requeue "$job"
release_and_check "$job" "$d/b"
# the kill reached the batch script as SIGTERM (noted, not forwarded)
grep -q "SIGTERM" "$d/b.log" || fail "the requeue's SIGTERM did not reach the batch script"

echo "== 3. mpirun; the warning signal: scancel -b -s USR1, the job requeues itself ($(elapsed) s)"
export LAUNCH=mpirun
job=$(submit "$d/c" --parsable)
unset LAUNCH
wait_checkpoint "$d/c"
t1=$(date +%s)
scancel -b --signal=USR1 "$job"
release_and_check "$job" "$d/c"
grep -q "^tlsweep job: exit 75" "$d/c.log" || fail "USR1: the first run did not exit 75"
grep -q "^tlsweep job: requeued $job" "$d/c.log" || fail "USR1: the job did not requeue itself"
grep -q "3 ranks, .*, mpirun," "$d/c.log" || fail "LAUNCH=mpirun was not used"

echo "== 4. job array of 2 slices, then the dependent merge ($(elapsed) s)"
sweep "$d/e"
set +e
ids=$(cd "$d" && TLSWEEP=$tlsweep ARRAY_ARGS="-c 1 -o $d/e-%a.log" MERGE_ARGS="--wait -o $d/e-merge.log" \
    "$repo/slurm/submit-array.sh" "$d/e.yaml" 2)
rc=$?
set -e
cat "$d"/e-0.log "$d"/e-1.log "$d"/e-merge.log 2> /dev/null || true
echo "array and merge jobs: $ids"
# array tasks start together and share OUT/cache: both may write the same
# feature cache file at once (in tlsweep, not in the templates)
if grep -q "features.tmp failed" "$d"/e-?.log 2> /dev/null; then
    fail "tlsweep: two slices wrote OUT/cache at once and one failed on the shared .tmp name" \
        "(common/base/fileio.c tl_atomic_open: path.tmp is the same for every writer)"
fi
[ $rc -eq 0 ] || fail "submit-array.sh (merge --wait): exit $rc"
grep -q "slice 0/2" "$d/e-0.log" || fail "array task 0 did not run slice 0/2"
grep -q "slice 1/2" "$d/e-1.log" || fail "array task 1 did not run slice 1/2"
grep -q "merged 2 slices: 6 of 6 trials finished" "$d/e-merge.log" || fail "merge did not find all 6 trials"
check_results "$d/e" "merged array"
board "$d/e" > "$d/e.board"
diff "$d/a.board" "$d/e.board" || fail "the merged leaderboard differs from run 1's"

echo "ok: slurm ($(elapsed) s)"
