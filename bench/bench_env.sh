# shellcheck shell=bash
# Sourced by the bench scripts, from the repo root: bench_setup NAME FILE... checks that
# the build and the demo files exist (one line naming the first missing one, exit 1),
# makes BIN (TLSWEEP, default build/tlsweep) absolute, sources deploy/env.sh and makes
# the scratch folder W (removed at exit unless KEEP=1).
bench_setup() {
    local name=$1 f
    shift
    BIN=${TLSWEEP:-build/tlsweep}
    for f in "$BIN" "$@"; do
        [ -e "$f" ] || { echo "$name: missing $f (build and make the demo data first; see docs/benchmarks.md)" >&2; exit 1; }
    done
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
    # shellcheck source=/dev/null
    . deploy/env.sh
    W=$(mktemp -d "/tmp/${name%.sh}.XXXXXX")
    # the trap holds this folder's name, whatever W becomes later (mktemp's names need no quoting)
    # shellcheck disable=SC2064
    if [ "${KEEP:-0}" = 1 ]; then echo "$name: keeping $W"; else trap "rm -rf -- '$W'" EXIT; fi
    trap 'exit 130' INT TERM
}
