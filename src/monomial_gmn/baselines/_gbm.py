"""StatNN-GBM: gradient-boosted trees (scikit-learn) on the StatNN per-layer statistics.

It is not trained by SGD. How a training loop treats it (``model.is_torch_trainable`` is False):

1. call ``model.fit(train_batches, val_batches=None)`` once, where each batch is a ParameterGraph ``Batch``
   carrying the target in ``batch.y`` ([B] or [B, out_dim]; class ids for classification) — a
   :class:`~monomial_gmn.GraphLoader` works; augmentation happens in the loader as for any model;
2. skip optimisers, epochs and ``.backward()``; there are no torch parameters;
3. evaluate exactly like a torch model: ``model(batch)`` returns a float tensor [B, out_dim] (regression:
   predictions; classification: log-probabilities of classes 0 … out_dim − 1).

Boosting stops early on the validation batches when given (scikit-learn's ``validation_fraction`` is then
not used), otherwise it runs ``max_iter`` rounds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ._stats import statnn_feature_names, statnn_features

__all__ = ["StatNNGBM"]


class StatNNGBM:
    """``HistGradientBoostingRegressor`` / ``Classifier`` on per-layer weight and bias statistics.

    Features are :func:`~monomial_gmn.baselines.statnn_features` (mean, variance, quantiles 0/25/50/75/100 %
    of the weights and of the biases of each layer slot, and a presence flag), flattened to [B, 15 K].

    Args:
        out_dim: regression: number of targets (one booster per target column); classification: number of
            classes.
        task: ``"regression"`` or ``"classification"``.
        max_layers: K, layer slots (default: 8).
        seed: ``random_state`` of the boosters (default: 0); ``random_state=`` is accepted as an alias.
        n_threads: OpenMP threads for fitting and predicting (default: 1; ``None``: scikit-learn's default,
            all cores). On small or shared machines one thread is much faster: OpenMP workers that
            oversubscribe busy cores spin (measured here: 40× slower fitting 50 nets on 2 busy cores).
        **gbm_kwargs: passed to the scikit-learn estimator (defaults: ``max_iter=500``,
            ``learning_rate=0.05``, ``max_leaf_nodes=15``, ``min_samples_leaf=10``, ``l2_regularization=1.0``).

    Shapes:
        ``model(batch)``: [B, out_dim] float tensor on the batch's device.
    """

    is_torch_trainable = False

    def __init__(self, out_dim: int = 1, task: str = "regression", max_layers: int = 8, seed: int = 0,
                 random_state: int | None = None, n_threads: int | None = 1, **gbm_kwargs):
        if random_state is not None:
            seed = int(random_state)
        if task not in ("regression", "classification"):
            raise ValueError(f"StatNNGBM: task must be 'regression' or 'classification', not {task!r}")
        if out_dim < 1:
            raise ValueError(f"StatNNGBM: out_dim must be >= 1, got {out_dim}")
        self.out_dim, self.task, self.max_layers, self.seed = out_dim, task, max_layers, seed
        self.n_threads = n_threads
        self.gbm_kwargs = {"max_iter": 500, "learning_rate": 0.05, "max_leaf_nodes": 15,
                           "min_samples_leaf": 10, "l2_regularization": 1.0, **gbm_kwargs}
        self.estimators_: list = []
        self.classes_: np.ndarray | None = None

    # ------------------------------------------------------------------ features
    def features(self, data: Data) -> np.ndarray:
        """[B, 15 K] float64 features of one batch."""
        with torch.no_grad():
            return statnn_features(data, self.max_layers).flatten(1).double().cpu().numpy()

    def feature_names(self) -> list[str]:
        return statnn_feature_names(self.max_layers)

    def _collect(self, data, y=None) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
            return np.asarray(data[0], dtype=np.float64), np.asarray(data[1])
        if isinstance(data, np.ndarray):
            return np.asarray(data, dtype=np.float64), None if y is None else np.asarray(y)
        batches = [data] if isinstance(data, Data) else data
        feats, ys = [], []
        for b in batches:
            feats.append(self.features(b))
            if y is None:
                target = getattr(b, "y", None)
                if target is None:
                    raise ValueError("StatNNGBM.fit: a batch has no 'y' field; pass y=... or batches with y")
                ys.append(target.detach().cpu().numpy())
        if not feats:
            raise ValueError("StatNNGBM.fit: no batches to fit on")
        x = np.concatenate(feats, 0)
        yy = np.concatenate(ys, 0) if y is None else np.asarray(y)
        return x, yy

    def _targets(self, y: np.ndarray, n: int) -> np.ndarray:
        if self.task == "classification":
            return y.reshape(n).astype(np.int64)
        y = y.reshape(n, -1).astype(np.float64)
        if y.shape[1] != self.out_dim:
            raise ValueError(f"StatNNGBM: targets have {y.shape[1]} columns, out_dim is {self.out_dim}")
        return y

    # ------------------------------------------------------------------ fit / predict
    def _threads(self):
        from contextlib import nullcontext

        if self.n_threads is None:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=int(self.n_threads), user_api="openmp")

    def fit(self, data, y=None, val_data=None, val_y=None) -> "StatNNGBM":
        """Fit on batches (with ``.y``), a single batch, or a feature matrix [B, F] with ``y``.

        ``val_data``/``val_y`` (same forms) enable early stopping on that held-out set.
        """
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

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
        if not self.estimators_:
            raise RuntimeError("StatNNGBM.predict: call fit(...) first")
        if isinstance(data, np.ndarray):
            x = np.asarray(data, dtype=np.float64)
        else:
            x = np.concatenate([self.features(b) for b in ([data] if isinstance(data, Data) else data)], 0)
        with self._threads():
            return self._predict_features(x)

    def _predict_features(self, x: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            proba = self.estimators_[0].predict_proba(x)
            out = np.full((x.shape[0], self.out_dim), -np.inf)
            cls = np.asarray(self.classes_, dtype=np.int64)
            if cls.min() < 0 or cls.max() >= self.out_dim:
                raise ValueError(f"StatNNGBM: class ids {cls.tolist()} do not fit out_dim={self.out_dim}")
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
        total = 0
        for est in self.estimators_:
            for round_ in getattr(est, "_predictors", []):
                total += sum(int(p.nodes.shape[0]) for p in round_)
        return total

    def train(self, mode: bool = True) -> "StatNNGBM":
        return self

    def eval(self) -> "StatNNGBM":
        return self

    def to(self, *args, **kwargs) -> "StatNNGBM":
        return self

    def parameters(self):
        return iter(())

    def __repr__(self) -> str:
        fitted = f"{len(self.estimators_)} booster(s)" if self.estimators_ else "unfitted"
        return f"StatNNGBM(task={self.task}, out_dim={self.out_dim}, max_layers={self.max_layers}, {fitted})"
