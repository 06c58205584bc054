"""Learning tasks on zoos of networks: what to predict, the loss, the metrics, model selection.

============================  ============  ==============================  ===================================
task                          readout       target                          metrics (selection first)
============================  ============  ==============================  ===================================
``generalization``            invariant     a CNN's test accuracy ∈ [0, 1]  Kendall τ, R², MSE (sigmoid output)
``inr-classification``        invariant     the digit an INR encodes        accuracy, cross-entropy
``inr-editing``               equivariant   the INR's image, transformed    MSE of the edited INR's rendering
                                            (dilation or contrast)
============================  ============  ==============================  ===================================

A task wraps a backbone (a metanetwork from :func:`monomial_gmn.models.build_model`) into a module whose
output is a tensor (so it works under DistributedDataParallel), gives per-net losses (summed and divided by
the global batch size by the trainer) and computes metrics on whole splits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._render import INRRenderer, coordinate_grid

__all__ = ["Task", "GeneralizationTask", "INRClassificationTask", "INREditingTask", "TASKS", "make_task",
           "kendall_tau", "r2_score"]


def kendall_tau(pred: np.ndarray, target: np.ndarray) -> float:
    """Kendall τ-b (scipy.stats.kendalltau) of [n] predictions against [n] targets.

    NaN when τ is undefined: fewer than two networks, or constant predictions or targets (a model that predicts
    one value for every network has no ranking; reporting 0.0 would look like a measured "no correlation").
    Model selection (:meth:`Task.better`) ranks NaN below every number; tables show it as "n/a".
    """
    from scipy.stats import kendalltau

    if len(pred) < 2:
        return float("nan")
    tau = kendalltau(pred, target).statistic
    return float(tau) if np.isfinite(tau) else float("nan")


def r2_score(pred: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot (0.0 when the target is constant)."""
    ss_tot = float(((target - target.mean()) ** 2).sum())
    if ss_tot == 0.0:
        return 0.0
    return 1.0 - float(((target - pred) ** 2).sum()) / ss_tot


class Task:
    """Base class. Subclasses set ``name``, ``readout``, ``zoo_kind``, ``metric`` and ``higher_is_better``."""

    name: str = ""
    readout: str = "invariant"
    zoo_kind: str = ""
    metric: str = ""
    higher_is_better: bool = True
    supports_gbm: bool = False

    def setup(self, zoo: Any) -> None:
        """Check the zoo fits the task (raise ValueError naming what is missing) and precompute targets."""
        kind = getattr(zoo, "task_kind", None)
        if kind != self.zoo_kind:
            raise ValueError(f"task '{self.name}' needs a {self.zoo_kind} zoo; this zoo is {kind!r}")

    @property
    def out_dim(self) -> int:
        raise NotImplementedError

    def wrap(self, backbone: nn.Module, zoo: Any) -> nn.Module:
        """The trainable module: ``forward(batch) -> Tensor`` [B, ...]."""
        return _Invariant(backbone)

    def targets(self, idx: np.ndarray) -> Tensor:
        raise NotImplementedError

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-net loss [B]."""
        raise NotImplementedError

    def predictions(self, output: Tensor) -> Tensor:
        """Model output → predictions in target space (what metrics compare)."""
        return output

    def metrics(self, pred: Tensor, target: Tensor) -> dict[str, float]:
        raise NotImplementedError

    def better(self, a: float, b: float | None) -> bool:
        """Is metric value ``a`` better than ``b`` (None: nothing yet)? An undefined (NaN) value is worse than
        any number, and a NaN never replaces a NaN."""
        if b is None:
            return True
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.higher_is_better else a < b


class _Invariant(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, batch) -> Tensor:
        out = self.backbone(batch)
        if not torch.is_tensor(out):
            raise TypeError(f"an invariant task needs a model returning a tensor, got {type(out).__name__}")
        return out


class GeneralizationTask(Task):
    """Predict each CNN's test accuracy from its weights (sigmoid output, MSE loss); select by validation τ."""

    name, readout, zoo_kind, metric, higher_is_better, supports_gbm = (
        "generalization", "invariant", "cnn", "tau", True, True)

    def setup(self, zoo: Any) -> None:
        super().setup(zoo)
        if "test_accuracy" not in zoo.columns:
            raise ValueError("task 'generalization' needs the zoo column 'test_accuracy'")
        acc = np.asarray(zoo.columns["test_accuracy"], dtype=np.float64)
        if not np.isfinite(acc).all():
            raise ValueError("zoo column 'test_accuracy' holds NaN or infinite values")
        self._y = torch.as_tensor(acc, dtype=torch.float32)

    @property
    def out_dim(self) -> int:
        return 1

    def targets(self, idx: np.ndarray) -> Tensor:
        return self._y[torch.as_tensor(idx, dtype=torch.long)]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return (torch.sigmoid(output.reshape(-1)) - target.to(output.dtype)) ** 2

    def predictions(self, output: Tensor) -> Tensor:
        return torch.sigmoid(output.reshape(-1))

    def metrics(self, pred: Tensor, target: Tensor) -> dict[str, float]:
        p, t = pred.double().numpy().reshape(-1), target.double().numpy().reshape(-1)
        return {"tau": kendall_tau(p, t), "r2": r2_score(p, t), "mse": float(((p - t) ** 2).mean())}


