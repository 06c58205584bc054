"""The built-in entries of the conversion registries: converters for Linear, Conv1d and Conv2d, and the
parameter-free ops (activations, dropout, pooling, flatten) with the symmetry each preserves and its effect on the
walker's spatial bookkeeping. Importing this module registers them (:mod:`._convert` does)."""

from __future__ import annotations

import math

from torch import nn

from .._errors import UnsupportedModuleError
from ._convert_registry import ConvertContext, LayerConversion, register_converter, register_op
from ._modules import Sine
from ._symmetry import Symmetry


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
