"""Symmetry verifier: does a network really compute the same function after every claimed group element?

>>> import torch, torch.nn as nn, monomial_gmn as mg
>>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).double()
>>> report = mg.verify_symmetry(net, torch.randn(5, 2, dtype=torch.float64))
>>> report.passed
True
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .graph import ParameterGraph, graph_spec
from .group import MonomialGroup
from .testing import default_tolerance

__all__ = ["verify_symmetry", "SymmetryReport", "default_verify_tolerance"]


def default_verify_tolerance(dtype: torch.dtype) -> float:
    """Largest accepted relative output change (the ``"output"`` column of
    :data:`monomial_gmn.testing.TOLERANCES`): 1e-9 for float64, 1e-4 for float32, 1e-2 otherwise."""
    return default_tolerance(dtype, "output")


@dataclass
class SymmetryReport:
    """Result of :func:`verify_symmetry`.

    Attributes:
        max_error: largest relative output change max|f_g(x) − f(x)| / max|f(x)| over the samples.
        errors: the relative change for each sampled group element.
        passed: ``max_error <= rtol``.
        rtol: the tolerance used.
        symmetry: neuron count per claimed symmetry label.
        num_slots: number of group slots (hidden neuron positions the group moves).
    """

    max_error: float
    errors: list[float]
    passed: bool
    rtol: float
    symmetry: dict[str, int] = field(default_factory=dict)
    num_slots: int = 0

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"symmetry check {verdict}: max relative output change {self.max_error:.3g} over "
                f"{len(self.errors)} group elements (tolerance {self.rtol:g}); claimed {self.symmetry}")


def _outputs(value: Any) -> Tensor:
    if torch.is_tensor(value):
        return value.reshape(-1)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        parts = [_outputs(v) for v in value]
        parts = [p for p in parts if p.numel()]
        return torch.cat(parts) if parts else torch.zeros(0)
    return torch.zeros(0)


def _relative_change(out: Tensor, base: Tensor) -> float:
    scale = float(base.abs().max()) if base.numel() else 0.0
    diff = float((out - base).abs().max()) if base.numel() else 0.0
    if not math.isfinite(diff):
        return math.inf
    return diff / scale if scale > 0 else diff


def verify_symmetry(module: nn.Module, example_input: Any, n_samples: int = 8, max_scale: float = 10.0,
                    generator: torch.Generator | None = None, graph: ParameterGraph | None = None,
                    method: str = "auto", rtol: float | None = None, permute: bool = True) -> SymmetryReport:
    """Apply sampled elements of the network's claimed monomial group to it and measure the output change.

    Each element g (a permutation of every block and a factor per neuron, drawn from the factor sets of the
    claimed symmetries, :mod:`monomial_gmn.graph._symmetry`) transforms the parameter graph by the law of
    :mod:`monomial_gmn.graph._parameter_graph`; the result is loaded back into a copy of the module (name-based
    inverse map) and run on ``example_input`` in eval mode.

    Args:
        module: any network :func:`monomial_gmn.to_graph` converts (Sequential walker or torch.fx).
        example_input: a tensor (or tuple of positional inputs) to run the network on.
        n_samples: number of random group elements.
        max_scale: factors are log-uniform on [1/max_scale, max_scale].
        generator: makes the samples deterministic.
        graph: a *claimed* graph to check instead of the converter's own (same architecture and weights;
            e.g. with ``sym`` edited to claim more symmetry than the network has).
        method: conversion method, as in :func:`monomial_gmn.graph.graph_spec`.
        rtol: tolerance of ``passed`` (default :func:`default_verify_tolerance` of the parameters' dtype).
        permute: also permute neurons (default True); False checks the factors alone.

    Returns:
        a :class:`SymmetryReport`. A wrong claim shows as a relative change of order 1.
    """
    spec = graph_spec(module, method)
    if graph is None:
        graph = spec.graph(spec.flatten(module))
    else:
        spec.check_graph(graph)
    net = copy.deepcopy(module).eval()
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    tol = rtol if rtol is not None else default_verify_tolerance(dtype)
    group = MonomialGroup(graph)
    with torch.no_grad():
        base = _outputs(net(*inputs))
        errors = []
        for _ in range(n_samples):
            g = group.sample(generator=generator, max_scale=max_scale, permute=permute)
            state = spec.state_from_graph(g(graph))
            moved = copy.deepcopy(net)
            tensors = {**dict(moved.named_buffers()), **dict(moved.named_parameters())}
            for name, value in state.items():
                tensors[name].copy_(value.reshape(tensors[name].shape))
            errors.append(_relative_change(_outputs(moved(*inputs)), base))
    max_error = max(errors) if errors else 0.0
    return SymmetryReport(max_error=max_error, errors=errors, passed=bool(max_error <= tol), rtol=tol,
                          symmetry=graph.symmetry_counts(), num_slots=group.num_slots)
