"""fx handlers for shapes: shape queries, indexing, flatten/view/reshape, chunk/split, squeeze/unsqueeze.

None of these mixes channels, so none constrains a neuron, with two exceptions: a channel slice (``x[:, a:b]``)
or a chunk/split along the channels cuts the block at the slice boundaries, and a chunk along a spatial
dimension is read as a linear op (``scale``). Shape queries give :data:`_BATCH` for the batch size, the
channel count or known spatial size as a constant, and :data:`_OPAQUE` for what is not known.
"""

from __future__ import annotations

import copy
import math
import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._convert_registry import _OPS, _lookup
from ._fx_registry import register_fx_function, register_fx_method, register_fx_module
from ._fx_values import _arg, _BATCH, _Const, _Fail, _Feat, _norm_dim, _OPAQUE, _Shape, _value
from ._symmetry import Symmetry

if TYPE_CHECKING:
    from ._fx import _Interpreter

S = Symmetry


# ------------------------------------------------------------------------------------------ shape queries
def shape_of(x: _Feat) -> _Shape:
    """``x.shape``: the batch, the channel count (if not flattened) and the known spatial sizes."""
    c = x.nodes.numel() if x.nodes is not None and not x.flat else None
    rank = x.ctx.rank or 0
    spatial = x.ctx.spatial or (None,) * rank
    return _Shape((_BATCH, c if c is not None else _OPAQUE, *[s if s is not None else _OPAQUE for s in spatial]))


def ndim(x: _Feat) -> Any:
    """``x.dim()``: a constant once the spatial rank is known."""
    return _Const(2 + x.ctx.rank) if x.ctx.rank is not None else _OPAQUE


