"""Baselines on the same ParameterGraph batches and the same heads as MonomialGMN.

* :class:`GMN` — permutation-only message passing (GMN / Neural Graphs) with per-layer weight normalisation.
* :class:`NFNNP` — the NP neural functional of Zhou et al. 2023 (fixed-architecture zoos).
* :class:`StatNN` — per-layer weight/bias statistics → MLP (Unterthiner et al. 2020).
* :class:`StatNNGBM` — the same statistics → scikit-learn gradient-boosted trees (fit/predict, no SGD).

All are invariant (or equivariant) to permutations of hidden neurons only, *not* to the scales and signs of
the monomial group (the transformation law of :mod:`monomial_gmn.graph._parameter_graph`).
"""

from ._gbm import StatNNFeatures, StatNNGBM
from ._gmn import GMN, GMNLayer, normalize_layers, sinusoidal_encoding
from ._nfn_np import NFNNP, DenseLayout, NPLayer, dense_layout
from ._standardize import RunningStandardize
from ._statnn import StatNN
from ._stats import (QUANTILES, STAT_NAMES, grouped_stats, kernel_window, layer_rms, layer_slots, statnn_feature_names,
                     statnn_features)

__all__ = [
    "GMN", "GMNLayer", "NFNNP", "NPLayer", "StatNN", "StatNNGBM", "StatNNFeatures", "RunningStandardize",
    "statnn_features", "statnn_feature_names", "grouped_stats", "kernel_window", "layer_slots", "layer_rms",
    "normalize_layers", "sinusoidal_encoding", "dense_layout", "DenseLayout", "QUANTILES", "STAT_NAMES",
]
