"""Networks as parameter graphs. The layout and the transformation law are documented in
:mod:`monomial_gmn.graph._parameter_graph` (``help(monomial_gmn.ParameterGraph)``)."""

from ._arch import ACTIVATIONS, Architecture, SamePad2d, digits_cnn_architecture, siren_architecture
from ._batch import GraphLoader, batch_graphs, batch_stacked, fixed_index, graph_ids
from ._convert import (ConvertContext, LayerConversion, graph_spec, op_symmetry, register_converter, register_op,
                       register_spec_builder, to_graph, to_module)
from ._functional import stacked_forward
from ._fx import fx_graph_spec, fx_to_graph
from ._fx_spec import FxGraphSpec, NormKind, NormRecord
from ._layer_stats import graph_index, kernel_window, layer_rms, layer_values, network_depth
from ._modules import Sine
from ._networkx import graph_from_networkx, graph_to_networkx
from ._parameter_graph import ParameterGraph, kernel_side, pad_canvas
from ._spec import GraphSpec, LayerRecord
from ._symmetry import FACTORS, Role, Symmetry, magnitude_free, meet, sign_free

__all__ = [
    "ParameterGraph", "GraphSpec", "LayerRecord", "Symmetry", "Role", "meet", "Sine",
    "to_graph", "to_module", "graph_spec", "register_converter", "register_op", "register_spec_builder",
    "op_symmetry", "ConvertContext", "LayerConversion", "batch_graphs", "batch_stacked", "GraphLoader",
    "kernel_side", "pad_canvas", "graph_to_networkx", "graph_from_networkx",
    "fx_graph_spec", "fx_to_graph", "FxGraphSpec", "NormKind", "NormRecord",
    "Architecture", "SamePad2d", "digits_cnn_architecture", "siren_architecture", "ACTIVATIONS", "stacked_forward",
    "FACTORS", "magnitude_free", "sign_free", "graph_ids", "fixed_index", "graph_index", "network_depth", "kernel_window",
    "layer_values", "layer_rms",
]
