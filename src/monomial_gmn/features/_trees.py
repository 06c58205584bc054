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
scikit-learn boosters (the same leaf values summed in the same order).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

__all__ = ["FeatureGBM"]

_TREES_FORMAT = "monomial-gmn-gbm-trees"
_TREES_VERSION = 1
# inverse links of scikit-learn's HistGradientBoosting losses (regression); classifiers use logit / softmax
_REGRESSION_LINKS = {"squared_error": "identity", "absolute_error": "identity", "quantile": "identity",
                     "gamma": "log", "poisson": "log"}
_NODE_FIELDS = (("feature", np.int64), ("threshold", np.float64), ("missing_left", np.uint8),
                ("left", np.int64), ("right", np.int64), ("is_leaf", np.uint8), ("value", np.float64))


def _sklearn_options(task: str) -> set[str]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    est = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    return set(est().get_params()) - {"random_state"}


class FeatureGBM:
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

    # ------------------------------------------------------------------ saving without pickle
    def _export_estimator(self, est: Any) -> dict[str, Any]:
        """One fitted scikit-learn booster → node arrays (all trees concatenated) and its link."""
        k = int(est.n_trees_per_iteration_)
        if self.task == "classification":
            link = "logit" if k == 1 else "softmax"
        else:
            link = _REGRESSION_LINKS.get(str(est.loss))
            if link is None:
                raise ValueError(f"{type(self).__name__}.save: loss {est.loss!r} is not supported")
        trees = [p for round_ in est._predictors for p in round_]
        if any(p.nodes["is_categorical"].any() for p in trees):
            raise ValueError(f"{type(self).__name__}.save: categorical splits are not supported")
        nodes = [p.nodes for p in trees]
        offsets = np.cumsum([0] + [len(nd) for nd in nodes]).astype(np.int64)
        out: dict[str, Any] = {"link": link, "k": k, "n_features": int(est.n_features_in_),
                               "baseline": np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1),
                               "offsets": offsets}
        src = {"feature": "feature_idx", "threshold": "num_threshold", "missing_left": "missing_go_to_left",
               "left": "left", "right": "right", "is_leaf": "is_leaf", "value": "value"}
        for name, dtype in _NODE_FIELDS:
            out[name] = (np.concatenate([np.asarray(nd[src[name]], dtype=dtype) for nd in nodes]) if nodes
                         else np.zeros(0, dtype=dtype))
        return out

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state of the feature extractors (torch buffers: probe banks, reference classes), saved beside
        the trees as ``NAME.KEY``."""
        out = {}
        for name, ext in self.parts:
            if isinstance(ext, nn.Module):
                out.update({f"{name}.{k}": v.detach().cpu().numpy() for k, v in ext.state_dict().items()})
        return out

    def _load_extra_arrays(self, arrays: dict[str, np.ndarray], where: str) -> None:
        left = dict(arrays)
        for name, ext in self.parts:
            if not isinstance(ext, nn.Module) or not ext.state_dict():
                continue
            prefix = name + "."
            state = {k[len(prefix):]: torch.from_numpy(np.array(left.pop(k))) for k in list(left)
                     if k.startswith(prefix)}
            try:
                ext.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"{where}: its {name} features do not fit this model "
                                 f"({next(iter(str(exc).splitlines()), '')})") from None
        if left:
            raise ValueError(f"{where}: holds feature state ({', '.join(sorted(left))}) this "
                             f"{type(self).__name__} does not have; build it with the run's options")

    def _header(self) -> dict[str, Any]:
        return {"format": _TREES_FORMAT, "version": _TREES_VERSION, "model": type(self).__name__,
                "task": self.task, "out_dim": int(self.out_dim),
                "classes": None if self.classes_ is None else [int(c) for c in np.asarray(self.classes_)]}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted trees to ``path`` (a ``.npz`` of plain arrays plus a JSON header; atomic, no pickle)."""
        from .._io import atomic_path

        if not self.estimators_ and self._forest is None:
            raise RuntimeError(f"{type(self).__name__}.save: call fit(...) first")
        forest = [self._export_estimator(e) for e in self.estimators_] if self.estimators_ else self._forest
        header = {**self._header(), "estimators": [{"link": e["link"], "k": e["k"], "n_features": e["n_features"]}
                                                   for e in forest]}
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, e in enumerate(forest):
            for name in ("baseline", "offsets", *(f for f, _ in _NODE_FIELDS)):
                arrays[f"e{i}.{name}"] = e[name]
        for name, arr in self._extra_arrays().items():
            arrays[f"extra.{name}"] = arr
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    def load(self, path: str | os.PathLike) -> "FeatureGBM":
        """Read trees written by :meth:`save` into this model (built with the same options); returns self.

        Raises:
            ValueError: not such a file, or trees of another model / task / output size (names the file).
        """
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
            header = json.loads(arrays.pop("header").tobytes().decode())
        except Exception as exc:  # truncated, not a zip, object arrays (refused), bad JSON
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise ValueError(f"{where}: not a readable tree file ({first})") from None
        if not isinstance(header, dict) or header.get("format") != _TREES_FORMAT:
            raise ValueError(f"{where}: not a {_TREES_FORMAT} file")
        if header.get("version") != _TREES_VERSION:
            raise ValueError(f"{where}: version {header.get('version')!r} is not supported (this library reads "
                             f"{_TREES_VERSION})")
        mine = self._header()
        for key in mine:
            if key not in ("format", "version", "classes") and header.get(key) != mine[key]:
                raise ValueError(f"{where}: trees of {key}={header.get(key)!r}, this model has {mine[key]!r}")
        forest = []
        try:
            for i, meta in enumerate(header["estimators"]):
                e = {"link": str(meta["link"]), "k": int(meta["k"]), "n_features": int(meta["n_features"])}
                for name in ("baseline", "offsets"):
                    e[name] = arrays.pop(f"e{i}.{name}")
                for name, dtype in _NODE_FIELDS:
                    e[name] = arrays.pop(f"e{i}.{name}").astype(dtype, copy=False)
                _check_trees(e, where)
                forest.append(e)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: incomplete tree file (missing {exc})") from None
        if not forest:
            raise ValueError(f"{where}: holds no boosters")
        self._load_extra_arrays({k[len("extra."):]: v for k, v in arrays.items() if k.startswith("extra.")}, where)
        self.estimators_ = []
        self._forest = forest
        self.classes_ = None if header.get("classes") is None else np.asarray(header["classes"], dtype=np.int64)
        return self

    def _predict_forest(self, x: np.ndarray) -> np.ndarray:
        """Predictions of loaded trees: scikit-learn's traversal (``x <= threshold`` goes left, NaN follows the
        missing-value direction) and sum (baseline, then every tree in boosting order)."""
        from scipy.special import expit, softmax

        x = np.asarray(x, dtype=np.float64)
        outs = []
        for e in self._forest or []:
            if x.shape[1] != e["n_features"]:
                raise ValueError(f"{type(self).__name__}: the trees read {e['n_features']} features, got {x.shape[1]}")
            k = e["k"]
            raw = np.zeros((x.shape[0], k), dtype=np.float64)
            raw += e["baseline"].reshape(1, k)
            off = e["offsets"]
            for t in range(len(off) - 1):
                raw[:, t % k] += _tree_values(e, int(off[t]), x)
            if e["link"] == "identity":
                outs.append(raw)
            elif e["link"] == "log":
                outs.append(np.exp(raw))
            elif e["link"] == "logit":
                p1 = expit(raw[:, 0])
                outs.append(np.stack([1.0 - p1, p1], axis=1))
            else:
                outs.append(softmax(raw, axis=1))
        if self.task == "classification":
            proba = outs[0]
            out = np.full((x.shape[0], self.out_dim), -np.inf)
            cls = np.asarray(self.classes_, dtype=np.int64)
            with np.errstate(divide="ignore"):
                out[:, cls] = np.log(proba)
            return out
        return np.concatenate(outs, axis=1)

    def __repr__(self) -> str:
        fitted = f"{len(self.estimators_)} booster(s)" if self.estimators_ else "unfitted"
        parts = ", ".join(n for n, _ in self.parts)
        return f"{type(self).__name__}(task={self.task}, out_dim={self.out_dim}, features=[{parts}], {fitted})"


