"""Module → GraphSpec conversion for Sequential-like stacks, with registries users can extend.

Two registries, both dispatched with ``isinstance`` (the most specific registered base class wins):

* :func:`register_converter` — *parametric* layers (Linear, Conv1d, Conv2d built in). A converter returns
  a :class:`LayerConversion` saying how the module's weight reads as a [n_out, n_in, *kernel] block.
* :func:`register_op` — parameter-free ops between parametric layers (activations, pooling, dropout,
  flatten). Each declares the :class:`Symmetry` it preserves; the neurons of a hidden layer get the
  :func:`meet` of the ops between that layer and the next parametric one.

Anything else raises :class:`UnsupportedModuleError` naming the module path and type; no parameter is ever
silently dropped. Modules that are not Sequential-like go through the builders registered with
:func:`register_spec_builder` (the torch.fx converter registers one).

The registries and the converter protocol are in :mod:`._convert_registry`, the built-in converters and ops in
:mod:`._convert_builtins`, the checks of tied weights and neuron symmetries in :mod:`._convert_checks`; this
module holds the Sequential walker and the entry points :func:`graph_spec`, :func:`to_graph`, :func:`to_module`.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn

from .._errors import GraphMismatchError, UnsupportedModuleError
from . import _convert_builtins  # noqa: F401  (registers the built-in converters and ops)
from ._convert_checks import _check_shared_parameters, _check_symmetries
from ._convert_registry import (_CONVERTERS, _NAMED_BUILDERS, _OPS, _SPEC_BUILDERS, ConvertContext, LayerConversion,
                                _lookup, _op_params_reason, op_symmetry, register_converter, register_op,
                                register_spec_builder)
from ._parameter_graph import ParameterGraph
from ._spec import GraphSpec, LayerRecord
from ._symmetry import Role, Symmetry, meet

__all__ = [
    "LayerConversion", "ConvertContext", "register_converter", "register_op", "register_spec_builder",
    "graph_spec", "to_graph", "to_module", "op_symmetry",
]


# ---------------------------------------------------------------------------------------- the walker
def _leaves(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):  # every position, even a module placed twice (named_children skips it)
        for name, child in module._modules.items():
            if child is None:
                continue
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix, module


def _is_sequential_like(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) or _lookup(_CONVERTERS, module) is not None


def _sequential_spec(module: nn.Module) -> GraphSpec:
    ctx = ConvertContext()
    records: list[LayerRecord] = []
    syms: list[Symmetry] = []           # pending symmetry of each layer's outputs
    n_nodes = 0
    in_nodes: torch.Tensor | None = None
    covered: set[str] = set()
    for path, leaf in _leaves(module):
        ctx.path = path
        conv = _lookup(_CONVERTERS, leaf)
        prefix = f"{path}." if path else ""
        if conv is not None:
            lc = conv(leaf, ctx)
            expected = ctx.channels if ctx.channels is not None else ctx.flat_channels
            if in_nodes is None:
                in_nodes = torch.arange(lc.in_channels)
                n_nodes = lc.in_channels
            elif expected is not None and lc.in_channels != expected:
                raise UnsupportedModuleError(path, type(leaf).__name__, f"it expects {lc.in_channels} input "
                                             f"channels but the layer before it gives {expected}")
            out_nodes = torch.arange(n_nodes, n_nodes + lc.out_channels)
            n_nodes += lc.out_channels
            records.append(LayerRecord(path, prefix + lc.weight, prefix + lc.bias if lc.bias else None,
                                       in_nodes, out_nodes, lc.kernel))
            covered.update({prefix + lc.weight} | ({prefix + lc.bias} if lc.bias else set()))
            covered.update(prefix + p for p in lc.extra_params)
            syms.append(Symmetry.SCALE)
            in_nodes = out_nodes
            ctx = ConvertContext(path=path, channels=lc.out_channels, rank=lc.out_rank)
            continue
        rule = _lookup(_OPS, leaf)
        if rule is None:
            reason = ("it has parameters and no converter is registered for it" if any(True for _ in leaf.parameters())
                      else "it is not a registered op; use mg.register_op(type, symmetry) or convert with fx")
            if len(list(leaf.children())) > 0:
                reason = "it is a container that is not nn.Sequential; its dataflow needs torch.fx tracing"
            raise UnsupportedModuleError(path, type(leaf).__name__, reason)
        own = [n for n, _ in leaf.named_parameters()]
        if own and not (rule.allow_params and rule.allow_params(leaf)):
            raise UnsupportedModuleError(path, type(leaf).__name__, _op_params_reason(own))
        covered.update(prefix + n for n in own)
        if rule.effect is not None:
            rule.effect(leaf, ctx)
        if syms:
            sym = rule.symmetry(leaf) if callable(rule.symmetry) else rule.symmetry
            syms[-1] = meet(syms[-1], sym)
    if not records:
        raise UnsupportedModuleError("", type(module).__name__, "it has no parametric layer (Linear/Conv)")
    missing = [n for n, _ in module.named_parameters() if n not in covered]
    if missing:
        raise UnsupportedModuleError(missing[0].rsplit(".", 1)[0], type(module).__name__,
                                     f"parameters {missing} are not covered by any converter")
    return _assemble(records, syms, n_nodes)


def _assemble(records: list[LayerRecord], syms: list[Symmetry], n_nodes: int) -> GraphSpec:
    """Node metadata for a chain of layers: inputs and outputs fixed, each hidden layer one block."""
    layer = torch.zeros(n_nodes, dtype=torch.long)
    role = torch.full((n_nodes,), int(Role.HIDDEN), dtype=torch.long)
    sym = torch.zeros(n_nodes, dtype=torch.long)
    block = torch.full((n_nodes,), -1, dtype=torch.long)
    pos = torch.full((n_nodes,), -1, dtype=torch.long)
    role[records[0].in_nodes] = int(Role.INPUT)
    for li, rec in enumerate(records):
        layer[rec.out_nodes] = li + 1
        if li == len(records) - 1:
            role[rec.out_nodes] = int(Role.OUTPUT)
        else:
            sym[rec.out_nodes] = int(syms[li])
            block[rec.out_nodes] = li
            pos[rec.out_nodes] = torch.arange(rec.n_out)
    return GraphSpec(layer=layer, role=role, sym=sym, block=block, pos=pos, layers=records)


def graph_spec(module: nn.Module, method: str = "auto") -> GraphSpec:
    """The :class:`GraphSpec` of a module's architecture.

    Args:
        module: the network.
        method: ``"auto"`` (default): the Sequential walker for ``nn.Sequential`` stacks of registered
            layers; a stack the walker cannot read (norm layers, user-defined blocks), and any other module,
            goes through the registered builders (the torch.fx converter). If none accepts it, the walker's
            error (naming the module path and type) is raised. ``"sequential"``: the walker only. A builder
            name (``"fx"``): that builder only.
    """
    _check_shared_parameters(module)
    if method == "sequential":
        return _sequential_spec(module)
    if method != "auto":
        if method not in _NAMED_BUILDERS:
            raise ValueError(f"unknown conversion method {method!r}; expected 'auto', 'sequential' or one of "
                             f"{sorted(_NAMED_BUILDERS)}")
        spec = _NAMED_BUILDERS[method](module)
        if spec is None:
            raise UnsupportedModuleError("", type(module).__name__, f"the {method!r} converter does not accept it")
        return spec
    first_error: UnsupportedModuleError | None = None
    builder_error: UnsupportedModuleError | None = None
    if _is_sequential_like(module):
        try:
            return _sequential_spec(module)
        except UnsupportedModuleError as err:
            first_error = err  # a stack the walker cannot read may still be read by the dataflow builders
    for builder in _SPEC_BUILDERS:
        try:
            spec = builder(module)
        except UnsupportedModuleError as err:
            builder_error = builder_error or err
            continue
        if spec is not None:
            return spec
    if first_error is not None:
        raise first_error  # the walker's message names the offending layer most precisely
    if builder_error is not None:
        raise builder_error
    raise UnsupportedModuleError("", type(module).__name__, "it is not an nn.Sequential stack or a registered "
                                 "layer, and no other converter accepted it")


def to_graph(module: nn.Module, method: str = "auto") -> ParameterGraph:
    """Convert a network to its :class:`ParameterGraph` (layout and law in :mod:`monomial_gmn.graph`).

    Raises:
        UnsupportedModuleError: a module without converter (named by path and type).
        NonFiniteWeightsError: a parameter holds NaN/inf (named).
    """
    return graph_spec(module, method).module_graph(module)


def to_module(graph: ParameterGraph, template: nn.Module, method: str = "auto") -> nn.Module:
    """A deep copy of ``template`` holding ``graph``'s parameters (name-based, exact, bit-for-bit).

    Parameters are matched by the names recorded for ``template``'s architecture, and weights are placed
    through ``edge_index``, so a graph whose edges were reordered loads the same. Parameters the graph does
    not carry (those of ops registered with ``allow_params``) are taken from ``template``. Buffers the graph carries (a norm's
    running statistics and step count) are written too. ``method`` as in :func:`graph_spec`.

    Raises:
        GraphMismatchError: the graph does not fit ``template``: other layers or sizes, or other neuron
            symmetries (a graph of a ReLU network loaded into a tanh template).
    """
    if getattr(graph, "num_graphs", 1) != 1 or hasattr(graph, "ptr"):
        raise GraphMismatchError("to_module takes one graph; split a batch with batch.to_data_list()")
    spec = graph_spec(template, method)
    _check_symmetries(graph, spec)
    state = spec.state_from_graph(graph)
    net = copy.deepcopy(template)
    params = {**dict(net.named_buffers()), **dict(net.named_parameters())}
    with torch.no_grad():
        for name, value in state.items():
            p = params[name]
            if p.numel() != value.numel():
                raise GraphMismatchError(f"parameter '{name}' of the template has shape {tuple(p.shape)}, "
                                         f"the graph gives {value.numel()} values")
            p.copy_(value.reshape(p.shape))
    return net
