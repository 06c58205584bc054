"""Training and evaluation of metanetworks on zoos: seeded, resumable, distributed.

A run lives in a directory ``RUN/``:

=================  ===============================================================================
``config.json``    the :class:`TrainConfig` (plain JSON; ``zoo`` as an absolute path), plus ``zoo_digest``
                   (:func:`monomial_gmn.data.zoo_digest` of the networks the run reads) and, for a model with
                   probes, ``architectures`` (what its probe readout was built for)
``checkpoint.pt``  written atomically every ``checkpoint_every`` steps and after every epoch: model,
                   optimizer, step, epoch, best weights and early-stopping state, zoo digest (tensors,
                   numbers, strings, dicts only: it loads with ``torch.load(weights_only=True)``)
``model.pt``       the selected (best validation) weights, written at the end
``model.npz``      boosted-tree runs: the fitted trees (plain arrays, see ``StatNNGBM.save``; no pickle)
``metrics.json``   validation and test metrics of the selected weights, history, cost figures
``eval*.json``     written by ``monomial-gmn eval`` (``eval.json``: test split; ``eval_<split>.json``)
=================  ===============================================================================

Resuming on other networks than a run started on (another zoo, or a zoo changed since) is refused, and so is
evaluating a run on its own zoo path when the networks there changed; ``evaluate_run(zoo_path=...)`` evaluates
the run's own model (weights, trees, probe architectures) on another zoo on purpose.

Determinism: every random draw of step t (augmentation, dropout) comes from generators seeded by
``(seed, t, rank)``, and the batches of epoch e from ``(seed, e)``, so the state after a step depends only on
the checkpoint it started from. A run killed at any moment (even SIGKILL: checkpoints are renamed into
place) and resumed with ``resume=True`` ends with exactly the metrics of an uninterrupted run.

Distributed: under ``torchrun --nproc_per_node=N`` the same entry point wraps the model in
DistributedDataParallel; each rank takes a strided share of every global batch
(:class:`DistributedBatchSampler`) and the loss is the per-net sum divided by the global batch size times N,
so DDP's gradient average equals the single-process gradient of the same global batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._defaults import TRAIN_DEFAULTS
from .._errors import ZooFormatError
from .._io import atomic_torch_save, atomic_write_json, safe_torch_load
from ._augment import parse_augment
from ._distributed import DistContext, dist_context
from ._sampler import DistributedBatchSampler
from ._tasks import Task, make_task

__all__ = ["TrainConfig", "train", "evaluate_run", "evaluate_model", "predict_model", "ensemble_run_metrics",
           "open_zoo", "load_run", "MODEL_NAMES", "GBM_MODELS"]

MODEL_NAMES = ("monomial", "gmn", "statnn", "np", "statnn-gbm", "invariant-gbm")
GBM_MODELS = ("statnn-gbm", "invariant-gbm")
_CKPT_VERSION = 1


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as ``RUN/config.json``).

    Attributes:
        zoo: zoo path; task: task name; model: model name (see :data:`MODEL_NAMES`); out: run directory.
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
        if self.model not in MODEL_NAMES:
            raise ValueError(f"TrainConfig.model: unknown model {self.model!r}; expected one of "
                             f"{', '.join(MODEL_NAMES)}")
        make_task(self.task, **({"edit": self.edit} if self.task == "inr-editing" else {}))
        for name in ("epochs", "batch_size", "hidden_dim", "num_layers", "checkpoint_every", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "clip", "warmup"):
            v = float(getattr(self, name))
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


# ---------------------------------------------------------------------------------------------------- helpers
def open_zoo(path: str | os.PathLike, activation: str | None = None):
    """``monomial_gmn.data.load_zoo`` with user-facing errors (a missing path or an empty subset → one line)."""
    from ..data import load_zoo

    p = Path(path)
    if not p.exists():
        raise ZooFormatError(f"{p}: no such zoo (build one with 'monomial-gmn zoo build')")
    zoo = load_zoo(p, activation=activation)
    if len(zoo) == 0:
        what = f" with activation '{activation}'" if activation else ""
        raise ZooFormatError(f"{p}: the zoo holds no networks{what}")
    return zoo


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
    for name in MODEL_NAMES:
        if name in model_kwargs and not isinstance(model_kwargs[name], dict):
            raise ValueError(f"TrainConfig.model_kwargs[{name!r}] must be a dict of options for model '{name}', "
                             f"got {model_kwargs[name]!r}")
    opts = {k: v for k, v in model_kwargs.items() if k not in MODEL_NAMES}
    opts.update(model_kwargs.get(model, {}))
    for key, owner in _FLAG_OPTIONS.items():
        if key in opts:
            raise ValueError(f"TrainConfig.model_kwargs: option '{key}' of model '{model}' is set by {owner}, "
                             "not by model_kwargs")
    if opts.get("probe_agreement") and not opts.get("probes"):
        raise ValueError(f"TrainConfig.model_kwargs: model '{model}': probe_agreement={opts['probe_agreement']} "
                         "needs probes (e.g. \"probes\": 128)")
    return opts


def open_run_zoo(path: str | os.PathLike, activation: str | None = None, train_with: Sequence[str] = ()):
    """The zoo a run with ``activation`` and ``train_with`` reads: ``activation``'s nets, plus those of every
    activation in ``train_with`` (then each subset is split on its own, see :func:`split_for`)."""
    train_with = _activation_list(train_with)
    if not train_with:
        return open_zoo(path, activation)
    zoo = open_zoo(path, None)
    acts = zoo.columns["activation"]
    for a in (activation, *train_with):
        if not (acts == a).any():
            raise ZooFormatError(f"{path}: the zoo holds no networks with activation '{a}'")
    return zoo.subset(np.isin(acts, [activation, *train_with]))


def split_for(zoo: Any, activation: str | None = None, train_with: Sequence[str] = (),
              seed: int = 0) -> dict[str, np.ndarray]:
    """Train/val/test indices into ``zoo`` for a run on ``activation``'s nets.

    Each activation subset is split on its own by ``Zoo.split(seed)``, so val and test are exactly the splits of
    ``load_zoo(path, activation)`` whatever else the zoo holds; the train and val splits of the subsets in
    ``train_with`` join the training set. Without ``activation`` the whole zoo is split.
    """
    def subset_split(act: str | None) -> dict[str, np.ndarray]:
        if act is None:
            pos = np.arange(len(zoo))
        else:
            pos = np.nonzero(zoo.columns["activation"] == act)[0]
            if len(pos) == 0:
                raise ValueError(f"the zoo holds no networks with activation '{act}'")
        sp = (zoo if len(pos) == len(zoo) else zoo.subset(pos)).split(seed)
        return {k: pos[np.asarray(sp[k], dtype=np.int64)] for k in ("train", "val", "test")}

    out = subset_split(activation)
    extra = [subset_split(a) for a in _activation_list(train_with)]
    if extra:
        out["train"] = np.sort(np.concatenate([out["train"], *(e[k] for e in extra for k in ("train", "val"))]))
    return out


def _mix(*xs: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across runs and platforms."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def _lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over ``warmup·total`` steps, then cosine decay to 0 at ``total``."""
    w = int(round(warmup * total))
    if w > 0 and step < w:
        return (step + 1) / w
    if total <= w:
        return 1.0
    t = (step - w) / max(1, total - w)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


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
    if cfg.model in GBM_MODELS:
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


