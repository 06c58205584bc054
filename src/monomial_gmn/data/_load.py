"""``load_zoo``: one entry point for every supported zoo format (auto-detected)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ZooFormatError
from ._format import is_own_format, read_zoo
from ._siren_dir import is_state_dict_dir, read_siren_dir
from ._small_cnn import check_step, is_small_cnn_zoo, read_small_cnn_zoo
from ._zoo import Zoo

__all__ = ["load_zoo", "detect_format", "filter_zoo"]


def detect_format(path: str | os.PathLike) -> str:
    """``"monomial-gmn-zoo"``, ``"small-cnn-zoo"`` or ``"state-dict-dir"``; ZooFormatError otherwise."""
    path = Path(path)
    if not path.exists():
        raise ZooFormatError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise ZooFormatError(f"{path}: a zoo is a directory (our format, a Small CNN Zoo, or state dicts)")
    if is_own_format(path):
        return "monomial-gmn-zoo"
    if is_small_cnn_zoo(path):
        return "small-cnn-zoo"
    if (path / "build.json").is_file():
        raise ZooFormatError(f"{path}: an unfinished build or a shard (build.json without zoo.json); finish it "
                             f"with 'monomial-gmn zoo build' again (it resumes) or 'monomial-gmn zoo merge'")
    if is_state_dict_dir(path):
        return "state-dict-dir"
    raise ZooFormatError(f"{path}: not a recognised zoo (expected zoo.json; or weights.npy + layout.csv + "
                         f"metrics.csv(.gz); or .pt/.safetensors state dicts)")


def filter_zoo(zoo: Zoo, activation: str | None = None, step: str | int | None = "final") -> Zoo:
    """Keep networks with ``activation`` and the checkpoint ``step`` ("final", an int, or None for all)."""
    keep = np.ones(len(zoo), dtype=bool)
    if activation is not None:
        keep &= zoo.columns["activation"] == activation
        if not keep.any():
            raise ZooFormatError(f"{zoo.meta.get('path', 'zoo')}: no network has activation {activation!r} "
                                 f"(found {sorted(set(zoo.columns['activation'].tolist()))})")
    if step == "final":
        keep &= zoo.final_mask()
    elif step is not None:
        if "step" not in zoo.columns:
            raise ZooFormatError(f"{zoo.meta.get('path', 'zoo')}: has no 'step' column to filter on")
        check_step(zoo.meta.get("path", "zoo"), step, np.asarray(zoo.columns["step"])[keep], activation)
        keep &= zoo.columns["step"] == int(step)
    return zoo if keep.all() else zoo.subset(np.nonzero(keep)[0])


def load_zoo(path: str | os.PathLike, activation: str | None = None, step: str | int | None = "final",
             **options: Any) -> Zoo:
    """Load a zoo from any supported format (auto-detected), filtered by activation and checkpoint.

    Formats: our own directory (``zoo.json``; arrays memory-mapped), the Small CNN Zoo directory
    (``weights.npy`` + ``layout.csv`` + ``metrics.csv(.gz)``; options ``conv_stride``, ``padding``,
    ``nonfinite``, ``input_shape``), a directory of SIREN state dicts (options ``w0``, ``labels``).

    Args:
        activation: keep only networks with this activation (``"relu"``, ``"tanh"``, ``"sine"``, ...).
        step: ``"final"`` keeps the last checkpoint of each network, an int keeps that step, None keeps all.

    Raises:
        ZooFormatError: missing/truncated/malformed files, layout not matching the weights, NaN/inf weights,
            a missing column, or a pickle where arrays are expected (named file and problem).
    """
    fmt = detect_format(path)
    if fmt == "monomial-gmn-zoo":
        zoo = read_zoo(path, **options)
        return filter_zoo(zoo, activation, step)
    if fmt == "small-cnn-zoo":
        return read_small_cnn_zoo(path, activation=activation, step=step, **options)
    zoo = read_siren_dir(path, **options)
    return filter_zoo(zoo, activation, None)
