"""monomial-gmn: graph metanetworks exactly equivariant to the monomial group of the networks they read.

>>> import torch.nn as nn, monomial_gmn as mg
>>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
>>> graph = mg.to_graph(net)          # ParameterGraph (a torch_geometric Data)
>>> g = mg.sample_transform(graph)    # a random element of the net's monomial group
>>> net2 = g(net)                     # same function, transformed weights
"""

from ._errors import GraphMismatchError, NonFiniteWeightsError, UnsupportedModuleError, ZooFormatError
from .graph import (GraphLoader, GraphSpec, ParameterGraph, Role, Sine, Symmetry, batch_graphs, batch_stacked,
                    graph_spec, register_converter, register_op, to_graph, to_module)
from .group import MonomialGroup, MonomialTransform, random_transform, sample_transform
from . import nn
from .nn import EquivariantHead, InvariantHead, MonomialGMN
from . import data
from .data import RandomMonomial, Zoo, build_zoo, load_zoo, merge_shards
from .verify import SymmetryReport, verify_symmetry
from . import baselines, models
from . import viz
from .models import build_model, count_parameters, list_models
from . import features, train
from .train import TrainConfig, compare, evaluate_run

__version__ = "0.1.0"

__all__ = [
    "ParameterGraph", "GraphSpec", "Symmetry", "Role", "Sine", "to_graph", "to_module", "graph_spec",
    "register_converter", "register_op", "batch_graphs", "batch_stacked", "GraphLoader",
    "MonomialGroup", "MonomialTransform", "sample_transform", "random_transform",
    "UnsupportedModuleError", "NonFiniteWeightsError", "GraphMismatchError", "ZooFormatError",
    "data", "Zoo", "load_zoo", "build_zoo", "merge_shards", "RandomMonomial",
    "verify_symmetry", "SymmetryReport",
    "baselines", "models", "build_model", "list_models", "count_parameters",
    "viz", "nn", "MonomialGMN", "InvariantHead", "EquivariantHead",
    "train", "TrainConfig", "compare", "evaluate_run", "features",
]
