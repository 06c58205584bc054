"""Many networks of one :class:`Architecture` run at once: grouped convolutions and batched matmuls.

Parameters are stacked per network: ``{name: [G, *shape]}``. Convolutional activations are kept as
[B, G·C, H, W] (one grouped conv per layer, ``groups=G``), dense activations as [G, B, F] (one ``baddbmm``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._arch import Architecture, SamePad2d
from ._modules import Sine

__all__ = ["stacked_forward"]


def _dropout(h: Tensor, rate: Tensor | None, g: int, generator: torch.Generator | None, spatial: bool) -> Tensor:
    if rate is None:
        return h
    keep = 1.0 - rate                                   # [G]
    if spatial:                                         # h [B, G*C, H, W]
        c = h.shape[1] // g
        k = keep.repeat_interleave(c).view(1, -1, 1, 1)
    else:                                               # h [G, B, F]
        k = keep.view(-1, 1, 1)
    mask = torch.rand(h.shape, generator=generator, dtype=h.dtype) < k
    return h * mask / k


def stacked_forward(arch: Architecture, params: dict[str, Tensor], x: Tensor, dropout: Tensor | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
    """Outputs of G networks on their own inputs.

    Args:
        arch: the shared architecture.
        params: ``{name: [G, *shape]}`` (module shapes, names as in ``arch.template``).
        x: [G, B, *input_shape] inputs (or [B, *input_shape], shared by every network).
        dropout: [G] dropout rate per network applied after each hidden activation (training), or None.

    Returns:
        [G, B, out_features].
    """
    g = next(iter(params.values())).shape[0]
    mods = list(arch.template.named_children())
    first = next((m for _, m in mods if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    sample_dims = 3 if isinstance(first, nn.Conv2d) else max(1, len(arch.input_shape))  # image size may be unrecorded
    if x.dim() == sample_dims + 1:
        x = x.unsqueeze(0).expand(g, *x.shape)
    b = x.shape[1]
    if sample_dims == 3:
        h = x.permute(1, 0, 2, 3, 4).reshape(b, g * x.shape[2], *x.shape[3:])
        spatial = True
    else:
        h, spatial = x, False
    last_param = max(i for i, (_, m) in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.Linear)))
    for i, (name, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            w = params[f"{name}.weight"]
            bias = params[f"{name}.bias"].reshape(-1) if m.bias is not None else None
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), bias, stride=m.stride, padding=m.padding, groups=g)
        elif isinstance(m, nn.Linear):
            if spatial:
                raise ValueError(f"layer {name}: Linear applied to a spatial map")
            w = params[f"{name}.weight"]
            if m.bias is not None:
                h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = torch.bmm(h, w.transpose(1, 2))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            h = h.mean(dim=(2, 3), keepdim=True)
        elif isinstance(m, nn.Flatten):
            if spatial:
                h = h.reshape(b, g, -1).transpose(0, 1)
                spatial = False
        elif isinstance(m, SamePad2d):
            h = m(h)
        elif isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.Identity, Sine)):
            h = m(h)
            if i < last_param and dropout is not None:
                h = _dropout(h, dropout, g, generator, spatial)
        else:
            raise ValueError(f"layer {name}: {type(m).__name__} is not supported by the stacked trainer")
    if spatial:
        h = h.reshape(b, g, -1).transpose(0, 1)
    return h
