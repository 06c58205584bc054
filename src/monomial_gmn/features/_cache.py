"""An exact memo of per-network features: vectorised 128-bit graph digests and a sorted lookup table.

Invariant features are deterministic functions of one network's graph (its ``x``, ``edge_attr``,
``edge_index`` and per-node/edge codes), computed with sorts that dominate a training step. A training run
shows the same networks every epoch, so :class:`FeatureCache` keeps each network's feature row, keyed by a
digest of every field the features read. The digest is computed for a whole batch at once (no loop over
graphs): each field's raw bits are multiplied by pseudo-random 64-bit keys drawn from the element's position
inside its own graph, and summed per graph with wrap-around; two independent keys give 128 bits. A network
that differs in any bit of any read field gets another digest (collisions have probability ≈ 2⁻¹²⁸ per pair),
so a hit returns exactly the row that computing would give.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graph import graph_index

__all__ = ["FeatureCache", "graph_digests"]

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)      # splitmix64 constants as signed int64
_M2 = 0x94D049BB133111EB - (1 << 64)
_NODE_FIELDS = ("sym", "layer", "role")
_EDGE_FIELDS = ("edge_layer",)


def _mix(z: Tensor) -> Tensor:
    """splitmix64 finaliser on int64 (wrap-around arithmetic; logical shifts emulated with masks)."""
    def shr(v: Tensor, s: int) -> Tensor:
        return (v >> s) & ((1 << (64 - s)) - 1)
    z = (z ^ shr(z, 30)) * _M1
    z = (z ^ shr(z, 27)) * _M2
    return z ^ shr(z, 31)


def _bits(t: Tensor) -> Tensor:
    """Raw bit patterns of a tensor as int64 [rows, cols]."""
    t = t.detach().reshape(t.shape[0], -1).contiguous()
    if t.dtype == torch.float64:
        return t.view(torch.int64)
    if t.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return t.float().view(torch.int32).to(torch.int64)
    return t.to(torch.int64)


def _fold(values: Tensor, local: Tensor, owner: Tensor, num: int, salt: int) -> Tensor:
    """[num, 2] int64: Σ over rows of each owner of mix(value bits ⊕ position keys), two independent lanes."""
    if values.numel() == 0:
        return torch.zeros(num, 2, dtype=torch.int64, device=values.device)
    cols = torch.arange(values.shape[1], device=values.device, dtype=torch.int64)
    pos = local.unsqueeze(1) * 1_000_003 + cols.unsqueeze(0) * 7_919 + salt * 104_729
    lanes = []
    for lane in (1, 2):
        h = _mix(values * _mix(pos * 2 + lane) + _mix(pos + lane * 31))
        lanes.append(torch.zeros(num, dtype=torch.int64, device=values.device).index_add_(0, owner, h.sum(1)))
    return torch.stack(lanes, dim=1)


def graph_digests(data: Data) -> Tensor:
    """[B, 2] int64 digests of each graph of a ParameterGraph/Batch over ``x``, ``edge_attr``, the local
    ``edge_index`` and the codes ``sym``, ``layer``, ``role``, ``edge_layer`` (plus node/edge counts)."""
    n = data.x.shape[0]
    batch, b = graph_index(data)
    node_count = torch.bincount(batch, minlength=b)
    node_start = torch.cumsum(node_count, 0) - node_count
    local_node = torch.arange(n, device=batch.device) - node_start[batch]
    src, dst = data.edge_index
    egraph = batch[dst] if dst.numel() else dst
    edge_count = torch.bincount(egraph, minlength=b)
    edge_start = torch.cumsum(edge_count, 0) - edge_count
    local_edge = torch.arange(dst.numel(), device=dst.device) - edge_start[egraph]
    d = _fold(_bits(data.x), local_node, batch, b, 1)
    d = d + _fold(_bits(data.edge_attr), local_edge, egraph, b, 2)
    ends = torch.stack([src - node_start[egraph], dst - node_start[egraph]], dim=1)
    d = d + _fold(ends.to(torch.int64), local_edge, egraph, b, 3)
    for k, name in enumerate(_NODE_FIELDS):
        v = getattr(data, name, None)
        if v is not None:
            d = d + _fold(_bits(v.reshape(n, -1)), local_node, batch, b, 10 + k)
    for k, name in enumerate(_EDGE_FIELDS):
        v = getattr(data, name, None)
        if v is not None:
            d = d + _fold(_bits(v.reshape(dst.numel(), -1)), local_edge, egraph, b, 20 + k)
    counts = torch.stack([node_count, edge_count], dim=1).to(torch.int64)
    return d + _mix(counts * 2_654_435_761 + 12_345)


class FeatureCache:
    """Rows of a per-network feature function, memoised by :func:`graph_digests` (exact; see module doc).

    Args:
        max_rows: the table is emptied when it would exceed this many networks (default 100 000).

    ``cache(data, fn)`` returns ``fn(data)`` [B, F] for a batch: looked up when every network of the batch
    was seen before, else computed for the batch and remembered. ``fn`` must give each network a row that
    does not depend on the other networks of the batch. Not saved in ``state_dict``.
    """

    def __init__(self, max_rows: int = 100_000):
        self.max_rows = int(max_rows)
        self.clear()

    def clear(self) -> None:
        self.keys = torch.empty(0, 2, dtype=torch.int64)
        self.rows: Tensor | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def __call__(self, data: Data, fn: Callable[[Data], Tensor]) -> Tensor:
        dig = graph_digests(data).cpu()
        b = dig.shape[0]
        found = torch.full((b,), -1, dtype=torch.long)
        if len(self) and self.rows is not None:
            pos = torch.searchsorted(self.keys[:, 0].contiguous(), dig[:, 0].contiguous()).clamp(max=len(self) - 1)
            match = (self.keys[pos] == dig).all(1)
            found = torch.where(match, pos, found)
        if b and bool((found >= 0).all()):
            self.hits += b
            return self.rows[found].to(data.x.device)
        self.misses += b
        out = fn(data)
        self._insert(dig, out.detach().cpu())
        return out

    def _insert(self, keys: Tensor, rows: Tensor) -> None:
        if self.rows is not None and (self.rows.shape[1] != rows.shape[1] or self.rows.dtype != rows.dtype
                                      or len(self) + keys.shape[0] > self.max_rows):
            self.clear()
        allk = keys if self.rows is None else torch.cat([self.keys, keys])
        allr = rows if self.rows is None else torch.cat([self.rows, rows])
        uniq, first = _unique_rows(allk)                 # sorted by the first lane (then the second)
        self.keys, self.rows = uniq, allr[first]


def _unique_rows(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows of ``keys`` [M, 2] and the index of each one's first occurrence."""
    uniq, inv = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((uniq.shape[0],), keys.shape[0], dtype=torch.long).scatter_reduce(
        0, inv, torch.arange(keys.shape[0]), reduce="amin")
    return uniq, first
