"""Model registry: one name → constructor table shared by the CLI, the trainer and the benchmarks.

>>> from monomial_gmn.models import build_model, list_models
>>> list_models()
['gmn', 'invariant-gbm', 'monomial', 'np', 'statnn', 'statnn-gbm']
>>> model = build_model("statnn", out_dim=1, hidden_dim=64, num_layers=2)

Every model takes the same input, a ParameterGraph ``Batch`` (see :class:`monomial_gmn.ParameterGraph`), and
returns [B, out_dim] (``readout="invariant"``) or an edited graph (``readout="equivariant"``).

=================  ===========================================  ======================  ================  =============
name               model                                        readouts                readout parts     architectures
=================  ===========================================  ======================  ================  =============
``monomial``       :class:`monomial_gmn.nn.MonomialGMN`         invariant, equivariant  features, probes  mixed
``gmn``            :class:`monomial_gmn.baselines.GMN`          invariant, equivariant  features, probes  mixed
``np``             :class:`monomial_gmn.baselines.NFNNP`        invariant, equivariant  features, probes  one per batch
``statnn``         :class:`monomial_gmn.baselines.StatNN`       invariant               features, probes  mixed
``statnn-gbm``     :class:`monomial_gmn.baselines.StatNNGBM`    invariant               probes            mixed
``invariant-gbm``  :class:`monomial_gmn.features.InvariantGBM`  invariant               probes            mixed
=================  ===========================================  ======================  ================  =============

``statnn-gbm`` and ``invariant-gbm`` (boosted trees on StatNN statistics / on exactly invariant features) are not
torch modules: ``model.is_torch_trainable`` is False; fit it with ``model.fit(train_batches,
val_data=val_batches)`` instead of an optimiser loop (see :class:`monomial_gmn.features.FeatureGBM`).
For ``np`` pass ``depth=`` (parametric layers of the zoo's architecture; default 4).

Readout parts
-------------
Readouts on exactly invariant features are parts of a model, not options of its backbone. Every model whose
``model_info(name).parts`` names them takes the same flat options:

* ``feature_readout=True`` (``feature_slots=8``): the invariant-feature MLP
  (:class:`monomial_gmn.features.InvariantFeatureMLP`) — torch models;
* ``probes=N`` (``probe_outputs``, ``probe_scales``, ``probe_agreement``, ``architectures``): the networks' outputs
  on N fixed random probes (:class:`monomial_gmn.features.ProbeFeatures`) — a probe readout
  (:class:`monomial_gmn.features.ProbeReadout`) for torch models, extra tree features for the GBMs.

A torch model with parts is a :class:`~monomial_gmn.nn.ComposedModel`: ``backbone(batch) + Σ
part(batch)`` (invariant readout only). Every model is described by one frozen, JSON-serialisable
:class:`ModelConfig` (``ModelConfig.from_kwargs(name, out_dim, ..., **options)``, ``to_dict()``/``from_dict()``,
``build()``); :func:`build_model` is ``ModelConfig.from_kwargs(...).build()``. Before training call
``model.fit_normalizer(train_batches)`` (unsupervised) and then ``model.fit_reference(train_batches,
train_targets)`` (what parts learn from the targets: the probes' reference classes with ``probe_agreement``).

Search spaces
-------------
Every model carries the space ``monomial-gmn compare --tune N`` draws its N configurations from
(``model_info(name).search_space``, :func:`search_space`; distributions in :mod:`monomial_gmn._search_space`).
Run settings (``lr``, ``weight_decay``, ``hidden_dim``, ``num_layers``, ``epochs``) go to the run's
``TrainConfig``; the others are constructor options. A parameter marked "with X" applies only when the model's
fixed options turn X on (e.g. ``--model-kwargs '{"probes": 128, "feature_readout": true}'``); the readout
parameters apply to every model that accepts the part.

===================================  ==========================================  ===================================
models                               parameter                                   distribution
===================================  ==========================================  ===================================
monomial, gmn, np, statnn            ``lr`` (AdamW)                              log-uniform [3e-4, 1e-2]
                                     ``weight_decay``                            log-uniform [1e-4, 0.1]
                                     ``hidden_dim``                              {32, 64, 128}
                                     ``num_layers``                              {2, 3, 4}
                                     ``epochs`` (best validation epoch kept)     {20, 40, 60}
                                     ``dropout``                                 {0, 0.1, 0.2}
monomial, gmn, np, statnn            ``feature_slots`` (with feature_readout)    {4, 8}
statnn-gbm, invariant-gbm            ``learning_rate``                           log-uniform [0.02, 0.2]
                                     ``max_iter`` (early-stopped on validation)  {200, 500, 1000}
                                     ``max_leaf_nodes``                          {7, 15, 31}
                                     ``min_samples_leaf``                        {5, 10, 20, 40}
                                     ``l2_regularization``                       log-uniform [1e-3, 10]
                                     ``max_features`` (fraction per split)       {0.5, 0.8, 1}
every model                          ``probe_scales`` (with probes)              {[1], [0.1, 1, 10]}
                                     ``probe_agreement`` (with probes)           {0, 0.25}
===================================  ==========================================  ===================================

The epoch counts are the full-size ones; pass ``tune_space={"epochs": [...]}`` (``--tune-space``) for quick runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from ._defaults import TRAIN_DEFAULTS
from ._search_space import Choice, LogUniform, Param, Uniform

__all__ = ["build_model", "build_from_config", "list_models", "register_model", "model_info", "count_parameters",
           "ModelInfo", "ModelConfig", "ComposedModel", "search_space", "READOUT_PARTS", "Param", "Choice",
           "LogUniform", "Uniform"]

#: the readout parts a model can accept (see the module docstring)
READOUT_PARTS = ("features", "probes")
# the flat option that turns each part on (named in errors about parts a model does not take)
_PART_OPTION = {"features": "feature_readout", "probes": "probes"}


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry: the constructor, what it supports, and its hyperparameter search space.

    Attributes:
        readouts: the backbone readouts it supports (``"invariant"``, ``"equivariant"``).
        trainable: False for models fitted once (boosted trees), True for torch models trained by SGD.
        parts: the readout parts it accepts (``"features"``, ``"probes"``; see the module docstring).
        search_space: ``{name: Param}`` that ``compare(..., tune=N)`` draws N configurations from (see the
            module docstring's table); empty for a model that is not tuned.
    """

    name: str
    factory: Callable[..., Any]
    readouts: tuple[str, ...]
    description: str
    trainable: bool = True
    search_space: Mapping[str, Param] = field(default_factory=dict)
    parts: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, factory: Callable[..., Any], readouts: tuple[str, ...] = ("invariant",),
                   description: str = "", trainable: bool = True, overwrite: bool = False,
                   search_space: Mapping[str, Param] | None = None, parts: tuple[str, ...] = ()) -> None:
    """Add a model under ``name``. ``factory(out_dim=, readout=, hidden_dim=, num_layers=, **kw)`` builds the
    backbone; ``search_space``: ``{name: Param}`` for ``compare --tune`` (run settings or constructor options);
    ``parts``: the readout parts it accepts. A trainable (torch) model's parts are composed around the backbone
    (:class:`ComposedModel`); a model that is not trainable receives its probe features as ``probes=`` (a
    :class:`~monomial_gmn.features.ProbeFeatures`)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a model named {name!r} is already registered (pass overwrite=True to replace it)")
    unknown = sorted(set(parts) - set(READOUT_PARTS))
    if unknown:
        raise ValueError(f"register_model({name!r}): unknown readout parts {unknown}; choose from {READOUT_PARTS}")
    _REGISTRY[name] = ModelInfo(name, factory, tuple(readouts), description, trainable, dict(search_space or {}),
                                tuple(parts))


def search_space(name: str) -> dict[str, Param]:
    """The hyperparameter search space of a registered model (a copy; see the module docstring)."""
    return dict(model_info(name).search_space)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``: readouts, trainable, accepted readout parts, search space."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options``, JSON-plain when it can be (tuples → lists), so a config equals its JSON round trip."""
    try:
        return json.loads(json.dumps(dict(options)))
    except (TypeError, ValueError):
        return dict(options)


