#!/usr/bin/python3
"""PyTorch references for tests/parity/parity_check.c.

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision):

    make_reference.py --backbone resnet50 --convention keras --out DIR \
                      --parity-check build/tests/parity/parity_check

Builds the backbone in torch with a fixed seed and random weights (BN affine
parameters random, BN running statistics calibrated on a separate batch and
then perturbed, so inference mode is a real test), adds the head
global-average-pool + Linear(classes) named "predictions", and writes into DIR:

  weights_<mode>.safetensors   the weights, float32 (one file per mode: see
                          "kinks" below for why they differ slightly):
                          torchvision convention: torch names and layouts
                          (loaded by net_load_safetensors, which is under test);
                          Keras convention: our Keras names and layouts
                          (the torch models here are not Keras models, so the
                          mapping onto Keras names is made here, see map_keras).
  ref_eval.safetensors    inference mode (BN running statistics)
  ref_train.safetensors   training mode (BN batch statistics); not for VGG16,
                          which has no BN, so both modes are the same function.

Each ref file holds "input" (N,H,W,3), "labels" int32, "logits", "loss" and,
per parameter, "grad:<our name>" in our layout (conv HWIO, depthwise
HW(C)(1), dense (IN,OUT)). The reference is computed in float64; the same
computation in float32 gives "base:<name>" / "base_logits", torch float32's
own error, printed beside ours for scale. "floor:<name>" (biases, BN beta:
sums over positions) is 1e-3 * max over channels of sum |dL/dout|, the
denominator floor for gradients that cancel to ~0 by construction.

Keras convention (DESIGN.md, "Conventions that bite"): MobileNetV2 with TF
'same' padding on stride-2 convs (equal to Keras's correct_pad + 'valid')
and BN eps 1e-3; ResNet50 v1 (stride on the first 1x1 and the shortcut, conv
biases, eps 1.001e-5, conv1/pool1 zero padding); VGG16 as torchvision's;
InceptionV3 with BN scale=False, eps 1e-3 and average pools that exclude
the padding from the count.
"""
import argparse
import copy
import json
import math
import os
import struct
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.models.inception as tv_inception

FLOOR_FACTOR = 1e-3
warnings.filterwarnings("ignore", message="scatter_reduce")

# ---- safetensors ------------------------------------------------------------


