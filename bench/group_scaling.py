#!/usr/bin/python3
"""Groups of ranks on paper: what a trial trained by N nodes would gain, from the
figures bench/group_bench.c measured on this machine.

    mpirun -np 2 --bind-to none build/tlsweep-group-bench > group.jsonl
    /usr/bin/python3 bench/group_scaling.py group.jsonl           # Markdown tables
    /usr/bin/python3 bench/group_scaling.py group.jsonl --json    # the same figures as JSON

Printed: the figures measured here (medians over the rounds); the expected speed-up of
one trial's training step on 1..64 nodes for each model and network; and the wall time
of a 6-trial fine-tune sweep on 16 nodes without groups and with `ranks_per_trial: auto`.

The model (the assumptions docs/benchmarks.md states beside the tables):
- a node is this machine (2 cores): its step time T1 is the measured one-rank step of the
  global batch (32 images, 224 px, fine-tune, 2 threads), of which T_opt (the measured
  Adam step over the model's weights, 1 thread) is the optimizer;
- a group of n nodes trains the global batch as tlsweep does (batch_size is the global
  batch: the math does not depend on n): each member computes ceil(B/n)/B of the forward
  and backward work (linear in images: an upper bound, small per-member batches use the
  cores less well), every member runs the whole optimizer step, and the group is capped
  at B members (a member needs a row);
- the gradient sum is a ring allreduce, not overlapped with the backward pass:
  2(n-1)/n * bytes / bandwidth + 2(n-1) * latency, plus the control allreduce of a few
  doubles, 2(n-1) * latency, every step;
- "per-node batch" rows instead keep B images per node (global batch B*n, as data-parallel
  scripts usually scale): throughput speed-up n * T1 / (T1 + allreduce(n)).
"""
import argparse
import json
import math
import sys

NODES = [1, 2, 4, 8, 16, 32, 64]
# name: (bandwidth bytes/s, latency s)
NETWORKS = {
    "InfiniBand 100 Gb/s": (12e9, 2e-6),
    "10 GbE": (1.1e9, 20e-6),
}
MODEL_NAMES = {"mobilenet_v2": "MobileNetV2", "resnet50": "ResNet50", "vgg16": "VGG16"}
# the 6-trial sweep: 6 fine-tune trials of one model, 16 nodes
SWEEP_TRIALS, SWEEP_NODES, SWEEP_EPOCHS, SWEEP_IMAGES = 6, 16, 10, 50000


