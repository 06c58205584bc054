"""The measurements, each meant to run in its own fresh process (see :mod:`._worker`).

Every function returns a JSON-ready dict. Throughputs are medians over repetitions after warm-up runs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph import GraphSpec, batch_graphs, batch_stacked
from ._models import ModelUnavailable, build_bench_model
from ._shapes import SHAPES, BenchShape, synthetic_zoo
from ._timing import loadavg, peak_rss_mb, time_it

__all__ = ["measure_conversion", "measure_matmul", "measure_model", "measure_scaling", "measure_training", "linear_fit"]


# ---------------------------------------------------------------------------------------------- conversion
def measure_conversion(shape: str = "cnn", nets: int = 10_000, batch: int = 64, warmup: int = 1, reps: int = 5,
                       reference_nets: int = 256, seed: int = 0, profile: bool = True,
                       top_k: int = 8) -> dict[str, Any]:
    """Zoo conversion throughput: ``GraphSpec.stacked`` on ``nets`` flat parameter vectors at once.

    Also times ``batch_stacked`` over the converted zoo in batches of ``batch`` (what a loader does per
    step) and, for scale, the per-graph path (``spec.graph`` per net + ``batch_graphs``) on ``reference_nets``.
    """
    bshape = SHAPES[shape]
    spec = bshape.spec()
    flat = synthetic_zoo(spec, nets, seed=seed)
    rss_before = peak_rss_mb()
    t_conv = time_it(lambda: spec.stacked(flat), warmup, reps)
    x, e = spec.stacked(flat)
    n_batches = math.ceil(nets / batch)

    def batch_all() -> None:
        for i in range(n_batches):
            batch_stacked(spec, x[i * batch:(i + 1) * batch], e[i * batch:(i + 1) * batch])

    t_batch = time_it(batch_all, min(warmup, 1), max(1, min(reps, 3)))
    ref = flat[:reference_nets]

    def per_graph() -> None:
        graphs = [spec.graph(ref[i]) for i in range(ref.shape[0])]
        for i in range(0, len(graphs), batch):
            batch_graphs(graphs[i:i + batch])

    t_ref = time_it(per_graph, 0, 1)
    extra: dict[str, Any] = {}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as tprofile

        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            spec.stacked(flat)
        extra["profile_stacked_top_ops"] = _top_ops(prof, top_k)
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(min(n_batches, 20)):
                batch_stacked(spec, x[i * batch:(i + 1) * batch], e[i * batch:(i + 1) * batch])
        extra["profile_batch_stacked_top_ops"] = _top_ops(prof, top_k)
    return extra | {
        "shape": shape, "nets": nets, "num_params": spec.num_params, "num_nodes": spec.num_nodes,
        "num_edges": spec.num_edges, "kernel": spec.kernel_numel, "threads": torch.get_num_threads(),
        "stacked_seconds": t_conv, "stacked_nets_per_s": nets / t_conv["median"],
        "stacked_nets_per_cpu_s": nets / max(t_conv["cpu_median"], 1e-9),
        "stacked_bytes_out": int(x.numel() * x.element_size() + e.numel() * e.element_size()),
        "batch_stacked_batch": batch, "batch_stacked_nets_per_s": nets / t_batch["median"],
        "per_graph_reference_nets": int(ref.shape[0]),
        "per_graph_reference_nets_per_s": ref.shape[0] / t_ref["median"],
        "peak_rss_mb_before_conversion": rss_before, "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------------------------------------- matmul
def measure_matmul(n: int = 1024, warmup: int = 3, reps: int = 10, rows: int | None = None,
                   width: int = 128) -> dict[str, Any]:
    """Dense fp32 matmul FLOP/s on this machine: an n×n @ n×n product (2n³ FLOPs), and optionally the
    shape the message passing multiplies most, [rows, width] @ [width, width]."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    t = time_it(lambda: torch.mm(a, b, out=out), warmup, reps)
    res: dict[str, Any] = {"n": n, "threads": torch.get_num_threads(), "seconds": t,
                           "flops": 2 * n ** 3, "flop_per_s": 2 * n ** 3 / t["median"]}
    if rows:
        a2, b2 = torch.randn(rows, width, generator=gen), torch.randn(width, width, generator=gen)
        out2 = torch.empty(rows, width)
        t2 = time_it(lambda: torch.mm(a2, b2, out=out2), warmup, reps)
        res["tall"] = {"rows": rows, "width": width, "seconds": t2,
                       "flop_per_s": 2 * rows * width * width / t2["median"]}
    return res


