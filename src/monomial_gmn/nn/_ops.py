"""Fast, memory-lean edge ops: segment sums and products of edge tensors with node tables gathered onto edges.

* Aggregation uses ``torch.segment_reduce`` over edges grouped by node (parameter-graph edges are already
  sorted by target; sources are grouped once per batch by :class:`Segments`) — several times faster than
  ``index_add_``/``scatter_add_`` on CPU.
* ``a * table[index]`` through autograd would save the gathered [E, C] tensor for the backward pass;
  :func:`gather_mul` saves only the node table [N, C] and re-gathers in the backward pass: per-edge memory
  is what limits batch size.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["Segments", "scatter_sum", "gather_mul", "gather_gather_mul", "edge_update"]


class Segments:
    """Edges grouped by one endpoint (``index`` [E] in [0, N)), for segment sums onto N nodes.

    ``perm`` and ``lengths`` are computed on first use (an inference pass that never sums over this endpoint
    never sorts).

    Attributes:
        index: [E] long, node of each edge.
        perm: [E] long order that groups edges by node, or None when ``index`` is already sorted.
        lengths: [N] long, number of edges per node.
    """

    def __init__(self, index: Tensor, num_nodes: int):
        self.index = index
        self.num_nodes = num_nodes
        self._perm: Tensor | None = None
        self._sorted: bool | None = None
        self._lengths: Tensor | None = None

    @property
    def perm(self) -> Tensor | None:
        if self._sorted is None:
            idx = self.index
            self._sorted = idx.numel() < 2 or bool((idx[1:] >= idx[:-1]).all())
            if not self._sorted:
                self._perm = torch.argsort(idx, stable=True)
        return self._perm

    @property
    def lengths(self) -> Tensor:
        if self._lengths is None:
            self._lengths = torch.bincount(self.index, minlength=self.num_nodes)
        return self._lengths

    def sum(self, x: Tensor) -> Tensor:
        """[E, C] -> [N, C], no autograd (use :func:`scatter_sum` for gradients)."""
        if self.perm is not None:
            x = x.index_select(0, self.perm)
        return torch.segment_reduce(x, "sum", lengths=self.lengths)

    def inverse_degree(self, dtype: torch.dtype) -> Tensor:
        """[N, 1]: 1 / max(1, degree)."""
        return self.lengths.clamp_min(1).to(dtype).reciprocal().unsqueeze(-1)


class _ScatterSum(Function):
    @staticmethod
    def forward(ctx, x: Tensor, seg: Segments) -> Tensor:
        ctx.seg = seg
        return seg.sum(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad.index_select(0, ctx.seg.index), None


class _GatherMul(Function):
    @staticmethod
    def forward(ctx, a: Tensor, table: Tensor, seg: Segments) -> Tensor:
        ctx.save_for_backward(a, table)
        ctx.seg = seg
        return a * table.index_select(0, seg.index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, table = ctx.saved_tensors
        seg = ctx.seg
        ga = gt = None
        if ctx.needs_input_grad[0]:
            ga = grad * table.index_select(0, seg.index)
        if ctx.needs_input_grad[1]:
            gt = seg.sum(grad * a)
        return ga, gt, None


class _GatherGatherMul(Function):
    @staticmethod
    def forward(ctx, t1: Tensor, s1: Segments, t2: Tensor, s2: Segments) -> Tensor:
        ctx.save_for_backward(t1, t2)
        ctx.segs = (s1, s2)
        return t1.index_select(0, s1.index) * t2.index_select(0, s2.index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        t1, t2 = ctx.saved_tensors
        s1, s2 = ctx.segs
        g1 = g2 = None
        if ctx.needs_input_grad[0]:
            g1 = s1.sum(grad * t2.index_select(0, s2.index))
        if ctx.needs_input_grad[2]:
            g2 = s2.sum(grad * t1.index_select(0, s1.index))
        return g1, None, g2, None


class _EdgeUpdate(Function):
    @staticmethod
    def forward(ctx, e: Tensor, a: Tensor, g: Tensor, r: Tensor, s: Tensor, s_dst: Segments,
                s_src: Segments) -> Tensor:
        ctx.save_for_backward(a, g, r, s)
        ctx.segs = (s_dst, s_src)
        tmp = g.index_select(0, s_dst.index)
        out = torch.addcmul(e, a, tmp)
        torch.index_select(r, 0, s_dst.index, out=tmp)
        return out.addcmul_(tmp, s.index_select(0, s_src.index))

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, g, r, s = ctx.saved_tensors
        s_dst, s_src = ctx.segs
        need = ctx.needs_input_grad
        ge = grad if need[0] else None
        ga = grad * g.index_select(0, s_dst.index) if need[1] else None
        gg = s_dst.sum(grad * a) if need[2] else None
        gr = s_dst.sum(grad * s.index_select(0, s_src.index)) if need[3] else None
        gs = s_src.sum(grad * r.index_select(0, s_dst.index)) if need[4] else None
        return ge, ga, gg, gr, gs, None, None


def scatter_sum(x: Tensor, seg: Segments) -> Tensor:
    """Sum of edge rows per node. Shapes: x [E, C] -> [N, C]."""
    return _ScatterSum.apply(x, seg)


def gather_mul(a: Tensor, table: Tensor, seg: Segments) -> Tensor:
    """``a * table[seg.index]`` saving only ``a`` and ``table`` for backward.

    Shapes: a [E, C], table [N, C] -> [E, C].
    """
    return _GatherMul.apply(a, table, seg)


def gather_gather_mul(t1: Tensor, s1: Segments, t2: Tensor, s2: Segments) -> Tensor:
    """``t1[s1.index] * t2[s2.index]`` saving only the node tables for backward.

    Shapes: t1 [N, C], t2 [N, C] -> [E, C].
    """
    return _GatherGatherMul.apply(t1, s1, t2, s2)


def edge_update(e: Tensor, a: Tensor, g: Tensor, r: Tensor, s: Tensor, s_dst: Segments,
                s_src: Segments) -> Tensor:
    """``e + a * g[dst] + r[dst] * s[src]`` in one pass, saving only ``a`` and the node tables for backward.

    Shapes: e [E, C], a [E, C], g/r/s [N, C] -> [E, C] (``dst = s_dst.index``, ``src = s_src.index``).
    """
    return _EdgeUpdate.apply(e, a, g, r, s, s_dst, s_src)
