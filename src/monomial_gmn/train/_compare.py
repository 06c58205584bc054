"""The comparison sweep: several models × seeds trained on one zoo, each evaluated at every augmentation level.

Outputs (``compare(..., out=DIR)``):
``DIR/results.json``  a list of rows ``{"model", "task", "augment_level", "seed", "metric", "value"}``
``DIR/table.md``      mean ± std over seeds of the task's main metric, one row per model, one column per level
``DIR/tau_vs_scale.png``  the metric against log10 of the scaling bound (level k ↔ factors U[1, 10^k]), one
                      line per model, error bars = std over seeds
``DIR/runs/<model>-s<seed>/``  the individual runs (a re-run of ``compare`` reuses finished ones)
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._io import atomic_path, atomic_write_json, atomic_write_text
from ._augment import parse_augment
from ._trainer import MODEL_NAMES, TrainConfig, evaluate_run, open_run_zoo, train

__all__ = ["compare", "results_table", "plot_results", "parse_levels", "parse_models"]

EVAL_SEED = 12345


def parse_models(text: str | Sequence[str], variants: Iterable[str] = ()) -> list[str]:
    """'monomial,gmn' → ['monomial', 'gmn'] (ValueError naming an unknown model); names in ``variants`` (see
    :func:`compare`) are accepted beside the registered models."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    known = set(variants)
    if not names:
        raise ValueError("--models is empty")
    for m in names:
        if m not in MODEL_NAMES and m not in known:
            raise ValueError(f"unknown model {m!r}; expected one of {', '.join(MODEL_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {','.join(names)}")
    return names


