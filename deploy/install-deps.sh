#!/usr/bin/env bash
# Installs the Debian 12 packages tlsweep needs. Idempotent: asks dpkg
# first, and says nothing and touches nothing when every package is already
# installed. Uses sudo when not run as root.
#
#   deploy/install-deps.sh          what building and running need (the demo)
#   deploy/install-deps.sh --test   that, and what the tests need (cmocka,
#                                   the PyTorch and h5py references, Chromium,
#                                   a Slurm cluster of one node, clang
#                                   with libFuzzer)
#   TLSWEEP_EXTRA_PACKAGES="pkg ..."   also require these (space separated)
set -euo pipefail

tests=0
case "${1:-}" in
    "") ;;
    --test) tests=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

packages=(
    # build
    build-essential cmake pkg-config
    # MPI (Open MPI 4): ranks and the mpirun launcher
    libopenmpi-dev openmpi-bin
    # engine, data, wire, coordinator loop, sweep files, tfjs JSON, weights
    libopenblas-dev libopenblas-openmp-dev libturbojpeg0-dev libprotobuf-c-dev protobuf-c-compiler
    # oneDNN: convolutions at the hardware limit (OpenMP runtime, like our OpenBLAS)
    libdnnl-dev
    libuv1-dev libyaml-dev libjansson-dev libhdf5-dev libpng-dev
    # tlsweep export: onnx.proto (compiled by protoc-c at build time) and ONNX's checker
    python3-onnx
    # data: gzip'd idx files; the Fashion-MNIST demo dataset
    zlib1g-dev dataset-fashion-mnist
)
if [ "$tests" = 1 ]; then
    packages+=(
        # the test framework, and the PyTorch reference for parity tests and benchmarks
        libcmocka-dev python3-torch python3-torchvision python3-numpy
        # tests/h5: Keras-layout .h5 files written with h5py, as Keras writes them
        python3-h5py
        # data benchmark: Pillow for comparison, real photos from darknet
        python3-pil darknet
        # the report page, rendered by a test in headless Chromium
        chromium
        # tests/slurm: a single-node Slurm cluster started by the tests themselves
        slurm-wlm munge
        # tests/sweep, tests/fault: pgrep finds the MPI rank to kill -9
        procps
        # tests/fuzz: libFuzzer (clang's runtime), clang's OpenMP, llvm-symbolizer
        # for the stack traces
        clang-14 libclang-rt-14-dev libomp-14-dev llvm-14
    )
fi
# The weights package (npm nsfwjs) and the TensorFlow.js parity tests need
# node and npm: Debian's, unless the machine already has its own.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi
# shellcheck disable=SC2206 # word splitting is the point
packages+=(${TLSWEEP_EXTRA_PACKAGES:-})

# One dpkg-query for all: names it does not know are simply absent from the
# output (and reported missing below), so its exit status is not used.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
    grep -qx "$p installed" <<<"$installed" || missing+=("$p")
done
# tests/export: ONNX Runtime for Node (npm, pinned; its package carries the
# Linux x64 CPU library, so no install scripts run) in a project-local folder.
ORT_VERSION=1.30.0
ort_dir="$(cd "$(dirname "$0")/.." && pwd)/.cache/onnxruntime"
install_onnxruntime() {
    [ "$tests" = 1 ] || return 0
    [ "$(cat "$ort_dir/node_modules/onnxruntime-node/package.json" 2>/dev/null |
        sed -n 's/^ *"version": "\(.*\)",*$/\1/p')" = "$ORT_VERSION" ] && return 0
    echo "install-deps: npm install onnxruntime-node@$ORT_VERSION into $ort_dir"
    mkdir -p "$ort_dir"
    (cd "$ort_dir" && npm install --ignore-scripts --save-exact --no-audit --no-fund \
        --loglevel=error "onnxruntime-node@$ORT_VERSION")
}
[ ${#missing[@]} -eq 0 ] && { install_onnxruntime; exit 0; }

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "install-deps: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
install_onnxruntime
