"""fx handlers for activations: elementwise functions and methods, clamps, PReLU and softmax-like ops.

Each elementwise op keeps the channels and constrains the neurons it reads by what it commutes with:
ReLU-like ops ``positive_scale``, odd ops (tanh, sin, ...) ``sign``, linear ones (negation, dropout, copies
and casts) ``scale``, any other (sigmoid, GELU, exp, ...) ``none``. Clamps get the symmetry of their bounds
(``[0, ∞)`` positive scaling, ``[-a, a]`` with a ≥ 0 sign flips, else none; a per-channel tensor bound fixes
the neurons, a feature-tensor bound ties them to it); softmax over the channels and
``F.normalize`` mix features (``none``).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ._fx_registry import register_fx_function, register_fx_method, register_fx_module
from ._fx_arith import channel_uniform, feat_feat
from ._fx_values import _OPAQUE, _arg, _clamp_symmetry, _Const, _Fail, _Feat, _feats, _value
from ._symmetry import Symmetry

if TYPE_CHECKING:
    from ._fx import _Interpreter

S = Symmetry

_UNARY_FUNCS: dict[Any, Symmetry] = {}
_UNARY_METHODS: dict[str, Symmetry] = {}


def _unary_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """An elementwise function of one feature tensor: reads ``args[0]``, constrains it by the table's symmetry."""
    name = getattr(fn, "__name__", str(fn))
    x = args[0] if args else None
    feats = _feats((args, kwargs))
    if len(feats) != 1 or feats[0] is not x:
        raise _Fail(f"{name} is applied to several feature tensors")
    return it.unary(x, _UNARY_FUNCS[fn], name)


def _unary_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> _Feat:
    """An elementwise tensor method: constrains the tensor by the table's symmetry (no feature arguments)."""
    if _feats((args[1:], kwargs)):
        raise _Fail(f"method '{method}' with a feature tensor argument")
    return it.unary(args[0], _UNARY_METHODS[method], method)


def register_elementwise(sym: Symmetry, funcs: tuple = (), methods: tuple[str, ...] = ()) -> None:
    """Register elementwise functions and tensor methods that commute with ``sym`` (cf. ``register_op``)."""
    for f in funcs:
        _UNARY_FUNCS[f] = sym
    for m in methods:
        _UNARY_METHODS[m] = sym
    register_fx_function(*funcs)(_unary_function)
    register_fx_method(*methods)(_unary_method)


register_elementwise(S.POSITIVE_SCALE, (F.relu, torch.relu, torch.relu_, F.relu_, F.leaky_relu, F.leaky_relu_,
                                        torch.abs),
                     ("relu", "relu_", "abs", "abs_"))
register_elementwise(S.SIGN, (torch.tanh, F.tanh, torch.sin, torch.sinh, torch.asinh, torch.arcsinh, torch.atan,
                              torch.arctan, torch.erf, F.softsign, F.tanhshrink, F.softshrink, F.hardshrink,
                              torch.sign),
                     ("tanh", "tanh_", "sin", "sin_", "sinh", "asinh", "atan", "arctan", "erf", "sign"))
register_elementwise(S.NONE, (torch.sigmoid, F.sigmoid, F.gelu, F.silu, F.elu, F.celu, F.selu, F.softplus, F.mish,
                              F.hardswish, F.hardsigmoid, F.logsigmoid, F.relu6, F.rrelu, F.threshold, torch.exp,
                              torch.log, torch.log1p, torch.expm1, torch.cos, torch.cosh, torch.sqrt, torch.rsqrt,
                              torch.square, torch.reciprocal, torch.erfc, torch.exp2, torch.log2),
                     ("sigmoid", "sigmoid_", "exp", "log", "log1p", "expm1", "cos", "cosh", "sqrt", "rsqrt",
                      "square", "reciprocal", "erfc"))
register_elementwise(S.SCALE, (torch.neg, operator.neg, operator.pos, F.dropout, F.dropout1d, F.dropout2d,
                               F.alpha_dropout, F.feature_alpha_dropout, torch.clone, torch.positive),
                     ("neg", "contiguous", "clone", "detach", "float", "double", "half", "to", "type_as", "cpu",
                      "cuda"))


