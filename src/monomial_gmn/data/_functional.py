"""Moved to :mod:`monomial_gmn.graph._functional` (kept for features/_probe.py and an experiment script)."""
from ..graph import stacked_forward  # noqa: F401
