"""Exactly invariant features of networks (canonical forms, statistics, path norms) and a model on them.

* :func:`canonicalize` — the canonical representative of a network's orbit under scalings and signs.
* :func:`balance` — the representative of least total squared weight over positive scalings.
* :func:`invariant_features` — [B, F] per-layer statistics of canonical weights + path norms, invariant
  under the whole monomial group; :func:`feature_names` names the columns.
* :func:`weight_statistics` — the same statistics of raw weights (StatNN-like; permutation-invariant only).
* :class:`InvariantGBM` — gradient-boosted trees on the invariant features (StatNNGBM's fit/predict surface).
* :class:`ProbeFeatures` — summaries of each network's outputs on fixed random probes (exactly invariant: the
  group does not change the function); rebuilds parameters from the graph, runs one architecture at a time.
* :class:`InvariantFeatureMLP` — an MLP on the standardised invariant features (a torch model / readout branch).
"""

from ._canonical import balance, canonicalize
from ._gbm import InvariantGBM
from ._mlp import InvariantFeatureMLP, signed_log
from ._probe import ProbeFeatures, make_probes, probe_feature_names, summarize_outputs
from ._invariant import (BALANCED, PATH_NORM_NAMES, PER_LAYER, feature_names, invariant_features, num_features, path_norms,
                         weight_statistics)
from ._segments import segment_stats

__all__ = [
    "canonicalize", "balance", "BALANCED", "invariant_features", "weight_statistics", "feature_names", "num_features", "path_norms",
    "segment_stats", "PER_LAYER", "PATH_NORM_NAMES", "InvariantGBM",
    "InvariantFeatureMLP", "signed_log", "ProbeFeatures", "probe_feature_names", "summarize_outputs",
    "make_probes",
]
