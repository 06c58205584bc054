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
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from .._errors import GraphMismatchError, UnsupportedModuleError
from ._modules import Sine
from ._parameter_graph import ParameterGraph
from ._spec import GraphSpec, LayerRecord
from ._symmetry import Role, Symmetry, meet

__all__ = [
    "LayerConversion", "ConvertContext", "register_converter", "register_op", "register_spec_builder",
    "graph_spec", "to_graph", "to_module", "op_symmetry",
]


@dataclass
class ConvertContext:
    """What the walker knows about the tensor flowing into the next module.

    Attributes:
        path: module path of the module being converted.
        channels: feature/channel count (None before the first parametric layer).
        rank: spatial rank (0 for vectors, 1 for sequences, 2 for images; None if unknown yet).
        spatial: known spatial size, or None.
        flat_channels: channel count of a spatial map that a Flatten turned into a vector (else None).
        flat_spatial: spatial size of that map if known.
    """

    path: str = ""
    channels: int | None = None
    rank: int | None = None
    spatial: tuple[int, ...] | None = None
    flat_channels: int | None = None
    flat_spatial: tuple[int, ...] | None = None
    flat_rank: int = 0


@dataclass
class LayerConversion:
    """How a parametric module reads as a graph layer (returned by converters).

    Attributes:
        in_channels / out_channels: neurons (channels) on each side.
        kernel: spatial shape of one (out, in) block of the weight.
        weight / bias: attribute names of the weight and bias on the module (bias None if absent).
        out_rank: spatial rank of the module's output (0 vector, 1 or 2).
    """

    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    weight: str = "weight"
    bias: str | None = "bias"
    out_rank: int = 0
    extra_params: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class _OpRule:
    symmetry: Symmetry | Callable[[nn.Module], Symmetry]
    effect: Callable[[nn.Module, ConvertContext], None] | None = None
    allow_params: Callable[[nn.Module], bool] | None = None


_CONVERTERS: dict[type, Callable[[nn.Module, ConvertContext], LayerConversion]] = {}
_OPS: dict[type, _OpRule] = {}
_SPEC_BUILDERS: list[Callable[[nn.Module], GraphSpec | None]] = []
_NAMED_BUILDERS: dict[str, Callable[[nn.Module], GraphSpec | None]] = {}


def register_converter(module_type: type) -> Callable:
    """Decorator: register ``fn(module, ctx) -> LayerConversion`` for ``module_type`` and its subclasses."""

    def deco(fn: Callable[[nn.Module, ConvertContext], LayerConversion]) -> Callable:
        _CONVERTERS[module_type] = fn
        return fn

    return deco


def register_op(module_type: type, symmetry: Symmetry | str | Callable[[nn.Module], Symmetry],
                effect: Callable[[nn.Module, ConvertContext], None] | None = None,
                allow_params: Callable[[nn.Module], bool] | None = None) -> None:
    """Register a parameter-free op (activation, pooling, ...) and the symmetry it preserves.

    Args:
        module_type: the op's class (subclasses match too).
        symmetry: what the op commutes with: ``"scale"`` for linear ops, ``"positive_scale"`` for positively
            homogeneous ones, ``"sign"`` for odd ones, ``"none"`` otherwise; or a function of the module.
        effect: optional ``fn(module, ctx)`` updating the spatial bookkeeping (pooling, flatten).
        allow_params: optional predicate for ops whose own parameters are constants of the architecture
            (frozen, the same in every network): such parameters are not carried by the graph, stay with the
            architecture and are copied from the template by :func:`to_module`. Without it an op with
            parameters is refused (networks differing only in them would get the same graph).
    """
    sym = symmetry if callable(symmetry) else Symmetry.parse(symmetry)
    _OPS[module_type] = _OpRule(sym, effect, allow_params)


def register_spec_builder(fn: Callable[[nn.Module], GraphSpec | None], name: str | None = None) -> None:
    """Register a fallback builder for modules that are not Sequential-like (returns None to pass).

    A builder may also raise :class:`UnsupportedModuleError`; the next builder is then tried and the first
    error is raised if none accepts the module. ``name`` makes it selectable as ``to_graph(m, method=name)``.
    """
    if fn not in _SPEC_BUILDERS:
        _SPEC_BUILDERS.append(fn)
    if name is not None:
        _NAMED_BUILDERS[name] = fn


def _lookup(registry: dict, module: nn.Module):
    for cls in type(module).__mro__:
        if cls in registry:
            return registry[cls]
    return None


def _op_params_reason(names: list[str]) -> str:
    return (f"its parameter(s) {names} are not carried by the graph, so networks that differ in them would get "
            "the same graph (if they are frozen constants of the architecture, declare it with "
            "mg.register_op(type, symmetry, allow_params=lambda m: True))")


def op_symmetry(module: nn.Module) -> Symmetry | None:
    """The symmetry a registered op preserves, or None if the op is not registered."""
    rule = _lookup(_OPS, module)
    if rule is None:
        return None
    return rule.symmetry(module) if callable(rule.symmetry) else rule.symmetry


