"""Training and evaluation of metanetworks on zoos: seeded, resumable, distributed.

:func:`train` is the entry point; the work is split by concern: :mod:`._config` (``TrainConfig``, model
options, seeds), :mod:`._build` (the model), :mod:`._run` (run directory, records, resume checks, ``load_run``),
:mod:`._loop` (the SGD loop), :mod:`._fitted` (boosted trees, fitted once) and :mod:`._evaluate` (predictions,
``evaluate_run``, ensembles). The names of those modules stay importable from here.

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
from pathlib import Path
from typing import Any

from ._build import _construct, _fit_normalizer, _num_params, build_backbone
from ._config import (TrainConfig, _activation_list, _fitted_model, fitted_models, mix_seed, model_names,
                      model_options, task_for)
from ._distributed import dist_context
from ._evaluate import _saved_module, ensemble_run_metrics, evaluate_model, evaluate_run, predict_model
from ._fitted import _gbm_predict, _saved_gbm, _train_gbm, evaluate_gbm
from ._loop import _lr_factor, _SimulatedCrash, _train_sgd
from ._run import (_CKPT_VERSION, _check_resume_config, _check_resume_zoo, _probe_archs_of_run, _read_record,
                   _record, _resolved, _result, _run_zoo, _splits, _unreadable, load_run, open_run_zoo, open_zoo,
                   run_networks, split_for)

__all__ = ["TrainConfig", "train", "evaluate_run", "evaluate_model", "predict_model", "ensemble_run_metrics",
           "open_zoo", "load_run", "MODEL_NAMES", "GBM_MODELS"]

# the names these modules had when they were all here (tests and older scripts import them from this module)
_mix = mix_seed
_task_for = task_for
_REEXPORTED = (_construct, _fit_normalizer, _num_params, build_backbone, _activation_list, model_options,
               _saved_module, _gbm_predict, _saved_gbm, evaluate_gbm, _lr_factor, _SimulatedCrash, _CKPT_VERSION,
               _check_resume_config, _check_resume_zoo, _probe_archs_of_run, _read_record, _record, _result,
               _run_zoo, _unreadable, split_for)


def __getattr__(name: str) -> Any:
    """``MODEL_NAMES`` / ``GBM_MODELS``: the registry's models and its fitted ones, read when asked for."""
    if name == "MODEL_NAMES":
        return model_names()
    if name == "GBM_MODELS":
        return fitted_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train(cfg: TrainConfig, resume: bool = False, zoo: Any = None, progress: bool = True,
          _crash_after_step: int | None = None, evaluate_test: bool = True) -> dict[str, Any]:
    """Train a model as configured; returns (and on rank 0 writes ``RUN/metrics.json``) the final metrics.

    Args:
        cfg: the run's configuration (validated here). ``RUN/config.json`` records it with ``zoo`` resolved to
            an absolute path, plus the zoo's digest (and a probe readout's architectures), see ``_run._record``.
        resume: continue from ``RUN/checkpoint.pt`` if it exists (a finished run returns its metrics); without
            a checkpoint the run starts from step 0. Resuming on other networks than the run started on
            (another zoo, or a zoo changed since) is refused.
        zoo: an already opened zoo (default: ``open_run_zoo(cfg.zoo, cfg.activation, cfg.train_with)``); its
            networks of other activations than the run's are left out, as when the run opens ``cfg.zoo``.
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
    task = task_for(cfg)
    if zoo is None:
        zoo = open_run_zoo(cfg.zoo, cfg.activation, cfg.train_with)
    else:   # an opened zoo may hold other activations: read exactly the networks a run from cfg.zoo reads
        zoo = run_networks(zoo, cfg.activation, cfg.train_with, name=cfg.zoo)
    task.setup(zoo)
    splits = _splits(zoo, cfg)
    digest = zoo_digest(zoo)
    ctx = dist_context(cfg.device)
    try:
        if _fitted_model(cfg.model):
            return _train_gbm(cfg, task, zoo, splits, ctx, resume, digest, evaluate_test)
        return _train_sgd(cfg, task, zoo, splits, ctx, resume, progress, ckpt_path, _crash_after_step, digest,
                          evaluate_test)
    finally:
        ctx.close()
