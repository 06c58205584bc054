"""Model registry: one name → constructor table shared by the CLI, the trainer and the benchmarks.

>>> from monomial_gmn.models import build_model, list_models
>>> list_models()
['gmn', 'invariant-gbm', 'monomial', 'np', 'statnn', 'statnn-gbm']
>>> model = build_model("statnn", out_dim=1, hidden_dim=64, num_layers=2)

Every model takes the same input, a ParameterGraph ``Batch`` (see :class:`monomial_gmn.ParameterGraph`), and
returns [B, out_dim] (``readout="invariant"``) or an edited graph (``readout="equivariant"``).

=============  ==============================================  ========================  ==================
name           model                                           readouts                  architectures
=============  ==============================================  ========================  ==================
``monomial``   :class:`monomial_gmn.nn.MonomialGMN`            invariant, equivariant    mixed
``gmn``        :class:`monomial_gmn.baselines.GMN`             invariant, equivariant    mixed
``np``         :class:`monomial_gmn.baselines.NFNNP`           invariant, equivariant    one per batch
``statnn``     :class:`monomial_gmn.baselines.StatNN`          invariant                 mixed
``statnn-gbm`` :class:`monomial_gmn.baselines.StatNNGBM`       invariant                 mixed
``invariant-gbm`` :class:`monomial_gmn.features.InvariantGBM`  invariant                 mixed
=============  ==============================================  ========================  ==================

``statnn-gbm`` and ``invariant-gbm`` (boosted trees on exactly invariant features) are not torch modules: ``model.is_torch_trainable`` is False; fit it with
``model.fit(train_batches, val_data=val_batches)`` instead of an optimiser loop (see its docstring).
For ``np`` pass ``depth=`` (parametric layers of the zoo's architecture; default 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["build_model", "list_models", "register_model", "model_info", "count_parameters", "ModelInfo"]


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry: the constructor and what it supports."""

    name: str
    factory: Callable[..., Any]
    readouts: tuple[str, ...]
    description: str
    trainable: bool = True


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, factory: Callable[..., Any], readouts: tuple[str, ...] = ("invariant",),
                   description: str = "", trainable: bool = True, overwrite: bool = False) -> None:
    """Add a model under ``name``. ``factory(out_dim=, readout=, hidden_dim=, num_layers=, **kw)``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a model named {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = ModelInfo(name, factory, tuple(readouts), description, trainable)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def build_model(name: str, out_dim: int, readout: str = "invariant", hidden_dim: int = 128, num_layers: int = 4,
                **kw: Any):
    """Construct a registered model.

    Args:
        name: one of :func:`list_models` (``'monomial'``, ``'gmn'``, ``'np'``, ``'statnn'``, ``'statnn-gbm'``).
        out_dim: prediction width (classes for classification).
        readout: ``"invariant"`` (→ [B, out_dim]) or ``"equivariant"`` (→ edited graph).
        hidden_dim, num_layers: width and depth of the backbone (ignored by ``statnn-gbm``).
        **kw: model-specific options (e.g. ``kernel_side``, ``dropout``, ``depth`` for ``np``,
            ``task``/``seed`` and scikit-learn options for ``statnn-gbm``).

    Raises:
        ValueError: unknown name (the message lists the choices) or a readout the model does not support.
    """
    info = model_info(name)
    if readout not in ("invariant", "equivariant"):
        raise ValueError(f"readout must be 'invariant' or 'equivariant', not {readout!r}")
    if readout not in info.readouts:
        raise ValueError(f"model {name!r} supports readout {' / '.join(info.readouts)} only, not {readout!r}")
    return info.factory(out_dim=out_dim, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers, **kw)


def count_parameters(model: Any, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a torch model; for ``StatNNGBM`` its fitted tree-node count."""
    if hasattr(model, "num_parameters") and not hasattr(model, "named_parameters"):
        return int(model.num_parameters())
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


# ---------------------------------------------------------------------------------------------- factories
def _monomial(out_dim: int, readout: str, hidden_dim: int, num_layers: int, **kw):
    from .nn import MonomialGMN  # lazy: keeps the registry importable while nn/ evolves

    return MonomialGMN(out_dim=out_dim, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers, **kw)


def _gmn(out_dim: int, readout: str, hidden_dim: int, num_layers: int, **kw):
    from .baselines import GMN

    return GMN(out_dim=out_dim, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers, **kw)


def _np(out_dim: int, readout: str, hidden_dim: int, num_layers: int, **kw):
    from .baselines import NFNNP

    return NFNNP(out_dim=out_dim, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers, **kw)


def _statnn(out_dim: int, readout: str, hidden_dim: int, num_layers: int, **kw):
    from .baselines import StatNN

    return StatNN(out_dim=out_dim, hidden_dim=hidden_dim, num_layers=num_layers, **kw)


def _statnn_gbm(out_dim: int, readout: str, hidden_dim: int, num_layers: int, **kw):
    from .baselines import StatNNGBM

    return StatNNGBM(out_dim=out_dim, **kw)


def _invariant_gbm(out_dim: int, readout: str, hidden_dim: int, num_layers: int, **kw):
    from .features import InvariantGBM

    return InvariantGBM(out_dim=out_dim, **kw)


register_model("monomial", _monomial, ("invariant", "equivariant"),
               "graph metanetwork exactly equivariant to the monomial group (ours)")
register_model("gmn", _gmn, ("invariant", "equivariant"),
               "permutation-only graph metanetwork with per-layer weight normalisation (GMN / Neural Graphs)")
register_model("np", _np, ("invariant", "equivariant"),
               "NFN-NP neural functional (Zhou et al. 2023), fixed-architecture zoos")
register_model("statnn", _statnn, ("invariant",),
               "per-layer weight/bias statistics -> MLP (Unterthiner et al. 2020)")
register_model("statnn-gbm", _statnn_gbm, ("invariant",),
               "per-layer weight/bias statistics -> scikit-learn gradient-boosted trees", trainable=False)
register_model("invariant-gbm", _invariant_gbm, ("invariant",),
               "exactly invariant statistics (canonical and balanced weights, path norms) -> gradient-boosted trees",
               trainable=False)
