"""Monomial-equivariant metanetwork layers, heads and the MonomialGMN model.

Law (cited by every module here): hidden neuron i with factor d_i: node features h_i -> d_i h_i, edge
features of edge j -> i: e -> d_i/d_j e (channel-wise); see :mod:`monomial_gmn.graph._parameter_graph`.
"""

from ._canon import Canonicalize
from ._heads import EquivariantHead, InvariantHead

__all__ = ["Canonicalize", "InvariantHead", "EquivariantHead"]
