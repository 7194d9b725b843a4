#!/bin/sh
# Submits a sweep as a job array of N slices (slurm/array.sbatch) and the job
# that merges them once the array has ended (slurm/merge.sbatch,
# --dependency=afterany). Prints the two job ids: ARRAY_JOB MERGE_JOB.
#
#   slurm/submit-array.sh SWEEP.yaml N [OUT]
#
# OUT defaults to the sweep file's top-level `out:` (a plain value). Also:
#   TLSWEEP      the tlsweep program, for both jobs (default: tlsweep on PATH)
#   ARRAY_ARGS   more sbatch options for the array (e.g. "-p long -c 16")
#   MERGE_ARGS   more sbatch options for the merge job; with --wait this
#                script waits for the merge and exits with its status
set -eu
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 SWEEP.yaml N [OUT]" >&2
    exit 2
fi
sweep=$1
n=$2
case $n in '' | *[!0-9]* | 0)
    echo "$0: N must be a positive number of array tasks, not '$n'" >&2
    exit 2
    ;;
esac
dir=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 3 ]; then
    out=$3
else
    out=$(sed -n 's/^out:[[:space:]]*\([^#]*[^#[:space:]]\).*$/\1/p' "$sweep" | tail -n 1 |
        sed "s/^[\"']\(.*\)[\"']\$/\1/")
    [ -n "$out" ] || {
        echo "$0: no top-level out: in $sweep; give OUT as the third argument" >&2
        exit 2
    }
fi
# shellcheck disable=SC2086 # ARRAY_ARGS and MERGE_ARGS are split on purpose
array=$(sbatch --parsable --array=0-$((n - 1)) ${ARRAY_ARGS:-} "$dir/array.sbatch" "$sweep")
array=${array%%;*}
echo "array job $array: $n slices of $sweep" >&2
# The merge job's id comes first, then (MERGE_ARGS=--wait) its exit status.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# shellcheck disable=SC2086
sbatch --parsable --dependency=afterany:"$array" ${MERGE_ARGS:-} "$dir/merge.sbatch" "$out" > "$tmp" &
pid=$!
while [ ! -s "$tmp" ] && kill -0 $pid 2> /dev/null; do
    sleep 0.2
done
merge=$(head -n 1 "$tmp")
echo "merge job $merge: tlsweep merge $out (after the array)" >&2
echo "$array $merge"
set +e
wait $pid
exit $?
