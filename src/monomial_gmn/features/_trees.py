"""Gradient-boosted trees (scikit-learn) on the features of one or more extractors: the generic tree model.

:class:`FeatureGBM` is not trained by SGD. How a training loop treats it (``model.is_torch_trainable`` is False):

1. call ``model.fit(train_batches, val_data=val_batches)`` once, where each batch is a ParameterGraph ``Batch``
   carrying the target in ``batch.y`` ([B] or [B, out_dim]; class ids for classification) — a
   :class:`~monomial_gmn.GraphLoader` works; augmentation happens in the loader as for any model. Extractors that
   learn from the targets (probes measuring agreement) are fitted first, from the same targets;
2. skip optimisers, epochs and ``.backward()``; there are no torch parameters;
3. evaluate exactly like a torch model: ``model(batch)`` returns a float tensor [B, out_dim] (regression:
   predictions; classification: log-probabilities of classes 0 … out_dim − 1).

Boosting stops early on the validation batches when given (scikit-learn's ``validation_fraction`` is then
not used), otherwise it runs ``max_iter`` rounds.

The models built on it: :class:`~monomial_gmn.baselines.StatNNGBM` (trees on StatNN statistics) and
:class:`~monomial_gmn.features.InvariantGBM` (trees on exactly invariant features); either can append probe
features (:class:`~monomial_gmn.features.ProbeFeatures`, the same probe options as the torch models).

A fitted model is saved without pickle: :meth:`FeatureGBM.save` writes the trees' node arrays (split feature,
threshold, missing-value direction, children, leaf values), the boosters' baselines, the extractors' buffers (probe
bank and reference classes) and a JSON header to a ``.npz`` file, and :meth:`FeatureGBM.load` reads them back
(``allow_pickle=False``) into a model built with the same options; its predictions are those of the fitted
scikit-learn boosters (the same leaf values summed in the same order). That code is in :mod:`._trees_file`
(:class:`FeatureGBM` inherits it).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ._trees_file import _TreeFileMixin

__all__ = ["FeatureGBM"]


def _sklearn_options(task: str) -> set[str]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    est = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    return set(est().get_params()) - {"random_state"}


class FeatureGBM(_TreeFileMixin):
    """``HistGradientBoostingRegressor`` / ``Classifier`` on the concatenated features of named extractors.

    Args:
        parts: ``[(name, extractor), ...]``: each extractor maps a batch to [B, F_i] and has ``num_features`` and
            ``feature_names()``; one with ``float64 = True`` reads a float64 copy of the batch; one with
            ``needs_reference`` (probes measuring agreement) is fitted by :meth:`fit_reference`, which
            :meth:`fit` calls with the training targets. Torch buffers of an extractor (probe banks, reference
            classes) are saved with the trees under ``name``.
        out_dim: regression: number of targets (one booster per target column); classification: number of
            classes.
        task: ``"regression"`` or ``"classification"``.
        seed: ``random_state`` of the boosters (default: 0); ``random_state=`` is accepted as an alias.
        n_threads: OpenMP threads for fitting and predicting (default: 1; ``None``: scikit-learn's default,
            all cores). On small or shared machines one thread is much faster: OpenMP workers that
            oversubscribe busy cores spin (measured here: 40× slower fitting 50 nets on 2 busy cores).
        **gbm_kwargs: passed to the scikit-learn estimator (defaults: ``max_iter=500``,
            ``learning_rate=0.05``, ``max_leaf_nodes=15``, ``min_samples_leaf=10``, ``l2_regularization=1.0``).

    Shapes:
        ``model(batch)``: [B, out_dim] float tensor on the batch's device; :meth:`features`: [B, ΣF_i] float64.
    """

    is_torch_trainable = False

    def __init__(self, parts: Sequence[tuple[str, Any]], out_dim: int = 1, task: str = "regression", seed: int = 0,
                 random_state: int | None = None, n_threads: int | None = 1, **gbm_kwargs):
        name = type(self).__name__
        if random_state is not None:
            seed = int(random_state)
        if task not in ("regression", "classification"):
            raise ValueError(f"{name}: task must be 'regression' or 'classification', not {task!r}")
        if out_dim < 1:
            raise ValueError(f"{name}: out_dim must be >= 1, got {out_dim}")
        unknown = sorted(set(gbm_kwargs) - _sklearn_options(task))
        if unknown:  # refused here, not by scikit-learn in the middle of fit
            raise TypeError(f"{name}.__init__() got an unexpected keyword argument '{unknown[0]}'")
        parts = list(parts)
        if not parts or len({n for n, _ in parts}) != len(parts):
            raise ValueError(f"{name}: needs at least one feature extractor, with distinct names")
        self.parts: list[tuple[str, Any]] = parts
        self.out_dim, self.task, self.seed = out_dim, task, seed
        self.n_threads = n_threads
        self.gbm_kwargs = {"max_iter": 500, "learning_rate": 0.05, "max_leaf_nodes": 15,
                           "min_samples_leaf": 10, "l2_regularization": 1.0, **gbm_kwargs}
        self.estimators_: list = []
        self.classes_: np.ndarray | None = None
        self._forest: list[dict[str, Any]] | None = None  # trees read by load() (no scikit-learn objects)

    def part(self, name: str) -> Any:
        """The extractor called ``name`` (None when absent)."""
        return dict(self.parts).get(name)

    # ------------------------------------------------------------------ features
    def features(self, data: Data) -> np.ndarray:
        """[B, F] float64 features of one batch (every extractor's columns, in order)."""
        with torch.no_grad():
            g64 = None
            cols = []
            for _, ext in self.parts:
                src = data
                if getattr(ext, "float64", False):
                    if g64 is None:
                        g64 = data.clone()
                        g64.x, g64.edge_attr = data.x.double(), data.edge_attr.double()
                    src = g64
                cols.append(ext(src).flatten(1).double())
            return torch.cat(cols, 1).cpu().numpy()

    def feature_names(self) -> list[str]:
        return [n for _, ext in self.parts for n in ext.feature_names()]

    @property
    def needs_reference(self) -> bool:
        """True when an extractor learns from the training targets (see :meth:`fit_reference`)."""
        return any(getattr(ext, "needs_reference", False) for _, ext in self.parts)

    def fit_normalizer(self, data: Any) -> "FeatureGBM":
        """Nothing to standardise (trees are invariant to monotone rescaling of a feature); returns self."""
        return self

    def fit_reference(self, batches: Data | Iterable[Data], targets: Any = None) -> "FeatureGBM":
        """Fit the extractors that learn from the training targets (probes' reference classes): ``targets`` [B],
        one per network in batch order (required by such an extractor). :meth:`fit` calls it with its own."""
        batches = [batches] if isinstance(batches, Data) else list(batches)
        for _, ext in self.parts:
            if getattr(ext, "needs_reference", False):
                ext.fit_reference(batches, targets)
        return self

    def _collect(self, data, y=None) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
            return np.asarray(data[0], dtype=np.float64), np.asarray(data[1])
        if isinstance(data, np.ndarray):
            return np.asarray(data, dtype=np.float64), None if y is None else np.asarray(y)
        batches = [data] if isinstance(data, Data) else list(data)
        if not batches:
            raise ValueError(f"{type(self).__name__}.fit: no batches to fit on")
        x = np.concatenate([self.features(b) for b in batches], 0)
        return x, self._batch_targets(batches) if y is None else np.asarray(y)

    def _batch_targets(self, batches: list[Data]) -> np.ndarray:
        """The batches' ``y`` fields, concatenated (what :meth:`fit` reads when no ``y`` is given)."""
        if any(getattr(b, "y", None) is None for b in batches):
            raise ValueError(f"{type(self).__name__}.fit: a batch has no 'y' field; pass y=... or batches with y")
        return np.concatenate([b.y.detach().cpu().numpy() for b in batches], 0)

    def _targets(self, y: np.ndarray, n: int) -> np.ndarray:
        if self.task == "classification":
            return y.reshape(n).astype(np.int64)
        y = y.reshape(n, -1).astype(np.float64)
        if y.shape[1] != self.out_dim:
            raise ValueError(f"{type(self).__name__}: targets have {y.shape[1]} columns, out_dim is {self.out_dim}")
        return y

    # ------------------------------------------------------------------ fit / predict
    def _threads(self):
        from contextlib import nullcontext

        if self.n_threads is None:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=int(self.n_threads), user_api="openmp")

    def fit(self, data, y=None, val_data=None, val_y=None) -> "FeatureGBM":
        """Fit on batches (with ``.y``), a single batch, or a feature matrix [B, F] with ``y``.

        ``val_data``/``val_y`` (same forms) enable early stopping on that held-out set. With batches, the
        extractors that learn from targets are fitted first (:meth:`fit_reference`, from ``y`` or the batches'
        ``y``).
        """
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        if self.needs_reference and not isinstance(data, (np.ndarray, tuple)):
            data = [data] if isinstance(data, Data) else list(data)
            if y is None:  # fit's own targets: the batches' y, passed on explicitly
                y = self._batch_targets(data)
            self.fit_reference(data, y)
        x, yy = self._collect(data, y)
        yy = self._targets(yy, x.shape[0])
        kw = dict(self.gbm_kwargs)
        val = None
        if val_data is not None:
            vx, vy = self._collect(val_data, val_y)
            val = (vx, self._targets(vy, vx.shape[0]))
            kw.setdefault("early_stopping", True)
            kw.setdefault("n_iter_no_change", 30)
        else:
            kw.setdefault("early_stopping", False)
        self.estimators_ = []
        self._forest = None
        with self._threads():
            if self.task == "classification":
                est = HistGradientBoostingClassifier(random_state=self.seed, **kw)
                est.fit(x, yy, X_val=val[0], y_val=val[1]) if val is not None else est.fit(x, yy)
                self.estimators_.append(est)
                self.classes_ = est.classes_
            else:
                for c in range(self.out_dim):
                    est = HistGradientBoostingRegressor(random_state=self.seed + c, **kw)
                    if val is not None:
                        est.fit(x, yy[:, c], X_val=val[0], y_val=val[1][:, c])
                    else:
                        est.fit(x, yy[:, c])
                    self.estimators_.append(est)
        return self

    def predict(self, data) -> np.ndarray:
        """[B, out_dim] predictions (regression) or class log-probabilities (classification)."""
        if not self.estimators_ and self._forest is None:
            raise RuntimeError(f"{type(self).__name__}.predict: call fit(...) or load(path) first")
        if isinstance(data, np.ndarray):
            x = np.asarray(data, dtype=np.float64)
        else:
            x = np.concatenate([self.features(b) for b in ([data] if isinstance(data, Data) else data)], 0)
        with self._threads():
            return self._predict_features(x)

    def _predict_features(self, x: np.ndarray) -> np.ndarray:
        if not self.estimators_:
            return self._predict_forest(x)
        if self.task == "classification":
            proba = self.estimators_[0].predict_proba(x)
            out = np.full((x.shape[0], self.out_dim), -np.inf)
            cls = np.asarray(self.classes_, dtype=np.int64)
            if cls.min() < 0 or cls.max() >= self.out_dim:
                raise ValueError(f"{type(self).__name__}: class ids {cls.tolist()} do not fit out_dim={self.out_dim}")
            with np.errstate(divide="ignore"):
                out[:, cls] = np.log(proba)
            return out
        return np.stack([est.predict(x) for est in self.estimators_], axis=1)

    def __call__(self, data: Data) -> Tensor:
        device = data.x.device if isinstance(data, Data) else torch.device("cpu")
        return torch.as_tensor(self.predict(data), dtype=torch.float32, device=device)

    # ------------------------------------------------------------------ torch-like surface for trainers
    def num_parameters(self) -> int:
        """Total tree nodes over all boosting rounds (0 before fitting) — the closest analogue of a
        parameter count."""
        if not self.estimators_ and self._forest is not None:
            return int(sum(len(e["value"]) for e in self._forest))
        total = 0
        for est in self.estimators_:
            for round_ in getattr(est, "_predictors", []):
                total += sum(int(p.nodes.shape[0]) for p in round_)
        return total

    def train(self, mode: bool = True) -> "FeatureGBM":
        return self

    def eval(self) -> "FeatureGBM":
        return self

    def to(self, *args, **kwargs) -> "FeatureGBM":
        return self

    def parameters(self):
        return iter(())

    def __repr__(self) -> str:
        fitted = f"{len(self.estimators_)} booster(s)" if self.estimators_ else "unfitted"
        parts = ", ".join(n for n, _ in self.parts)
        return f"{type(self).__name__}(task={self.task}, out_dim={self.out_dim}, features=[{parts}], {fitted})"
