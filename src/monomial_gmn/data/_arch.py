"""Moved to :mod:`monomial_gmn.graph._arch` (kept for importers not yet switched: features/_probe.py)."""
from ..graph import ACTIVATIONS, Architecture, SamePad2d, digits_cnn_architecture, siren_architecture  # noqa: F401
