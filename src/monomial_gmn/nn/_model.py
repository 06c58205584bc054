"""MonomialGMN: a graph metanetwork exactly invariant/equivariant to each input network's monomial group."""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..graph import Symmetry
from ..group import CANONICAL_SCALES, canonical_form
from ._canon import node_sym
from ._encoder import GraphEncoder
from ._heads import EquivariantHead, InvariantHead
from ._layer import MonomialMPLayer
from ._ops import Segments
from ._perm import PermutationGMN

__all__ = ["MonomialGMN"]

_READOUTS = ("invariant", "equivariant")
#: The two designs: ``"canonical"`` (default) and ``"layers"`` (see :class:`MonomialGMN`).
DESIGNS = ("canonical", "layers")

#: Default edge feature width cap (``edge_dim=None`` means ``min(hidden_dim, DEFAULT_EDGE_DIM)``); chosen by
#: measurement, see experiments/results/bench_layers.md.
DEFAULT_EDGE_DIM = 32


class MonomialGMN(nn.Module):
    r"""Graph metanetwork over parameter graphs, exact under permutations, positive scalings and signs.

    Two designs, both exact:

    * ``design="canonical"`` (default): each network is mapped to the canonical representative of its
      scale/sign orbit (:func:`monomial_gmn.group.canonical_form`: signs oriented, then balanced to least
      energy), and a permutation-equivariant message-passing network (:class:`PermutationGMN`, per-layer RMS
      normalisation, bidirectional messages with edge updates) reads it. Invariant readout: a pooled
      prediction. Equivariant readout: the edit is computed on the canonical form and mapped back with the
      inverse of the canonicalising element (:meth:`CanonicalForm.lift`), so the output is ``G + f⁻¹·Δ``.
    * ``design="layers"``: ``GraphEncoder`` → ``num_layers`` × :class:`MonomialMPLayer` (equivariant layers that
      carry the law in every feature) → :class:`InvariantHead` or :class:`EquivariantHead`. It learns much less
      well than the canonical design (experiments/results/quality_defaults, 2 zoos × 3 seeds: test τ 0.662 vs
      0.766 on ReLU nets, 0.736 vs 0.789 on tanh) and is kept for comparison.

    Law: for every element g of each network's monomial group (see
    :mod:`monomial_gmn.graph._parameter_graph`), ``model(g·G) == model(G)`` (``readout="invariant"``) and
    ``model(g·G) == g·model(G)`` (``readout="equivariant"``). One batch may mix architectures and
    activations; each neuron is treated by its own symmetry code.

    Args:
        out_dim: prediction width (required for ``readout="invariant"``, unused otherwise).
        hidden_dim: C, node feature width (default 128).
        num_layers: message-passing layers (default 4).
        readout: ``"invariant"`` or ``"equivariant"`` (default ``"invariant"``).
        design: ``"canonical"`` (default) or ``"layers"`` (see above).
        canonical_scale: the canonical design's scale normalisation, ``"balance"`` (default) or ``"norm"``.
        energy_features: canonical design: give every neuron the logs of its incoming (weights and bias) and
            outgoing energy in the canonical form as two more input features (default False).
        phase_features: canonical design: ``w0`` > 0 gives every sign-symmetric neuron (sin, tanh) the phase of
            its canonical bias, ``sin(w0·b)`` and ``cos(w0·b)``, as two more input features, and each of its
            incoming edges ``sin(w0·W)`` and ``cos(w0·W)`` as two more edge columns (a SIREN computes
            ``sin(w0 (W x + b))``: w0·b is a phase, w0·W of the first layer a frequency); zeros for other
            neurons and edges. Read on the canonical form, so exact. Default 0 (off).
        bidirectional: also pass messages from neurons to their inputs. ``design="layers"``: default False.
            The canonical design's messages are always bidirectional (None or True; False is refused).
        kernel_radius: kernels are read on a (2r+1)² canvas (default 3; the canonical design refuses larger
            canvases with a clear error).
        dropout: dropout inside the invariant head (default 0).
        edge_dim: C_e, edge feature and message width (default ``min(hidden_dim, DEFAULT_EDGE_DIM)`` = 32 at
            most). Per-edge work — the C_e x C_e edge projection, the gathers, products and segment sums — is
            what dominates the cost (E ≈ 12 N on CNN graphs), so a narrow edge width buys throughput and
            memory: at hidden 128 on Small-CNN-Zoo graphs, 32 instead of 128 trains about 3.4x more nets per
            CPU-second with 40 % of the activation memory, at a small accuracy cost in a short check
            (experiments/results/bench_layers.md). Pass ``edge_dim=hidden_dim`` for the widest model.
    Shapes:
        batch: PyG ``Batch`` of B ParameterGraphs (or one graph) -> [B, out_dim], or a shallow copy of the
        batch with new ``x`` [N, F] and ``edge_attr`` [E, S*S].

    ``design="layers"``: call :meth:`fit_normalizer` once on training data (a GraphLoader, Batch or graph) to set
    the per-layer weight/bias normalisation constants (buffers; saved in the ``state_dict``).

    Readout parts on exactly invariant features (the invariant-feature MLP, the probe readout) are not part of
    this backbone: ``monomial_gmn.models.build_model("monomial", ..., feature_readout=True, probes=128)`` composes
    them with it (backbone output + Σ part outputs).
    """

    def __init__(self, out_dim: int | None = None, hidden_dim: int = 128, num_layers: int = 4,
                 readout: str = "invariant", bidirectional: bool | None = None, kernel_radius: int = 3,
                 dropout: float = 0.0, edge_dim: int | None = None, design: str = "canonical",
                 canonical_scale: str = "balance",
                 energy_features: bool = False, phase_features: float = 0.0):
        super().__init__()
        if design not in DESIGNS:
            raise ValueError(f"MonomialGMN: design must be one of {DESIGNS}, got {design!r}")
        if design == "canonical" and bidirectional is False:
            raise ValueError("MonomialGMN: the canonical design's messages are always bidirectional; "
                             "bidirectional=False needs design='layers'")
        bidirectional = design == "canonical" if bidirectional is None else bool(bidirectional)
        if canonical_scale not in CANONICAL_SCALES:
            raise ValueError(f"MonomialGMN: canonical_scale must be one of {CANONICAL_SCALES}, got {canonical_scale!r}")
        if readout not in _READOUTS:
            raise ValueError(f"MonomialGMN: readout must be one of {_READOUTS}, got {readout!r}")
        if readout == "invariant" and (out_dim is None or out_dim < 1):
            raise ValueError(f"MonomialGMN: readout='invariant' needs out_dim >= 1, got {out_dim}")
        if hidden_dim < 1:
            raise ValueError(f"MonomialGMN: hidden_dim must be >= 1, got {hidden_dim}")
        edge_dim = min(hidden_dim, DEFAULT_EDGE_DIM) if edge_dim is None else edge_dim
        if edge_dim < 1:
            raise ValueError(f"MonomialGMN: edge_dim must be >= 1, got {edge_dim}")
        if num_layers < 0:
            raise ValueError(f"MonomialGMN: num_layers must be >= 0, got {num_layers}")
        if kernel_radius < 0:
            raise ValueError(f"MonomialGMN: kernel_radius must be >= 0, got {kernel_radius}")
        self.out_dim, self.hidden_dim, self.num_layers = out_dim, hidden_dim, num_layers
        self.readout, self.bidirectional, self.edge_dim = readout, bidirectional, edge_dim
        self.design, self.canonical_scale, self.energy_features = design, canonical_scale, energy_features
        if not (float(phase_features) >= 0 and float(phase_features) < float("inf")):
            raise ValueError(f"MonomialGMN: phase_features must be a finite w0 >= 0, got {phase_features}")
        if phase_features and design != "canonical":
            raise ValueError("MonomialGMN: phase_features needs design='canonical'")
        self.phase_features = float(phase_features)
        self.backbone: PermutationGMN | None = None
        if design == "canonical":
            self.backbone = PermutationGMN(out_dim or 1, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers,
                                           kernel_side=2 * kernel_radius + 1, dropout=dropout, edge_dim=edge_dim,
                                           residual=False,
                                           node_features=(2 if energy_features else 0) + (2 if phase_features else 0),
                                           edge_features=2 if phase_features else 0)
        else:
            self.encoder = GraphEncoder(hidden_dim, kernel_radius=kernel_radius, edge_channels=edge_dim)
            last_edges = readout == "equivariant"
            self.layers = nn.ModuleList(
                MonomialMPLayer(hidden_dim, bidirectional=bidirectional,
                                update_edges=(i < num_layers - 1) or last_edges, edge_channels=edge_dim)
                for i in range(num_layers))
        if readout == "invariant":
            if design == "layers":
                self.head: nn.Module = InvariantHead(hidden_dim, out_dim, dropout=dropout)
        elif design == "layers":
            self.head = EquivariantHead(hidden_dim, edge_dim=edge_dim, kernel_radius=kernel_radius)

    def reset_parameters(self) -> None:
        if self.backbone is not None:
            self.backbone.reset_parameters()
        else:
            self.encoder.reset_parameters()
            for layer in self.layers:
                layer.reset_parameters()
            self.head.reset_parameters()

    def fit_normalizer(self, data: Data | Iterable[Data]) -> "MonomialGMN":
        """Fit the encoder's dataset-level normalisation constants (``design="layers"``; the canonical design has
        none); see :meth:`GraphEncoder.fit_normalizer`. Unsupervised: targets are not read."""
        if self.backbone is None:
            self.encoder.fit_normalizer(data)
        return self

    def features(self, batch, sym: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``design="layers"``: final node [N, C], edge [E, C] features and node energies [N, 1] (equivariant)
        before the head. (The canonical design's features are ``self.backbone.encode(canonical graph)``.)"""
        if self.backbone is not None:
            raise ValueError("MonomialGMN.features is for design='layers'; the canonical design's features are "
                             "model.backbone.encode(monomial_gmn.group.canonical_form(batch).graph)")
        sym = node_sym(batch, sym)
        h, e = self.encoder(batch)
        energy = (h * h).sum(-1, keepdim=True).detach()
        n = h.shape[0]
        seg_src, seg_dst = Segments(batch.edge_index[0], n), Segments(batch.edge_index[1], n)
        for layer in self.layers:
            h, e, energy = layer(h, e, energy, sym, seg_src, seg_dst)
        return h, e, energy

    def forward(self, batch, sym: Tensor | None = None):
        """``sym`` overrides ``batch.sym`` (e.g. all ``Symmetry.NONE`` gives a permutation-only model)."""
        sym = node_sym(batch, sym)
        if self.backbone is not None:
            out = self._canonical_forward(batch, sym)
        else:
            h, e, energy = self.features(batch, sym)
            out = self.head(h, e, batch, sym, energy=energy)
        return out

    def _canonical_forward(self, batch, sym: Tensor):
        if sym is not getattr(batch, "sym", None):
            batch = copy.copy(batch)
            batch.sym = sym
        with torch.no_grad():
            cf = canonical_form(batch, scale=self.canonical_scale)
            rep = cf.graph
            extra = [_log_energies(rep)] if self.energy_features else []
            if self.phase_features:
                node_phase, edge_phase = _phases(rep, self.phase_features)
                extra.append(node_phase)
            if extra:
                rep = copy.copy(rep)
                rep.node_extra = torch.cat(extra, -1)
            if self.phase_features:
                rep.edge_extra = edge_phase
        out = self.backbone(rep)
        if self.readout == "invariant":
            return out
        dx, de = cf.lift(out.x, out.edge_attr, batch.edge_index)      # the edit, back in the input's frame
        edited = copy.copy(batch)
        edited.x, edited.edge_attr = batch.x + dx, batch.edge_attr + de
        return edited

    def extra_repr(self) -> str:
        return (f"design={self.design!r}, out_dim={self.out_dim}, hidden_dim={self.hidden_dim}, "
                f"num_layers={self.num_layers}, readout={self.readout!r}, edge_dim={self.edge_dim}"
                + (f", canonical_scale={self.canonical_scale!r}" if self.backbone is not None
                   else f", bidirectional={self.bidirectional}"))


def _phases(graph, w0: float) -> tuple[Tensor, Tensor]:
    """Node [N, 2] (sin, cos of w0·bias) and edge [E, 2] (sin, cos of w0·weight, the kernel's centre entry) of
    every sign-symmetric neuron and its incoming edges; zeros elsewhere."""
    sign = graph.sym == Symmetry.SIGN
    b = graph.x[:, :1].to(torch.float64) * w0
    node = torch.where(sign.unsqueeze(-1), torch.cat([b.sin(), b.cos()], -1), torch.zeros_like(b).expand(-1, 2))
    centre = graph.edge_attr.shape[-1] // 2
    w = graph.edge_attr[:, centre:centre + 1].to(torch.float64) * w0
    edge_sign = sign[graph.edge_index[1]].unsqueeze(-1)
    edge = torch.where(edge_sign, torch.cat([w.sin(), w.cos()], -1), torch.zeros_like(w).expand(-1, 2))
    return node.to(graph.x.dtype), edge.to(graph.edge_attr.dtype)


def _log_energies(graph) -> Tensor:
    """[N, 2] log incoming (weights and bias) and log outgoing energy of every neuron, floored at log 1e-30."""
    e2 = (graph.edge_attr.to(torch.float64) ** 2).sum(-1)
    src, dst = graph.edge_index
    n = graph.x.shape[0]
    e_in = torch.zeros(n, dtype=torch.float64, device=e2.device).index_add_(0, dst, e2)
    e_in = e_in + (graph.x.to(torch.float64) ** 2).sum(-1)
    e_out = torch.zeros(n, dtype=torch.float64, device=e2.device).index_add_(0, src, e2)
    return torch.stack([e_in, e_out], -1).clamp_min(1e-30).log().to(graph.x.dtype)
