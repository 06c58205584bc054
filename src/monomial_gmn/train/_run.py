"""A run's files and the zoo it reads: opening zoos and splitting them, ``RUN/config.json`` records, the checks
that refuse resuming or evaluating on other networks, and :func:`load_run` (layout in :mod:`._trainer`)."""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from .._errors import ZooFormatError
from .._io import read_json, safe_torch_load
from ._augment import parse_augment
from ._config import TrainConfig, _activation_list, _fitted_model, model_options

__all__ = ["open_zoo", "open_run_zoo", "split_for", "load_run"]

_CKPT_VERSION = 1


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


def open_run_zoo(path: str | os.PathLike, activation: str | None = None, train_with: Sequence[str] = ()):
    """The zoo a run with ``activation`` and ``train_with`` reads: ``activation``'s nets, plus those of every
    activation in ``train_with`` (then each subset is split on its own, see :func:`split_for`)."""
    train_with = _activation_list(train_with)
    if not train_with:
        return open_zoo(path, activation)
    return run_networks(open_zoo(path, None), activation, train_with, name=str(path))


def run_networks(zoo: Any, activation: str | None = None, train_with: Sequence[str] = (), name: str = "zoo"):
    """The networks of an opened ``zoo`` that a run on ``activation`` (plus ``train_with``) reads: the zoo
    itself without ``activation`` or when it holds nothing else, else the subset of those activations, in the
    zoo's order. So ``train(cfg, zoo=load_zoo(path))`` reads, splits and records (digest) exactly the networks
    of ``train(cfg)``. ``ZooFormatError`` when an activation named has no network."""
    acts_wanted = [a for a in (activation, *_activation_list(train_with)) if a is not None]
    if not acts_wanted or "activation" not in getattr(zoo, "columns", {}):
        return zoo
    acts = zoo.columns["activation"]
    for a in acts_wanted:
        if not (acts == a).any():
            raise ZooFormatError(f"{name}: the zoo holds no networks with activation '{a}'")
    keep = np.isin(acts, acts_wanted)
    return zoo if keep.all() else zoo.subset(keep)


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


def _splits(zoo: Any, cfg: TrainConfig) -> dict[str, np.ndarray]:
    out = split_for(zoo, cfg.activation, cfg.train_with, cfg.split_seed)
    for k, v in out.items():
        if len(v) == 0:
            raise ValueError(f"the zoo's {k} split is empty ({len(zoo)} networks); use a larger zoo")
    return out


def _read_record(run: Path) -> dict[str, Any]:
    """``RUN/config.json`` as a dict (see :func:`_record`); FileNotFoundError / ValueError naming the file."""
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing (is {run} a run directory written by 'monomial-gmn train'?)")
    return read_json(cfg_path, "run configuration")


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
    if _fitted_model(cfg.model):
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


def _record(cfg: TrainConfig, digest: str, model_config: Any) -> dict[str, Any]:
    """What ``RUN/config.json`` holds: the TrainConfig (``zoo`` as an absolute path), the digest of the networks
    the run reads (:func:`monomial_gmn.data.zoo_digest` of ``open_run_zoo(zoo, activation, train_with)``),
    for a model with probes the architectures its probe readout was built for, and the model's
    :class:`~monomial_gmn.models.ModelConfig` (``model_config``, its ``to_dict()``; runs before it lack it)."""
    rec = {**cfg.to_dict(), "zoo_digest": digest}
    archs = _probe_architectures(model_config)
    if archs is not None:
        rec["architectures"] = archs
    rec["model_config"] = model_config.to_dict()
    return rec


def _probe_architectures(model_config: Any) -> list[dict[str, Any]] | None:
    """The architectures (JSON) a model's probe part runs on, from its config; None without probes. Saved with
    the run beside the config, so that evaluating it on another zoo rebuilds the very same probe readout."""
    probes = model_config.readouts.probes
    return None if probes is None or probes.architectures is None else [dict(a) for a in probes.architectures]


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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
