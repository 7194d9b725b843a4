"""The PyTorch side of the benchmark: same model, batch, mode and thread
count as tlsweep-bench, one configuration per process, one JSON line out.
Run with Debian's python (/usr/bin/python3) and, for PyTorch at its best on
these VMs, GLIBC_TUNABLES that stop glibc from unmapping big buffers every
step (bench/compare.py sets it)."""
import argparse
import json
import resource
import statistics
import time

import torch
import torchvision


def backbone(name):
    if name == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(weights=None).features
    if name == "resnet50":
        m = torchvision.models.resnet50(weights=None)
        return torch.nn.Sequential(*list(m.children())[:-2])
    if name == "vgg16":
        return torchvision.models.vgg16(weights=None).features
    if name == "inception_v3":
        m = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        return torch.nn.Sequential(*[c for n, c in m.named_children()
                                     if n not in ("avgpool", "dropout", "fc")])
    raise SystemExit(f"unknown backbone {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--mode", default="train", choices=["train", "frozen", "infer"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    base = backbone(a.backbone)
    with torch.no_grad():
        c = base(torch.zeros(1, 3, a.size, a.size)).shape[1]
    head = torch.nn.Linear(c, 10)
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
    y = torch.arange(a.batch) % 10
    loss_fn = torch.nn.CrossEntropyLoss()
    base.eval()  # BN in inference mode, as tlsweep's fine-tune default
    if a.mode == "train":
        params = list(base.parameters()) + list(head.parameters())
    else:
        params = list(head.parameters())
        for p in base.parameters():
            p.requires_grad_(False)
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def step():
        if a.mode == "infer":
            with torch.inference_mode():
                head(base(x).mean((2, 3)))
            return
        if a.mode == "frozen":
            with torch.no_grad():
                f = base(x).mean((2, 3))
        else:
            f = base(x).mean((2, 3))
        loss = loss_fn(head(f), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    # step 0 alone (first touch), then the timed steps; figures as tlsweep-bench's
    f0 = faults()
    first = None
    times = []
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            f_timed, t0 = faults(), time.perf_counter()
        ts = time.perf_counter()
        step()
        if s >= a.warmup:
            times.append(time.perf_counter() - ts)
        if s == 0:
            first = faults() - f0
    dt = time.perf_counter() - t0
    f_steps = faults() - f_timed
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "pytorch", "backbone": a.backbone, "size": a.size,
                      "batch": a.batch, "mode": a.mode, "threads": a.threads,
                      "images_per_s": a.batch * a.steps / dt, "peak_rss_mib": rss,
                      "torch": torch.__version__, "steps": a.steps, "warmup": a.warmup,
                      "mean_step_s": dt / a.steps, "median_step_s": statistics.median(times),
                      "faults_per_step": f_steps / a.steps, "first_step_faults": first}))

if __name__ == "__main__":
    main()
