"""InvariantFeatureMLP: an MLP on the exactly invariant features (a readout branch and a model of its own)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..baselines import RunningStandardize
from ..baselines._mlp import make_mlp
from ._cache import FeatureCache
from ._invariant import invariant_features, num_features
from ._probe import ProbeFeatures

__all__ = ["InvariantFeatureMLP", "signed_log"]


def signed_log(x: Tensor) -> Tensor:
    """sign(x) · log(1 + |x|): tames the heavy tails of canonical output weights (monotone, odd)."""
    return torch.sign(x) * torch.log1p(x.abs())


class InvariantFeatureMLP(nn.Module):
    r"""StatNN made exact: an MLP on standardised :func:`~monomial_gmn.features.invariant_features`.

    .. math::
        f(G) = \mathrm{MLP}\big(\mathrm{standardise}(\mathrm{slog}(\phi_{\text{inv}}(G)))\big)

    ``φ_inv`` is invariant under each network's monomial group (law b_i → d_i b_i,
    W[i, j] → d_i W[i, j] / d_j, hidden neurons permuted), so ``f(g·G) == f(G)`` up to rounding. Usable alone
    or added to another invariant model's output (MonomialGMN's ``feature_readout`` option).

    Args:
        out_dim: output width.
        num_layers: layer slots of the features (default 8; see :mod:`monomial_gmn.features`).
        hidden_dim: MLP width (default 64).
        depth: hidden MLP layers (default 2).
        dropout: dropout after each hidden layer (default 0).
        path_norm: include path-norm features (default True).
        cache: memoise each network's features by an exact digest of its graph (:class:`FeatureCache`), so a
            training run computes them once per network instead of once per epoch (default True).
        probes: a :class:`ProbeFeatures` whose columns (the networks' outputs on random probes, also exactly
            invariant) are appended to the invariant features, or None (default).

    Shapes:
        batch of B graphs (ParameterGraph or PyG Batch, any architectures) → [B, out_dim].

    Call :meth:`fit_normalizer` on the training data once; otherwise the standardisation statistics
    accumulate over the batches seen in training mode.
    """

    def __init__(self, out_dim: int, num_layers: int = 8, hidden_dim: int = 64, depth: int = 2,
                 dropout: float = 0.0, path_norm: bool = True, cache: bool = True,
                 probes: ProbeFeatures | None = None):
        super().__init__()
        if out_dim < 1 or num_layers < 1 or hidden_dim < 1 or depth < 0:
            raise ValueError(f"InvariantFeatureMLP: need out_dim, num_layers, hidden_dim >= 1 and depth >= 0, got "
                             f"{out_dim}, {num_layers}, {hidden_dim}, {depth}")
        self.out_dim, self.num_layers, self.path_norm = out_dim, num_layers, path_norm
        self.probes = probes
        self.in_dim = num_features(num_layers, path_norm) + (probes.num_features if probes is not None else 0)
        self.standardize = RunningStandardize(self.in_dim)
        self.cache = FeatureCache() if cache else None
        self.mlp = make_mlp(self.in_dim, hidden_dim, depth, out_dim, dropout)

    def reset_parameters(self) -> None:
        self.standardize.reset_parameters()
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def features(self, data: Data) -> Tensor:
        """[B, F] signed-log invariant features (not standardised), computed without gradients."""
        def compute(d: Data) -> Tensor:
            f = invariant_features(d, self.num_layers, self.path_norm)
            if self.probes is not None:
                f = torch.cat([f, self.probes(d).to(f.dtype)], dim=1)
            return signed_log(f)

        with torch.no_grad():
            return compute(data) if self.cache is None else self.cache(data, compute)

    @torch.no_grad()
    def fit_normalizer(self, batches: Data | Iterable[Data]) -> "InvariantFeatureMLP":
        """Freeze the standardisation at the statistics of these (training) batches (after fitting the probes'
        reference classes from the batches' ``y`` when the probes measure agreement)."""
        batches = [batches] if isinstance(batches, Data) else list(batches)
        if self.probes is not None and self.probes.agreement > 0:
            self.probes.fit_reference(batches)
            if self.cache is not None:
                self.cache.clear()
        self.standardize.fit(self.features(b) for b in batches)
        return self

    def forward(self, data: Data) -> Tensor:
        w = self.mlp[0].weight
        feats = self.features(data).to(device=w.device, dtype=w.dtype)
        return self.mlp(self.standardize(feats))

    def extra_repr(self) -> str:
        return f"in={self.in_dim}, out={self.out_dim}, slots={self.num_layers}"
