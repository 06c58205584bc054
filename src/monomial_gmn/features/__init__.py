"""Exactly invariant features of networks (canonical forms, statistics, path norms, probe outputs), the readout parts
built on them, and boosted trees on features.

Features and extractors ([B, F]):

* :func:`canonicalize` — the canonical representative of a network's orbit under scalings and signs.
* :func:`balance` — the representative of least total squared weight over positive scalings.
* :func:`invariant_features` — [B, F] per-layer statistics of canonical weights + path norms, invariant
  under the whole monomial group; :func:`feature_names` names the columns; :class:`InvariantFeatures` is the module.
* :func:`weight_statistics` — the same statistics of raw weights (StatNN-like; permutation-invariant only).
* :class:`ProbeFeatures` — summaries of each network's outputs on fixed random probes (exactly invariant: the
  group does not change the function); rebuilds parameters from the graph, runs one architecture at a time.

Readout parts (torch modules, batch → [B, out_dim]; ``fit_normalizer`` unsupervised, ``fit_reference`` with the
training targets):

* :class:`InvariantFeatureMLP` — an MLP on the standardised invariant features;
* :class:`ProbeReadout` — an MLP on the standardised probe features;
* :class:`FeatureReadout` — the generic one (any extractor).

Their configurations: :class:`ReadoutsConfig` (:class:`FeatureReadoutConfig`, :class:`ProbeConfig`), read from
the flat options ``feature_readout``, ``feature_slots``, ``probes``, ``probe_*``, ``architectures``.

Boosted trees: :class:`FeatureGBM` (trees on any extractors' features) and :class:`InvariantGBM` (on the invariant
features, optionally with probe features).

Building blocks shared with the baselines: :class:`RunningStandardize`, :func:`make_mlp`, :func:`signed_log`,
:func:`probe_part` (the optional probe-feature part of a boosted-tree model).
"""

from ._canonical import balance, canonicalize
from ._config import READOUT_OPTIONS, FeatureReadoutConfig, ProbeConfig, ReadoutsConfig, make_probes
from ._gbm import InvariantGBM, probe_part
from ._invariant import (BALANCED, PATH_NORM_NAMES, PER_LAYER, feature_names, invariant_features, num_features, path_norms,
                         weight_statistics)
from ._mlp import make_mlp, signed_log
from ._probe import ProbeFeatures, probe_feature_names, summarize_outputs
from ._readouts import FeatureReadout, InvariantFeatureMLP, InvariantFeatures, ProbeReadout
from ._segments import segment_stats
from ._standardize import RunningStandardize
from ._trees import FeatureGBM

__all__ = [
    "canonicalize", "balance", "BALANCED", "invariant_features", "weight_statistics", "feature_names", "num_features", "path_norms",
    "segment_stats", "PER_LAYER", "PATH_NORM_NAMES", "InvariantGBM", "FeatureGBM",
    "InvariantFeatures", "FeatureReadout", "InvariantFeatureMLP", "ProbeReadout", "signed_log", "ProbeFeatures",
    "probe_feature_names", "summarize_outputs", "make_probes", "ReadoutsConfig", "FeatureReadoutConfig",
    "ProbeConfig", "READOUT_OPTIONS", "RunningStandardize", "make_mlp", "probe_part",
]
