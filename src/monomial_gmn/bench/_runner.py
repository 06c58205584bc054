"""The benchmark driver: configuration, one fresh process per measurement, targets, JSON result."""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ._models import bench_model_names
from ._shapes import SHAPES
from ._timing import loadavg, machine_info
from ._worker import run_in_subprocess, run_task

__all__ = ["BenchConfig", "TARGETS", "run_bench", "check_targets", "quick_config", "plan_tasks"]

#: The targets on a 2-core CPU (ScaleGMN's public code: 29-37 nets/s training, 3.2 GB peak, ~3,200 nets/s
#: conversion, on the CNN shape, hidden 128, 4 layers, batch 64). Training: 5× ScaleGMN's 37 nets/s, with the
#: canonical form computed inside every timed step.
TARGETS: dict[str, dict[str, Any]] = {
    "train_nets_per_s": {"op": ">=", "value": 185.0, "unit": "nets/s",
                         "what": "training throughput, model 'monomial', CNN shape"},
    "peak_rss_mb": {"op": "<=", "value": 1024.0, "unit": "MiB",
                    "what": "peak RSS of the training process, model 'monomial', CNN shape"},
    "conversion_nets_per_s": {"op": ">=", "value": 50_000.0, "unit": "nets/s",
                              "what": "GraphSpec.stacked on the CNN zoo, one thread"},
    "forward_vs_matmul": {"op": ">=", "value": 0.40, "unit": "ratio",
                          "what": "achieved forward FLOP/s / dense matmul FLOP/s, model 'monomial', CNN shape"},
    "scaling_r2": {"op": ">=", "value": 0.99, "unit": "R^2",
                   "what": "linear fit of epoch time against zoo size"},
}


