"""The symmetry structure of a graph or batch: which neurons the group moves, in which blocks, how."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from ..graph import Symmetry, graph_ids

__all__ = ["SymmetryStructure"]


class SymmetryStructure:
    """Slots (one per hidden neuron position; tied neurons share a slot) grouped into permutation blocks.

    Built from ``block``, ``pos``, ``sym`` (and ``batch`` for a PyG ``Batch``). A group element is a
    permutation of the slots of each block plus a factor per slot (see :class:`MonomialTransform`).

    Attributes:
        num_nodes: N.
        node_slot: [N] slot of each node (−1 for fixed nodes).
        slot_block: [S] block of each slot.
        slot_sym: [S] :class:`Symmetry` code of each slot.
        slot_start: [B] first slot of each block; block_size: [B].
    """

    def __init__(self, graph: Data):
        block, pos, sym = graph.block, graph.pos, graph.sym
        for key in ("block", "pos", "sym"):
            if getattr(graph, key, None) is None:
                raise ValueError(f"the graph has no '{key}' field; make it with monomial_gmn.to_graph")
        device = block.device
        self.num_nodes = int(block.numel())
        batch = graph_ids(graph, self.num_nodes, device)
        num_graphs = int(getattr(graph, "num_graphs", 1) or 1)
        nb = scatter(block + 1, batch, dim=0, dim_size=num_graphs, reduce="max")
        boff = torch.cumsum(nb, 0) - nb
        hidden = block >= 0
        gblock = torch.where(hidden, block + boff[batch], torch.full_like(block, -1))
        nblocks = int(nb.sum())
        size = torch.zeros(nblocks, dtype=torch.long, device=device)
        if hidden.any():
            size = scatter(pos[hidden] + 1, gblock[hidden], dim=0, dim_size=nblocks, reduce="max")
        self.block_size = size
        self.slot_start = torch.cumsum(size, 0) - size
        self.num_slots = int(size.sum())
        self.node_slot = torch.full_like(block, -1)
        self.node_slot[hidden] = self.slot_start[gblock[hidden]] + pos[hidden]
        self.slot_block = torch.repeat_interleave(torch.arange(nblocks, device=device), size)
        self.slot_pos = torch.arange(self.num_slots, device=device) - self.slot_start[self.slot_block]
        s = self.node_slot[hidden]
        self.slot_sym = torch.full((self.num_slots,), int(Symmetry.NONE), dtype=torch.long, device=device)
        self.slot_sym[s] = sym[hidden]
        seen = torch.zeros(self.num_slots, dtype=torch.bool, device=device)
        seen[s] = True
        if not bool(seen.all()):
            raise ValueError("block positions are not contiguous: some position of a block has no neuron")
        if bool((self.slot_sym[s] != sym[hidden]).any()):
            raise ValueError("neurons tied to one slot (same block and pos) disagree on their symmetry")
        # Each copy of a block (one layer's neurons of it) must be contiguous and ordered by pos, so that
        # moving slot p to p' moves node n to n - p + p'.
        base = torch.arange(self.num_nodes, device=device)[hidden] - pos[hidden]
        last = base + size[gblock[hidden]] - 1
        ok = (base >= 0) & (last < self.num_nodes)
        if not bool(ok.all()) or bool((self.node_slot[base] != self.slot_start[gblock[hidden]]).any()) or bool(
                (self.node_slot[last] != self.slot_start[gblock[hidden]] + size[gblock[hidden]] - 1).any()):
            raise ValueError("the neurons of a block are not laid out contiguously in pos order")
        self._hidden = hidden
        self._pos = pos

    @property
    def device(self) -> torch.device:
        return self.node_slot.device

    def node_perm(self, slot_perm: Tensor) -> Tensor:
        """[N] new node id of each node under a slot permutation [S] (fixed nodes stay)."""
        out = torch.arange(self.num_nodes, device=self.device)
        h = self._hidden
        s = self.node_slot[h]
        out[h] = out[h] - self._pos[h] + self.slot_pos[slot_perm[s]]
        return out

    def node_factor(self, slot_factor: Tensor) -> Tensor:
        """[N] factor of each node (1 for fixed nodes)."""
        out = torch.ones(self.num_nodes, dtype=slot_factor.dtype, device=self.device)
        h = self._hidden
        out[h] = slot_factor[self.node_slot[h]]
        return out

    def same_as(self, other: "SymmetryStructure") -> bool:
        return self is other or (self.num_nodes == other.num_nodes and torch.equal(self.node_slot, other.node_slot)
                                 and torch.equal(self.slot_sym, other.slot_sym))
