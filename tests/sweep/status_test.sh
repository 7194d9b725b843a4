#!/bin/sh
# `tlsweep status OUT` and the report written during a run, on the tiny
# random MobileNetV2 (cli/tiny_model) and a few Fashion-MNIST images.
#   status_test.sh CASE TLSWEEP TINY_MODEL
# CASE:
#   running    a 3-rank sweep under mpirun: while it runs, status answers
#              "running" (text, and --json parsed: counts add up, 3 ranks),
#              report.html is rewritten with the running marker, and
#              `status --watch` ends by itself when the sweep does; after,
#              status says finished with results.json's best, and reading
#              left nothing behind in OUT
#   stopped    SIGTERM mid-run, once the report marks a trial running:
#              status says interrupted, with the trial that was stopped (its
#              last epoch) and results.json's done count; re-run to the end:
#              finished
#   lost       a 3-rank sweep under mpirun whose coordinator (rank 0, the
#              Start record's pid) is killed with SIGKILL mid-run: status
#              says lost (text: the coordinator is gone and how to resume;
#              --json: state "lost", no trial running), exit 0; the status
#              read while it ran named its 2 workers (the run's workers
#              records: text line and JSON array)
#   torn       a torn journal tail and damage in the middle of a journal,
#              read as a resume reads them: status stops at the damage and
#              says so in one line (the same line `run` refuses with for the
#              damage in the middle), exit 0, the journal left as it was; no
#              journal, or a file that is not one: one line, exit 1
set -eu
case_=$1
tlsweep=$2
tiny=$3
py=/usr/bin/python3
. "$(dirname "$0")/../lib/tiny.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
d=$(mktemp -d /tmp/tl_status_XXXXXX)
trap 'rm -rf "$d"' EXIT

tiny_data "$tlsweep" "$tiny" "$d" 32

# sweep OUT EPOCHS: 6 trials that train the backbone every epoch (long
# enough to be caught running)
sweep() {
    tiny_sweep "$d" tiny "$2" "[{fine_tune_at: 100}, fine_tune]" "[1.0e-2, 3.0e-3, 1.0e-3]" \
        "[global_average_pooling, {dense: 32}, {dropout: 0.1}]" "checkpoint_seconds: 0
out: $1"
}

# check_json FILE STATE: status --json's object in FILE, against results.json
# when the sweep has one that is not mid-run
check_json() {
    $py - "$1" "$2" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
want = sys.argv[2]
assert st["state"] == want, f"state {st['state']}, expected {want}"
t = st["trials"]
assert t["total"] == 6, t
assert t["done"] + t["running"] + t["interrupted"] + t["queued"] + t["failed"] == 6, t
assert len(st["started"]) == t["running"] + t["interrupted"], st["started"]
for s in st["started"]:
    assert s["status"] == ("running" if want == "running" else "interrupted"), s
    assert 0 <= s["epoch"] <= s["epochs"], s
    assert s["epoch"] >= 1 or s["starting"], s
assert st["runs"] >= 1 and st["started_unix_ms"] > 0, st
assert st["last_record_unix_ms"] >= st["started_unix_ms"], st
assert st["select"] == {"metric": "val_accuracy", "goal": "max"}, st["select"]
assert st["journal"]["note"] is None and st["journal"]["ignored_bytes"] == 0 or want in ("running", "lost"), st["journal"]
print(f"status --json: {want}, {t}")
EOF
}

# same_as_results OUT JSON: done count and best agree with OUT/results.json
same_as_results() {
    $py - "$1/results.json" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
st = json.load(open(sys.argv[2]))
done = sum(1 for t in r["trials"] if t["status"] == "done")
assert st["trials"]["done"] == done, (st["trials"], done)
if r["best"] is None:
    assert st["best"] is None, st["best"]
else:
    assert st["best"]["trial"] == r["best"]["trial"], (st["best"], r["best"])
    assert abs(st["best"]["value"] - r["best"]["value"]) < 1e-6, (st["best"], r["best"])
print(f"status agrees with results.json: {done} done, best {st['best']}")
EOF
}

