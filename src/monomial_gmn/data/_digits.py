"""The sklearn digits (8×8, 10 classes; shipped with scikit-learn, no download) and their fixed split."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["digits", "upsample", "DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION"]

DIGITS_SPLIT_SEED = 20_200_612   # fixed forever: every zoo built from the digits shares this image split
DIGITS_TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def digits() -> dict[str, np.ndarray]:
    """``images`` [1797, 8, 8] float32 in [0, 1], ``labels`` [1797] int64, ``split`` [1797] int64
    (0 train pool, 2 test; fixed, independent of any zoo seed)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    labels = d.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    split = np.zeros(len(labels), dtype=np.int64)
    split[order[: int(round(DIGITS_TEST_FRACTION * len(labels)))]] = 2
    for arr in (images, labels, split):
        arr.setflags(write=False)
    return {"images": images, "labels": labels, "split": split}


def upsample(images: np.ndarray, side: int) -> np.ndarray:
    """[n, h, w] images in [0, 1] → [n, side, side] (bilinear, corners aligned), clipped to [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)
    if x.shape[-1] != side or x.shape[-2] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=True)
    return x.squeeze(1).clamp(0.0, 1.0).numpy()
