"""Feature standardisation by statistics accumulated over the training data (a zoo-level normaliser)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RunningStandardize"]


class RunningStandardize(nn.Module):
    r"""Standardise features by their mean and std over every training sample seen so far.

    .. math::
        y = (x - \mu) / \sqrt{\sigma^2 + \epsilon}

    In training mode the batch is first merged into the running (count-weighted, exact) mean and variance,
    then used; in eval mode the buffers are frozen. Unlike ``BatchNorm1d`` the output never depends on the
    other samples of the current batch beyond that update, a batch of one works, and after one pass over the
    data the statistics are the zoo's. Accumulation stops after ``max_count`` samples, or for good after
    :meth:`fit` (statistics of a whole training split, the usual way to use it).

    Args:
        num_features: F.
        eps: added to the variance (default: 1e-6).
        max_count: samples after which the statistics stop changing (default: 1e6).

    Shapes:
        input [..., F] → output [..., F].
    """

    def __init__(self, num_features: int, eps: float = 1e-6, max_count: float = 1e6):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.max_count = max_count
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))

    def reset_parameters(self) -> None:
        self.count.zero_()
        self.mean.zero_()
        self.m2.zero_()
        self.frozen.fill_(False)

    @torch.no_grad()
    def fit(self, batches) -> "RunningStandardize":
        """Set the statistics from an iterable of [..., F] tensors (e.g. a whole training split) and freeze
        them: training mode no longer updates them."""
        self.reset_parameters()
        for x in batches:
            self.update(x)
        self.frozen.fill_(True)
        return self

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge a batch [..., F] into the running statistics (Chan et al.'s parallel update)."""
        x = x.detach().reshape(-1, self.num_features).to(torch.float64)
        n = x.shape[0]
        if n == 0 or float(self.count) >= self.max_count:
            return
        bmean = x.mean(0)
        bm2 = ((x - bmean) ** 2).sum(0)
        tot = self.count + n
        delta = bmean - self.mean
        self.mean += delta * (n / tot)
        self.m2 += bm2 + delta ** 2 * (self.count * n / tot)
        self.count.fill_(float(tot))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.num_features:
            raise ValueError(f"RunningStandardize expects {self.num_features} features, got {x.shape[-1]}")
        if self.training and not bool(self.frozen):
            self.update(x)
        if float(self.count) == 0:
            return x
        var = self.m2 / self.count.clamp_min(1)
        return ((x - self.mean.to(x.dtype)) / torch.sqrt(var.to(x.dtype) + self.eps))

    def extra_repr(self) -> str:
        return f"{self.num_features}, count={int(self.count)}"
