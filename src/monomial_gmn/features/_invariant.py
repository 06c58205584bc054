"""Exactly invariant readout features of networks: statistics of canonical weights, and path norms.

``invariant_features(G)`` is a vector per network that does not change when the network is transformed by
any element of its monomial group (the transformation law of :mod:`monomial_gmn.graph._parameter_graph`:
hidden neurons permuted and scaled). It carries what StatNN (Unterthiner et al., 2020) reads from raw weights,
made invariant:

* per layer, statistics (mean, std, quantiles 0/25/50/75/100 %) of the *canonical* weights, their absolute
  values, the canonical biases and their absolute values (see :func:`~monomial_gmn.features.canonicalize`:
  scale and sign are removed exactly; pooling over all entries of a layer removes the permutation);
* per layer, a presence flag and log(1 + number of weight entries);
* per layer, the same statistics of the *balanced* network (:func:`~monomial_gmn.features.balance`: the
  representative of least total squared weight over positive scalings — closer to what raw trained
  weights look like than the unit-norm canonical form; ``balanced=True``);
* path norms from every input to each output (ℓ1 with biases, ℓ2 with biases, ℓ1 without biases), reduced
  over the output neurons by log-mean/min/max. A path norm is a sum over input→output paths of products of
  |weights| (a bias starts a path), and every hidden factor cancels along a path.

Layers of different depths (mixed-architecture batches): features are laid out in ``num_layers`` *slots*.
Slot k < num_layers − 1 holds the k-th parametric layer counted from the input; the last slot always holds
the net's output layer; a net with more layers than slots pools its extra middle layers into slot
num_layers − 2; a shallower net leaves its missing slots at zero with presence flag 0.

Kernel entries: Linear weights sit at the centre of the S×S canvas, so padding would add fake zeros. Only the
kernel window of each (net, layer) is read — the bounding box of the canvas positions that are non-zero in
some edge of the layer (:func:`monomial_gmn.graph._layer_stats.kernel_window`, the rule StatNN uses too); it is
invariant, since a monomial factor never makes a non-zero weight zero.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graph import graph_index, kernel_window
from ._canonical import balance, canonicalize
from ._segments import STAT_NAMES, segment_stats

__all__ = ["invariant_features", "weight_statistics", "feature_names", "path_norms", "num_features",
           "PER_LAYER", "BALANCED", "PATH_NORM_NAMES"]

_GROUPS = ("w", "abs_w", "b", "abs_b")
PER_LAYER: tuple[str, ...] = ("present", "log_numel") + tuple(f"{g}_{s}" for g in _GROUPS for s in STAT_NAMES)
BALANCED: tuple[str, ...] = tuple(f"bal_{g}_{s}" for g in _GROUPS for s in STAT_NAMES)
PATH_NORM_NAMES: tuple[str, ...] = tuple(f"{p}_{r}" for p in ("path_l1", "path_l2", "path_l1_nobias")
                                         for r in ("logmean", "logmin", "logmax"))


def num_features(num_layers: int, path_norm: bool = True, balanced: bool = True) -> int:
    """F of :func:`invariant_features` for ``num_layers`` slots."""
    per = len(PER_LAYER) + (len(BALANCED) if balanced else 0)
    return num_layers * per + (len(PATH_NORM_NAMES) if path_norm else 0)


def feature_names(num_layers: int, path_norm: bool = True, balanced: bool = True) -> list[str]:
    """Names of the F columns of :func:`invariant_features`, e.g. ``'layer0_w_q50'``, ``'out_bal_abs_w_max'``,
    ``'path_l1_logmax'``."""
    per = PER_LAYER + (BALANCED if balanced else ())
    names = [f"layer{k}_{f}" if k < num_layers - 1 else f"out_{f}" for k in range(num_layers) for f in per]
    return names + (list(PATH_NORM_NAMES) if path_norm else [])


def _slots(graph: Data, num_layers: int | None) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """Per edge: graph id and slot; per node: slot (−1 for inputs); number of graphs B; slots L."""
    gid, b = graph_index(graph)
    src = graph.edge_index[0]
    egid = gid[src]
    el = graph.edge_layer
    depth = torch.zeros(b, dtype=torch.long, device=el.device)
    if el.numel():
        depth = depth.scatter_reduce(0, egid, el + 1, reduce="amax")
    L = int(num_layers) if num_layers is not None else max(int(depth.max()) if b else 1, 1)
    if L < 1:
        raise ValueError(f"num_layers must be >= 1, got {L}")

    def to_slot(layer: Tensor, g: Tensor) -> Tensor:
        last = layer == depth[g] - 1
        mid = layer.clamp(max=max(L - 2, 0))
        return torch.where(last, torch.full_like(layer, L - 1), mid)

    edge_slot = to_slot(el, egid)
    node_layer = graph.layer - 1                       # the parametric layer that owns the node (−1: input)
    node_slot = torch.where(node_layer >= 0, to_slot(node_layer.clamp(min=0), gid), torch.full_like(node_layer, -1))
    return egid, edge_slot, node_slot, b, L


def _support(graph: Data, egid: Tensor, b: int) -> Tensor:
    """[E, K] bool: canvas positions that hold real weights of the edge's layer (see module docstring)."""
    el = graph.edge_layer
    depth = int(el.max()) + 1 if el.numel() else 1
    return kernel_window(graph.edge_attr, egid * depth + el, b * depth)