def _task_for(cfg: TrainConfig) -> Task:
    return make_task(cfg.task, **({"edit": cfg.edit} if cfg.task == "inr-editing" else {}))


def _splits(zoo: Any, cfg: TrainConfig) -> dict[str, np.ndarray]:
    out = split_for(zoo, cfg.activation, cfg.train_with, cfg.split_seed)
    for k, v in out.items():
        if len(v) == 0:
            raise ValueError(f"the zoo's {k} split is empty ({len(zoo)} networks); use a larger zoo")
    return out


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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
            batch = aug(zoo.batch(chunk, dtype=dtype), torch.Generator().manual_seed(_mix(seed, b)))
            preds.append(task.predictions(module(batch.to(device))).detach().cpu())
    module.train(was_training)
    return torch.cat(preds)


def evaluate_model(module: nn.Module, zoo: Any, task: Task, idx: np.ndarray, augment: str = "none",
                   seed: int = 12345, batch_size: int = 256, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Metrics of a task module on the nets ``idx`` transformed by ``augment`` (see :func:`predict_model`)."""
    pred = predict_model(module, zoo, task, idx, augment, seed, batch_size, device, dtype)
    return task.metrics(pred, task.targets(idx))


def _gbm_predict(model: Any, zoo: Any, idx: np.ndarray, augment: str, seed: int, batch_size: int,
                 dtype: torch.dtype) -> Tensor:
    aug = parse_augment(augment)
    outs = []
    for b, start in enumerate(range(0, len(idx), batch_size)):
        chunk = idx[start:start + batch_size]
        batch = aug(zoo.batch(chunk, dtype=dtype), torch.Generator().manual_seed(_mix(seed, b)))
        outs.append(torch.as_tensor(np.asarray(model.predict(batch), dtype=np.float64)).reshape(-1))
    return torch.cat(outs)


def evaluate_gbm(model: Any, zoo: Any, task: Task, idx: np.ndarray, augment: str = "none", seed: int = 12345,
                 batch_size: int = 256, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Metrics of a fitted ``statnn-gbm`` model (predictions are already in target space)."""
    pred = _gbm_predict(model, zoo, idx, augment, seed, batch_size, dtype)
    return task.metrics(pred, task.targets(idx))


# ---------------------------------------------------------------------------------------------------- training
def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    mine = cfg.to_dict()
    saved = {"train_with": [], **saved}  # runs saved before the option existed trained on their own subset

    def differs(k: str) -> bool:
        if k == "model_kwargs":  # the options this model gets, however they were spelled
            try:
                return model_options(saved.get(k) or {}, cfg.model) != model_options(mine[k], cfg.model)
            except ValueError:
                return True
        return saved.get(k) != mine[k]

    diff = [k for k in mine if k not in ("out", "zoo", "device", "checkpoint_every") and differs(k)]
    if diff:
        k = diff[0]
        raise ValueError(f"{path}: cannot resume: the run was started with {k}={saved.get(k)!r}, "
                         f"not {mine[k]!r} (use the same options, or another TrainConfig.out)")


def _check_resume_zoo(saved: dict[str, Any], digest: str, cfg: TrainConfig, path: Path) -> None:
    """Refuse to continue a run on other networks than it started on (runs without a digest predate it)."""
    theirs = saved.get("zoo_digest")
    if theirs is not None and theirs != digest:
        raise ValueError(f"{path}: cannot resume: the run was started on the zoo {saved.get('zoo')} (digest "
                         f"{theirs[:12]}), and {cfg.zoo} holds other networks (digest {digest[:12]}); use the "
                         f"run's zoo, or another TrainConfig.out")


def _record(cfg: TrainConfig, digest: str, architectures: list | None) -> dict[str, Any]:
    """What ``RUN/config.json`` holds: the TrainConfig (``zoo`` as an absolute path), the digest of the networks
    the run reads (:func:`monomial_gmn.data.zoo_digest` of ``open_run_zoo(zoo, activation, train_with)``) and,
    for a model with probes, the architectures its probe readout was built for."""
    rec = {**cfg.to_dict(), "zoo_digest": digest}
    if architectures is not None:
        rec["architectures"] = architectures
    return rec


def _resolved(path: str | os.PathLike) -> str:
    return str(Path(path).expanduser().resolve())


def _unreadable(path: Path, exc: BaseException) -> str:
    """One line saying why ``safe_torch_load(path)`` failed (never advice to load the file unsafely)."""
    from .._io import torch_load_error

    try:
        if path.stat().st_size == 0:
            return "the file is empty"
    except OSError:
        pass
    return torch_load_error(exc)


def train(cfg: TrainConfig, resume: bool = False, zoo: Any = None, progress: bool = True,
          _crash_after_step: int | None = None, evaluate_test: bool = True) -> dict[str, Any]:
    """Train a model as configured; returns (and on rank 0 writes ``RUN/metrics.json``) the final metrics.

    Args:
        cfg: the run's configuration (validated here). ``RUN/config.json`` records it with ``zoo`` resolved to
            an absolute path, plus the zoo's digest (and a probe readout's architectures), see :func:`_record`.
        resume: continue from ``RUN/checkpoint.pt`` if it exists (a finished run returns its metrics); without
            a checkpoint the run starts from step 0. Resuming on other networks than the run started on
            (another zoo, or a zoo changed since) is refused.
        zoo: an already opened zoo (default: ``open_run_zoo(cfg.zoo, cfg.activation, cfg.train_with)``).
        progress: show a tqdm bar with live loss (of the global batch) / learning rate / validation metric
            (rank 0 only).
        evaluate_test: also evaluate the selected weights on the test split (``metrics.json['test']``). False
            leaves ``'test'`` None: a hyperparameter trial (``compare(..., tune=N)``) must not compute or store
            test scores of configurations that validation may not select.

    Raises:
        ValueError / ZooFormatError: a bad option or zoo, with a one-line message.
    """
    from ..data import zoo_digest

    cfg = dataclasses.replace(cfg.validate(), zoo=_resolved(cfg.zoo))
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"TrainConfig.out {out}: exists and is not a directory")
    ckpt_path = out / "checkpoint.pt"
    if not resume and (out / "metrics.json").exists():
        raise ValueError(f"{out}: already holds a finished run (resume=True reuses it; or choose another "
                         f"TrainConfig.out)")
    if not resume and ckpt_path.exists():
        raise ValueError(f"{out}: holds an unfinished run (continue it with resume=True, or choose another "
                         f"TrainConfig.out)")
    task = _task_for(cfg)
    if zoo is None:
        zoo = open_run_zoo(cfg.zoo, cfg.activation, cfg.train_with)
    task.setup(zoo)
    splits = _splits(zoo, cfg)
    digest = zoo_digest(zoo)
    archs = probe_architectures(cfg, zoo)
    ctx = dist_context(cfg.device)
    try:
        if cfg.model in GBM_MODELS:
            return _train_gbm(cfg, task, zoo, splits, ctx, resume, digest, archs, evaluate_test)
        return _train_sgd(cfg, task, zoo, splits, ctx, resume, progress, ckpt_path, _crash_after_step, digest,
                          archs, evaluate_test)
    finally:
        ctx.close()