# ---------------------------------------------------------------------------------------- built-in converters
@register_converter(nn.Linear)
def _linear(module: nn.Linear, ctx: ConvertContext) -> LayerConversion:
    bias = "bias" if module.bias is not None else None
    if ctx.flat_channels is not None and ctx.channels is None:
        c = ctx.flat_channels
        if module.in_features % c:
            raise UnsupportedModuleError(ctx.path, "Linear", f"in_features={module.in_features} is not a multiple "
                                         f"of the {c} channels flattened before it")
        per = module.in_features // c
        kernel = _flat_kernel(per, ctx.flat_spatial, ctx.flat_rank)
        return LayerConversion(c, module.out_features, kernel, bias=bias)
    if ctx.rank not in (None, 0):
        raise UnsupportedModuleError(ctx.path, "Linear", "it is applied to a spatial map without a Flatten "
                                     "(global pooling + Flatten, or Flatten over the map, is expected)")
    return LayerConversion(module.in_features, module.out_features, (), bias=bias)


def _flat_kernel(per: int, spatial: tuple[int, ...] | None, rank: int) -> tuple[int, ...]:
    if spatial is not None and math.prod(spatial) == per:
        return tuple(int(s) for s in spatial) if len(spatial) == 2 else (per,)
    if per == 1:
        return ()
    r = math.isqrt(per)
    if rank == 2 and r * r == per:
        return (r, r)
    return (per,)


def _conv(rank: int):
    def convert(module: nn.Module, ctx: ConvertContext) -> LayerConversion:
        name = type(module).__name__
        if module.groups != 1:
            raise UnsupportedModuleError(ctx.path, name, f"groups={module.groups}: only groups=1 is supported")
        if getattr(module, "transposed", False):
            raise UnsupportedModuleError(ctx.path, name, "transposed convolutions are not supported")
        if ctx.rank not in (None, rank):
            raise UnsupportedModuleError(ctx.path, name, f"its input has spatial rank {ctx.rank}, not {rank}")
        bias = "bias" if module.bias is not None else None
        return LayerConversion(module.in_channels, module.out_channels, tuple(module.kernel_size),
                               bias=bias, out_rank=rank)

    return convert


register_converter(nn.Conv1d)(_conv(1))
register_converter(nn.Conv2d)(_conv(2))


# ---------------------------------------------------------------------------------------- built-in ops
def _flatten_effect(module: nn.Flatten, ctx: ConvertContext) -> None:
    if module.start_dim != 1 or module.end_dim != -1:
        raise UnsupportedModuleError(ctx.path, "Flatten", "only Flatten(start_dim=1, end_dim=-1) is supported")
    if not ctx.rank:
        return
    if ctx.spatial is not None and math.prod(ctx.spatial) == 1:
        ctx.rank, ctx.spatial = 0, None
        return
    ctx.flat_channels, ctx.flat_spatial, ctx.flat_rank = ctx.channels, ctx.spatial, ctx.rank
    ctx.channels, ctx.rank, ctx.spatial = None, 0, None


def _adaptive_effect(module: nn.Module, ctx: ConvertContext) -> None:
    size = module.output_size
    rank = ctx.rank or (2 if "2d" in type(module).__name__ else 1)
    size = (size,) * rank if isinstance(size, int) else tuple(size)
    ctx.spatial = None if any(s is None for s in size) else tuple(int(s) for s in size)


def _unknown_spatial(module: nn.Module, ctx: ConvertContext) -> None:
    ctx.spatial = None


def _hardtanh_symmetry(module: nn.Hardtanh) -> Symmetry:
    return Symmetry.SIGN if module.min_val == -module.max_val else Symmetry.NONE


for _t in (nn.ReLU, nn.LeakyReLU):
    register_op(_t, Symmetry.POSITIVE_SCALE)
register_op(nn.PReLU, Symmetry.POSITIVE_SCALE)  # its learnable slope is not carried: refused (see allow_params)
for _t in (nn.Tanh, nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, Sine):
    register_op(_t, Symmetry.SIGN)
register_op(nn.Hardtanh, _hardtanh_symmetry)
for _t in (nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.Softplus, nn.Mish, nn.Hardswish,
           nn.Hardsigmoid, nn.LogSigmoid, nn.ReLU6, nn.RReLU, nn.Threshold):
    register_op(_t, Symmetry.NONE)
for _t in (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout):
    register_op(_t, Symmetry.SCALE)
for _t in (nn.AvgPool1d, nn.AvgPool2d):
    register_op(_t, Symmetry.SCALE, effect=_unknown_spatial)
for _t in (nn.MaxPool1d, nn.MaxPool2d):
    register_op(_t, Symmetry.POSITIVE_SCALE, effect=_unknown_spatial)
for _t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
    register_op(_t, Symmetry.SCALE, effect=_adaptive_effect)
for _t in (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d):
    register_op(_t, Symmetry.POSITIVE_SCALE, effect=_adaptive_effect)
register_op(nn.Flatten, Symmetry.SCALE, effect=_flatten_effect)


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
