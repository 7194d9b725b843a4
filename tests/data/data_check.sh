#!/bin/sh
# `tlsweep data check`: names each bad file with its reason, counts them,
# passes a usable dataset (exit 0) and refuses an unusable one (exit 1).
#   data_check.sh path/to/tlsweep
set -eu
tlsweep=$1
d=$(mktemp -d /tmp/tl_check_XXXXXX)
trap 'rm -rf "$d"' EXIT
"$tlsweep" data fashion-mnist "$d/fm" --per-class 2 --size 32 >/dev/null
train=$d/fm/train
: > "$train/Bag/empty.jpg"
echo "not an image" > "$train/Coat/notes.jpg"
head -c 300 "$train/Dress/$(ls "$train/Dress" | head -n 1)" > "$train/Dress/truncated.jpg"
"$tlsweep" data check --decode "$train" > "$d/out" 2>&1 || { cat "$d/out"; exit 1; }
cat "$d/out"
for f in empty.jpg notes.jpg truncated.jpg; do
    grep -q "$f" "$d/out" || { echo "no line names $f"; exit 1; }
done
# one class left: unusable
mkdir -p "$d/one/only"
cp "$train/Bag/"0*.jpg "$d/one/only/"
if "$tlsweep" data check "$d/one" > "$d/out1" 2>&1; then
    echo "a one-class dataset passed the check"; cat "$d/out1"; exit 1
fi
cat "$d/out1"
grep -qi "class" "$d/out1"
