#!/bin/sh
# A trial trained by a group of ranks (tests/group/group_trial.c) equals the
# same trial on one rank: every epoch's loss within 1e-5 relative, accuracy
# and validation figures close; the members end with identical weights; a
# trial resumes on another group size; a stop, a yield and a failure in one
# member end every member (the ctest timeout catches a hang).
#   group_trial.sh TLSWEEP TINY_MODEL GROUP_TRIAL CASE
# CASE: equal | resume | protocol | worker (group_worker, next to GROUP_TRIAL)
set -eu
TLSWEEP=$1 TINY=$2 PROG=$3 CASE=$4
. "$(dirname "$0")/../lib/tiny.sh"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
tiny_data "$TLSWEEP" "$TINY" "$W" 6

run() { # RANKS ARGS...
    _n=$1
    shift
    mpirun -np "$_n" --oversubscribe "$PROG" "$W" "$@"
}

# close A B TOL: |A - B| <= TOL * max(|A|, |B|, 1e-12)
close() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN {
        d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; n = b < 0 ? -b : b; if (n > m) m = n;
        if (m < 1e-12) m = 1e-12; exit !(d <= t * m) }'
}

# compare FILE_A FILE_B EPOCH: the loss within 1e-5 relative; accuracy and
# validation figures within 0.05 (a sample may tip either way)
compare() {
    _a=$(grep "^epoch $3 " "$1") || fail "$1: no epoch $3"
    _b=$(grep "^epoch $3 " "$2") || fail "$2: no epoch $3"
    set -- $_a
    _la=$4 _aa=$6 _vla=$8 _vaa=${10}
    set -- $_b
    close "$_la" "$4" 1e-5 || fail "epoch loss $_la vs $4: over 1e-5 relative"
    close "$_vla" "$8" 1e-3 || fail "val_loss $_vla vs $8"
    awk -v a="$_aa" -v b="$6" -v c="$_vaa" -v d="${10}" 'BEGIN {
        x = a - b; y = c - d; exit !(x < 0.05 && x > -0.05 && y < 0.05 && y > -0.05) }' ||
        fail "accuracies $_aa/$_vaa vs $6/${10}"
}

case $CASE in
equal)
    for n in 1 2 3; do
        run "$n" train 2 > "$W/r$n.txt" || fail "train on $n ranks"
        cat "$W/r$n.txt"
        grep -q "^identical 1$" "$W/r$n.txt" || fail "$n ranks: the members' weights differ"
    done
    for n in 2 3; do
        compare "$W/r1.txt" "$W/r$n.txt" 1
        compare "$W/r1.txt" "$W/r$n.txt" 2
    done
    ;;
resume)
    run 1 train 2 > "$W/one.txt" || fail "2 epochs on 1 rank"
    # epoch 1 on 2 ranks, epoch 2 on 1; then epoch 1 on 1 rank, epoch 2 on 2
    run 2 save 1 "$W/s2.bin" > /dev/null || fail "epoch 1 on 2 ranks"
    run 1 resume 2 "$W/s2.bin" > "$W/a.txt" || fail "epoch 2 on 1 rank"
    run 1 save 1 "$W/s1.bin" > /dev/null || fail "epoch 1 on 1 rank"
    run 2 resume 2 "$W/s1.bin" > "$W/b.txt" || fail "epoch 2 on 2 ranks"
    cat "$W/one.txt" "$W/a.txt" "$W/b.txt"
    compare "$W/one.txt" "$W/a.txt" 2
    compare "$W/one.txt" "$W/b.txt" 2
    ;;
protocol)
    run 3 protocol 4 | grep -q "^protocol 3$" || fail "a member failing at step 4"
    for n in 1 3; do
        run "$n" stop 3 | grep -q "^stopped $n$" || fail "a stop at step 3 on $n ranks"
        run "$n" yield 2 | grep -q "^yielded $n$" || fail "a yield at step 2 on $n ranks"
    done
    run 2 fail | grep -q "^failed 2$" || fail "a member failing before training"
    run 3 fail_step 3 | grep -q "^failed 3$" || fail "a member failing at step 3"
    ;;
worker)
    tiny_sweep "$W" group 2 "[fine_tune]" "[1.0e-3]" \
        "[global_average_pooling, {dense: 16}, {dropout: 0.2}]" "checkpoint_seconds: 1000
out: $W/out" \
        > "$W/sweep.yaml"
    mpirun -np 3 --oversubscribe "$(dirname "$PROG")/group_worker" "$W/sweep.yaml" \
        > "$W/w.txt" || fail "group_worker"
    cat "$W/w.txt"
    grep -q "^yielded after 1 epoch$" "$W/w.txt" || fail "no yield"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "ok $CASE"