def write_safetensors(path, tensors, metadata):
    """tensors: name -> float32/int32 numpy array. Written atomically, data
    tiled exactly in name order, header padded to a multiple of 8."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---- functional patches for torchvision's Inception3 ---------------------------


class _InceptionF:
    """Stands in for torch.nn.functional inside torchvision.models.inception:
    no in-place ReLU (the gradient hooks below need the BN output intact),
    and, for Keras, average pools that do not count the padding."""

    def __init__(self, keras):
        self.keras = keras

    def __getattr__(self, name):
        return getattr(F, name)

    def relu(self, x, inplace=False):
        return F.relu(x)

    def avg_pool2d(self, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True, divisor_override=None):
        if self.keras:
            count_include_pad = False
        return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)


def tf_same_padding(conv):
    """Keras/TF 'same' on a torch conv: the odd pixel of padding goes
    bottom/right (for MobileNetV2's 3x3/2 convs this equals ZeroPadding2D(
    correct_pad) then 'valid')."""
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    conv.padding = (0, 0)

    def hook(mod, inp):
        x = inp[0]
        h, w = x.shape[-2:]
        ph = max((math.ceil(h / sh) - 1) * sh + kh - h, 0)
        pw = max((math.ceil(w / sw) - 1) * sw + kw - w, 0)
        return (F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)),)

    conv.register_forward_pre_hook(hook)


# ---- kinks: keeping pre-activations away from ReLU/ReLU6 corners -----------------
# A float32 implementation (torch's or ours) and the float64 reference take
# different sides of a ReLU wherever a pre-activation lies within rounding
# of 0 (or 6). The forward does not care (continuous), but the backward mask
# flips, and at 7x7 x batch 2 one flipped element moves a kernel gradient by
# ~1/98: torch float32 itself misses 1e-3 on MobileNetV2 that way. So before
# writing the weights, one float64 pass over the test batch shifts, per
# channel, the bias feeding each kink (BN beta, or the conv bias in VGG16) by
# a few tau until no pre-activation of that channel is within tau * max|z| of
# a corner. tau is CLEAR_TAU in inference mode. In training mode float32's
# own error grows with depth, because batch statistics over few positions
# amplify it (InceptionV3, torch f32 vs f64 at the ReLU inputs: 2e-7 * max|z|
# at 147x147, 6e-6 at 35x35, 7e-5 at 17x17, 1.6e-4 at 8x8; ResNet50 8e-5 at
# 7x7), so there tau = CLEAR_TRAIN_SPREAD / positions, within [CLEAR_TAU,
# CLEAR_TAU_TRAIN_MAX]: 5-20x that error, while a channel still has a clear
# spot (expected values within tau of a corner stays ~0.2). Uncleared, torch
# f32 itself missed InceptionV3's training-mode gradients by 6e-2 (and ours by
# 1.7e-1), ResNet50's by 3e-3. Only layers with at most CLEAR_MAX_POSITIONS
# positions per channel: on larger maps no shift finds a clear spot.
#
# Max-pool near-ties are the other discontinuity: where the two largest
# values of a window agree to rounding, float32 and float64 can route the
# window's gradient to different cells. A 3x3/2 pool sees ~1e-4 of its
# windows within 2e-5 * max of a tie (InceptionV3 at 299: 24 in Mixed_6a's
# pool, 23 in Mixed_7a's), and one flip moves a 35x35 or 17x17 layer's
# gradients by ~1e-3: torch float32 itself missed by 4e-3 in inference mode,
# ours by 3e-3. Layers marked .pool_clear (their ReLU output feeds a 3x3/2 max
# pool) get the same treatment as kinks, on the same maps and with the same
# tau: the conv weights of a channel with a near-tie window are re-drawn by a
# relative POOL_JITTER * tau until none is left.

CLEAR_TAU = 2e-5
CLEAR_TRAIN_SPREAD = 0.2
CLEAR_TAU_TRAIN_MAX = 2e-3
CLEAR_MAX_POSITIONS = 16384
POOL_JITTER = 50  # times the layer's clearance
_clear = {"on": False, "train": False, "layers": 0, "shifted": 0, "failed": 0, "ties": 0, "ties_left": 0,
          "gen": None}


def clear_tau(z):
    """The clearance, relative to max|z|, for layer output z (N,C,H,W)."""
    if not _clear["train"]:
        return CLEAR_TAU
    return max(CLEAR_TAU, min(CLEAR_TAU_TRAIN_MAX, CLEAR_TRAIN_SPREAD * z.shape[1] / z.numel()))


def clear(z, bias, kinks):
    """Returns z shifted per channel (and shifts bias the same) when clearing."""
    if not _clear["on"] or bias is None or z.numel() // z.shape[1] > CLEAR_MAX_POSITIONS:
        return z
    with torch.no_grad():
        tau = clear_tau(z) * z.abs().max().item()
        C = z.shape[1]
        zc = z.transpose(0, 1).reshape(C, -1)  # (C, positions)
        # candidate shifts in order of preference: 0, +-3 tau, +-6 tau, ...
        shifts = 3 * tau * torch.tensor([0] + [s * k for k in range(1, 41) for s in (1, -1)],
                                        dtype=z.dtype)
        # d[c, j]: distance from a corner of channel c's nearest value after shift j
        zs = zc.sort(dim=1).values.contiguous()
        P = zs.shape[1]
        d = torch.full((C, len(shifts)), math.inf, dtype=z.dtype)
        for k in kinks:
            t = (k - shifts).expand(C, -1).contiguous()  # v + shift == k
            i = torch.searchsorted(zs, t)
            lo = zs.gather(1, (i - 1).clamp(min=0))
            hi = zs.gather(1, i.clamp(max=P - 1))
            d = torch.minimum(d, torch.minimum((lo - t).abs(), (hi - t).abs()))
        ok = d >= tau
        j = torch.where(ok.any(1), ok.to(torch.int8).argmax(1), d.argmax(1))
        shift = shifts[j]
        best = d.gather(1, j.view(-1, 1)).view(-1)
        _clear["layers"] += 1
        _clear["shifted"] += int((shift != 0).sum())
        _clear["failed"] += int((best < tau).sum())
        bias.add_(shift.to(bias.dtype))
        return z + shift.view(1, -1, 1, 1).to(z.dtype)


def pool_tie_channels(y):
    """Channels of y (N,C,H,W) with a 3x3/2 max-pool window whose two largest
    values are within tau * max|y| of each other (and positive: an
    all-zero window's gradient dies in the ReLU whichever cell takes it)."""
    N, C, H, W = y.shape
    u = F.unfold(y.reshape(N * C, 1, H, W), 3, stride=2)  # (N*C, 9, windows)
    top = u.topk(2, dim=1).values
    near = ((top[:, 0] - top[:, 1] < clear_tau(y) * y.abs().max()) & (top[:, 0] > 0)).any(1)
    return sorted({i % C for i in near.nonzero().flatten().tolist()})


def pool_cleared(conv, f, x):
    """y = f(conv(x)) for a layer whose output feeds a 3x3/2 max pool, with
    conv.weight re-drawn per channel until no window is near a tie."""
    y = f(conv(x))
    if not _clear["on"] or y.numel() // y.shape[1] > CLEAR_MAX_POSITIONS:
        return y
    for _ in range(8):
        ch = pool_tie_channels(y)
        if not ch:
            return y
        _clear["ties"] += len(ch)
        with torch.no_grad():
            w = conv.weight[ch]
            noise = torch.randn(w.shape, generator=_clear["gen"], dtype=torch.float64)
            conv.weight[ch] = w * (1 + POOL_JITTER * clear_tau(y) * noise.to(w.dtype))
        y = f(conv(x))
    _clear["ties_left"] += len(pool_tie_channels(y))
    return y


def install_kink_hooks(model):
    """(BN or biased conv, ReLU/ReLU6) neighbours in a Sequential: clear the
    ReLU's input through the first one's bias."""
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq)
        for a, b in zip(kids, kids[1:]):
            if isinstance(b, (nn.ReLU, nn.ReLU6)) and isinstance(a, (nn.BatchNorm2d, nn.Conv2d)):
                kinks = (0.0, 6.0) if isinstance(b, nn.ReLU6) else (0.0,)
                b.register_forward_pre_hook(
                    lambda mod, inp, bias=a.bias, kinks=kinks: (clear(inp[0], bias, kinks),))


