"""A run's configuration: :class:`TrainConfig`, the options a model gets (:func:`model_options`), seeds.

The model names are the registry's (:func:`monomial_gmn.models.list_models`); a model whose registry entry is
not ``trainable`` (the boosted trees) is fitted once instead of trained by SGD.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._defaults import TRAIN_DEFAULTS
from ..models import list_models, model_info
from ._augment import parse_augment
from ._tasks import Task, make_task

__all__ = ["TrainConfig", "model_options", "mix_seed", "task_for", "model_names", "fitted_models"]


def model_names() -> tuple[str, ...]:
    """Every model a run can name: the registry's, sorted (:func:`monomial_gmn.models.list_models`)."""
    return tuple(list_models())


def fitted_models() -> tuple[str, ...]:
    """The registered models fitted once rather than trained by SGD (``model_info(name).trainable`` False:
    the boosted trees)."""
    return tuple(m for m in list_models() if not model_info(m).trainable)


def _fitted_model(name: str) -> bool:
    """Whether ``name`` is a registered model that is fitted, not SGD-trained (False for unknown names)."""
    return name in list_models() and not model_info(name).trainable


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as ``RUN/config.json``).

    Attributes:
        zoo: zoo path; task: task name; out: run directory.
        model: model name, one of :func:`monomial_gmn.models.list_models` (the registry).
        epochs: training epochs; batch_size: global batch (nets per step, summed over processes).
        lr, weight_decay: AdamW; warmup: fraction of all steps with linear warm-up, then cosine to 0.
        clip: gradient-norm clip (0 = off); hidden_dim, num_layers: model size.
        augment: training augmentation (``none``, level ``k``, ``scale:S``, ``sign``; see ``parse_augment``).
        seed: training seed; split_seed: seed of the zoo's train/val/test split.
        patience: early stopping after this many epochs without a better validation metric (0 = off).
        checkpoint_every: steps between checkpoints (the end of every epoch is checkpointed as well).
        activation: use only the zoo's nets with this recorded activation (``relu``/``tanh``; None = all).
        train_with: other activations whose nets also train the model: the train and val splits of each of
            those subsets join the training set, while validation and test stay ``activation``'s own splits
            (the very nets a run without ``train_with`` is selected and tested on). Needs ``activation``.
        edit: the inr-editing target (``dilate`` or ``contrast``).
        eval_batch_size: nets per evaluation batch; device: ``auto``, ``cpu`` or ``cuda``.
        model_kwargs: extra keyword arguments for ``build_model``.
    """

    zoo: str
    task: str
    model: str
    out: str
    epochs: int = TRAIN_DEFAULTS["epochs"]
    batch_size: int = TRAIN_DEFAULTS["batch_size"]
    lr: float = TRAIN_DEFAULTS["lr"]
    weight_decay: float = TRAIN_DEFAULTS["weight_decay"]
    warmup: float = 0.05
    clip: float = 1.0
    hidden_dim: int = TRAIN_DEFAULTS["hidden_dim"]
    num_layers: int = TRAIN_DEFAULTS["num_layers"]
    augment: str = "none"
    seed: int = 0
    split_seed: int = 0
    patience: int = 0
    checkpoint_every: int = 100
    activation: str | None = None
    train_with: list[str] = field(default_factory=list)
    edit: str = "dilate"
    eval_batch_size: int = 256
    device: str = "auto"
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first bad field (as ``TrainConfig.<field>``)."""
        names = list_models()
        if self.model not in names:
            raise ValueError(f"TrainConfig.model: unknown model {self.model!r}; expected one of "
                             f"{', '.join(names)}")
        make_task(self.task, **({"edit": self.edit} if self.task == "inr-editing" else {}))
        for name in ("epochs", "batch_size", "hidden_dim", "num_layers", "checkpoint_every", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"TrainConfig.{name} must be an integer, got {v!r}")
            if int(v) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {v}")
        for name in ("lr", "weight_decay", "clip", "warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"TrainConfig.{name} must be a number, got {v!r}")
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {v}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}")
        if self.warmup > 1:
            raise ValueError(f"TrainConfig.warmup is a fraction of all steps in [0, 1], got {self.warmup}")
        if self.patience < 0:
            raise ValueError(f"TrainConfig.patience must be >= 0, got {self.patience}")
        if self.activation not in (None, "relu", "tanh"):
            raise ValueError(f"TrainConfig.activation must be relu or tanh, not {self.activation!r}")
        self.train_with = _activation_list(self.train_with)
        if self.train_with:
            if self.activation is None:
                raise ValueError("TrainConfig.train_with needs TrainConfig.activation (the subset that is validated "
                                 "and tested)")
            for a in self.train_with:
                if a not in ("relu", "tanh") or a == self.activation:
                    raise ValueError(f"TrainConfig.train_with: {a!r} must be relu or tanh and differ from "
                                     f"TrainConfig.activation {self.activation}")
            if len(set(self.train_with)) != len(self.train_with):
                raise ValueError(f"TrainConfig.train_with lists an activation twice: {','.join(self.train_with)}")
        parse_augment(self.augment)
        model_options(self.model_kwargs, self.model)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _activation_list(value: str | Sequence[str] | None) -> list[str]:
    """'tanh' / 'relu,tanh' / ['tanh'] / None → a list of names."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [str(a).strip() for a in parts if str(a).strip()]


_FLAG_OPTIONS = {"hidden_dim": "TrainConfig.hidden_dim", "num_layers": "TrainConfig.num_layers",
                 "readout": "the task (invariant or equivariant)", "out_dim": "the task (its number of outputs)"}


def model_options(model_kwargs: dict[str, Any], model: str) -> dict[str, Any]:
    """The options ``model_kwargs`` gives ``model``.

    ``model_kwargs`` holds options for every model (``{"dropout": 0.1}``), options under a model's name for that
    model only (``{"monomial": {"feature_readout": true}, "invariant-gbm": {"max_iter": 200}}``), or both (a
    model's own options win). Options that the run's fields or the task set (``hidden_dim``, ``num_layers``,
    ``readout``, ``out_dim``) and ``probe_agreement`` without ``probes`` are refused.

    Raises:
        ValueError: naming the model and the option (as ``TrainConfig.model_kwargs``).
    """
    if not isinstance(model_kwargs, dict) or not all(isinstance(k, str) for k in model_kwargs):
        raise ValueError(f"TrainConfig.model_kwargs must be a dict of options, got {model_kwargs!r}")
    names = list_models()
    for name in names:
        if name in model_kwargs and not isinstance(model_kwargs[name], dict):
            raise ValueError(f"TrainConfig.model_kwargs[{name!r}] must be a dict of options for model '{name}', "
                             f"got {model_kwargs[name]!r}")
    opts = {k: v for k, v in model_kwargs.items() if k not in names}
    opts.update(model_kwargs.get(model, {}))
    for key, owner in _FLAG_OPTIONS.items():
        if key in opts:
            raise ValueError(f"TrainConfig.model_kwargs: option '{key}' of model '{model}' is set by {owner}, "
                             "not by model_kwargs")
    if opts.get("probe_agreement") and not opts.get("probes"):
        raise ValueError(f"TrainConfig.model_kwargs: model '{model}': probe_agreement={opts['probe_agreement']} "
                         "needs probes (e.g. \"probes\": 128)")
    return opts


def mix_seed(*xs: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across runs and platforms.

    The trainer seeds every draw with it: ``mix_seed(cfg.seed, 0xB11D)`` the model's initial weights,
    ``mix_seed(seed, b)`` the augmentation of evaluation batch ``b``, ``mix_seed(cfg.seed, 0)`` the one
    augmentation of a boosted-tree run's training copies; reusing these reproduces the trainer's draws.
    """
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def task_for(cfg: TrainConfig) -> Task:
    """The task a run with this configuration trains on (``make_task(cfg.task)``, with ``cfg.edit`` for
    ``inr-editing``), not yet set up on a zoo."""
    return make_task(cfg.task, **({"edit": cfg.edit} if cfg.task == "inr-editing" else {}))
