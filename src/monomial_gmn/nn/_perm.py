"""A permutation-equivariant graph metanetwork: the backbone of the canonical-form MonomialGMN and the GMN baseline.

Equivariant to permutations of hidden neurons only; the law of :mod:`monomial_gmn.graph._parameter_graph`
restricted to d = 1. Exact monomial invariance comes from running it on a canonical form
(:func:`monomial_gmn.group.canonical_form`), as :class:`~monomial_gmn.nn.MonomialGMN` does.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from ..graph import Role, Symmetry, graph_index, kernel_side, layer_rms, pad_canvas
from ._canon import fixed_index
from ._heads import EquivariantHead, InvariantHead

__all__ = ["PermutationGMN", "GMNLayer", "sinusoidal_encoding", "normalize_layers", "edit_in_normalised_space"]

_LOG_FLOOR = -20.0


def sinusoidal_encoding(index: Tensor, dim: int) -> Tensor:
    """[M, dim] sine/cosine encoding of integer positions [M] (unbounded; no table size)."""
    half = max(dim // 2, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=index.device, dtype=torch.float32) / half)
    ang = index.to(torch.float32).unsqueeze(-1) * freq
    out = torch.cat([torch.sin(ang), torch.cos(ang)], -1)
    return out[:, :dim] if out.shape[1] >= dim else F.pad(out, (0, dim - out.shape[1]))


def normalize_layers(data: Data, mode: str = "layer") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-network, per-layer RMS normalisation of a graph's biases and weights.

    Every bias of parametric layer k is divided by the RMS of that layer's biases in its own network, every
    kernel entry by the RMS of the layer's weights (kernel-window entries only, so batch padding does not
    change it; see :mod:`monomial_gmn.baselines._stats`). The log-RMS values are returned as side features,
    so nothing is lost: the model sees each layer's shape of weights and its overall scale separately.
    Permutations of hidden neurons do not change the RMS; per-neuron scales and signs do change the
    normalised values (this normalisation is not a symmetry reduction).

    Args:
        mode: ``"layer"`` (normalise) or ``"none"`` (raw values; the side features are still returned).

    Returns:
        x [N, F], edge_attr [E, K] (normalised), node_side [N, 2], edge_side [E, 2] (log weight RMS, log bias
        RMS of the node's / edge's layer; zeros for input nodes).
    """
    if mode not in ("layer", "none"):
        raise ValueError(f"normalisation mode must be 'layer' or 'none', not {mode!r}")
    node_graph, _ = graph_index(data)
    w_rms, b_rms = layer_rms(data)                                   # [B, L]
    n_layers = w_rms.shape[1]
    log_w = torch.log(w_rms.clamp_min(1e-30)).clamp_min(_LOG_FLOOR)
    log_b = torch.log(b_rms.clamp_min(1e-30)).clamp_min(_LOG_FLOOR)
    side = torch.stack([log_w, log_b], -1)                            # [B, L, 2]
    edge_graph = node_graph[data.edge_index[1]]
    el = data.edge_layer.clamp(0, n_layers - 1)
    edge_side = side[edge_graph, el]
    nl = (data.layer - 1).clamp(0, n_layers - 1)
    has_layer = (data.layer >= 1).unsqueeze(-1)
    node_side = torch.where(has_layer, side[node_graph, nl], torch.zeros_like(side[node_graph, nl]))
    x, ea = data.x, data.edge_attr
    if mode == "layer":
        ea = ea / w_rms[edge_graph, el].clamp_min(1e-30).unsqueeze(-1)
        x = torch.where(has_layer, x / b_rms[node_graph, nl].clamp_min(1e-30).unsqueeze(-1), x)
    return x, ea, node_side.to(x.dtype), edge_side.to(x.dtype)


