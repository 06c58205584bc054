"""Re-export: :class:`RunningStandardize` lives in :mod:`monomial_gmn.features` (the feature readouts use it, and
features must not import baselines)."""

from ..features import RunningStandardize

__all__ = ["RunningStandardize"]
