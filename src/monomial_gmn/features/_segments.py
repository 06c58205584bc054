"""Segment statistics (mean, std, quantiles) over many variable-size groups at once, with no Python loop."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["segment_stats", "STAT_NAMES", "QUANTILES"]

QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
STAT_NAMES: tuple[str, ...] = ("mean", "std", "q0", "q25", "q50", "q75", "q100")


def segment_stats(values: Tensor, segment: Tensor, num_segments: int,
                  quantiles: Sequence[float] = QUANTILES) -> tuple[Tensor, Tensor]:
    """Mean, std (population) and quantiles of ``values`` within each segment.

    Quantiles interpolate linearly between order statistics (NumPy's default rule). Empty segments give 0.

    Args:
        values: [M] float values.
        segment: [M] long segment id of each value, in ``[0, num_segments)``.
        num_segments: number of segments G.
        quantiles: levels in [0, 1].

    Returns:
        ``(stats, count)``: stats [G, 2 + len(quantiles)] (mean, std, quantiles...), count [G] long.
    """
    if values.shape != segment.shape or values.dim() != 1:
        raise ValueError(f"values and segment must be 1-D of equal length, got {tuple(values.shape)} and "
                         f"{tuple(segment.shape)}")
    g = int(num_segments)
    dtype, device = values.dtype, values.device
    count = torch.bincount(segment, minlength=g)[:g] if values.numel() else torch.zeros(g, dtype=torch.long,
                                                                                          device=device)
    denom = count.clamp(min=1).to(dtype)
    mean = torch.zeros(g, dtype=dtype, device=device).index_add_(0, segment, values) / denom
    dev = values - mean[segment]
    var = torch.zeros(g, dtype=dtype, device=device).index_add_(0, segment, dev * dev) / denom
    cols = [mean, var.sqrt()]
    if quantiles:
        # Sort by value, then stably by segment: each segment's values end up contiguous and ascending.
        order = torch.argsort(values)
        order = order[torch.argsort(segment[order], stable=True)]
        srt = values[order]
        start = torch.cumsum(count, 0) - count
        last = (count - 1).clamp(min=0).to(dtype)
        for q in quantiles:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile levels must lie in [0, 1], got {q}")
            p = last * q
            lo = torch.floor(p)
            frac = p - lo
            lo_i = start + lo.long()
            hi_i = start + torch.ceil(p).long()
            ok = count > 0
            lo_i = torch.where(ok, lo_i, torch.zeros_like(lo_i))
            hi_i = torch.where(ok, hi_i, torch.zeros_like(hi_i))
            if srt.numel() == 0:
                cols.append(torch.zeros(g, dtype=dtype, device=device))
                continue
            val = srt[lo_i] + frac * (srt[hi_i] - srt[lo_i])
            cols.append(torch.where(ok, val, torch.zeros_like(val)))
    return torch.stack(cols, dim=1), count
