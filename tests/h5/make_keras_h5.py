#!/usr/bin/python3
"""Writes a .h5 in the layout of Keras's legacy HDF5 weight files (root or
"model_weights" attributes layer_names and per-layer weight_names, split
into name0, name1, ... past the object-header limit; datasets under
"<layer>/<weight>:0"; --full-model adds the model_config wrapper),
for a MobileNetV2 (alpha 1.0) list of layers with random values, plus a
reference file of the tensors the reader must return, in order:

  b"TLH5REF1", u32 count, then per tensor: u32 len, name (utf-8),
  u32 ndim, i64 dims[ndim], float32 values (little-endian)

Expected values are numpy's float32 of what was stored (float16 and
float64 datasets with --dtypes mixed), names "<layer>/<weight>" or, for the
nested backbone of --full-model, "<inner layer>/<weight>".

With --from-ref, the tensors come from a reference file instead (tfjs_dump
of the nsfwjs weights): names "<layer>/<weight>" become layer groups and
TF2 variables "<layer>/<weight>:0", and the reference is left as it is.

Needs h5py and numpy (Debian python3-h5py, which deploy/install-deps.sh installs)
without them.
"""
import argparse
import json
import struct
import sys

try:
    import h5py
    import numpy as np
except ImportError as exc:  # pragma: no cover
    print(f"make_keras_h5: {exc}; install python3-h5py", file=sys.stderr)
    sys.exit(1)

# Keras's limit; --header-limit lowers it to force the split form.
HDF5_OBJECT_HEADER_LIMIT = 64512


def write_name_list(group, key, names, limit):
    """Stores a list of byte strings as the attribute `key`, or, when that
    would pass the HDF5 object-header limit, as key0, key1, ...: the fewest
    near-equal parts (numpy.array_split boundaries) that each fit. This is
    the layout Keras files have, which is what the reader must handle."""
    oversized = [n for n in names if len(n) > limit]
    if oversized:
        raise RuntimeError(f"names longer than {limit} bytes: {oversized}")
    everything = np.asarray(names)
    parts = 1
    while True:
        pieces = np.array_split(everything, parts)
        if all(piece.nbytes <= limit for piece in pieces):
            break
        parts += 1
    if parts == 1:
        group.attrs[key] = names
        return
    for i, piece in enumerate(pieces):
        group.attrs[f"{key}{i}"] = piece


def make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def mobilenet_v2_layers():
    """[(layer name, [(weight, shape, trainable)])] in model order, names as
    keras.applications.MobileNetV2 (alpha 1.0, include_top=False)."""
    layers = []

    def plain(name):
        layers.append((name, []))

    def conv(name, kh, cin, cout):
        layers.append((name, [("kernel", (kh, kh, cin, cout), True)]))

    def depthwise(name, c):
        layers.append((name, [("depthwise_kernel", (3, 3, c, 1), True)]))

    def bn(name, c):
        layers.append((name, [("gamma", (c,), True), ("beta", (c,), True),
                              ("moving_mean", (c,), False), ("moving_variance", (c,), False)]))

    plain("input_1")
    cin = make_divisible(32)
    conv("Conv1", 3, 3, cin)
    bn("bn_Conv1", cin)
    plain("Conv1_relu")
    blocks = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
              (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1),
              (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1)]
    for block_id, (t, filters, stride) in enumerate(blocks):
        cout = make_divisible(filters)
        c = cin * t
        if block_id:
            prefix = f"block_{block_id}_"
            conv(prefix + "expand", 1, cin, c)
            bn(prefix + "expand_BN", c)
            plain(prefix + "expand_relu")
        else:
            prefix = "expanded_conv_"
        if stride == 2:
            plain(prefix + "pad")
        depthwise(prefix + "depthwise", c)
        bn(prefix + "depthwise_BN", c)
        plain(prefix + "depthwise_relu")
        conv(prefix + "project", 1, c, cout)
        bn(prefix + "project_BN", cout)
        if cin == cout and stride == 1:
            plain(prefix + "add")
        cin = cout
    conv("Conv_1", 1, cin, 1280)
    bn("Conv_1_bn", 1280)
    plain("out_relu")
    return layers


def dtype_for(weight, mixed):
    if not mixed:
        return np.float32
    if weight == "depthwise_kernel":
        return np.float16
    if weight.startswith("moving_"):
        return np.float64
    return np.float32


def random_value(rng, shape, dtype):
    v = rng.standard_normal(shape) * 0.5
    if dtype == np.float16:
        v = np.clip(v, -60000, 60000)
    return v.astype(dtype)


class Weight:
    """A Keras variable: its name (with scope and :0) and value."""

    def __init__(self, name, value, trainable):
        self.name, self.value, self.trainable = name, value, trainable


def save_layer(parent, layer_name, weights, limit):
    """One layer group: its weight_names list, then one dataset per weight
    under that name (trainable weights first, as Keras orders them)."""
    group = parent.create_group(layer_name)
    encoded = [w.name.encode("utf8") for w in weights]
    write_name_list(group, "weight_names", encoded, limit)
    for key, w in zip(encoded, weights):
        dataset = group.create_dataset(key, w.value.shape, dtype=w.value.dtype)
        dataset[()] = w.value


def legacy_weights(weights):
    return [w for w in weights if w.trainable] + [w for w in weights if not w.trainable]


