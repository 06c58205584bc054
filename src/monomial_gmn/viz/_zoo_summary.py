"""What is in a zoo: counts per activation / architecture, the spread of its targets, weight norms per layer.

Works on any object with the :class:`monomial_gmn.data.Zoo` interface used here: ``len(zoo)``,
``zoo.columns`` (``{name: ndarray [n]}``, with ``activation`` and ``arch``), ``zoo.batch(indices)`` (a PyG
``Batch`` of ParameterGraphs with ``batch``, ``edge_layer`` and ``layer``) and, optionally,
``zoo.final_mask()`` (final checkpoints; summaries cover those only, like the standard split).

Weight norms are per network and per parametric layer l (0-based ``edge_layer``):
``‖W_l‖ = sqrt(Σ_{edges e of layer l} ‖edge_attr[e]‖²)`` (the Frobenius norm of the layer's weight) and
``‖b_l‖`` over the biases of the neurons with ``layer == l + 1``; both are computed with one scatter per
batch (no loop over networks or edges).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

__all__ = ["zoo_summary", "format_zoo_summary", "plot_zoo"]

_TARGETS = ("test_accuracy", "psnr", "label")
_CATEGORICAL_MAX = 30
_SKIP_COLUMNS = {"net_id", "image_id", "image_split", "final", "step", "seed"}


def _stats(v: np.ndarray) -> dict[str, float]:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "q10": float(np.quantile(v, 0.1)), "median": float(np.median(v)), "q90": float(np.quantile(v, 0.9)),
            "max": float(v.max())}


def _counts(col: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(col.astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(values.tolist(), counts.tolist())}


def _selected(zoo: Any) -> np.ndarray:
    n = len(zoo)
    mask_fn = getattr(zoo, "final_mask", None)
    mask = np.asarray(mask_fn(), dtype=bool) if callable(mask_fn) else np.ones(n, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"zoo.final_mask() has shape {mask.shape}; expected ({n},)")
    return np.flatnonzero(mask)


def layer_norms(zoo: Any, indices: np.ndarray, batch_size: int = 256,
                progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-network, per-layer weight and bias norms.

    Args:
        zoo: a Zoo-like object (see the module docstring).
        indices: [B] networks to measure.
        batch_size: networks per ``zoo.batch`` call.
        progress: show a tqdm bar (default: only on a terminal).

    Returns:
        ``(weight_norm, bias_norm)``, each [B, L] float64 (L = the most parametric layers of any network);
        NaN where a network has no layer l.
    """
    from tqdm import tqdm

    indices = np.asarray(indices, dtype=np.int64)
    rows_w: list[np.ndarray] = []
    rows_b: list[np.ndarray] = []
    width = 0
    starts = range(0, len(indices), batch_size)
    for start in tqdm(starts, desc="weight norms", unit="batch", disable=(None if progress is None
                                                                           else not progress), leave=False):
        chunk = indices[start:start + batch_size]
        batch = zoo.batch(chunk)
        g = len(chunk)
        edge_graph = batch.batch[batch.edge_index[0]]
        edge_layer = batch.edge_layer.long()
        n_layers = int(edge_layer.max()) + 1 if edge_layer.numel() else 0
        sq_w = torch.zeros(g * n_layers, dtype=torch.float64)
        cnt = torch.zeros(g * n_layers, dtype=torch.float64)
        key = edge_graph * n_layers + edge_layer
        sq_w.index_add_(0, key, batch.edge_attr.double().pow(2).sum(dim=1))
        cnt.index_add_(0, key, torch.ones_like(key, dtype=torch.float64))
        # biases of layer l sit on the neurons with node layer l + 1
        node_layer = batch.layer.long() - 1
        keep = (node_layer >= 0) & (node_layer < n_layers)
        nkey = batch.batch[keep] * n_layers + node_layer[keep]
        sq_b = torch.zeros(g * n_layers, dtype=torch.float64)
        sq_b.index_add_(0, nkey, batch.x[keep, 0].double().pow(2))
        w = sq_w.sqrt().reshape(g, n_layers).numpy()
        b = sq_b.sqrt().reshape(g, n_layers).numpy()
        absent = (cnt == 0).reshape(g, n_layers).numpy()
        w[absent] = np.nan
        b[absent] = np.nan
        rows_w.append(w)
        rows_b.append(b)
        width = max(width, n_layers)

    def stack(rows: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=np.nan)
                               for r in rows]) if rows else np.zeros((0, 0))

    return stack(rows_w), stack(rows_b)


