#!/usr/bin/env bash
# The demo: installs the Debian packages, builds tlsweep in build/ and runs
# `tlsweep demo` (synthetic training). Extra arguments go to `tlsweep demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/env.sh
. deploy/env.sh

./deploy/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$TLSWEEP_JOBS" --target tlsweep
exec build/tlsweep demo "$@"