def load(path):
    """The peak, the models and the small-message latencies of one run."""
    peak, models, latency = None, {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            o = json.loads(line)
            if o.get("impl") == "peak":
                peak = o
            elif o.get("what") == "model":
                models[o["backbone"]] = o
            elif o.get("what") == "latency":
                latency[o["bytes"]] = o["allreduce_s_median"]
    if not models:
        sys.exit("group_scaling.py: %s has no model figures (run tlsweep-group-bench first)" % path)
    return peak, models, latency


def ring_allreduce(nbytes, n, bw, lat):
    """seconds of one ring allreduce of nbytes over n ranks"""
    if n <= 1:
        return 0.0
    return 2.0 * (n - 1) / n * nbytes / bw + 2.0 * (n - 1) * lat


def comm_per_step(m, n, bw, lat):
    """the gradient sum and the control allreduce of one step"""
    return ring_allreduce(m["gradient_bytes"], n, bw, lat) + ring_allreduce(32, n, bw, lat)


def step_fixed_global(m, n, bw, lat):
    """one step of the global batch on a group of n nodes (capped at the batch)"""
    g = min(n, m["batch"])
    t1, t_opt = m["one_step_s_median"], min(m["adam_s_median"], m["one_step_s_median"])
    rows = math.ceil(m["batch"] / g)
    return (t1 - t_opt) * rows / m["batch"] + t_opt + comm_per_step(m, g, bw, lat)


def speedup_fixed_global(m, n, bw, lat):
    return m["one_step_s_median"] / step_fixed_global(m, n, bw, lat)


def speedup_per_node(m, n, bw, lat):
    t1 = m["one_step_s_median"]
    return n * t1 / (t1 + comm_per_step(m, n, bw, lat))


def sweep_wall(m, groups, bw, lat, regroup):
    """Seconds of SWEEP_TRIALS trials of SWEEP_EPOCHS epochs that start on `groups`
    (group sizes). regroup: at each epoch boundary a trial takes the nodes that
    finished trials freed, shared out one at a time to the trial with the most remaining
    epochs per node (the coordinator's `auto` rule); joining costs nothing here."""
    steps = math.ceil(SWEEP_IMAGES / m["batch"])
    epoch_s = lambda g: steps * step_fixed_global(m, g, bw, lat)
    trials = [{"g": g, "left": SWEEP_EPOCHS, "join": 0, "t": epoch_s(g)} for g in groups]
    idle, now = SWEEP_NODES - sum(groups), 0.0
    while any(t["left"] for t in trials):
        run = [t for t in trials if t["left"]]
        dt = min(t["t"] for t in run)
        now += dt
        for t in run:
            t["t"] -= dt
        for t in run:
            if t["t"] > 1e-9:
                continue
            t["left"] -= 1
            if t["left"] == 0:
                idle += t["g"] + t["join"]
                t["g"] = t["join"] = 0
                continue
            t["g"] += t["join"]
            t["join"] = 0
            t["t"] = epoch_s(t["g"])
        while regroup and idle > 0:
            open_ = [t for t in trials if t["left"] and t["g"] + t["join"] < m["batch"]]
            if not open_:
                break
            best = max(open_, key=lambda t: t["left"] / (t["g"] + t["join"]))
            best["join"] += 1
            idle -= 1
    return now


def auto_groups():
    """how `auto` shares 16 nodes among 6 startable trials: ceil(idle / startable) first"""
    groups, idle = [], SWEEP_NODES
    for k in range(SWEEP_TRIALS, 0, -1):
        g = math.ceil(idle / k)
        groups.append(g)
        idle -= g
    return groups


def fit_here(models, latency):
    """this machine's 2-rank allreduce (shared memory): the latency from the smallest
    message (2(n-1) latencies), the bandwidth the best of the messages of 1 MiB and more
    (a loaded round only lowers it)"""
    lat = latency[min(latency)] / 2.0 if latency else 0.0
    sizes = [(b, t) for b, t in latency.items() if b >= 1 << 20]
    sizes += [(m["gradient_bytes"], m["allreduce_s_median"]) for m in models.values()]
    return max(b / max(t - 2 * lat, 1e-12) for b, t in sizes), lat


def fmt_s(s):
    if s >= 3600:
        return "%.1f h" % (s / 3600)
    if s >= 1:
        return "%.2f s" % s
    if s >= 1e-3:
        return "%.1f ms" % (s * 1e3)
    return "%.1f µs" % (s * 1e6)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def measured_table(peak, models):
    out = ["| model | trainable params | gradient | allreduce (2 ranks) | bus bandwidth | "
           "one rank × %d threads (cpu/wall) | 2 ranks × 1 thread | 2 ranks / 1 rank (img/s) | "
           "comm share (leader, waits incl.) | allreduce share | Adam step | Bcast of weights |"
           % next(iter(models.values()))["threads_one"],
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, m in models.items():
        ar = m["allreduce_s_median"]
        n = m["ranks"]
        busbw = m["gradient_bytes"] / ar * 2 * (n - 1) / n
        # the median of the rounds' ratios: drift hits both sides of a round alike
        ratio = median([a / b for a, b in zip(m["one_step_s"], m["group_step_s"])])
        out.append("| %s | %s | %.1f MB | %s | %.1f GB/s | %s, %.1f img/s (%.2f) | %s, %.1f img/s | "
                   "%.2f× | %.1f%% | %.1f%% | %s | %s |" % (
                       MODEL_NAMES.get(k, k), "{:,}".format(m["trainable_params"]),
                       m["gradient_bytes"] / 1e6, fmt_s(ar), busbw / 1e9,
                       fmt_s(m["one_step_s_median"]), m["batch"] / m["one_step_s_median"],
                       m.get("one_cpu_per_wall_median", float("nan")),
                       fmt_s(m["group_step_s_median"]), m["batch"] / m["group_step_s_median"],
                       ratio, 100 * m["group_comm_s_median"] / m["group_step_s_median"],
                       100 * ar / m["group_step_s_median"],
                       fmt_s(m["adam_s_median"]), fmt_s(m["bcast_s_median"])))
    if peak and peak.get("gflops"):
        out.append("")
        out.append("FMA peak of the same run: %.1f GFLOP/s fp32 on %d threads." % (
            peak["gflops"], peak["threads"]))
    return out


def latency_table(latency):
    out = ["| message | " + " | ".join(("%d B" % b if b < 1024 else "%d KiB" % (b // 1024)
                                       if b < 1048576 else "%d MiB" % (b // 1048576))
                                      for b in sorted(latency)) + " |",
           "| --- |" + " --- |" * len(latency),
           "| allreduce, 2 ranks | " + " | ".join(fmt_s(latency[b]) for b in sorted(latency)) + " |"]
    return out


def speedup_table(models, fn, label):
    out = ["| model | network | " + " | ".join("%d" % n for n in NODES) + " |",
           "| --- | --- |" + " --- |" * len(NODES)]
    for k, m in models.items():
        for net, (bw, lat) in NETWORKS.items():
            out.append("| %s | %s | " % (MODEL_NAMES.get(k, k), net) +
                       " | ".join("%.2f" % fn(m, n, bw, lat) for n in NODES) + " |")
    return ["%s:" % label, ""] + out


def sweep_table(models):
    groups = auto_groups()
    out = ["| model | network | one trial per node (6 busy, 10 idle) | auto %s, kept | "
           "auto, regrouped at epoch ends | gain |" % ",".join(map(str, groups)),
           "| --- | --- | --- | --- | --- | --- |"]
    for k, m in models.items():
        for net, (bw, lat) in NETWORKS.items():
            alone = sweep_wall(m, [1] * SWEEP_TRIALS, bw, lat, False)
            kept = sweep_wall(m, groups, bw, lat, False)
            regroup = sweep_wall(m, groups, bw, lat, True)
            out.append("| %s | %s | %s | %s | %s | %.2f× |" % (
                MODEL_NAMES.get(k, k), net, fmt_s(alone), fmt_s(kept), fmt_s(regroup),
                alone / regroup))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl", help="tlsweep-group-bench's output")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    peak, models, latency = load(a.jsonl)
    bw_here, lat_here = fit_here(models, latency)
    if a.json:
        json.dump({
            "here": {"bandwidth_bytes_per_s": bw_here, "latency_s": lat_here},
            "speedup_global_batch": {k: {net: [speedup_fixed_global(m, n, *p) for n in NODES]
                                         for net, p in NETWORKS.items()} for k, m in models.items()},
            "speedup_per_node_batch": {k: {net: [speedup_per_node(m, n, *p) for n in NODES]
                                           for net, p in NETWORKS.items()} for k, m in models.items()},
            "sweep_s": {k: {net: {"alone": sweep_wall(m, [1] * SWEEP_TRIALS, *p, False),
                                  "auto_kept": sweep_wall(m, auto_groups(), *p, False),
                                  "auto_regrouped": sweep_wall(m, auto_groups(), *p, True)}
                            for net, p in NETWORKS.items()} for k, m in models.items()},
        }, sys.stdout, indent=2)
        print()
        return
    rounds = len(next(iter(models.values()))["allreduce_s"])
    lines = ["Measured here (medians of %d rounds; the ratio is the median of the rounds' ratios):"
             % rounds, ""]
    lines += measured_table(peak, models) + [""] + latency_table(latency) + [""]
    lines.append("This machine's 2-rank allreduce: latency %s, bandwidth up to %.1f GB/s." % (
        fmt_s(lat_here), bw_here / 1e9))
    lines.append("")
    lines += speedup_table(models, speedup_fixed_global,
                           "Speed-up of one trial's step, global batch fixed at %d (tlsweep's rule)"
                           % next(iter(models.values()))["batch"])
    lines.append("")
    lines += speedup_table(models, speedup_per_node,
                           "Throughput speed-up with %d images per node (global batch grows with the nodes)"
                           % next(iter(models.values()))["batch"])
    lines.append("")
    lines.append("A sweep of %d fine-tune trials, %d epochs of %d images each, on %d nodes:" % (
        SWEEP_TRIALS, SWEEP_EPOCHS, SWEEP_IMAGES, SWEEP_NODES))
    lines.append("")
    lines += sweep_table(models)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