def clear_kinks(model, x, train):
    """Shifts model's biases (float32) so that the float64 pass over x has no
    pre-activation near a kink."""
    m = copy.deepcopy(model).double()
    install_kink_hooks(m)
    m.train(train)
    _clear.update(on=True, train=train, layers=0, shifted=0, failed=0, ties=0, ties_left=0,
                  gen=torch.Generator().manual_seed(4321))
    with torch.no_grad():
        m(x.double())
        for p32, p64 in zip(model.parameters(), m.parameters()):
            p32.copy_(p64.float())
    _clear["on"] = False
    return dict(_clear)


def relu_cleared(z, bias):
    return F.relu(clear(z, bias, (0.0,)))


def _bottleneck_forward(self, x):
    """torchvision Bottleneck.forward with its three ReLUs cleared."""
    out = relu_cleared(self.bn1(self.conv1(x)), self.bn1.bias)
    out = relu_cleared(self.bn2(self.conv2(out)), self.bn2.bias)
    out = self.bn3(self.conv3(out))
    identity = self.downsample(x) if self.downsample is not None else x
    return relu_cleared(out + identity, self.bn3.bias)


def _basic_conv2d_forward(self, x):
    """torchvision Inception BasicConv2d.forward, its ReLU cleared, and its
    output's max-pool windows too when it feeds one."""
    f = lambda z: relu_cleared(self.bn(z), self.bn.bias)
    if getattr(self, "pool_clear", False):
        return pool_cleared(self.conv, f, x)
    return f(self.conv(x))


torchvision.models.resnet.Bottleneck.forward = _bottleneck_forward
tv_inception.BasicConv2d.forward = _basic_conv2d_forward


# ---- backbones: (trunk module, forward, feature channels) ----------------------
# In the torchvision convention our names are the trunk's own module paths.
# In the Keras convention every Conv2d/BatchNorm2d carries .keras_name.


