#!/bin/sh
# The real converter on Debian's dataset-fashion-mnist: 3 per class per
# split at 48x48 must give 60 JPEGs. deploy/install-deps.sh installs the
# package; without it this fails, it does not skip.
#   convert_fashion_mnist.sh path/to/tlsweep
set -eu
tlsweep=$1
. "$(dirname "$0")/../lib/tiny.sh"
need_fashion_mnist
out=$(mktemp -d /tmp/tl_fmcli_XXXXXX)
trap 'rm -rf "$out"' EXIT
"$tlsweep" data fashion-mnist "$out" --per-class 3 --size 48
n=$(find "$out" -type f -name '*.jpg' | wc -l)
classes=$(find "$out/train" "$out/test" -mindepth 1 -maxdepth 1 -type d | wc -l)
echo "files: $n, class folders: $classes"
[ "$n" -eq 60 ] && [ "$classes" -eq 20 ]
