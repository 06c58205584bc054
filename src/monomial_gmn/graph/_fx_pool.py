"""fx handlers for pooling, reductions over spatial dims, padding and resampling.

All keep the channels and act on each channel alone: average pooling, sums and means, zero padding,
interpolation and upsampling are linear (``scale``); max pooling and ``amax`` commute with positive scaling
(``positive_scale``); padding with a non-zero constant is not homogeneous (``none``). Reductions over the
batch or channel dimension mix neurons and are refused. Pooling *modules* are registered ops
(:func:`~monomial_gmn.register_op`); only ``nn.Upsample`` has a handler here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._convert_registry import _OPS, _lookup
from ._fx_registry import register_fx_function, register_fx_method, register_fx_module
from ._fx_values import _arg, _Fail, _Feat, _norm_dim, _value
from ._symmetry import Symmetry

if TYPE_CHECKING:
    from ._fx import _Interpreter

S = Symmetry

_POOL_FUNCS: dict[Any, tuple[Symmetry, Callable | None]] = {
    F.avg_pool1d: (S.SCALE, None), F.avg_pool2d: (S.SCALE, None),
    F.max_pool1d: (S.POSITIVE_SCALE, None), F.max_pool2d: (S.POSITIVE_SCALE, None),
    F.adaptive_avg_pool1d: (S.SCALE, nn.AdaptiveAvgPool1d), F.adaptive_avg_pool2d: (S.SCALE, nn.AdaptiveAvgPool2d),
    F.adaptive_max_pool1d: (S.POSITIVE_SCALE, nn.AdaptiveMaxPool1d),
    F.adaptive_max_pool2d: (S.POSITIVE_SCALE, nn.AdaptiveMaxPool2d),
}


@register_fx_function(*_POOL_FUNCS)
def pool_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """Functional pooling: constrains ``args[0]`` (avg ``scale``, max ``positive_scale``); an adaptive pool
    sets the spatial size through its module's registered rule, the others make it unknown."""
    sym, mod = _POOL_FUNCS[fn]
    out = it.unary(args[0] if args else None, sym, f"{getattr(fn, '__name__', str(fn))}")
    if mod is None:
        out.ctx.spatial = None
    else:
        size = _arg(args, kwargs, 1, "output_size", None)
        core_rule = _lookup(_OPS, mod(size))
        core_rule.effect(mod(size), out.ctx)
    return out


@register_fx_function(torch.mean, torch.sum, torch.amax, torch.max)
def reduce_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> Any:
    """torch.mean/sum/amax/max with a dim: see :func:`reduce` (without one they are not supported)."""
    if len(args) + len(kwargs) <= 1:
        return NotImplemented
    return reduce(it, fn.__name__, args[0] if args else None, args[1:], kwargs)


@register_fx_method("mean", "sum", "amax")
def reduce_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> Any:
    """x.mean/sum/amax(dim): see :func:`reduce` (without a dim they are not supported)."""
    rest = args[1:]
    if not (rest or "dim" in kwargs):
        return NotImplemented
    return reduce(it, method, args[0], rest, kwargs)


def reduce(it: _Interpreter, name: str, x: _Feat, rest: tuple, kwargs: dict) -> _Feat:
    """A reduction over spatial dims: ``scale`` (``positive_scale`` for amax) on the neurons of ``x``; the
    spatial rank drops unless ``keepdim``."""
    dim = _value(_arg(rest, kwargs, 0, "dim", None))
    keep = bool(_value(_arg(rest, kwargs, 1, "keepdim", False)))
    if name == "max":
        raise _Fail("torch.max with a dim returns indices; use amax")
    if x.flat or x.ctx.rank is None or dim is None:
        raise _Fail(f"{name} over an unknown layout")
    dims = {_norm_dim(d, x.ctx.rank) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    if min(dims) < 2:
        raise _Fail(f"{name} over the batch or channel dimension mixes neurons")
    sym = S.POSITIVE_SCALE if name == "amax" else S.SCALE
    out = it.unary(x, sym, name)
    if keep:
        sp = x.ctx.spatial or (None,) * x.ctx.rank
        out.ctx.spatial = tuple(1 if i + 2 in dims else s for i, s in enumerate(sp))
        if None in out.ctx.spatial:
            out.ctx.spatial = None
    else:
        out.ctx.rank = x.ctx.rank - len(dims)
        out.ctx.spatial = None
    return out


@register_fx_function(F.pad)
def pad(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """F.pad of spatial dims: ``scale`` for zero (or reflect/replicate/circular) padding, ``none`` for a
    non-zero constant; the spatial size becomes unknown."""
    x, rest = (args[0] if args else None), args[1:]
    pads = _value(_arg(rest, kwargs, 0, "pad", ()))
    mode = _value(_arg(rest, kwargs, 1, "mode", "constant"))
    value = _value(_arg(rest, kwargs, 2, "value", None))
    if x.ctx.rank is None or x.flat or len(pads) > 2 * x.ctx.rank:
        raise _Fail("padding beyond the spatial dimensions")
    sym = S.NONE if mode == "constant" and value not in (None, 0, 0.0) else S.SCALE
    return it.unary(x, sym, f"pad({mode}, {value})", spatial=None)


@register_fx_function(F.interpolate)
def interpolate(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """F.interpolate: linear in each channel (``scale``); the spatial size becomes unknown."""
    return it.unary(args[0] if args else None, S.SCALE, "interpolation", spatial=None)


@register_fx_module(nn.Upsample)
def upsample_module(it: _Interpreter, target: str, m: nn.Module, x: _Feat) -> _Feat:
    """nn.Upsample: records the call; ``scale`` on the neurons of ``x``, the spatial size becomes unknown."""
    it.mark_called(target, m)
    return it.unary(x, S.SCALE, "upsampling", spatial=None)