# ---------------------------------------------------------------------------------------------- models
class _Data:
    """A pool of converted synthetic nets and per-step batches built with ``batch_stacked``."""

    def __init__(self, bshape: BenchShape, batch: int, pool_batches: int, seed: int):
        self.spec: GraphSpec = bshape.spec()
        self.batch = batch
        n = batch * pool_batches
        flat = synthetic_zoo(self.spec, n, seed=seed)
        self.x, self.e = self.spec.stacked(flat)
        gen = torch.Generator().manual_seed(seed + 1)
        if bshape.task == "classification":
            self.y = torch.randint(0, bshape.out_dim, (n,), generator=gen)
        else:
            self.y = torch.rand(n, bshape.out_dim, generator=gen)
        self.task = bshape.task
        self.pool_batches = pool_batches
        self.i = 0

    def next(self):
        k = self.i % self.pool_batches
        self.i += 1
        sl = slice(k * self.batch, (k + 1) * self.batch)
        return batch_stacked(self.spec, self.x[sl], self.e[sl], y=self.y[sl])

    def loss(self, out: Tensor, batch) -> Tensor:
        if self.task == "classification":
            return F.cross_entropy(out, batch.y)
        return F.mse_loss(out, batch.y)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, data: _Data) -> None:
    batch = data.next()
    out = model(batch)
    loss = data.loss(out, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _top_ops(prof, k: int) -> list[dict[str, Any]]:
    events = [ev for ev in prof.key_averages() if ev.self_cpu_time_total > 0]
    total = sum(ev.self_cpu_time_total for ev in events) or 1.0
    events.sort(key=lambda ev: ev.self_cpu_time_total, reverse=True)
    return [{"op": ev.key, "calls": int(ev.count), "self_cpu_ms": ev.self_cpu_time_total / 1e3,
             "cpu_total_ms": ev.cpu_time_total / 1e3, "self_pct": 100.0 * ev.self_cpu_time_total / total}
            for ev in events[:k]]


def _saved_tensors(net: nn.Module, data: _Data, batch, top_k: int = 8) -> dict[str, Any]:
    """Bytes autograd keeps for the backward pass of one training forward (distinct storages), by shape."""
    seen: dict[tuple[int, int], int] = {}
    by_shape: dict[str, list[int]] = {}

    def pack(t: Tensor) -> Tensor:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen[key] = key[1]
            entry = by_shape.setdefault(str(list(t.shape)), [0, 0])
            entry[0] += 1
            entry[1] += key[1]
        return t

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(batch)
        loss = data.loss(out, batch)
    total = sum(seen.values())
    loss.backward()
    net.zero_grad(set_to_none=True)
    top = sorted(by_shape.items(), key=lambda kv: kv[1][1], reverse=True)[:top_k]
    return {"total_mb": total / 2 ** 20, "tensors": len(seen),
            "top_shapes": [{"shape": k, "count": v[0], "mb": v[1] / 2 ** 20} for k, v in top]}


def measure_model(model: str = "monomial", shape: str = "cnn", batch: int = 64, hidden: int = 128,
                  layers: int = 4, warmup: int = 2, reps: int = 5, steps: int = 3, seed: int = 0,
                  flops: bool = True, profile: bool = False, profile_steps: int = 3, top_k: int = 12,
                  matmul_n: int = 1024) -> dict[str, Any]:
    """Training (forward + loss + backward + AdamW step) and inference throughput of one model on one shape.

    One repetition is ``steps`` steps of ``batch`` nets; nets/s is the median over ``reps`` repetitions
    after ``warmup`` steps. ``peak_rss_mb`` is the process's peak RSS right after the training runs (the
    process is fresh, so it is this configuration's peak). With ``flops``, the forward is run under
    ``FlopCounterMode`` and its achieved FLOP/s is set against a dense matmul timed in the same process.
    """
    bshape = SHAPES[shape]
    res: dict[str, Any] = {"model": model, "shape": shape, "batch": batch, "hidden": hidden, "layers": layers,
                           "threads": torch.get_num_threads(), "rss_mb_after_import": peak_rss_mb()}
    torch.manual_seed(seed)
    data = _Data(bshape, batch, pool_batches=4, seed=seed)
    try:
        net = build_bench_model(model, bshape.out_dim, hidden, layers, depth=len(data.spec.layers))
    except ModelUnavailable as exc:
        res.update(status="skipped", reason=str(exc))
        return res
    with torch.no_grad():  # materialises lazily built parameters before the optimiser sees them
        net(data.next())
    res["parameters"] = int(sum(p.numel() for p in net.parameters()))
    if getattr(net, "edge_dim", None) is not None:
        res["edge_dim"] = int(net.edge_dim)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    res["rss_mb_after_setup"] = peak_rss_mb()
    res["loadavg_start"] = loadavg()

    net.train()
    t_train = time_it(lambda: [_train_step(net, opt, data) for _ in range(steps)], warmup, reps)
    res["train_seconds_per_step"] = {k: (v / steps if not isinstance(v, list) else [r / steps for r in v])
                                     for k, v in t_train.items()}
    res["train_nets_per_s"] = steps * batch / t_train["median"]
    res["train_nets_per_cpu_s"] = steps * batch / max(t_train["cpu_median"], 1e-9)
    res["peak_rss_mb"] = peak_rss_mb()
    res["peak_rss_mb_above_import"] = res["peak_rss_mb"] - res["rss_mb_after_import"]

    net.eval()
    fixed = data.next()
    with torch.no_grad():
        t_inf = time_it(lambda: net(fixed), warmup, max(reps, 3) * steps)
    res["infer_seconds_per_batch"] = t_inf
    res["infer_nets_per_s"] = batch / t_inf["median"]
    res["infer_nets_per_cpu_s"] = batch / max(t_inf["cpu_median"], 1e-9)
    res["cpu_share"] = t_train["cpu_median"] / (t_train["median"] * res["threads"])
    res["peak_rss_mb_with_inference"] = peak_rss_mb()

    if flops:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            net(fixed)
        fwd = int(fc.get_total_flops())
        by_op = {str(k): int(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}
        net.train()
        with FlopCounterMode(display=False) as fc2:
            out = net(fixed)
            data.loss(out, fixed).backward()
        net.zero_grad(set_to_none=True)
        train_flops = int(fc2.get_total_flops())
        mm = measure_matmul(n=matmul_n, rows=batch * data.spec.num_edges, width=hidden)
        fwd_rate = fwd / t_inf["median"]
        fwd_cpu_rate = fwd / max(t_inf["cpu_median"], 1e-9)
        mm_cpu_rate = mm["flops"] / max(mm["seconds"]["cpu_median"], 1e-9)
        res["flops"] = {
            "forward_flops_per_batch": fwd, "forward_flops_by_op": by_op,
            "forward_flop_per_s": fwd_rate,
            "train_flops_per_step": train_flops,
            "train_flop_per_s": train_flops / (t_train["median"] / steps),
            "matmul": mm, "forward_vs_matmul": fwd_rate / mm["flop_per_s"],
            "forward_vs_tall_matmul": fwd_rate / mm["tall"]["flop_per_s"],
            "forward_flop_per_cpu_s": fwd_cpu_rate, "matmul_flop_per_cpu_s": mm_cpu_rate,
            "forward_vs_matmul_cpu_time": fwd_cpu_rate / mm_cpu_rate,
            "note": "FlopCounterMode counts matmul/conv-type ops only (mm, addmm, bmm, ...); gathers, "
                    "index_add_ and elementwise work are not counted as FLOPs",
        }
    res["saved_for_backward"] = _saved_tensors(net, data, fixed)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as tprofile

        net.train()
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(profile_steps):
                _train_step(net, opt, data)
        res["profile_train_top_ops"] = _top_ops(prof, top_k)
        net.eval()
        with torch.no_grad(), tprofile(activities=[ProfilerActivity.CPU]) as prof2:
            for _ in range(profile_steps):
                net(fixed)
        res["profile_infer_top_ops"] = _top_ops(prof2, top_k)
    res["loadavg_end"] = loadavg()
    res["status"] = "ok"
    return res


# ---------------------------------------------------------------------------------------------- training
def measure_training(config: dict[str, Any], epochs: int = 1) -> dict[str, Any]:
    """Peak memory and time of training one run configuration for ``epochs`` epoch(s), in this process.

    ``config`` is a :class:`~monomial_gmn.train.TrainConfig` as a dict (what ``RUN/config.json`` holds): the
    real zoo, split, batch size, model and ``model_kwargs``, so feature and probe readouts, normaliser fitting
    and the end-of-epoch evaluation are all counted. The run goes to a temporary directory that is removed
    afterwards; ``epochs`` replaces the configured number (the peak is reached in the first epoch: every
    training and validation net has been featurised and every step has the same shapes) and early stopping
    is off. Run it in a fresh process (``run_in_subprocess({"kind": "training", "kwargs": {"config": ...}})``,
    what ``experiments/generalization.py --memory`` does) so that ``peak_rss_mb`` is this configuration's own.

    Returns ``peak_rss_mb`` (the process's peak RSS, MiB), ``peak_rss_mb_above_import`` (minus the RSS after
    importing the library), ``train_seconds``, ``steps``, ``params`` and, when the run used CUDA,
    ``cuda_peak_allocated_mb``.
    """
    import tempfile

    from ..train import TrainConfig, train

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    res: dict[str, Any] = {"rss_mb_after_import": peak_rss_mb(), "threads": torch.get_num_threads(),
                           "epochs": int(epochs)}
    with tempfile.TemporaryDirectory(prefix="monomial-gmn-mem-") as tmp:
        cfg = TrainConfig.from_dict({**config, "epochs": int(epochs), "patience": 0, "out": str(Path(tmp) / "run")})
        res.update(model=cfg.model, model_kwargs=dict(cfg.model_kwargs), batch_size=cfg.batch_size,
                   activation=cfg.activation, train_with=list(cfg.train_with))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = train(cfg, progress=False)
        res["train_seconds"] = time.perf_counter() - t0
        res["peak_rss_mb"] = peak_rss_mb()
        if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
            res["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    res["peak_rss_mb_above_import"] = res["peak_rss_mb"] - res["rss_mb_after_import"]
    res.update(steps=int(result["steps"]), params=int(result["params"]), train_nets=int(result["nets"]["train"]),
               status="ok")
    return res


# ---------------------------------------------------------------------------------------------- scaling
def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares ``y = slope·x + intercept`` with R², and the log–log exponent (1 for linear growth)."""
    n = len(xs)
    if n < 2:
        raise ValueError("linear_fit needs at least two points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx > 0 else float("nan")
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - slope * x - intercept) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    out = {"slope": slope, "intercept": intercept, "r2": r2}
    if all(x > 0 for x in xs) and all(y > 0 for y in ys):
        lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
        mlx, mly = sum(lx) / n, sum(ly) / n
        slx = sum((a - mlx) ** 2 for a in lx)
        out["loglog_exponent"] = (sum((a - mlx) * (b - mly) for a, b in zip(lx, ly)) / slx) if slx > 0 else float("nan")
    return out


def measure_scaling(sizes: list[int], model: str | None = "monomial", shape: str = "cnn", mode: str = "infer",
                    batch: int = 64, hidden: int = 32, layers: int = 2, seed: int = 0,
                    progress: bool = False) -> dict[str, Any]:
    """Epoch time against zoo size.

    An epoch streams the zoo (flat parameters [n, P], as a zoo file holds them) in batches: ``stacked`` on
    the batch's rows, ``batch_stacked``, then the model (``mode``: ``"infer"`` forward only, ``"train"`` a
    full AdamW step) or nothing (``"convert"``; also the fallback when the model cannot be built). The data
    path (conversion + batching) is timed separately inside the same epoch, so one pass gives two fits.
    """
    if mode not in ("infer", "train", "convert"):
        raise ValueError(f"scaling mode must be infer, train or convert, got {mode!r}")
    bshape = SHAPES[shape]
    spec = bshape.spec()
    res: dict[str, Any] = {"shape": shape, "batch": batch, "mode": mode,
                           "model": (model or "monomial") if mode != "convert" else None,
                           "hidden": hidden, "layers": layers, "threads": torch.get_num_threads()}
    net = None
    if mode != "convert":
        torch.manual_seed(seed)
        try:
            net = build_bench_model(model or "monomial", bshape.out_dim, hidden, layers, depth=len(spec.layers))
        except ModelUnavailable as exc:
            res.update(mode="convert", model=None, fallback_reason=str(exc))
    mode = res["mode"]
    sizes = sorted(int(s) for s in sizes)
    flat = synthetic_zoo(spec, sizes[-1], seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    if bshape.task == "classification":
        y = torch.randint(0, bshape.out_dim, (sizes[-1],), generator=gen)
    else:
        y = torch.rand(sizes[-1], bshape.out_dim, generator=gen)
    if net is not None:
        x0, e0 = spec.stacked(flat[:batch])
        with torch.no_grad():  # materialises lazily built parameters
            net(batch_stacked(spec, x0, e0))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4) if net is not None and mode == "train" else None
    if net is not None:
        net.train(mode == "train")
    data_time = [0.0]

    def step(rows: slice) -> None:
        t0 = time.perf_counter()
        x, e = spec.stacked(flat[rows])
        b = batch_stacked(spec, x, e, y=y[rows])
        data_time[0] += time.perf_counter() - t0
        if net is None:
            return
        if opt is None:
            with torch.no_grad():
                net(b)
            return
        out = net(b)
        loss = F.cross_entropy(out, b.y) if bshape.task == "classification" else F.mse_loss(out, b.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(2):  # warm-up
        step(slice(i * batch, (i + 1) * batch))
    points = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(sizes), desc=f"scaling ({mode})", unit="net", leave=False)
    for n in sizes:
        la = loadavg()
        data_time[0] = 0.0
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            step(slice(start, min(start + batch, n)))
            if bar is not None:
                bar.update(min(batch, n - start))
        dt = time.perf_counter() - t0
        points.append({"nets": n, "seconds": dt, "nets_per_s": n / dt, "data_seconds": data_time[0],
                       "loadavg": la})
    if bar is not None:
        bar.close()
    res["points"] = points
    res["fit"] = linear_fit([p["nets"] for p in points], [p["seconds"] for p in points])
    res["data_fit"] = linear_fit([p["nets"] for p in points], [p["data_seconds"] for p in points])
    res["peak_rss_mb"] = peak_rss_mb()
    return res
