"""FxGraphSpec: a GraphSpec that also carries per-neuron normalisation layers (``norm``/``norm_kind``).

Normalisation fields (present only on graphs of networks that have a norm layer)
--------------------------------------------------------------------------------
=============  =============  ===============================================================================
field          shape / dtype  meaning
=============  =============  ===============================================================================
``norm``       [N, 4] float   ``(weight, bias, running_mean, running_var)`` of the per-channel norm applied to
                              the value this neuron represents (zeros where ``norm_kind == 0``; a norm without
                              affine parameters stores weight 1, bias 0; one without running statistics
                              stores mean 0, var 1)
``norm_kind``  [N] long       :class:`NormKind`: 0 none, 1 batch, 2 layer, 3 group, 4 instance norm
``norm_steps`` [N] long       the norm's ``num_batches_tracked`` (the same on all its channels); -1 where the
                              norm keeps no count or the graph did not record it (then :func:`to_module`
                              keeps the template's). Set by ``to_graph``; graphs assembled from features
                              (``make_graph``) do not have it.
=============  =============  ===============================================================================

Law: the converter gives every neuron that carries a norm the factor set {1} (symmetry ``none``, or ``fixed``),
so the transformation law (stated once, in :mod:`monomial_gmn.graph._parameter_graph`) only *moves* these rows
with their neuron, which is exactly what :meth:`MonomialTransform.act_graph` does with node-level fields. Graphs
without norms have neither field, so they are identical to Sequential-walker graphs;
:func:`monomial_gmn.batch_graphs` fills the fields with zeros for such graphs when they are batched with
graphs that have them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._errors import GraphMismatchError
from ._parameter_graph import ParameterGraph
from ._spec import GraphSpec, _state_of

__all__ = ["NormKind", "NormRecord", "FxGraphSpec", "NORM_COLUMNS"]

NORM_COLUMNS = ("weight", "bias", "running_mean", "running_var")
_NORM_DEFAULT = (1.0, 0.0, 0.0, 1.0)


class NormKind(enum.IntEnum):
    """Kind of normalisation applied to a neuron's value. Stored per node in ``ParameterGraph.norm_kind``."""

    NONE = 0
    BATCH = 1
    LAYER = 2
    GROUP = 3
    INSTANCE = 4


@dataclass
class NormRecord:
    """One norm layer: the names of its per-channel tensors (None if absent) and the neurons it normalises.

    Attributes:
        path: module path, e.g. ``"layer1.0.bn1"``.
        kind: :class:`NormKind`.
        names: full names of (weight, bias, running_mean, running_var), each None when the module lacks it.
        nodes: [C] node id of each normalised channel, in the module's channel order.
        tracked: full name of its ``num_batches_tracked`` buffer (None when it keeps no count).
    """

    path: str
    kind: NormKind
    names: tuple[str | None, str | None, str | None, str | None]
    nodes: Tensor
    tracked: str | None = None


