#!/bin/sh
# Writes the fuzz targets' seed corpora, tests/fuzz/corpus/<name>/, from the
# project's own writers (run it again after a format changes, and commit):
#   fuzz_seeds (build-fuzz)  Envelopes and chunk streams, safetensors, a
#                            head-sized .tlm, a checkpoint, a feature cache,
#                            JPEGs and PNGs (tests/data/imgutil.c)
#   a tiny sweep (build)     its journal, sweep file and results.json, and
#                            an asha sweep's results.json (tests/lib/tiny.sh)
#   here                     YAML variants, tfjs model.json + shard and the
#                            nsfwjs JS wrappers, idx files cut from Debian's
#                            Fashion-MNIST (plain and gzip)
#   tests/fuzz/make_corpus.sh [BUILD [FUZZ_BUILD]]   (default build, build-fuzz)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
fuzz_build=$(cd "${2:-$root/build-fuzz}" && pwd)
corpus=$here/corpus
t=$(mktemp -d /tmp/tlsweep-corpus-XXXXXX)
trap 'rm -rf "$t"' EXIT

for n in sweep tlm ckpt journal status fcache safetensors tfjs tfjs_js image idx msg coord report; do
    rm -rf "${corpus:?}/$n"
    mkdir -p "$corpus/$n"
done

"$fuzz_build/tests/fuzz/fuzz_seeds" "$corpus"

# the feature cache again in blocks of 2 rows (fcache_write makes blocks of
# 16 MiB: one block in any seed it writes), so that the fix-up and the
# reader's check go past the first block
python3 - "$corpus/fcache" <<'PY'
import hashlib, json, struct, sys
d = sys.argv[1]
b = open(f"{d}/4948bb210e61ecbf.features", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h, data = json.loads(b[8:8 + n]), b[8 + n:]
m, f = h["__metadata__"], h["features"]
rows, dim = 2, int(m["dim"])
x = data[f["data_offsets"][0]:f["data_offsets"][1]]
step = rows * dim * 4
m["sum_rows"] = str(rows)
m["sum_features"] = "".join(hashlib.sha256(x[i:i + step]).hexdigest()
                            for i in range(0, len(x), step))
j = json.dumps(h, separators=(",", ":")).encode()
j += b" " * (-len(j) % 8)
open(f"{d}/blocks-of-2-rows.features", "wb").write(struct.pack("<Q", len(j)) + j + data)
PY

# a tiny sweep: 2 trials x 2 epochs, frozen (through the feature cache) and
# fine-tuned, so the journal holds every kind of record
# shellcheck source=tests/lib/tiny.sh
. "$root/tests/lib/tiny.sh"
tiny_data "$build/tlsweep" "$build/tests/cli_tiny_model" "$t" 2
tiny_sweep "$t" seed 2 "[frozen, {fine_tune_at: 100}]" "[1.0e-2]" \
    "[global_average_pooling, {dense: 8}, {dropout: 0.1}]" "checkpoint_seconds: 0
out: $t/out" > "$t/seed.yaml"
"$build/tlsweep" run --quiet "$t/seed.yaml" > "$t/run.log" 2>&1 || { cat "$t/run.log"; exit 1; }
cp "$t/out/journal" "$corpus/journal/tiny-sweep"
# the same journal cut mid-record, as a crash leaves it
head -c $(($(wc -c < "$t/out/journal") - 5)) "$t/out/journal" > "$corpus/journal/torn-tail"
# status reads the same journals beside this sweep (fuzz_status.c has its text)
cp "$corpus/journal/"* "$corpus/status/"
sed "s|$t|/data|g" "$t/seed.yaml" > "$corpus/sweep/tiny.yaml"
# its results.json, and an asha search's (rungs, a sampled learning rate)
sed "s|$t|/data|g" "$t/out/results.json" > "$corpus/report/tiny-sweep.json"
tiny_sweep "$t" seed-asha 4 "[frozen]" "{log_uniform: [1.0e-4, 1.0e-1]}" \
    "[global_average_pooling, {dense: 8}]" "search: {method: asha, trials: 4, seed: 3, min_epochs: 1, reduction_factor: 2}
out: $t/asha" > "$t/asha.yaml"
"$build/tlsweep" run --quiet "$t/asha.yaml" > "$t/run.log" 2>&1 || { cat "$t/run.log"; exit 1; }
sed "s|$t|/data|g" "$t/asha/results.json" > "$corpus/report/asha.json"
cp "$root/examples/fashion-mnist.yaml" "$corpus/sweep/fashion-mnist.yaml"
cat > "$corpus/sweep/grid.yaml" <<'YAML'
name: grid
data: {train_dir: d/train, test_dir: d/test, validation_split: 0.2, image_size: 96}
model:
  head: [global_average_pooling, {dense: 32, activation: relu}, {dropout: 0.2}]
weights: {mobilenet_v2: m.tlm, resnet50: r.h5}
grid:
  backbone: [mobilenet_v2, resnet50]
  mode: [frozen, {fine_tune_at: 100}, {frozen_then_fine_tune: {fine_tune_at: 100, epochs: 1}}]
  learning_rate: [1.0e-2, 3.0e-3]
  optimizer: [adam, sgd]
  batch_size: [16, 32]
  precision: [fp32, bf16]
epochs: 3
engine: auto
seed: 7
out: o
YAML

# tfjs: model.json, a NUL, the shard (fuzz_tfjs.c): float32 and uint8-quantised
py=python3
$py - "$corpus" <<'PY'
import json, struct, sys, base64
d = sys.argv[1]
topo = {"class_name": "Functional", "config": {"name": "m", "layers": [
    {"class_name": "InputLayer", "name": "input_1",
     "config": {"batch_input_shape": [None, 32, 32, 3], "dtype": "float32", "name": "input_1"}},
    {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]],
     "config": {"units": 2, "activation": "linear", "name": "dense"}}]}}
