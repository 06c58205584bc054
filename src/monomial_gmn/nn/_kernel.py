"""Per-position kernel weights that work for any odd canvas side S (batches pad kernels to a common S)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..graph import kernel_side

__all__ = ["canvas_index", "canvas_weight"]


def canvas_index(side: int, radius: int, device=None) -> Tensor:
    """[side*side] long: row of a (2r+1)² per-offset table for each cell of a centred side×side canvas.

    Offsets beyond ``radius`` are clamped to the border, so any S works: S ≤ 2r+1 crops the table centrally,
    larger S shares the border rows.
    """
    half = side // 2
    off = torch.arange(-half, half + 1, device=device).clamp(-radius, radius) + radius
    width = 2 * radius + 1
    return (off.view(-1, 1) * width + off.view(1, -1)).reshape(-1)


def canvas_weight(table: Tensor, k: int, radius: int) -> Tensor:
    """Rows of a per-offset ``table`` [(2r+1)², C] for a canvas with ``k = S*S`` cells -> [k, C]."""
    side = kernel_side(torch.empty(0, k))
    return table[canvas_index(side, radius, table.device)]
