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

Search spaces
-------------
Every model carries the space ``monomial-gmn compare --tune N`` draws its N configurations from
(``model_info(name).search_space``, :func:`search_space`; distributions in :mod:`monomial_gmn._search_space`).
Run settings (``lr``, ``weight_decay``, ``hidden_dim``, ``num_layers``, ``epochs``) go to the run's
``TrainConfig``; the others are constructor options. A parameter marked "with X" applies only when the model's
fixed options turn X on (e.g. ``--model-kwargs '{"probes": 128, "feature_readout": true}'``).

==============================  ==========================================  ===================================
models                          parameter                                   distribution
==============================  ==========================================  ===================================
monomial, gmn, np, statnn       ``lr`` (AdamW)                              log-uniform [3e-4, 1e-2]
                                ``weight_decay``                            log-uniform [1e-4, 0.1]
                                ``hidden_dim``                              {32, 64, 128}
                                ``num_layers``                              {2, 3, 4}
                                ``epochs`` (best validation epoch kept)     {20, 40, 60}
                                ``dropout``                                 {0, 0.1, 0.2}
monomial                        ``feature_slots`` (with feature_readout)    {4, 8}
monomial, invariant-gbm         ``probe_scales`` (with probes)              {[1], [0.1, 1, 10]}
                                ``probe_agreement`` (with probes)           {0, 0.25}
statnn-gbm, invariant-gbm       ``learning_rate``                           log-uniform [0.02, 0.2]
                                ``max_iter`` (early-stopped on validation)  {200, 500, 1000}
                                ``max_leaf_nodes``                          {7, 15, 31}
                                ``min_samples_leaf``                        {5, 10, 20, 40}
                                ``l2_regularization``                       log-uniform [1e-3, 10]
                                ``max_features`` (fraction per split)       {0.5, 0.8, 1}
==============================  ==========================================  ===================================

The epoch counts are the full-size ones; pass ``tune_space={"epochs": [...]}`` (``--tune-space``) for quick runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ._search_space import Choice, LogUniform, Param

__all__ = ["build_model", "list_models", "register_model", "model_info", "count_parameters", "ModelInfo",
           "search_space"]


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry: the constructor, what it supports, and its hyperparameter search space.

    ``search_space``: ``{name: Param}`` that ``compare(..., tune=N)`` draws N configurations from (see the
    module docstring's table); empty for a model that is not tuned.
    """

    name: str
    factory: Callable[..., Any]
    readouts: tuple[str, ...]
    description: str
    trainable: bool = True
    search_space: Mapping[str, Param] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, factory: Callable[..., Any], readouts: tuple[str, ...] = ("invariant",),
                   description: str = "", trainable: bool = True, overwrite: bool = False,
                   search_space: Mapping[str, Param] | None = None) -> None:
    """Add a model under ``name``. ``factory(out_dim=, readout=, hidden_dim=, num_layers=, **kw)``;
    ``search_space``: ``{name: Param}`` for ``compare --tune`` (run settings or constructor options)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a model named {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = ModelInfo(name, factory, tuple(readouts), description, trainable, dict(search_space or {}))


def search_space(name: str) -> dict[str, Param]:
    """The hyperparameter search space of a registered model (a copy; see the module docstring)."""
    return dict(model_info(name).search_space)


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


# ---------------------------------------------------------------------------------------------- search spaces
# One place for every model's space (the table in the module docstring mirrors it; a test checks they agree).
_SGD_SPACE = {
    "lr": Param(LogUniform(3e-4, 1e-2), doc="AdamW learning rate"),
    "weight_decay": Param(LogUniform(1e-4, 1e-1), doc="AdamW weight decay"),
    "hidden_dim": Param(Choice((32, 64, 128)), doc="hidden width"),
    "num_layers": Param(Choice((2, 3, 4)), doc="message-passing / MLP layers"),
    "epochs": Param(Choice((20, 40, 60)), doc="training epochs (the best validation epoch is kept)"),
    "dropout": Param(Choice((0.0, 0.1, 0.2)), doc="dropout"),
}
_PROBE_SPACE = {
    "probe_scales": Param(Choice(((1.0,), (0.1, 1.0, 10.0))), requires="probes", doc="probe input scales"),
    "probe_agreement": Param(Choice((0.0, 0.25)), requires="probes", doc="agreement with the top training nets"),
}
_GBM_SPACE = {
    "learning_rate": Param(LogUniform(0.02, 0.2), doc="boosting learning rate"),
    "max_iter": Param(Choice((200, 500, 1000)), doc="boosting rounds (early-stopped on validation)"),
    "max_leaf_nodes": Param(Choice((7, 15, 31)), doc="leaves per tree"),
    "min_samples_leaf": Param(Choice((5, 10, 20, 40)), doc="networks per leaf"),
    "l2_regularization": Param(LogUniform(1e-3, 10.0), doc="L2 penalty on leaf values"),
    "max_features": Param(Choice((0.5, 0.8, 1.0)), doc="fraction of features tried per split"),
}
_MONOMIAL_SPACE = {**_SGD_SPACE,
                   "feature_slots": Param(Choice((4, 8)), requires="feature_readout",
                                          doc="layer slots of the invariant-feature readout"),
                   **_PROBE_SPACE}

register_model("monomial", _monomial, ("invariant", "equivariant"),
               "graph metanetwork exactly equivariant to the monomial group (ours)", search_space=_MONOMIAL_SPACE)
register_model("gmn", _gmn, ("invariant", "equivariant"),
               "permutation-only graph metanetwork with per-layer weight normalisation (GMN / Neural Graphs)",
               search_space=_SGD_SPACE)
register_model("np", _np, ("invariant", "equivariant"),
               "NFN-NP neural functional (Zhou et al. 2023), fixed-architecture zoos", search_space=_SGD_SPACE)
register_model("statnn", _statnn, ("invariant",),
               "per-layer weight/bias statistics -> MLP (Unterthiner et al. 2020)", search_space=_SGD_SPACE)
register_model("statnn-gbm", _statnn_gbm, ("invariant",),
               "per-layer weight/bias statistics -> scikit-learn gradient-boosted trees", trainable=False,
               search_space=_GBM_SPACE)
register_model("invariant-gbm", _invariant_gbm, ("invariant",),
               "exactly invariant statistics (canonical and balanced weights, path norms) -> gradient-boosted trees",
               trainable=False, search_space={**_GBM_SPACE, **_PROBE_SPACE})