def _check_trees(e: dict[str, Any], where: str) -> None:
    """Node arrays that can be traversed safely: children inside their tree, leaves where the walk ends."""
    off, n = e["offsets"], len(e["value"])
    if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 1):
        raise ValueError(f"{where}: bad tree offsets")
    if any(len(e[f]) != n for f, _ in _NODE_FIELDS) or e["baseline"].shape != (e["k"],):
        raise ValueError(f"{where}: node arrays of different lengths")
    size = np.repeat(np.diff(off), np.diff(off))
    local = np.arange(n) - np.repeat(off[:-1], np.diff(off))
    inner = e["is_leaf"] == 0
    for side in ("left", "right"):  # children come after their parent (so every walk ends at a leaf)
        c = e[side][inner]
        if np.any(c <= local[inner]) or np.any(c >= size[inner]):
            raise ValueError(f"{where}: a node's child lies outside its tree")
    if np.any(e["feature"][inner] < 0) or np.any(e["feature"][inner] >= e["n_features"]):
        raise ValueError(f"{where}: a split reads a feature out of range")


def _tree_values(e: dict[str, Any], start: int, x: np.ndarray) -> np.ndarray:
    """Leaf value of each row of ``x`` in the tree whose nodes begin at ``start``."""
    node = np.full(x.shape[0], start, dtype=np.int64)
    rows = np.arange(x.shape[0])
    leaf = e["is_leaf"]
    while True:
        active = leaf[node] == 0
        if not active.any():
            return e["value"][node]
        nd, r = node[active], rows[active]
        v = x[r, e["feature"][nd]]
        go_left = np.where(np.isnan(v), e["missing_left"][nd] != 0, v <= e["threshold"][nd])
        node[active] = start + np.where(go_left, e["left"][nd], e["right"][nd])
