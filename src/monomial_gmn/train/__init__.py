"""Tasks, training and evaluation of metanetworks on zoos of networks (see :mod:`._trainer` for runs)."""

from typing import Any

from ._augment import Augment, augment_level_bound, parse_augment
from ._build import build_backbone, saved_model
from ._compare import EVAL_SEED, compare, parse_levels, parse_models, tuning_spaces
from ._config import TrainConfig, fitted_models, mix_seed, model_names, model_options, task_for
from ._distributed import DistContext, dist_context
from ._evaluate import ensemble_run_metrics, evaluate_model, evaluate_run, predict_model
from ._fitted import evaluate_gbm
from ._render import INRRenderer, coordinate_grid
from ._report import format_level, plot_results, results_table, selection_table
from ._run import load_run, open_run_zoo, open_zoo, split_for
from ._sampler import DistributedBatchSampler
from ._tasks import (TASKS, GeneralizationTask, INRClassificationTask, INREditingTask, Task, kendall_tau,
                     make_task, r2_score)
from ._trainer import train

__all__ = [
    "Augment", "parse_augment", "augment_level_bound", "compare", "results_table", "plot_results",
    "DistContext", "dist_context", "INRRenderer", "coordinate_grid", "DistributedBatchSampler", "TASKS", "Task",
    "GeneralizationTask", "INRClassificationTask", "INREditingTask", "make_task", "kendall_tau", "r2_score",
    "TrainConfig", "train", "evaluate_model", "predict_model", "evaluate_run", "ensemble_run_metrics", "load_run",
    "open_zoo", "open_run_zoo", "split_for", "MODEL_NAMES", "GBM_MODELS",
    "model_names", "fitted_models", "model_options", "mix_seed", "task_for", "build_backbone", "saved_model",
    "evaluate_gbm", "EVAL_SEED", "parse_levels", "parse_models", "selection_table",
    "format_level", "tuning_spaces",
]


def __getattr__(name: str) -> Any:
    """``MODEL_NAMES`` (every registered model) and ``GBM_MODELS`` (those fitted once, not SGD-trained), read
    from the registry (:mod:`monomial_gmn.models`) when asked for; :func:`model_names` / :func:`fitted_models`
    are the same as functions."""
    if name == "MODEL_NAMES":
        return model_names()
    if name == "GBM_MODELS":
        return fitted_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
