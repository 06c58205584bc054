"""Augmentation with the monomial group: a PyG-style transform applying a random group element per net.

The library's one augmenter: the trainer's ``--augment`` specs (:class:`monomial_gmn.train.Augment`) apply it.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from .._errors import NonFiniteWeightsError
from ..group import MonomialGroup

__all__ = ["RandomMonomial"]


class RandomMonomial(BaseTransform):
    r"""Apply a random element of each network's monomial group (a PyG transform; never mutates its input).

    For every hidden neuron i, a permutation inside its layer and a factor :math:`d_i` — drawn from
    :math:`U[1, s]` with :math:`s = 10^{\text{level}}` after ReLU-like activations (the paper's levels
    s = 10, 10², 10³, 10⁴), a random sign after tanh/sin, 1 elsewhere — applied by the law of
    :mod:`monomial_gmn.graph._parameter_graph`.
    Works on one ParameterGraph or a whole PyG ``Batch`` (one independent element per graph, vectorised).
    The sampling and the action are those of :class:`monomial_gmn.MonomialGroup`.

    Args:
        level: k in s = 10^k (default: 1). ``level=0`` is the identity (nothing is sampled or moved).
        scale: s directly (overrides ``level``); must be ≥ 1.
        permute: also permute hidden neurons (default: True).
        distribution: ``"uniform"`` (the paper's U[1, s]; default) or ``"loguniform"`` on [1, s].
        seed: seed of the transform's own generator (None: torch's global RNG).
    """

    def __init__(self, level: float = 1, scale: float | None = None, permute: bool = True,
                 distribution: str = "uniform", seed: int | None = None):
        s = float(scale) if scale is not None else 10.0 ** float(level)
        if s < 1.0:
            raise ValueError(f"RandomMonomial: the scale s must be >= 1, got {s}")
        if distribution not in ("uniform", "loguniform"):
            raise ValueError(f"RandomMonomial: distribution must be 'uniform' or 'loguniform', not {distribution!r}")
        self.scale = s
        self.level = level if scale is None else None
        self.permute = bool(permute)
        self.distribution = distribution
        self.generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    @property
    def is_identity(self) -> bool:
        """Level 0 (s = 1 from ``level``) is the identity; so is s = 1 without permutations."""
        return self.scale == 1.0 and (self.level is not None or not self.permute)

    def sample(self, data: Data, generator: torch.Generator | None = None):
        """The group element that :meth:`forward` would apply to ``data``; advances ``generator`` (default: the
        transform's own)."""
        gen = generator if generator is not None else self.generator
        return MonomialGroup(data).sample(generator=gen, scale_range=(1.0, self.scale),
                                          distribution=self.distribution, permute=self.permute)

    def forward(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """A transformed copy of a graph or PyG Batch; ``generator`` overrides the transform's own for this call."""
        if self.is_identity:
            return data
        out = self.sample(data, generator).act_graph(data)
        for name in ("x", "edge_attr"):  # factors up to s multiply weights by up to s²: float32 overflows at 1e38
            value = getattr(out, name, None)
            if value is not None and value.is_floating_point() and not torch.isfinite(value).all():
                raise NonFiniteWeightsError(
                    f"RandomMonomial(scale={self.scale:g}) overflowed the {value.dtype} graph field '{name}' to "
                    f"inf/NaN; use a smaller level/scale or float64 graphs")
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(scale={self.scale:g}, permute={self.permute}, "
                f"distribution={self.distribution!r})")
