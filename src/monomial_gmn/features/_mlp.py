"""The plain MLP the statistics-based models put on their features, and the signed log that tames their tails."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["make_mlp", "signed_log"]


def make_mlp(in_dim: int, hidden_dim: int, depth: int, out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """``depth`` × (Linear → SiLU [→ Dropout]) then a Linear to ``out_dim``. Shapes: [B, in_dim] → [B, out_dim]."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden_dim), nn.SiLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def signed_log(x: Tensor) -> Tensor:
    """sign(x) · log(1 + |x|): tames the heavy tails of canonical output weights (monotone, odd)."""
    return torch.sign(x) * torch.log1p(x.abs())
