"""The monomial group of a network: sampling, identity, testing elements; the public shortcuts."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch_geometric.data import Data

from ..graph import magnitude_free, sign_free
from ._structure import SymmetryStructure
from ._transform import MonomialTransform

__all__ = ["MonomialGroup", "sample_transform", "random_transform"]


class MonomialGroup:
    """The group G = ∏_blocks (S_n ⋉ D_n) acting on one network's graph (or on every graph in a batch).

    Each hidden neuron's factor set comes from its symmetry (the table of :mod:`monomial_gmn.graph._symmetry`);
    fixed neurons are never moved. The law: :mod:`monomial_gmn.graph._parameter_graph`.

    Args:
        obj: a ParameterGraph, a PyG Batch of them, or an nn.Module (converted with ``to_graph``).
    """

    def __init__(self, obj: Data | nn.Module):
        if isinstance(obj, nn.Module):
            from ..graph import to_graph

            obj = to_graph(obj)
        self.structure = SymmetryStructure(obj)

    @property
    def num_slots(self) -> int:
        return self.structure.num_slots

    def identity(self) -> MonomialTransform:
        s = self.structure
        return MonomialTransform(s, torch.arange(s.num_slots, device=s.device),
                                 torch.ones(s.num_slots, dtype=torch.float64, device=s.device))

    def compose(self, a: MonomialTransform, b: MonomialTransform) -> MonomialTransform:
        """a ∘ b (apply b first)."""
        return a @ b

    def inverse(self, a: MonomialTransform) -> MonomialTransform:
        return ~a

    def act(self, g: MonomialTransform, obj):
        return g(obj)

    def sample_permutation(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """[S] a uniformly random permutation of the slots inside each block."""
        s = self.structure
        keys = torch.rand(s.num_slots, generator=generator, dtype=torch.float64).to(s.device)
        order = torch.argsort(s.slot_block.to(torch.float64) * 2.0 + keys)
        perm = torch.empty_like(order)
        perm[order] = torch.arange(s.num_slots, device=s.device)
        return perm

    def sample_factors(self, generator: torch.Generator | None = None, max_scale: float = 10.0,
                       scale_range: tuple[float, float] | None = None,
                       distribution: str = "loguniform") -> torch.Tensor:
        """[S] float64 factors drawn per slot according to its symmetry.

        Positive factors are log-uniform on [1/max_scale, max_scale] by default, or drawn from
        ``scale_range=(lo, hi)`` with ``distribution`` "loguniform" or "uniform" (the paper's U[1, s] is
        ``scale_range=(1, s), distribution="uniform"``). ``scale`` neurons get such a magnitude times a
        random sign; ``sign`` neurons ±1; ``none`` neurons 1.
        """
        s = self.structure
        lo, hi = _scale_bounds(max_scale, scale_range)
        u = torch.rand(s.num_slots, generator=generator, dtype=torch.float64)
        if distribution == "loguniform":
            mag = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        elif distribution == "uniform":
            mag = lo + u * (hi - lo)
        else:
            raise ValueError(f"distribution must be 'loguniform' or 'uniform', not {distribution!r}")
        sign = torch.where(torch.rand(s.num_slots, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
        sym = s.slot_sym.cpu()
        return _factors(sym, mag, sign).to(s.device)

    def sample(self, generator: torch.Generator | None = None, max_scale: float = 10.0,
               scale_range: tuple[float, float] | None = None, distribution: str = "loguniform",
               permute: bool = True, scale: bool = True) -> MonomialTransform:
        """A random group element (see :meth:`sample_factors` for the factor distribution)."""
        ident = self.identity()
        perm = self.sample_permutation(generator) if permute else ident.perm
        d = self.sample_factors(generator, max_scale, scale_range, distribution) if scale else ident.factor
        return MonomialTransform(self.structure, perm, d)

    def testing_elements(self, generator: torch.Generator | None = None,
                         max_scale: float = 100.0) -> list[tuple[str, MonomialTransform]]:
        """Named elements every test should pass: identity, pure permutation, pure scaling/sign, mixed,
        and extreme (factors at exactly ``max_scale`` and ``1/max_scale``, alternating, random signs)."""
        _scale_bounds(max_scale, None)
        ident = self.identity()
        perm = self.sample_permutation(generator)
        d = self.sample_factors(generator, max_scale=max_scale)
        s = self.structure
        extreme_mag = torch.where(torch.arange(s.num_slots) % 2 == 0, max_scale, 1.0 / max_scale).to(torch.float64)
        signs = self.sample_factors(generator, max_scale=max_scale).sign().cpu()
        extreme = _factors(s.slot_sym.cpu(), extreme_mag, signs).to(s.device)
        return [
            ("identity", ident),
            ("permutation", MonomialTransform(s, perm, ident.factor)),
            ("scaling", MonomialTransform(s, ident.perm, d)),
            ("mixed", MonomialTransform(s, perm, d)),
            ("extreme", MonomialTransform(s, perm, extreme)),
        ]


def _factors(sym: torch.Tensor, magnitude: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """[S] float64 factors: ``magnitude`` where the code frees |d|, times ``sign`` where it frees the sign, else 1
    (the factor sets of :data:`monomial_gmn.graph.FACTORS`)."""
    one = torch.ones((), dtype=torch.float64)
    return torch.where(magnitude_free(sym), magnitude, one) * torch.where(sign_free(sym), sign, one)


def _scale_bounds(max_scale: float, scale_range: tuple[float, float] | None) -> tuple[float, float]:
    """(lo, hi) of the factor magnitudes; ValueError naming the argument when it cannot be one."""
    if scale_range is not None:
        try:
            lo, hi = (float(v) for v in scale_range)
        except (TypeError, ValueError):
            raise ValueError(f"scale_range must be a pair (lo, hi) of numbers, got {scale_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi (finite), got ({lo}, {hi})")
        return lo, hi
    if isinstance(max_scale, bool) or not isinstance(max_scale, numbers.Real):
        raise ValueError(f"max_scale must be a number >= 1, got {max_scale!r}")
    if not (math.isfinite(max_scale) and max_scale >= 1):
        raise ValueError(f"max_scale must be a finite number >= 1 (factor magnitudes are drawn from "
                         f"[1/max_scale, max_scale]; 1 means magnitude 1), got {max_scale}")
    return 1.0 / max_scale, float(max_scale)


def sample_transform(obj: Data | nn.Module, max_scale: float = 10.0, generator: torch.Generator | None = None,
                     **kwargs) -> MonomialTransform:
    """A random element of ``obj``'s monomial group (``obj``: graph, batch or module).

    Keyword arguments go to :meth:`MonomialGroup.sample` (``scale_range``, ``distribution``, ``permute``,
    ``scale``). The result is callable on the graph and on the module: ``g(graph)``, ``g(net)``.
    """
    return MonomialGroup(obj).sample(generator=generator, max_scale=max_scale, **kwargs)


def random_transform(obj: Data | nn.Module, max_scale: float = 10.0, generator: torch.Generator | None = None,
                     **kwargs):
    """``sample_transform(obj, ...)(obj)``: a randomly transformed copy of a module or graph."""
    return sample_transform(obj, max_scale=max_scale, generator=generator, **kwargs)(obj)
