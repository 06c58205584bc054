"""Validation checks of module ↔ graph conversion: tied weights are refused before a module is read
(:func:`_check_shared_parameters`), and a graph loaded into a template must carry the template's neuron symmetries
(:func:`_check_symmetries`)."""

from __future__ import annotations

from torch import nn

from .._errors import GraphMismatchError, UnsupportedModuleError
from ._parameter_graph import ParameterGraph
from ._spec import GraphSpec
from ._symmetry import Symmetry


def _check_shared_parameters(module: nn.Module) -> None:
    """Tied weights (one parameter under two names: a layer placed twice in a Sequential, ``b.weight =
    a.weight``) are refused: the graph would hold the tensor twice, and the group would transform the copies
    independently although the network can change them only together."""
    seen: dict[int, str] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        first = seen.setdefault(id(p), name)
        if first != name:
            path = name.rpartition(".")[0]
            raise UnsupportedModuleError(path, type(module.get_submodule(path)).__name__,
                                         f"its parameter '{name}' is the same tensor as '{first}' (shared or tied "
                                         "weights are not supported)")


def _check_symmetries(graph: ParameterGraph, spec: GraphSpec) -> None:
    """A graph's recorded neuron symmetries must be the template's: the same layout with other activations
    (ReLU vs tanh) is another function family, and its group would not act the same."""
    sym = getattr(graph, "sym", None)
    if sym is None or tuple(sym.shape) != tuple(spec.sym.shape):
        return  # no record, or a size mismatch that state_from_graph names
    differ = (sym.detach().cpu().long() != spec.sym).nonzero().flatten()
    if differ.numel() == 0:
        return
    i = int(differ[0])
    layer = int(spec.layer[i])
    where = f"layer {layer} ('{spec.layers[layer - 1].path}')" if 0 < layer <= len(spec.layers) else f"layer {layer}"
    raise GraphMismatchError(
        f"the graph's neurons have other symmetries than the template's ({differ.numel()} neurons; the first, "
        f"neuron {i} in {where}, is {_sym_name(int(sym[i]))} in the graph and {_sym_name(int(spec.sym[i]))} in "
        "the template): it comes from a network with other activations; load it into a template with the same "
        "activations")


def _sym_name(code: int) -> str:
    try:
        return Symmetry(code).label
    except ValueError:
        return f"code {code}"
