"""Per-neuron canonicalisation (invariants of the monomial group) and small graph utilities shared by layers/heads.

Node and edge features transform by the law of :mod:`monomial_gmn.graph._parameter_graph` (channel-wise).
The factor set of d_i is fixed by the neuron's :class:`~monomial_gmn.Symmetry` code, so the canonical
(invariant) form is chosen per node, vectorised with ``torch.where``: one batch can mix ReLU, tanh and SIREN
nets and one net can mix activations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..graph import Role, Symmetry, fixed_index, graph_ids, magnitude_free, sign_free

__all__ = ["Canonicalize", "TINY", "node_sym", "fixed_index", "inverse_norm2", "role_pool", "d1_mask"]

#: Clamp for divisions by norms. A clamp (not ``+ eps``) keeps the quotient exactly homogeneous.
TINY = 1e-30


def node_sym(batch, sym: Tensor | None) -> Tensor:
    """The per-node symmetry codes to use: ``sym`` if given, else ``batch.sym``; [N] long."""
    if sym is None:
        sym = getattr(batch, "sym", None)
        if sym is None:
            raise ValueError("no symmetry codes: pass sym=... or give the batch a 'sym' field")
    return sym


def d1_mask(sym: Tensor) -> Tensor:
    """[N] bool: neurons whose factor is always 1 (fixed input/output neurons and symmetry ``none``)."""
    return ~(magnitude_free(sym) | sign_free(sym))


def inverse_norm2(n2: Tensor, sym: Tensor) -> Tensor:
    """[N, 1] denominator ``n_i`` such that ``h_i / n_i`` transforms as 1/d_i, from an energy ``n2`` ∝ d_i².

    ``n2`` (e.g. ``||h_i||²``, [N, 1]) clamped at :data:`TINY` for neurons with non-unit |d| (positive_scale,
    scale); ``n2 + 1`` where |d| = 1 (sign, none, fixed), which is bounded and still exactly invariant.
    """
    homog = magnitude_free(sym).unsqueeze(-1)
    return torch.where(homog, n2.clamp_min(TINY), n2 + 1.0)


class Canonicalize(nn.Module):
    r"""Invariant per-node features of equivariant features, chosen by each node's symmetry.

    .. math::
        \mathrm{inv}(h_i) = \begin{cases}
            h_i & \text{fixed, none } (d = 1)\\
            h_i / \lVert h_i\rVert & \text{positive\_scale } (d > 0)\\
            h_i \odot U h_i / \lVert h_i\rVert & \text{sign } (d = \pm 1)\\
            h_i \odot U h_i / \lVert h_i\rVert^2 & \text{scale } (d \ne 0)
        \end{cases}

    with a bias-free learned ``U`` (``quadratic=True``; otherwise ``U = I``, i.e. h² and |h|-like forms).
    Norms are clamped at :data:`TINY` (never ``+ eps``), so each branch is exactly homogeneous of degree 0.

    Law: ``inv(d_i h_i) == inv(h_i)`` for every d_i allowed by the node's symmetry.

    Notes:
        ``‖h_i‖²`` may be replaced by any *energy* ``n2`` that transforms as d_i² (argument ``n2``). The
        layers pass a cancellation-free energy (sums of squares of the terms that were added up to form
        ``h_i``): dividing by a norm that is small only because of cancellation would turn its rounding
        error into a large error of the invariant, which is what breaks fp32 exactness in deep stacks.

        Computed as ``h ⊙ (α + β U h)`` with per-node scalars α, β; ``U h`` is skipped when no node is sign
        or scale (β = 0 everywhere, e.g. ReLU-only batches), with ``U`` kept in the graph at zero gradient.

    Args:
        channels: C, feature width.
        quadratic: learn ``U`` for the sign/scale branches (default: True).

    Shapes:
        h: [N, C], sym: [N] long, n2: [N, 1] or None -> [N, C].
    """

    def __init__(self, channels: int, quadratic: bool = True):
        super().__init__()
        if channels < 1:
            raise ValueError(f"Canonicalize: channels must be >= 1, got {channels}")
        self.channels = channels
        self.quadratic = quadratic
        self.U = nn.Linear(channels, channels, bias=False) if quadratic else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.U is not None:
            with torch.no_grad():
                # start near U = I (so h ⊙ Uh ≈ h², an even function) plus a small random mix
                nn.init.normal_(self.U.weight, std=0.1 / self.channels ** 0.5)
                self.U.weight.add_(torch.eye(self.channels, dtype=self.U.weight.dtype))

    def forward(self, h: Tensor, sym: Tensor, n2: Tensor | None = None) -> Tensor:
        if n2 is None:
            n2 = (h * h).sum(-1, keepdim=True)
        n2 = n2.clamp_min(TINY)
        rn = n2.rsqrt()
        # one blend instead of a where per branch: inv = h ⊙ (α + β v) with per-node scalars
        # α = 1 (fixed, none) | 1/‖h‖ (positive_scale) | 0 (sign, scale),  β = 1/‖h‖ (sign) | 1/‖h‖² (scale) | 0
        s = sym.unsqueeze(-1)
        sign, scale = s == Symmetry.SIGN, s == Symmetry.SCALE
        quad = sign_free(s)
        one = torch.ones((), dtype=h.dtype, device=h.device)
        zero = torch.zeros((), dtype=h.dtype, device=h.device)
        alpha = torch.where(s == Symmetry.POSITIVE_SCALE, rn, torch.where(quad, zero, one))
        if self.U is not None and not bool(quad.any()):
            # no neuron here uses U h (β = 0 everywhere, e.g. a ReLU-only batch): skip the matmul; U stays in the
            # autograd graph with the exactly-zero gradient the full product gives (DistributedDataParallel
            # needs every parameter used)
            return h * alpha + (self.U.weight.sum() * 0).to(h.dtype)
        v = self.U(h) if self.U is not None else h
        beta = torch.where(sign, rn, torch.where(scale, n2.reciprocal(), zero))
        return h * torch.addcmul(alpha, beta, v)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, quadratic={self.quadratic})"


def role_pool(feat: Tensor, batch, num_graphs: int, reduce: str = "mean") -> Tensor:
    """Pool node features per (graph, role) -> [B, 3, C] (input, hidden, output); empty groups give 0."""
    n = feat.shape[0]
    bvec = graph_ids(batch, n, feat.device)
    role = getattr(batch, "role", None)
    if role is None:
        role = torch.full((n,), int(Role.HIDDEN), dtype=torch.long, device=feat.device)
    key = bvec * 3 + role
    out = scatter(feat, key, 0, dim_size=num_graphs * 3, reduce=reduce)
    return out.view(num_graphs, 3, -1)
