"""The abstract values the fx interpreter tracks, its failure signal, and small argument helpers.

Every fx node evaluates to one of these (or to a tuple/list of them): a :class:`_Feat` for a tensor that
carries features, :data:`_BATCH` for the batch size, a :class:`_Shape` for ``x.shape``, a :class:`_Const`
for a value known without the input, and :data:`_OPAQUE` for anything whose content does not matter.
Handlers raise :class:`_Fail` for an op they cannot read; the interpreter turns it into an
:class:`~monomial_gmn.UnsupportedModuleError` naming the module and the fx op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

from ._convert import ConvertContext
from ._symmetry import Symmetry

S = Symmetry


class _Fail(Exception):
    """An op the converter cannot read (turned into UnsupportedModuleError naming the module and op)."""


@dataclass
class _Feat:
    """A feature tensor [B, C, *spatial] (or [B, C*P] after a flatten): one representative vid per channel.

    ``nodes`` is None while the network input's channel count is still unknown (``pending``).
    """

    nodes: Tensor | None
    ctx: ConvertContext
    pending: bool = False

    @property
    def flat(self) -> bool:
        return self.ctx.channels is None and self.ctx.flat_channels is not None


class _Batch:
    """The batch size (x.size(0), x.shape[0])."""


_BATCH = _Batch()


@dataclass
class _Shape:
    dims: tuple


class _Opaque:
    """A non-feature value whose content the converter does not need (dtype, device, unknown int)."""


_OPAQUE = _Opaque()


@dataclass
class _Const:
    """A constant (python number or tensor) that does not depend on the input."""

    value: Any


# ------------------------------------------------------------------------------------------ helpers
def _norm_dim(dim: Any, rank: int | None) -> int:
    """A dimension index made non-negative (``rank`` is the spatial rank, so the tensor has rank + 2 dims)."""
    dim = _value(dim)
    if not isinstance(dim, int):
        raise _Fail(f"a dimension given as {type(dim).__name__}")
    if dim >= 0:
        return dim
    if rank is None:
        raise _Fail("a negative dimension before the layout is known")
    return dim + rank + 2


def _value(v: Any) -> Any:
    """The python value of a constant; anything else unchanged."""
    return v.value if isinstance(v, _Const) else v


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    """Argument ``i`` if given positionally, else the keyword ``name``, else ``default``."""
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _feats(v: Any) -> list[_Feat]:
    """Every feature tensor among a (nested) argument structure."""
    return [a for a in _flatten_values(v) if isinstance(a, _Feat)]


def _clamp_symmetry(lo: Any, hi: Any) -> Symmetry:
    """What clamping to [lo, hi] commutes with: positive scaling for [0, ∞), sign flips for [-a, a] with a ≥ 0
    (with lo > hi torch returns the constant hi everywhere, which no flip commutes with); else nothing."""
    lo, hi = _value(lo), _value(hi)
    if not all(v is None or isinstance(v, (int, float)) for v in (lo, hi)):
        return S.NONE
    if hi is None and lo == 0:
        return S.POSITIVE_SCALE
    if lo is not None and hi is not None and lo == -hi and hi >= 0:
        return S.SIGN
    return S.NONE


def _flatten_values(v: Any) -> list:
    """The leaves of nested tuples, lists, dicts and slices."""
    if isinstance(v, (tuple, list)):
        return [y for x in v for y in _flatten_values(x)]
    if isinstance(v, dict):
        return [y for x in v.values() for y in _flatten_values(x)]
    if isinstance(v, slice):
        return _flatten_values((v.start, v.stop, v.step))
    return [v]


def _map_values(v: Any, fn: Callable) -> Any:
    """``fn`` applied to every leaf of nested tuples, lists, dicts and slices, keeping the structure."""
    if isinstance(v, tuple):
        return tuple(_map_values(x, fn) for x in v)
    if isinstance(v, list):
        return [_map_values(x, fn) for x in v]
    if isinstance(v, dict):
        return {k: _map_values(x, fn) for k, x in v.items()}
    if isinstance(v, slice):
        return slice(*(_map_values((v.start, v.stop, v.step), fn)))
    return fn(v)
