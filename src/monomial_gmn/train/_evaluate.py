"""Evaluating models and finished runs: predictions and metrics of a task module under an augmentation,
a run's selected model on a split (:func:`evaluate_run`) and the mean prediction of several runs
(:func:`ensemble_run_metrics`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._augment import parse_augment
from ._build import saved_model
from ._config import TrainConfig, _fitted_model, mix_seed, task_for
from ._fitted import _gbm_predict, _saved_gbm
from ._run import _probe_archs_of_run, _read_record, _run_zoo, _splits, load_run
from ._tasks import Task

__all__ = ["predict_model", "evaluate_model", "evaluate_run", "ensemble_run_metrics"]


@torch.no_grad()
def predict_model(module: nn.Module, zoo: Any, task: Task, idx: np.ndarray, augment: str = "none",
                  seed: int = 12345, batch_size: int = 256, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Predictions (``task.predictions``, e.g. [n] accuracies) of a task module on the nets ``idx``, each
    transformed by ``augment`` (generators seeded by ``(seed, batch number)``, so two models see the very
    same transformed nets)."""
    aug = parse_augment(augment)
    was_training = module.training
    module.eval()
    preds = []
    with torch.no_grad():
        for b, start in enumerate(range(0, len(idx), batch_size)):
            chunk = idx[start:start + batch_size]
            batch = aug(zoo.batch(chunk, dtype=dtype), torch.Generator().manual_seed(mix_seed(seed, b)))
            preds.append(task.predictions(module(batch.to(device))).detach().cpu())
    module.train(was_training)
    return torch.cat(preds)


