#!/usr/bin/python3
"""Image decode + resize + preprocess, tlsweep against Pillow, one core each.

    /usr/bin/python3 bench/data_compare.py [--bench BUILD/tlsweep-data-bench] [--work DIR]
                                           [--seconds T] [--repeat N]

Makes two sets of JPEGs under --work (once): 300 Fashion-MNIST images
upscaled to 96x96 RGB (as `tlsweep data fashion-mnist` makes them), and the
real photographs Debian's darknet package ships (500x500 .. 1352x900). Then
times, at 96 and 224:
  tlsweep: data_image_load (TurboJPEG with DCT scaling, Pillow-style
           antialiased bilinear resize, x/127.5 - 1), C, one thread;
  Pillow:  Image.open + draft('RGB', size) (Pillow's DCT scaling: 1/2, 1/4,
           1/8 only) + convert('RGB') + resize(BILINEAR) + numpy x/127.5 - 1.
Both decode at a DCT scale that keeps the image >= the output size: on these
photos the same scale, except person.jpg at 224 and scream.jpg at 96 and 224,
where ours takes 3/8, 5/8 or 3/4, which Pillow's draft (1/2, 1/4, 1/8 only)
cannot (the Huffman decoding, most of the time, is the same either way).
Both use the accurate integer IDCT and fancy upsampling (draft with a size,
not Pillow's speed flags), both resize with the same antialiased triangle
filter (Pillow's BILINEAR, reducing_gap=None, the default) to the same
squashed size, and both read the files from the page cache. Ours produces
float32 directly; Pillow rounds to uint8 and numpy converts, Pillow's usual
path.
Each configuration runs --repeat times, tlsweep and Pillow alternating, so a
change in the machine's load hits both; every pair is printed.
Prints images/s per core and the ratio, and the mean/max pixel difference of
the two outputs (0..255) for one image of each set.
Needs python3-pil, python3-numpy, darknet, dataset-fashion-mnist.
"""
import argparse
import glob
import gzip
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
PHOTOS = "/usr/share/darknet/data/*.jpg"


def make_sets(work):
    small = os.path.join(work, "fmnist96")
    if not os.path.isdir(small):
        os.makedirs(small)
        with gzip.open(FMNIST, "rb") as f:
            raw = f.read()
        imgs = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
        for i in range(300):
            im = Image.fromarray(imgs[i]).resize((96, 96), Image.BICUBIC).convert("RGB")
            im.save(os.path.join(small, "%03d.jpg" % i), quality=90)
    photos = sorted(glob.glob(PHOTOS))
    if not photos:
        sys.exit("no photos at %s: apt-get install darknet" % PHOTOS)
    return sorted(glob.glob(os.path.join(small, "*.jpg"))), photos


def pillow_load(path, size):
    im = Image.open(path)
    im.draft("RGB", (size, size))
    im = im.convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 127.5 - 1.0


def pillow_rate(files, size, seconds):
    for p in files:
        pillow_load(p, size)
    n, t0 = 0, time.perf_counter()
    while True:
        for p in files:
            pillow_load(p, size)
            n += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return n / t


def ours_rate(bench, files, size, seconds, dump=None):
    cmd = ["taskset", "-c", "0", bench, "--size", str(size), "--seconds", str(seconds)]
    if dump:
        cmd += ["--dump", dump]
    out = subprocess.run(cmd + files, check=True, capture_output=True, text=True).stdout
    return float(out.split()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                    "tlsweep-data-bench"))
    ap.add_argument("--work", default="/tmp/tlsweep-data-compare")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    os.sched_setaffinity(0, {0})   # one core each, the same core
    small, photos = make_sets(a.work)
    dump = os.path.join(a.work, "ours.f32")
    print("%-22s %5s %12s %12s %7s %10s %10s" % ("set", "size", "tlsweep/s", "pillow/s", "ratio", "mean|d|", "max|d|"))
    for name, files in (("fmnist 96x96 x300", small), ("darknet photos x%d" % len(photos), photos)):
        for size in (96, 224):
            for _ in range(a.repeat):
                ours = ours_rate(a.bench, files, size, a.seconds, dump)
                pil = pillow_rate(files, size, a.seconds)
                mine = np.fromfile(dump, np.float32).reshape(size, size, 3)
                ref = (pillow_load(files[0], size) + 1.0) * 127.5
                d = np.abs(mine - ref)
                print("%-22s %5d %12.1f %12.1f %6.2fx %10.2f %10.1f" % (name, size, ours, pil, ours / pil, d.mean(), d.max()),
                      flush=True)


if __name__ == "__main__":
    main()
