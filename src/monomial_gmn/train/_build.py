"""Building a run's model: its :class:`~monomial_gmn.models.ModelConfig` (``cfg.model`` for a task, the probe
architectures filled in), the model the registry builds from it, and the dataset-level constants fitted before
training (``fit_normalizer``, then ``fit_reference`` with the training targets)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ._config import TrainConfig, _fitted_model, model_options
from ._tasks import Task

__all__ = ["build_backbone", "model_config", "saved_model"]


def model_config(cfg: TrainConfig, task: Task, zoo: Any, architectures: list | None = None) -> Any:
    """The :class:`~monomial_gmn.models.ModelConfig` of a run: ``cfg.model`` with its options for ``task``.

    The one place the trainer adds what the options do not say: the seed of a boosted-tree model, NFN-NP's depth
    (from the zoo's architectures) and the architectures a probe part runs on (``architectures``, the run's
    saved ones, or else the zoo's). Options the model does not take are a ValueError naming model and option.
    """
    from ..models import ModelConfig

    kwargs = model_options(cfg.model_kwargs, cfg.model)
    if _fitted_model(cfg.model):
        if not task.supports_gbm:
            raise ValueError(f"model '{cfg.model}' only supports the generalization task, not '{task.name}'")
        kwargs.setdefault("seed", cfg.seed)
        base = dict(out_dim=task.out_dim)
    else:
        if cfg.model == "np":  # NFN-NP needs the number of parametric layers of the zoo's architecture
            archs = getattr(zoo, "archs", {})
            if archs:
                kwargs.setdefault("depth", max(len(a.spec.layers) for a in archs.values()))
        base = dict(out_dim=task.out_dim, readout=task.readout, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers)
    config = _unexpected_option(cfg, lambda: ModelConfig.from_kwargs(cfg.model, **base, **kwargs))
    if config.readouts.needs_architectures:  # the probe forward needs the zoo's layer lists
        config = config.with_architectures(architectures if architectures is not None
                                           else [a.to_json() for a in getattr(zoo, "archs", {}).values()])
    return config


def build_backbone(cfg: TrainConfig, task: Task, zoo: Any, architectures: list | None = None) -> Any:
    """The model named by ``cfg.model`` for ``task`` (an nn.Module — the backbone composed with its readout parts
    when it has any — or a scikit-learn boosted-tree model), built by the registry from :func:`model_config`.

    ``architectures``: what a probe part runs on (default: the zoo's).
    """
    return _construct(cfg, model_config(cfg, task, zoo, architectures))


def saved_model(cfg: TrainConfig, task: Task, zoo: Any, record: dict[str, Any]) -> Any:
    """A finished run's model, untrained, rebuilt from what the run saved: its
    :class:`~monomial_gmn.models.ModelConfig` (``record["model_config"]``, the one serialisable description of
    backbone and readout parts) — or, for a run from before configs were saved, from its ``TrainConfig`` and the
    probe architectures it recorded. The saved config must be for ``task``'s output (width and readout)."""
    from ..models import ModelConfig

    saved = record.get("model_config")
    if saved is None:
        return build_backbone(cfg, task, zoo, record.get("architectures"))
    if not isinstance(saved, dict):
        raise ValueError(f"config.json: model_config must be a JSON object, not {type(saved).__name__}")
    try:
        config = ModelConfig.from_dict(saved)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"config.json: malformed model_config ({exc})") from None
    if config.name != cfg.model:
        raise ValueError(f"the run's model config is for model '{config.name}', its training config for "
                         f"'{cfg.model}'")
    if not _fitted_model(cfg.model) and (config.out_dim, config.readout) != (task.out_dim, task.readout):
        raise ValueError(f"the run's model predicts {config.out_dim} value(s) with the {config.readout} readout; "
                         f"task '{task.name}' on this zoo needs {task.out_dim} with the {task.readout} readout")
    return _construct(cfg, config)


def _construct(cfg: TrainConfig, config: Any) -> Any:
    """``build_model(config)``; an option the model's constructor does not take is a ValueError naming the model
    and the option (the CLI reports it in one line)."""
    from ..models import build_model

    return _unexpected_option(cfg, lambda: build_model(config))


def _unexpected_option(cfg: TrainConfig, make: Any) -> Any:
    try:
        return make()
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        bad = str(exc).split("unexpected keyword argument")[-1].strip(" '\"").split("'")[0]
        shared = bad in cfg.model_kwargs and bad not in cfg.model_kwargs.get(cfg.model, {})
        hint = (f"; options for one model go under its name: {{\"MODEL\": {{\"{bad}\": ...}}}}" if shared
                else "")
        raise ValueError(f"model '{cfg.model}' has no option '{bad}' "
                         f"(model_kwargs: {', '.join(sorted(cfg.model_kwargs))}{hint})") from None


def _fit_normalizer(backbone: Any, zoo: Any, task: Task, idx: np.ndarray, batch_size: int) -> None:
    """Fit a model's dataset-level constants on the whole, untransformed training split — the same on every rank,
    so distributed runs stay identical: first ``fit_normalizer`` (unsupervised: the batches carry no targets),
    then, for a model whose parts learn from the targets (probe agreement), ``fit_reference(batches,
    targets)`` with the training targets."""
    def batches():
        return (zoo.batch(idx[s:s + batch_size], dtype=torch.float32) for s in range(0, len(idx), batch_size))

    if hasattr(backbone, "fit_normalizer"):
        backbone.fit_normalizer(batches())
    if getattr(backbone, "needs_reference", False):
        backbone.fit_reference(batches(), task.targets(idx).numpy())


def _num_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters())) if isinstance(model, nn.Module) else 0