class GMNLayer(nn.Module):
    r"""One bidirectional message-passing layer with edge updates (pre-norm residual).

    .. math::
        z_{j\to i} = \sigma\big(A\,\hat h_i + B\,\hat h_j + C\,\hat e_{j\to i} + c\big),\qquad
        e'_{j\to i} = e_{j\to i} + D\,z_{j\to i}

        h'_i = h_i + \mathrm{MLP}\big[\hat h_i,\ \operatorname{mean}_{j\to i} z_{j\to i},\
               \operatorname{mean}_{i\to k} z_{i\to k}\big]

    with :math:`\hat h = \mathrm{LayerNorm}(h)`, :math:`\hat e = \mathrm{LayerNorm}(e)`. The forward
    (from inputs) and backward (from outputs) messages are linear maps of z; since the mean is linear they are
    applied after aggregation, by the first layer of the node MLP, so per-edge work is two C_e×C_e matmuls
    (C ê and D z); node projections A ĥ, B ĥ are computed once per node and gathered onto edges.
    Equivariant to permutations of nodes only.

    Args:
        channels: C, node width; dropout: inside the node update; edge_channels: C_e, edge and message width
            (default C). Per-edge work dominates the cost (E ≈ 6-12 N on CNN graphs), so C_e < C is cheap.
        edge_update: build the edge update ``e' = e + D z`` (default True; False returns e unchanged).

    Shapes:
        h: [N, C], e: [E, C_e], edge_index: [2, E] → (h' [N, C], e' [E, C_e]).
    """

    def __init__(self, channels: int, dropout: float = 0.0, edge_channels: int | None = None,
                 edge_update: bool = True):
        super().__init__()
        c = channels
        ce = edge_channels or c
        self.channels, self.edge_channels = c, ce
        self.norm_h, self.norm_e = nn.LayerNorm(c), nn.LayerNorm(ce)
        self.lin_dst = nn.Linear(c, ce, bias=False)
        self.lin_src = nn.Linear(c, ce, bias=False)
        self.lin_edge = nn.Linear(ce, ce)
        # a layer whose edge output nobody reads (the last one before an invariant head) has no edge update, so
        # every parameter gets a gradient (DistributedDataParallel requires it)
        self.lin_edge_out = nn.Linear(ce, ce) if edge_update else None
        self.update = nn.Sequential(nn.Linear(c + 2 * ce, c), nn.SiLU(), nn.Dropout(dropout), nn.Linear(c, c))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.LayerNorm)) and m is not self:
                m.reset_parameters()

    def forward(self, h: Tensor, e: Tensor, edge_index: Tensor, update_edges: bool = True) -> tuple[Tensor, Tensor]:
        """``update_edges=False`` (or a layer built with ``edge_update=False``) returns e unchanged, e.g. in the
        last layer of a model whose readout reads nodes only."""
        src, dst = edge_index
        n = h.shape[0]
        hn, en = self.norm_h(h), self.norm_e(e)
        z = F.silu(self.lin_dst(hn)[dst] + self.lin_src(hn)[src] + self.lin_edge(en))
        agg_f = scatter(z, dst, 0, dim_size=n, reduce="mean")
        agg_b = scatter(z, src, 0, dim_size=n, reduce="mean")
        h = h + self.update(torch.cat([hn, agg_f, agg_b], -1))
        return h, (e + self.lin_edge_out(z)) if update_edges and self.lin_edge_out is not None else e

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, edge_channels={self.edge_channels})"


