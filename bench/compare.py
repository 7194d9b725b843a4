"""Runs tlsweep-bench and the PyTorch reference on the same configurations in
the same run, each in its own process, and prints images/s, GFLOP/s, peak
memory and the ratio tlsweep / PyTorch.

    /usr/bin/python3 bench/compare.py --bin build/tlsweep-bench [--quick] [--threads 2]

OPENBLAS_CORETYPE is removed from both processes' environment unless
--keep-coretype is given, so OpenBLAS picks its kernels for this CPU (the
line 'blas' in the output says which ran). PyTorch gets GLIBC_TUNABLES that
keep big buffers mapped (6x faster MobileNetV2 training on these VMs); the
same environment is given to tlsweep."""
import argparse
import json
import os
import subprocess
import sys

TUNABLES = ("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:"
            "glibc.malloc.top_pad=268435456")

FULL = [("mobilenet_v2", 224), ("mobilenet_v2", 96), ("resnet50", 224), ("vgg16", 224),
        ("inception_v3", 299)]
QUICK = [("mobilenet_v2", 96)]


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tlsweep-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="MobileNetV2 96 only")
    ap.add_argument("--only", help="comma-separated backbones")
    ap.add_argument("--modes", default="train,frozen,infer")
    ap.add_argument("--keep-coretype", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ)
    if not a.keep_coretype:
        env.pop("OPENBLAS_CORETYPE", None)
    env["GLIBC_TUNABLES"] = TUNABLES
    env["OMP_NUM_THREADS"] = str(a.threads)
    here = os.path.dirname(os.path.abspath(__file__))
    configs = QUICK if a.quick else FULL
    if a.only:
        configs = [c for c in configs if c[0] in a.only.split(",")]
    print(f"threads {a.threads}, batch {a.batch}, OPENBLAS_CORETYPE="
          f"{env.get('OPENBLAS_CORETYPE', '(unset)')}, GLIBC_TUNABLES={TUNABLES}")
    hdr = (f"{'backbone':<13}{'size':>5} {'mode':<7}{'tlsweep img/s':>14}{'GFLOP/s':>9}"
           f"{'MiB':>8}{'torch img/s':>13}{'MiB':>8}{'speed':>8}{'memory':>8}")
    print(hdr)
    blas = None
    for bb, size in configs:
        for mode in a.modes.split(","):
            common = ["--backbone", bb, "--size", str(size), "--batch", str(a.batch),
                      "--mode", mode, "--steps", str(a.steps), "--threads", str(a.threads)]
            ours = run([a.bin] + common, env)
            ref = run(["/usr/bin/python3", os.path.join(here, "torch_bench.py")] + common, env)
            blas = ours.get("blas", blas)
            print(f"{bb:<13}{size:>5} {mode:<7}{ours['images_per_s']:>14.1f}"
                  f"{ours['gflops']:>9.0f}{ours['peak_rss_mib']:>8.0f}"
                  f"{ref['images_per_s']:>13.1f}{ref['peak_rss_mib']:>8.0f}"
                  f"{ours['images_per_s'] / ref['images_per_s']:>7.2f}x"
                  f"{ours['peak_rss_mib'] / ref['peak_rss_mib']:>7.2f}x", flush=True)
    print(f"blas: {blas}")


if __name__ == "__main__":
    main()