@dataclass
class FxGraphSpec(GraphSpec):
    """A :class:`GraphSpec` built by the torch.fx converter; adds norm layers and the derivation notes.

    Attributes:
        norms: the norm layers, in forward order.
        notes: per permutation block, why its neurons have the symmetry they have (see :meth:`explain`).
    """

    norms: list[NormRecord] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=dict)

    @property
    def has_norms(self) -> bool:
        return bool(self.norms)

    def norm_kind(self) -> Tensor:
        """[N] long :class:`NormKind` of each neuron."""
        kind = torch.zeros(self.num_nodes, dtype=torch.long)
        for rec in self.norms:
            kind[rec.nodes] = int(rec.kind)
        return kind

    def stacked_norm(self, flat: Tensor) -> Tensor:
        """Vectorised: flat parameters [B, P] → norm fields [B, N, 4] (one slice per norm tensor)."""
        b = flat.shape[0]
        out = flat.new_zeros(b, self.num_nodes, len(NORM_COLUMNS))
        for rec in self.norms:
            for col, name in enumerate(rec.names):
                if name is None:
                    out[:, rec.nodes, col] = _NORM_DEFAULT[col]
                else:
                    off = self._offsets[name]
                    out[:, rec.nodes, col] = flat[:, off:off + rec.nodes.numel()]
        return out

    def norm_steps(self, module_or_state) -> Tensor:
        """[N] long: each neuron's norm's ``num_batches_tracked`` (-1 where there is none)."""
        state = _state_of(module_or_state)
        steps = torch.full((self.num_nodes,), -1, dtype=torch.long)
        for rec in self.norms:
            if rec.tracked is not None:
                if rec.tracked not in state:
                    raise GraphMismatchError(f"the module has no buffer '{rec.tracked}'")
                steps[rec.nodes] = int(state[rec.tracked])
        return steps

    def module_graph(self, module) -> ParameterGraph:
        g = super().module_graph(module)
        if self.norms:
            g.norm_steps = self.norm_steps(module)
        return g

    def graph(self, flat: Tensor) -> ParameterGraph:
        flat = flat.reshape(1, -1)
        x, edge_attr = self.stacked(flat)
        norm = self.stacked_norm(flat)[0] if self.norms else None
        return self.make_graph(x[0], edge_attr[0], norm)

    def make_graph(self, x: Tensor, edge_attr: Tensor, norm: Tensor | None = None) -> ParameterGraph:
        """Wrap node features [N, F], edge features [E, S*S] (and norm fields [N, 4]) with this structure."""
        g = super().make_graph(x, edge_attr)
        if self.norms:
            if norm is None:
                raise GraphMismatchError("this architecture has norm layers; make_graph needs their 'norm' "
                                         f"fields [{self.num_nodes}, {len(NORM_COLUMNS)}]")
            g.norm = norm
            g.norm_kind = self.norm_kind()
        return g

    def state_from_graph(self, graph: ParameterGraph) -> dict[str, Tensor]:
        out = super().state_from_graph(graph)
        for rec in self.norms:
            for col, name in enumerate(rec.names):
                if name is not None:
                    out[name] = graph.norm[rec.nodes.to(graph.norm.device), col].clone()
        steps = getattr(graph, "norm_steps", None)
        if steps is not None:
            for rec in self.norms:
                if rec.tracked is None:
                    continue
                values = torch.unique(steps[rec.nodes.to(steps.device)])
                if values.numel() != 1:
                    raise GraphMismatchError(f"the graph's 'norm_steps' differ across the channels of the norm "
                                             f"'{rec.path}' ({values.tolist()[:4]}); they count one layer's steps")
                if int(values) >= 0:  # -1: not recorded, the template's count stays
                    out[rec.tracked] = values.reshape(()).cpu()
        return out

    def check_graph(self, graph: ParameterGraph) -> None:
        super().check_graph(graph)
        if not self.norms:
            return
        norm = getattr(graph, "norm", None)
        if norm is None or tuple(norm.shape) != (self.num_nodes, len(NORM_COLUMNS)):
            raise GraphMismatchError(f"this architecture has norm layers; the graph needs a 'norm' field of shape "
                                     f"[{self.num_nodes}, {len(NORM_COLUMNS)}]")
        kind = getattr(graph, "norm_kind", None)
        if kind is None or not torch.equal(kind.cpu(), self.norm_kind()):
            raise GraphMismatchError("the graph's 'norm_kind' differs from this architecture's norm layers")

    def explain(self) -> list[dict]:
        """Per permutation block: its size, symmetry, the layers holding it and the ops that decided it."""
        out = []
        for b in range(int(self.block.max()) + 1 if self.num_nodes else 0):
            mask = self.block == b
            if not bool(mask.any()):
                continue
            nodes = mask.nonzero().flatten()
            layers = sorted({int(v) for v in self.layer[nodes].tolist()})
            paths = [self.layers[lay - 1].path for lay in layers if lay > 0]
            out.append({"block": b, "size": int(self.pos[nodes].max()) + 1,
                        "symmetry": _sym_label(int(self.sym[nodes[0]])), "layers": paths,
                        "because": list(self.notes.get(b, []))})
        return out


def _sym_label(code: int) -> str:
    from ._symmetry import Symmetry

    return Symmetry(code).label
