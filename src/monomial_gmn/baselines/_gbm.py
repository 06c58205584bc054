"""StatNN-GBM: gradient-boosted trees (scikit-learn) on the StatNN per-layer statistics.

The trees, fitting, prediction and saving are :class:`monomial_gmn.features.FeatureGBM`'s (see there how a training
loop treats a model that is fitted once, and how its trees are saved without pickle); this module supplies the
StatNN statistics as its features, optionally followed by probe features.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..features import FeatureGBM, ProbeFeatures, probe_part
from ._stats import statnn_feature_names, statnn_features

__all__ = ["StatNNGBM", "StatNNFeatures"]


class StatNNFeatures(nn.Module):
    """An extractor: [B, 15 K] flattened :func:`~monomial_gmn.baselines.statnn_features` (computed in the batch's
    dtype). Permutation-invariant only."""

    def __init__(self, max_layers: int = 8):
        super().__init__()
        self.max_layers = int(max_layers)

    @property
    def num_features(self) -> int:
        return 15 * self.max_layers

    def feature_names(self) -> list[str]:
        return statnn_feature_names(self.max_layers)

    def forward(self, data: Data) -> Tensor:
        with torch.no_grad():
            return statnn_features(data, self.max_layers).flatten(1)


class StatNNGBM(FeatureGBM):
    """``HistGradientBoostingRegressor`` / ``Classifier`` on per-layer weight and bias statistics.

    Features are :func:`~monomial_gmn.baselines.statnn_features` (mean, variance, quantiles 0/25/50/75/100 %
    of the weights and of the biases of each layer slot, and a presence flag), flattened to [B, 15 K], then the
    probe features when ``probes`` is set.

    Args:
        out_dim: regression: number of targets (one booster per target column); classification: number of
            classes.
        task: ``"regression"`` or ``"classification"``.
        max_layers: K, layer slots (default: 8).
        seed: ``random_state`` of the boosters (default: 0); ``random_state=`` is accepted as an alias.
        probes, architectures, probe_outputs, probe_scales, probe_agreement: probe features, as
            :class:`~monomial_gmn.features.InvariantGBM`'s (default: none).
        **gbm_kwargs: ``n_threads`` and scikit-learn options (see :class:`~monomial_gmn.features.FeatureGBM`).

    Shapes:
        ``model(batch)``: [B, out_dim] float tensor on the batch's device.
    """

    def __init__(self, out_dim: int = 1, task: str = "regression", max_layers: int = 8, seed: int = 0,
                 random_state: int | None = None, probes: int | ProbeFeatures | None = 0,
                 architectures: list | None = None, probe_outputs: str = "summary",
                 probe_scales: Sequence[float] = (1.0,), probe_agreement: float = 0.0, **gbm_kwargs: Any):
        parts: list[tuple[str, Any]] = [("statnn", StatNNFeatures(max_layers))]
        parts += probe_part("StatNNGBM", probes, architectures, probe_outputs, probe_scales, probe_agreement)
        super().__init__(parts, out_dim=out_dim, task=task, seed=seed, random_state=random_state, **gbm_kwargs)
        self.max_layers = int(max_layers)

    @property
    def probes(self) -> ProbeFeatures | None:
        """The probe features (None without probes)."""
        return self.part("probes")

    def _header(self) -> dict:
        head = {**super()._header(), "max_layers": self.max_layers}
        if self.probes is not None:  # only then: trees saved before probes existed keep loading
            head["probes"] = int(self.probes.num_probes)
        return head
