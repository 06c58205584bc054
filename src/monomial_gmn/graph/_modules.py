"""Small modules that networks in weight-space zoos use and torch lacks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Sine"]


class Sine(nn.Module):
    """SIREN activation ``sin(w0 · x)`` (Sitzmann et al. 2020). Odd, so its neurons carry sign symmetry.

    Args:
        w0: frequency factor ω0 (default: 30.0).

    Shapes:
        input: any; output: same as input.
    """

    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"