case $case_ in
running)
    sweep "$d/out" 40 > "$d/s.yaml"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/s.yaml" > "$d/run.log" 2>&1 &
    run=$!
    wait_until "the sweep's start" test -s "$d/out/sweep.yaml"
    timeout 300 "$tlsweep" status "$d/out" --watch 0.5 > "$d/watch.log" 2>&1 &
    watch=$!
    # a trial under way in the journal, and the report written with it
    wait_until "a report.html marking a running trial" \
        grep -q '<td class="l running">running</td>' "$d/out/report.html"
    cp "$d/out/report.html" "$d/midrun.html"
    "$tlsweep" status "$d/out" > "$d/status.txt" 2> "$d/status.err" || fail "status exited $?"
    "$tlsweep" status "$d/out" --json > "$d/status.json" || fail "status --json exited $?"
    kill -0 $run 2> /dev/null || fail "the sweep ended before status was read: make it longer"
    cat "$d/status.txt" "$d/status.err"
    head -1 "$d/status.txt" | grep -q '^tiny: running; run 1 started .* on 3 ranks, elapsed ' ||
        fail "status does not say running on 3 ranks"
    grep -q '^trials: [0-9] done, [0-9] running, [0-9] queued, 0 failed, of 6; ETA ' "$d/status.txt" ||
        fail "no trial counts with an ETA"
    grep -q '^  running  *mobilenet_v2-[a-z0-9-]*  epoch [0-9]*/40  \(loss \|starting\)' "$d/status.txt" ||
        fail "no running trial with its epoch"
    check_json "$d/status.json" running
    # the workers as journaled, and the tasks sent since: someone trains
    grep -q '^workers: 2 (.*training' "$d/status.txt" || fail "no workers line with a worker training"
    grep -q 'The sweep is still running' "$d/midrun.html" || fail "mid-run report without the banner"
    grep -q ' &middot; written 20[0-9-]*T[0-9:]*Z</p>' "$d/midrun.html" ||
        fail "mid-run report does not say when it was written"
    wait $run || { cat "$d/run.log"; fail "the sweep failed"; }
    set +e
    wait $watch
    rc=$?
    set -e
    [ $rc -eq 0 ] || { cat "$d/watch.log"; fail "status --watch exited $rc"; }
    grep -q '^tiny: running' "$d/watch.log" || fail "--watch never saw the sweep running"
    # the last reading's first line (a reading has a line per worker state and trial)
    grep '^tiny: ' "$d/watch.log" | tail -n 1 | grep -q '^tiny: finished' ||
        fail "--watch did not end on finished"
    "$tlsweep" status "$d/out" > "$d/status.txt"
    "$tlsweep" status "$d/out" --json > "$d/status.json"
    cat "$d/status.txt"
    check_json "$d/status.json" finished
    same_as_results "$d/out" "$d/status.json"
    grep -q '^trials: 6 done, 0 interrupted, 0 queued, 0 failed, of 6$' "$d/status.txt" ||
        fail "finished status does not count 6 done"
    ! grep -q 'The sweep is still running' "$d/out/report.html" || fail "final report says running"
    extra=$(ls -A "$d/out" | grep -v -x -e best.tlm -e cache -e checkpoints -e journal \
        -e report.html -e results.csv -e results.json -e sweep.yaml || true)
    [ -z "$extra" ] || fail "left in out/: $extra"
    ;;