@dataclass
class BenchConfig:
    """What to measure. Defaults are the full benchmark (several minutes on 2 cores)."""

    models: list[str] = field(default_factory=lambda: list(bench_model_names()))
    shapes: list[str] = field(default_factory=lambda: list(SHAPES))
    batch: int = 64
    hidden: int = 128
    layers: int = 4
    threads: int = 0                      # 0: auto (see effective_threads)
    warmup: int = 2
    reps: int = 5
    steps: int = 1                        # training steps per repetition
    conversion_nets: int = 10_000
    conversion_threads: int = 1
    scaling_sizes: list[int] = field(default_factory=lambda: [1_000, 3_000, 10_000, 30_000])
    scaling_mode: str = "infer"           # infer | train | convert
    scaling_model: str | None = None      # None: the first of ``models`` ('monomial' when listed)
    scaling_shape: str | None = None      # None: the first of ``shapes`` ('cnn' when listed)
    scaling_hidden: int = 32              # a narrower model keeps 44k nets of epochs within minutes on 2 cores
    scaling_layers: int = 2
    flops: bool = True
    profile: bool = True                  # torch.profiler top ops for the 'monomial' model (first shape)
    matmul_n: int = 1024
    seed: int = 0
    timeout: float = 900.0                # per measurement process
    isolate: bool = True                  # fresh process per measurement (needed for honest peak RSS)
    malloc_mmap_threshold: int = 0        # >0: MALLOC_MMAP_THRESHOLD_ for the model processes (glibc; diagnostic)

    def validate(self) -> None:
        for name in ("batch", "hidden", "layers", "reps", "steps", "conversion_nets", "conversion_threads",
                     "matmul_n", "scaling_hidden", "scaling_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"bench: {name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0 or self.warmup < 0:
            raise ValueError("bench: threads and warmup must be >= 0")
        if not self.models:
            raise ValueError("bench: models is empty")
        if not self.shapes:
            raise ValueError("bench: shapes is empty")
        for s in self.shapes + ([self.scaling_shape] if self.scaling_shape is not None else []):
            if s not in SHAPES:
                raise ValueError(f"bench: unknown shape {s!r}; choose from {sorted(SHAPES)}")
        for m in self.models + ([self.scaling_model] if self.scaling_model is not None else []):
            if m not in bench_model_names():
                raise ValueError(f"bench: unknown model {m!r}; choose from {list(bench_model_names())}")
        if self.scaling_mode not in ("infer", "train", "convert"):
            raise ValueError(f"bench: scaling mode must be infer, train or convert, got {self.scaling_mode!r}")
        if self.scaling_sizes and (len(self.scaling_sizes) < 2 or min(self.scaling_sizes) < 1):
            raise ValueError("bench: give at least two positive scaling sizes (or none to skip scaling)")

    def scaling(self) -> tuple[str, str]:
        """The model and shape of the scaling measurement: as set, else the first of ``models`` / ``shapes``
        ('monomial' / 'cnn' when listed), so ``--models gmn`` measures no other model."""
        model = self.scaling_model or ("monomial" if "monomial" in self.models else self.models[0])
        shape = self.scaling_shape or ("cnn" if "cnn" in self.shapes else self.shapes[0])
        return model, shape

    def effective_threads(self) -> tuple[int, str]:
        """Threads for the model runs, and why. ``threads=0`` means auto: all cores on a quiet machine, one
        thread when the 1-minute load average already exceeds the core count — OpenMP's multi-threaded
        kernels then stall at every barrier on a descheduled partner thread (a 128×128 matmul measured 250×
        slower with 2 threads than with 1 on this shared 2-core machine under load 8)."""
        cores = os.cpu_count() or 1
        if self.threads:
            return self.threads, "set by --threads"
        la = loadavg()
        if la is not None and la[0] > cores:
            return 1, f"auto: 1-minute load {la[0]} > {cores} cores"
        return cores, f"auto: all {cores} cores (1-minute load {None if la is None else la[0]})"


def quick_config(**overrides: Any) -> BenchConfig:
    """A tiny setting that exercises every measurement in seconds (numbers meaningless)."""
    cfg = BenchConfig(models=["monomial"], shapes=["cnn"], batch=4, hidden=8, layers=1, warmup=1, reps=2,
                      steps=1, conversion_nets=256, scaling_sizes=[16, 32, 48], scaling_hidden=8, scaling_layers=1,
                      profile=True, matmul_n=128, timeout=300.0)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def _compare(op: str, measured: float, target: float) -> bool:
    return measured >= target if op == ">=" else measured <= target


def _applicable(key: str, cfg: dict[str, Any]) -> str | None:
    """Why a target does not apply to this configuration (None when it does)."""
    if key in ("train_nets_per_s", "peak_rss_mb", "forward_vs_matmul"):
        if (cfg.get("batch"), cfg.get("hidden"), cfg.get("layers")) != (64, 128, 4):
            return "target is for batch 64, hidden 128, 4 layers"
    if key == "conversion_nets_per_s" and (cfg.get("conversion_nets", 0) < 10_000 or cfg.get("conversion_threads") != 1):
        return "target is for 10,000 nets on one thread"
    if key == "scaling_r2" and max(cfg.get("scaling_sizes") or [0]) < 10_000:
        return "target is for zoos up to 10k-30k nets"
    return None


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its measured value and ``met`` (None when not measured or not applicable)."""
    measured: dict[str, float | None] = dict.fromkeys(TARGETS)
    conv = result.get("conversion") or {}
    if conv.get("status") == "ok" and conv.get("shape") == "cnn":
        measured["conversion_nets_per_s"] = conv["stacked_nets_per_s"]
    for r in result.get("models", []):
        if r.get("model") == "monomial" and r.get("shape") == "cnn" and r.get("status") == "ok":
            measured["train_nets_per_s"] = r["train_nets_per_s"]
            measured["peak_rss_mb"] = r["peak_rss_mb"]
            if "flops" in r:
                measured["forward_vs_matmul"] = r["flops"]["forward_vs_matmul"]
    sc = result.get("scaling") or {}
    if sc.get("status") == "ok":
        measured["scaling_r2"] = sc["fit"]["r2"]
    cfg = result.get("config") or {}
    out = {}
    for key, t in TARGETS.items():
        m = measured[key]
        why = _applicable(key, cfg)
        met = None if m is None or why is not None else _compare(t["op"], m, t["value"])
        out[key] = {**t, "measured": m, "met": met, "not_applicable": why}
    return out


def plan_tasks(cfg: BenchConfig, threads: int) -> list[tuple[str, dict[str, Any]]]:
    """The measurements of ``cfg`` in the order they run: ``[(label, task)]`` (see :func:`run_bench`)."""
    tasks: list[tuple[str, dict[str, Any]]] = []
    tasks.append(("conversion", {"kind": "conversion", "threads": cfg.conversion_threads, "kwargs": {
        "shape": "cnn", "nets": cfg.conversion_nets, "batch": cfg.batch, "warmup": 1,
        "reps": max(cfg.reps, 3), "reference_nets": min(256, cfg.conversion_nets), "seed": cfg.seed}}))
    model_tasks = []
    for shape in cfg.shapes:
        for model in cfg.models:
            model_tasks.append((f"model {model}/{shape}", {"kind": "model", "threads": threads, "kwargs": {
                "model": model, "shape": shape, "batch": cfg.batch, "hidden": cfg.hidden, "layers": cfg.layers,
                "warmup": cfg.warmup, "reps": cfg.reps, "steps": cfg.steps, "seed": cfg.seed,
                "flops": cfg.flops, "profile": cfg.profile and model == "monomial" and shape == cfg.shapes[0],
                "matmul_n": cfg.matmul_n},
                **({"env": {"MALLOC_MMAP_THRESHOLD_": cfg.malloc_mmap_threshold}} if cfg.malloc_mmap_threshold else {})}))
    # the targets' measurements first (monomial on the CNN shape, then scaling), so a cut-short run has them
    model_tasks.sort(key=lambda t: (t[1]["kwargs"]["model"], t[1]["kwargs"]["shape"]) != ("monomial", "cnn"))
    tasks += model_tasks[:1]
    if cfg.scaling_sizes:
        model, shape = cfg.scaling()
        tasks.append(("scaling", {"kind": "scaling", "threads": threads, "kwargs": {
            "sizes": list(cfg.scaling_sizes), "model": model, "shape": shape,
            "mode": cfg.scaling_mode, "batch": cfg.batch, "hidden": cfg.scaling_hidden, "layers": cfg.scaling_layers,
            "seed": cfg.seed}}))
    tasks += model_tasks[1:]
    return tasks


def run_bench(cfg: BenchConfig, progress: bool = True, command: str | None = None,
              log: Callable[[str], None] | None = None,
              on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every measurement of ``cfg`` (each in a fresh process unless ``cfg.isolate`` is False).

    ``on_update(result)`` is called after every measurement with the result so far (targets checked), so
    a caller can save partial results of a long run.

    Returns a JSON-ready dict with keys ``meta``, ``config``, ``conversion``, ``models``, ``scaling``,
    ``targets``.
    """
    cfg.validate()
    threads, threads_why = cfg.effective_threads()
    tasks = plan_tasks(cfg, threads)
    started = _dt.datetime.now(_dt.timezone.utc)
    result: dict[str, Any] = {
        "meta": {"command": command or " ".join(sys.argv), "date_utc": started.isoformat(timespec="seconds"),
                 "machine": machine_info(), "loadavg_start": loadavg(), "isolated_processes": cfg.isolate},
        "config": asdict(cfg) | {"threads_used": threads, "threads_reason": threads_why,
                                 **dict(zip(("scaling_model", "scaling_shape"), cfg.scaling()))},
        "conversion": None, "models": [], "scaling": None,
    }
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="bench", unit="run", file=sys.stderr)
    for label, task in tasks:
        if bar is not None:
            bar.set_postfix_str(label)
        t0 = time.perf_counter()
        if cfg.isolate:
            out = run_in_subprocess(task, timeout=cfg.timeout)
        else:
            import torch

            before = torch.get_num_threads()
            try:
                out = run_task(task)
            except Exception as exc:  # report, keep going with the other measurements
                out = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            finally:
                torch.set_num_threads(before)
        out.setdefault("status", "ok")
        out["wall_seconds"] = time.perf_counter() - t0
        if task["kind"] == "conversion":
            result["conversion"] = out
        elif task["kind"] == "scaling":
            result["scaling"] = out
        else:
            out.setdefault("model", task["kwargs"]["model"])
            out.setdefault("shape", task["kwargs"]["shape"])
            result["models"].append(out)
        if log is not None and out.get("status") != "ok":
            log(f"{label}: {out['status']}: {out.get('reason', '')}")
        if bar is not None:
            bar.update(1)
        if on_update is not None:
            result["meta"]["loadavg_end"] = loadavg()
            result["targets"] = check_targets(result)
            on_update(result)
    if bar is not None:
        bar.close()
    result["meta"]["loadavg_end"] = loadavg()
    result["meta"]["wall_seconds"] = (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds()
    result["targets"] = check_targets(result)
    return result
