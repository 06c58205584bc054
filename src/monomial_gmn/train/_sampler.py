"""A deterministic, resumable, distributed batch sampler over a fixed index set.

Every epoch the index set is shuffled with a generator seeded by ``(seed, epoch)``; the shuffled list is cut
into *global* batches of ``batch_size`` (a final incomplete batch is dropped), and rank r of W takes
``global_batch[r::W]``. A single process (W = 1) therefore sees exactly the union of what W processes see
at the same step, which is what makes a distributed run match a single-process one (with the loss summed
per net and divided by the global batch size, and DDP averaging gradients over ranks).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

__all__ = ["DistributedBatchSampler"]


class DistributedBatchSampler:
    """Yields ``(local_indices, global_batch_size)`` per step of an epoch.

    Args:
        indices: [n] the index set (e.g. a zoo's training split).
        batch_size: global batch size (summed over ranks).
        seed: shuffling seed.
        rank, world_size: this process and the number of processes.
        shuffle: shuffle every epoch (default: True).
    """

    def __init__(self, indices: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if batch_size < world_size:
            raise ValueError(f"the batch size ({batch_size}) must be at least the number of processes "
                             f"({world_size})")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = min(int(batch_size), max(len(self.indices), world_size))
        self.seed, self.rank, self.world_size, self.shuffle = int(seed), int(rank), int(world_size), shuffle

    def __len__(self) -> int:
        """Steps per epoch (at least 1 when there are at least ``world_size`` indices)."""
        return len(self.indices) // self.batch_size

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return self.indices[torch.randperm(len(self.indices), generator=g).numpy()]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, int]]:
        """The batches of ``epoch`` from step ``start`` on (to resume in the middle of an epoch)."""
        order = self.epoch_order(epoch)
        for b in range(start, len(self)):
            glob = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield glob[self.rank::self.world_size], len(glob)