def evaluate_model(module: nn.Module, zoo: Any, task: Task, idx: np.ndarray, augment: str = "none",
                   seed: int = 12345, batch_size: int = 256, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Metrics of a task module on the nets ``idx`` transformed by ``augment`` (see :func:`predict_model`)."""
    pred = predict_model(module, zoo, task, idx, augment, seed, batch_size, device, dtype)
    return task.metrics(pred, task.targets(idx))


def _saved_module(run: str | os.PathLike, cfg: TrainConfig, weights: dict[str, Tensor], task: Task,
                  zoo: Any, record: dict[str, Any]) -> nn.Module:
    """The task module of a finished torch run, rebuilt from its saved model config (:func:`saved_model`)
    and loaded with its selected weights."""
    torch.manual_seed(mix_seed(cfg.seed, 0xB11D))
    try:
        model = saved_model(cfg, task, zoo, record)
    except ValueError as exc:
        raise ValueError(f"{run}: {exc}") from None
    module = task.wrap(model, zoo)
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"{run}: the saved weights do not fit model '{cfg.model}' "
                         f"({next((ln for ln in str(exc).splitlines() if ln.strip()), 'state dict mismatch')})") \
            from None
    return module


def ensemble_run_metrics(runs: list[str | os.PathLike], augments: list[str], zoo: Any = None,
                         split: str = "test", seed: int = 12345) -> dict[str, Any]:
    """Metrics of the mean prediction of several finished runs (e.g. one model trained with seeds 0..K-1) on
    a split under each augmentation spec; every run sees the very same transformed nets.

    Only invariant regression tasks (``generalization``) average meaningfully; returns
    ``{"runs", "task", "split", "metric", "rows": [{"augment", **metrics}]}``.
    """
    if not runs:
        raise ValueError("ensemble_run_metrics needs at least one run")
    saved = [load_run(r) for r in runs]
    recs = [_read_record(Path(r)) for r in runs]
    cfgs = [cfg for cfg, _ in saved]
    task = task_for(cfgs[0])
    if task.name != "generalization":
        raise ValueError(f"ensembles are for the generalization task, not {task.name!r}")
    if len({(c.task, c.activation, c.split_seed) for c in cfgs}) != 1:
        raise ValueError("ensemble_run_metrics: the runs differ in task, activation or split")
    for run, cfg in zip(runs, cfgs):
        if _fitted_model(cfg.model):
            raise ValueError(f"{run}: ensembles of boosted-tree runs are not supported")
    if zoo is None:  # the first run's zoo, with the nets of every run's train_with
        tw = sorted({a for c in cfgs for a in c.train_with})
        zoo, _, digest = _run_zoo(Path(runs[0]), cfgs[0], {}, None, None, tw)
        for run, cfg, rec in zip(runs, cfgs, recs):
            if sorted(cfg.train_with) == tw and rec.get("zoo_digest") not in (None, digest):
                raise ValueError(f"{run}: the zoo at {cfgs[0].zoo} holds other networks than the run was trained "
                                 f"on (digest {digest[:12]}, not {rec['zoo_digest'][:12]})")
    task.setup(zoo)
    idx = _splits(zoo, cfgs[0])[split]
    modules = [(_saved_module(run, cfg, weights, task, zoo, rec), cfg)
               for run, (cfg, weights), rec in zip(runs, saved, recs)]
    rows = []
    for a in augments:
        pred = torch.stack([predict_model(m, zoo, task, idx, a, seed, c.eval_batch_size) for m, c in modules])
        rows.append({"augment": parse_augment(a).label, **task.metrics(pred.mean(0), task.targets(idx))})
    return {"runs": [str(r) for r in runs], "task": task.name, "split": split, "metric": task.metric, "rows": rows}


def evaluate_run(run: str | os.PathLike, augments: list[str], zoo_path: str | None = None,
                 split: str = "test", seed: int = 12345, zoo: Any = None,
                 return_predictions: bool = False) -> dict[str, Any]:
    """Evaluate a finished run's selected model on a split under each augmentation spec.

    The model is the run's own: its selected weights, or for boosted trees its fitted trees (``RUN/model.npz``),
    with a probe readout rebuilt for the architectures saved with the run. Without ``zoo_path`` and ``zoo`` the
    run's zoo is re-opened (refused if its networks changed since the run was trained); ``zoo_path`` or ``zoo``
    evaluates on other networks (their ``split`` under the run's split seed).

    Returns ``{"run", "task", "model", "split", "metric", "zoo", "zoo_digest", "rows": [{"augment", **metrics}]}``.
    With ``return_predictions`` (invariant tasks), each row also holds ``"predictions"`` ([n] list, the split's
    nets in order) and the result ``"index"`` ([n] zoo positions) and ``"targets"`` ([n]), e.g. for a paired
    bootstrap over test nets.
    """
    run = Path(run)
    cfg, weights = load_run(run)
    rec = _read_record(run)
    augs = [parse_augment(a) for a in augments]
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, not {split!r}")
    task = task_for(cfg)
    zoo, zpath, digest = _run_zoo(run, cfg, rec, zoo_path, zoo)
    own = digest == rec.get("zoo_digest") or (zoo_path is None and rec.get("zoo_digest") is None)
    _probe_archs_of_run(run, cfg, rec, own)  # refuses an old run without them on another zoo
    task.setup(zoo)
    idx = _splits(zoo, cfg)[split]
    rows = []
    if _fitted_model(cfg.model):
        model = _saved_gbm(run, cfg, task, zoo, rec, own)
        predict = lambda a: _gbm_predict(model, zoo, idx, a, seed, cfg.eval_batch_size, torch.float32)  # noqa: E731
    else:
        module = _saved_module(run, cfg, weights, task, zoo, rec)
        predict = lambda a: predict_model(module, zoo, task, idx, a, seed, cfg.eval_batch_size)  # noqa: E731
    targets = task.targets(idx)
    for a in augs:
        pred = predict(a)
        rows.append({"augment": a.label, **task.metrics(pred, targets),
                     **({"predictions": pred.double().reshape(len(idx), -1).squeeze(1).tolist()}
                        if return_predictions else {})})
    extra = {"index": [int(i) for i in idx], "targets": targets.double().tolist()} if return_predictions else {}
    return {"run": str(run), "task": task.name, "model": cfg.model, "split": split, "metric": task.metric,
            "zoo": zpath, "zoo_digest": digest, "rows": rows, **extra}