def _train_gbm(cfg: TrainConfig, task: Task, zoo: Any, splits: dict[str, np.ndarray], ctx: DistContext,
               resume: bool, digest: str, archs: list | None, evaluate_test: bool = True) -> dict[str, Any]:
    """Fit the boosted trees once; ``RUN/model.npz`` holds them (see ``StatNNGBM.save``: no pickle)."""
    out = Path(cfg.out)
    if resume and (out / "metrics.json").exists():
        saved = _read_record(out)
        _check_resume_config(saved, cfg, out / "config.json")
        _check_resume_zoo(saved, digest, cfg, out / "config.json")
        return json.loads((out / "metrics.json").read_text())
    t0 = time.perf_counter()
    model = build_backbone(cfg, task, zoo, archs)
    # Training copies are transformed once by the training augmentation (the GBM is not SGD-trained).
    aug = parse_augment(cfg.augment)
    batch = aug(zoo.batch(splits["train"], dtype=torch.float32), torch.Generator().manual_seed(_mix(cfg.seed, 0)))
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
        atomic_write_json(out / "config.json", _record(cfg, digest, archs))
        atomic_write_json(out / "metrics.json", result)
    return result


def _result(cfg, task, zoo, splits, metrics, best_epoch, history, steps, params, nets_seen, seconds,
            ctx) -> dict[str, Any]:
    return {
        "task": task.name, "model": cfg.model, "metric": task.metric, "activation": cfg.activation,
        "val": metrics["val"], "test": metrics["test"], "best_epoch": best_epoch, "steps": steps,
        "epochs_run": len(history), "history": history, "params": params,
        "nets": {k: int(len(v)) for k, v in splits.items()}, "world_size": ctx.world_size,
        "train_seconds": round(seconds, 3),
        "train_nets_per_second": round(nets_seen / seconds, 2) if seconds > 0 else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1), "augment": parse_augment(cfg.augment).label, "seed": cfg.seed,
    }


