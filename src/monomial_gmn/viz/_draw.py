"""Layered drawings of one parameter graph: where a network's symmetries live and where its weight mass sits.

Columns are layers (networkx ``multipartite_layout`` on the node ``layer``), neurons are coloured by their
:class:`~monomial_gmn.graph.Symmetry`, edges are shaded by the norm of their kernel ‖W[i, j]‖, edges that
skip at least one layer are drawn as dashed orange arcs, and residual ties (neurons of different layers that
share a permutation slot and a factor: same ``block`` and ``pos``, as an addition makes them) as dotted red
arcs. Drawing uses matplotlib's
Agg backend (no display needed) and writes a PNG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import atomic_path
from ..graph import Role, Symmetry

__all__ = ["draw_graph", "GraphTooLargeError", "SYMMETRY_STYLE", "MAX_DRAW_NODES", "MAX_DRAW_EDGES"]

MAX_DRAW_NODES = 400
MAX_DRAW_EDGES = 20_000

#: Colour (Okabe–Ito, colour-blind safe) and legend text per symmetry code.
SYMMETRY_STYLE: dict[Symmetry, tuple[str, str]] = {
    Symmetry.FIXED: ("#9a9a9a", "fixed (input/output, d = 1)"),
    Symmetry.NONE: ("#0072B2", "permutation only"),
    Symmetry.POSITIVE_SCALE: ("#E69F00", "permutation × positive scale (d > 0)"),
    Symmetry.SIGN: ("#CC79A7", "permutation × sign (d = ±1)"),
    Symmetry.SCALE: ("#009E73", "permutation × any scale (d ≠ 0)"),
}
_SKIP_COLOUR = "#D55E00"
_TIE_COLOUR = "#C0152F"


class GraphTooLargeError(ValueError):
    """The graph has more neurons or edges than a readable drawing can show."""


def _layer_titles(layer: np.ndarray, role: np.ndarray, names: Sequence[str] | None) -> dict[int, str]:
    titles = {}
    top = int(layer.max()) if layer.size else 0
    for lay in range(top + 1):
        mask = layer == lay
        count = int(mask.sum())
        if count == 0:
            continue
        if lay == 0:
            head = "input"
        elif names is not None and lay - 1 < len(names):
            head = names[lay - 1]
        else:
            head = f"layer {lay}"
        kind = "output" if lay == top and (role[mask] == Role.OUTPUT).all() else "neuron"
        if lay == 0:
            kind = "input"
        titles[lay] = f"{head}\n{count} {kind}{'s' if count != 1 else ''}"
    return titles


def _arcs(p0: np.ndarray, p1: np.ndarray, bend: float, steps: int = 24) -> np.ndarray:
    """Quadratic Bézier arcs from p0 to p1 ([E, 2] each), bulging sideways by ``bend`` × their length.

    Returns [E, steps, 2] polylines.
    """
    mid = (p0 + p1) / 2
    d = p1 - p0
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    ctrl = mid + bend * normal
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    return ((1 - t) ** 2) * p0[:, None] + 2 * (1 - t) * t * ctrl[:, None] + (t ** 2) * p1[:, None]


def _tied_pairs(block: np.ndarray, pos: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """[T, 2] node pairs (a, b): consecutive-by-layer neurons of different layers sharing (block, pos)."""
    movable = np.flatnonzero(block >= 0)
    if movable.size < 2:
        return np.zeros((0, 2), dtype=np.int64)
    key = block[movable].astype(np.int64) * (int(pos.max()) + 1) + pos[movable]
    order = np.lexsort((layer[movable], key))
    nodes, key = movable[order], key[order]
    same = (key[1:] == key[:-1]) & (layer[nodes[1:]] != layer[nodes[:-1]])
    return np.stack([nodes[:-1][same], nodes[1:][same]], axis=1)


def draw_graph(graph, path: str | os.PathLike, *, layer_names: Sequence[str] | None = None,
               title: str | None = None, edge_scale: str = "layer", max_nodes: int = MAX_DRAW_NODES,
               max_edges: int = MAX_DRAW_EDGES, dpi: int = 100) -> Path:
    """Draw a parameter graph as a layered picture and save it as a PNG.

    Args:
        graph: a :class:`~monomial_gmn.ParameterGraph` (one network).
        path: output file (PNG; written atomically, parent folders created).
        layer_names: optional names of the parametric layers, in order (e.g. ``["0: Conv2d", ...]``);
            the input column is always called "input".
        title: figure title (default: node/edge/kernel counts).
        edge_scale: ``"layer"`` (default) shades each edge relative to the 99th percentile of the kernel norms
            of its own layer, so every layer's structure is visible; ``"global"`` uses one scale for all
            edges. (Cross-layer magnitudes are not intrinsic anyway: a positive scaling of hidden neurons
            moves weight mass between consecutive layers without changing the function.)
        max_nodes / max_edges: beyond either, raise :class:`GraphTooLargeError` instead of drawing an
            unreadable picture (default 400 neurons, 20,000 edges).
        dpi: resolution of the PNG.

    Returns:
        the path written.

    Raises:
        GraphTooLargeError (a ``ValueError``): the graph exceeds ``max_nodes`` or ``max_edges``; the message
        names both counts and both limits.
    """
    import matplotlib
    import networkx as nx
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    if int(getattr(graph, "num_graphs", 1) or 1) > 1:
        raise ValueError(f"draw_graph draws one network; got a batch of {graph.num_graphs} graphs "
                         "(pick one with batch.get_example(i))")
    n, e = int(graph.num_nodes), int(graph.edge_index.shape[1])
    if n > max_nodes or e > max_edges:
        raise GraphTooLargeError(
            f"graph too large to draw readably: {n:,} neurons and {e:,} edges (limits: {max_nodes:,} neurons, "
            f"{max_edges:,} edges); draw a smaller network or raise max_nodes/max_edges")
    if n == 0:
        raise ValueError("cannot draw an empty graph (0 neurons)")

    layer = graph.layer.detach().cpu().numpy().astype(np.int64)
    role = graph.role.detach().cpu().numpy()
    sym = graph.sym.detach().cpu().numpy()
    src, dst = graph.edge_index.detach().cpu().numpy()
    mag = graph.edge_attr.detach().cpu().double().norm(dim=1).numpy() if e else np.zeros(0)

    # --- layout: networkx multipartite by layer (columns), neurons in index order within a column
    G = nx.DiGraph()
    G.add_nodes_from((i, {"layer": int(lay)}) for i, lay in enumerate(layer.tolist()))
    pos_d = nx.multipartite_layout(G, subset_key="layer", align="vertical")
    pos = np.array([pos_d[i] for i in range(n)], dtype=np.float64)
    # stretch each axis to [0, 1] independently: columns spread across the width, neurons down the height,
    # first neuron at the top
    for ax_i in (0, 1):
        lo, hi = pos[:, ax_i].min(), pos[:, ax_i].max()
        pos[:, ax_i] = (pos[:, ax_i] - lo) / (hi - lo) if hi > lo else 0.5
    pos[:, 1] = 1.0 - pos[:, 1]

    n_layers = int(layer.max()) + 1
    widest = int(np.bincount(layer).max())
    fig_w = float(np.clip(2.2 * n_layers + 2.5, 7.0, 16.0))
    fig_h = float(np.clip(0.12 * widest + 2.5, 5.0, 11.0))
    fig = _new_figure(fig_w, fig_h, dpi, FigureCanvasAgg)
    ax = fig.subplots()
    # --- edges: light to dark by kernel norm, strongest drawn last
    span = layer[dst] - layer[src] if e else np.zeros(0, dtype=np.int64)
    skip = span > 1
    if edge_scale not in ("layer", "global"):
        raise ValueError(f"edge_scale must be 'layer' or 'global', got {edge_scale!r}")
    strength = np.zeros(e)
    # shading groups: each layer's plain edges and its skip edges separately ("layer"), or everything ("global")
    group = (graph.edge_layer.detach().cpu().numpy() * 2 + skip if edge_scale == "layer"
             else np.zeros(e, np.int64))
    for key in np.unique(group):
        sel = group == key
        lo, hi = (float(v) for v in np.quantile(mag[sel], [0.01, 0.99]))
        if hi > lo:
            strength[sel] = np.clip((mag[sel] - lo) / (hi - lo), 0.0, 1.0)
        else:
            strength[sel] = 1.0 if hi > 0 else 0.0
    cmap = matplotlib.colormaps["Greys"]
    # fewer, fainter lines when there are many: keeps dense layers a grey texture with the strongest on top
    fade = float(np.clip(np.sqrt(600.0 / max(e, 1)), 0.2, 1.0))
    order = np.argsort(strength[~skip], kind="stable")
    plain = np.flatnonzero(~skip)[order]
    if plain.size:
        segs = np.stack([pos[src[plain]], pos[dst[plain]]], axis=1)
        st = strength[plain]
        colours = cmap(0.25 + 0.75 * st)
        colours[:, 3] = np.clip(fade * (0.12 + 0.85 * st ** 2), 0.03, 1.0)
        widths = 0.3 + (0.5 + 1.4 * fade) * st ** 2
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=widths, zorder=1,
                                         antialiaseds=e <= 5000))
    skipped = np.flatnonzero(skip)
    if skipped.size:
        curves = _arcs(pos[src[skipped]], pos[dst[skipped]], bend=0.18)
        colours = np.tile(matplotlib.colors.to_rgba(_SKIP_COLOUR), (skipped.size, 1))
        colours[:, 3] = 0.25 + 0.65 * strength[skipped]
        ax.add_collection(LineCollection(curves, colors=colours, linewidths=0.6 + 1.4 * strength[skipped],
                                         linestyles="--", zorder=2))

    # --- residual ties: neurons of different layers sharing (block, pos) move together (one permutation slot,
    # one factor), e.g. across a residual addition; consecutive copies are linked by dotted arcs
    ties = _tied_pairs(graph.block.detach().cpu().numpy(), graph.pos.detach().cpu().numpy(), layer)
    if ties.shape[0]:
        curves = _arcs(pos[ties[:, 0]], pos[ties[:, 1]], bend=-0.3)
        ax.add_collection(LineCollection(curves, colors=_TIE_COLOUR, linewidths=1.4, alpha=0.9,
                                         linestyles=(0, (1, 1.5)), zorder=2.5))

    # --- neurons: coloured by symmetry
    size = float(np.clip(9000.0 / max(widest, 1) ** 1.3, 6.0, 160.0))
    for code, (colour, _) in SYMMETRY_STYLE.items():
        mask = sym == int(code)
        if mask.any():
            ax.scatter(pos[mask, 0], pos[mask, 1], s=size, c=colour, edgecolors="#333333",
                       linewidths=0.4 if size > 20 else 0.0, zorder=3)

    # --- column titles
    titles = _layer_titles(layer, role, layer_names)
    for lay, text in titles.items():
        x = float(pos[layer == lay, 0].mean())
        ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 8), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9)

    # --- legend: symmetry kinds present (with counts), skip edges, edge shading
    counts = np.bincount(sym, minlength=len(Symmetry))
    handles = [Line2D([], [], marker="o", linestyle="", markersize=8, markerfacecolor=colour,
                      markeredgecolor="#333333", label=f"{text}: {int(counts[int(code)])}")
               for code, (colour, text) in SYMMETRY_STYLE.items() if counts[int(code)] > 0]
    if skipped.size:
        handles.append(Line2D([], [], color=_SKIP_COLOUR, linestyle="--", linewidth=1.5,
                              label=f"skip / residual edge (spans > 1 layer): {skipped.size}"))
    scale_note = "its layer's" if edge_scale == "layer" else "all edges'"
    if ties.shape[0]:
        handles.append(Line2D([], [], color=_TIE_COLOUR, linestyle=(0, (1, 1.5)), linewidth=1.5,
                              label=f"residual tie (one permutation slot and factor): {ties.shape[0]}"))
    handles.append(Line2D([], [], color="#222222", linewidth=2.0,
                          label="edge shade: kernel norm ‖W[i,j]‖ "
                                f"(faint ≤ 1st, black ≥ 99th pct. of {scale_note})"))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8.5,
               frameon=False, handletextpad=0.4, columnspacing=1.5)

    side = int(round(float(np.sqrt(graph.edge_attr.shape[1])))) if graph.edge_attr.dim() == 2 else 1
    if title is None:
        title = f"parameter graph: {n} neurons, {e} edges" + (f" ({side}×{side} kernel canvas)"
                                                               if side > 1 else "")
    fig.suptitle(title, fontsize=11, y=1.0 - 0.12 / fig_h)
    ax.set_xlim(-0.06, 1.06)
    ax.set_ylim(-0.045, 1.045)
    ax.axis("off")
    legend_rows = (len(handles) + 1) // 2
    fig.subplots_adjust(left=0.02, right=0.98, top=1.0 - 1.05 / fig_h,
                        bottom=(0.25 + 0.22 * legend_rows) / fig_h)
    return save_png(fig, path)


def save_png(fig, path: str | os.PathLike) -> Path:
    """Render a figure and write it atomically as a compact palette PNG (≤ 64 colours)."""
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    img = Image.fromarray(rgba[..., :3].copy()).quantize(colors=64, method=Image.Quantize.FASTOCTREE,
                                                         dither=Image.Dither.NONE)
    out = Path(path)
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    return out


def _new_figure(width: float, height: float, dpi: int, canvas_cls):
    """A matplotlib Figure on an Agg canvas, without pyplot's global state (no display, nothing to close)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    canvas_cls(fig)
    return fig
