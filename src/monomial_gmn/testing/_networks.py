"""Random Sequential networks for property tests: every supported layer and activation kind."""

from __future__ import annotations

import math
import random
from typing import Sequence

import torch
from torch import Tensor, nn

from ..graph import Sine

__all__ = ["random_network", "ACTIVATIONS"]

ACTIVATIONS = {
    "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1), "tanh": nn.Tanh, "sin": lambda: Sine(3.0),
    "gelu": nn.GELU, "identity": nn.Identity, "sigmoid": nn.Sigmoid,
}


def random_network(seed: int, kind: str | None = None, max_depth: int = 5, max_width: int = 32,
                   activations: Sequence[str] | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[nn.Sequential, Tensor]:
    """A random network and an example input batch of 3.

    Args:
        seed: makes the architecture and the weights deterministic.
        kind: ``"mlp"``, ``"cnn1d"``, ``"cnn2d"`` or ``"cnn2d_flat"`` (flatten over a spatial map);
            random if None.
        max_depth: number of parametric layers is drawn from 1..max_depth.
        max_width: hidden widths/channels drawn from 1..max_width.
        activations: names from :data:`ACTIVATIONS` to draw from (default: all).
    """
    rng = random.Random(seed)
    kind = kind or rng.choice(["mlp", "cnn1d", "cnn2d", "cnn2d_flat"])
    acts = list(activations or ACTIVATIONS)
    depth = rng.randint(1, max_depth)
    layers: list[nn.Module] = []
    gen = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        width = rng.randint(1, 8)
        x = torch.randn(3, width, generator=gen)
        for i in range(depth):
            out = rng.randint(1, max_width) if i < depth - 1 else rng.randint(1, 6)
            layers.append(nn.Linear(width, out, bias=rng.random() < 0.85))
            if i < depth - 1:
                layers.append(ACTIVATIONS[rng.choice(acts)]())
                if rng.random() < 0.2:
                    layers.append(nn.Dropout(0.1))
            width = out
    else:
        dim = 1 if kind == "cnn1d" else 2
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        ch = rng.randint(1, 3)
        size = rng.randint(10, 16)
        x = torch.randn(3, ch, *([size] * dim), generator=gen)
        n_conv = max(1, depth - 1)
        for i in range(n_conv):
            out = rng.randint(1, max_width)
            k = rng.randint(1, 7)
            pad = rng.randint(0, k // 2)
            stride = rng.choice([1, 1, 2])
            dil = rng.choice([1, 1, 2]) if k > 1 else 1
            eff = dil * (k - 1) + 1
            if size + 2 * pad < eff:
                pad = (eff - size + 1) // 2 + 1
            layers.append(conv(ch, out, k, stride=stride, padding=pad, dilation=dil, bias=rng.random() < 0.85))
            size = (size + 2 * pad - eff) // stride + 1
            layers.append(ACTIVATIONS[rng.choice(acts)]())
            if rng.random() < 0.25 and size >= 4:
                pool = (nn.AvgPool1d if dim == 1 else nn.AvgPool2d) if rng.random() < 0.5 else \
                    (nn.MaxPool1d if dim == 1 else nn.MaxPool2d)
                layers.append(pool(2))
                size //= 2
            ch = out
        if kind == "cnn2d_flat":
            side = rng.randint(1, 4)
            layers += [nn.AdaptiveAvgPool2d(side), nn.Flatten()]
            feat = ch * side * side
        else:
            layers += [(nn.AdaptiveAvgPool1d if dim == 1 else nn.AdaptiveAvgPool2d)(1), nn.Flatten()]
            feat = ch
        layers.append(nn.Linear(feat, rng.randint(1, 10)))
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(max(1, p[0].numel() if p.dim() > 1 else 4)))
    return net.to(dtype).eval(), x.to(dtype)
