#!/bin/sh
# The heartbeat under mpirun: a worker rank stopped with SIGSTOP mid-trial
# is named (rank and host) within the sweep's worker_timeout, and the run
# stops resumably: exit 75, the trials' checkpoints kept; the re-run
# resumes from them and finishes.
#   sigstop_worker.sh TLSWEEP TINY_MODEL
set -eu
tlsweep=$1
tiny=$2
. "$(dirname "$0")/../lib/tiny.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
d=$(mktemp -d /tmp/tl_sigstop_XXXXXX)
victim=
trap '[ -z "$victim" ] || kill -KILL "$victim" 2>/dev/null; rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

timeout=3
tiny_data "$tlsweep" "$tiny" "$d" 16
tiny_sweep "$d" stopped 20 "[fine_tune]" "[1.0e-2, 1.0e-3]" "[global_average_pooling, {dense: 16}]" \
    "checkpoint_seconds: 0
worker_timeout: $timeout
out: $d/out" > "$d/s.yaml"

mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/s.yaml" > "$d/run.log" 2>&1 &
mpi=$!
# both workers train once the first checkpoint is there
i=0
until ls "$d/out/checkpoints/"*.ckpt > /dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 600 ] || { cat "$d/run.log"; fail "no checkpoint within a minute"; }
    sleep 0.1
done
vrank=
for p in $(pgrep -f "tlsweep run --quiet $d/s.yaml" || true); do
    r=$(tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    if [ "$r" = 1 ] || [ "$r" = 2 ]; then
        victim=$p
        vrank=$r
        break
    fi
done
[ -n "$victim" ] || { cat "$d/run.log"; fail "no worker rank to stop"; }
kill -STOP "$victim"
start=$(date +%s)
set +e
wait $mpi
rc=$?
set -e
took=$(($(date +%s) - start))
cat "$d/run.log"
echo "mpirun exited $rc ${took}s after SIGSTOP of rank $vrank (pid $victim)"
[ $rc -eq 75 ] || fail "exit $rc, expected 75 (interrupted, resumable)"
grep -q "rank $vrank ($(hostname)) silent for [0-9]* s on a task, over worker_timeout ($timeout s)" \
    "$d/run.log" || fail "no line naming rank $vrank and its host"
[ "$took" -le $((timeout + 6)) ] || fail "took ${took}s to give up (worker_timeout: ${timeout}s)"
ls "$d/out/checkpoints/"*.ckpt > /dev/null 2>&1 || fail "checkpoints not kept"
kill -KILL "$victim" 2>/dev/null || true
victim=

"$tlsweep" run --quiet "$d/s.yaml" > "$d/rerun.log" 2>&1 || { cat "$d/rerun.log"; fail "re-run"; }
cat "$d/rerun.log"
grep -q "resuming from its checkpoint" "$d/rerun.log" || fail "the re-run did not resume"
echo "ok: sigstop_worker"