def _train_sgd(cfg: TrainConfig, task: Task, zoo: Any, splits: dict[str, np.ndarray], ctx: DistContext,
               resume: bool, progress: bool, ckpt_path: Path, crash_after: int | None, digest: str,
               archs: list | None, evaluate_test: bool = True) -> dict[str, Any]:
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    dtype = torch.float32
    torch.manual_seed(_mix(cfg.seed, 0xB11D))
    backbone = build_backbone(cfg, task, zoo, archs)
    _fit_normalizer(backbone, zoo, task, splits["train"], cfg.eval_batch_size)
    module = task.wrap(backbone, zoo).to(ctx.device)
    params = _num_params(module)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = DistributedBatchSampler(splits["train"], cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
    spe = len(sampler)
    total = cfg.epochs * spe
    aug = parse_augment(cfg.augment)

    state: dict[str, Any] = {"step": 0, "epoch": 0, "best_metric": None, "best_epoch": -1, "bad_epochs": 0,
                             "history": [], "done": False, "seconds": 0.0, "nets_seen": 0}
    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if resume and ckpt_path.exists():
        try:
            ck = safe_torch_load(ckpt_path)
        except Exception as exc:
            raise ValueError(f"{ckpt_path}: unreadable checkpoint ({_unreadable(ckpt_path, exc)}); delete it to "
                             f"start the run again") from None
        if not isinstance(ck, dict) or ck.get("version") != _CKPT_VERSION or not isinstance(ck.get("config"), dict):
            raise ValueError(f"{ckpt_path}: not a checkpoint of this version of monomial-gmn")
        _check_resume_config(ck["config"], cfg, ckpt_path)
        _check_resume_zoo({**ck["config"], "zoo_digest": ck.get("zoo_digest")}, digest, cfg, ckpt_path)
        if ctx.is_main:  # the record of a run started by an older version gains the path and the digest
            atomic_write_json(out / "config.json", _record(cfg, digest, archs))
        module.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        state.update(ck["state"])
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", _record(cfg, digest, archs))

    def save() -> None:
        if ctx.is_main:
            atomic_torch_save({"version": _CKPT_VERSION, "config": cfg.to_dict(), "model": module.state_dict(),
                               "optimizer": opt.state_dict(), "best_state": best_state, "state": dict(state),
                               "zoo_digest": digest, "architectures": archs}, ckpt_path)

    net = module
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    bar = tqdm(total=total, initial=state["step"], desc=f"train {cfg.model}", unit="step", dynamic_ncols=True,
               disable=not (progress and ctx.is_main), leave=False)
    t_start = time.perf_counter() - state["seconds"]
    module.train()
    while not state["done"] and state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        for local_idx, gcount in sampler.batches(epoch, start=state["step"] - epoch * spe):
            step = state["step"]
            torch.manual_seed(_mix(cfg.seed, step, ctx.rank, 1))
            gen = torch.Generator().manual_seed(_mix(cfg.seed, step, ctx.rank, 2))
            batch = aug(zoo.batch(local_idx, dtype=dtype), gen).to(ctx.device)
            target = task.targets(local_idx).to(ctx.device)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(step, total, cfg.warmup)
            output = net(batch)
            loss = task.loss(output, target).sum() * (ctx.world_size / gcount)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.clip)
            opt.step()
            state["step"] = step + 1
            state["nets_seen"] += gcount
            state["seconds"] = time.perf_counter() - t_start
            shown = loss.detach()
            if progress and ctx.distributed:  # every rank takes part (progress is the same on all of them)
                shown = shown.clone()
                torch.distributed.all_reduce(shown)
            bar.update(1)
            # each rank's loss is its share of the global batch's sum × world size / global batch size, so
            # the sum over ranks / world size is the global batch's mean per-net loss
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(shown) / ctx.world_size:.4g}",
                            lr=f"{opt.param_groups[0]['lr']:.2e}",
                            **({f"val_{task.metric}": f"{state['best_metric']:.4f}"}
                               if state["best_metric"] is not None else {}))
            if state["step"] % cfg.checkpoint_every == 0:
                save()
            if crash_after is not None and state["step"] >= crash_after:
                bar.close()
                raise _SimulatedCrash(state["step"])
        # end of epoch: validation, model selection, early stopping (identical on every rank)
        val = evaluate_model(module, zoo, task, splits["val"], batch_size=cfg.eval_batch_size, device=ctx.device)
        module.train()
        score = val[task.metric]
        state["history"].append({"epoch": epoch + 1, "step": state["step"], **{f"val_{k}": v for k, v in val.items()}})
        if task.better(score, state["best_metric"]):
            state.update(best_metric=score, best_epoch=epoch + 1, bad_epochs=0)
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            state["done"] = True
        state["seconds"] = time.perf_counter() - t_start
        save()
    bar.close()
    seconds = state["seconds"]
    module.load_state_dict(best_state)
    metrics = {split: evaluate_model(module, zoo, task, splits[split], batch_size=cfg.eval_batch_size,
                                     device=ctx.device) if split == "val" or evaluate_test else None
               for split in ("val", "test")}
    result = _result(cfg, task, zoo, splits, metrics, state["best_epoch"], state["history"], state["step"],
                     params, state["nets_seen"], seconds, ctx)
    if ctx.is_main:
        atomic_torch_save({"config": cfg.to_dict(), "model": best_state}, out / "model.pt")
        atomic_write_json(out / "metrics.json", result)
    ctx.barrier()
    return result


