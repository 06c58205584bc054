"""Saving :class:`~monomial_gmn.features.FeatureGBM` without pickle, and predicting with the trees read back.

:meth:`FeatureGBM.save` writes the trees' node arrays (split feature, threshold, missing-value direction, children,
leaf values), the boosters' baselines, the extractors' buffers (probe bank and reference classes) and a JSON header to
a ``.npz`` file, and :meth:`FeatureGBM.load` reads them back (``allow_pickle=False``, every array checked by
:func:`_check_trees`) into a model built with the same options; :meth:`FeatureGBM._predict_forest` then walks them
(:func:`_tree_values`) as scikit-learn's boosters do. The methods live on :class:`_TreeFileMixin`, a base of
:class:`FeatureGBM` that reads the model's ``parts``, ``task``, ``out_dim``, ``classes_``, ``estimators_`` and
``_forest``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ._trees import FeatureGBM

_TREES_FORMAT = "monomial-gmn-gbm-trees"
_TREES_VERSION = 1
# inverse links of scikit-learn's HistGradientBoosting losses (regression); classifiers use logit / softmax
_REGRESSION_LINKS = {"squared_error": "identity", "absolute_error": "identity", "quantile": "identity",
                     "gamma": "log", "poisson": "log"}
_NODE_FIELDS = (("feature", np.int64), ("threshold", np.float64), ("missing_left", np.uint8),
                ("left", np.int64), ("right", np.int64), ("is_leaf", np.uint8), ("value", np.float64))


class _TreeFileMixin:
    """The no-pickle ``save`` / ``load`` of :class:`FeatureGBM` and the prediction of loaded trees."""

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
