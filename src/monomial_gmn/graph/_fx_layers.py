"""fx handlers for layers: parametric layers (through their converters), norm layers and registered ops.

* A module with a converter (Linear, Conv, anything :func:`~monomial_gmn.register_converter` knows) reads its
  input channels and creates one new neuron per output channel (:func:`parametric`).
* A norm layer gives the neurons it reads factor 1 (``none``) and records its per-channel tensors, which
  move with the neurons in the graph's ``norm`` field; GroupNorm with 1 < G < C splits their block at the
  group boundaries. ``F.layer_norm``/``F.group_norm`` without affine parameters mix features (``none``).
* A module registered with :func:`~monomial_gmn.register_op` keeps the channels and constrains them by the
  symmetry of its rule (:func:`registered_op`, tried after the fx module handlers).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import UnsupportedModuleError
from ._convert_registry import _OPS, ConvertContext, _lookup, _op_params_reason
from ._fx_registry import register_fx_function, register_fx_module
from ._fx_spec import NormKind
from ._fx_values import _arg, _Const, _Fail, _Feat, _flatten_values
from ._symmetry import Symmetry

if TYPE_CHECKING:
    from ._fx import _Interpreter

S = Symmetry

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def parametric(it: _Interpreter, target: str, m: nn.Module, conv: Callable, x: _Feat) -> _Feat:
    """A layer with a converter: new neurons for its output channels.

    Reads the vids of ``x`` (resolving the input's channel count from the layer's); writes one new group of
    vids (layer = number of layers so far + 1), a ``records`` entry (path, weight and bias names, input and
    output vids, kernel) and the layer's parameter names into ``covered``.
    """
    it.mark_called(target, m)
    ctx = copy.copy(x.ctx)
    ctx.path = target
    lc = conv(m, ctx)
    expected = ctx.channels if ctx.channels is not None else ctx.flat_channels
    if x.nodes is None and it.input_nodes is None:
        in_vids = it.nodes(x, lc.in_channels)
    else:
        in_vids = it.nodes(x)
        if expected is None:
            expected = in_vids.numel()
        if lc.in_channels != expected:
            raise UnsupportedModuleError(target, type(m).__name__, f"it expects {lc.in_channels} input "
                                         f"channels but the layer before it gives {expected}")
    if torch.unique(in_vids).numel() != in_vids.numel():
        raise _Fail("it reads the same neurons twice (e.g. torch.cat([x, x])); the graph would have "
                    "duplicate edges")
    out_vids = it.alloc(len(it.records) + 1, lc.out_channels)
    prefix = f"{target}." if target else ""
    bias = prefix + lc.bias if lc.bias else None
    it.records.append((target, prefix + lc.weight, bias, in_vids, out_vids, tuple(lc.kernel)))
    it.covered.update({prefix + lc.weight} | ({bias} if bias else set()))
    it.covered.update(prefix + p for p in lc.extra_params)
    return _Feat(out_vids, ConvertContext(path=target, channels=lc.out_channels, rank=lc.out_rank))


def registered_op(it: _Interpreter, target: str, m: nn.Module, x: _Feat) -> _Feat:
    """A module with a :func:`~monomial_gmn.register_op` rule (else the "nothing registered" error).

    Constrains the neurons of ``x`` by the rule's symmetry, applies its ``effect`` to the layout, and adds
    the module's own parameters to ``covered`` when the rule allows them.
    """
    rule = _lookup(_OPS, m)
    if rule is None:
        raise _Fail("no converter or op is registered for it; use mg.register_op(type, symmetry) for a "
                    "parameter-free activation or mg.register_converter for a layer")
    own = [n for n, _ in m.named_parameters()]
    if own and not (rule.allow_params and rule.allow_params(m)):
        raise _Fail(_op_params_reason(own))
    it.mark_called(target, m)
    prefix = f"{target}." if target else ""
    it.covered.update(prefix + n for n in own)
    sym = rule.symmetry(m) if callable(rule.symmetry) else rule.symmetry
    out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
    out.ctx.path = target
    if rule.effect is not None:
        rule.effect(m, out.ctx)
    it.constrain(x, sym, f"{type(m).__name__} at '{target}'")
    return out


@register_fx_module(*_NORM_TYPES)
def norm_module(it: _Interpreter, target: str, m: nn.Module, x: _Feat) -> _Feat:
    """BatchNorm/LayerNorm/GroupNorm/InstanceNorm: factor 1 on the neurons it normalises.

    Reads the vids of ``x``; writes ``vnorm`` of each (one norm per neuron), a ``norms`` entry (path, kind,
    names of weight/bias/running_mean/running_var, vids, num_batches_tracked name), the affine parameter names
    into ``covered``, and block cuts at the group boundaries of a GroupNorm with 1 < G < C.
    """
    it.mark_called(target, m)
    name = type(m).__name__
    prefix = f"{target}." if target else ""
    if isinstance(m, nn.LayerNorm):
        shape = tuple(m.normalized_shape)
        if m.weight is None and getattr(m, "bias", None) is None:
            it.constrain(x, S.NONE, f"{name} at '{target}' (mixes features)")
            return _Feat(x.nodes, copy.copy(x.ctx), x.pending)
        if len(shape) != 1 or x.flat or x.ctx.rank not in (None, 0):
            raise _Fail("only LayerNorm over the features of a vector ([B, C], normalized_shape=(C,)) keeps "
                        "one parameter per neuron; use elementwise_affine=False or GroupNorm(1, C) for maps")
        kind, count = NormKind.LAYER, shape[0]
    elif isinstance(m, nn.GroupNorm):
        kind, count = NormKind.GROUP, m.num_channels
    elif isinstance(m, nn.modules.instancenorm._InstanceNorm):
        kind, count = NormKind.INSTANCE, m.num_features
    else:
        kind, count = NormKind.BATCH, m.num_features
    if x.flat:
        raise _Fail(f"it normalises a flattened map ({x.ctx.flat_channels} channels × positions); its "
                    "parameters are not one per neuron")
    vids = it.nodes(x, count)
    if vids.numel() != count:
        raise UnsupportedModuleError(target, name, f"it expects {count} channels but gets {vids.numel()}")
    if torch.unique(vids).numel() != count:
        raise _Fail("it normalises the same neuron twice")
    for v in vids.tolist():
        if it.vnorm[v] is not None:
            raise _Fail(f"its neurons already carry the norm '{it.vnorm[v]}'; one neuron carries one norm "
                        "(the graph's 'norm' field)")
        it.vnorm[v] = target
    names = []
    for attr in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(m, attr, None)
        names.append(prefix + attr if t is not None else None)
        if attr in ("weight", "bias") and t is not None:
            it.covered.add(prefix + attr)
    tracked = prefix + "num_batches_tracked" if getattr(m, "num_batches_tracked", None) is not None else None
    it.norms.append((target, kind, tuple(names), vids, tracked))
    it.constrain(x, S.NONE, f"{name} at '{target}'")
    if isinstance(m, nn.GroupNorm) and 1 < m.num_groups < count:
        size = count // m.num_groups
        it.cut(vids, list(range(size, count, size)))
    return _Feat(x.nodes, copy.copy(x.ctx), x.pending)


@register_fx_function(F.layer_norm, F.group_norm)
def functional_norm(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """``F.layer_norm``/``F.group_norm`` without affine tensors: ``none`` on the input's neurons.

    F.group_norm with 1 < G < C also cuts the block at the group boundaries. Affine tensors given to the
    function are refused (they would not be carried by the graph).
    """
    name = getattr(fn, "__name__", str(fn))
    x = args[0] if args else None
    if any(isinstance(a, _Const) and torch.is_tensor(a.value) for a in _flatten_values((args[2:], kwargs))):
        raise _Fail(f"{name} with affine parameters: use the nn module so the graph carries them")
    out = it.unary(x, S.NONE, f"{name}")
    if fn is F.group_norm:
        groups, vids = _arg(args, kwargs, 1, "num_groups", 1), it.nodes(x)
        if 1 < groups < vids.numel():
            size = vids.numel() // groups
            it.cut(vids, list(range(size, vids.numel(), size)))
    return out