def mobilenet_v2(keras):
    m = torchvision.models.mobilenet_v2()
    del m.classifier
    if keras:
        names = ["Conv1", "bn_Conv1"]
        for i in range(1, 18):
            p = "expanded_conv_" if i == 1 else "block_%d_" % (i - 1)
            if i != 1:
                names += [p + "expand", p + "expand_BN"]
            names += [p + "depthwise", p + "depthwise_BN", p + "project", p + "project_BN"]
        names += ["Conv_1", "Conv_1_bn"]
        mods = [x for x in m.features.modules() if isinstance(x, (nn.Conv2d, nn.BatchNorm2d))]
        assert len(mods) == len(names)
        for x, name in zip(mods, names):
            x.keras_name = name
            if isinstance(x, nn.BatchNorm2d):
                x.eps = 1e-3
            elif x.stride == (2, 2):
                tf_same_padding(x)
    return m, lambda t, x: t.features(x), 1280


class KerasResNet50(nn.Module):
    """keras.applications.ResNet50 (v1). Modules are registered in Keras's
    model.layers order: in a block with a shortcut conv that is 1_conv 1_bn
    2_conv 2_bn 0_conv 3_conv 0_bn 3_bn (Keras orders layers by depth)."""

    def __init__(self):
        super().__init__()
        L = nn.ModuleDict()

        def conv(name, cin, cout, k, s, pad=0):
            L[name] = nn.Conv2d(cin, cout, k, s, pad, bias=True)

        def bn(name, c):
            L[name] = nn.BatchNorm2d(c, eps=1.001e-5)

        conv("conv1_conv", 3, 64, 7, 2)
        bn("conv1_bn", 64)
        self.blocks = []
        cin = 64
        for s, (f, nb, st) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
            for k in range(nb):
                p = "conv%d_block%d" % (s + 2, k + 1)
                stride, sc = (st, True) if k == 0 else (1, False)
                conv(p + "_1_conv", cin, f, 1, stride)
                bn(p + "_1_bn", f)
                conv(p + "_2_conv", f, f, 3, 1, 1)
                bn(p + "_2_bn", f)
                if sc:
                    conv(p + "_0_conv", cin, 4 * f, 1, stride)
                conv(p + "_3_conv", f, 4 * f, 1, 1)
                if sc:
                    bn(p + "_0_bn", 4 * f)
                bn(p + "_3_bn", 4 * f)
                self.blocks.append((p, sc))
                cin = 4 * f
        self.L = L
        for name, mod in L.items():
            mod.keras_name = name

    def forward(self, x):
        L = self.L
        x = F.pad(x, (3, 3, 3, 3))  # conv1_pad
        x = relu_cleared(L["conv1_bn"](L["conv1_conv"](x)), L["conv1_bn"].bias)
        x = F.pad(x, (1, 1, 1, 1))  # pool1_pad: zeros after a ReLU
        x = F.max_pool2d(x, 3, 2)
        for p, sc in self.blocks:
            y = relu_cleared(L[p + "_1_bn"](L[p + "_1_conv"](x)), L[p + "_1_bn"].bias)
            y = relu_cleared(L[p + "_2_bn"](L[p + "_2_conv"](y)), L[p + "_2_bn"].bias)
            y = L[p + "_3_bn"](L[p + "_3_conv"](y))
            s = L[p + "_0_bn"](L[p + "_0_conv"](x)) if sc else x
            x = relu_cleared(s + y, L[p + "_3_bn"].bias)
        return x


def resnet50(keras):
    if keras:
        return KerasResNet50(), lambda t, x: t(x), 2048
    m = torchvision.models.resnet50()
    del m.fc, m.avgpool

    def fwd(t, x):
        x = t.maxpool(relu_cleared(t.bn1(t.conv1(x)), t.bn1.bias))
        return t.layer4(t.layer3(t.layer2(t.layer1(x))))

    return m, fwd, 2048


def vgg16(keras):
    m = torchvision.models.vgg16()
    del m.classifier, m.avgpool
    for b in m.features.modules():
        if isinstance(b, nn.Conv2d):
            nn.init.normal_(b.bias, 0.0, 0.05)  # torchvision zeroes them
    if keras:
        convs = [x for x in m.features if isinstance(x, nn.Conv2d)]
        names = ["block%d_conv%d" % (b + 1, k + 1)
                 for b, n in enumerate([2, 2, 3, 3, 3]) for k in range(n)]
        for x, name in zip(convs, names):
            x.keras_name = name
    return m, lambda t, x: t.features(x), 512


INCEPTION_TRUNK = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1",
                   "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c",
                   "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                   "Mixed_7a", "Mixed_7b", "Mixed_7c"]


