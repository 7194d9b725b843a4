#!/bin/sh
# `tlsweep predict`, `evaluate` and `embed` on one model that `tlsweep
# train` wrote (a tiny random MobileNetV2 from tiny_model, 10 Fashion-MNIST
# images per class and split at 32x32). The three must agree with each other
# and with train's own test figures: evaluate's accuracy is train's, and the
# fraction of images whose predicted top-1 is their folder; probabilities
# sum to 1; embed gives one row of the backbone's 1280 channels per image.
#   predict_evaluate_embed.sh TLSWEEP_BINARY TINY_MODEL_BINARY
set -eu
tlsweep=$1
tiny=$2
py=/usr/bin/python3
. "$(dirname "$0")/../lib/tiny.sh"
need_fashion_mnist
d=$(mktemp -d /tmp/tl_predict_XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

"$tiny" "$d/tiny.tlm"
"$tlsweep" data fashion-mnist "$d/fm" --per-class 10 --size 32 > /dev/null
"$tlsweep" train --weights "$d/tiny.tlm" --data "$d/fm/train" --test-dir "$d/fm/test" \
    --size 32 --epochs 8 --batch 16 --lr 0.01 -o "$d/model.tlm" > "$d/train.log"
train_acc=$(sed -n 's/^test: loss [0-9.]*  accuracy \([0-9.]*\)$/\1/p' "$d/train.log")
train_loss=$(sed -n 's/^test: loss \([0-9.]*\)  accuracy [0-9.]*$/\1/p' "$d/train.log")
[ -n "$train_acc" ] || fail "no test accuracy in train's log"
echo "train: test accuracy $train_acc, loss $train_loss"

# ---- evaluate: train's figures, in both forms --------------------------------
"$tlsweep" evaluate --model "$d/model.tlm" "$d/fm/test" > "$d/eval.txt"
cat "$d/eval.txt"
grep -q "^accuracy $train_acc (.*)  loss $train_loss$" "$d/eval.txt" ||
    fail "evaluate's text does not give train's test accuracy and loss"
"$tlsweep" evaluate --model "$d/model.tlm" --json --batch 7 "$d/fm/test" > "$d/eval.json"
$py - "$d/eval.json" "$train_acc" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert "%.4f" % r["accuracy"] == sys.argv[2], (r["accuracy"], sys.argv[2])
assert r["images"] == 100 and r["bad_images"] == 0, r
assert len(r["classes"]) == 10 and "T-shirt_top" in r["classes"], r["classes"]
assert sum(map(sum, r["confusion"])) == 100
assert sum(r["confusion"][i][i] for i in range(10)) == r["correct"]
assert all(p["total"] == 10 for p in r["per_class"])
EOF

# ---- predict: top-1 against the folder, probabilities --------------------------
find "$d/fm/test" -name '*.jpg' | sort > "$d/test.list"
# shellcheck disable=SC2046
"$tlsweep" predict --model "$d/model.tlm" --top 99 --json $(cat "$d/test.list") > "$d/pred.json"
$py - "$d/pred.json" "$d/eval.json" <<'EOF'
import json, os, sys
p = json.load(open(sys.argv[1]))
ev = json.load(open(sys.argv[2]))
assert len(p["predictions"]) == 100
hits = 0
for x in p["predictions"]:
    top = x["top"]
    assert len(top) == 10, len(top)   # --top is capped at the classes
    probs = [t["probability"] for t in top]
    assert abs(sum(probs) - 1) < 1e-5, sum(probs)
    assert probs == sorted(probs, reverse=True)
    assert sorted(t["index"] for t in top) == list(range(10))
    assert all(ev["classes"][t["index"]] == t["class"] for t in top)
    hits += top[0]["class"] == os.path.basename(os.path.dirname(x["path"]))
assert hits == ev["correct"], (hits, ev["correct"])
print("predict: top-1 right on %d of 100, as evaluate counts" % hits)
EOF
# text: one block per image, the path then K "class  probability" lines
one=$(sed -n 1p "$d/test.list")
two=$(sed -n 50p "$d/test.list")
"$tlsweep" predict --model "$d/model.tlm" --top 3 "$one" "$two" > "$d/pred.txt"
cat "$d/pred.txt"
[ "$(wc -l < "$d/pred.txt")" -eq 8 ] || fail "predict --top 3 of 2 images is not 8 lines"
[ "$(sed -n 5p "$d/pred.txt")" = "$two" ] || fail "second block does not start with its path"
[ "$(grep -c '^  [A-Za-z_-]*  *[01]\.[0-9][0-9][0-9][0-9]$' "$d/pred.txt")" -eq 6 ] ||
    fail "predict's class lines are not '  class  0.1234'"

# a bad image among good ones: a warning naming it, an error entry, exit 1
printf 'not an image\n' > "$d/bad.jpg"
rc=0
"$tlsweep" predict --model "$d/model.tlm" --json "$one" "$d/bad.jpg" "$two" \
    > "$d/bad.json" 2> "$d/bad.err" || rc=$?
cat "$d/bad.err"
[ "$rc" -eq 1 ] || fail "predict with a bad image exits $rc, not 1"
[ "$(wc -l < "$d/bad.err")" -eq 1 ] && grep -q "warning: .*bad.jpg: " "$d/bad.err" ||
    fail "no one-line warning naming bad.jpg"
$py - "$d/bad.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))["predictions"]
assert len(p) == 3 and "top" in p[0] and "top" in p[2], p
assert p[1]["path"].endswith("bad.jpg") and "not a JPEG or PNG" in p[1]["error"], p[1]
assert len(p[0]["top"]) == 5
EOF
rc=0
"$tlsweep" predict --top 2 "$one" 2> /dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "predict without --model exits $rc, not 2"

# ---- evaluate: folders the model does not know, a subset it does --------------
mkdir -p "$d/other/Boot" "$d/other/Shirt" "$d/sub"
cp "$d/fm/test/Shirt/"* "$d/other/Shirt/"
cp "$d/fm/test/Ankle_boot/"* "$d/other/Boot/"
rc=0
"$tlsweep" evaluate --model "$d/model.tlm" "$d/other" > /dev/null 2> "$d/other.err" || rc=$?
cat "$d/other.err"
[ "$rc" -eq 1 ] || fail "evaluate on unknown classes exits $rc, not 1"
[ "$(wc -l < "$d/other.err")" -eq 1 ] &&
    grep -q "'Boot' is not a class of .*model.tlm.*'Ankle_boot'" "$d/other.err" ||
    fail "the class mismatch error does not name both sides"
cp -r "$d/fm/test/Shirt" "$d/fm/test/Bag" "$d/sub/"
"$tlsweep" evaluate --model "$d/model.tlm" --json "$d/sub" > "$d/sub.json"
$py - "$d/sub.json" "$d/eval.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
ev = json.load(open(sys.argv[2]))
assert s["images"] == 20
for c in ("Shirt", "Bag"):
    i = ev["classes"].index(c)
    assert s["confusion"][i] == ev["confusion"][i], c
EOF

# ---- embed --------------------------------------------------------------------
"$tlsweep" embed --model "$d/model.tlm" "$d/fm/test" -o "$d/emb.safetensors"
"$tlsweep" embed --model "$d/model.tlm" --batch 1 "$one" "$one" "$d/bad.jpg" \
    -o "$d/twice.csv" 2> "$d/embed.err"
grep -q "warning: .*bad.jpg: " "$d/embed.err" || fail "embed names no bad image"
# MobileNetV2 ends in a 1x1 conv of 1280 channels for any alpha <= 1
$py - "$d/emb.safetensors" "$d/twice.csv" "$d/model.tlm" "$d/fm/test" <<'EOF'
import csv, json, os, struct, sys
raw = open(sys.argv[1], "rb").read()
(hn,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + hn])
t, meta = h["embeddings"], h["__metadata__"]
assert t["dtype"] == "F32" and t["shape"] == [100, 1280], t
paths, labels = json.loads(meta["paths"]), json.loads(meta["labels"])
assert len(paths) == 100 and len(labels) == 100
assert all(os.path.basename(os.path.dirname(p)) == l for p, l in zip(paths, labels))
assert meta["model"] == sys.argv[3] and meta["backbone"] == "mobilenet_v2", meta
b, e = t["data_offsets"]
n = (e - b) // 4
data = struct.unpack("<%df" % n, raw[8 + hn + b:8 + hn + e])
rows = [data[i * 1280:(i + 1) * 1280] for i in range(100)]
assert len(set(rows)) == 100, "two images with the same features"
assert min(data) >= 0, "pooled ReLU6 features are never negative"
r = list(csv.reader(open(sys.argv[2])))
assert r[0][:3] == ["path", "label", "f0"] and len(r[0]) == 1282, r[0][:3]
assert len(r) == 3, "the bad image has a row"
assert r[1][1] == "" and r[1][2:] == r[2][2:], "the same image twice differs"
# the same image in a batch of one and in a batch of 32
one = [float(v) for v in r[1][2:]]
ref = rows[paths.index(r[1][0])]
assert max(abs(a - b) for a, b in zip(one, ref)) <= 1e-4 * max(ref), "batch changes features"
print("embed: 100 x 1280, the same image gives the same row")
EOF
echo "ok"
