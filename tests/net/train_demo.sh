#!/bin/sh
# `tlsweep train` end to end on the real weights (nsfwjs's MobileNetV2, via
# deploy/fetch-weights.sh: npm cache or network) and the Fashion-MNIST demo
# folders. Label 'demo', not 'unit': it needs the demo's setup.
#   train_demo.sh TLSWEEP_BINARY
set -eu
tlsweep=$1
cd "$(dirname "$0")/../.."
TLSWEEP=$tlsweep deploy/fetch-weights.sh
if [ ! -d data/fashion/train ]; then
    "$tlsweep" data fashion-mnist data/fashion --per-class 100 --size 96
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$tlsweep" train --weights models/mobilenet_v2.tlm --data data/fashion/train \
    --test-dir data/fashion/test --validation-split 0.2 --size 96 --mode frozen \
    --head gap,dense128,dropout0.2 --epochs 10 -o "$out/best.tlm" | tee "$out/log"
grep -q "1.00 per image (frozen: features cached)" "$out/log"
acc=$(sed -n 's/^test: loss [0-9.]*  accuracy \([0-9.]*\)$/\1/p' "$out/log")
echo "test accuracy $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.65) }'
test -s "$out/best.tlm"
