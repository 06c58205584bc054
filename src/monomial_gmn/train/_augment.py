"""Augmentation from the monomial group: parse a level / spec and transform a whole batch of graphs at once.

Spec grammar (used by ``train --augment``, ``eval --augment`` and the compare sweep):

============  ==================================================================================
``none``/0    no transformation
``k`` (> 0)   level k: factors d ~ U[1, 10^k] on ReLU-like (positive-scale) neurons, random signs on
              sign neurons (tanh, sin), random permutations of hidden neurons — the paper's sweep
``scale:S``   factors d ~ U[1, S] (S ≥ 1), random signs on sign neurons, random permutations
``sign``      random signs on sign neurons and random permutations, no scaling (d = 1 on ReLU neurons)
============  ==================================================================================

Every neuron is transformed by the law of :mod:`monomial_gmn.graph._parameter_graph`, so a transformed network
computes the same function. The sampling is :class:`monomial_gmn.data.RandomMonomial`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

__all__ = ["Augment", "parse_augment", "augment_level_bound"]


def augment_level_bound(level: float) -> float | None:
    """Scaling bound S = 10^level of augment level ``level`` (None for level 0: no transformation)."""
    return None if level == 0 else float(10.0 ** level)


@dataclass(frozen=True)
class Augment:
    """A distribution over group elements. ``bound`` None means the identity; 1.0 means signs/permutations only.

    Attributes:
        bound: S of U[1, S] for positive-scale neurons, or None for no transformation.
        label: the spec it was parsed from (for tables and JSON).
    """

    bound: float | None
    label: str = "none"

    @property
    def is_identity(self) -> bool:
        return self.bound is None

    @property
    def log10_bound(self) -> float:
        return 0.0 if self.bound is None else math.log10(self.bound)

    def __call__(self, batch: Data, generator: torch.Generator | None = None) -> Data:
        """A transformed copy of a graph or PyG Batch (each graph gets its own independent element)."""
        if self.bound is None:
            return batch
        from ..data import RandomMonomial

        return RandomMonomial(scale=self.bound).forward(batch, generator)


def parse_augment(spec: "str | float | int | Augment | None") -> Augment:
    """Parse ``none`` / a level ``k`` / ``scale:S`` / ``sign`` (see the module docstring); ValueError if bad."""
    if isinstance(spec, Augment):
        return spec
    if spec is None:
        return Augment(None, "none")
    text = str(spec).strip().lower()
    if text in ("none", "0", "0.0", ""):
        return Augment(None, "none")
    if text == "sign":
        return Augment(1.0, "sign")
    if text.startswith("scale:"):
        try:
            s = float(text.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"bad augmentation {spec!r}: 'scale:S' needs a number S >= 1") from None
        if not math.isfinite(s) or s < 1:
            raise ValueError(f"bad augmentation {spec!r}: the scaling bound S must be a finite number >= 1")
        return Augment(s, f"scale:{s:g}")
    try:
        level = float(text)
    except ValueError:
        raise ValueError(f"bad augmentation {spec!r}: expected none, a level k >= 0, scale:S or sign") from None
    if not math.isfinite(level) or level < 0 or level > 30:
        raise ValueError(f"bad augmentation level {spec!r}: expected a number in [0, 30]")
    bound = augment_level_bound(level)
    return Augment(bound, f"{level:g}" if bound is not None else "none")