@register_fx_function(getattr, constants=True)
def attribute(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> Any:
    """``x.shape``, ``x.dtype``, ``x.device``, ``x.ndim`` of a feature; attributes of constants evaluated."""
    obj, attr = args[0], args[1]
    if isinstance(obj, _Feat):
        if attr == "shape":
            return shape_of(obj)
        if attr in ("dtype", "device", "is_cuda", "ndim"):
            return _OPAQUE if attr != "ndim" else ndim(obj)
        raise _Fail(f"attribute '{attr}' of a feature tensor is not supported")
    return _Const(getattr(obj.value, attr)) if isinstance(obj, _Const) else _OPAQUE


@register_fx_method("size")
def size(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> Any:
    """``x.size()`` (a shape) or ``x.size(d)`` (one of its entries)."""
    rest = args[1:]
    shape = shape_of(args[0])
    d = rest[0] if rest else kwargs.get("dim")
    return shape if d is None else getitem(it, shape, d)


@register_fx_method("dim")
def dim(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> Any:
    """``x.dim()``."""
    return ndim(args[0])


# ------------------------------------------------------------------------------------------ indexing
@register_fx_function(operator.getitem, constants=True)
def getitem_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> Any:
    """``obj[idx]`` for shapes, tuples (multi-output ops), constants and feature tensors: see :func:`getitem`."""
    return getitem(it, args[0], args[1])


def getitem(it: _Interpreter, obj: Any, idx: Any) -> Any:
    """Indexing. On a feature tensor only slices: a channel slice keeps those vids and cuts the block there."""
    if isinstance(obj, _Shape):
        if isinstance(idx, _Const):
            idx = idx.value
        if isinstance(idx, int) and -len(obj.dims) <= idx < len(obj.dims):
            v = obj.dims[idx]
            return _Const(v) if isinstance(v, int) else v
        return _OPAQUE
    if isinstance(obj, (tuple, list)):
        return obj[idx.value if isinstance(idx, _Const) else idx]
    if isinstance(obj, _Const):
        return it.evaluate(operator.getitem, (obj, idx), {})
    if not isinstance(obj, _Feat):
        raise _Fail(f"indexing {type(obj).__name__}")
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(i is Ellipsis for i in idx):
        k = idx.index(Ellipsis)
        if obj.ctx.rank is None:
            raise _Fail("indexing with ... before the layout is known")
        fill = 2 + obj.ctx.rank - (len(idx) - 1)
        idx = idx[:k] + (slice(None),) * fill + idx[k + 1:]
    if any(not isinstance(i, slice) for i in idx):
        raise _Fail("only slicing (x[:, a:b], x[..., a:b]) of feature tensors is supported, not integer or "
                    "tensor indexing")
    if idx[0] != slice(None):
        raise _Fail("slicing the batch dimension")
    out = _Feat(obj.nodes, copy.copy(obj.ctx), obj.pending)
    if len(idx) > 1 and idx[1] != slice(None):
        if obj.flat:
            raise _Fail("slicing a flattened spatial map")
        sl = idx[1]
        if sl.step not in (None, 1):
            raise _Fail("a channel slice with a step")
        vids = it.nodes(obj)
        start, stop, _ = sl.indices(vids.numel())
        it.cut(vids, [start, stop])
        out.nodes = vids[start:stop]
        out.ctx.channels = out.nodes.numel()
    if any(i != slice(None) for i in idx[2:]):
        out.ctx.spatial = None
    return out


# ------------------------------------------------------------------------------------------ flatten and reshape
@register_fx_function(torch.flatten)
def flatten_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """torch.flatten(x, start_dim, end_dim): see :func:`flatten`."""
    return flatten(it, args[0] if args else None, _arg(args, kwargs, 1, "start_dim", 0),
                   _arg(args, kwargs, 2, "end_dim", -1))


@register_fx_method("flatten")
def flatten_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> _Feat:
    """x.flatten(start_dim, end_dim): see :func:`flatten`."""
    rest = args[1:]
    return flatten(it, args[0], _arg(rest, kwargs, 0, "start_dim", 0), _arg(rest, kwargs, 1, "end_dim", -1))


@register_fx_module(nn.Flatten)
def flatten_module(it: _Interpreter, target: str, m: nn.Module, x: _Feat) -> _Feat:
    """nn.Flatten: records the call, then :func:`flatten`."""
    it.mark_called(target, m)
    return flatten(it, x, m.start_dim, m.end_dim)


def flatten(it: _Interpreter, x: _Feat, start: Any, end: Any) -> _Feat:
    """Flatten to the last dim: from dim 1 the map becomes a vector (``flat_channels``, as nn.Flatten's rule
    does); from a spatial dim only the spatial rank changes. The vids are unchanged."""
    start, end = _value(start), _value(end)
    if end not in (-1, None) and not (x.ctx.rank is not None and end == x.ctx.rank + 1):
        raise _Fail("flatten must run to the last dimension")
    out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
    if start == 1:
        rule = _lookup(_OPS, nn.Flatten())
        rule.effect(nn.Flatten(), out.ctx)
        return out
    if start >= 2 and x.ctx.rank is not None and not x.flat:
        out.ctx.rank, out.ctx.spatial = start - 1, None
        return out
    raise _Fail(f"flatten(start_dim={start}) mixes the batch or an unknown layout")


@register_fx_function(torch.reshape)
def reshape_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """torch.reshape(x, shape): see :func:`reshape`."""
    return reshape(it, args[0] if args else None, args[1] if len(args) > 1 else kwargs["shape"])


@register_fx_method("view", "reshape")
def reshape_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> _Feat:
    """x.view(...)/x.reshape(...), the shape given as one sequence or as separate sizes."""
    rest = args[1:]
    shape = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list, _Shape)) else rest
    return reshape(it, args[0], shape)


def reshape(it: _Interpreter, x: _Feat, shape: Any) -> _Feat:
    """Per-sample flattens (``[B, -1]``) and reshapes that keep the channels (``[B, C, ...]``); vids unchanged.

    With ``-1`` in place of the batch (``x.view(-1, n)``) the batch size is inferred from the other sizes, so
    the reshape is per sample only if they multiply to the per-sample size; when that size is not known (a map
    whose spatial size depends on the input) or differs, the reshape may merge samples and mix channels of one
    sample into several rows, and it is refused (the network input's neurons are fixed, so there it is read
    as a per-sample flatten)."""
    dims = list(shape.dims if isinstance(shape, _Shape) else shape)
    dims = [_value(d) if isinstance(d, _Const) else d for d in dims]
    if dims and dims[0] is not _BATCH and dims[0] == -1 and x.nodes is not None:
        per = _sample_size(x)
        rest = dims[1:]
        total = math.prod(rest) if all(isinstance(d, int) and d > 0 for d in rest) else None
        if per is None or total != per:
            known = f"{per} values per sample" if per is not None else "a per-sample size that depends on the input"
            raise _Fail(f"a reshape to ({', '.join(str(d) for d in dims)}) of a tensor with {known}: the -1 in "
                        "place of the batch may merge samples and mix channels; write x.flatten(1) or "
                        "x.view(x.size(0), ...)")
    if len(dims) == 2 and (dims[0] is _BATCH or (dims[0] == -1 and isinstance(dims[1], int) and dims[1] > 0)) \
            and (dims[1] == -1 or isinstance(dims[1], int)):
        return flatten(it, x, 1, -1)
    c = x.nodes.numel() if x.nodes is not None else None
    if len(dims) >= 2 and dims[0] in (_BATCH, -1) and not x.flat and c is not None and dims[1] == c:
        out = _Feat(x.nodes, copy.copy(x.ctx))
        out.ctx.rank, out.ctx.spatial = len(dims) - 2, None
        return out
    raise _Fail("only reshapes that flatten per sample (x.view(x.size(0), -1)) or keep the channels "
                "(x.view(B, C, -1)) are supported")


def _sample_size(x: _Feat) -> int | None:
    """The number of values per sample of ``x`` when its layout is fully known, else None."""
    c = x.nodes.numel()
    if x.flat:
        spatial = x.ctx.flat_spatial
    elif x.ctx.rank == 0:
        return c
    else:
        spatial = x.ctx.spatial if x.ctx.rank is not None else None
    if spatial is None or any(not isinstance(v, int) for v in spatial):
        return None
    return c * math.prod(spatial)


# ------------------------------------------------------------------------------------------ split and squeeze
@register_fx_function(torch.chunk, torch.split, torch.tensor_split)
def split_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> tuple:
    """torch.chunk/split/tensor_split: see :func:`split`."""
    return split(it, fn.__name__, args[0] if args else None, args[1:], kwargs)


@register_fx_method("chunk", "split", "tensor_split")
def split_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> tuple:
    """x.chunk/split/tensor_split: see :func:`split`."""
    return split(it, method, args[0], args[1:], kwargs)


def split(it: _Interpreter, name: str, x: _Feat, rest: tuple, kwargs: dict) -> tuple:
    """Along the channels: one part per range of vids, the block cut at the boundaries. Along a spatial dim
    (chunk only): each part is the same neurons through a linear op (``scale``)."""
    arg = _value(rest[0] if rest else kwargs.get("chunks", kwargs.get("split_size_or_sections",
                                                                      kwargs.get("split_size"))))
    dim = _value(_arg(rest, kwargs, 1, "dim", 0))
    if x.flat or x.ctx.rank is None:
        raise _Fail(f"{name} of a tensor of unknown or flattened layout")
    d = _norm_dim(dim, x.ctx.rank)
    if d != 1:
        if d == 0:
            raise _Fail(f"{name} along the batch dimension")
        n = arg if name == "chunk" else None
        if n is None:
            raise _Fail(f"{name} along a spatial dimension with sizes; use chunk")
        return tuple(it.unary(x, S.SCALE, name, spatial=None) for _ in range(n))
    vids = it.nodes(x)
    c = vids.numel()
    if name == "chunk":
        size = -(-c // arg)
        bounds = list(range(0, c, size)) + [c]
    elif isinstance(arg, int):
        bounds = list(range(0, c, arg)) + [c]
    else:
        bounds = [0] + [int(s) for s in torch.tensor(list(arg)).cumsum(0).tolist()]
    it.cut(vids, bounds)
    outs = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ctx = copy.copy(x.ctx)
        ctx.channels = hi - lo
        outs.append(_Feat(vids[lo:hi], ctx))
    return tuple(outs)


@register_fx_function(torch.squeeze, torch.unsqueeze)
def squeeze_function(it: _Interpreter, fn: Any, args: tuple, kwargs: dict) -> _Feat:
    """torch.squeeze/unsqueeze(x, dim): see :func:`squeeze`."""
    return squeeze(it, fn.__name__, args[0] if args else None, _arg(args, kwargs, 1, "dim", None))


@register_fx_method("squeeze", "unsqueeze")
def squeeze_method(it: _Interpreter, method: str, args: tuple, kwargs: dict) -> _Feat:
    """x.squeeze/unsqueeze(dim): see :func:`squeeze`."""
    return squeeze(it, method, args[0], _arg(args[1:], kwargs, 0, "dim", None))


def squeeze(it: _Interpreter, name: str, x: _Feat, dim: Any) -> _Feat:
    """Removing or adding a spatial dimension of size 1 (the vids unchanged); ``[B, 1] -> [B]`` is allowed."""
    dim = _value(dim)
    if dim is None or x.ctx.rank is None:
        raise _Fail(f"{name} without a dim, or before the layout is known")
    out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
    if x.flat:
        raise _Fail(f"{name} of a flattened map")
    if name == "squeeze":
        d = _norm_dim(dim, x.ctx.rank)
        if d < 2:
            if x.nodes is not None and x.nodes.numel() == 1 and d == 1 and x.ctx.rank == 0:
                return out  # [B, 1] -> [B]: the single output channel stays
            raise _Fail("squeezing the batch or channel dimension")
        sp = x.ctx.spatial
        if sp is not None and sp[d - 2] != 1:
            return out
        out.ctx.rank -= 1
        out.ctx.spatial = None if sp is None else sp[:d - 2] + sp[d - 1:]
        return out
    d = dim if dim >= 0 else dim + x.ctx.rank + 3
    if d < 2:
        raise _Fail("unsqueezing before the channel dimension")
    out.ctx.rank += 1
    out.ctx.spatial = None if x.ctx.spatial is None else x.ctx.spatial[:d - 2] + (1,) + x.ctx.spatial[d - 2:]
    return out
