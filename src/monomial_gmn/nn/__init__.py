"""Monomial-equivariant metanetwork layers, heads and the MonomialGMN model.

Every module here keeps the transformation law of :mod:`monomial_gmn.graph._parameter_graph` (node and edge
features transform channel-wise like biases and weights).
"""

from ._canon import TINY, Canonicalize, fixed_index, inverse_norm2, node_sym
from ._compose import ComposedModel
from ._encoder import GraphEncoder
from ._heads import EquivariantHead, InvariantHead
from ._kernel import canvas_index, canvas_weight
from ._layer import MonomialMPLayer
from ._model import DEFAULT_EDGE_DIM, DESIGNS, MonomialGMN
from ._perm import GMNLayer, PermutationGMN, edit_in_normalised_space, normalize_layers, sinusoidal_encoding

__all__ = ["MonomialGMN", "DESIGNS", "PermutationGMN", "GMNLayer", "MonomialMPLayer", "GraphEncoder", "Canonicalize",
           "InvariantHead", "EquivariantHead", "inverse_norm2", "canvas_index", "canvas_weight", "TINY", "DEFAULT_EDGE_DIM",
           "fixed_index", "node_sym", "normalize_layers", "sinusoidal_encoding", "edit_in_normalised_space",
           "ComposedModel"]
