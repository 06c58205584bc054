"""The plain MLP that the statistics-based models (StatNN, the invariant-feature MLP) put on their features."""

from __future__ import annotations

from torch import nn

__all__ = ["make_mlp"]


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
