"""The converter protocol and the registries of module → GraphSpec conversion.

:class:`ConvertContext` (what the walker knows about the tensor flowing into the next module) and
:class:`LayerConversion` (how a parametric module reads as a graph layer) are what converters take and return.
Three registries, extended by users: :func:`register_converter` (parametric layers), :func:`register_op`
(parameter-free ops and the :class:`Symmetry` they preserve), :func:`register_spec_builder` (builders for modules
that are not Sequential-like, such as the torch.fx converter). Both module registries are dispatched with
``isinstance`` through :func:`_lookup` (the most specific registered base class wins). The built-in entries are in
:mod:`._convert_builtins`; the walker that reads them is in :mod:`._convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ._spec import GraphSpec
from ._symmetry import Symmetry

__all__ = ["LayerConversion", "ConvertContext", "register_converter", "register_op", "register_spec_builder",
           "op_symmetry"]


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