def read_ref(path):
    """[(name, float32 array)] of a reference file."""
    out = []
    with open(path, "rb") as r:
        if r.read(8) != b"TLH5REF1":
            raise SystemExit(f"make_keras_h5: {path}: not a reference file")
        (count,) = struct.unpack("<I", r.read(4))
        for _ in range(count):
            (n,) = struct.unpack("<I", r.read(4))
            name = r.read(n).decode("utf8")
            (ndim,) = struct.unpack("<I", r.read(4))
            shape = struct.unpack(f"<{ndim}q", r.read(8 * ndim))
            size = int(np.prod(shape, dtype=np.int64))
            value = np.frombuffer(r.read(4 * size), dtype="<f4").reshape(shape)
            out.append((name, value.astype(np.float32)))
    return out


def layers_from_ref(path):
    """The reference's tensors grouped into Keras layers, in order."""
    layers = {}
    for name, value in read_ref(path):
        lname, _, wname = name.rpartition("/")
        if not lname:
            raise SystemExit(f"make_keras_h5: tensor '{name}' has no layer")
        layers.setdefault(lname, ([], []))
        layers[lname][0].append(Weight(f"{lname}/{wname}:0", value, True))
        layers[lname][1].append(name)
    return [(lname, ws, names) for lname, (ws, names) in layers.items()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help=".h5 to write")
    ap.add_argument("--ref", required=True, help="reference tensors to write")
    ap.add_argument("--full-model", action="store_true",
                    help="model.save layout: the backbone nested in a classifier, "
                         "under model_weights")
    ap.add_argument("--header-limit", type=int, default=HDF5_OBJECT_HEADER_LIMIT,
                    help="split name lists above this many bytes (Keras: 64512)")
    ap.add_argument("--dtypes", choices=["float32", "mixed"], default="float32")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--from-ref", action="store_true",
                    help="take the tensors from --ref (read) instead of inventing them")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    mixed = args.dtypes == "mixed"

    # (layer name in the file, [Weight], [expected tensor name per weight])
    layers = []
    backbone = []  # (inner layer name, [Weight])
    if args.from_ref:
        layers = layers_from_ref(args.ref)
    for lname, spec in [] if args.from_ref else mobilenet_v2_layers():
        ws = [Weight(f"{lname}/{w}:0", random_value(rng, shape, dtype_for(w, mixed)), tr)
              for w, shape, tr in spec]
        backbone.append((lname, ws))
    if args.from_ref:
        if args.full_model:
            raise SystemExit("make_keras_h5: --from-ref writes the notop form only")
    elif not args.full_model:
        for lname, ws in backbone:
            ws = legacy_weights(ws)
            layers.append((lname, ws, [f"{lname}/{w.name.split('/')[-1][:-2]}" for w in ws]))
    else:
        # Functional([input, MobileNetV2(include_top=False), GAP, Dropout, Dense])
        layers.append(("input_2", [], []))
        inner = legacy_weights([w for _, ws in backbone for w in ws])
        layers.append(("mobilenetv2_1.00_224", inner, [w.name[:-2] for w in inner]))
        layers.append(("global_average_pooling2d", [], []))
        layers.append(("dropout", [], []))
        dense = [Weight("dense/kernel:0", random_value(rng, (1280, 5), np.float32), True),
                 Weight("dense/bias:0", random_value(rng, (5,), np.float32), True)]
        layers.append(("dense", dense, ["dense/kernel", "dense/bias"]))

    with h5py.File(args.out, "w") as f:
        if args.full_model:
            # save_model_to_hdf5
            f.attrs["keras_version"] = "2.11.0".encode("utf8")
            f.attrs["backend"] = "tensorflow".encode("utf8")
            f.attrs["model_config"] = json.dumps(
                {"class_name": "Functional", "config": {"name": "model"}}).encode("utf8")
            root = f.create_group("model_weights")
        else:
            root = f
        write_name_list(root, "layer_names",
                                      [name.encode("utf8") for name, _, _ in layers],
                                      args.header_limit)
        root.attrs["backend"] = "tensorflow".encode("utf8")
        root.attrs["keras_version"] = "2.11.0".encode("utf8")
        for name, ws, _ in sorted(layers, key=lambda x: x[0]):
            save_layer(root, name, ws, args.header_limit)
        if args.full_model:
            f.create_group("optimizer_weights").create_dataset(
                "Adam/iter:0", data=np.int64(100))

    if args.from_ref:
        print(f"make_keras_h5: {args.out}: {len(layers)} layers from {args.ref}")
        return
    count = 0
    with open(args.ref, "wb") as r:
        r.write(b"TLH5REF1")
        r.write(struct.pack("<I", sum(len(ws) for _, ws, _ in layers)))
        for _, ws, names in layers:
            for w, tname in zip(ws, names):
                b = tname.encode("utf8")
                r.write(struct.pack("<I", len(b)) + b)
                r.write(struct.pack("<I", w.value.ndim))
                r.write(struct.pack(f"<{w.value.ndim}q", *w.value.shape))
                r.write(w.value.astype("<f4").tobytes())
                count += 1
    print(f"make_keras_h5: {args.out}: {len(layers)} layers, {count} tensors")


if __name__ == "__main__":
    main()
