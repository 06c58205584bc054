"""fx handlers for arithmetic: add/sub/mul/div/pow (functions and tensor methods) and concatenation.

* ``a + b`` (and ``a - b``) of two feature tensors ties their neurons channel by channel (one slot: the same
  permutation and factor); ``a * b`` and ``a / b`` tie them too and give them factor 1 (``none``).
* With a constant: scaling by a channel-uniform constant is linear (``scale``), adding one is not homogeneous
  (``none``), a per-channel constant fixes the neurons (the graph does not carry it); ``x ** k`` is ``scale``
  for k = 1, ``sign`` for odd integers, else ``none``.
* ``torch.cat`` along the channels appends the channel lists; along a spatial dim it ties them like a sum.
"""

from __future__ import annotations

import copy
import operator
from typing import TYPE_CHECKING, Any

import torch

from ._convert import ConvertContext
from ._fx_registry import register_fx_function, register_fx_method
from ._fx_values import _Batch, _Const, _Fail, _Feat, _norm_dim, _Opaque
from ._symmetry import Symmetry

if TYPE_CHECKING:
    from ._fx import _Interpreter

S = Symmetry

_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub, torch.subtract}
_MUL = {operator.mul, operator.imul, torch.mul, torch.multiply}
_DIV = {operator.truediv, operator.itruediv, torch.div, torch.true_divide, torch.divide}
_POW = {operator.pow, torch.pow}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_METHOD_FUNCS = {"add": torch.add, "add_": torch.add, "sub": torch.sub, "sub_": torch.sub, "mul": torch.mul,
                 "mul_": torch.mul, "div": torch.div, "div_": torch.div, "true_divide": torch.div, "pow": torch.pow}


@register_fx_function(*_ADD, *_MUL, *_DIV, *_POW)
def binary_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> Any:
    """``a op b`` as a function (operator.add, torch.mul, ...): see :func:`binary`."""
    return binary(it, fn, args[0], args[1] if len(args) > 1 else kwargs.get("other"), kwargs)


@register_fx_method(*_METHOD_FUNCS)
def binary_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> Any:
    """``x.add(b)``, ``x.mul_(b)``, ``x.pow(k)``, ...: the function of the same name (see :func:`binary`)."""
    rest = args[1:]
    return binary(it, _METHOD_FUNCS[method], args[0], rest[0] if rest else kwargs.get("other", kwargs.get("exponent")),
                  kwargs)


def binary(it: _Interpreter, fn: Any, a: Any, b: Any, kwargs: dict) -> Any:
    """One arithmetic op with at least one feature operand.

    Two features: tied (and ``none`` unless it is a sum or difference, see :func:`feat_feat`). A feature and a
    constant: constrains the feature's neurons (``scale``, ``none`` or ``fixed``, see the module docstring).
    """
    is_add = fn in _ADD
    is_pow = fn in _POW
    name = getattr(fn, "__name__", str(fn))
    if isinstance(a, _Feat) and isinstance(b, _Feat):
        if is_pow:
            raise _Fail("a power with a feature-valued exponent")
        return feat_feat(it, a, b, tie_only=is_add, why=name)
    x, c, feat_first = (a, b, True) if isinstance(a, _Feat) else (b, a, False)
    if isinstance(c, (int, float, bool)) or torch.is_tensor(c):
        c = _Const(c)
    if is_pow:
        if not feat_first or not isinstance(c, _Const) or not isinstance(c.value, (int, float)):
            raise _Fail("only powers x ** k with a constant number k are supported")
        k = c.value
        sym = S.SCALE if k == 1 else (S.SIGN if float(k).is_integer() and int(k) % 2 == 1 else S.NONE)
        return it.unary(x, sym, f"x ** {k}")
    if isinstance(c, (_Batch, _Opaque)) or c is None:
        uniform = True
    elif isinstance(c, _Const):
        uniform = channel_uniform(x, c.value)
    else:
        raise _Fail(f"{name} of a feature tensor and {type(c).__name__}")
    if not uniform:
        return it.unary(x, S.FIXED, f"{name} with a per-channel constant (the graph does not carry it)")
    if is_add:
        return it.unary(x, S.NONE, f"{name} with a constant (not homogeneous)")
    if fn in _DIV and not feat_first:
        return it.unary(x, S.NONE, "a constant divided by a feature")
    return it.unary(x, S.SCALE, f"{name} by a constant")


