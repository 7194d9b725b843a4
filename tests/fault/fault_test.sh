#!/bin/sh
# Faults at the coordinator of a tiny one-process sweep (tests/lib/tiny.sh's
# backbone and Fashion-MNIST images; `threads: 1`, so every run is
# bit-identical to the reference).
#   fault_test.sh CASE TLSWEEP TINY_MODEL FAILSHIM
# CASE:
#   fault_sweep        failshim.c fails the Nth write/fsync/rename of the
#                      process, for N over every such call of a whole run
#                      (sampled evenly past FAULT_POINTS): each run exits 0
#                      with the reference leaderboard and best.tlm, or
#                      non-zero with exactly one line on stderr; a re-run
#                      without the shim then ends with the reference
#                      leaderboard and best.tlm (bytes), and no temporary
#                      is left in out/
#   kill9_coordinator  kill -9 of the process at a few moments of a run
#                      (first checkpoint, a fine-tune one, first best.tlm,
#                      a checkpoint temporary if one is seen), then a
#                      re-run: reference leaderboard and best.tlm, no
#                      temporary left
#   kill9_coordinator_mpi  kill -9 of rank 0 under `mpirun -n 3` once a
#                      checkpoint exists: the job ends (non-zero) within 60 s,
#                      the workers do not wait forever; the 3-rank re-run
#                      ends with the reference leaderboard and best.tlm
set -eu
case_=$1
tlsweep=$2
tiny=$3
shim=$4
py=/usr/bin/python3
. "$(dirname "$0")/../lib/tiny.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
d=$(mktemp -d /tmp/tl_fault_XXXXXX)
trap 'rm -rf "$d"' EXIT
# an ASan build wants its runtime first among the preloaded libraries
asan=$(ldd "$tlsweep" | awk '/libasan/ {print $3}')
preload="${asan:+$asan }$shim"

tiny_data "$tlsweep" "$tiny" "$d" 8

# OUT; one rank per trial: the runs are compared byte for byte, and a group's
# sums round otherwise than one rank's (the mpirun case would form groups)
sweep() {
    tiny_sweep "$d" tiny 2 "[frozen, {fine_tune_at: 100}]" "[1.0e-2, 1.0e-3]" \
        "[global_average_pooling, {dense: 16}]" "checkpoint_seconds: 0
out: $1
ranks_per_trial: 1"
}
# OUT: the reference leaderboard and best.tlm, and no temporary left
check_out() {
    board "$1" > "$1.board"
    diff "$d/ref.board" "$1.board" > /dev/null || { diff "$d/ref.board" "$1.board" || true; return 1; }
    cmp -s "$d/ref/best.tlm" "$1/best.tlm" || { echo "best.tlm differs"; return 1; }
    if find "$1" -name '*.tmp.*' | grep -q .; then
        echo "temporaries left: $(find "$1" -name '*.tmp.*')"
        return 1
    fi
}

sweep "$d/ref" > "$d/ref.yaml"
t0=$(date +%s)
"$tlsweep" run --quiet "$d/ref.yaml" > "$d/ref.log" 2>&1 || { cat "$d/ref.log"; fail "reference run"; }
board "$d/ref" > "$d/ref.board"
[ "$(wc -l < "$d/ref.board")" -eq 5 ] || fail "expected 4 trials"
echo "reference run: $(($(date +%s) - t0)) s"

