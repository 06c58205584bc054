"""monomial-gmn: graph metanetworks exactly equivariant to the monomial group of the networks they read.

>>> import torch.nn as nn, monomial_gmn as mg
>>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
>>> graph = mg.to_graph(net)          # ParameterGraph (a torch_geometric Data)
>>> g = mg.sample_transform(graph)    # a random element of the net's monomial group
>>> net2 = g(net)                     # same function, transformed weights

The names below and the subpackages (``mg.data``, ``mg.nn``, ``mg.testing``, ...) are imported on first use,
so ``import monomial_gmn`` (and the ``monomial-gmn`` command's ``--help``) does not pay for torch until a name
that needs it is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import GraphMismatchError, NonFiniteWeightsError, UnsupportedModuleError, ZooFormatError
from ._version import __version__

#: public name -> submodule that defines it (imported on first access)
_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(("GraphLoader", "GraphSpec", "ParameterGraph", "Role", "Sine", "Symmetry", "batch_graphs",
                     "batch_stacked", "graph_spec", "register_converter", "register_op", "to_graph", "to_module"),
                    "graph"),
    **dict.fromkeys(("MonomialGroup", "MonomialTransform", "random_transform", "sample_transform"), "group"),
    **dict.fromkeys(("EquivariantHead", "InvariantHead", "MonomialGMN"), "nn"),
    **dict.fromkeys(("RandomMonomial", "Zoo", "build_zoo", "load_zoo", "merge_shards"), "data"),
    **dict.fromkeys(("SymmetryReport", "verify_symmetry"), "verify"),
    **dict.fromkeys(("build_model", "count_parameters", "list_models"), "models"),
    **dict.fromkeys(("TrainConfig", "compare", "evaluate_run"), "train"),
}
#: subpackages reachable as attributes (``mg.testing.assert_equivariant`` after ``import monomial_gmn as mg``)
_SUBMODULES = ("baselines", "bench", "data", "features", "graph", "group", "models", "nn", "testing", "train",
               "verify", "viz")

__all__ = [
    "ParameterGraph", "GraphSpec", "Symmetry", "Role", "Sine", "to_graph", "to_module", "graph_spec",
    "register_converter", "register_op", "batch_graphs", "batch_stacked", "GraphLoader",
    "MonomialGroup", "MonomialTransform", "sample_transform", "random_transform",
    "UnsupportedModuleError", "NonFiniteWeightsError", "GraphMismatchError", "ZooFormatError",
    "data", "Zoo", "load_zoo", "build_zoo", "merge_shards", "RandomMonomial",
    "verify_symmetry", "SymmetryReport",
    "baselines", "models", "build_model", "list_models", "count_parameters",
    "viz", "nn", "MonomialGMN", "InvariantHead", "EquivariantHead",
    "train", "TrainConfig", "compare", "evaluate_run", "features", "testing",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES) | set(_SUBMODULES))
