"""Readout heads shared by every model (MonomialGMN and the baselines).

Interface (stable; baselines plug into it)
-----------------------------------------
Both heads take the backbone's final features plus the batch they came from::

    head(h, e, batch, sym=None)

* ``h``: [N, C] node features, ``e``: [E, C_e] edge features (or ``None`` for the invariant head), in the
  node/edge order of ``batch`` (a PyG ``Batch`` of ParameterGraphs or one ParameterGraph).
* ``batch`` must carry ``role`` [N], ``layer`` [N] and, unless ``sym`` is given, ``sym`` [N];
  ``batch.batch``/``num_graphs`` when it holds several graphs. The equivariant head also reads ``x`` and
  ``edge_attr`` (it returns ``input + delta``) and ``edge_index``/``edge_layer``.
* ``energy`` (optional keyword): [N, 1] ∝ d_i², a cancellation-free magnitude reference used instead of
  ``‖h_i‖²`` when canonicalising (MonomialGMN passes it; baselines may leave it out).
* ``sym``: [N] long symmetry codes overriding ``batch.sym``. Features of a model that is equivariant to the
  monomial group should leave it ``None``. A permutation-only baseline passes
  ``torch.full_like(batch.sym, Symmetry.NONE)``: "no canonicalisation, the features are already invariant".

Law: the heads expect ``h`` and ``e`` to transform channel-wise by the law of
:mod:`monomial_gmn.graph._parameter_graph` (the monomial group of each network). :class:`InvariantHead` returns
[B, out_dim] unchanged under the group; :class:`EquivariantHead` returns a graph transforming by the law.
Input/output neurons are never permuted, so they get per-index embeddings; their counts vary between
architectures, so they are pooled per role, never by a fixed count.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..graph import Role, graph_ids
from ._canon import Canonicalize, fixed_index, node_sym, role_pool
from ._kernel import canvas_weight

__all__ = ["InvariantHead", "EquivariantHead"]


def _num_graphs(batch, n: int) -> int:
    ng = getattr(batch, "num_graphs", None)
    if ng is None or getattr(batch, "batch", None) is None:
        return 1
    return int(ng)


class InvariantHead(nn.Module):
    r"""Invariant readout: canonicalise per node, embed, pool per role, MLP.

    .. math::
        u_i = \phi\big(\mathrm{inv}(h_i) + [\text{role}_i \ne \text{hidden}]\, p_{\text{idx}(i)}\big),\qquad
        y = \mathrm{MLP}\big[\overline{u}_{\text{in}},\ \overline{u}_{\text{out}},\
            \overline{u}_{\text{hid}},\ \max_{\text{hid}} u\big]

    ``inv`` is :class:`Canonicalize` (per the node's symmetry), ``p`` a learned embedding of the index of a
    fixed input/output neuron inside its layer (clamped at ``max_index - 1``), ``φ`` a two-layer node MLP,
    bars are means over the graph's neurons of that role (empty roles give 0).

    Law: ``y(g·G) == y(G)`` for every element g of each network's monomial group.

    Args:
        in_dim: C, node feature width.
        out_dim: prediction width.
        hidden_dim: width of φ and the MLP (default: ``in_dim``).
        max_index: number of per-index embeddings for input/output neurons (default: 64).
        dropout: dropout before the last linear layer (default: 0).

    Shapes:
        h: [N, C], e: ignored (may be None), batch: B graphs, sym: [N] or None, energy: [N, 1] or None
        -> [B, out_dim].
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, max_index: int = 64,
                 dropout: float = 0.0):
        super().__init__()
        hidden_dim = hidden_dim or in_dim
        if in_dim < 1 or out_dim < 1 or hidden_dim < 1:
            raise ValueError(f"InvariantHead: dims must be >= 1, got in_dim={in_dim}, out_dim={out_dim}, "
                             f"hidden_dim={hidden_dim}")
        if max_index < 1:
            raise ValueError(f"InvariantHead: max_index must be >= 1, got {max_index}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"InvariantHead: dropout must be in [0, 1), got {dropout}")
        self.in_dim, self.out_dim, self.hidden_dim, self.max_index = in_dim, out_dim, hidden_dim, max_index
        self.canon = Canonicalize(in_dim)
        self.index_emb = nn.Embedding(max_index, in_dim)
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.mlp = nn.Sequential(nn.Linear(4 * hidden_dim, hidden_dim), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.canon.reset_parameters()
        nn.init.normal_(self.index_emb.weight, std=0.1)
        for m in (*self.phi, *self.mlp):
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, h: Tensor, e: Tensor | None, batch, sym: Tensor | None = None,
                energy: Tensor | None = None) -> Tensor:
        sym = node_sym(batch, sym)
        n = h.shape[0]
        inv = self.canon(h, sym, energy)
        fixed = (batch.role != Role.HIDDEN).unsqueeze(-1)
        idx = fixed_index(batch, n, h.device).clamp_max(self.max_index - 1)
        inv = inv + fixed * self.index_emb(idx).to(inv.dtype)
        u = self.phi(inv)
        b = _num_graphs(batch, n)
        mean = role_pool(u, batch, b, "mean")                     # [B, 3, H]
        hid_max = role_pool(u, batch, b, "max")[:, int(Role.HIDDEN)]
        z = torch.cat([mean[:, int(Role.INPUT)], mean[:, int(Role.OUTPUT)], mean[:, int(Role.HIDDEN)], hid_max], -1)
        return self.mlp(z)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_dim}, {self.out_dim}, hidden_dim={self.hidden_dim})"


