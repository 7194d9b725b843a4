#!/bin/sh
# One fuzz test of ctest -L fuzz: first runs a libFuzzer target once over
# the inputs of its fixed findings, CRASHES_DIR/<name>-* for fuzz_<name>
# (regressions: any crash fails the test), then fuzzes for
# TLSWEEP_FUZZ_SECONDS (default 20) on its seeds, never writing into the
# repository: new inputs go to RUNDIR/corpus, a crashing input to
# RUNDIR/crash-<sha1> (printed, with the command that reproduces it).
#   run_fuzz.sh FUZZER SEEDS_DIR RUNDIR [CRASHES_DIR]
set -u
fuzzer=$1 seeds=$2 rundir=$3 crashes=${4:-}
name=$(basename "$fuzzer")
name=${name#fuzz_}
secs=${TLSWEEP_FUZZ_SECONDS:-20}
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
    echo "no seeds in $seeds (tests/fuzz/make_corpus.sh)" >&2
    exit 1
fi
rm -rf "$rundir"
mkdir -p "$rundir/corpus"
# the targets' scratch files (tfjs folders, the coordinator's out/): in
# memory where there is /dev/shm, so that fsyncs cost nothing
scratch=$(mktemp -d /dev/shm/tlsweep-fuzz-XXXXXX 2>/dev/null || mktemp -d "$rundir/tmp-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" TMPDIR="$scratch"

# the report of a failed run: the target's own line, if any, then the
# sanitizer's or libFuzzer's first lines and the stack top
report() {
    grep -m1 -E '^fuzz_[a-z_]+: ' "$1"
    grep -m1 -A25 -E '^(==[0-9]+==ERROR|.*runtime error|==[0-9]+== ERROR)' "$1"
}

# the fixed findings: libFuzzer runs the files it is given once each and
# stops at the first that crashes (the one it names last in the log)
if [ -n "$crashes" ]; then
    set --
    for f in "$crashes/$name"-*; do
        [ -f "$f" ] && set -- "$@" "$f"
    done
    if [ $# -gt 0 ]; then
        "$fuzzer" -timeout=25 -rss_limit_mb=2048 "$@" > "$rundir/regressions.log" 2>&1
        rc=$?
        echo "regressions: $# input(s) of $crashes/$name-*, exit $rc"
        if [ $rc -ne 0 ]; then
            report "$rundir/regressions.log"
            grep -E '^Running: ' "$rundir/regressions.log" | tail -n1 | sed "s|^Running: |reproduce: $fuzzer |"
            echo "fuzz: $(basename "$fuzzer") crashed on a fixed finding again; log: $rundir/regressions.log" >&2
            exit 1
        fi
    fi
fi

# one process, one core; -rss_limit_mb keeps a runaway allocation a finding
"$fuzzer" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$rundir/" "$rundir/corpus" "$seeds" \
    > "$rundir/log" 2>&1
rc=$?
grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$rundir/log"
if [ $rc -ne 0 ]; then
    report "$rundir/log"
    for a in "$rundir"/crash-* "$rundir"/leak-* "$rundir"/timeout-* "$rundir"/oom-*; do
        [ -e "$a" ] && echo "reproduce: $fuzzer $a"
    done
    echo "fuzz: $(basename "$fuzzer") failed (exit $rc); log: $rundir/log" >&2
    exit 1
fi
exit 0
