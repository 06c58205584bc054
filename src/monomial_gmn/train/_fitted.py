"""Models fitted once instead of trained by SGD (the registry's non-``trainable`` entries, the boosted trees):
fitting a run, predicting and scoring with the fitted model, and reloading it (``RUN/model.npz``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._io import atomic_write_json, read_json
from ._augment import parse_augment
from ._build import _construct, model_config, saved_model
from ._config import TrainConfig, mix_seed
from ._distributed import DistContext
from ._run import _check_resume_config, _check_resume_zoo, _read_record, _record, _result, _splits
from ._tasks import Task

__all__ = ["evaluate_gbm"]


def _gbm_predict(model: Any, zoo: Any, idx: np.ndarray, augment: str, seed: int, batch_size: int,
                 dtype: torch.dtype) -> Tensor:
    aug = parse_augment(augment)
    outs = []
    for b, start in enumerate(range(0, len(idx), batch_size)):
        chunk = idx[start:start + batch_size]
        batch = aug(zoo.batch(chunk, dtype=dtype), torch.Generator().manual_seed(mix_seed(seed, b)))
        outs.append(torch.as_tensor(np.asarray(model.predict(batch), dtype=np.float64)).reshape(-1))
    return torch.cat(outs)


def evaluate_gbm(model: Any, zoo: Any, task: Task, idx: np.ndarray, augment: str = "none", seed: int = 12345,
                 batch_size: int = 256, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Metrics of a fitted ``statnn-gbm`` model (predictions are already in target space)."""
    pred = _gbm_predict(model, zoo, idx, augment, seed, batch_size, dtype)
    return task.metrics(pred, task.targets(idx))


def _train_gbm(cfg: TrainConfig, task: Task, zoo: Any, splits: dict[str, np.ndarray], ctx: DistContext,
               resume: bool, digest: str, evaluate_test: bool = True) -> dict[str, Any]:
    """Fit the boosted trees once; ``RUN/model.npz`` holds them (see ``StatNNGBM.save``: no pickle)."""
    out = Path(cfg.out)
    if resume and (out / "metrics.json").exists():
        saved = _read_record(out)
        _check_resume_config(saved, cfg, out / "config.json")
        _check_resume_zoo(saved, digest, cfg, out / "config.json")
        return read_json(out / "metrics.json", "run metrics")
    t0 = time.perf_counter()
    mcfg = model_config(cfg, task, zoo)
    model = _construct(cfg, mcfg)
    # Training copies are transformed once by the training augmentation (the GBM is not SGD-trained).
    aug = parse_augment(cfg.augment)
    batch = aug(zoo.batch(splits["train"], dtype=torch.float32),
                torch.Generator().manual_seed(mix_seed(cfg.seed, 0)))
    val_batch = zoo.batch(splits["val"], dtype=torch.float32)
    model.fit(batch, task.targets(splits["train"]).numpy(), val_batch, task.targets(splits["val"]).numpy())
    metrics = {
        "val": evaluate_gbm(model, zoo, task, splits["val"], batch_size=cfg.eval_batch_size),
        "test": (evaluate_gbm(model, zoo, task, splits["test"], batch_size=cfg.eval_batch_size)
                 if evaluate_test else None),
    }
    params = int(model.num_parameters()) if hasattr(model, "num_parameters") else 0
    result = _result(cfg, task, zoo, splits, metrics, None, [], 0, params, len(splits["train"]),
                     time.perf_counter() - t0, ctx)
    if ctx.is_main:
        model.save(out / "model.npz")
        atomic_write_json(out / "config.json", _record(cfg, digest, mcfg))
        atomic_write_json(out / "metrics.json", result)
    return result


def _saved_gbm(run: Path, cfg: TrainConfig, task: Task, zoo: Any, record: dict[str, Any], own_zoo: bool) -> Any:
    """The fitted trees of a boosted-tree run (``RUN/model.npz``), on the model rebuilt from the run's saved
    config (:func:`~monomial_gmn.train._build.saved_model`). A run from before the trees were saved is refitted
    (deterministically) on its own zoo only: refitting on other networks would be another model."""
    try:
        model = saved_model(cfg, task, zoo, record)
    except ValueError as exc:
        raise ValueError(f"{run}: {exc}") from None
    path = run / "model.npz"
    if path.is_file():
        return model.load(path)
    if not own_zoo:
        raise ValueError(f"{run}: holds no fitted trees ({path.name}; the run predates them), so it can only be "
                         f"evaluated on its own zoo; train it again to evaluate it on another")
    sp = _splits(zoo, cfg)
    batch = parse_augment(cfg.augment)(zoo.batch(sp["train"], dtype=torch.float32),
                                       torch.Generator().manual_seed(mix_seed(cfg.seed, 0)))
    model.fit(batch, task.targets(sp["train"]).numpy(), zoo.batch(sp["val"], dtype=torch.float32),
              task.targets(sp["val"]).numpy())
    return model