def inception_v3(keras):
    tv_inception.F = _InceptionF(keras)
    m = torchvision.models.inception_v3(weights=None, aux_logits=False, transform_input=False,
                                        init_weights=True)
    del m.fc, m.avgpool, m.dropout
    # the BasicConv2d outputs that feed a 3x3/2 max pool (maxpool1/2, and the
    # pools of Mixed_6a and Mixed_7a, whose inputs are these concatenated)
    for b in [m.Conv2d_2b_3x3, m.Conv2d_4a_3x3] + \
            [getattr(m.Mixed_5d, n) for n in ("branch1x1", "branch5x5_2", "branch3x3dbl_3",
                                              "branch_pool")] + \
            [getattr(m.Mixed_6e, n) for n in ("branch1x1", "branch7x7_3", "branch7x7dbl_5",
                                              "branch_pool")]:
        b.pool_clear = True
    if keras:
        # Keras's conv2d_bn: Conv2D(use_bias=False), BatchNormalization(scale=False),
        # auto-named in creation order, which is torchvision's registration order.
        k_conv = k_bn = 0
        for x in m.modules():
            if isinstance(x, nn.Conv2d):
                x.keras_name = "conv2d" + ("_%d" % k_conv if k_conv else "")
                k_conv += 1
            elif isinstance(x, nn.BatchNorm2d):
                x.keras_name = "batch_normalization" + ("_%d" % k_bn if k_bn else "")
                k_bn += 1
                x.weight = None  # scale=False: no gamma
                x.eps = 1e-3

    def fwd(t, x):
        for name in INCEPTION_TRUNK:
            x = getattr(t, name)(x)
        return x

    return m, fwd, 2048


BACKBONES = {"mobilenet_v2": mobilenet_v2, "resnet50": resnet50, "vgg16": vgg16,
             "inception_v3": inception_v3}


class Classifier(nn.Module):
    def __init__(self, trunk, trunk_forward, features, classes):
        super().__init__()
        self.trunk = trunk
        self.trunk_forward = trunk_forward
        self.predictions = nn.Linear(features, classes)
        self.predictions.keras_name = "predictions"
        for m in self.modules():  # the floor hooks need every layer's output intact
            if hasattr(m, "inplace"):
                m.inplace = False

    def forward(self, x):
        x = self.trunk_forward(self.trunk, x)
        return self.predictions(x.mean((2, 3)))


# ---- tensors: torch names/layouts -> ours ------------------------------------


class Entry:
    """One state tensor: its torch key, our parameter name, and the layout
    conversion (conv OIHW->HWIO, depthwise O1HW->HW(C)(1), linear
    [out,in]->[in,out])."""

    def __init__(self, key, module, attr, keras):
        self.key = key
        path = key[: -len(attr) - 1]
        layer = module.keras_name if keras else path[len("trunk."):] if path.startswith("trunk.") else path
        self.perm = None
        self.floor = False
        if isinstance(module, nn.Conv2d):
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            if attr == "weight":
                suffix = "depthwise_kernel" if depthwise else "kernel"
                self.perm = (2, 3, 0, 1) if depthwise else (2, 3, 1, 0)
            else:
                suffix, self.floor = "bias", True
        elif isinstance(module, nn.BatchNorm2d):
            suffix = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                      "running_var": "moving_variance"}[attr]
            self.floor = attr == "bias"
        elif isinstance(module, nn.Linear):
            suffix = "kernel" if attr == "weight" else "bias"
            self.perm = (1, 0) if attr == "weight" else None
            self.floor = attr == "bias"
        else:
            raise TypeError("no mapping for %s (%s)" % (key, type(module).__name__))
        self.name = layer + "/" + suffix
        self.is_param = attr in ("weight", "bias")

    def ours(self, t):
        a = t.detach().cpu().numpy()
        return np.ascontiguousarray(a.transpose(self.perm) if self.perm else a)

    def shape(self, t):
        return tuple(self.ours(t).shape)


def entries_of(model, keras):
    mods = dict(model.named_modules())
    out = []
    for key, t in model.state_dict().items():
        if key.endswith(".num_batches_tracked"):
            continue
        path, attr = key.rsplit(".", 1)
        out.append(Entry(key, mods[path], attr, keras))
    return out


