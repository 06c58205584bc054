"""A group element of the monomial group of one network (or of every network in a batch)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ._structure import SymmetryStructure

__all__ = ["MonomialTransform"]

_STRUCTURE_KEYS = ("layer", "role", "sym", "block", "pos", "batch", "ptr")


class MonomialTransform:
    """g = (π, d): a permutation π of the slots of each block and a factor d per slot.

    Acts on graphs, modules and any ParameterGraph-shaped features by the transformation law of
    :mod:`monomial_gmn.graph._parameter_graph`. ``(g @ h)(G) == g(h(G))``; ``(~g)(g(G)) == G``.

    Attributes:
        structure: the :class:`SymmetryStructure` this element belongs to.
        perm: [S] long, slot s moves to slot perm[s] (within its block).
        factor: [S] float64, d of each slot (before the move).
    """

    def __init__(self, structure: SymmetryStructure, perm: Tensor, factor: Tensor):
        if perm.shape != (structure.num_slots,) or factor.shape != (structure.num_slots,):
            raise ValueError(f"perm and factor must have shape [{structure.num_slots}]")
        if bool((factor == 0).any()):
            raise ValueError("a monomial factor must be non-zero")
        if bool((structure.slot_block[perm] != structure.slot_block).any()):
            raise ValueError("perm moves a neuron out of its block")
        self.structure = structure
        self.perm = perm
        self.factor = factor.to(torch.float64)

    # ------------------------------------------------------------------ group operations
    def __matmul__(self, other: "MonomialTransform") -> "MonomialTransform":
        """Composition: ``(self @ other)(G) == self(other(G))``."""
        self._check_same(other)
        perm = self.perm[other.perm]
        factor = self.factor[other.perm] * other.factor
        return MonomialTransform(self.structure, perm, factor)

    def __invert__(self) -> "MonomialTransform":
        perm = torch.empty_like(self.perm)
        perm[self.perm] = torch.arange(self.perm.numel(), device=self.perm.device)
        factor = torch.empty_like(self.factor)
        factor[self.perm] = 1.0 / self.factor
        return MonomialTransform(self.structure, perm, factor)

    def inverse(self) -> "MonomialTransform":
        return ~self

    def is_identity(self) -> bool:
        return bool(torch.equal(self.perm, torch.arange(self.perm.numel(), device=self.perm.device))
                    and bool((self.factor == 1).all()))

    def _check_same(self, other: "MonomialTransform") -> None:
        if not self.structure.same_as(other.structure):
            raise ValueError("the two group elements belong to different networks' groups")

    # ------------------------------------------------------------------ per-node views
    def node_perm(self) -> Tensor:
        """[N] new node id of each node."""
        return self.structure.node_perm(self.perm)

    def node_factor(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """[N] factor d of each node (1 for fixed nodes), in ``dtype``."""
        return self.structure.node_factor(self.factor).to(dtype)

    # ------------------------------------------------------------------ actions
    def __call__(self, obj):
        """Apply to a ParameterGraph / PyG Batch (returns a transformed copy) or an nn.Module (a new module)."""
        if isinstance(obj, nn.Module):
            return self.act_module(obj)
        if isinstance(obj, Data):
            return self.act_graph(obj)
        raise TypeError(f"a MonomialTransform acts on ParameterGraphs, Batches and nn.Modules, not {type(obj)}")

    def act_graph(self, graph: Data, node_keys: tuple[str, ...] = ("x",),
                  edge_keys: tuple[str, ...] = ("edge_attr",)) -> Data:
        """Transformed copy of a graph. ``node_keys``/``edge_keys`` follow the law; other node- or edge-level
        tensors are only moved with their node/edge; structure fields stay (they are block-invariant)."""
        if graph.num_nodes != self.structure.num_nodes:
            raise ValueError(f"this group element is for graphs with {self.structure.num_nodes} nodes, "
                             f"not {graph.num_nodes}")
        out = copy.copy(graph)
        perm = self.node_perm().to(graph.edge_index.device)
        src, dst = graph.edge_index
        new_src, new_dst = perm[src], perm[dst]
        n = graph.num_nodes
        order = torch.argsort(new_dst * n + new_src, stable=True)
        for key, value in graph.items():
            if not torch.is_tensor(value) or key in _STRUCTURE_KEYS:
                out[key] = value
            elif key == "edge_index":
                out[key] = torch.stack([new_src, new_dst])[:, order]
            elif key in node_keys:
                d = self.node_factor(value.dtype).to(value.device)
                moved = torch.empty_like(value)
                moved[perm] = value * d.view(-1, *([1] * (value.dim() - 1)))
                out[key] = moved
            elif key in edge_keys:
                d = self.node_factor(value.dtype).to(value.device)
                ratio = (d[dst] / d[src]).view(-1, *([1] * (value.dim() - 1)))
                out[key] = (value * ratio)[order]
            elif value.dim() > 0 and value.shape[0] == n and graph.is_node_attr(key):
                moved = torch.empty_like(value)
                moved[perm] = value
                out[key] = moved
            elif value.dim() > 0 and value.shape[0] == src.numel() and graph.is_edge_attr(key):
                out[key] = value[order]
            else:
                out[key] = value
        return out

    def act_module(self, module: nn.Module) -> nn.Module:
        """A new module computing the same function with the transformed parameters."""
        from ..graph import to_graph, to_module

        graph = to_graph(module)
        if graph.num_nodes != self.structure.num_nodes:
            raise ValueError(f"this group element is for networks with {self.structure.num_nodes} neurons; "
                             f"the module has {graph.num_nodes}")
        return to_module(self.act_graph(graph), module)

    def __repr__(self) -> str:
        return f"MonomialTransform(slots={self.perm.numel()}, identity={self.is_identity()})"