def model(weights):
    return {"format": "layers-model", "generatedBy": "keras v2.4.0", "convertedBy": "TensorFlow.js Converter v2.0.0",
            "modelTopology": {"keras_version": "2.4.0", "backend": "tensorflow", "model_config": topo},
            "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": weights}]}
f32 = [{"name": "dense/kernel", "shape": [3, 2], "dtype": "float32"},
       {"name": "dense/bias", "shape": [2], "dtype": "float32"}]
data = struct.pack("<8f", 0.5, -1, 2, 0.25, -0.75, 1.5, 0.1, -0.1)
q = [{"name": "dense/kernel", "shape": [3, 2], "dtype": "float32",
      "quantization": {"dtype": "uint8", "scale": 0.01, "min": -1.0}},
     {"name": "dense/bias", "shape": [2], "dtype": "float32",
      "quantization": {"dtype": "float16"}}]
qdata = bytes([0, 50, 100, 150, 200, 255]) + struct.pack("<2e", 0.5, -2.0)
for name, m, b in (("float32", model(f32), data), ("quantised", model(q), qdata)):
    open(f"{d}/tfjs/{name}", "wb").write(json.dumps(m).encode() + b"\0" + b)
    # the nsfwjs JS wrapper of the same, keys unquoted where JS allows
    js = "!function(e){module.exports=e()}(function(){return function(e,a,n){a.exports=" + \
        json.dumps(m).replace('"format"', "format").replace("true", "!0") + "}});"
    open(f"{d}/tfjs_js/{name}.min.js", "w").write(js)
    open(f"{d}/tfjs_js/{name}-shard.min.js", "w").write(
        "!function(e){module.exports=e()}(function(){return function(e,a,n){a.exports='" +
        base64.b64encode(b).decode() + "'}});")
open(f"{d}/tfjs_js/literal.js", "w").write(
    "x.exports={a:1,'b':\"c\",$d_1:[!0,!1,null,void 0],e:-.5,f:5.,g:1e-3,h:[],i:{},k:'a\\x41\\u0042\\n'}")
open(f"{d}/tfjs_js/export-default.js", "w").write("export default {k: [1, 2, {z: .25}]} /* c */")
PY

# idx: 2-byte length of the image file, the images (idx3), the labels (idx1)
$py - "$corpus" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
src = "/usr/share/datasets/fashion-mnist/t10k-"
img = gzip.open(src + "images-idx3-ubyte.gz").read()
lab = gzip.open(src + "labels-idx1-ubyte.gz").read()
n = 2
images = struct.pack(">4I", 0x803, n, 28, 28) + img[16:16 + n * 784]
labels = struct.pack(">2I", 0x801, n) + lab[8:8 + n]
def seed(name, a, b):
    open(f"{d}/idx/{name}", "wb").write(struct.pack("<H", len(a)) + a + b)
seed("plain", images, labels)
seed("gzip", gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0))
small = struct.pack(">4I", 0x803, 1, 2, 3) + bytes(range(6))
seed("tiny", small, struct.pack(">2I", 0x801, 1) + b"\x07")
PY

echo "corpus: $(find "$corpus" -type f | wc -l) files, $(du -sk "$corpus" | cut -f1) KB in $corpus"