stopped)
    sweep "$d/out" 10 > "$d/s.yaml"
    # a trial of the tiny model takes about a second: the signal may come
    # after the checkpoint seen here has gone with its finished trial, and
    # then this run stopped between trials; the next run is stopped again
    runs=0
    while :; do
        runs=$((runs + 1))
        [ $runs -le 5 ] || fail "5 runs stopped, none with a trial mid-way"
        "$tlsweep" run --quiet "$d/s.yaml" > "$d/run.log" 2>&1 &
        pid=$!
        wait_until "a report.html marking a running trial" \
            grep -q '<td class="l running">running</td>' "$d/out/report.html"
        wait_until "a checkpoint" sh -c "ls '$d/out/checkpoints/'*.ckpt"
        kill -TERM $pid
        set +e
        wait $pid
        rc=$?
        set -e
        [ $rc -eq 75 ] || { cat "$d/run.log"; fail "SIGTERM: exit $rc, expected 75"; }
        ls "$d/out/checkpoints/"*.ckpt > /dev/null 2>&1 && break
    done
    "$tlsweep" status "$d/out" > "$d/status.txt"
    "$tlsweep" status "$d/out" --json > "$d/status.json"
    cat "$d/status.txt"
    check_json "$d/status.json" interrupted
    same_as_results "$d/out" "$d/status.json"
    head -1 "$d/status.txt" | grep -q "^tiny: interrupted; run $runs " || fail "not interrupted"
    grep -q '; ETA .* (the work left, on resume)$' "$d/status.txt" || fail "no ETA of the work left"
    # the trial stopped mid-way: its checkpoint's, at the epoch it holds
    ck=$(basename "$(ls "$d/out/checkpoints/"*.ckpt | head -1)" .ckpt)
    grep -q "^  interrupted $ck  epoch [1-9][0-9]*/10 " "$d/status.txt" ||
        fail "the stopped trial $ck is not listed as interrupted"
    "$tlsweep" run --quiet "$d/s.yaml" > "$d/run2.log" 2>&1 || { cat "$d/run2.log"; fail "resume"; }
    "$tlsweep" status "$d/out" > "$d/status.txt"
    "$tlsweep" status "$d/out" --json > "$d/status.json"
    cat "$d/status.txt"
    head -1 "$d/status.txt" | grep -q "^tiny: finished; run $((runs + 1)) " ||
        fail "not finished in run $((runs + 1))"
    check_json "$d/status.json" finished
    same_as_results "$d/out" "$d/status.json"
    ;;
lost)
    sweep "$d/out" 40 > "$d/s.yaml"
    mpiexec -n 3 --oversubscribe "$tlsweep" run --quiet "$d/s.yaml" > "$d/run.log" 2>&1 &
    run=$!
    wait_until "a report.html marking a running trial" \
        grep -q '<td class="l running">running</td>' "$d/out/report.html"
    "$tlsweep" status "$d/out" > "$d/live.txt" || fail "status exited $?"
    "$tlsweep" status "$d/out" --json > "$d/live.json" || fail "status --json exited $?"
    cat "$d/live.txt"
    check_json "$d/live.json" running
    pid=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$d/live.json")
    kill -0 "$pid" || fail "the Start record's pid $pid is not running"
    kill -KILL "$pid"
    set +e
    wait $run
    rc=$?
    set -e
    [ $rc -ne 0 ] || fail "mpiexec exited 0 after its rank 0 was killed"
    "$tlsweep" status "$d/out" > "$d/status.txt" 2> "$d/status.err" || fail "status exited $?"
    "$tlsweep" status "$d/out" --json > "$d/status.json" || fail "status --json exited $?"
    cat "$d/status.txt" "$d/status.err"
    head -1 "$d/status.txt" | grep -q '^tiny: lost; run 1 started .* on 3 ranks, elapsed ' ||
        fail "status does not say lost"
    grep -qF "the coordinator is gone (pid $pid on $(hostname) no longer holds the journal's lock), with no Stop record: \`tlsweep run $d/s.yaml\` (or the command that started it) resumes the sweep" \
        "$d/status.txt" || fail "no line saying the coordinator is gone and how to resume"
    grep -q '^trials: [0-9] done, [0-9] interrupted, [0-9] queued, 0 failed, of 6; ETA .* (the work left, on resume)$' \
        "$d/status.txt" || fail "no counts of a stopped sweep"
    check_json "$d/status.json" lost
    $py - "$d/status.json" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
assert st["trials"]["running"] == 0, st["trials"]
assert "no longer holds the journal's lock" in st["lost_reason"], st["lost_reason"]
EOF
    # --watch ends at once on a lost sweep
    timeout 20 "$tlsweep" status "$d/out" --watch 0.5 > "$d/watch.log" || fail "status --watch"
    [ "$(grep -c '^tiny: lost' "$d/watch.log")" -eq 1 ] || fail "--watch did not end on lost"
    # the workers as the live status saw them (the run's workers records)
    grep -q '^workers: 2 ([0-9] [a-z]*\(, [0-9] [a-z]*\)*), last heard [0-9]*s ago$' "$d/live.txt" ||
        fail "the live status has no workers line"
    $py - "$d/live.json" <<'EOF'