def _layer_table(graph: Data, num_layers: int | None) -> tuple[Tensor, int, int]:
    """[B, L, len(PER_LAYER)] statistics of ``graph``'s own weights and biases (no canonicalisation)."""
    egid, edge_slot, node_slot, b, L = _slots(graph, num_layers)
    e, x = graph.edge_attr, graph.x
    sup = _support(graph, egid, b)
    seg_e = (egid * L + edge_slot).unsqueeze(-1).expand_as(e)[sup]
    w = e[sup]
    gid, _ = graph_index(graph)
    keep = node_slot >= 0
    bias = x[keep].reshape(-1)
    seg_b = (gid[keep] * L + node_slot[keep]).unsqueeze(-1).expand(-1, x.shape[1]).reshape(-1)
    g = b * L
    sw, nw = segment_stats(w, seg_e, g)
    saw, _ = segment_stats(w.abs(), seg_e, g)
    sb, _ = segment_stats(bias, seg_b, g)
    sab, _ = segment_stats(bias.abs(), seg_b, g)
    present = torch.zeros(g, dtype=e.dtype, device=e.device)
    present[egid * L + edge_slot] = 1.0
    cols = [present.unsqueeze(1), torch.log1p(nw.to(e.dtype)).unsqueeze(1), sw, saw, sb, sab]
    return torch.cat(cols, dim=1).reshape(b, L, len(PER_LAYER)), b, L


def path_norms(graph: Data) -> Tensor:
    """[B, 9] log-mean/min/max over output neurons of three path norms (ℓ1, ℓ2 with biases; ℓ1 without).

    Exactly invariant under the monomial group (each hidden factor cancels along every path; absolute
    values remove signs). Computed by propagating ones from the inputs through |W| (resp. W², ℓ2 taken as a
    square root at the end), one vectorised step per layer index.
    """
    gid, b = graph_index(graph)
    e, x = graph.edge_attr, graph.x
    src, dst = graph.edge_index
    el = graph.edge_layer
    depth = int(el.max()) + 1 if el.numel() else 0
    is_input = graph.layer == 0
    n = x.shape[0]
    a1 = e.abs().sum(-1)
    a2 = (e * e).sum(-1)
    b1 = x.abs().sum(-1)
    b2 = (x * x).sum(-1)
    start = is_input.to(e.dtype)
    p1, p2, p0 = start.clone(), start.clone(), start.clone()
    for k in range(depth):
        idx = torch.nonzero(el == k, as_tuple=True)[0]
        s, d = src[idx], dst[idx]
        is_out = torch.zeros(n, dtype=torch.bool, device=e.device)
        is_out[d] = True
        z = torch.zeros(n, dtype=e.dtype, device=e.device)
        p1 = torch.where(is_out, z.index_add(0, d, a1[idx] * p1[s]) + b1, p1)
        p2 = torch.where(is_out, z.index_add(0, d, a2[idx] * p2[s]) + b2, p2)
        p0 = torch.where(is_out, z.index_add(0, d, a1[idx] * p0[s]), p0)
    role_out = graph.role == 2
    og = gid[role_out]
    tiny = torch.finfo(e.dtype).tiny
    cols = []
    for p in (p1, p2.sqrt(), p0):
        v = p[role_out]
        cnt = torch.zeros(b, dtype=e.dtype, device=e.device).index_add_(0, og, torch.ones_like(v)).clamp(min=1)
        mean = torch.zeros(b, dtype=e.dtype, device=e.device).index_add_(0, og, v) / cnt
        mn = torch.full((b,), torch.inf, dtype=e.dtype, device=e.device).scatter_reduce(0, og, v, reduce="amin")
        mx = torch.zeros(b, dtype=e.dtype, device=e.device).scatter_reduce(0, og, v, reduce="amax")
        for r in (mean, mn, mx):
            cols.append(torch.log(r.clamp(min=tiny)))
    return torch.stack(cols, dim=1)


def invariant_features(graph: Data, num_layers: int | None = None, path_norm: bool = True,
                       balanced: bool = True) -> Tensor:
    """Exactly invariant features of each network in ``graph`` (ParameterGraph or Batch; mixed architectures).

    Args:
        graph: one ParameterGraph or a PyG Batch of them.
        num_layers: number of layer slots L (see module docstring); default: the deepest net in the batch.
            Fix it when features of several batches must line up.
        path_norm: append the 9 path-norm features.
        balanced: add per-layer statistics of the balanced network (:func:`balance`).

    Returns:
        [B, F] with F = :func:`num_features` (L, path_norm); column names from :func:`feature_names`.
        Same dtype/device as ``graph.edge_attr``.

    Invariance is exact in exact arithmetic; in float32 the relative error under factors in [1e-2, 1e2] is
    of the order of 1e-7 (measured in tests/test_features.py).
    """
    canon = canonicalize(graph)
    table, b, L = _layer_table(canon, num_layers)
    if balanced:
        bal, _, _ = _layer_table(balance(graph), L)
        table = torch.cat([table, bal[:, :, 2:]], dim=2)  # the presence flag and size are the same
    parts = [table.reshape(b, -1)]
    if path_norm:
        parts.append(path_norms(canon))
    return torch.cat(parts, dim=1)


def weight_statistics(graph: Data, num_layers: int | None = None) -> Tensor:
    """StatNN-style statistics of the *raw* weights, in the same layout as :func:`invariant_features`
    without path norms: [B, L * len(PER_LAYER)]. Permutation-invariant only — changes under scalings and
    signs (kept for comparison and ablations)."""
    table, b, _ = _layer_table(graph, num_layers)
    return table.reshape(b, -1)