def channel_uniform(x: _Feat, value: Any) -> bool:
    """True if a constant acts the same on every channel of ``x`` (so permuting channels commutes)."""
    if not torch.is_tensor(value):
        return isinstance(value, (int, float, bool))
    if value.numel() == 1:
        return True
    if x.flat or x.ctx.rank is None:
        return False
    r = x.ctx.rank
    if value.dim() > r + 2:
        raise _Fail(f"a constant of shape {tuple(value.shape)} broadcasts a feature tensor to more dimensions")
    return value.dim() < r + 1 or value.shape[-(r + 1)] == 1


def feat_feat(it: _Interpreter, a: _Feat, b: _Feat, tie_only: bool, why: str) -> _Feat:
    """Two feature tensors combined elementwise: ties their vids (``ties``); ``none`` on them unless ``tie_only``.

    A one-channel operand broadcast over the other's channels fixes both instead of tying them.
    """
    if a.flat != b.flat or (a.ctx.rank is not None and b.ctx.rank is not None and a.ctx.rank != b.ctx.rank):
        raise _Fail(f"{why} of feature tensors of different layouts")
    if a.nodes is None and b.nodes is None:
        if not tie_only:
            it.constrain(a, S.NONE, why)
        return _Feat(None, copy.copy(a.ctx), True)
    if a.nodes is None:
        vb = it.nodes(b)
        va = it.nodes(a, vb.numel() if it.input_nodes is None else None)
    else:
        va = it.nodes(a)
        vb = it.nodes(b, va.numel() if b.nodes is None and it.input_nodes is None else None)
    base = a if a.ctx.spatial is not None or b.ctx.spatial is None else b
    ctx = copy.copy(base.ctx)
    if va.numel() != vb.numel():
        if 1 not in (va.numel(), vb.numel()):
            raise _Fail(f"{why} of feature tensors with {va.numel()} and {vb.numel()} channels")
        it.constrain(a, S.FIXED, f"{why} broadcast over channels")
        it.constrain(b, S.FIXED, f"{why} broadcast over channels")
        wide = a if va.numel() > vb.numel() else b
        return _Feat(it.nodes(wide), copy.copy(wide.ctx))
    rep = it.tie(va, vb)
    if not tie_only:
        it.constrain(_Feat(rep, ctx), S.NONE, f"{why} of two feature tensors")
    if ctx.channels is not None:
        ctx.channels = rep.numel()
    return _Feat(rep, ctx)


@register_fx_function(*_CAT)
def cat_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """torch.cat/concat/concatenate of feature tensors: see :func:`cat`."""
    tensors = args[0] if args else kwargs["tensors"]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    return cat(it, list(tensors), dim)


def cat(it: _Interpreter, tensors: list, dim: int) -> _Feat:
    """Along the channels: the vids appended in order. Along a spatial dim: the lists tied channel by channel."""
    feats = [t for t in tensors if isinstance(t, _Feat)]
    if len(feats) != len(tensors):
        raise _Fail("torch.cat of feature tensors with constants")
    ranks = {f.ctx.rank for f in feats}
    if len(ranks) != 1 or None in ranks:
        raise _Fail("torch.cat of tensors whose layouts differ or are unknown")
    rank = ranks.pop()
    d = _norm_dim(dim, rank)
    if any(f.flat for f in feats):
        raise _Fail("torch.cat of flattened spatial maps (flatten after concatenating instead)")
    vids = [it.nodes(f) for f in feats]
    if d == 1:
        spatial = {f.ctx.spatial for f in feats}
        ctx = ConvertContext(channels=sum(v.numel() for v in vids), rank=rank,
                             spatial=spatial.pop() if len(spatial) == 1 else None)
        return _Feat(torch.cat(vids), ctx)
    rep = vids[0]
    for v in vids[1:]:
        if v.numel() != rep.numel():
            raise _Fail(f"torch.cat along dim {dim} of tensors with different channel counts")
        rep = it.tie(rep, v)
    ctx = copy.copy(feats[0].ctx)
    ctx.spatial = None
    return _Feat(rep, ctx)
