"""GraphEncoder: law-preserving input normalisation and encodings of a batch of parameter graphs."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from ..graph import Role, graph_ids
from ._canon import d1_mask, fixed_index
from ._kernel import canvas_weight
from ._ops import Segments, gather_mul

__all__ = ["GraphEncoder"]


class GraphEncoder(nn.Module):
    r"""Initial node/edge features of parameter graphs, keeping the transformation law.

    .. math::
        h^0_i &= (\nu_{k(i)}\, x_i\, W_x) \odot \big(\alpha_{\text{role}_i} + \beta_{\ell_i} +
                 \gamma_{L-\ell_i}\big) + [d_i \equiv 1]\big(\alpha'_{\text{role}_i} + \beta'_{\ell_i} +
                 [\text{fixed}_i]\, p_{\text{idx}(i)}\big)\\
        e^0_{ji} &= (\mu_{k(ji)}\, a_{ji}\, W_{\text{canvas}}) \odot \big(\tau_{k(ji)} +
                 \tau'_{t(ji),\,L-\ell_i}\big)

    ``ℓ_i`` is the neuron's layer and ``L`` the depth of its network (both clamped at ``max_layer``);
    ``k(i)`` = (role, layer) and ``k(ji)`` = (source role, target role, parametric layer) index the
    *dataset-level constants* ``ν, μ`` (buffers set by :meth:`fit_normalizer`, 1 until then): a constant
    per layer commutes with the law, so normalising by it keeps exactness. ``W_x`` and ``W_canvas`` are
    bias-free (one row per kernel offset, any canvas side S, see :func:`canvas_weight`); the learned
    encodings multiply features of scaled neurons and are *added* only where d ≡ 1 (input/output neurons
    and symmetry ``none``); per-index embeddings ``p`` only on fixed (never permuted) neurons.

    Law: ``h^0(g·G) = g·h^0(G)`` (∝ d_i) and ``e^0(g·G) = g·e^0(G)`` (∝ d_i/d_j), channel-wise, as stated in
    :mod:`monomial_gmn.graph._parameter_graph`.

    Args:
        channels: C, node feature width.
        node_features: F, columns of ``x`` (default 1).
        kernel_radius: per-offset weights cover a (2r+1)² canvas (default 3).
        max_layer: layer indices are clamped here for encodings/normalisers (default 8).
        max_index: per-index embeddings of fixed neurons (default 64).
        edge_channels: C_e, edge feature width (default: ``channels``).

    Shapes:
        batch with x [N, F], edge_attr [E, S*S], role/layer/sym [N], edge_layer [E] -> h [N, C], e [E, C_e].
    """

    def __init__(self, channels: int, node_features: int = 1, kernel_radius: int = 3, max_layer: int = 8,
                 max_index: int = 64, edge_channels: int | None = None):
        super().__init__()
        edge_channels = channels if edge_channels is None else edge_channels
        for name, v, lo in (("channels", channels, 1), ("edge_channels", edge_channels, 1),
                            ("node_features", node_features, 1),
                            ("kernel_radius", kernel_radius, 0), ("max_layer", max_layer, 1),
                            ("max_index", max_index, 1)):
            if v < lo:
                raise ValueError(f"GraphEncoder: {name} must be >= {lo}, got {v}")
        self.channels, self.node_features, self.kernel_radius = channels, node_features, kernel_radius
        self.max_layer, self.max_index, self.edge_channels = max_layer, max_index, edge_channels
        nl = max_layer + 1
        self.x_lin = nn.Linear(node_features, channels, bias=False)
        self.node_mult = nn.Embedding(3 + 2 * nl, channels)          # role | layer | layers-from-end
        self.node_add = nn.Embedding(3 + nl + max_index, channels)   # role | layer | fixed index
        self.edge_table = nn.Parameter(torch.empty((2 * kernel_radius + 1) ** 2, edge_channels))
        self.edge_mult = nn.Embedding(9 * nl * 2, edge_channels)         # (type, layer) | (type, layers-from-end)
        self.register_buffer("node_scale", torch.ones(3 * nl))
        self.register_buffer("edge_scale", torch.ones(9 * nl))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.x_lin.reset_parameters()
        nn.init.normal_(self.node_mult.weight, mean=1.0 / 3, std=0.1)
        nn.init.normal_(self.node_add.weight, std=0.3)
        nn.init.normal_(self.edge_table, std=1.0)
        nn.init.normal_(self.edge_mult.weight, mean=0.5, std=0.1)

    # ------------------------------------------------------------------ keys
    def _keys(self, batch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        role, layer = batch.role, batch.layer
        n = role.shape[0]
        device = role.device
        nl = self.max_layer + 1
        gid = graph_ids(batch, n, device)
        depth = scatter(layer, gid, 0, dim_size=int(gid.max()) + 1 if n else 0, reduce="max")[gid]
        lay = layer.clamp_max(self.max_layer)
        rev = (depth - layer).clamp(0, self.max_layer)
        src, dst = batch.edge_index
        etype = role[src] * 3 + role[dst]
        elay = getattr(batch, "edge_layer", None)
        elay = (elay if elay is not None else layer[dst] - 1).clamp(0, self.max_layer)
        return role * nl + lay, lay, rev, etype * nl + elay, etype * nl + rev[dst]

    # ------------------------------------------------------------------ normaliser
    @torch.no_grad()
    def fit_normalizer(self, data: Data | Iterable[Data]) -> "GraphEncoder":
        """Set the dataset-level constants ν, μ to 1 / RMS of the non-zero biases / weights per key.

        ``data``: a ParameterGraph, a Batch or an iterable of them (e.g. a GraphLoader over a training zoo).
        Keys with no non-zero entries keep 1. Returns self.
        """
        batches = [data] if isinstance(data, Data) else data
        nsum = torch.zeros_like(self.node_scale, dtype=torch.float64)
        ncnt = torch.zeros_like(nsum)
        esum = torch.zeros_like(self.edge_scale, dtype=torch.float64)
        ecnt = torch.zeros_like(esum)
        for b in batches:
            b = b.to(self.node_scale.device)
            nkey, _, _, ekey, _ = self._keys(b)
            x = b.x.double()
            nz = (x != 0).double()
            nsum.index_add_(0, nkey, (x * x).sum(-1))
            ncnt.index_add_(0, nkey, nz.sum(-1))
            a = b.edge_attr.double()
            esum.index_add_(0, ekey, (a * a).sum(-1))
            ecnt.index_add_(0, ekey, (a != 0).double().sum(-1))
        for buf, s, cnt in ((self.node_scale, nsum, ncnt), (self.edge_scale, esum, ecnt)):
            rms = (s / cnt.clamp_min(1)).sqrt()
            ok = (cnt > 0) & (rms > 0)
            buf.copy_(torch.where(ok, 1.0 / rms.clamp_min(1e-300), torch.ones_like(rms)).to(buf.dtype))
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, batch) -> tuple[Tensor, Tensor]:
        nl = self.max_layer + 1
        x, a = batch.x, batch.edge_attr
        n = x.shape[0]
        nkey, lay, rev, ekey, erkey = self._keys(batch)
        role = batch.role
        xs = x * self.node_scale[nkey].to(x.dtype).unsqueeze(-1)
        mult = self.node_mult(torch.stack([role, 3 + lay, 3 + nl + rev])).sum(0)
        h = self.x_lin(xs) * mult.to(x.dtype)
        fixed = role != Role.HIDDEN
        idx = fixed_index(batch, n, x.device).clamp_max(self.max_index - 1)
        add = self.node_add(torch.stack([role, 3 + lay])).sum(0) + fixed.unsqueeze(-1) * self.node_add(3 + nl + idx)
        h = h + d1_mask(batch.sym).unsqueeze(-1) * add.to(x.dtype)
        w = canvas_weight(self.edge_table, a.shape[1], self.kernel_radius).to(a.dtype)
        a = a * self.edge_scale[ekey].to(a.dtype).unsqueeze(-1)
        # τ_{type, layer} + τ'_{type, layers-from-end} as one [9·nl·nl, C] table, gathered once per edge
        t = self.edge_mult.weight.to(a.dtype).view(2, 9, nl, 1, -1)
        table = (t[0] + t[1].transpose(1, 2)).reshape(9 * nl * nl, -1)
        key = ekey * nl + (erkey % nl)
        e = gather_mul(a @ w, table, Segments(key, table.shape[0]))
        return h, e

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, edge_channels={self.edge_channels}, "
                f"kernel_radius={self.kernel_radius}, max_layer={self.max_layer})")
