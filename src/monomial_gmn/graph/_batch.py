"""Batching ParameterGraphs of any architectures (PyG ``Batch``), and the fast same-architecture path."""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from ._parameter_graph import ParameterGraph, kernel_side
from ._spec import GraphSpec

__all__ = ["batch_graphs", "batch_stacked", "GraphLoader", "graph_ids", "fixed_index"]


def graph_ids(batch: Any, num_nodes: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """[N] long: the graph each node belongs to — ``batch.batch`` of a PyG ``Batch``, zeros for one graph.

    ``num_nodes`` and ``device`` size and place the zeros (default: ``batch.num_nodes`` and the device of
    ``batch.x``); they are not used when ``batch`` carries its batch vector.
    """
    ids = getattr(batch, "batch", None)
    if ids is not None:
        return ids
    if num_nodes is None:
        num_nodes = int(batch.num_nodes)
    if device is None:
        x = getattr(batch, "x", None)
        device = x.device if x is not None else None
    return torch.zeros(num_nodes, dtype=torch.long, device=device)


def fixed_index(batch: Any, num_nodes: int, device: torch.device | str | None) -> Tensor:
    """[N] long: index of each node inside its (graph, layer); meaningful for fixed (input/output) neurons,
    whose identity is not permuted (the group never moves them). Zeros when the batch has no ``layer``."""
    layer = getattr(batch, "layer", None)
    ar = torch.arange(num_nodes, device=device)
    if layer is None:
        return torch.zeros(num_nodes, dtype=torch.long, device=device)
    bvec = graph_ids(batch, num_nodes, device)
    key = bvec * (int(layer.max()) + 1 if num_nodes else 1) + layer
    first = scatter(ar, key, 0, dim_size=int(key.max()) + 1 if num_nodes else 0, reduce="min")
    return ar - first[key]


def batch_graphs(graphs: Sequence[ParameterGraph]) -> Batch:
    """One PyG ``Batch`` of graphs of any architectures; kernels are padded to the largest canvas.

    Shapes: out.x [ΣN, F], out.edge_attr [ΣE, S_max²], out.batch [ΣN], out.ptr [B+1].
    """
    if len(graphs) == 0:
        raise ValueError("batch_graphs needs at least one graph")
    side = max(kernel_side(g.edge_attr) for g in graphs)
    graphs = [g if kernel_side(g.edge_attr) == side else g.pad_kernel(side) for g in graphs]
    if any("norm" in g for g in graphs) and not all("norm" in g for g in graphs):
        graphs = [g if "norm" in g else _with_zero_norm(g) for g in graphs]
    if any("norm_steps" in g for g in graphs) and not all("norm_steps" in g for g in graphs):
        graphs = [g if "norm_steps" in g else _with_unknown_steps(g) for g in graphs]
    return Batch.from_data_list(list(graphs))


def _with_zero_norm(g: ParameterGraph) -> ParameterGraph:
    """A shallow copy with empty norm fields (``norm`` zeros [N, 4], ``norm_kind`` 0): a net without norms."""
    out = copy.copy(g)
    out.norm = g.x.new_zeros(g.num_nodes, 4)
    out.norm_kind = torch.zeros(g.num_nodes, dtype=torch.long, device=g.x.device)
    return out


def _with_unknown_steps(g: ParameterGraph) -> ParameterGraph:
    """A shallow copy with ``norm_steps`` -1 (no count recorded: ``to_module`` keeps the template's)."""
    out = copy.copy(g)
    out.norm_steps = torch.full((g.num_nodes,), -1, dtype=torch.long, device=g.x.device)
    return out


def batch_stacked(spec: GraphSpec, x: Tensor, edge_attr: Tensor, **graph_fields: Tensor) -> Batch:
    """A ``Batch`` of B same-architecture graphs from stacked features, with no per-graph Python work.

    Args:
        spec: the shared architecture.
        x: [B, N, F] node features; edge_attr: [B, E, K] edge features (canonical edge order).
        graph_fields: per-graph tensors with leading dim B (e.g. ``y=[B, 1]``).

    Equal to ``batch_graphs([spec.make_graph(x[b], edge_attr[b]) for b in range(B)])`` plus fields.
    """
    b, n, e = x.shape[0], spec.num_nodes, spec.num_edges
    if x.shape[1] != n or edge_attr.shape[:2] != (b, e):
        raise ValueError(f"expected x [B, {n}, F] and edge_attr [B, {e}, K]; got {tuple(x.shape)} and "
                         f"{tuple(edge_attr.shape)}")
    device = x.device
    node_ptr = torch.arange(b + 1, device=device) * n
    edge_ptr = torch.arange(b + 1, device=device) * e
    graph_ptr = torch.arange(b + 1, device=device)
    offsets = node_ptr[:-1]
    edge_index = (spec.edge_index.to(device).unsqueeze(1) + offsets.view(1, b, 1)).reshape(2, b * e)
    out = Batch(_base_cls=ParameterGraph)
    out.x = x.reshape(b * n, *x.shape[2:])
    out.edge_index = edge_index
    out.edge_attr = edge_attr.reshape(b * e, *edge_attr.shape[2:])
    zeros = torch.zeros(b, dtype=torch.long, device=device)
    slices: dict[str, Tensor] = {"x": node_ptr, "edge_index": edge_ptr, "edge_attr": edge_ptr}
    incs: dict[str, Any] = {"x": zeros, "edge_index": offsets, "edge_attr": zeros}
    for key in ("layer", "role", "sym", "block", "pos"):  # expand+reshape: one plain copy, cheaper than repeat
        out[key] = getattr(spec, key).to(device).expand(b, n).reshape(b * n)
        slices[key], incs[key] = node_ptr, zeros
    out.edge_layer = spec.edge_layer.to(device).expand(b, e).reshape(b * e)
    slices["edge_layer"], incs["edge_layer"] = edge_ptr, zeros
    for key, value in graph_fields.items():
        if value.shape[0] != b:
            raise ValueError(f"graph field '{key}' has leading dim {value.shape[0]}, expected {b}")
        out[key] = value
        slices[key], incs[key] = graph_ptr, zeros
    out.batch = torch.arange(b, device=device).view(b, 1).expand(b, n).reshape(b * n)
    out.ptr = node_ptr
    out._num_graphs = b
    out._slice_dict = slices
    out._inc_dict = incs
    return out


class GraphLoader(DataLoader):
    """``torch.utils.data.DataLoader`` over ParameterGraphs that collates with :func:`batch_graphs`."""

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = False, **kwargs):
        kwargs.setdefault("collate_fn", batch_graphs)
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)
