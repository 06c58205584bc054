"""MonomialMPLayer: one message-passing step that keeps the monomial transformation law exactly."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._canon import Canonicalize, d1_mask, inverse_norm2
from ._ops import Segments, edge_update, gather_mul, scatter_sum

__all__ = ["MonomialMPLayer"]


class MonomialMPLayer(nn.Module):
    r"""Monomial-equivariant message passing on parameter graphs (node and edge features).

    Each node carries features ``h_i`` and a scalar *energy* ``ε_i`` ∝ d_i² (a sum of squares of everything
    that was added up to form ``h_i``, so it is free of cancellation; see :class:`Canonicalize`). With
    ``inv`` the per-node canonicalisation, ``n_i`` = ``ε_i`` where |d| is free and ``ε_i + 1`` where
    |d| = 1 (:func:`inverse_norm2`), σ the logistic function and every capital letter a bias-free
    channel-mixing matrix (gates ``G`` have biases: they read invariants only):

    .. math::
        P_j &= B h_j \odot \sigma(G_P\,\mathrm{inv}(h_j; \varepsilon_j)) && \propto d_j\\
        a_{ji} &= A\,e_{ji} && \propto d_i/d_j\\
        m_{ji} &= a_{ji} \odot P_j && \propto d_i\\
        \bar m_i &= \tfrac{1}{|\mathcal{N}^{in}_i|}\textstyle\sum_{j\to i} m_{ji}, \qquad
        \mu_i = \tfrac{1}{|\mathcal{N}^{in}_i|}\textstyle\sum_{j\to i} \lVert m_{ji}\rVert^2
            && \propto d_i,\ d_i^2\\
        t_{ji} &= m_{ji} \odot Q h_i / n'_i,\quad n'_i = n(\varepsilon_i + \mu_i) && \text{invariant}\\
        \bar b_j &= \big(\tfrac{1}{|\mathcal{N}^{out}_j|}\textstyle\sum_{j\to i} t_{ji}\big)\odot D h_j
                 && \propto d_j \quad\text{(bidirectional only)}\\
        z_i &= U[h_i, \bar m_i, \bar b_i] + [d_i \equiv 1]\,c && \propto d_i\\
        \varepsilon'_i &= \varepsilon_i + \mu_i + \lVert z_i\rVert^2 && \propto d_i^2\\
        h'_i &= h_i + z_i \odot \sigma(G_z\,\mathrm{inv}(z_i; \varepsilon'_i)) && \propto d_i\\
        e'_{ji} &= e_{ji} + a_{ji} \odot \sigma(G_e\,\mathrm{inv}(h_i; \varepsilon_i)) + R h_i \odot S h_j / n_j
                 && \propto d_i/d_j \quad\text{(if update\_edges)}

    Every product multiplies factors whose scales cancel to the law of its left-hand side, for d > 0,
    d = ±1 and any d ≠ 0 alike (``h_j / n_j`` transforms as 1/d_j exactly, by homogeneity), so the backward
    message is exact — unlike a message ``e_{ji} h_i``, which scales as d_i²/d_j. The bias ``c`` is added
    only on neurons whose factor is always 1 (input/output neurons and symmetry ``none``). Per-node
    projections and gates are computed on nodes and gathered once per direction; per edge there is one
    bias-free projection ``A e``, a few element-wise products and segment-sum aggregation (:mod:`._ops`).

    Law: ``layer(g·h, g·e, g·ε) == g·layer(h, e, ε)`` for g acting on h and e by the law of
    :mod:`monomial_gmn.graph._parameter_graph` (every channel) and on the energy by ε_i → d_i² ε_i.

    Args:
        channels: C, node feature width.
        bidirectional: also send messages from each neuron to its inputs (default: False).
        update_edges: compute new edge features (default: True); the last layer before an invariant readout
            may skip it.
        edge_channels: C_e, width of edge features and messages (default: ``channels``). Node projections
            ``B, Q, D, R, S`` and gates map C -> C_e, ``A`` is C_e x C_e and ``U`` maps C + C_e (+ C_e) -> C;
            per-edge cost is proportional to C_e (and C_e² for ``A``).

    Shapes:
        h: [N, C], e: [E, C_e], energy: [N, 1], sym: [N] long, seg_src/seg_dst: :class:`Segments` of
        ``edge_index[0]`` (sources j) and ``edge_index[1]`` (targets i)
        -> (h' [N, C], e' [E, C_e] (or e unchanged), energy' [N, 1]).
    """

    def __init__(self, channels: int, bidirectional: bool = False, update_edges: bool = True,
                 edge_channels: int | None = None):
        super().__init__()
        edge_channels = channels if edge_channels is None else edge_channels
        if channels < 1:
            raise ValueError(f"MonomialMPLayer: channels must be >= 1, got {channels}")
        if edge_channels < 1:
            raise ValueError(f"MonomialMPLayer: edge_channels must be >= 1, got {edge_channels}")
        self.channels, self.bidirectional, self.update_edges = channels, bidirectional, update_edges
        self.edge_channels = edge_channels
        c, ce = channels, edge_channels
        # bias-free node projections to the edge width: B (message), then [Q, D] (bidirectional), then [R, S]
        # (edge update)
        self.n_proj = 1 + 2 * bidirectional + 2 * update_edges
        self.node_proj = nn.Linear(c, self.n_proj * ce, bias=False)
        self.n_gate = 1 + update_edges
        self.node_gate = nn.Linear(c, self.n_gate * ce)            # invariant inputs: bias allowed
        self.canon = Canonicalize(c)
        self.edge_lin = nn.Linear(ce, ce, bias=False)
        self.update = nn.Linear(c + (2 if bidirectional else 1) * ce, c, bias=False)
        self.d1_bias = nn.Parameter(torch.empty(c))
        self.canon_out = Canonicalize(c)
        self.out_gate = nn.Linear(c, c)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.node_proj, self.node_gate, self.canon, self.edge_lin, self.update, self.canon_out,
                  self.out_gate):
            m.reset_parameters()
        nn.init.zeros_(self.d1_bias)

    def forward(self, h: Tensor, e: Tensor, energy: Tensor, sym: Tensor, seg_src: Segments,
                seg_dst: Segments) -> tuple[Tensor, Tensor, Tensor]:
        c = self.edge_channels
        inv_deg_in = seg_dst.inverse_degree(h.dtype)
        energy_in = energy
        inv = self.canon(h, sym, energy)
        proj = self.node_proj(h).split(c, dim=-1)
        gate = torch.sigmoid(self.node_gate(inv)).split(c, dim=-1)
        p = proj[0] * gate[0]                                       # ∝ d_j
        a = self.edge_lin(e)                                        # ∝ d_i/d_j
        m = gather_mul(a, p, seg_src)                               # ∝ d_i
        agg = scatter_sum(m, seg_dst) * inv_deg_in
        with torch.no_grad():                                       # energies are stop-gradient normalisers
            mu = seg_dst.sum(torch.linalg.vector_norm(m, dim=-1, keepdim=True).square_()) * inv_deg_in
            mid = energy + mu                                       # ∝ d_i², no cancellation
        parts = [h, agg]
        if self.bidirectional:
            q = proj[1] / inverse_norm2(mid, sym)                   # ∝ 1/d_i
            t = gather_mul(m, q, seg_dst)                           # invariant
            back = scatter_sum(t, seg_src) * seg_src.inverse_degree(h.dtype)
            parts.append(back * proj[2])                            # ∝ d_j
        z = self.update(torch.cat(parts, -1)) + d1_mask(sym).unsqueeze(-1) * self.d1_bias
        with torch.no_grad():
            energy = mid + (z * z).sum(-1, keepdim=True)
        h_new = h + z * torch.sigmoid(self.out_gate(self.canon_out(z, sym, energy)))
        if self.update_edges:
            k = 3 if self.bidirectional else 1
            r, s = proj[k], proj[k + 1] / inverse_norm2(energy_in, sym)     # ∝ d_i, ∝ 1/d_j
            e = edge_update(e, a, gate[1], r, s, seg_dst, seg_src)
        return h_new, e, energy

    def __repr__(self) -> str:
        edge = f", edge_channels={self.edge_channels}" if self.edge_channels != self.channels else ""
        return (f"{self.__class__.__name__}({self.channels}, bidirectional={self.bidirectional}, "
                f"update_edges={self.update_edges}{edge})")