# wait_for PATTERN OUT PID: until a file matching OUT/PATTERN exists (30 s),
# while PID runs
wait_for() {
    i=0
    while [ $i -lt 300 ] && kill -0 "$3" 2> /dev/null; do
        if ls $2/$1 > /dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

case $case_ in
fault_sweep)
    # the calls of a whole run, counted
    sweep "$d/count" > "$d/count.yaml"
    FAILSHIM_N=0 FAILSHIM_COUNT="$d/count.n" LD_PRELOAD="$preload" \
        "$tlsweep" run --quiet "$d/count.yaml" > "$d/count.log" 2>&1 || { cat "$d/count.log"; fail "counting run"; }
    total=$(cat "$d/count.n")
    [ "$total" -gt 10 ] || fail "only $total calls counted: is the shim loaded?"
    # every point is two runs: ~100 of them fit the time of a test, fewer
    # under the sanitizers
    max=${FAULT_POINTS:-$([ -n "$asan" ] && echo 20 || echo 100)}
    points=$($py -c "
import sys
t, m = int(sys.argv[1]), int(sys.argv[2])
m = min(t, m)  # every call when they are few enough
print(' '.join(str(n) for n in sorted({1 + (i * (t - 1)) // max(m - 1, 1) for i in range(m)})))
" "$total" "$max")
    echo "counted calls: $total; failing each of: $points"
    ok=0
    stopped=0
    for n in $points; do
        o="$d/f$n"
        sweep "$o" > "$o.yaml"
        set +e
        FAILSHIM_N=$n FAILSHIM_LOG="$o.hit" LD_PRELOAD="$preload" timeout 120 \
            "$tlsweep" run --quiet "$o.yaml" > "$o.out" 2> "$o.err"
        rc=$?
        set -e
        what=$(cat "$o.hit" 2> /dev/null || echo "$n (none)")
        [ $rc -ne 124 ] || fail "N=$n ($what): no end within 120 s"
        if [ $rc -eq 0 ]; then
            check_out "$o" || { cat "$o.out" "$o.err"; fail "N=$n ($what): exit 0 with other results"; }
            ok=$((ok + 1))
            line="exit 0"
            warn=$(grep -c '^warning' "$o.out" || true)
            [ "$warn" -eq 0 ] || line="exit 0, $warn warning: $(grep -m1 '^warning' "$o.out")"
        else
            [ "$(wc -l < "$o.err")" -eq 1 ] || { cat "$o.out" "$o.err"; fail "N=$n ($what): exit $rc without exactly one line on stderr"; }
            stopped=$((stopped + 1))
            line="exit $rc: $(cat "$o.err")"
        fi
        # the re-run, the disk healthy again
        "$tlsweep" run --quiet "$o.yaml" > "$o.log2" 2>&1 || { cat "$o.log2"; fail "N=$n ($what): re-run failed"; }
        check_out "$o" || { cat "$o.log2"; fail "N=$n ($what): re-run ends with other results"; }
        echo "N=$n $what: $line; re-run ok"
        rm -rf "$o"
    done
    echo "fault sweep: $total calls, $(echo $points | wc -w) points: $ok ended right, $stopped stopped with one line; every re-run ended right"
    ;;
kill9_coordinator)
    k=0
    for at in "checkpoints/*.ckpt" "checkpoints/*ft100*.ckpt" "best.tlm" "checkpoints/*.tmp.*"; do
        k=$((k + 1))
        o="$d/k$k"
        sweep "$o" > "$o.yaml"
        "$tlsweep" run --quiet "$o.yaml" > "$o.log" 2>&1 &
        pid=$!
        if wait_for "$at" "$o" $pid; then
            kill -9 $pid 2> /dev/null || true
        fi
        set +e
        wait $pid
        rc=$?
        set -e
        echo "kill -9 at the first $at: exit $rc"
        "$tlsweep" run --quiet "$o.yaml" > "$o.log2" 2>&1 || { cat "$o.log2"; fail "re-run after kill -9 at $at"; }
        check_out "$o" || { cat "$o.log2"; fail "re-run after kill -9 at $at ends with other results"; }
        echo "  re-run: $(grep -c '^done' "$o.log2") trials trained again $(grep -o 'removed [0-9]* temporar[a-z]*' "$o.log2" || true)"
    done
    ;;
kill9_coordinator_mpi)
    o="$d/m"
    sweep "$o" > "$o.yaml"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$o.yaml" > "$o.log" 2>&1 &
    mpi=$!
    wait_for "checkpoints/*.ckpt" "$o" $mpi || { cat "$o.log"; fail "no checkpoint appeared"; }
    victim=$(rank_pid "tlsweep run --quiet $o.yaml" 0)
    [ -n "$victim" ] || { cat "$o.log"; fail "no rank 0 to kill"; }
    kill -9 "$victim"
    start=$(date +%s)
    i=0
    while kill -0 $mpi 2> /dev/null && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 $mpi 2> /dev/null && fail "mpirun still running 60 s after kill -9 of rank 0"
    set +e
    wait $mpi
    rc=$?
    set -e
    [ $rc -ne 0 ] || fail "mpirun exited 0 after rank 0 was killed"
    echo "mpirun exited $rc $(($(date +%s) - start)) s after kill -9 of rank 0"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$o.yaml" > "$o.log2" 2>&1 ||
        { cat "$o.log2"; fail "3-rank re-run"; }
    check_out "$o" || { cat "$o.log2"; fail "re-run after kill -9 of rank 0 ends with other results"; }
    ;;
*)
    fail "unknown case $case_"
    ;;
esac
echo "ok: $case_"
