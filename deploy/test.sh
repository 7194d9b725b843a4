#!/usr/bin/env bash
# The test command: installs the Debian packages, builds warning-free
# (-Werror) in build/ and runs every test; builds without oneDNN in
# build-portable/ (the OpenBLAS-only engine a host without libdnnl gets) and
# runs the unit tests; then builds with AddressSanitizer
# and UndefinedBehaviorSanitizer in build-asan/ and runs the unit tests;
# then builds the libFuzzer targets with clang in build-fuzz/ and runs each
# for TLSWEEP_FUZZ_SECONDS (default 20; 12 targets, two at a time: ~2 min).
#
#   ./deploy/test.sh              all three
#   ./deploy/test.sh --no-asan    skip the sanitizer and fuzz builds
#   TLSWEEP_JOBS=2 TLSWEEP_FUZZ_SECONDS=20 ./deploy/test.sh
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

step "build without oneDNN (build-portable/)"
cmake -S . -B build-portable -DTLSWEEP_ONEDNN=OFF -DTLSWEEP_WERROR=ON -DTLSWEEP_TESTS=ON
cmake --build build-portable -j"$TLSWEEP_JOBS"
step "unit tests without oneDNN"
ctest --test-dir build-portable -L unit --output-on-failure

if [ "$asan" = 1 ]; then
    step "build (build-asan/, ASan + UBSan)"
    cmake -S . -B build-asan -DTLSWEEP_SANITIZE=ON -DTLSWEEP_WERROR=ON -DTLSWEEP_TESTS=ON
    cmake --build build-asan -j"$TLSWEEP_JOBS"
    step "unit tests under sanitizers"
    ctest --test-dir build-asan -L unit --output-on-failure

    step "build (build-fuzz/, clang, libFuzzer + ASan + UBSan)"
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang-14 -DTLSWEEP_FUZZ=ON -DTLSWEEP_TESTS=OFF \
        -DTLSWEEP_WERROR=ON
    cmake --build build-fuzz -j"$TLSWEEP_JOBS" --target tlsweep_fuzz
    step "fuzz targets, ${TLSWEEP_FUZZ_SECONDS:-20} s each (tests/fuzz/README.md)"
    ctest --test-dir build-fuzz -L fuzz -j"$TLSWEEP_JOBS" --output-on-failure
fi
step "all tests passed"
