"""Per-(network, layer) weight statistics of a batch of ParameterGraphs, vectorised over the batch.

Conventions (the graph layout is documented in :class:`monomial_gmn.ParameterGraph`):

* The *weights of parametric layer k* (0-based) are the ``edge_attr`` entries of the edges with
  ``edge_layer == k``; its *biases* are ``x[:, 0]`` of the nodes with ``layer == k + 1``.
* Kernels are zero-padded onto a common S×S canvas, and :func:`~monomial_gmn.batch_graphs` pads further to
  the largest canvas of a batch. Statistics must not depend on that padding, so only the *kernel window*
  of each (network, layer) is read: the bounding box of the canvas positions that hold a non-zero entry in
  any of the layer's edges. Padding is all-zero by construction, and the group action never turns a zero
  entry into a non-zero one, so the window is a property of the network, unchanged by the monomial group.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from ._batch import graph_ids

__all__ = ["graph_index", "network_depth", "kernel_window", "layer_values", "layer_rms"]


def graph_index(data: Data) -> tuple[Tensor, int]:
    """(node → graph id [N], number of graphs B); a single ParameterGraph is a batch of one."""
    multi = getattr(data, "batch", None) is not None
    return graph_ids(data), (int(data.num_graphs) if multi else 1)


def network_depth(data: Data) -> Tensor:
    """[B] number of parametric layers of each network (the largest node ``layer``)."""
    node_graph, b = graph_index(data)
    return scatter(data.layer, node_graph, dim=0, dim_size=b, reduce="max")


def kernel_window(edge_attr: Tensor, group: Tensor, num_groups: int) -> Tensor:
    """[E, S*S] bool: the canvas positions inside the kernel window of each edge's group.

    The window of a group (one layer of one network) is the bounding box of the positions that are non-zero
    in any edge of the group; an all-zero group keeps the centre position only.

    Args:
        edge_attr: [E, S*S] kernels on an S×S canvas.
        group: [E] group id of each edge (in ``[0, num_groups)``).
    """
    e, p = edge_attr.shape
    side = int(round(p ** 0.5))
    dev = edge_attr.device
    rows = torch.arange(p, device=dev) // side
    cols = torch.arange(p, device=dev) % side
    nz = edge_attr != 0
    big = torch.full((e, p), side, dtype=torch.long, device=dev)
    neg = torch.full((e, p), -1, dtype=torch.long, device=dev)
    r_lo = scatter(torch.where(nz, rows, big).min(1).values, group, 0, dim_size=num_groups, reduce="min")
    r_hi = scatter(torch.where(nz, rows, neg).max(1).values, group, 0, dim_size=num_groups, reduce="max")
    c_lo = scatter(torch.where(nz, cols, big).min(1).values, group, 0, dim_size=num_groups, reduce="min")
    c_hi = scatter(torch.where(nz, cols, neg).max(1).values, group, 0, dim_size=num_groups, reduce="max")
    empty = r_hi < 0
    mid = side // 2
    r_lo, r_hi = torch.where(empty, mid, r_lo), torch.where(empty, mid, r_hi)
    c_lo, c_hi = torch.where(empty, mid, c_lo), torch.where(empty, mid, c_hi)
    g = group
    return ((rows[None] >= r_lo[g, None]) & (rows[None] <= r_hi[g, None])
            & (cols[None] >= c_lo[g, None]) & (cols[None] <= c_hi[g, None]))


def layer_values(data: Data, num_layers: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Every weight and bias value with its (network, layer) group id ``graph * L + layer``.

    Returns:
        (w_values [Mw], w_group [Mw], b_values [Mb], b_group [Mb], L) where weight values are the kernel
        window entries (see :func:`kernel_window`) and L is ``num_layers`` or the deepest network's depth.
    """
    node_graph, b = graph_index(data)
    depth = scatter(data.layer, node_graph, dim=0, dim_size=b, reduce="max")
    n_layers = int(num_layers if num_layers is not None else (int(depth.max()) if depth.numel() else 0))
    n_layers = max(n_layers, 1)
    src, dst = data.edge_index
    edge_graph = node_graph[dst]
    eg = edge_graph * n_layers + data.edge_layer
    window = kernel_window(data.edge_attr, eg, b * n_layers)
    w_vals = data.edge_attr[window]
    w_grp = eg.unsqueeze(1).expand_as(window)[window]
    has_bias = data.layer >= 1
    b_vals = data.x[has_bias, 0]
    b_grp = (node_graph * n_layers + data.layer - 1)[has_bias]
    return w_vals, w_grp, b_vals, b_grp, n_layers


def layer_rms(data: Data, num_layers: int | None = None) -> tuple[Tensor, Tensor]:
    """([B, L] weight RMS, [B, L] bias RMS) of each parametric layer of each network (0 where absent)."""
    w_vals, w_grp, b_vals, b_grp, n_layers = layer_values(data, num_layers)
    _, b = graph_index(data)
    g = b * n_layers
    dt = data.edge_attr.dtype
    w_ms = scatter(w_vals ** 2, w_grp, 0, dim_size=g, reduce="sum") / torch.bincount(w_grp, minlength=g).clamp_min(1)
    b_ms = scatter(b_vals ** 2, b_grp, 0, dim_size=g, reduce="sum") / torch.bincount(b_grp, minlength=g).clamp_min(1)
    return w_ms.to(dt).sqrt().view(b, n_layers), b_ms.to(dt).sqrt().view(b, n_layers)
