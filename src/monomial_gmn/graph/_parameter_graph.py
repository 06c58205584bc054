"""The ParameterGraph data model (one network as a PyG ``Data``).

Layout (the single place it is documented; everything in the library follows it)
--------------------------------------------------------------------------------
Nodes are neurons: every input feature/channel, every hidden neuron/channel, every output. Node ids are
laid out layer by layer; the neurons of one layer are contiguous and ordered by their index in the module.

=============  =============  ===============================================================================
field          shape / dtype  meaning
=============  =============  ===============================================================================
``x``          [N, 1] float   bias of the neuron (0 for input neurons and bias-free layers)
``edge_index`` [2, E] long    ``edge_index[:, e] = (j, i)``: the edge points from input neuron j to output
                              neuron i and carries W[i, j]. Edges are sorted by (i, j): canonical order.
``edge_attr``  [E, S*S] float the kernel of the (j → i) channel pair, zero-padded *centred* on an S×S canvas
                              (S odd, the largest kernel side in the net rounded up to odd). A Linear weight
                              sits at the centre (a 1×1 kernel); a Conv1d kernel of length k on the middle
                              row; a Linear that reads a flattened C×H×W map stores the H×W block of each
                              channel as that edge's kernel.
``layer``      [N] long       0 for inputs, l for the outputs of the l-th parametric layer
``role``       [N] long       :class:`Role`: 0 input, 1 hidden, 2 output
``sym``        [N] long       :class:`Symmetry` of the neuron
``block``      [N] long       permutation block (−1 for fixed neurons): neurons of one block may be permuted
                              among themselves; nodes of different layers sharing a block and ``pos`` are tied
                              (one factor, moved together), e.g. across a residual addition
``pos``        [N] long       index of the neuron inside its block (−1 for fixed neurons)
``edge_layer`` [E] long       index of the parametric layer that owns the edge (0-based)
=============  =============  ===============================================================================

Transformation law (the single place it is stated; every layer, head, augmentation, canonical form and test
cites it): a group element g = (π, d) is a permutation π of the neurons of each block and a factor d_i per
hidden neuron. Input and output neurons are fixed: d = 1 and never permuted. For every neuron i and edge j → i,
    b_{π(i)} ← d_i · b_i,        W[π(i), π(j)] ← d_i · W[i, j] / d_j,
i.e. ``x`` row i is multiplied by d_i and ``edge_attr`` row (j → i) by d_i / d_j, every column alike (a whole
kernel moves with its channel pair), and the edges are put back in canonical order. Features computed from a
graph that are *equivariant* transform the same way, channel-wise: node features h_i [C] → d_i · h_i, edge
features e_{j→i} [C] → (d_i / d_j) · e_{j→i}. The set d_i is drawn from is fixed by the neuron's symmetry
code (the table of :mod:`monomial_gmn.graph._symmetry`). Implemented by
:class:`monomial_gmn.group.MonomialTransform`.

Graphs of different architectures batch together with :func:`monomial_gmn.batch_graphs` (it pads
``edge_attr`` to a common canvas) or PyG's ``Batch`` when canvases already agree.

Optional fields (only on graphs of networks with norm layers, converted through torch.fx):
``norm`` [N, 4] float — (weight, bias, running_mean, running_var) of the per-channel norm applied to the
neuron's value — ``norm_kind`` [N] long (0 none, 1 batch, 2 layer, 3 group, 4 instance norm) and, on graphs
made by ``to_graph``, ``norm_steps`` [N] long (the norm's ``num_batches_tracked``, -1 where none). Neurons
that carry a norm have d = 1 (symmetry ``none`` or ``fixed``), so the law only moves these rows with their
neuron. ``batch_graphs`` gives graphs without norms zero rows (``norm_steps`` -1) when batched with graphs
that have them.
Details: :mod:`monomial_gmn.graph._fx_spec`; the symmetry derivation: :mod:`monomial_gmn.graph._fx`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from .._errors import NonFiniteWeightsError
from ._symmetry import Role, Symmetry

__all__ = ["ParameterGraph", "kernel_side", "pad_canvas"]

_NODE_META = ("layer", "role", "sym", "block", "pos")


def kernel_side(edge_attr: Tensor) -> int:
    """Canvas side S of an ``edge_attr`` of shape [E, S*S]."""
    k = int(edge_attr.shape[-1])
    s = math.isqrt(k)
    if s * s != k or s % 2 == 0:
        raise ValueError(f"edge_attr has {k} columns; expected S*S with S odd (1, 9, 25, ...)")
    return s


def pad_canvas(edge_attr: Tensor, side: int) -> Tensor:
    """Zero-pad kernels of shape [..., s*s] centred onto a side×side canvas (both odd, side ≥ s)."""
    s = kernel_side(edge_attr)
    if side == s:
        return edge_attr
    if side < s or side % 2 == 0:
        raise ValueError(f"cannot pad a {s}×{s} canvas to {side}×{side}: the target must be odd and ≥ {s}")
    p = (side - s) // 2
    lead = edge_attr.shape[:-1]
    out = F.pad(edge_attr.reshape(-1, s, s), (p, p, p, p))
    return out.reshape(*lead, side * side)


class ParameterGraph(Data):
    """One network's parameters as a graph; see the module docstring for the layout and the law.

    Shapes:
        x: [N, 1], edge_index: [2, E], edge_attr: [E, S*S], layer/role/sym/block/pos: [N], edge_layer: [E].
    """

    @property
    def kernel_side(self) -> int:
        return kernel_side(self.edge_attr)

    def pad_kernel(self, side: int) -> "ParameterGraph":
        """A shallow copy whose ``edge_attr`` is padded (centred) onto a side×side canvas."""
        out = copy.copy(self)
        out.edge_attr = pad_canvas(self.edge_attr, side)
        return out

    def symmetry_counts(self) -> dict[str, int]:
        """Number of neurons per symmetry label, e.g. ``{'fixed': 11, 'positive_scale': 48, ...}``."""
        counts = torch.bincount(self.sym, minlength=len(Symmetry))
        return {Symmetry(i).label: int(c) for i, c in enumerate(counts.tolist()) if c > 0}

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary: node/edge counts, canvas side, layers, symmetry counts."""
        return {
            "nodes": int(self.num_nodes),
            "edges": int(self.edge_index.shape[1]),
            "kernel_side": self.kernel_side,
            "layers": int(self.layer.max()) if self.num_nodes else 0,
            "inputs": int((self.role == Role.INPUT).sum()),
            "outputs": int((self.role == Role.OUTPUT).sum()),
            "symmetry": self.symmetry_counts(),
        }

    def to_networkx(self) -> Any:
        """This graph as a ``networkx.DiGraph`` (see :func:`monomial_gmn.graph.graph_to_networkx`)."""
        from ._networkx import graph_to_networkx

        return graph_to_networkx(self)

    @classmethod
    def from_networkx(cls, G: Any) -> "ParameterGraph":
        """The exact inverse of :meth:`to_networkx` (see :func:`monomial_gmn.graph.graph_from_networkx`)."""
        from ._networkx import graph_from_networkx

        return graph_from_networkx(G, cls)

    def validate(self) -> "ParameterGraph":
        """Check shapes, dtypes and finiteness; raise ``ValueError`` naming the bad field. Returns self."""
        n = self.num_nodes
        for key in ("x", "edge_index", "edge_attr", *_NODE_META, "edge_layer"):
            if getattr(self, key, None) is None:
                raise ValueError(f"ParameterGraph is missing field '{key}'")
        if self.x.dim() != 2 or self.x.shape[0] != n:
            raise ValueError(f"ParameterGraph.x has shape {tuple(self.x.shape)}; expected [{n}, F]")
        for key in _NODE_META:
            t = getattr(self, key)
            if t.shape != (n,) or t.dtype != torch.long:
                raise ValueError(f"ParameterGraph.{key} must be a long tensor of shape [{n}]")
        e = self.edge_index
        if e.dim() != 2 or e.shape[0] != 2 or e.dtype != torch.long:
            raise ValueError("ParameterGraph.edge_index must be a long tensor of shape [2, E]")
        if e.numel() and (int(e.min()) < 0 or int(e.max()) >= n):
            raise ValueError("ParameterGraph.edge_index refers to a node that does not exist")
        if self.edge_attr.shape[0] != e.shape[1]:
            raise ValueError("ParameterGraph.edge_attr and edge_index disagree on the number of edges")
        kernel_side(self.edge_attr)
        for key in ("x", "edge_attr"):
            if not torch.isfinite(getattr(self, key)).all():
                raise NonFiniteWeightsError(f"ParameterGraph.{key} holds NaN or infinite values")
        return self
