"""assert_equivariant: f(g·G) == f(G) (invariant) or g⁻¹·f(g·G) == f(G) (equivariant), for many g."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..group import MonomialGroup, MonomialTransform

__all__ = ["assert_equivariant", "default_tolerance", "relative_error", "TOLERANCES"]

#: The one table of accepted relative errors of the library's exactness checks, per dtype and check:
#: ``"graph"`` — a model's output on a transformed graph (:func:`assert_equivariant`); ``"output"`` — a
#: network's output after a group element acts on its weights (:func:`monomial_gmn.verify_symmetry`; the
#: network's own forward pass adds rounding). Any other dtype: :data:`OTHER_DTYPES`.
TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {"graph": 1e-10, "output": 1e-9},
    torch.float32: {"graph": 1e-5, "output": 1e-4},
}
OTHER_DTYPES = 1e-2


def default_tolerance(dtype: torch.dtype, check: str = "graph") -> float:
    """Largest accepted relative error of ``check`` (``"graph"`` or ``"output"``) in ``dtype``, from
    :data:`TOLERANCES`: graph 1e-10 / 1e-5, output 1e-9 / 1e-4 for float64 / float32; 1e-2 otherwise."""
    if check not in ("graph", "output"):
        raise ValueError(f"check must be 'graph' or 'output', not {check!r}")
    row = TOLERANCES.get(dtype)
    return row[check] if row is not None else OTHER_DTYPES


def relative_error(a: Tensor, b: Tensor) -> float:
    """max|a − b| / max|b| (0 when both are zero); shapes must match."""
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    scale = b.abs().max() if b.numel() else torch.tensor(0.0)
    diff = (a - b).abs().max() if a.numel() else torch.tensor(0.0)
    if float(scale) == 0.0:
        return float(diff)
    return float(diff / scale)


def _as_graph_parts(out) -> tuple[Tensor, Tensor]:
    if isinstance(out, Data):
        return out.x, out.edge_attr
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    raise TypeError("in equivariant mode the function must return a graph (x, edge_attr) or a tuple (x, edge_attr)")


def assert_equivariant(fn: Callable[[Data], object], graph: Data,
                       elements: Iterable[tuple[str, MonomialTransform]] | Sequence[MonomialTransform] | None = None,
                       mode: str = "invariant", n_random: int = 4, max_scale: float = 100.0,
                       rtol: float | None = None, generator: torch.Generator | None = None) -> dict[str, float]:
    """Check that ``fn`` is invariant or equivariant under the monomial group of ``graph``.

    Args:
        fn: a model or any callable taking a graph/Batch. Invariant mode: returns a tensor. Equivariant
            mode: returns a graph (or ``(x, edge_attr)``) on the same nodes and edges, transforming by the
            law of :class:`~monomial_gmn.MonomialTransform` channel-wise.
        graph: a ParameterGraph or a Batch (architectures may be mixed).
        elements: group elements to test (default: ``testing_elements`` plus ``n_random`` samples).
        mode: ``"invariant"`` or ``"equivariant"``.
        max_scale: bound of the sampled factors (log-uniform on [1/max_scale, max_scale]).
        rtol: accepted relative error (default :func:`default_tolerance` of ``graph.x.dtype``).

    Returns:
        the relative error per element name. Raises ``AssertionError`` naming the failing elements.

    The equivariant comparison maps the output back with g⁻¹ before comparing, so neurons with very
    different scales are judged on an equal footing.
    """
    if mode not in ("invariant", "equivariant"):
        raise ValueError(f"mode must be 'invariant' or 'equivariant', not {mode!r}")
    group = MonomialGroup(graph)
    if elements is None:
        named = group.testing_elements(generator, max_scale=max_scale)
        named += [(f"random{i}", group.sample(generator, max_scale=max_scale)) for i in range(n_random)]
    else:
        named = [e if isinstance(e, tuple) else (f"element{i}", e) for i, e in enumerate(elements)]
    tol = rtol if rtol is not None else default_tolerance(graph.x.dtype)
    base = fn(graph)
    errors: dict[str, float] = {}
    for name, g in named:
        moved = g(graph)
        out = fn(moved)
        if mode == "invariant":
            errors[name] = relative_error(out, base)
        else:
            x_g, e_g = _as_graph_parts(out)
            x0, e0 = _as_graph_parts(base)
            back = (~g).act_graph(Data(x=x_g, edge_index=moved.edge_index, edge_attr=e_g))
            errors[name] = max(relative_error(back.x, x0), relative_error(back.edge_attr, e0))
    bad = {k: v for k, v in errors.items() if not v <= tol}
    if bad:
        detail = ", ".join(f"{k}: {v:.3g}" for k, v in bad.items())
        raise AssertionError(f"not {mode} (relative error > {tol:g}) under: {detail}")
    return errors