class INRClassificationTask(Task):
    """Classify SIREN INRs by the label of the image they encode (cross-entropy); select by accuracy."""

    name, readout, zoo_kind, metric, higher_is_better = ("inr-classification", "invariant", "inr", "accuracy",
                                                         True)

    def setup(self, zoo: Any) -> None:
        super().setup(zoo)
        if "label" not in zoo.columns:
            raise ValueError("task 'inr-classification' needs the zoo column 'label'")
        y = np.asarray(zoo.columns["label"])
        where = zoo.meta.get("path", "the zoo") if isinstance(getattr(zoo, "meta", None), dict) else "the zoo"
        if y.size and np.issubdtype(y.dtype, np.integer) and (y < 0).any():
            from ..data import LABEL_SOURCES

            some = "has no labels" if (y < 0).all() else f"has no label for {int((y < 0).sum())} of {y.size} networks"
            raise ValueError(f"task 'inr-classification' needs a class label per network, but {where} {some} "
                             f"(label -1); for a directory of SIREN state dicts give {LABEL_SOURCES}")
        if y.size == 0 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError("zoo column 'label' must hold non-negative integers")
        self._y = torch.as_tensor(y.astype(np.int64))
        self._classes = max(int(y.max()) + 1, 2)

    @property
    def out_dim(self) -> int:
        return self._classes

    def targets(self, idx: np.ndarray) -> Tensor:
        return self._y[torch.as_tensor(idx, dtype=torch.long)]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target, reduction="none")

    def metrics(self, pred: Tensor, target: Tensor) -> dict[str, float]:
        return {"accuracy": float((pred.argmax(1) == target).double().mean()),
                "cross_entropy": float(F.cross_entropy(pred.double(), target))}


class _Editor(nn.Module):
    """Backbone with an equivariant readout returns the edited graph G' (new x / edge_attr, e.g. G + Δ(G));
    the module renders G' on the image grid. Rendering is invariant to the group, so the loss is too."""

    def __init__(self, backbone: nn.Module, renderer: INRRenderer, coords: Tensor):
        super().__init__()
        self.backbone = backbone
        self.renderer = renderer
        self.register_buffer("coords", coords, persistent=False)

    def forward(self, batch) -> Tensor:
        out = self.backbone(batch)
        x, e = getattr(out, "x", None), getattr(out, "edge_attr", None)
        if x is None or e is None:
            raise TypeError("the inr-editing task needs a model with an equivariant readout returning a graph "
                            "batch with x and edge_attr")
        return self.renderer(x.reshape(batch.x.shape), e.reshape(batch.edge_attr.shape),
                             self.coords.to(e.dtype)).squeeze(-1)  # [B, H*W]


class INREditingTask(Task):
    """Edit an INR's weights so it renders its image dilated (3×3 grey dilation) or with contrast ×1.5 around
    its mean. Loss and metric: MSE between the edited INR's rendering and the transformed image."""

    name, readout, zoo_kind, metric, higher_is_better = ("inr-editing", "equivariant", "inr", "mse", False)
    EDITS = ("dilate", "contrast")

    def __init__(self, edit: str = "dilate"):
        if edit not in self.EDITS:
            raise ValueError(f"unknown edit {edit!r}; expected one of {', '.join(self.EDITS)}")
        self.edit = edit

    def setup(self, zoo: Any) -> None:
        super().setup(zoo)
        images = getattr(zoo, "images", None)
        if images is None or np.asarray(images).ndim != 3:
            raise ValueError("task 'inr-editing' needs the zoo's source images ([n, H, W])")
        images = np.asarray(images, dtype=np.float32)
        self._shape = images.shape[1:]
        self._y = torch.as_tensor(self.transform_images(images).reshape(len(images), -1))

    def transform_images(self, images: np.ndarray) -> np.ndarray:
        """The editing target of each image [n, H, W] → [n, H, W]."""
        if self.edit == "dilate":
            from scipy import ndimage

            return ndimage.grey_dilation(images, size=(1, 3, 3)).astype(np.float32)
        mean = images.mean(axis=(1, 2), keepdims=True)
        return (mean + 1.5 * (images - mean)).astype(np.float32)

    @property
    def out_dim(self) -> int:
        return 1

    def wrap(self, backbone: nn.Module, zoo: Any) -> nn.Module:
        return _Editor(backbone, INRRenderer(zoo.module(0)), coordinate_grid(*self._shape))

    def targets(self, idx: np.ndarray) -> Tensor:
        return self._y[torch.as_tensor(idx, dtype=torch.long)]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return ((output - target.to(output.dtype)) ** 2).mean(dim=1)

    def metrics(self, pred: Tensor, target: Tensor) -> dict[str, float]:
        return {"mse": float(((pred.double() - target.double()) ** 2).mean())}


TASKS = {"generalization": GeneralizationTask, "inr-classification": INRClassificationTask,
         "inr-editing": INREditingTask}


def make_task(name: str, **kwargs: Any) -> Task:
    """A task by name (ValueError listing the known names otherwise)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name](**kwargs) if name == "inr-editing" else TASKS[name]()
