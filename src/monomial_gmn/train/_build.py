"""Building a run's model: the backbone ``cfg.model`` names for a task, the probe architectures it is handed,
and the dataset-level normalisation constants fitted before training."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ._config import TrainConfig, _fitted_model, model_options
from ._tasks import Task

__all__ = ["build_backbone", "probe_architectures"]


def probe_architectures(cfg: TrainConfig, zoo: Any) -> list[dict[str, Any]] | None:
    """The architectures (JSON) the trainer hands a model with ``probes`` (the zoo's), or None when the model
    has no probes or its options name architectures themselves. A run saves them (``config.json``), so that
    evaluating it on another zoo rebuilds the very same probe readout."""
    opts = model_options(cfg.model_kwargs, cfg.model)
    if not opts.get("probes") or "architectures" in opts:
        return None
    return [a.to_json() for a in getattr(zoo, "archs", {}).values()]


def build_backbone(cfg: TrainConfig, task: Task, zoo: Any, architectures: list | None = None) -> Any:
    """The model named by ``cfg.model`` for ``task`` (an nn.Module, or a scikit-learn boosted-tree model).

    ``architectures``: what a probe readout runs on (default: ``probe_architectures(cfg, zoo)``, the zoo's).
    """
    kwargs = model_options(cfg.model_kwargs, cfg.model)
    if kwargs.get("probes") and "architectures" not in kwargs:  # the probe forward needs the zoo's layer lists
        kwargs["architectures"] = architectures if architectures is not None else probe_architectures(cfg, zoo)
    if _fitted_model(cfg.model):
        if not task.supports_gbm:
            raise ValueError(f"model '{cfg.model}' only supports the generalization task, not '{task.name}'")
        kwargs.setdefault("seed", cfg.seed)
        return _construct(cfg, out_dim=task.out_dim, **kwargs)
    if cfg.model == "np":  # NFN-NP needs the number of parametric layers of the zoo's architecture
        archs = getattr(zoo, "archs", {})
        if archs:
            kwargs.setdefault("depth", max(len(a.spec.layers) for a in archs.values()))
    return _construct(cfg, out_dim=task.out_dim, readout=task.readout, hidden_dim=cfg.hidden_dim,
                      num_layers=cfg.num_layers, **kwargs)


def _construct(cfg: TrainConfig, **kwargs: Any) -> Any:
    """``build_model(cfg.model, **kwargs)``; an option the model's constructor does not take is a ValueError
    naming the model and the option (the CLI reports it in one line)."""
    from ..models import build_model

    try:
        return build_model(cfg.model, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        bad = str(exc).split("unexpected keyword argument")[-1].strip(" '\"")
        shared = bad in cfg.model_kwargs and bad not in cfg.model_kwargs.get(cfg.model, {})
        hint = (f"; options for one model go under its name: {{\"MODEL\": {{\"{bad}\": ...}}}}" if shared
                else "")
        raise ValueError(f"model '{cfg.model}' has no option '{bad}' "
                         f"(model_kwargs: {', '.join(sorted(cfg.model_kwargs))}{hint})") from None


def _fit_normalizer(backbone: Any, zoo: Any, task: Task, idx: np.ndarray, batch_size: int) -> None:
    """Models with dataset-level normalisation constants (``fit_normalizer``) fit them on the whole,
    untransformed training split, targets attached as ``y`` — the same on every rank, so distributed runs stay
    identical."""
    if hasattr(backbone, "fit_normalizer"):
        backbone.fit_normalizer(zoo.batch(idx[s:s + batch_size], dtype=torch.float32,
                                          y=task.targets(idx[s:s + batch_size]))
                                for s in range(0, len(idx), batch_size))


def _num_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters())) if isinstance(model, nn.Module) else 0
