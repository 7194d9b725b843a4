#!/bin/sh
# One fuzz test of ctest -L fuzz: runs a libFuzzer target for
# TLSWEEP_FUZZ_SECONDS (default 20) on its seeds, never writing into the
# repository: new inputs go to RUNDIR/corpus, a crashing input to
# RUNDIR/crash-<sha1> (printed, with the command that reproduces it).
#   run_fuzz.sh FUZZER SEEDS_DIR RUNDIR
set -u
fuzzer=$1 seeds=$2 rundir=$3
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
# one process, one core; -rss_limit_mb keeps a runaway allocation a finding
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} TMPDIR="$scratch" \
    "$fuzzer" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$rundir/" "$rundir/corpus" "$seeds" \
    > "$rundir/log" 2>&1
rc=$?
grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$rundir/log"
if [ $rc -ne 0 ]; then
    # the report: the target's own line, if any, then the sanitizer's or
    # libFuzzer's first lines and the stack top
    grep -m1 -E '^fuzz_[a-z_]+: ' "$rundir/log"
    grep -m1 -A25 -E '^(==[0-9]+==ERROR|.*runtime error|==[0-9]+== ERROR)' "$rundir/log"
    for a in "$rundir"/crash-* "$rundir"/leak-* "$rundir"/timeout-* "$rundir"/oom-*; do
        [ -e "$a" ] && echo "reproduce: $fuzzer $a"
    done
    echo "fuzz: $(basename "$fuzzer") failed (exit $rc); log: $rundir/log" >&2
    exit 1
fi
exit 0