class PermutationGMN(nn.Module):
    r"""Permutation-equivariant graph metanetwork (the GMN / Neural-Graphs family: Lim et al. 2024, Kofinas et al.
    2024). On raw graphs it is the ``gmn`` baseline; on canonical forms (:mod:`monomial_gmn.group._canonical`)
    it is the backbone of :class:`~monomial_gmn.nn.MonomialGMN`.

    Encoders (per node i, per edge j → i, after :func:`normalize_layers`):

    .. math::
        h^0_i = \mathrm{MLP}\big[\tilde b_i,\ \log\mathrm{rms}_{\ell(i)}\big] + E^{\text{in}}_{\ell(i)}
                + E^{\text{out}}_{D - \ell(i)} + E^{\text{role}}_{r(i)} + [i\ \text{fixed}]\,P\,\mathrm{pe}(\text{idx}_i)

        e^0_{j\to i} = L\big[\tilde W_{ij},\ \log\mathrm{rms}_{k}\big] + F^{\text{in}}_{k}
                + F^{\text{out}}_{D - 1 - k}

    where ℓ(i) is the node's layer, k the edge's parametric layer, D the network's depth (layer positions are
    counted from both ends, clamped at ``max_layers − 1``, so nets of different depths share the first and
    the last layers' encodings), and pe a sinusoidal encoding of a fixed input/output neuron's index (those
    neurons are never permuted, so encoding their identity is allowed). Then ``num_layers`` of
    :class:`GMNLayer`, a final LayerNorm, and the shared head: :class:`~monomial_gmn.nn.InvariantHead` or
    :class:`~monomial_gmn.nn.EquivariantHead` with ``sym = NONE`` everywhere ("features are already
    invariant"). The model is invariant/equivariant to permutations of hidden neurons only; it is *not*
    invariant to their scales or signs.

    Args:
        out_dim: prediction width (invariant readout; ignored by the equivariant readout).
        readout: ``"invariant"`` → [B, out_dim], or ``"equivariant"`` → an edited graph (``input + delta``).
        hidden_dim: C (default: 128).
        num_layers: message-passing layers (default: 4).
        kernel_side: largest kernel canvas S the model reads (default: 7, as far as MonomialGMN's per-offset
            tables reach); smaller canvases are zero-padded (centred), larger ones raise ``ValueError``.
        max_layers: distinct layer-position embeddings from each end (default: 8).
        norm: ``"layer"`` (per-network per-layer RMS normalisation, default) or ``"none"``.
        dropout: dropout inside the node updates and the head (default: 0).
        edge_dim: C_e, edge feature and message width (default: ``hidden_dim``).
        residual: equivariant readout returns ``input + delta`` (default) or the delta alone.
        node_features: extra per-node input columns read from ``data.node_extra`` [N, k] (default 0).
        edge_features: extra per-edge input columns read from ``data.edge_extra`` [E, k] (default 0).

    Shapes:
        input: ParameterGraph or Batch (any architectures, canvases up to S×S) → [B, out_dim] or a graph.
    """

    def __init__(self, out_dim: int = 1, readout: str = "invariant", hidden_dim: int = 128, num_layers: int = 4,
                 kernel_side: int = 7, max_layers: int = 8, norm: str = "layer", dropout: float = 0.0,
                 edge_dim: int | None = None, residual: bool = True, node_features: int = 0,
                 edge_features: int = 0):
        super().__init__()
        if readout not in ("invariant", "equivariant"):
            raise ValueError(f"GMN: readout must be 'invariant' or 'equivariant', not {readout!r}")
        if hidden_dim < 1 or num_layers < 0 or out_dim < 1 or max_layers < 1:
            raise ValueError(f"GMN: invalid sizes out_dim={out_dim}, hidden_dim={hidden_dim}, "
                             f"num_layers={num_layers}, max_layers={max_layers}")
        if kernel_side < 1 or kernel_side % 2 == 0:
            raise ValueError(f"GMN: kernel_side must be odd and >= 1, got {kernel_side}")
        if norm not in ("layer", "none"):
            raise ValueError(f"GMN: norm must be 'layer' or 'none', not {norm!r}")
        c = hidden_dim
        ce = edge_dim or c
        if ce < 1:
            raise ValueError(f"GMN: edge_dim must be >= 1, got {edge_dim}")
        self.edge_dim = ce
        self.out_dim, self.readout, self.hidden_dim, self.num_layers = out_dim, readout, c, num_layers
        self.kernel_side, self.max_layers, self.norm = kernel_side, max_layers, norm
        k = kernel_side * kernel_side
        if node_features < 0:
            raise ValueError(f"GMN: node_features must be >= 0, got {node_features}")
        if edge_features < 0:
            raise ValueError(f"GMN: edge_features must be >= 0, got {edge_features}")
        self.node_features, self.edge_features = node_features, edge_features
        self.node_in = nn.Sequential(nn.Linear(1 + 2 + node_features, c), nn.SiLU(), nn.Linear(c, c))
        self.edge_in = nn.Linear(k + 2 + edge_features, ce)  # per-edge work costs; the 1st layer: nonlinear
        self.node_pos_in = nn.Embedding(max_layers, c)
        self.node_pos_out = nn.Embedding(max_layers, c)
        self.role_emb = nn.Embedding(len(Role), c)
        self.io_proj = nn.Linear(c, c, bias=False)
        self.edge_pos_in = nn.Embedding(max_layers, ce)
        self.edge_pos_out = nn.Embedding(max_layers, ce)
        edits = readout == "equivariant"
        self.layers = nn.ModuleList([GMNLayer(c, dropout, ce, edge_update=edits or i < num_layers - 1)
                                     for i in range(num_layers)])
        self.final_h = nn.LayerNorm(c)
        self.final_e = nn.LayerNorm(ce) if edits else None
        if readout == "invariant":
            self.head: nn.Module = InvariantHead(c, out_dim, hidden_dim=c, dropout=dropout)
        else:
            self.head = EquivariantHead(c, edge_dim=ce, residual=residual)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is self:
                continue
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.1)
            elif isinstance(m, (nn.Linear, nn.LayerNorm)):
                m.reset_parameters()
        self.head.reset_parameters()

    def _edge_input(self, edge_attr: Tensor) -> Tensor:
        s = kernel_side(edge_attr)
        if s > self.kernel_side:
            raise ValueError(f"GMN reads kernels up to {self.kernel_side}×{self.kernel_side}; this batch has "
                             f"{s}×{s} kernels: build the model with kernel_side={s}")
        return pad_canvas(edge_attr, self.kernel_side)

    def encode(self, data: Data) -> tuple[Tensor, Tensor]:
        """Backbone features (h [N, C], e [E, C]) before the head (with the invariant readout the last
        layer does not update e)."""
        node_graph, b = graph_index(data)
        x, ea, node_side, edge_side = normalize_layers(data, self.norm)
        ea = self._edge_input(ea)
        dt = self.edge_in.weight.dtype
        depth = scatter(data.layer, node_graph, 0, dim_size=b, reduce="max")
        top = self.max_layers - 1
        layer = data.layer
        cols = [x[:, :1], node_side] + _extra_columns(data, "node_extra", x.shape[0], self.node_features)
        h = self.node_in(torch.cat(cols, -1).to(dt))
        h = h + self.node_pos_in(layer.clamp(0, top)) + self.node_pos_out((depth[node_graph] - layer).clamp(0, top))
        h = h + self.role_emb(data.role)
        fixed = (data.sym == Symmetry.FIXED).unsqueeze(-1)
        idx = fixed_index(data, h.shape[0], h.device)
        h = h + fixed * self.io_proj(sinusoidal_encoding(idx, self.hidden_dim).to(dt))
        edge_graph = node_graph[data.edge_index[1]]
        el = data.edge_layer
        ecols = [ea, edge_side] + _extra_columns(data, "edge_extra", ea.shape[0], self.edge_features)
        e = self.edge_in(torch.cat(ecols, -1).to(dt))   # L: one linear map
        e = e + self.edge_pos_in(el.clamp(0, top)) + self.edge_pos_out((depth[edge_graph] - 1 - el).clamp(0, top))
        last = len(self.layers) - 1
        for i, layer_mod in enumerate(self.layers):
            # the invariant head reads node features only: the last edge update would be dead work
            h, e = layer_mod(h, e, data.edge_index, update_edges=self.readout == "equivariant" or i < last)
        return self.final_h(h), (self.final_e(e) if self.final_e is not None else e)

    def forward(self, data: Data):
        h, e = self.encode(data)
        sym = torch.full_like(data.sym, int(Symmetry.NONE))
        if self.readout == "invariant":
            return self.head(h, e, data, sym=sym)
        return edit_in_normalised_space(self.head, h, e, data, sym, self.norm)

    def extra_repr(self) -> str:
        return (f"hidden_dim={self.hidden_dim}, edge_dim={self.edge_dim}, num_layers={self.num_layers}, "
                f"readout={self.readout}, norm={self.norm}, kernel_side={self.kernel_side}")


