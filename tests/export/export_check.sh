#!/bin/sh
# `tlsweep export` of one model, checked by other software:
# - ONNX: ONNX's own checker (Debian python3-onnx, full_check: shape
#   inference over every node) and ONNX Runtime (npm onnxruntime-node,
#   deploy/install-deps.sh --test): its probabilities must match `tlsweep
#   predict --json` within 1e-4 (or 3x ONNX Runtime's own disagreement
#   with itself, when that is larger) on the same Fashion-MNIST test images,
#   at batch 1 and batch 8, exported without preprocessing (input as predict
#   feeds the engine) and with it (RGB 0-255).
# - safetensors, torchvision convention with a pooling head: torchvision's
#   own model loads it with strict=True and predicts within the same
#   tolerance (torch_check.py); Keras convention: `tlsweep import` of the export gives
#   back the same tensors, bit for bit.
# - tfjs: TensorFlow.js (npm @tensorflow/tfjs, pure JS, tests/tfjs's install)
#   loads the folder and predicts within the same tolerance; Keras
#   convention: `tlsweep import` of the folder gives back every tensor.
# - Keras .h5 (Keras convention): h5py finds every tensor where Keras's
#   load_weights(by_name=True) looks (layer_names, weight_names, datasets),
#   model_config names every layer, and `tlsweep import` gives back every
#   tensor bit for bit.
#   export_check.sh CASE TLSWEEP MAKE_MODEL DUMP_INPUTS TINY_MODEL ORT_DIR TFJS_DIR
# CASE: trained (tiny_model trained by `tlsweep train` with a dense head),
# demo (the demo's pretrained MobileNetV2 trained on data/fashion, whose
# test folder gives the images: deploy/fetch-weights.sh, label demo) or
# BACKBONE:CONVENTION:SIZE:HEAD:LOSS:CLASSES[:ALPHA] (random weights,
# export_make_model, BN statistics from the training images).
set -eu
case_=$1 tlsweep=$2 make_model=$3 dump=$4 tiny=$5 ort_dir=$6 tfjs_dir=$7
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
. "$here/../lib/tiny.sh"
need_fashion_mnist
[ -f "$ort_dir/node_modules/onnxruntime-node/package.json" ] ||
    fail "no onnxruntime-node in $ort_dir (deploy/install-deps.sh --test installs it)"
$py -c 'import onnx' 2>/dev/null || fail "no python3-onnx (deploy/install-deps.sh installs it)"
d=$(mktemp -d /tmp/tl_export_onnx_XXXXXX)
trap 'rm -rf "$d"' EXIT

