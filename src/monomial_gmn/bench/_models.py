"""Lazy access to the metanetworks under test; a missing model is reported, never a crash."""

from __future__ import annotations

from torch import nn

__all__ = ["ModelUnavailable", "build_bench_model", "bench_model_names", "MODEL_NAMES"]


def bench_model_names() -> tuple[str, ...]:
    """The models the benchmark measures: the registry's torch-trainable ones (``model_info(name).trainable``;
    the boosted trees have no training step to time), in :func:`monomial_gmn.models.list_models` order; only
    ``monomial`` (``nn.MonomialGMN`` alone) when the registry is not importable."""
    try:
        from ..models import list_models, model_info
    except ImportError:
        return ("monomial",)
    return tuple(m for m in list_models() if model_info(m).trainable)


#: :func:`bench_model_names` when the benchmark package was imported (kept for ``from monomial_gmn.bench import
#: MODEL_NAMES``; the benchmark itself asks the registry each time).
MODEL_NAMES = bench_model_names()


class ModelUnavailable(RuntimeError):
    """The requested model cannot be built here (module not present, unknown name, bad option)."""


def build_bench_model(name: str, out_dim: int, hidden_dim: int, num_layers: int,
                      readout: str = "invariant", depth: int | None = None) -> nn.Module:
    """``monomial_gmn.models.build_model(name, ...)``, or ``nn.MonomialGMN`` when only that exists.

    ``depth`` (parametric layers of the zoo's architecture) is passed to the fixed-architecture ``np`` model.

    Raises:
        ModelUnavailable: with the reason, when the model cannot be built in this installation.
    """
    try:
        from ..models import build_model
    except ImportError as exc:
        if name != "monomial":
            raise ModelUnavailable(f"monomial_gmn.models is not importable ({exc})") from None
        try:
            from ..nn import MonomialGMN
        except ImportError as exc2:
            raise ModelUnavailable(f"neither monomial_gmn.models nor monomial_gmn.nn.MonomialGMN is importable "
                                   f"({exc}; {exc2})") from None
        return MonomialGMN(out_dim=out_dim, hidden_dim=hidden_dim, num_layers=num_layers, readout=readout)
    kw = {"depth": depth} if name == "np" and depth is not None else {}
    try:
        return build_model(name, out_dim, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers, **kw)
    except (KeyError, ValueError, TypeError, NotImplementedError) as exc:
        raise ModelUnavailable(f"build_model({name!r}) failed: {type(exc).__name__}: {exc}") from None
