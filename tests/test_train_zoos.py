"""Tiny on-disk zoos for the training and CLI tests (random weights, synthetic targets; built in milliseconds).

The targets are a fixed smooth function of the weights plus noise, so that a model can learn something and
two seeds differ; nothing here tests learning quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monomial_gmn.data import Zoo, digits_cnn_architecture, load_zoo, save_zoo, siren_architecture


def make_cnn_zoo(path: Path, n: int = 64, seed: int = 0, channels: int = 4):
    """n small digits-cnn-shaped CNNs, half ReLU and half tanh, with a 'test_accuracy' column."""
    rng = np.random.default_rng(seed)
    acts = np.array(["relu", "tanh"] * (n // 2) + ["relu"] * (n % 2))
    archs, params, rows = {}, {}, np.zeros(n, dtype=np.int64)
    names = np.empty(n, dtype=object)
    acc = np.zeros(n)
    for a in ("relu", "tanh"):
        arch = digits_cnn_architecture(a, channels=channels)
        sel = acts == a
        m = int(sel.sum())
        w = (rng.normal(size=(m, arch.num_params)) * rng.uniform(0.1, 0.6, size=(m, 1))).astype(np.float32)
        archs[arch.name], params[arch.name] = arch, w
        rows[sel] = np.arange(m)
        names[sel] = arch.name
        acc[sel] = 1 / (1 + np.exp(-(np.abs(w).mean(1) * 6 - 2))) + rng.normal(scale=0.02, size=m)
    zoo = Zoo(archs, params, rows, {"arch": names.astype(str), "activation": acts, "test_accuracy": acc},
              task_kind="cnn")
    save_zoo(zoo, path)
    return load_zoo(path)


def make_inr_zoo(path: Path, n: int = 24, seed: int = 0, side: int = 6):
    """n SIRENs 2→8→8→1 with random weights, random source images [n, side, side] and 3 labels."""
    rng = np.random.default_rng(seed)
    arch = siren_architecture((2, 8, 8, 1))
    w = (rng.normal(size=(n, arch.num_params)) * 0.2).astype(np.float32)
    labels = np.arange(n) % 3
    images = rng.uniform(size=(n, side, side)).astype(np.float32)
    zoo = Zoo({arch.name: arch}, {arch.name: w}, np.arange(n),
              {"arch": np.array([arch.name] * n), "activation": np.array(["sine"] * n), "label": labels},
              images=images, task_kind="inr")
    save_zoo(zoo, path)
    return load_zoo(path)
