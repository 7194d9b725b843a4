#!/bin/sh
# What a rerun heals, end to end on the tiny backbone (tests/lib/tiny.sh):
#   heal_test.sh CASE TLSWEEP TINY_MODEL
# CASE:
#   checkpoint  a checkpoint with a flipped byte (SHA-256 mismatch), one
#               truncated, one that is a folder (unreadable): the rerun warns
#               once per file, naming it and the cause, moves it aside
#               (.bad) and trains that trial from scratch; the leaderboard
#               is the uninterrupted run's; a further rerun warns no more
#   data        images touched, deleted or added between runs change every
#               trial's identity: nothing is "already finished" with old
#               metrics; the checkpoint of a trial stopped before the touch
#               is stale (its key differs), so that trial starts again from
#               scratch with a warning and ends as in an uninterrupted run
#   cache       a feature cache with sign and exponent flips in its payload
#               is recomputed after one warning naming it, never loaded: the
#               leaderboard is the clean run's
#   diverged    trials whose loss goes to NaN (SGD at learning rate 100) fail
#               with a line naming the trial and the epoch, not as done and
#               not with an empty message; the others finish
# Every run uses `threads: 1`, so results are bit-identical across runs.
set -eu
case_=$1
tlsweep=$2
tiny=$3
py=/usr/bin/python3
. "$(dirname "$0")/../lib/tiny.sh"
d=$(mktemp -d /tmp/tl_heal_XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

tiny_data "$tlsweep" "$tiny" "$d" 16

# sweep OUT MODES EPOCHS: two learning rates
sweep() {
    tiny_sweep "$d" heal "$3" "$2" "[1.0e-2, 1.0e-3]" "[global_average_pooling, {dense: 32}]" \
        "checkpoint_seconds: 0
out: $1"
}

board() {
    sed 's/,[^,]*$//' "$1/results.csv" # all but the last column, seconds
}

run() { # OUT (its OUT.yaml written before)
    "$tlsweep" run --quiet "$1.yaml" > "$1.log" 2>&1 || { cat "$1.log"; fail "run $1"; }
}

# Runs OUT.yaml and stops it with SIGTERM at its first fine-tune checkpoint:
# that trial is part way through, its checkpoint on disk.
run_stopped() {
    "$tlsweep" run --quiet "$1.yaml" > "$1.log" 2>&1 &
    pid=$!
    i=0
    until ls "$1/checkpoints/"*ft100*.ckpt > /dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 600 ] || fail "no checkpoint appeared in $1"
        sleep 0.1
    done
    kill -TERM $pid
    set +e
    wait $pid
    rc=$?
    set -e
    [ $rc -eq 75 ] || { cat "$1.log"; fail "SIGTERM: exit $rc, expected 75"; }
}

# LOG has N warning lines.
warnings() { # LOG N
    n=$(grep -c "warning:" "$1" || true)
    [ "$n" -eq "$2" ] || { cat "$1"; fail "$n warnings in $1, expected $2"; }
}

# LOG has a warning line that starts with TEXT and goes on with THEN.
warned() { # LOG TEXT THEN
    grep "warning: $2" "$1" | grep -q "$3" || { cat "$1"; fail "no warning '$2 ... $3' in $1"; }
}

ft="[{fine_tune_at: 100}]"
case $case_ in
checkpoint)
    sweep "$d/a" "$ft" 10 > "$d/a.yaml"
    run "$d/a"
    sweep "$d/b" "$ft" 10 > "$d/b.yaml"
    run_stopped "$d/b"
    set -- "$d/b/checkpoints/"*.ckpt
    [ $# -eq 1 ] || fail "expected one checkpoint, found $#"
    first=$1
    # the stopped trial's checkpoint gets a flipped byte in the middle; the
    # other trial (not started yet) finds a truncated copy in its place
    other=$($py - "$d/a/results.json" "$first" <<'EOF'
import json, os, sys
ids = [t["id"] for t in json.load(open(sys.argv[1]))["trials"]]
mine = os.path.basename(sys.argv[2])[:-len(".ckpt")]
print(os.path.join(os.path.dirname(sys.argv[2]), [i for i in ids if i != mine][0] + ".ckpt"))
EOF
)
    size=$(stat -c %s "$first")
    head -c $((size - 7)) "$first" > "$other"
    $py -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x10; open(p, "wb").write(b)' "$first"
    run "$d/b"
    cat "$d/b.log"
    warnings "$d/b.log" 2
    warned "$d/b.log" "$first: SHA-256 digest mismatch" "starts again from scratch"
    warned "$d/b.log" "$other: .*truncated" "starts again from scratch"
    [ -f "$first.bad" ] && [ -f "$other.bad" ] || fail "the damaged checkpoints were not moved aside"
    grep -q "resuming from its checkpoint" "$d/b.log" && fail "a damaged checkpoint was resumed from"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    diff "$d/a.board" "$d/b.board" || fail "the healed run's leaderboard differs from the uninterrupted one"
    # the warnings are not repeated: the files are out of the way
    run "$d/b"
    warnings "$d/b.log" 0
    grep -q "2 of 2 trials already finished" "$d/b.log" || { cat "$d/b.log"; fail "rerun not finished"; }

    # unreadable: a folder where a checkpoint should be (root reads any mode)
    sweep "$d/c" "$ft" 10 > "$d/c.yaml"
    mkdir -p "$d/c/checkpoints/$(basename "$first")"
    run "$d/c"
    warnings "$d/c.log" 1
    warned "$d/c.log" "$d/c/checkpoints/$(basename "$first"): " "starts again from scratch"
    grep "warning:" "$d/c.log"
    board "$d/c" > "$d/c.board"
    diff "$d/a.board" "$d/c.board" || fail "leaderboard after an unreadable checkpoint differs"
    ;;
data)
    sweep "$d/a" "$ft" 10 > "$d/a.yaml"
    run "$d/a"
    sweep "$d/b" "$ft" 10 > "$d/b.yaml"
    run_stopped "$d/b"
    set -- "$d/b/checkpoints/"*.ckpt
    ckpt=$1
    # the same pixels, a new modification time: another dataset index
    img=$(find "$d/fm/train" -name '*1.jpg' | sort | head -n 1)
    touch -d '2001-02-03 04:05:06' "$img"
    run "$d/b"
    cat "$d/b.log"
    grep -q "already finished" "$d/b.log" && fail "trials of the old index counted as finished"
    warnings "$d/b.log" 1
    warned "$d/b.log" "$ckpt: not a checkpoint of trial" "key differs"
    board "$d/a" > "$d/a.board"
    board "$d/b" > "$d/b.board"
    # the run on the touched files is a whole run of the same pixels
    diff "$d/a.board" "$d/b.board" || fail "leaderboard after the touch differs"

    # images deleted: every trial trains again, on fewer images
    find "$d/fm/train" -name '*0.jpg' -delete
    run "$d/a"
    cat "$d/a.log"
    grep -q "already finished" "$d/a.log" && fail "deleted images: trials counted as finished"
    [ "$(grep -c "^done " "$d/a.log")" -eq 2 ] || fail "deleted images: not both trials retrained"
    # and added back: again
    cp "$img" "$(dirname "$img")/added_$(basename "$img")"
    run "$d/a"
    grep -q "already finished" "$d/a.log" && fail "added images: trials counted as finished"
    [ "$(grep -c "^done " "$d/a.log")" -eq 2 ] || fail "added images: not both trials retrained"
    # unchanged: finished
    run "$d/a"
    grep -q "2 of 2 trials already finished" "$d/a.log" || { cat "$d/a.log"; fail "unchanged data rerun"; }
    ;;
