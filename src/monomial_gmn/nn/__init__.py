"""Monomial-equivariant metanetwork layers, heads and the MonomialGMN model.

Law (cited by every module here): hidden neuron i with factor d_i: node features h_i -> d_i h_i, edge
features of edge j -> i: e -> d_i/d_j e (channel-wise); see :mod:`monomial_gmn.graph._parameter_graph`.
"""

from ._canon import TINY, Canonicalize, inverse_norm2
from ._encoder import GraphEncoder
from ._heads import EquivariantHead, InvariantHead
from ._kernel import canvas_index, canvas_weight
from ._layer import MonomialMPLayer
from ._model import DEFAULT_EDGE_DIM, DESIGNS, MonomialGMN
from ._perm import GMNLayer, PermutationGMN

__all__ = ["MonomialGMN", "DESIGNS", "PermutationGMN", "GMNLayer", "MonomialMPLayer", "GraphEncoder", "Canonicalize",
           "InvariantHead", "EquivariantHead", "inverse_norm2", "canvas_index", "canvas_weight", "TINY", "DEFAULT_EDGE_DIM"]
