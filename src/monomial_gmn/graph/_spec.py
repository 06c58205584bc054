"""GraphSpec: the architecture of one network as seen by the parameter graph.

A spec is computed once per architecture (by a converter) and then turns parameter vectors into graphs,
singly or vectorised over a whole zoo, and graphs back into parameters by *name* (the parameter names
recorded per layer) and by ``edge_index`` (never by edge order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import GraphMismatchError, NonFiniteWeightsError
from ._parameter_graph import ParameterGraph, kernel_side

__all__ = ["LayerRecord", "GraphSpec"]


@dataclass
class LayerRecord:
    """One parametric layer: a weight of shape [n_out, n_in, *kernel] (after a view) and an optional bias.

    Attributes:
        path: module path, e.g. ``"features.0"`` (``""`` for the root module).
        weight: full parameter name of the weight, e.g. ``"features.0.weight"``.
        bias: full parameter name of the bias, or ``None``.
        in_nodes: [n_in] node ids of the input neurons/channels, in the weight's column order.
        out_nodes: [n_out] node ids of the output neurons/channels, in the weight's row order.
        kernel: spatial shape of one (out, in) block of the weight: ``()`` for Linear, ``(k,)`` for Conv1d,
            ``(kh, kw)`` for Conv2d or for a Linear that reads a flattened kh×kw map per channel.
    """

    path: str
    weight: str
    bias: str | None
    in_nodes: Tensor
    out_nodes: Tensor
    kernel: tuple[int, ...]

    @property
    def n_in(self) -> int:
        return int(self.in_nodes.numel())

    @property
    def n_out(self) -> int:
        return int(self.out_nodes.numel())

    @property
    def kernel2d(self) -> tuple[int, int]:
        if len(self.kernel) == 0:
            return (1, 1)
        if len(self.kernel) == 1:
            return (1, int(self.kernel[0]))
        if len(self.kernel) == 2:
            return (int(self.kernel[0]), int(self.kernel[1]))
        raise ValueError(f"layer '{self.path}': kernels of rank {len(self.kernel)} are not supported")

    @property
    def kernel_numel(self) -> int:
        kh, kw = self.kernel2d
        return kh * kw

    def weight_positions(self, src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
        """The one edge → weight-entry map: row-major position ``out · n_in + in`` in this layer's [n_out, n_in]
        weight of each edge src → dst (node ids of a graph of ``num_nodes`` nodes); -1 for an edge between
        neurons this layer does not connect. Shapes: src, dst [M] → [M] long."""
        dev = src.device
        in_local = torch.full((num_nodes,), -1, dtype=torch.long, device=dev)
        in_local[self.in_nodes.to(dev)] = torch.arange(self.n_in, device=dev)
        out_local = torch.full((num_nodes,), -1, dtype=torch.long, device=dev)
        out_local[self.out_nodes.to(dev)] = torch.arange(self.n_out, device=dev)
        col, row = in_local[src], out_local[dst]
        return torch.where((col >= 0) & (row >= 0), row * self.n_in + col, torch.full_like(col, -1))


@dataclass
class GraphSpec:
    """Architecture-level description of a parameter graph (node metadata, edges, parameter layout).

    Attributes:
        layer, role, sym, block, pos: [N] node metadata (see :class:`ParameterGraph`).
        layers: the parametric layers, in forward order.
        params: ``(name, shape)`` of every parameter the graph holds, in flat-vector order.
    """

    layer: Tensor
    role: Tensor
    sym: Tensor
    block: Tensor
    pos: Tensor
    layers: list[LayerRecord]
    params: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.num_nodes
        if not self.params:
            for rec in self.layers:
                self.params.append((rec.weight, (rec.n_out, rec.n_in, *rec.kernel)))
                if rec.bias is not None:
                    self.params.append((rec.bias, (rec.n_out,)))
        self._offsets: dict[str, int] = {}
        off = 0
        for name, shape in self.params:
            self._offsets[name] = off
            off += _numel(shape)
        self.num_params = off
        side = max([max(rec.kernel2d) for rec in self.layers] + [1])
        self.side = side if side % 2 == 1 else side + 1
        srcs, dsts, lays = [], [], []
        for li, rec in enumerate(self.layers):
            dsts.append(rec.out_nodes.repeat_interleave(rec.n_in))
            srcs.append(rec.in_nodes.repeat(rec.n_out))
            lays.append(torch.full((rec.n_out * rec.n_in,), li, dtype=torch.long))
        src = torch.cat(srcs) if srcs else torch.zeros(0, dtype=torch.long)
        dst = torch.cat(dsts) if dsts else torch.zeros(0, dtype=torch.long)
        lay = torch.cat(lays) if lays else torch.zeros(0, dtype=torch.long)
        key = dst * n + src
        if key.numel() != torch.unique(key).numel():
            raise ValueError("two layers write the same (input neuron, output neuron) edge; "
                             "the graph would be ambiguous")
        self._bias_start = [self._contiguous_start(rec.out_nodes) for rec in self.layers]  # per layer, once
        order = torch.argsort(key, stable=True)
        self._order = None if torch.equal(order, torch.arange(order.numel())) else order
        self.edge_index = torch.stack([src, dst])[:, order]
        self.edge_layer = lay[order]

    # ------------------------------------------------------------------ properties
    @property
    def num_nodes(self) -> int:
        return int(self.layer.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def kernel_numel(self) -> int:
        return self.side * self.side

    def layer_edges(self, li: int) -> tuple[Tensor, Tensor]:
        """(ids [M], positions [M]): the canonical edges of parametric layer ``li`` and the row-major (out, in)
        position of each in the layer's weight (:meth:`LayerRecord.weight_positions`)."""
        ids = torch.nonzero(self.edge_layer == li).flatten()
        src, dst = self.edge_index[:, ids]
        return ids, self.layers[li].weight_positions(src, dst, self.num_nodes)

    def offset(self, name: str) -> int:
        """Position of parameter ``name``'s first value in the flat vector (``self.params`` order)."""
        return self._offsets[name]

    # ------------------------------------------------------------------ module <-> flat vector
    def flatten(self, module_or_state: nn.Module | Mapping[str, Tensor]) -> Tensor:
        """The parameters the graph covers as one vector [P], in ``self.params`` order (checked, finite)."""
        state = _state_of(module_or_state)
        parts = []
        for name, shape in self.params:
            if name not in state:
                raise GraphMismatchError(f"the module has no parameter '{name}'")
            t = state[name].detach()
            if _numel(tuple(t.shape)) != _numel(shape):
                raise GraphMismatchError(f"parameter '{name}' has shape {tuple(t.shape)}; the graph layout "
                                         f"expects {_numel(shape)} values {shape}")
            if not torch.isfinite(t).all():
                raise NonFiniteWeightsError(f"parameter '{name}' holds NaN or infinite values")
            parts.append(t.reshape(-1))
        return torch.cat(parts) if parts else torch.zeros(0)

    def module_graph(self, module: nn.Module) -> ParameterGraph:
        """The ParameterGraph of ``module`` (``self.graph(self.flatten(module))`` plus any buffers the layout
        records, such as a norm's ``num_batches_tracked``)."""
        return self.graph(self.flatten(module))

    # ------------------------------------------------------------------ flat vectors -> graphs
    def stacked(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        """Vectorised conversion of a zoo: flat parameters [B, P] → (x [B, N, 1], edge_attr [B, E, S*S]).

        No Python loop over networks or edges: one strided copy per layer straight into the preallocated
        output (kernels already S×S are copied as they are; smaller ones are written centred on a zeroed
        canvas), so every value is read once and written once. Large CPU outputs are allocated through NumPy,
        which asks the kernel for transparent huge pages: on a zoo this halves the page-fault cost that
        otherwise dominates (measured by ``monomial-gmn bench``).
        """
        if flat.dim() != 2 or flat.shape[1] != self.num_params:
            raise GraphMismatchError(f"expected flat parameters of shape [B, {self.num_params}], "
                                     f"got {tuple(flat.shape)}")
        b, s = flat.shape[0], self.side
        k = s * s
        x = flat.new_zeros(b, self.num_nodes, 1)
        edge_attr = _empty_output(flat, (b, self.num_edges, k))
        inv = self._inverse_order()
        pos = 0
        for li, rec in enumerate(self.layers):
            kh, kw = rec.kernel2d
            m = rec.n_out * rec.n_in
            off = self._offsets[rec.weight]
            w = flat[:, off:off + m * kh * kw]
            if inv is None:
                dst = edge_attr[:, pos:pos + m]
            else:
                dst = flat.new_empty(b, m, k)
            if kh == s and kw == s:
                dst.copy_(w.reshape(b, m, k))
            else:
                top, left = (s - kh) // 2, (s - kw) // 2
                dst.zero_()
                dst.view(b, m, s, s)[:, :, top:top + kh, left:left + kw].copy_(w.reshape(b, m, kh, kw))
            if inv is not None:
                edge_attr.index_copy_(1, inv[pos:pos + m], dst)
            pos += m
            if rec.bias is not None:
                off = self._offsets[rec.bias]
                first = self._bias_start[li]
                if first is None:
                    x[:, rec.out_nodes, 0] = flat[:, off:off + rec.n_out]
                else:
                    x[:, first:first + rec.n_out, 0].copy_(flat[:, off:off + rec.n_out])
        return x, edge_attr

    def _inverse_order(self) -> Tensor | None:
        """Position of each layer-ordered edge in the canonical edge order (``None`` when they agree)."""
        if self._order is None:
            return None
        inv = getattr(self, "_inv_order", None)
        if inv is None:
            inv = torch.empty_like(self._order)
            inv[self._order] = torch.arange(self._order.numel())
            self._inv_order = inv
        return inv

    @staticmethod
    def _contiguous_start(nodes: Tensor) -> int | None:
        """First id if ``nodes`` is a contiguous increasing range, else ``None``."""
        if nodes.numel() == 0:
            return None
        first = int(nodes[0])
        if torch.equal(nodes, torch.arange(first, first + nodes.numel(), dtype=nodes.dtype)):
            return first
        return None

    def graph(self, flat: Tensor) -> ParameterGraph:
        """One ParameterGraph from a flat parameter vector [P]."""
        x, edge_attr = self.stacked(flat.reshape(1, -1))
        return self.make_graph(x[0], edge_attr[0])

    def make_graph(self, x: Tensor, edge_attr: Tensor) -> ParameterGraph:
        """Wrap node features [N, F] and edge features [E, S*S] with this spec's structure."""
        return ParameterGraph(
            x=x, edge_index=self.edge_index.clone(), edge_attr=edge_attr,
            layer=self.layer.clone(), role=self.role.clone(), sym=self.sym.clone(),
            block=self.block.clone(), pos=self.pos.clone(), edge_layer=self.edge_layer.clone(),
        )

    # ------------------------------------------------------------------ graphs -> parameters
    def state_from_graph(self, graph: ParameterGraph) -> dict[str, Tensor]:
        """Parameters (by name, in their recorded shapes) read from a graph of this architecture.

        Weights are placed through ``edge_index`` (node ids → row/column of each layer), so any edge order
        works; each (out, in) pair of every layer must appear exactly once.
        """
        self.check_graph(graph)
        side = kernel_side(graph.edge_attr)
        n = self.num_nodes
        out: dict[str, Tensor] = {}
        src, dst = graph.edge_index
        for li, rec in enumerate(self.layers):
            kh, kw = rec.kernel2d
            mask = graph.edge_layer == li
            lin = rec.weight_positions(src[mask], dst[mask], n)
            if (lin < 0).any():
                raise GraphMismatchError(f"layer '{rec.path}': the graph has an edge between neurons that "
                                         f"this layer does not connect")
            if lin.numel() != rec.n_out * rec.n_in or torch.unique(lin).numel() != lin.numel():
                raise GraphMismatchError(f"layer '{rec.path}': the graph holds {lin.numel()} distinct-or-not "
                                         f"edges; the layer needs each of its {rec.n_out}×{rec.n_in} pairs once")
            top, left = (side - kh) // 2, (side - kw) // 2
            ker = graph.edge_attr[mask].reshape(-1, side, side)[:, top:top + kh, left:left + kw]
            w = ker.new_empty(rec.n_out * rec.n_in, kh, kw)
            w[lin] = ker
            out[rec.weight] = w.reshape(rec.n_out, rec.n_in, *rec.kernel)
            if rec.bias is not None:
                out[rec.bias] = graph.x[rec.out_nodes, 0].clone()
        return out

    def check_graph(self, graph: ParameterGraph) -> None:
        """Raise :class:`GraphMismatchError` unless ``graph`` has this spec's nodes and layers."""
        if graph.num_nodes != self.num_nodes:
            raise GraphMismatchError(f"the graph has {graph.num_nodes} nodes; this architecture has "
                                     f"{self.num_nodes} neurons")
        if not torch.equal(graph.layer.cpu(), self.layer) or not torch.equal(graph.role.cpu(), self.role):
            raise GraphMismatchError("the graph's neurons are laid out in other layers than this architecture's")
        if graph.edge_index.shape[1] != self.num_edges:
            raise GraphMismatchError(f"the graph has {graph.edge_index.shape[1]} edges; this architecture "
                                     f"has {self.num_edges}")
        if kernel_side(graph.edge_attr) < self.side:
            raise GraphMismatchError(f"the graph's kernels are {kernel_side(graph.edge_attr)}×"
                                     f"{kernel_side(graph.edge_attr)}; this architecture needs {self.side}×{self.side}")


_NUMPY_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16"}
_HUGE_BYTES = 1 << 24


def _empty_output(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``torch.empty(shape)`` with ``like``'s dtype/device; large CPU buffers come from NumPy (huge pages)."""
    numel = _numel(shape)
    if like.device.type == "cpu" and like.dtype in _NUMPY_DTYPES and numel * like.element_size() >= _HUGE_BYTES:
        import numpy as np

        return torch.from_numpy(np.empty(shape, dtype=_NUMPY_DTYPES[like.dtype]))
    return like.new_empty(shape)


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _state_of(module_or_state: nn.Module | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    if isinstance(module_or_state, nn.Module):
        return {**dict(module_or_state.named_buffers()), **dict(module_or_state.named_parameters())}
    return module_or_state
