"""GMN: the permutation-only graph metanetwork baseline (GMN / Neural-Graphs family) on raw parameter graphs."""

from __future__ import annotations

from ..nn import GMNLayer, PermutationGMN, normalize_layers, sinusoidal_encoding
from ..nn import edit_in_normalised_space as _edit_in_normalised_space

__all__ = ["GMN", "GMNLayer", "sinusoidal_encoding", "normalize_layers"]


class GMN(PermutationGMN):
    """:class:`~monomial_gmn.nn.PermutationGMN` on the raw graph, as a baseline: invariant/equivariant to
    permutations of hidden neurons, *not* to their scales or signs (compare :class:`~monomial_gmn.MonomialGMN`,
    which runs the same backbone on each network's canonical form). Arguments and shapes as the backbone's."""
