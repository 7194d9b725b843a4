"""tlsweep against PyTorch and against the machine's own limit, in one run.

    /usr/bin/python3 bench/compare.py --bin build/tlsweep-bench            # the issue's rows
    /usr/bin/python3 bench/compare.py --bin build/tlsweep-bench --quick    # MobileNetV2 96
    ... --rows 'resnet50-*' --rounds 5 --json out.json

Rows (batch 32, --threads 2): ResNet50 224, VGG16 224, InceptionV3 299 and
MobileNetV2 224, train and infer, fp32; ResNet50 and VGG16 train in bf16
against our own fp32. A row's sides are tlsweep on every --engines entry
(the first is the one the row reports; the others give the "x openblas"
ratio), PyTorch (bench/torch_bench.py, fp32) and, for bf16 rows, tlsweep fp32.

Every side runs in its own process (so peak RSS is its own), once per round:
round r runs the peak kernel (tlsweep-bench --peak, fp32 and, with bf16 rows,
bf16), then every side of every row, alternating tlsweep and PyTorch, the
order reversed every other round, so that drift (other jobs, clock) hits all
sides alike. Reported per side: the median over rounds and the spread
(min-max); ratios are the median of the per-round ratios of two sides.
"% peak" is GFLOP/s against the median measured peak of the row's precision
(bf16 rows also against the fp32 peak). cpu/wall is the child's user+sys time
over its wall time (whole process): near --threads when the run had its cores.

OPENBLAS_CORETYPE is removed from both processes' environment unless
--keep-coretype is given, so OpenBLAS picks its kernels for this CPU (the
line 'blas' says which ran). PyTorch gets GLIBC_TUNABLES that keep big
buffers mapped (6x faster MobileNetV2 training on these VMs); the same
environment is given to tlsweep."""
import argparse
import fnmatch
import json
import os
import resource
import statistics
import subprocess
import sys
import time

TUNABLES = ("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:"
            "glibc.malloc.top_pad=268435456")

FULL = [("resnet50", 224), ("vgg16", 224), ("inception_v3", 299), ("mobilenet_v2", 224)]
FULL_BF16 = ("resnet50", "vgg16")
QUICK = [("mobilenet_v2", 96)]
QUICK_BF16 = ("mobilenet_v2",)
HERE = os.path.dirname(os.path.abspath(__file__))


def make_rows(a):
    """The rows: dicts with id, backbone, size, mode, precision."""
    configs, bf16 = (QUICK, QUICK_BF16) if a.quick else (FULL, FULL_BF16)
    modes = a.modes.split(",")
    rows = []
    for bb, size in configs:
        for mode in modes:
            rows.append(dict(id=f"{bb}-{size}-{mode}", backbone=bb, size=size, mode=mode,
                             precision="fp32"))
    if not a.no_bf16 and "train" in modes:
        rows += [dict(id=f"{bb}-{size}-train-bf16", backbone=bb, size=size, mode="train",
                      precision="bf16") for bb, size in configs if bb in bf16]
    if a.only:
        rows = [r for r in rows if r["backbone"] in a.only.split(",")]
    if a.rows:
        pats = a.rows.split(",")
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r["id"], p) for p in pats)]
    return rows


def sides(row, engines, torch):
    """The runs a row needs, as (impl, engine, precision); the first is the row's."""
    first = engines[0]
    if row["precision"] == "bf16":
        out = [("tlsweep", first, "bf16"), ("tlsweep", first, "fp32")]
    else:
        out = [("tlsweep", e, "fp32") for e in engines]
    if torch:
        out.insert(1, ("pytorch", None, "fp32"))
    return out


def key(row, side):
    impl, engine, prec = side
    return (row["backbone"], row["size"], row["mode"], impl, engine, prec)


def run(cmd, env):
    """Runs cmd; returns (its last JSON line or None, wall s, cpu s, error text)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = p.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        out = None
    err = None
    if p.returncode != 0 or out is None:
        tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        err = f"exit {p.returncode}: {tail}"
    return out, wall, cpu, err


def side_cmd(a, row, side):
    impl, engine, prec = side
    common = ["--backbone", row["backbone"], "--size", str(row["size"]), "--batch",
              str(a.batch), "--mode", row["mode"], "--steps", str(a.steps), "--warmup",
              str(a.warmup), "--threads", str(a.threads)]
    if impl == "pytorch":
        return ["/usr/bin/python3", os.path.join(HERE, "torch_bench.py")] + common
    return [a.bin] + common + ["--engine", engine, "--precision", prec]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else None


def paired_ratio(runs_a, runs_b, field="images_per_s"):
    """Median over the rounds in which both sides ran of a's field / b's."""
    rs = [runs_a[r][field] / runs_b[r][field] for r in runs_a
          if r in runs_b and runs_a[r][field] and runs_b[r][field]]
    return med(rs)


def fmt(x, spec, none="–"):
    return none if x is None else format(x, spec)


def summarise(runs, flop_per_image):
    """One side's figures over its rounds (runs: round -> JSON with wall, cpu)."""
    ips = [j["images_per_s"] for j in runs.values()]
    s = dict(rounds=len(runs), images_per_s=med(ips), spread=spread(ips),
             peak_rss_mib=med([j["peak_rss_mib"] for j in runs.values()]),
             faults_per_step=med([j.get("faults_per_step") for j in runs.values()]),
             first_step_faults=med([j.get("first_step_faults") for j in runs.values()]),
             median_step_s=med([j.get("median_step_s") for j in runs.values()]),
             cpu_per_wall=med([j["cpu_s"] / j["wall_s"] for j in runs.values()]),
             backend=sorted({j["backend"] for j in runs.values() if "backend" in j}))
    s["gflops"] = s["images_per_s"] * flop_per_image / 1e9 if flop_per_image and ips else None
    return s