import json, sys
w = json.load(open(sys.argv[1]))["workers"]
assert w is not None and sorted(x["rank"] for x in w) == [1, 2], w
for x in w:
    assert x["host"] and x["state"] in ("starting", "idle", "training", "extracting"), x
    assert x["heard_seconds_ago"] is not None and x["heard_seconds_ago"] < 120, x
    assert (x["trial"] is not None) == (x["state"] == "training"), x
EOF
    ;;
torn)
    sweep "$d/out" 2 > "$d/s.yaml"
    "$tlsweep" run --quiet "$d/s.yaml" > "$d/run.log" 2>&1 || { cat "$d/run.log"; fail "run"; }
    "$tlsweep" status "$d/out" --json > "$d/whole.json"
    records=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["journal"]["records"])' \
        "$d/whole.json")
    # a torn tail: half a record header after the last record
    cp -r "$d/out" "$d/torn"
    printf '\047\000\000' >> "$d/torn/journal"
    cp "$d/torn/journal" "$d/torn.journal"
    "$tlsweep" status "$d/torn" > "$d/status.txt" 2> "$d/status.err" || fail "status exited $?"
    cat "$d/status.txt" "$d/status.err"
    [ "$(wc -l < "$d/status.err")" -eq 1 ] || fail "not one line on stderr"
    grep -q "^warning: $d/torn/journal: the last 3 bytes are not a whole record .*read up to record $records\$" \
        "$d/status.err" || fail "the torn tail is not named"
    grep -q '^tiny: finished' "$d/status.txt" || fail "the records before the tail were not read"
    cmp "$d/torn/journal" "$d/torn.journal" || fail "status changed the journal"
    # damage in the middle: a byte of the third record's payload flipped
    cp -r "$d/out" "$d/bad"
    $py - "$d/bad/journal" <<'EOF'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
off = 16
for _ in range(2):
    off += 8 + struct.unpack_from("<I", b, off)[0]
b[off + 8] ^= 0xff
open(p, "wb").write(bytes(b))
EOF
    "$tlsweep" status "$d/bad" --json > "$d/bad.json" 2> "$d/status.err" || fail "status exited $?"
    cat "$d/status.err"
    [ "$(wc -l < "$d/status.err")" -eq 1 ] || fail "not one line on stderr"
    line=$(sed 's/^warning: //' "$d/status.err")
    echo "$line" | grep -q "^$d/bad/journal: damaged record at byte [0-9]* of [0-9]* (after record 2)" ||
        fail "the damage is not named"
    $py - "$d/bad.json" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
assert st["journal"]["records"] == 2, st["journal"]
assert st["journal"]["ignored_bytes"] > 0, st["journal"]
assert st["trials"]["done"] < 6, st["trials"]
EOF
    # the same line a resume refuses with
    sed -i "s|out: $d/out|out: $d/bad|" "$d/s.yaml"
    set +e
    "$tlsweep" run --quiet "$d/s.yaml" > /dev/null 2> "$d/run.err"
    rc=$?
    set -e
    cat "$d/run.err"
    [ $rc -ne 0 ] || fail "run resumed a journal damaged in the middle"
    grep -qF "$line" "$d/run.err" || fail "run and status name the damage differently"
    # bad input: no journal, a file that is not one
    mkdir "$d/empty"
    cp "$d/out/sweep.yaml" "$d/empty/"
    set +e
    "$tlsweep" status "$d/empty" > "$d/out.txt" 2> "$d/status.err"
    rc=$?
    set -e
    cat "$d/status.err"
    [ $rc -eq 1 ] && [ ! -s "$d/out.txt" ] && [ "$(wc -l < "$d/status.err")" -eq 1 ] &&
        grep -q "^tlsweep status: $d/empty/journal: cannot open: " "$d/status.err" ||
        fail "a missing journal: not one line and exit 1"
    echo "not a journal" > "$d/empty/journal"
    set +e
    "$tlsweep" status "$d/empty" --json > "$d/out.txt" 2> "$d/status.err"
    rc=$?
    set -e
    cat "$d/status.err"
    [ $rc -eq 1 ] && [ ! -s "$d/out.txt" ] &&
        grep -q "^tlsweep status: $d/empty/journal: not a tlsweep journal" "$d/status.err" ||
        fail "a file that is not a journal: not one line and exit 1"
    ;;
*)
    fail "unknown case $case_"
    ;;
esac
echo "status $case_: ok"