@register_fx_function(F.hardtanh, torch.clamp, torch.clip)
def clamp_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """hardtanh (default bounds ±1) and clamp/clip: reads ``args[0]``, constrains it by the bounds (:func:`clamp`)."""
    name = getattr(fn, "__name__", str(fn))
    if fn is F.hardtanh:
        lo, hi = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
    else:
        lo, hi = _arg(args, kwargs, 1, "min", None), _arg(args, kwargs, 2, "max", None)
    return clamp(it, args[0] if args else None, lo, hi, name)


@register_fx_method("clamp", "clip", "clamp_min", "clamp_max")
def clamp_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> _Feat:
    """x.clamp/clip/clamp_min/clamp_max: constrains the tensor by the bounds (:func:`clamp`)."""
    rest = args[1:]
    lo = _arg(rest, kwargs, 0, "min", None) if method != "clamp_max" else None
    hi = (_arg(rest, kwargs, 1, "max", None) if method in ("clamp", "clip")
          else (_arg(rest, kwargs, 0, "max", None) if method == "clamp_max" else None))
    return clamp(it, args[0], lo, hi, method)


def clamp(it: _Interpreter, x: _Feat, lo: Any, hi: Any, name: str) -> _Feat:
    """Clamping ``x`` to [lo, hi]. Number bounds (and one-element tensors): the symmetry of the bounds
    (:func:`~._fx_values._clamp_symmetry`). A feature-tensor bound is an elementwise max/min of two features:
    their channels are tied and get ``none``. A tensor bound that differs between channels fixes the neurons
    (the graph does not carry it); one that varies only over positions gives ``none``."""
    if not isinstance(x, _Feat):
        raise _Fail(f"{name} of a constant bounded by a feature tensor")
    bounds = []
    for b in (lo, hi):
        if isinstance(b, _Feat):
            x = feat_feat(it, x, b, tie_only=False, why=f"{name} with a feature-tensor bound")
            b = _OPAQUE
        elif torch.is_tensor(_value(b)):
            t = _value(b)
            if t.numel() == 1:
                b = float(t.reshape(()))
            elif not channel_uniform(x, t):
                return it.unary(x, S.FIXED, f"{name} with per-channel bounds (the graph does not carry them)")
            else:
                b = _OPAQUE
        bounds.append(b)
    return it.unary(x, _clamp_symmetry(*bounds), f"{name}({lo}, {hi})")


@register_fx_function(F.prelu)
def prelu(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """F.prelu with one constant slope: ``positive_scale`` (a per-channel slope is refused)."""
    w = args[1] if len(args) > 1 else kwargs.get("weight")
    if not (isinstance(w, _Const) and torch.is_tensor(w.value) and w.value.numel() == 1):
        raise _Fail("prelu with a per-channel slope: its parameters are not carried by the graph")
    return it.unary(args[0] if args else None, S.POSITIVE_SCALE, "prelu")


@register_fx_function(F.softmax, F.log_softmax, F.softmin, torch.softmax, torch.log_softmax, F.normalize)
def softmax_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """Softmax-like functions and F.normalize: they mix features, ``none`` on the neurons of ``args[0]``."""
    name = getattr(fn, "__name__", str(fn))
    return it.unary(args[0] if args else None, S.NONE, f"{name} (mixes features)")


@register_fx_method("softmax", "log_softmax")
def softmax_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> _Feat:
    """x.softmax/log_softmax: ``none`` on the tensor's neurons."""
    return it.unary(args[0], S.NONE, f"{method} (mixes features)")


@register_fx_module(nn.Softmax, nn.LogSoftmax, nn.Softmin)
def softmax_module(it: _Interpreter, target: str, m: nn.Module, x: _Feat) -> _Feat:
    """nn.Softmax/LogSoftmax/Softmin: records the call, ``none`` on the neurons of ``x``."""
    it.mark_called(target, m)
    return it.unary(x, S.NONE, f"{type(m).__name__} at '{target}'")