def _extra_columns(data: Data, key: str, rows: int, width: int) -> list[Tensor]:
    """``[data.<key>]`` ([rows, width]) when the model was built to read ``width`` > 0 extra columns, else []."""
    if not width:
        return []
    extra = getattr(data, key, None)
    if extra is None or extra.shape != (rows, width):
        raise ValueError(f"GMN: built with {width} extra '{key}' columns; the batch needs a '{key}' field of "
                         f"shape [{rows}, {width}]")
    return [extra]


def edit_in_normalised_space(head: nn.Module, h: Tensor, e: Tensor, data: Data, sym: Tensor, norm: str):
    """Run an equivariant head on the per-layer-normalised graph and map its output back to weight scale,
    so each layer's edit is proportional to that layer's RMS (``norm="none"``: the head sees the raw graph)."""
    if norm == "none":
        return head(h, e, data, sym=sym)
    node_graph, _ = graph_index(data)
    w_rms, b_rms = layer_rms(data)
    n_layers = w_rms.shape[1]
    edge_graph = node_graph[data.edge_index[1]]
    el = data.edge_layer.clamp(0, n_layers - 1)
    nl = (data.layer - 1).clamp(0, n_layers - 1)
    has_layer = (data.layer >= 1).unsqueeze(-1)
    ws = w_rms[edge_graph, el].clamp_min(1e-30).unsqueeze(-1).to(data.edge_attr.dtype)
    bs = torch.where(has_layer, b_rms[node_graph, nl].clamp_min(1e-30).unsqueeze(-1),
                     torch.ones_like(data.x[:, :1])).to(data.x.dtype)
    normed = copy.copy(data)
    normed.x, normed.edge_attr = data.x / bs, data.edge_attr / ws
    out = head(h, e, normed, sym=sym)
    out.x, out.edge_attr = out.x * bs, out.edge_attr * ws
    return out