class _SimulatedCrash(RuntimeError):
    """Raised by ``train(_crash_after_step=k)`` to simulate a process killed after step k (tests only)."""


# ---------------------------------------------------------------------------------------------------- evaluation
def _read_record(run: Path) -> dict[str, Any]:
    """``RUN/config.json`` as a dict (see :func:`_record`); FileNotFoundError / ValueError naming the file."""
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing (is {run} a run directory written by 'monomial-gmn train'?)")
    try:
        rec = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path}: malformed run configuration ({exc})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"{cfg_path}: malformed run configuration (not a JSON object)")
    return rec


def load_run(run: str | os.PathLike) -> tuple[TrainConfig, dict[str, Tensor]]:
    """The configuration and the selected weights of a finished run directory (``{}`` for boosted trees,
    whose fitted trees are ``RUN/model.npz``)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    model_path = run / "model.pt"
    try:
        cfg = TrainConfig.from_dict(_read_record(run))
    except TypeError as exc:
        raise ValueError(f"{run / 'config.json'}: malformed run configuration ({exc})") from None
    if cfg.model in GBM_MODELS:
        return cfg, {}
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: missing; the run has not finished (continue it with resume=True)")
    try:
        saved = safe_torch_load(model_path)
    except Exception as exc:
        raise ValueError(f"{model_path}: unreadable ({_unreadable(model_path, exc)})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        raise ValueError(f"{model_path}: not a model file written by 'monomial-gmn train'")
    return cfg, saved["model"]


def _run_zoo(run: Path, cfg: TrainConfig, rec: dict[str, Any], zoo_path: str | os.PathLike | None,
             zoo: Any, train_with: Sequence[str] | None = None) -> tuple[Any, str, str]:
    """The zoo to evaluate a run on, its path and its digest.

    Without ``zoo_path`` and ``zoo`` this re-opens the run's own zoo and refuses one whose networks changed
    since the run was trained (a run records their digest); ``zoo_path`` (or an opened ``zoo``) evaluates on
    other networks on purpose."""
    from ..data import zoo_digest

    tw = cfg.train_with if train_with is None else train_with
    if zoo is not None:
        return zoo, str(zoo_path or cfg.zoo), zoo_digest(zoo)
    path = zoo_path or cfg.zoo
    z = open_run_zoo(path, cfg.activation, tw)
    digest = zoo_digest(z)
    theirs = rec.get("zoo_digest")
    if zoo_path is None and theirs is not None and theirs != digest:
        raise ValueError(f"{run}: the zoo at {path} holds other networks than the run was trained on (digest "
                         f"{digest[:12]}, not {theirs[:12]}); to evaluate the run on them anyway, name the zoo "
                         f"explicitly (zoo_path)")
    return z, _resolved(path), digest


def _probe_archs_of_run(run: Path, cfg: TrainConfig, rec: dict[str, Any], own_zoo: bool) -> list | None:
    """The architectures a run's probe readout was built for (saved with the run); a run from before they were
    saved can only be rebuilt on its own zoo."""
    archs = rec.get("architectures")
    if archs is None and not own_zoo and model_options(cfg.model_kwargs, cfg.model).get("probes") \
            and "architectures" not in model_options(cfg.model_kwargs, cfg.model):
        raise ValueError(f"{run}: the run does not record its probe architectures (it predates them), so its "
                         f"probe readout can only be rebuilt on its own zoo")
    return archs


def _saved_module(run: str | os.PathLike, cfg: TrainConfig, weights: dict[str, Tensor], task: Task,
                  zoo: Any, architectures: list | None = None) -> nn.Module:
    """The task module of a finished torch run, rebuilt from its config (a probe readout for
    ``architectures``, the run's) and loaded with its selected weights."""
    torch.manual_seed(_mix(cfg.seed, 0xB11D))
    module = task.wrap(build_backbone(cfg, task, zoo, architectures), zoo)
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"{run}: the saved weights do not fit model '{cfg.model}' "
                         f"({next((ln for ln in str(exc).splitlines() if ln.strip()), 'state dict mismatch')})") \
            from None
    return module


