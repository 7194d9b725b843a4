#!/usr/bin/env bash
# Real pretrained weights for these machines (no model hub in reach): the npm
# package nsfwjs ships Keras MobileNetV2 (224, alpha 1.0) and InceptionV3
# (299) as tfjs layers models (see shared/DESIGN.md, "Weights that exist on
# these machines"). This fetches the pinned tarball into CACHE_DIR (default
# .cache/weights, git-ignored), checks its sha256, unpacks it, and converts
# the two models into models/*.tlm with `tlsweep import`. tlsweep itself
# never downloads anything.
#
#   deploy/fetch-weights.sh [CACHE_DIR]
#
# Idempotent and quiet when everything is already in place. TLSWEEP is the
# tlsweep binary (default build/tlsweep).
set -euo pipefail
cd "$(dirname "$0")/.."

NSFWJS_VERSION=4.4.0
# sha256 of `npm pack nsfwjs@4.4.0` (npm's sha1 706017d11e44de0803b73a568819f800a50ae470)
NSFWJS_SHA256=585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382

cache=${1:-.cache/weights}
tlsweep=${TLSWEEP:-build/tlsweep}
tarball=$cache/nsfwjs-$NSFWJS_VERSION.tgz
pkg=$cache/nsfwjs-$NSFWJS_VERSION
models_js=$pkg/package/dist/models

mkdir -p "$cache" models

if [ ! -f "$tarball" ]; then
  command -v npm >/dev/null || { echo "fetch-weights: npm is needed (apt-get install npm)" >&2; exit 1; }
  echo "fetch-weights: npm pack nsfwjs@$NSFWJS_VERSION into $cache"
  tmp=$(mktemp -d "$cache/.pack.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "nsfwjs@$NSFWJS_VERSION" >/dev/null)
  mv "$tmp/nsfwjs-$NSFWJS_VERSION.tgz" "$tarball.part"
  rm -rf "$tmp"
  trap - EXIT
  got=$(sha256sum "$tarball.part" | cut -d' ' -f1)
  if [ "$got" != "$NSFWJS_SHA256" ]; then
    rm -f "$tarball.part"
    echo "fetch-weights: nsfwjs-$NSFWJS_VERSION.tgz has sha256 $got, expected $NSFWJS_SHA256" >&2
    exit 1
  fi
  mv "$tarball.part" "$tarball"
fi

if [ ! -f "$models_js/inception_v3/model.min.js" ]; then
  got=$(sha256sum "$tarball" | cut -d' ' -f1)
  if [ "$got" != "$NSFWJS_SHA256" ]; then
    echo "fetch-weights: $tarball has sha256 $got, expected $NSFWJS_SHA256 (delete it and rerun)" >&2
    exit 1
  fi
  rm -rf "$pkg.part"
  mkdir -p "$pkg.part"
  tar -xzf "$tarball" -C "$pkg.part" package/dist/models package/package.json package/LICENSE* 2>/dev/null ||
    tar -xzf "$tarball" -C "$pkg.part"
  rm -rf "$pkg"
  mv "$pkg.part" "$pkg"
fi

# name:input side
missing=()
for m in mobilenet_v2:224 inception_v3:299; do
  name=${m%%:*}
  out=models/$name.tlm
  src=$models_js/$name/model.min.js
  [ -f "$out" ] && [ "$out" -nt "$src" ] && continue
  probe=""
  [ -x "$tlsweep" ] && probe=$("$tlsweep" import 2>&1 || true)
  if [ ! -x "$tlsweep" ] || [[ $probe == *"unknown command 'import'"* ]]; then
    missing+=("$out")
    continue
  fi
  echo "fetch-weights: $tlsweep import $src -o $out"
  "$tlsweep" import "$src" -o "$out"
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fetch-weights: weights are in $models_js, but ${missing[*]} not written:" \
       "$tlsweep has no 'import' command yet (build it: cmake --build build --target tlsweep)" >&2
  exit 3
fi