def table(header, lines):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for ln in lines:
        print("| " + " | ".join(ln) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/tlsweep-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="runs of every side (median)")
    ap.add_argument("--quick", action="store_true", help="MobileNetV2 96 only")
    ap.add_argument("--rows", help="comma-separated row ids or patterns, e.g. 'resnet50-*'")
    ap.add_argument("--only", help="comma-separated backbones")
    ap.add_argument("--modes", default="train,infer", help="of train,frozen,infer")
    ap.add_argument("--engines", default="auto,openblas",
                    help="tlsweep engines; the first is the rows' own (default auto,openblas)")
    ap.add_argument("--no-bf16", action="store_true", help="leave out the bf16 rows")
    ap.add_argument("--no-torch", action="store_true", help="leave out PyTorch")
    ap.add_argument("--json", help="save every run's figures and the summary here")
    ap.add_argument("--keep-coretype", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ)
    if not a.keep_coretype:
        env.pop("OPENBLAS_CORETYPE", None)
    env["GLIBC_TUNABLES"] = TUNABLES
    env["OMP_NUM_THREADS"] = str(a.threads)
    engines = a.engines.split(",")
    rows = make_rows(a)
    if not rows:
        raise SystemExit("compare.py: no rows selected")
    precisions = ["fp32"] + (["bf16"] if any(r["precision"] == "bf16" for r in rows) else [])

    # ---- measure: rounds x (peak kernel, then every side of every row) ----
    peaks = {p: {} for p in precisions}        # precision -> round -> JSON
    results = {}                               # key -> round -> JSON (+ wall_s, cpu_s)
    errors = {}                                # key -> [error text]
    raw = []
    log = sys.stderr
    for r in range(a.rounds):
        for p in precisions:
            out, wall, cpu, err = run([a.bin, "--peak", "--threads", str(a.threads),
                                       "--precision", p], env)
            raw.append(dict(round=r, kind="peak", precision=p, result=out, error=err))
            if out and out.get("gflops"):
                peaks[p][r] = out
            if out and out.get("supported") is False:
                err = f"unsupported ({out.get('instruction')})"
            print(f"round {r + 1}/{a.rounds}: peak {p}: "
                  f"{fmt(out and out.get('gflops'), '.0f', err)} GFLOP/s", file=log, flush=True)
        done = set()
        for row in rows:
            order = sides(row, engines, not a.no_torch)
            for side in (order if r % 2 == 0 else order[::-1]):
                k = key(row, side)
                if k in done:
                    continue
                done.add(k)
                out, wall, cpu, err = run(side_cmd(a, row, side), env)
                raw.append(dict(round=r, kind="side", row=row["id"], impl=side[0],
                                engine=side[1], precision=side[2], wall_s=wall, cpu_s=cpu,
                                result=out, error=err))
                what = f"{row['backbone']} {row['size']} {row['mode']} {side[0]}" + (
                    f" {side[1]} {side[2]}" if side[0] == "tlsweep" else "")
                if err:
                    errors.setdefault(k, []).append(err)
                    print(f"round {r + 1}/{a.rounds}: {what}: FAILED {err}", file=log, flush=True)
                    continue
                results.setdefault(k, {})[r] = dict(out, wall_s=wall, cpu_s=cpu)
                print(f"round {r + 1}/{a.rounds}: {what}: {out['images_per_s']:.1f} img/s",
                      file=log, flush=True)

    # ---- summarise ----
    peak = {p: med([j["gflops"] for j in peaks[p].values()]) for p in precisions}
    peak_spread = {p: spread([j["gflops"] for j in peaks[p].values()]) for p in precisions}

    def flop(row):
        for side in sides(row, engines, False):
            for j in results.get(key(row, side), {}).values():
                if j.get("flop_per_image"):
                    return j["flop_per_image"]
        return None

    summary = {}
    for row in rows:
        for side in sides(row, engines, not a.no_torch):
            k = key(row, side)
            if k in results and k not in summary:
                summary[k] = summarise(results[k], flop(row))

    def pct(g, p):
        return 100 * g / peak[p] if g is not None and peak.get(p) else None

    lines, rows_out = [], []
    for row in rows:
        ss = sides(row, engines, not a.no_torch)
        own, ref = ss[0], key(row, ("pytorch", None, "fp32"))
        s = summary.get(key(row, own))
        t = summary.get(ref)
        res = results.get(key(row, own), {})
        fig = dict(id=row["id"], engine=own[1], precision=row["precision"], ours=s, torch=t,
                   pct_peak=pct(s and s["gflops"], row["precision"]),
                   pct_fp32_peak=pct(s and s["gflops"], "fp32"),
                   vs_torch=paired_ratio(res, results.get(ref, {})),
                   vs_openblas=None, vs_fp32=None)
        if row["precision"] == "bf16":
            fig["vs_fp32"] = paired_ratio(
                res, results.get(key(row, ("tlsweep", own[1], "fp32")), {}))
        elif own[1] != "openblas" and "openblas" in engines:
            fig["vs_openblas"] = paired_ratio(
                res, results.get(key(row, ("tlsweep", "openblas", "fp32")), {}))
        rows_out.append(fig)
        if s is None:
            lines.append([row["id"], own[1], "failed (below)"] + [""] * 12)
            continue
        lo, hi = s["spread"]
        lines.append([
            row["id"], own[1], f"{s['images_per_s']:.1f}", f"{lo:.1f}–{hi:.1f}",
            fmt(s["gflops"], ".0f"), fmt(fig["pct_peak"], ".0f") + "%",
            fmt(fig["pct_fp32_peak"], ".0f") + "%" if row["precision"] == "bf16" else "",
            fmt(t and t["images_per_s"], ".1f"), fmt(fig["vs_torch"], ".2f") + "x",
            fmt(fig["vs_openblas"], ".2f") + "x" if fig["vs_openblas"] else "",
            fmt(fig["vs_fp32"], ".2f") + "x" if fig["vs_fp32"] else "",
            f"{s['peak_rss_mib']:.0f}", fmt(t and t["peak_rss_mib"], ".0f"),
            fmt(s["faults_per_step"], ".1f"), f"{s['cpu_per_wall']:.2f}"])

    some = next((j for rr in results.values() for j in rr.values() if "blas" in j), {})
    tv = next((j.get("torch") for rr in results.values() for j in rr.values() if "torch" in j),
              None)
    print(f"threads {a.threads}, batch {a.batch}, {a.steps} timed steps after {a.warmup}, "
          f"{a.rounds} rounds; OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"GLIBC_TUNABLES={TUNABLES}")
    print(f"blas: {some.get('blas', '?')}; onednn: {some.get('onednn', '?')}; "
          f"torch: {tv or '–'}")
    for p in precisions:
        sp = peak_spread[p]
        print(f"peak {p}: " + (f"{peak[p]:.0f} GFLOP/s ({sp[0]:.0f}–{sp[1]:.0f} over "
                               f"{len(peaks[p])} rounds)" if sp else "not measured"))
    print()
    table(["row", "engine", "img/s", "min–max", "GFLOP/s", "% peak", "% fp32 peak",
           "torch img/s", "x torch", "x openblas", "x fp32", "MiB", "torch MiB",
           "faults/step", "cpu/wall"], lines)

    print()
    detail = []
    for k, s in summary.items():
        bb, size, mode, impl, engine, prec = k
        lo, hi = s["spread"]
        detail.append([f"{bb}-{size}-{mode}", impl if impl == "pytorch" else f"{engine} {prec}",
                       f"{s['images_per_s']:.1f}", f"{lo:.1f}–{hi:.1f}",
                       fmt(s["median_step_s"], ".3f"), fmt(s["gflops"], ".0f"),
                       f"{s['peak_rss_mib']:.0f}", fmt(s["faults_per_step"], ".1f"),
                       fmt(s["first_step_faults"], ".0f"), f"{s['cpu_per_wall']:.2f}",
                       " / ".join(s["backend"])])
    table(["config", "side", "img/s", "min–max", "median step s", "GFLOP/s", "MiB",
           "faults/step", "1st step faults", "cpu/wall", "backend"], detail)
    if errors:
        print()
    for k, errs in errors.items():
        print(f"failed: {' '.join(str(x) for x in k if x)}: {errs[-1]} "
              f"({len(errs)} of {a.rounds} rounds)")

    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(settings=dict(vars(a), tunables=TUNABLES,
                                         coretype=env.get("OPENBLAS_CORETYPE")),
                           peak=peak, peak_spread=peak_spread, rows=rows_out,
                           sides=[dict(zip(("backbone", "size", "mode", "impl", "engine",
                                            "precision"), k), **s) for k, s in summary.items()],
                           runs=raw), f, indent=1)


if __name__ == "__main__":
    main()
