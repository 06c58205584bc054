"""What ``compare`` writes for people: the markdown tables of its results (test metric per model and level,
the selected configurations) and the plot of the metric against the augmentation level."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_path

__all__ = ["results_table", "selection_table", "plot_results", "format_level"]


def format_level(level: float) -> str:
    """An augmentation level as ``compare`` writes it in tables and in the keys of its prediction files
    (``2.0`` → ``'2'``, ``0.5`` → ``'0.5'``)."""
    return f"{level:g}"


def _defined(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _is_test(r: Mapping[str, Any]) -> bool:
    """Rows written before the split field existed hold test metrics only."""
    return r.get("split", "test") == "test"


def _summary(rows: list[dict[str, Any]], metric: str) -> tuple[list[str], list[float], dict]:
    """Per (model, level): (mean, std over the defined values, defined count, total count) of test ``metric``."""
    sel = [r for r in rows if r["metric"] == metric and _is_test(r)]
    models = list(dict.fromkeys(r["model"] for r in sel))
    levels = sorted({r["augment_level"] for r in sel})
    stats = {}
    for m in models:
        for lv in levels:
            vals = [r["value"] for r in sel if r["model"] == m and r["augment_level"] == lv]
            if not vals:
                continue
            ok = np.array([v for v in vals if _defined(v)], dtype=np.float64)
            mean = float(ok.mean()) if len(ok) else float("nan")
            std = float(ok.std(ddof=0)) if len(ok) else float("nan")
            stats[m, lv] = (mean, std, len(ok), len(vals))
    return models, levels, stats


def results_table(rows: list[dict[str, Any]], metric: str, title: str = "") -> str:
    """A markdown table: test ``metric`` mean ± std over seeds per model (rows) and augmentation level (columns).

    Only test rows enter (``split == "test"``; rows without a split are read as test rows). Level k means test nets
    transformed with factors U[1, 10^k] on ReLU neurons / random signs on tanh neurons (level 0: untransformed). An
    undefined value (Kendall τ of constant predictions; None or NaN in the rows) is never averaged as a number: a
    cell reads "n/a (k/n seeds)" when no seed has a value, and "mean ± std (k of n n/a)" when some do. The best
    mean per column is in bold. ``params`` is the selected trial's parameter count (a range when the seeds
    selected different sizes). Where rows carry a ``peak_rss_mb`` metric (peak memory of training the model, see
    :func:`monomial_gmn.bench.measure_training`), a ``peak MiB`` column follows.
    """
    models, levels, stats = _summary(rows, metric)
    higher = metric not in ("mse", "cross_entropy")
    peak = {r["model"]: r["value"] for r in rows if r["metric"] == "peak_rss_mb"}
    head = ("| model | " + " | ".join(f"level {format_level(lv)}" for lv in levels) + " | params |"
            + (" peak MiB |" if peak else ""))
    lines = []
    if title:
        lines += [f"**{title}** — test {metric}, mean ± std over seeds", ""]
    lines += [head, "|" + "---|" * (len(levels) + 2 + bool(peak))]
    best = {}
    for lv in levels:
        vals = [stats[m, lv][0] for m in models if (m, lv) in stats and stats[m, lv][2]]
        best[lv] = (max if higher else min)(vals) if vals else None
    undefined = 0
    for m in models:
        cells = []
        for lv in levels:
            if (m, lv) not in stats:
                cells.append("—")
                continue
            mean, std, k, n = stats[m, lv]
            undefined += n - k
            if k == 0:
                cells.append(f"n/a ({n}/{n} seeds)")
                continue
            cell = f"{mean:.3f} ± {std:.3f}"
            cell = f"**{cell}**" if best[lv] is not None and mean == best[lv] else cell
            cells.append(cell + (f" ({n - k} of {n} n/a)" if k < n else ""))
        p = sorted({int(r["value"]) for r in rows if r["model"] == m and r["metric"] == "params"
                    and r.get("selected", True) and r["value"] is not None})
        cells.append("—" if not p or p[-1] <= 0 else f"{p[0]:,}" if len(p) == 1 else f"{p[0]:,}–{p[-1]:,}")
        if peak:
            cells.append(f"{peak[m]:,.0f}" if m in peak else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if undefined:
        lines += ["", f"n/a: {metric} undefined (constant predictions) — {undefined} (model, seed, level) "
                      f"value(s); means and stds are over the defined seeds only."]
    return "\n".join(lines) + "\n"


def selection_table(trials: list[dict[str, Any]]) -> str:
    """Markdown: for each model and seed, the selected trial, its validation metrics and drawn parameters
    (empty string when there is nothing to choose from: no trials, or one per model and seed)."""
    if not trials or all(t["trial"] == 0 and not t["params"] for t in trials):
        return ""
    lines = ["**Selected configurations** (best validation metric among each seed's trials; test evaluated "
             "for these only)", "", "| model | seed | trial | of | validation | parameters |", "|---|---|---|---|---|---|"]
    count: dict[tuple[str, int], int] = {}
    for t in trials:
        count[t["model"], t["seed"]] = count.get((t["model"], t["seed"]), 0) + 1
    for t in trials:
        if not t.get("selected"):
            continue
        val = ", ".join(f"{k} " + ("n/a" if v is None else f"{v:.3f}") for k, v in t["val"].items())
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items()) or "(base configuration)"
        lines.append(f"| {t['model']} | {t['seed']} | {t['trial']} | {count[t['model'], t['seed']]} | {val} | "
                     f"{params} |")
    return "\n".join(lines) + "\n"


def plot_results(rows: list[dict[str, Any]], metric: str, path: str | Path, title: str = "") -> None:
    """The test metric against log10 of the scaling bound, one line per model, error bars over seeds (PNG).

    Levels where a model's metric is undefined for every seed are left out of its line. The legend sits to the
    right of the axes, so any number of models stays readable: each model gets a colour of a 10-colour (up to 10
    models) or 20-colour cycle, and the line style changes each time the cycle wraps.
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
        lv = [x for x in levels if (m, x) in stats and stats[m, x][2]]
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