cache)
    sweep "$d/a" "[frozen]" 3 > "$d/a.yaml"
    run "$d/a"
    board "$d/a" > "$d/a.board"
    set -- "$d/a/cache/"*.features
    [ $# -eq 1 ] || fail "expected one feature cache, found $#"
    cache=$1
    cp "$cache" "$d/clean.features"
    for flip in sign exponent; do
        # the journal goes, the cache stays: the rerun would train on it
        rm "$d/a/journal"
        $py - "$cache" "$flip" <<'EOF'
import struct, sys
p, how = sys.argv[1], sys.argv[2]
b = bytearray(open(p, "rb").read())
start = 8 + struct.unpack("<Q", b[:8])[0]  # 'features' is the first tensor
n = (len(b) - start) // 4
if how == "sign":  # 2% of the floats change sign
    for i in range(0, n, 50):
        b[start + 4 * i + 3] ^= 0x80
else:  # one exponent bit of one float
    b[start + 4 * (n // 3) + 3] ^= 0x40
open(p, "wb").write(b)
EOF
        run "$d/a"
        cat "$d/a.log"
        warnings "$d/a.log" 1
        warned "$d/a.log" "$cache: checksum mismatch" "computing the features again"
        grep -q "features: reusing" "$d/a.log" && fail "$flip flips: the damaged cache was loaded"
        board "$d/a" > "$d/b.board"
        diff "$d/a.board" "$d/b.board" || fail "$flip flips changed the leaderboard"
        cmp "$cache" "$d/clean.features" || fail "$flip flips: the recomputed cache differs"
    done
    rm "$d/a/journal"
    run "$d/a"
    warnings "$d/a.log" 0
    grep -q "features: reusing $cache" "$d/a.log" || { cat "$d/a.log"; fail "the clean cache was not reused"; }
    ;;
diverged)
    sweep "$d/a" "[frozen, {fine_tune_at: 100}]" 3 | sed 's/^  learning_rate: .*/  learning_rate: [1.0e-3, 100.0]/; s/^  optimizer: .*/  optimizer: [sgd]/' > "$d/a.yaml"
    set +e
    "$tlsweep" run --quiet "$d/a.yaml" > "$d/a.log" 2> "$d/a.err"
    rc=$?
    set -e
    cat "$d/a.log" "$d/a.err"
    [ $rc -eq 1 ] || fail "exit $rc, expected 1 (trials failed)"
    [ "$(wc -l < "$d/a.err")" -eq 1 ] || fail "not one line on stderr"
    grep -q "2 trials failed, the others finished; mobilenet_v2-[a-z0-9]*-lr1e02-sgd-b16: epoch 1/3: loss is .*nan.*diverged" "$d/a.err" ||
        fail "the error line does not name the trial, the epoch and the loss"
    [ "$(grep -c "^failed mobilenet_v2-.*-lr1e02-sgd-b16 on rank 1: epoch [123]/3: loss is" "$d/a.log")" -eq 2 ] ||
        fail "not two failed lines with their epoch"
    $py - "$d/a/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for t in r["trials"]:
    bad = "-lr1e02-" in t["id"]
    assert t["status"] == ("failed" if bad else "done"), t
    if bad:
        assert "epoch" in t["error"] and "diverged" in t["error"], t["error"]
print("failed:", [(t["id"], t["error"]) for t in r["trials"] if t["status"] == "failed"])
EOF
    ;;
*)
    fail "unknown case $case_"
    ;;
esac
echo "ok: $case_"
