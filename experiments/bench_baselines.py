"""Parameter count, peak memory and training throughput of every registered model on Small-CNN-Zoo-shaped graphs.

    python experiments/bench_baselines.py                       # all models, batch 64, hidden 128, 4 layers
    python experiments/bench_baselines.py --models gmn,np --reps 3

Each model runs in a fresh process (so ``ru_maxrss`` is that model's peak): random nets of the Small CNN Zoo
architecture (Conv2d(1,16,3,s2)-ReLU-Conv2d(16,16,3,s2)-ReLU-Conv2d(16,16,3,s2)-ReLU-GAP-Linear(16,10):
59 nodes, 688 edges, 3×3 kernels) converted with ``GraphSpec.stacked``/``batch_stacked``; one training step is
forward + MSE loss + backward + AdamW step; throughput is the median over ``--reps`` timed steps after two
warm-up steps. ``statnn-gbm`` reports feature extraction throughput and the time to fit 1,024 nets.
Prints a Markdown table (and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def batches(n_batches: int, batch: int, seed: int = 0):
    from monomial_gmn.graph import batch_stacked, graph_spec

    spec = graph_spec(cnn())
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        flat = torch.randn(batch, spec.num_params, generator=gen) * 0.3
        x, e = spec.stacked(flat)
        out.append(batch_stacked(spec, x, e, y=torch.rand(batch, generator=gen)))
    return out


def measure(name: str, batch: int, hidden: int, layers: int, reps: int) -> dict:
    from monomial_gmn.models import build_model, count_parameters

    torch.manual_seed(0)
    data = batches(4, batch)
    rss0 = peak_rss_mb()
    if name == "statnn-gbm":
        model = build_model(name, out_dim=1, max_iter=200)
        t = time.perf_counter()
        feats = [model.features(b) for b in data]
        feat_s = (time.perf_counter() - t) / len(data)
        big = batches(16, 64, seed=1)
        t = time.perf_counter()
        model.fit(big)
        fit_s = time.perf_counter() - t
        return {"model": name, "params": count_parameters(model), "peak_rss_mb": round(peak_rss_mb(), 1),
                "rss_before_mb": round(rss0, 1), "feature_nets_per_s": round(batch / feat_s, 1),
                "fit_1024_nets_s": round(fit_s, 2), "features": int(feats[0].shape[1])}
    model = build_model(name, out_dim=1, hidden_dim=hidden, num_layers=layers)
    if hasattr(model, "fit_normalizer"):
        model.fit_normalizer(iter(data))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step(b):
        opt.zero_grad(set_to_none=True)
        loss = ((model(b).reshape(-1) - b.y) ** 2).mean()
        loss.backward()
        opt.step()

    for i in range(2):
        step(data[i % len(data)])
    times, cpu = [], []
    for i in range(reps):
        t, c = time.perf_counter(), time.process_time()
        step(data[i % len(data)])
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    med, cmed = statistics.median(times), statistics.median(cpu)
    return {"model": name, "params": count_parameters(model), "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_before_mb": round(rss0, 1), "train_step_s": round(med, 4), "train_step_cpu_s": round(cmed, 4),
            "train_nets_per_s": round(batch / med, 1), "train_nets_per_cpu_s": round(batch / cmed, 1),
            "threads": torch.get_num_threads()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="monomial,gmn,np,statnn,statnn-gbm")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time per step is then "
                   "meaningful on a shared machine; 0 = torch's default)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        if a.threads:
            torch.set_num_threads(a.threads)
        print(json.dumps(measure(a.worker, a.batch, a.hidden, a.layers, a.reps)))
        return 0
    rows = []
    for name in a.models.split(","):
        cmd = [sys.executable, __file__, "--worker", name, "--batch", str(a.batch), "--hidden", str(a.hidden),
               "--layers", str(a.layers), "--reps", str(a.reps), "--threads", str(a.threads)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            rows.append({"model": name, "error": r.stderr.strip().splitlines()[-1] if r.stderr else "failed"})
        else:
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"\nSmall-CNN-Zoo graphs, batch {a.batch}, hidden {a.hidden}, {a.layers} layers, one AdamW step, "
          f"{a.threads or 'default'} thread(s), load average {open('/proc/loadavg').read().split()[0]}\n")
    print("| model | parameters | peak RSS (MiB) | train nets/s (wall) | train nets per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | error: {r['error']} | | | |")
        elif r["model"] == "statnn-gbm":
            print(f"| {r['model']} | {r['params']:,} tree nodes | {r['peak_rss_mb']} | feature extraction "
                  f"{r['feature_nets_per_s']} nets/s | fit 1,024 nets: {r['fit_1024_nets_s']} s |")
        else:
            print(f"| {r['model']} | {r['params']:,} | {r['peak_rss_mb']} | {r['train_nets_per_s']} | "
                  f"{r['train_nets_per_cpu_s']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