"$tlsweep" data fashion-mnist "$d/fm" --per-class 3 --size 32 > /dev/null
if [ "$case_" = demo ]; then
    repo=$(cd "$here/../.." && pwd)
    (cd "$repo" && TLSWEEP=$tlsweep deploy/fetch-weights.sh)
    [ -d "$repo/data/fashion/test" ] ||
        "$tlsweep" data fashion-mnist "$repo/data/fashion" --per-class 100 --size 96 > /dev/null
    "$tlsweep" train --weights "$repo/models/mobilenet_v2.tlm" --data "$repo/data/fashion/train" \
        --size 96 --mode frozen --head gap,dense128,dropout0.2 --epochs 3 \
        -o "$d/model.tlm" > /dev/null
    rm -rf "$d/fm/test"
    for c in "$repo"/data/fashion/test/*/; do
        mkdir -p "$d/fm/test/$(basename "$c")"
        find "$c" -name '*.jpg' | sort | head -3 | while read -r f; do cp "$f" "$d/fm/test/$(basename "$c")/"; done
    done
elif [ "$case_" = trained ]; then
    "$tlsweep" data fashion-mnist "$d/fmt" --per-class 6 --size 32 > /dev/null
    "$tiny" "$d/tiny.tlm" > /dev/null
    "$tlsweep" train --weights "$d/tiny.tlm" --data "$d/fmt/train" --size 32 --epochs 2 \
        --batch 16 --lr 0.01 --mode fine_tune --head gap,dense32,dropout0.2 \
        -o "$d/model.tlm" > /dev/null
else
    alpha=$(echo "$case_" | cut -s -d: -f7)
    # shellcheck disable=SC2046 # the case's fields and the images are the arguments
    "$make_model" $(echo "$case_" | cut -d: -f1-6 | tr : ' ') "${alpha:-0}" "$d/model.tlm" \
        $(find "$d/fm/train" -name '*.jpg' | sort)
fi
find "$d/fm/test" -name '*.jpg' | sort > "$d/images"
# shellcheck disable=SC2046
"$dump" "$d/model.tlm" "$d/raw.f32" "$d/pre.f32" $(cat "$d/images")
# shellcheck disable=SC2046
"$tlsweep" predict --model "$d/model.tlm" --top 9999 --json $(cat "$d/images") > "$d/pred.json"

"$tlsweep" export "$d/model.tlm" -o "$d/plain.onnx"
"$tlsweep" export "$d/model.tlm" -o "$d/pre.onnx" --with-preprocessing
for m in plain pre; do
    $py -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' \
        "$d/$m.onnx"
done
for b in 1 8; do
    NODE_PATH="$ort_dir/node_modules" node "$here/ort_run.js" "$d/plain.onnx" "$d/pre.f32" $b \
        > "$d/plain_b$b.json"
    NODE_PATH="$ort_dir/node_modules" node "$here/ort_run.js" "$d/pre.onnx" "$d/raw.f32" $b \
        > "$d/pre_b$b.json"
done
NODE_PATH="$ort_dir/node_modules" node "$here/ort_run.js" "$d/plain.onnx" "$d/pre.f32" 8 \
    unoptimized > "$d/floor.json"

$py - "$d" "$d/model.tlm" <<'PY'
import json, sys
import onnx
d = sys.argv[1]
pred = json.load(open(d + "/pred.json"))["predictions"]
ref = []
for p in pred:
    row = [0.0] * len(p["top"])
    for t in p["top"]:
        row[t["index"]] = t["probability"]
    ref.append(row)
classes = [t["class"] for t in sorted(pred[0]["top"], key=lambda t: t["index"])]
def max_diff(a, b):
    assert len(a) == len(b) and all(len(r) == len(g) for r, g in zip(a, b))
    return max(abs(x - y) for r, g in zip(a, b) for x, y in zip(r, g))
# ONNX Runtime against itself (graph optimisations on and off): a random
# deep net can amplify float rounding past 1e-4 (Keras ResNet50 at 32x32:
# 2e-4); then three times that floor is the tolerance, else 1e-4.
floor = max_diff(json.load(open(d + "/plain_b8.json"))["rows"],
                 json.load(open(d + "/floor.json"))["rows"])
tol = max(1e-4, 3 * floor)
print("onnxruntime optimised vs not: %.3g; tolerance %.3g" % (floor, tol))
open(d + "/tol", "w").write("%r\n" % tol)
worst = 0.0
for run in ("plain_b1", "plain_b8", "pre_b1", "pre_b8"):
    got = json.load(open("%s/%s.json" % (d, run)))
    assert got["output"] == "probabilities", got["output"]
    rows = got["rows"]
    assert len(rows) == len(ref) == 30, (len(rows), len(ref))
    diff = max_diff(ref, rows)
    print("%s: max |onnxruntime - tlsweep predict| = %.3g" % (run, diff))
    assert diff < tol, (run, diff, tol)
    worst = max(worst, diff)
# the spread of the probabilities: a model that says the same for every
# image would match without proving much
spread = max(max(r) - min(r) for r in ref)
print("probabilities spread up to %.3f; worst diff %.3g" % (spread, worst))
assert spread > 0.05, spread
meta = {p.key: p.value for p in onnx.load(d + "/pre.onnx").metadata_props}
assert json.loads(meta["tlsweep.class_names"]) == classes, (meta["tlsweep.class_names"], classes)
assert meta["tlsweep.preprocessing_in_graph"] == "true" and meta["tlsweep.input_layout"] == "NHWC"
PY

# `tlsweep import` of an export (Keras convention), exported again as
# safetensors: the same tensors as the original's, bit for bit.
same_tensors_after_import() {
    src=$1 tag=$2
    shift 2
    "$tlsweep" import "$src" -o "$d/back_$tag.tlm" --with-head "$@" > /dev/null
    set -- "$tag"
    "$tlsweep" export "$d/back_$1.tlm" -o "$d/back_$1.safetensors" > /dev/null
    $py - "$d/model.safetensors" "$d/back_$1.safetensors" "$1" <<'PY'
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:5]
assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
print("%s: tlsweep import gives back the %d tensors bit for bit" % (sys.argv[3], len(a)))
PY
}

# ---- safetensors -------------------------------------------------------------------
"$tlsweep" export "$d/model.tlm" -o "$d/model.safetensors" > /dev/null
conv=$(echo "$case_" | cut -s -d: -f2)
head=$(echo "$case_" | cut -s -d: -f4)
if [ "$conv" = torchvision ]; then
    case "$case_:$head" in
    vgg16*|*:*dense*) echo "safetensors: torchvision has no model with this head; not loaded" ;;
    *) $py "$here/torch_check.py" "$d/model.safetensors" "$d/pre.f32" "$d/pred.json" \
        "$(cat "$d/tol")" ;;
    esac
else
    same_tensors_after_import "$d/model.safetensors" safetensors
fi

# ---- tfjs ------------------------------------------------------------------------
"$tlsweep" export "$d/model.tlm" -o "$d/tfjs/" > /dev/null
NODE_PATH="$tfjs_dir/node_modules" node "$here/tfjs_run.js" "$d/tfjs" "$d/pre.f32" 8 \
    2> "$d/tfjs.err" > "$d/tfjs.json" || { cat "$d/tfjs.err" >&2; exit 1; }
$py - "$d/pred.json" "$d/tfjs.json" "$(cat "$d/tol")" <<'PY'
import json, sys
pred = json.load(open(sys.argv[1]))["predictions"]
rows = json.load(open(sys.argv[2]))["rows"]
ref = [[0.0] * len(p["top"]) for p in pred]
for i, p in enumerate(pred):
    for t in p["top"]:
        ref[i][t["index"]] = t["probability"]
assert len(rows) == len(ref) and all(len(r) == len(g) for r, g in zip(ref, rows))
diff = max(abs(x - y) for r, g in zip(ref, rows) for x, y in zip(r, g))
print("tfjs: max |tensorflow.js - tlsweep predict| = %.3g" % diff)
assert diff < float(sys.argv[3]), (diff, sys.argv[3])
PY
[ "$conv" = torchvision ] || same_tensors_after_import "$d/tfjs" tfjs

# ---- Keras .h5 ----------------------------------------------------------------------
[ "$conv" = torchvision ] && exit 0
"$tlsweep" export "$d/model.tlm" -o "$d/model.h5" > /dev/null
$py - "$d/model.h5" "$d/model.safetensors" <<'PY'
import json, struct, sys
import h5py
import numpy as np
f = h5py.File(sys.argv[1], "r")
raw = open(sys.argv[2], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
header.pop("__metadata__")
mw = f["model_weights"]
layer_names = [x.decode() for x in mw.attrs["layer_names"]]
config_layers = {l["name"] for l in json.loads(f.attrs["model_config"])["config"]["layers"]}
for name, t in header.items():
    layer, weight = name.split("/")
    assert layer in layer_names and layer in config_layers, layer
    wnames = [x.decode() for x in mw[layer].attrs["weight_names"]]
    assert name + ":0" in wnames, (name, wnames)
    want = np.frombuffer(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]], "<f4")
    got = mw[layer][name + ":0"][()]
    assert list(got.shape) == t["shape"] and got.tobytes() == want.tobytes(), name
facts = json.loads(f.attrs["tlsweep"])
print("h5: %d tensors where Keras looks for them, %d layers in model_config, classes %s"
      % (len(header), len(config_layers), facts["class_names"][:2]))
PY
size=$(echo "$case_" | cut -s -d: -f3)
same_tensors_after_import "$d/model.h5" h5 --size "${size:-32}"