def zoo_summary(zoo: Any, *, max_nets: int | None = 4096, batch_size: int = 256, seed: int = 0,
                progress: bool | None = None) -> dict[str, Any]:
    """The numbers behind :func:`plot_zoo` (and ``monomial-gmn zoo info --plot``), as plain Python.

    Args:
        zoo: a :class:`monomial_gmn.data.Zoo` (or an object with the same interface).
        max_nets: weight norms are measured on at most this many networks (a seeded random subset of the
            summarised ones; None for all). Counts and target statistics always use every summarised network.
        batch_size: networks per batch when measuring norms.
        seed: seed of the subset.

    Returns:
        ``{"networks": n, "summarised": m, "counts": {column: {value: count}}, "targets": {name: stats},
        "layers": [{"layer": l (1-based), "networks": k, "weight_norm": stats, "bias_norm": stats}],
        "norm_networks": k_total, "by_activation": {activation: [median ‖W_l‖ per layer, None where absent]}}``
        where ``stats``
        holds n/mean/std/min/q10/median/q90/max, and a categorical target (``label``) holds ``counts``.
    """
    return _summarise(zoo, max_nets=max_nets, batch_size=batch_size, seed=seed, progress=progress)[0]


def _summarise(zoo: Any, *, max_nets: int | None = 4096, batch_size: int = 256, seed: int = 0,
               progress: bool | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    n = len(zoo)
    cols = {k: np.asarray(v) for k, v in zoo.columns.items()}
    for key in ("activation", "arch"):
        if key not in cols:
            raise ValueError(f"zoo has no '{key}' column (columns: {sorted(cols)})")
    sel = _selected(zoo)
    out: dict[str, Any] = {"networks": n, "summarised": int(sel.size)}

    counts: dict[str, dict[str, int]] = {}
    for key in ["activation", "arch", *sorted(cols)]:
        col = cols[key]
        if key in counts or key in _SKIP_COLUMNS or key in _TARGETS or col.shape != (n,):
            continue
        if col.dtype.kind not in "USOb":
            continue
        if key not in ("activation", "arch") and len(np.unique(col[sel].astype(str))) > _CATEGORICAL_MAX:
            continue
        counts[key] = _counts(col[sel])
    out["counts"] = counts

    targets: dict[str, Any] = {}
    for key in _TARGETS:
        if key not in cols:
            continue
        col = cols[key][sel]
        if key == "label" or col.dtype.kind in "USOb":
            targets[key] = {"kind": "categorical", "counts": _counts(col)}
        else:
            v = col.astype(np.float64)
            stats: dict[str, Any] = {"kind": "continuous", **_stats(v)}
            finite = v[np.isfinite(v)]
            if finite.size:
                hist, edges = np.histogram(finite, bins=min(30, max(5, int(np.sqrt(finite.size)))))
                stats["hist"] = {"counts": hist.tolist(), "edges": edges.tolist()}
            targets[key] = stats
    out["targets"] = targets

    measured = sel
    if max_nets is not None and sel.size > max_nets:
        rng = np.random.default_rng(seed)
        measured = np.sort(rng.choice(sel, size=max_nets, replace=False))
    w, b = layer_norms(zoo, measured, batch_size=batch_size, progress=progress) if measured.size else \
        (np.zeros((0, 0)), np.zeros((0, 0)))
    out["norm_networks"] = int(measured.size)
    out["layers"] = [{"layer": l + 1, "networks": int(np.isfinite(w[:, l]).sum()),
                      "weight_norm": _stats(w[:, l]), "bias_norm": _stats(b[:, l])} for l in range(w.shape[1])]
    act = cols["activation"][measured].astype(str)
    out["by_activation"] = {a: [float(np.nanmedian(w[act == a, l])) if np.isfinite(w[act == a, l]).any()
                                else None for l in range(w.shape[1])] for a in sorted(set(act.tolist()))}
    return out, {"weight": w, "bias": b, "activation": act}


def format_zoo_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned plain-text tables (what ``zoo info --plot`` prints)."""
    lines = [f"networks: {summary['networks']}  (summarised: {summary['summarised']}; weight norms measured on "
             f"{summary['norm_networks']})"]
    for key, counts in summary["counts"].items():
        total = sum(counts.values()) or 1
        lines.append("")
        lines.append(f"{key:<24} {'nets':>7} {'share':>7}")
        for value, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {value:<22} {c:>7} {100.0 * c / total:>6.1f}%")
    for name, t in summary["targets"].items():
        lines.append("")
        if t["kind"] == "categorical":
            lines.append(f"{name:<24} {'nets':>7}")
            for value, c in sorted(t["counts"].items()):
                lines.append(f"  {value:<22} {c:>7}")
        elif t.get("n", 0):
            lines.append(f"{name}: n={t['n']}  mean={t['mean']:.4g}  std={t['std']:.4g}  min={t['min']:.4g}  "
                         f"q10={t['q10']:.4g}  median={t['median']:.4g}  q90={t['q90']:.4g}  max={t['max']:.4g}")
        else:
            lines.append(f"{name}: no finite values")
    if summary["layers"]:
        lines.append("")
        lines.append(f"{'layer':<7}{'nets':>7}   {'‖W‖ mean':>10}{'std':>10}{'min':>10}{'median':>10}{'max':>10}"
                     f"   {'‖b‖ mean':>10}{'median':>10}")
        for rec in summary["layers"]:
            w, b = rec["weight_norm"], rec["bias_norm"]
            if not w.get("n", 0):
                continue
            lines.append(f"{rec['layer']:<7}{rec['networks']:>7}   {w['mean']:>10.4g}{w['std']:>10.4g}"
                         f"{w['min']:>10.4g}{w['median']:>10.4g}{w['max']:>10.4g}   {b['mean']:>10.4g}"
                         f"{b['median']:>10.4g}")
    return "\n".join(lines)


def plot_zoo(zoo: Any, path: str | os.PathLike, *, dpi: int = 100, **summary_kwargs: Any) -> dict[str, Any]:
    """Draw a zoo summary as a PNG: counts per activation and architecture, target histogram(s) (per
    activation), per-layer weight norms (one dot per network, coloured by activation; log scale).

    Args:
        zoo: a Zoo (or Zoo-like object).
        path: output PNG (written atomically).
        dpi: resolution.
        summary_kwargs: passed to :func:`zoo_summary` (``max_nets``, ``batch_size``, ``seed``, ``progress``).

    Returns:
        the summary drawn (the same dict :func:`zoo_summary` returns), so callers can print it too.
    """
    from ._draw import _new_figure, save_png
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    summary, norms = _summarise(zoo, **summary_kwargs)
    cat_keys = [k for k in ("activation", "arch") if k in summary["counts"]]
    target_keys = list(summary["targets"])[:2]
    panels = len(cat_keys) + len(target_keys) + 1
    ncols = 2
    nrows = (panels + 1) // 2
    fig = _new_figure(12.0, 3.6 * nrows + 0.6, dpi, FigureCanvasAgg)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    acts = sorted(summary["counts"].get("activation", {}))
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"]
    colour = {a: palette[i % len(palette)] for i, a in enumerate(acts)}
    k = 0
    for key in cat_keys:
        ax = axes[k]
        k += 1
        items = sorted(summary["counts"][key].items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        labels = [v if len(v) <= 28 else v[:26] + "…" for v, _ in items]
        values = [c for _, c in items]
        bar_colours = [colour.get(v, "#777777") for v, _ in items] if key == "activation" else "#777777"
        ax.barh(range(len(items)), values, color=bar_colours, height=0.6)
        ax.set_yticks(range(len(items)), labels, fontsize=8)
        ax.invert_yaxis()
        for i, c in enumerate(values):
            ax.annotate(str(c), (c, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel("networks")
        ax.set_title(f"networks per {key}", fontsize=10)
        ax.margins(x=0.12)
    for key in target_keys:
        ax = axes[k]
        k += 1
        t = summary["targets"][key]
        if t["kind"] == "categorical":
            items = sorted(t["counts"].items())
            ax.bar(range(len(items)), [c for _, c in items], color="#777777")
            ax.set_xticks(range(len(items)), [v for v, _ in items], fontsize=8)
            ax.set_ylabel("networks")
            ax.set_title(f"{key} counts", fontsize=10)
        elif t.get("hist"):
            edges = np.asarray(t["hist"]["edges"])
            values = _target_values(zoo, key)
            if values is not None and len(acts) > 1:
                vals, act = values
                data = [vals[act == a] for a in acts]
                ax.hist(data, bins=edges, stacked=True, color=[colour[a] for a in acts], label=acts)
                ax.legend(fontsize=8, frameon=False)
            else:
                ax.stairs(t["hist"]["counts"], edges, fill=True, color="#777777")
            ax.axvline(t["median"], color="black", linestyle="--", linewidth=1)
            ax.set_xlabel(key.replace("_", " "))
            ax.set_ylabel("networks")
            ax.set_title(f"{key.replace('_', ' ')}: median {t['median']:.3g}, mean {t['mean']:.3g} "
                         f"(n={t['n']})", fontsize=10)
    ax = axes[k]
    k += 1
    w = norms["weight"]
    act = norms["activation"]
    rng = np.random.default_rng(0)
    dot = float(np.clip(300.0 / np.sqrt(max(w.shape[0], 1)), 3.0, 20.0))
    for l in range(w.shape[1]):
        for ai, a in enumerate(acts or sorted(set(act.tolist()))):
            v = w[act == a, l]
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            offset = (ai - (len(acts) - 1) / 2) * 0.8 / max(len(acts), 1)
            x = l + 1 + offset + rng.uniform(-0.3, 0.3, v.size) / max(len(acts), 1)
            ax.scatter(x, v, s=dot, alpha=0.55, color=colour.get(a, "#777777"), linewidths=0,
                       label=a if l == 0 else None)
            ax.plot([l + 1 + offset - 0.12, l + 1 + offset + 0.12], [np.median(v)] * 2, color="black", lw=1.5)
    if np.isfinite(w).any() and np.nanmin(w) > 0:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    present = np.isfinite(w).sum(axis=0)
    ax.set_xticks(range(1, w.shape[1] + 1), [f"{l + 1}\n({int(c)} nets)" if c != w.shape[0] else str(l + 1)
                                             for l, c in enumerate(present)])
    ax.set_xlabel("parametric layer")
    ax.set_ylabel("‖W‖ (Frobenius, per network)")
    ax.set_title(f"weight norm per layer ({summary['norm_networks']} nets; bars: medians)", fontsize=10)
    if acts:
        ax.legend(fontsize=8, frameon=False, markerscale=2)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:len(cat_keys)]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(cat_keys):len(cat_keys) + len(target_keys)]:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[k:]:
        ax.axis("off")
    fig.suptitle(f"zoo: {summary['networks']} networks ({summary['summarised']} summarised)", fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    return summary


def _target_values(zoo: Any, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    cols = getattr(zoo, "columns", None)
    if not cols or key not in cols or "activation" not in cols:
        return None
    sel = _selected(zoo)
    vals = np.asarray(cols[key])[sel].astype(np.float64)
    act = np.asarray(cols["activation"])[sel].astype(str)
    keep = np.isfinite(vals)
    return vals[keep], act[keep]
