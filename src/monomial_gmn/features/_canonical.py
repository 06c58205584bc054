"""The canonical representatives the feature readouts read, as plain graphs.

Both are :func:`monomial_gmn.group.canonical_form` (the one implementation; its docstring states the rules,
ties and convergence), returned as a graph for code that needs only the representative.
"""

from __future__ import annotations

from torch_geometric.data import Data

from ..group import canonical_form

__all__ = ["canonicalize", "balance"]


def canonicalize(graph: Data) -> Data:
    """The unit-norm canonical representative (``canonical_form(graph, scale="norm").graph``): every scaled
    neuron's incoming vector (weights and bias) has unit norm, every sign neuron's odd statistic Σ v³ is
    positive. ``canonicalize(g·G) == π_g·canonicalize(G)``. Shapes: x [N, F], edge_attr [E, K] in and out."""
    return canonical_form(graph, scale="norm").graph


def balance(graph: Data, tol: float = 1e-9) -> Data:
    """The balanced (least total squared weight) representative (``canonical_form(graph, "balance").graph``),
    iterated until the largest log-scale update is at most ``tol``. Every scaled neuron's incoming energy
    equals its outgoing energy. Shapes: x [N, F], edge_attr [E, K] in and out."""
    return canonical_form(graph, scale="balance", tol=tol).graph