def c_params(exe, backbone, convention, size, classes):
    r = subprocess.run([exe, "list", backbone, convention, str(size), str(classes)],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit("make_reference: %s list failed: %s" % (exe, r.stderr.strip()))
    return [(n, tuple(int(d) for d in s.split(",") if d))
            for n, s in (line.split("\t") for line in r.stdout.splitlines())]


def map_keras(entries, sd, cps):
    """Gives each torch tensor the name of our Keras-convention parameter it
    loads into, checked against the net's own list (parity_check list).

    Keras names are written on the torch modules above, so when the two name
    sets agree the mapping is by name and the order is only reported. When
    they disagree (InceptionV3's auto-names conv2d_N / batch_normalization_N
    depend on how many layers the Keras session had made before, and the
    builder may number from 1), the mapping falls back to ORDER, with a shape
    check. Where order-mapping can go wrong:
      - Keras's model.layers order is by depth, not creation: in ResNet50 a
        block's shortcut 0_conv comes after 2_conv, and its 0_bn after 3_conv.
        Torch registration order must follow the net's order, and same-shaped
        neighbours (conv2_block1_0_conv and _3_conv are both 1x1 64->256; in
        InceptionV3 many 1x1 192 convs) swap without a shape error. A swap
        shows up as a parity failure, not here.
      - Per layer, torch's state order (weight, bias, running_mean,
        running_var) must match the net's (kernel, bias / gamma, beta,
        moving_mean, moving_variance); a BN without gamma must have no
        torch weight (Keras scale=False), or every later tensor shifts.
      - num_batches_tracked buffers are skipped; any other extra buffer
        would shift the order."""
    ours = [e.name for e in entries]
    cnames = [n for n, _ in cps]
    cshape = dict(cps)
    if len(ours) != len(cnames):
        sys.exit("make_reference: torch model has %d tensors, the net %d parameters"
                 % (len(ours), len(cnames)))
    if ours == cnames:
        how = "by name, same order"
    elif sorted(ours) == sorted(cnames):
        i = next(i for i, (a, b) in enumerate(zip(ours, cnames)) if a != b)
        how = "by name; order differs first at #%d (torch %s, net %s)" % (i, ours[i], cnames[i])
    else:
        diff = [(a, b) for a, b in zip(ours, cnames) if a != b]
        how = "BY ORDER: %d names differ, first torch %s vs net %s" % (len(diff), *diff[0])
        for e, n in zip(entries, cnames):
            e.name = n
    print("make_reference: Keras mapping", how)
    for e in entries:
        if e.shape(sd[e.key]) != cshape[e.name]:
            sys.exit("make_reference: torch %s %s does not fit %s %s"
                     % (e.key, list(e.shape(sd[e.key])), e.name, list(cshape[e.name])))


# ---- randomisation --------------------------------------------------------------


@torch.no_grad()
def randomise(model, calib, g):
    """Random BN affine parameters; running statistics from a training-mode
    pass over a separate batch, then perturbed, so inference-mode BN neither
    matches the batch statistics nor blows the activations up."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        if m.weight is not None:
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1.0
    model.train()
    model(calib)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
        m.running_mean.add_(torch.randn(m.num_features, generator=g) * 0.1 * m.running_var.sqrt())
        m.running_var.mul_(torch.exp((torch.rand(m.num_features, generator=g) - 0.5) * 0.6))
    nn.init.normal_(model.predictions.weight, 0.0, 1.0 / math.sqrt(model.predictions.in_features))
    nn.init.normal_(model.predictions.bias, 0.0, 0.1)


def run(model, x, labels, dtype, train, floor_names):
    """Logits, loss, gradients (by torch key) and floors of a fresh copy."""
    m = copy.deepcopy(model).to(dtype)
    m.train(train)
    floors = {}
    mods = dict(m.named_modules())
    for key in floor_names:
        path = key.rsplit(".", 1)[0]

        def fh(mod, inp, out, key=key):
            dims = (0, 2, 3) if out.dim() == 4 else (0,)
            out.register_hook(lambda g: floors.__setitem__(
                key, FLOOR_FACTOR * g.abs().sum(dims).max().item()))

        mods[path].register_forward_hook(fh)
    logits = m(x.to(dtype))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {k: p.grad for k, p in m.named_parameters()}
    return logits.detach(), loss.item(), grads, floors


def rel_err(a, b, floor=0.0):
    a, b = a.double(), b.double()
    den = max(b.abs().max().item(), floor, 1e-30)
    return (a - b).abs().max().item() / den


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", required=True, choices=sorted(BACKBONES))
    ap.add_argument("--convention", required=True, choices=["torchvision", "keras"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=0, help="input side (default 224, 299 for inception_v3)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--modes", default="", help="eval,train (default: both; eval only for vgg16)")
    ap.add_argument("--parity-check", help="parity_check executable, to verify the mapping")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    keras = a.convention == "keras"
    size = a.size or (299 if a.backbone == "inception_v3" else 224)
    modes = a.modes.split(",") if a.modes else (["eval"] if a.backbone == "vgg16" else ["eval", "train"])
    if keras and not a.parity_check:
        sys.exit("make_reference: the Keras convention needs --parity-check to map names")
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()

    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed + 1)
    trunk, fwd, feats = BACKBONES[a.backbone](keras)
    model = Classifier(trunk, fwd, feats, a.classes)
    x = torch.randn(a.batch, 3, size, size, generator=g)
    labels = torch.randint(0, a.classes, (a.batch,), generator=g)
    randomise(model, torch.randn(a.batch, 3, size, size, generator=g), g)
    model.eval()

    sd = model.state_dict()
    entries = entries_of(model, keras)
    if a.parity_check:
        cps = c_params(a.parity_check, a.backbone, a.convention, size, a.classes)
        if keras:
            map_keras(entries, sd, cps)
        else:
            ours, net = {e.name for e in entries}, {n for n, _ in cps}
            for n in sorted(ours - net)[:5]:
                print("make_reference: warning: torch tensor for %s, which the net lacks" % n)
            for n in sorted(net - ours)[:5]:
                print("make_reference: warning: net parameter %s has no torch tensor" % n)
    by_key = {e.key: e for e in entries}
    floor_keys = [e.key for e in entries if e.floor and e.is_param]
    for mode in modes:
        train = mode == "train"
        mm = copy.deepcopy(model)
        cl = clear_kinks(mm, x, train)
        sd = mm.state_dict()
        if keras:
            weights = {e.name: e.ours(sd[e.key]).astype(np.float32) for e in entries}
        else:  # torch names and layouts; num_batches_tracked too, which the loader must skip
            weights = {k[len("trunk."):] if k.startswith("trunk.") else k:
                       t.detach().numpy().astype(np.float32 if t.dtype.is_floating_point else np.int32)
                       for k, t in sd.items()}
        write_safetensors(os.path.join(a.out, "weights_%s.safetensors" % mode), weights,
                          {"format": "pt", "backbone": a.backbone, "convention": a.convention})
        logits, loss, grads, floors = run(mm, x, labels, torch.float64, train, floor_keys)
        logits32, loss32, grads32, _ = run(mm, x, labels, torch.float32, train, [])
        t = {"input": x.permute(0, 2, 3, 1).contiguous().numpy(),
             "labels": labels.numpy().astype(np.int32),
             "logits": logits.float().numpy(),
             "loss": np.array([loss], np.float32),
             "base_logits": np.array([rel_err(logits32, logits)], np.float32)}
        worst = (0.0, "")
        for k, gr in grads.items():
            e = by_key[k]
            t["grad:" + e.name] = e.ours(gr.float())
            base = rel_err(grads32[k], gr, floors.get(k, 0.0))
            t["base:" + e.name] = np.array([base], np.float32)
            worst = max(worst, (base, e.name))
            if k in floors:
                t["floor:" + e.name] = np.array([floors[k]], np.float32)
        meta = {"backbone": a.backbone, "convention": a.convention, "mode": mode,
                "size": size, "batch": a.batch, "classes": a.classes, "seed": a.seed,
                "weights_format": "native" if keras else "torch"}
        write_safetensors(os.path.join(a.out, "ref_%s.safetensors" % mode), t, meta)
        print("make_reference: %s %s %s: kinks cleared in %d layers (%d channels shifted, %d not "
              "cleared), max-pool near-ties in %d channels (%d left); loss %.6f; torch f32 vs f64: "
              "logits %.2e, loss %.2e, worst grad %.2e (%s)"
              % (a.backbone, a.convention, mode, cl["layers"], cl["shifted"], cl["failed"],
                 cl["ties"], cl["ties_left"], loss,
                 t["base_logits"][0], abs(loss32 - loss) / abs(loss), worst[0], worst[1]))
    print("make_reference: %s %s written to %s in %.1f s" % (a.backbone, a.convention, a.out,
                                                            time.time() - t0))


if __name__ == "__main__":
    main()
