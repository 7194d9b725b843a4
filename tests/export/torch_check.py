"""A safetensors export loaded into torchvision's own model with
strict=True (every key present, none left over, every shape right), run
on the inputs `tlsweep predict` fed the engine, against predict's
probabilities: max abs difference < TOL (export_check.sh's: 1e-4, or more
for a random net whose float noise ONNX Runtime shows to be larger).
   torch_check.py MODEL.safetensors INPUTS.f32 PREDICT.json TOL
The file's __metadata__ says the backbone, size, alpha, classes and loss;
the header is read here (8-byte length, JSON), as the format defines it."""
import json
import struct
import sys

import numpy as np
import torch
import torchvision


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        a = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
        tensors[name] = torch.from_numpy(a.copy())
    return tensors, meta


def torchvision_model(meta):
    k = int(meta["num_classes"])
    bb = meta["backbone"]
    if bb == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(num_classes=k, width_mult=float(meta["alpha"]))
    if bb == "resnet50":
        return torchvision.models.resnet50(num_classes=k)
    if bb == "inception_v3":
        return torchvision.models.inception_v3(num_classes=k, aux_logits=False,
                                               init_weights=False)
    raise SystemExit("no torchvision model for " + bb)


def main():
    st, inputs, pred, tol = sys.argv[1:5]
    torch.set_num_threads(2)
    tensors, meta = read_safetensors(st)
    assert meta["convention"] == "torchvision", meta
    model = torchvision_model(meta)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    side = int(meta["size"])
    x = np.fromfile(inputs, dtype="<f4").reshape(-1, side, side, 3)
    with torch.no_grad():
        logits = model(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
    probs = torch.sigmoid(logits) if meta["loss"] == "sigmoid" else torch.softmax(logits, 1)
    ref = np.zeros(probs.shape)
    for i, p in enumerate(json.load(open(pred))["predictions"]):
        for t in p["top"]:
            ref[i, t["index"]] = t["probability"]
    diff = float(np.abs(probs.numpy() - ref).max())
    names = json.loads(meta["class_names"])
    assert len(names) == probs.shape[1], names
    print("torchvision %s strict load: max |torch - tlsweep predict| = %.3g" % (meta["backbone"], diff))
    assert diff < float(tol), (diff, tol)


main()
