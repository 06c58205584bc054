"""Re-export: :func:`make_mlp` lives in :mod:`monomial_gmn.features` (the feature readouts use it, and features
must not import baselines)."""

from ..features import make_mlp

__all__ = ["make_mlp"]