def _saved_gbm(run: Path, cfg: TrainConfig, task: Task, zoo: Any, architectures: list | None,
               own_zoo: bool) -> Any:
    """The fitted trees of a boosted-tree run (``RUN/model.npz``). A run from before they were saved is refitted
    (deterministically) on its own zoo only: refitting on other networks would be another model."""
    model = build_backbone(cfg, task, zoo, architectures)
    path = run / "model.npz"
    if path.is_file():
        return model.load(path)
    if not own_zoo:
        raise ValueError(f"{run}: holds no fitted trees ({path.name}; the run predates them), so it can only be "
                         f"evaluated on its own zoo; train it again to evaluate it on another")
    sp = _splits(zoo, cfg)
    batch = parse_augment(cfg.augment)(zoo.batch(sp["train"], dtype=torch.float32),
                                       torch.Generator().manual_seed(_mix(cfg.seed, 0)))
    model.fit(batch, task.targets(sp["train"]).numpy(), zoo.batch(sp["val"], dtype=torch.float32),
              task.targets(sp["val"]).numpy())
    return model


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
    task = _task_for(cfgs[0])
    if task.name != "generalization":
        raise ValueError(f"ensembles are for the generalization task, not {task.name!r}")
    if len({(c.task, c.activation, c.split_seed) for c in cfgs}) != 1:
        raise ValueError("ensemble_run_metrics: the runs differ in task, activation or split")
    for run, cfg in zip(runs, cfgs):
        if cfg.model in GBM_MODELS:
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
    modules = [(_saved_module(run, cfg, weights, task, zoo, rec.get("architectures")), cfg)
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
    task = _task_for(cfg)
    zoo, zpath, digest = _run_zoo(run, cfg, rec, zoo_path, zoo)
    own = digest == rec.get("zoo_digest") or (zoo_path is None and rec.get("zoo_digest") is None)
    archs = _probe_archs_of_run(run, cfg, rec, own)
    task.setup(zoo)
    idx = _splits(zoo, cfg)[split]
    rows = []
    if cfg.model in GBM_MODELS:
        model = _saved_gbm(run, cfg, task, zoo, archs, own)
        predict = lambda a: _gbm_predict(model, zoo, idx, a, seed, cfg.eval_batch_size, torch.float32)  # noqa: E731
    else:
        module = _saved_module(run, cfg, weights, task, zoo, archs)
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
