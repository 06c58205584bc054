"""Readout parts: torch modules that map a batch of networks to [B, out_dim] from exactly invariant features.

A readout part is added to an invariant model's prediction (``ComposedModel``: backbone(batch) + Σ readouts) or
used alone. Each one is an MLP on standardised, signed-log features of one *extractor*:

* :class:`InvariantFeatureMLP` — on :class:`InvariantFeatures` (statistics of canonical and balanced weights, path
  norms);
* :class:`ProbeReadout` — on :class:`~monomial_gmn.features.ProbeFeatures` (the networks' outputs on fixed random
  probes).

Both are exactly invariant under each network's monomial group (the transformation law of
:mod:`monomial_gmn.graph._parameter_graph`): their features are. Fitting is in two explicit steps:

* :meth:`FeatureReadout.fit_normalizer` (unsupervised): the standardisation statistics of the training features;
* :meth:`FeatureReadout.fit_reference` (supervised, only for extractors that need it, e.g. probes measuring
  agreement): the probes' reference classes from the training targets.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ._cache import FeatureCache
from ._invariant import feature_names, invariant_features, num_features
from ._mlp import make_mlp, signed_log
from ._probe import ProbeFeatures
from ._standardize import RunningStandardize

__all__ = ["InvariantFeatures", "FeatureReadout", "InvariantFeatureMLP", "ProbeReadout"]


class InvariantFeatures(nn.Module):
    """An extractor: [B, F] :func:`~monomial_gmn.features.invariant_features` in ``num_layers`` slots.

    Args:
        num_layers: layer slots (default 8; see :mod:`monomial_gmn.features`).
        path_norm: include the path-norm features (default True).

    Shapes:
        batch of B graphs (any architectures) → [B, F], F = :attr:`num_features`; dtype of ``edge_attr``.
    """

    #: a boosted-tree model reads these features on a float64 copy of the batch
    float64 = True
    needs_reference = False

    def __init__(self, num_layers: int = 8, path_norm: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"InvariantFeatures: num_layers must be >= 1, got {num_layers}")
        self.num_layers, self.path_norm = int(num_layers), bool(path_norm)

    @property
    def num_features(self) -> int:
        return num_features(self.num_layers, self.path_norm)

    def feature_names(self) -> list[str]:
        return feature_names(self.num_layers, self.path_norm)

    def forward(self, data: Data) -> Tensor:
        with torch.no_grad():
            return invariant_features(data, self.num_layers, self.path_norm)

    def extra_repr(self) -> str:
        return f"slots={self.num_layers}, path_norm={self.path_norm}"


def _as_list(batches: Data | Iterable[Data]) -> list[Data]:
    return [batches] if isinstance(batches, Data) else list(batches)


class FeatureReadout(nn.Module):
    r"""A readout part: an MLP on the standardised signed-log features of an extractor.

    .. math::
        f(G) = \mathrm{MLP}\big(\mathrm{standardise}(\mathrm{slog}(\phi(G)))\big)

    Exactly invariant when the extractor ``φ`` is (both extractors of this package are).

    Args:
        extractor: a module mapping a batch to [B, F] with a ``num_features`` attribute (e.g.
            :class:`InvariantFeatures`, :class:`~monomial_gmn.features.ProbeFeatures`).
        out_dim: output width.
        hidden_dim: MLP width (default 64).
        depth: hidden MLP layers (default 2).
        dropout: dropout after each hidden layer (default 0).
        cache: memoise each network's features by an exact digest of its graph (:class:`FeatureCache`), so a
            training run computes them once per network instead of once per epoch (default True).

    Shapes:
        batch of B graphs (ParameterGraph or PyG Batch) → [B, out_dim].

    Call :meth:`fit_normalizer` on the training data once (otherwise the standardisation statistics accumulate
    over the batches seen in training mode), and, when :attr:`needs_reference`, :meth:`fit_reference` with the
    training targets.
    """

    def __init__(self, extractor: nn.Module, out_dim: int, hidden_dim: int = 64, depth: int = 2,
                 dropout: float = 0.0, cache: bool = True):
        super().__init__()
        name = type(self).__name__
        if out_dim < 1 or hidden_dim < 1 or depth < 0:
            raise ValueError(f"{name}: need out_dim, hidden_dim >= 1 and depth >= 0, got {out_dim}, {hidden_dim}, "
                             f"{depth}")
        self.extractor = extractor
        self.out_dim = int(out_dim)
        self.in_dim = int(extractor.num_features)
        self.standardize = RunningStandardize(self.in_dim)
        self.cache = FeatureCache() if cache else None
        self.mlp = make_mlp(self.in_dim, hidden_dim, depth, out_dim, dropout)

    @property
    def needs_reference(self) -> bool:
        """True when the extractor needs :meth:`fit_reference` (training targets) before it can run."""
        return bool(getattr(self.extractor, "needs_reference", False))

    def reset_parameters(self) -> None:
        self.standardize.reset_parameters()
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def features(self, data: Data) -> Tensor:
        """[B, F] signed-log features (not standardised), computed without gradients."""
        def compute(d: Data) -> Tensor:
            return signed_log(self.extractor(d))

        with torch.no_grad():
            return compute(data) if self.cache is None else self.cache(data, compute)

    @torch.no_grad()
    def fit_normalizer(self, batches: Data | Iterable[Data]) -> "FeatureReadout":
        """Freeze the standardisation at the feature statistics of these (training) batches. Unsupervised: no
        target is read. An extractor that still waits for its reference (:meth:`fit_reference`) cannot compute
        its features yet; then this is left to :meth:`fit_reference`, which standardises on its batches."""
        batches = _as_list(batches)
        if self.needs_reference and not getattr(self.extractor, "reference_fitted", True):
            return self
        self.standardize.fit(self.features(b) for b in batches)
        return self

    @torch.no_grad()
    def fit_reference(self, batches: Data | Iterable[Data], targets: Any) -> "FeatureReadout":
        """Fit what the extractor learns from the training targets (probes: each probe's reference class from
        the networks with the best targets), then standardise on these batches (the features changed).

        Args:
            batches: the training networks (a batch or an iterable of batches).
            targets: one number per network in batch order (higher = better, e.g. test accuracy), or None
                (every network votes). A readout that needs no reference ignores the call.
        """
        if not self.needs_reference:
            return self
        batches = _as_list(batches)
        self.extractor.fit_reference(batches, targets)
        if self.cache is not None:
            self.cache.clear()
        self.standardize.fit(self.features(b) for b in batches)
        return self

    def forward(self, data: Data) -> Tensor:
        w = self.mlp[0].weight
        feats = self.features(data).to(device=w.device, dtype=w.dtype)
        return self.mlp(self.standardize(feats))

    def extra_repr(self) -> str:
        return f"in={self.in_dim}, out={self.out_dim}"


class InvariantFeatureMLP(FeatureReadout):
    r"""StatNN made exact: an MLP on standardised :func:`~monomial_gmn.features.invariant_features`.

    ``φ_inv`` is invariant under each network's monomial group, so ``f(g·G) == f(G)`` up to rounding. Usable
    alone or as the ``features`` readout part of a composed model (``build_model(..., feature_readout=True)``).

    Args:
        out_dim: output width.
        num_layers: layer slots of the features (default 8; see :mod:`monomial_gmn.features`).
        hidden_dim: MLP width (default 64).
        depth: hidden MLP layers (default 2).
        dropout: dropout after each hidden layer (default 0).
        path_norm: include path-norm features (default True).
        cache: memoise features per network (default True; see :class:`FeatureReadout`).

    Shapes:
        batch of B graphs (ParameterGraph or PyG Batch, any architectures) → [B, out_dim].
    """

    def __init__(self, out_dim: int, num_layers: int = 8, hidden_dim: int = 64, depth: int = 2,
                 dropout: float = 0.0, path_norm: bool = True, cache: bool = True):
        if num_layers < 1:
            raise ValueError(f"InvariantFeatureMLP: num_layers must be >= 1, got {num_layers}")
        super().__init__(InvariantFeatures(num_layers, path_norm), out_dim, hidden_dim=hidden_dim, depth=depth,
                         dropout=dropout, cache=cache)
        self.num_layers, self.path_norm = int(num_layers), bool(path_norm)

    def extra_repr(self) -> str:
        return f"in={self.in_dim}, out={self.out_dim}, slots={self.num_layers}"


class ProbeReadout(FeatureReadout):
    """An MLP on the networks' outputs on fixed random probes (:class:`~monomial_gmn.features.ProbeFeatures`).

    Exactly invariant: the monomial group does not change the function a network computes. With
    ``probes.agreement > 0`` it needs :meth:`fit_reference` (the training targets) before use.

    Args:
        probes: the probe feature extractor (built for the zoo's architectures).
        out_dim, hidden_dim, depth, dropout, cache: as :class:`FeatureReadout`.

    Shapes:
        batch of B graphs of the probes' architectures → [B, out_dim].
    """

    def __init__(self, probes: ProbeFeatures, out_dim: int, hidden_dim: int = 64, depth: int = 2,
                 dropout: float = 0.0, cache: bool = True):
        if not isinstance(probes, ProbeFeatures):
            raise TypeError(f"ProbeReadout: probes must be a ProbeFeatures, got {type(probes).__name__}")
        super().__init__(probes, out_dim, hidden_dim=hidden_dim, depth=depth, dropout=dropout, cache=cache)

    @property
    def probes(self) -> ProbeFeatures:
        return self.extractor
