"""Tasks, training and evaluation of metanetworks on zoos of networks (see :mod:`._trainer` for runs)."""

from ._augment import Augment, augment_level_bound, parse_augment
from ._compare import compare, results_table, plot_results
from ._distributed import DistContext, dist_context
from ._render import INRRenderer, coordinate_grid
from ._sampler import DistributedBatchSampler
from ._tasks import (TASKS, GeneralizationTask, INRClassificationTask, INREditingTask, Task, kendall_tau,
                     make_task, r2_score)
from ._trainer import (GBM_MODELS, MODEL_NAMES, TrainConfig, ensemble_run_metrics, evaluate_model, evaluate_run,
                       load_run, open_run_zoo, open_zoo, predict_model, split_for, train)

__all__ = [
    "Augment", "parse_augment", "augment_level_bound", "compare", "results_table", "plot_results",
    "DistContext", "dist_context", "INRRenderer", "coordinate_grid", "DistributedBatchSampler", "TASKS", "Task",
    "GeneralizationTask", "INRClassificationTask", "INREditingTask", "make_task", "kendall_tau", "r2_score",
    "TrainConfig", "train", "evaluate_model", "predict_model", "evaluate_run", "ensemble_run_metrics", "load_run",
    "open_zoo", "open_run_zoo", "split_for", "MODEL_NAMES", "GBM_MODELS",
]
