#!/usr/bin/env bash
# The test command: installs the Debian packages, builds warning-free
# (-Werror) in build/ and runs every test; then builds with AddressSanitizer
# and UndefinedBehaviorSanitizer in build-asan/ and runs the unit tests.
#
#   ./deploy/test.sh              both
#   ./deploy/test.sh --no-asan    skip the sanitizer build
#   TLSWEEP_JOBS=2 ./deploy/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/env.sh
. deploy/env.sh

asan=1
case "${1:-}" in
    "") ;;
    --no-asan) asan=0 ;;
    *) echo "usage: $0 [--no-asan]" >&2; exit 2 ;;
esac

./deploy/install-deps.sh --test

step() { printf '\n== %s\n' "$*"; }

step "build (build/, -Werror)"
cmake -S . -B build -DTLSWEEP_WERROR=ON -DTLSWEEP_TESTS=ON
cmake --build build -j"$TLSWEEP_JOBS"
step "tests"
ctest --test-dir build --output-on-failure

if [ "$asan" = 1 ]; then
    step "build (build-asan/, ASan + UBSan)"
    cmake -S . -B build-asan -DTLSWEEP_SANITIZE=ON -DTLSWEEP_WERROR=ON -DTLSWEEP_TESTS=ON
    cmake --build build-asan -j"$TLSWEEP_JOBS"
    step "unit tests under sanitizers"
    ctest --test-dir build-asan -L unit --output-on-failure
fi
step "all tests passed"
