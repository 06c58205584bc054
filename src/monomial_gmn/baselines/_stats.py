"""Per-(network, layer) weight statistics of a batch of ParameterGraphs, vectorised over the batch.

Shared by the baselines: :class:`~monomial_gmn.baselines.StatNN` / ``StatNNGBM`` read the statistics
(Unterthiner et al. 2020), :class:`~monomial_gmn.baselines.GMN` and ``NFNNP`` normalise each layer's weights
and biases by their per-network RMS.

Conventions (the graph layout is documented in :class:`monomial_gmn.ParameterGraph`):

* Weights and biases per layer, and the *kernel window* that makes statistics independent of canvas
  padding: :mod:`monomial_gmn.graph._layer_stats` (re-exported here).
* **Layer slots** (how networks of different depths share one fixed-size feature vector): with
  ``max_layers = K``, layer k of a network of depth D goes to slot k when k < min(D − 1, K − 1), its last
  layer (k = D − 1) always goes to slot K − 1, and layers K − 1 … D − 2 of networks deeper than K are
  dropped. Slots a network does not fill are zero and flagged absent.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from ..graph import graph_index, kernel_window, layer_rms, layer_values, network_depth

__all__ = ["QUANTILES", "STAT_NAMES", "graph_index", "network_depth", "kernel_window", "layer_slots",
           "grouped_stats", "layer_values", "layer_rms", "statnn_features", "statnn_feature_names"]

QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
STAT_NAMES: tuple[str, ...] = ("mean", "var", "q0", "q25", "q50", "q75", "q100")


def layer_slots(layer: Tensor, depth: Tensor, max_layers: int) -> Tensor:
    """Slot of parametric layer ``layer`` (0-based) of a network of depth ``depth``; −1 if dropped.

    See the module docstring for the rule (first layers from the input, the last layer in the last slot).
    """
    if max_layers < 1:
        raise ValueError(f"max_layers must be >= 1, got {max_layers}")
    last = layer == depth - 1
    keep = layer < max_layers - 1
    return torch.where(last, torch.full_like(layer, max_layers - 1),
                       torch.where(keep, layer, torch.full_like(layer, -1)))


def grouped_stats(values: Tensor, group: Tensor, num_groups: int,
                  quantiles: tuple[float, ...] = QUANTILES) -> Tensor:
    """[G, 2 + Q] (mean, population variance, quantiles…) of the values of each group; empty groups → 0.

    Quantiles interpolate linearly between order statistics, like ``torch.quantile`` (method "linear").
    One sort for all groups; no Python loop over groups.

    Args:
        values: [M] values; group: [M] long group ids in ``[0, num_groups)``.
    """
    dev, dt = values.device, values.dtype
    count = torch.bincount(group, minlength=num_groups)
    cnt = count.to(dt).clamp_min(1)
    mean = scatter(values, group, 0, dim_size=num_groups, reduce="sum") / cnt
    var = scatter((values - mean[group]) ** 2, group, 0, dim_size=num_groups, reduce="sum") / cnt
    srt = values[_group_value_order(values, group)]
    start = torch.cumsum(count, 0) - count
    last = (count - 1).clamp_min(0)
    qs = []
    for q in quantiles:
        pos = q * last.to(torch.float64)
        lo = pos.floor().long()
        hi = torch.minimum(lo + 1, last)
        frac = pos - lo.to(torch.float64)
        if srt.numel() == 0:
            qs.append(torch.zeros(num_groups, dtype=dt, device=dev))
            continue
        idx_lo = (start + lo).clamp(max=srt.numel() - 1)
        idx_hi = (start + hi).clamp(max=srt.numel() - 1)
        a, b = srt[idx_lo].to(torch.float64), srt[idx_hi].to(torch.float64)
        v = (a + frac * (b - a)).to(dt)          # interpolated in float64: no overflow, one rounding
        qs.append(torch.where(count > 0, v, torch.zeros_like(v)))
    return torch.stack([mean, var, *qs], dim=1)


def _group_value_order(values: Tensor, group: Tensor) -> Tensor:
    """[M] permutation sorting by (group, value). Values of 32 bits or fewer: one int64 sort on the key
    ``group · 2³² + (order-preserving integer image of the float32 value)``; float64: two stable sorts."""
    if values.dtype in (torch.float32, torch.float16, torch.bfloat16) and values.numel():
        bits = values.to(torch.float32).contiguous().view(torch.int32)
        mono = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64) + 2 ** 31   # in [0, 2³²)
        return torch.sort(group.to(torch.int64) * 2 ** 32 + mono).indices
    order = torch.argsort(values, stable=True)
    return order[torch.argsort(group[order], stable=True)]


def statnn_features(data: Data, max_layers: int = 8) -> Tensor:
    """[B, K, 15] per-layer-slot statistics of each network: 7 of its weights, 7 of its biases, a presence flag.

    The 7 statistics are :data:`STAT_NAMES` (mean, variance, quantiles 0/25/50/75/100 %). Slots follow the
    rule of :func:`layer_slots` with ``K = max_layers``. Vectorised: one sort per batch.
    """
    w_vals, w_grp, b_vals, b_grp, n_layers = layer_values(data)
    node_graph, b = graph_index(data)
    depth = scatter(data.layer, node_graph, dim=0, dim_size=b, reduce="max")
    k = max_layers

    def regroup(grp: Tensor) -> tuple[Tensor, Tensor]:
        graph, layer = grp // n_layers, grp % n_layers
        slot = layer_slots(layer, depth[graph], k)
        keep = slot >= 0
        return keep, graph[keep] * k + slot[keep]

    keep_w, gw = regroup(w_grp)
    keep_b, gb = regroup(b_grp)
    ws = grouped_stats(w_vals[keep_w], gw, b * k)
    bs = grouped_stats(b_vals[keep_b], gb, b * k)
    layers = torch.arange(n_layers, device=depth.device)
    slots = layer_slots(layers[None].expand(b, -1), depth[:, None], k)
    present = torch.zeros(b, k, dtype=ws.dtype, device=ws.device)
    valid = (slots >= 0) & (layers[None] < depth[:, None])
    rows = torch.arange(b, device=depth.device)[:, None].expand_as(slots)
    present[rows[valid], slots[valid]] = 1.0
    return torch.cat([ws.view(b, k, -1), bs.view(b, k, -1), present.unsqueeze(-1)], dim=-1)


def statnn_feature_names(max_layers: int = 8) -> list[str]:
    """Names of the flattened :func:`statnn_features` columns, e.g. ``'slot0.weight.q25'``."""
    names = []
    for s in range(max_layers):
        names += [f"slot{s}.weight.{n}" for n in STAT_NAMES]
        names += [f"slot{s}.bias.{n}" for n in STAT_NAMES]
        names.append(f"slot{s}.present")
    return names