def _readouts_config():
    from .features import ReadoutsConfig  # lazy: the registry stays importable without torch

    return ReadoutsConfig


@dataclass(frozen=True)
class ModelConfig:
    """Everything that builds a model: a frozen, JSON-serialisable record (``to_dict``/``from_dict``).

    Attributes:
        name: registered model name.
        out_dim: prediction width (classes for classification).
        readout: ``"invariant"`` or ``"equivariant"``.
        hidden_dim, num_layers: width and depth of the backbone (default: the run defaults, 64 and 3).
        options: the backbone's other constructor options (e.g. ``dropout``, ``depth`` for ``np``, scikit-learn
            options for the GBMs).
        readouts: the readout parts (:class:`monomial_gmn.features.ReadoutsConfig`; none by default).
    """

    name: str
    out_dim: int
    readout: str = "invariant"
    hidden_dim: int = TRAIN_DEFAULTS["hidden_dim"]
    num_layers: int = TRAIN_DEFAULTS["num_layers"]
    options: Mapping[str, Any] = field(default_factory=dict)
    readouts: Any = None

    def __post_init__(self) -> None:
        info = model_info(self.name)
        if self.readout not in ("invariant", "equivariant"):
            raise ValueError(f"readout must be 'invariant' or 'equivariant', not {self.readout!r}")
        if self.readout not in info.readouts:
            raise ValueError(f"model {self.name!r} supports readout {' / '.join(info.readouts)} only, not "
                             f"{self.readout!r}")
        readouts = self.readouts if self.readouts is not None else _readouts_config()()
        object.__setattr__(self, "readouts", readouts)
        object.__setattr__(self, "options", _plain(self.options))
        for part in readouts.parts:
            if part not in info.parts:
                raise TypeError(f"{self.name}() got an unexpected keyword argument '{_PART_OPTION[part]}' (model "
                                f"{self.name!r} accepts readout parts: {', '.join(info.parts) or 'none'})")
        if readouts and self.readout != "invariant":
            raise ValueError(f"model {self.name!r}: readout parts ({', '.join(readouts.parts)}) add to an invariant "
                             "prediction; they need readout='invariant'")

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=repr))

    @classmethod
    def from_kwargs(cls, name: str, out_dim: int, readout: str = "invariant",
                    hidden_dim: int = TRAIN_DEFAULTS["hidden_dim"], num_layers: int = TRAIN_DEFAULTS["num_layers"],
                    **kw: Any) -> "ModelConfig":
        """The config of ``build_model(name, out_dim, readout, hidden_dim, num_layers, **kw)``: the flat readout
        options (``feature_readout``, ``feature_slots``, ``probes``, ``probe_*``, ``architectures``) become
        :attr:`readouts`, the rest :attr:`options`."""
        model_info(name)
        readouts, rest = _readouts_config().from_options(kw, owner=name)
        return cls(name, int(out_dim), readout, int(hidden_dim), int(num_layers), rest, readouts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-plain dict (``json.dumps`` works when the options are JSON values)."""
        return {"name": self.name, "out_dim": self.out_dim, "readout": self.readout, "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers, "options": dict(self.options), "readouts": self.readouts.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        d = dict(d)
        unknown = sorted(set(d) - {"name", "out_dim", "readout", "hidden_dim", "num_layers", "options", "readouts"})
        if unknown:
            raise ValueError(f"ModelConfig.from_dict: unknown keys {unknown}")
        readouts = _readouts_config().from_dict(d.pop("readouts", None))
        return cls(readouts=readouts, **d)

    def to_options(self) -> dict[str, Any]:
        """The flat keyword options (backbone options and readout options) of :func:`build_model`."""
        return {**dict(self.options), **self.readouts.to_options()}

    def with_architectures(self, architectures: Iterable[Any]) -> "ModelConfig":
        """A copy whose probe part (if any) runs on ``architectures`` (``zoo.archs.values()`` or JSON dicts)."""
        return replace(self, readouts=self.readouts.with_architectures(architectures))

    def build(self) -> Any:
        """The model (see :func:`build_from_config`)."""
        return build_from_config(self)


def build_from_config(config: ModelConfig) -> Any:
    """Build the model a :class:`ModelConfig` describes: the backbone, composed with its readout parts
    (:class:`ComposedModel`) when it has any (torch models), or handed its probe features (boosted trees)."""
    info = model_info(config.name)
    opts = dict(config.options)
    base = dict(out_dim=config.out_dim, readout=config.readout, hidden_dim=config.hidden_dim,
                num_layers=config.num_layers)
    parts = config.readouts
    if not info.trainable:
        if parts.probes is not None:
            opts["probes"] = parts.probes.build(config.name)
        return info.factory(**base, **opts)
    backbone = info.factory(**base, **opts)
    if not parts:
        return backbone
    from .nn import ComposedModel

    modules = parts.build_parts(config.out_dim, hidden_dim=config.hidden_dim,
                                dropout=float(opts.get("dropout", 0.0)), owner=config.name)
    return ComposedModel(backbone, modules)


def build_model(name: str | ModelConfig, out_dim: int | None = None, readout: str = "invariant",
                hidden_dim: int = TRAIN_DEFAULTS["hidden_dim"], num_layers: int = TRAIN_DEFAULTS["num_layers"],
                **kw: Any):
    """Construct a registered model.

    Args:
        name: one of :func:`list_models` (``'monomial'``, ``'gmn'``, ``'np'``, ``'statnn'``, ``'statnn-gbm'``,
            ``'invariant-gbm'``), or a :class:`ModelConfig` (then nothing else is passed).
        out_dim: prediction width (classes for classification).
        readout: ``"invariant"`` (→ [B, out_dim]) or ``"equivariant"`` (→ edited graph).
        hidden_dim, num_layers: width and depth of the backbone (ignored by the GBMs); default the run defaults
            of :mod:`monomial_gmn._defaults` (64, 3), the model ``train``/``compare`` build without options.
        **kw: model-specific options (e.g. ``kernel_side``, ``dropout``, ``depth`` for ``np``,
            ``task``/``seed`` and scikit-learn options for the GBMs) and the readout-part options
            (``feature_readout``, ``feature_slots``, ``probes``, ``probe_outputs``, ``probe_scales``,
            ``probe_agreement``, ``architectures``) of the models that accept them.

    Raises:
        ValueError: unknown name (the message lists the choices), a readout the model does not support, or readout
            parts with ``readout="equivariant"``.
        TypeError: a readout part the model does not accept (``unexpected keyword argument``).
    """
    if isinstance(name, ModelConfig):
        if out_dim is not None or kw:
            raise TypeError("build_model(config): pass the ModelConfig alone")
        return build_from_config(name)
    if out_dim is None:
        raise TypeError("build_model() missing required argument: 'out_dim'")
    return ModelConfig.from_kwargs(name, out_dim, readout, hidden_dim, num_layers, **kw).build()


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
_FEATURE_SPACE = {
    "feature_slots": Param(Choice((4, 8)), requires="feature_readout",
                           doc="layer slots of the invariant-feature readout"),
}
_TORCH_SPACE = {**_SGD_SPACE, **_FEATURE_SPACE, **_PROBE_SPACE}
_TORCH_PARTS = ("features", "probes")

register_model("monomial", _monomial, ("invariant", "equivariant"),
               "graph metanetwork exactly equivariant to the monomial group (ours)", search_space=_TORCH_SPACE,
               parts=_TORCH_PARTS)
register_model("gmn", _gmn, ("invariant", "equivariant"),
               "permutation-only graph metanetwork with per-layer weight normalisation (GMN / Neural Graphs)",
               search_space=_TORCH_SPACE, parts=_TORCH_PARTS)
register_model("np", _np, ("invariant", "equivariant"),
               "NFN-NP neural functional (Zhou et al. 2023), fixed-architecture zoos", search_space=_TORCH_SPACE,
               parts=_TORCH_PARTS)
register_model("statnn", _statnn, ("invariant",),
               "per-layer weight/bias statistics -> MLP (Unterthiner et al. 2020)", search_space=_TORCH_SPACE,
               parts=_TORCH_PARTS)
register_model("statnn-gbm", _statnn_gbm, ("invariant",),
               "per-layer weight/bias statistics -> scikit-learn gradient-boosted trees", trainable=False,
               search_space={**_GBM_SPACE, **_PROBE_SPACE}, parts=("probes",))
register_model("invariant-gbm", _invariant_gbm, ("invariant",),
               "exactly invariant statistics (canonical and balanced weights, path norms) -> gradient-boosted trees",
               trainable=False, search_space={**_GBM_SPACE, **_PROBE_SPACE}, parts=("probes",))


def __getattr__(name: str) -> Any:
    """``ComposedModel`` (the backbone + readout parts module), imported when asked for (it needs torch)."""
    if name == "ComposedModel":
        from .nn import ComposedModel

        return ComposedModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