class EquivariantHead(nn.Module):
    r"""Equivariant readout for weight editing: a ParameterGraph-shaped output, ``input + delta``.

    .. math::
        x'_i = x_i + s_x\,[\text{role}_i \ne \text{input}]\;
               \big(h_i \odot \sigma(G\,\mathrm{inv}(h_i) + c)\big) w_x,\qquad
        e'_{j\to i} = a_{j\to i} + s_e\, m_{j\to i} \odot (W_e\, e_{j\to i})

    ``a`` is the input ``edge_attr`` [E, K]; ``W_e`` [K, C_e] holds one bias-free row per kernel offset
    (any canvas side S: see :func:`canvas_weight`); ``m`` masks the canvas cells that no edge of the same
    (graph, layer) uses, so padding added by batching stays zero; ``s_x, s_e`` are learnable output scales
    initialised small (``init_scale``). With ``residual=False`` the head returns the deltas alone.

    Law: bias-free maps of features carrying the law, times invariant gates, carry the law:
    ``head(g·G) == g·head(G)`` (x as node features, edge_attr as edge features).

    Args:
        in_dim: C, node feature width.
        edge_dim: C_e, edge feature width (default: ``in_dim``).
        kernel_radius: r, per-offset weights cover a (2r+1)² canvas; farther cells share the border (default 3).
        init_scale: initial output scales (default: 1e-2).
        residual: return ``input + delta`` (default: True) or the delta.

    Shapes:
        h: [N, C], e: [E, C_e], energy: [N, 1] or None -> a shallow copy of ``batch`` with x [N, F] and edge_attr [E, K].
    """

    def __init__(self, in_dim: int, edge_dim: int | None = None, kernel_radius: int = 3, init_scale: float = 1e-2,
                 residual: bool = True):
        super().__init__()
        edge_dim = edge_dim or in_dim
        if in_dim < 1 or edge_dim < 1:
            raise ValueError(f"EquivariantHead: dims must be >= 1, got in_dim={in_dim}, edge_dim={edge_dim}")
        if kernel_radius < 0:
            raise ValueError(f"EquivariantHead: kernel_radius must be >= 0, got {kernel_radius}")
        if not init_scale > 0:
            raise ValueError(f"EquivariantHead: init_scale must be > 0, got {init_scale}")
        self.in_dim, self.edge_dim, self.kernel_radius = in_dim, edge_dim, kernel_radius
        self.init_scale, self.residual = init_scale, residual
        self.canon = Canonicalize(in_dim)
        self.gate = nn.Linear(in_dim, in_dim)
        self.node_out = nn.Parameter(torch.empty(in_dim, 1))
        self.edge_table = nn.Parameter(torch.empty((2 * kernel_radius + 1) ** 2, edge_dim))
        self.scale_x = nn.Parameter(torch.empty(()))
        self.scale_e = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.canon.reset_parameters()
        self.gate.reset_parameters()
        nn.init.normal_(self.node_out, std=self.in_dim ** -0.5)
        nn.init.normal_(self.edge_table, std=self.edge_dim ** -0.5)
        nn.init.constant_(self.scale_x, self.init_scale)
        nn.init.constant_(self.scale_e, self.init_scale)

    def forward(self, h: Tensor, e: Tensor, batch, sym: Tensor | None = None, energy: Tensor | None = None):
        sym = node_sym(batch, sym)
        x0, a0 = batch.x, batch.edge_attr
        inv = self.canon(h, sym, energy)
        gated = h * torch.sigmoid(self.gate(inv))
        dx = gated @ self.node_out.to(h.dtype)                      # [N, 1]
        dx = dx.expand(-1, x0.shape[1]) * (batch.role != Role.INPUT).unsqueeze(-1)
        k = a0.shape[1]
        w = canvas_weight(self.edge_table, k, self.kernel_radius).to(e.dtype)   # [K, C_e]
        de = (e @ w.t()) * self._canvas_mask(batch, a0)
        out = copy.copy(batch)
        if self.residual:
            out.x = x0 + self.scale_x * dx
            out.edge_attr = a0 + self.scale_e * de
        else:
            out.x = self.scale_x * dx
            out.edge_attr = self.scale_e * de
        return out

    @staticmethod
    def _canvas_mask(batch, a0: Tensor) -> Tensor:
        """[E, K] 0/1: cells used by at least one edge of the same (graph, parametric layer)."""
        if a0.shape[1] == 1:
            return torch.ones_like(a0)
        src = batch.edge_index[0]
        g = graph_ids(batch, device=src.device)[src]
        lay = getattr(batch, "edge_layer", None)
        lay = lay if lay is not None else torch.zeros_like(src)
        key = g * (int(lay.max()) + 1 if lay.numel() else 1) + lay
        used = scatter((a0 != 0).to(a0.dtype), key, 0, dim_size=int(key.max()) + 1 if key.numel() else 0,
                       reduce="max")
        return used[key]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_dim}, edge_dim={self.edge_dim}, "
                f"kernel_radius={self.kernel_radius}, residual={self.residual})")
