"""StatNN (Unterthiner et al. 2020, "Predicting Neural Network Accuracy from Weights"): per-layer weight and
bias statistics → MLP."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ._mlp import make_mlp
from ._standardize import RunningStandardize
from ._stats import statnn_features

__all__ = ["StatNN"]


class StatNN(nn.Module):
    r"""Per-layer statistics of a network's weights and biases, standardised, then an MLP.

    For each layer slot s (see :mod:`monomial_gmn.baselines._stats` for how networks of any depth fill
    ``max_layers`` slots), the features are the mean, variance and 0/25/50/75/100 % quantiles of the layer's
    weights (kernel window entries only) and of its biases, and a presence flag:

    .. math::
        \phi(G) = \big[\operatorname{stats}(W^{(s)}),\ \operatorname{stats}(b^{(s)}),\ 1_{s\ \text{present}}
        \big]_{s=1..K} \in \mathbb{R}^{15K},\qquad f(G) = \mathrm{MLP}(\mathrm{standardise}(\phi(G)))

    The features are invariant to permutations of hidden neurons but not to their scales or signs (the
    transformation law of :mod:`monomial_gmn.graph._parameter_graph` changes the statistics).

    Args:
        out_dim: output size.
        hidden_dim: MLP width (default: 128).
        num_layers: number of hidden MLP layers (default: 4).
        max_layers: K, number of layer slots (default: 8).
        dropout: dropout between MLP layers (default: 0.0).

    Shapes:
        input: a ParameterGraph or Batch of B graphs (any architectures) → output [B, out_dim].
    """

    def __init__(self, out_dim: int, hidden_dim: int = 128, num_layers: int = 4, max_layers: int = 8,
                 dropout: float = 0.0):
        super().__init__()
        if out_dim < 1 or hidden_dim < 1 or num_layers < 1:
            raise ValueError(f"StatNN: out_dim, hidden_dim and num_layers must be >= 1, got {out_dim}, "
                             f"{hidden_dim}, {num_layers}")
        self.out_dim, self.hidden_dim, self.num_layers, self.max_layers = out_dim, hidden_dim, num_layers, max_layers
        self.in_dim = 15 * max_layers
        self.standardize = RunningStandardize(self.in_dim)
        self.mlp = make_mlp(self.in_dim, hidden_dim, num_layers, out_dim, dropout)

    def features(self, data: Data) -> Tensor:
        """[B, 15 K] the raw (unstandardised) statistics; see :func:`~monomial_gmn.baselines.statnn_features`."""
        return statnn_features(data, self.max_layers).flatten(1)

    @torch.no_grad()
    def fit_normalizer(self, batches: Data | Iterable[Data]) -> "StatNN":
        """Standardise by the statistics of these (training) batches and freeze them; without this call the
        statistics accumulate over the batches seen in training mode.

        ``batches``: a ParameterGraph, a Batch, or an iterable of them (a list, a GraphLoader)."""
        batches = [batches] if isinstance(batches, Data) else batches
        self.standardize.fit(self.features(b) for b in batches)
        return self

    def forward(self, data: Data) -> Tensor:
        feats = self.features(data).to(self.mlp[0].weight.dtype)
        return self.mlp(self.standardize(feats))

    def extra_repr(self) -> str:
        return f"in={self.in_dim}, hidden={self.hidden_dim}, layers={self.num_layers}, out={self.out_dim}"