def parse_levels(text: str | Sequence[float]) -> list[float]:
    """'0,1,2' → [0.0, 1.0, 2.0] (ValueError for non-numbers or levels outside [0, 30])."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for p in parts:
        try:
            v = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"--augment-levels: {p!r} is not a number") from None
        if not math.isfinite(v) or v < 0 or v > 30:
            raise ValueError(f"--augment-levels: {p!r} must be a number in [0, 30]")
        out.append(v)
    if not out:
        raise ValueError("--augment-levels is empty")
    return out


def _fmt_level(level: float) -> str:
    return f"{level:g}"


def compare(zoo: str, task: str, models: Sequence[str], levels: Sequence[float], out: str | Path,
            seeds: int = 3, activation: str | None = None, progress: bool = True, zoo_obj: Any = None,
            variants: dict[str, tuple[str, dict[str, Any]]] | None = None,
            **train_kwargs: Any) -> list[dict[str, Any]]:
    """Train every model with seeds 0..seeds-1 and evaluate each at every augmentation level on the test split.

    ``train_kwargs`` go to :class:`TrainConfig` (epochs, hidden_dim, batch_size, lr, augment, train_with, ...). The same
    transformed test nets (evaluation generators seeded identically) are shown to every model.
    ``variants`` names configured models that ``models`` may list beside registered ones, e.g.
    ``{"monomial+probe": ("monomial", {"feature_readout": True, "probes": 128})}`` (options merged over
    ``model_kwargs``). Returns the rows written to ``results.json``.
    """
    variants = dict(variants or {})
    for name, spec in variants.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)):
            raise ValueError(f"variant {name!r} must be (registered model, {{options}}), got {spec!r}")
        parse_models([spec[0]])
    models = parse_models(models, variants)
    levels = parse_levels(levels)
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out)
    if zoo_obj is None:
        zoo_obj = open_run_zoo(zoo, activation, train_kwargs.get("train_with", ()))
    rows: list[dict[str, Any]] = []
    for model in models:
        base, options = variants.get(model, (model, {}))
        kwargs = dict(train_kwargs)
        if options:
            kwargs["model_kwargs"] = {**kwargs.get("model_kwargs", {}), **options}
        for seed in range(seeds):
            cfg = TrainConfig(zoo=str(zoo), task=task, model=base, out=str(out / "runs" / f"{model}-s{seed}"),
                              seed=seed, activation=activation, **kwargs)
            t0 = time.perf_counter()
            result = train(cfg, resume=True, zoo=zoo_obj, progress=progress)
            ev = evaluate_run(cfg.out, [str(lv) for lv in levels], seed=EVAL_SEED, zoo=zoo_obj)
            if progress:
                m = ev["metric"]
                sweep = " ".join(f"{row[m]:.3f}" for row in ev["rows"])
                tqdm.write(f"  {model:<10} seed {seed}: val {m} {result['val'][m]:.3f} | test {m} at levels "
                           f"{','.join(_fmt_level(lv) for lv in levels)}: {sweep} ({time.perf_counter() - t0:.0f} s)")
                sys.stdout.flush()
            for level, row in zip(levels, ev["rows"]):
                for metric, value in row.items():
                    if metric == "augment":
                        continue
                    rows.append({"model": model, "task": ev["task"], "augment_level": level, "seed": seed,
                                 "metric": metric, "value": float(value)})
            rows.append({"model": model, "task": ev["task"], "augment_level": None, "seed": seed,
                         "metric": "params", "value": float(result.get("params", 0))})
    metric = ev["metric"]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    atomic_write_text(out / "table.md", results_table(rows, metric, title=f"{ev['task']}"
                                                      + (f" ({activation} nets)" if activation else "")))
    plot_results(rows, metric, out / "tau_vs_scale.png",
                 title=f"{ev['task']}" + (f", {activation} nets" if activation else ""))
    return rows


def _summary(rows: list[dict[str, Any]], metric: str) -> tuple[list[str], list[float], dict]:
    models = list(dict.fromkeys(r["model"] for r in rows if r["metric"] == metric))
    levels = sorted({r["augment_level"] for r in rows if r["metric"] == metric})
    stats = {}
    for m in models:
        for lv in levels:
            v = np.array([r["value"] for r in rows if r["model"] == m and r["augment_level"] == lv
                          and r["metric"] == metric], dtype=np.float64)
            if len(v):
                stats[m, lv] = (float(v.mean()), float(v.std(ddof=0)), len(v))
    return models, levels, stats


def results_table(rows: list[dict[str, Any]], metric: str, title: str = "") -> str:
    """A markdown table: mean ± std over seeds of ``metric`` per model (rows) and augmentation level (columns).

    Level k means test nets transformed with factors U[1, 10^k] on ReLU neurons / random signs on tanh
    neurons (level 0: untransformed). The best mean per column is in bold. Where rows carry a ``peak_rss_mb``
    metric (peak memory of training the model, see :func:`monomial_gmn.bench.measure_training`), a
    ``peak MiB`` column follows ``params``.
    """
    models, levels, stats = _summary(rows, metric)
    higher = metric not in ("mse", "cross_entropy")
    peak = {r["model"]: r["value"] for r in rows if r["metric"] == "peak_rss_mb"}
    head = ("| model | " + " | ".join(f"level {_fmt_level(lv)}" for lv in levels) + " | params |"
            + (" peak MiB |" if peak else ""))
    lines = []
    if title:
        lines += [f"**{title}** — test {metric}, mean ± std over seeds", ""]
    lines += [head, "|" + "---|" * (len(levels) + 2 + bool(peak))]
    best = {}
    for lv in levels:
        vals = [stats[m, lv][0] for m in models if (m, lv) in stats]
        best[lv] = (max if higher else min)(vals) if vals else None
    for m in models:
        cells = []
        for lv in levels:
            if (m, lv) not in stats:
                cells.append("—")
                continue
            mean, std, n = stats[m, lv]
            cell = f"{mean:.3f} ± {std:.3f}"
            cells.append(f"**{cell}**" if best[lv] is not None and mean == best[lv] else cell)
        p = [r["value"] for r in rows if r["model"] == m and r["metric"] == "params"]
        cells.append(f"{int(p[0]):,}" if p and p[0] > 0 else "—")
        if peak:
            cells.append(f"{peak[m]:,.0f}" if m in peak else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(rows: list[dict[str, Any]], metric: str, path: str | Path, title: str = "") -> None:
    """The metric against log10 of the scaling bound, one line per model, error bars over seeds (PNG).

    The legend sits to the right of the axes, so any number of models stays readable: each model gets a colour
    of a 10-colour (up to 10 models) or 20-colour cycle, and the line style changes each time the cycle wraps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, levels, stats = _summary(rows, metric)
    ncol = 1 if len(models) <= 18 else 2
    longest = max((len(m) for m in models), default=8)
    fig, ax = plt.subplots(figsize=(5.5 + ncol * (0.6 + 0.065 * longest), max(3.8, 0.2 * len(models) / ncol + 1)),
                           dpi=120)
    colors = plt.get_cmap("tab20" if len(models) > 10 else "tab10").colors
    styles = ("-", "--", ":", "-.")
    for i, m in enumerate(models):
        lv = [x for x in levels if (m, x) in stats]
        ax.errorbar(lv, [stats[m, x][0] for x in lv], yerr=[stats[m, x][1] for x in lv], marker="o", markersize=4,
                    capsize=3, label=m, color=colors[i % len(colors)], linestyle=styles[i // len(colors) % 4])
    ax.set_xlabel("log10 of the scaling bound s (ReLU neurons × U[1, s]; tanh/sin: random signs)", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if models:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=ncol, frameon=False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


_ = parse_augment  # the level grammar the sweep relies on (levels are passed as parse_augment specs)
