"""Checks of ``zoo build`` options: a wrong type or range is a ValueError naming the option, before any work.

The chunk builders read options as ``cfg["epochs"][0]``, ``math.log(lo)``, ``rng.choice(...)``; an integer
where a range is expected, a negative learning rate or an unknown activation would otherwise fail inside a
worker with a raw traceback, or build another zoo than asked for.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_build_options"]

_CHOICES = {  # options that pick from a list: the values the builders know
    "activations": ("relu", "tanh", "sigmoid", "gelu", "identity", "leaky_relu"),
    "families": ("gap", "flat"),
    "optimizers": ("sgd", "adam", "rmsprop"),
    "w_inits": ("RandomNormal", "he_normal", "glorot_normal"),
}
_RANGES = {"lr_range": (0.0, None), "l2_range": (0.0, None), "init_std_range": (0.0, None)}   # open lower bound
_UNIT = {"dropout_max": (0.0, 1.0), "momentum": (0.0, 1.0)}                                      # [lo, hi)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _problem(key: str, v: Any, default: Any) -> str | None:
    if key in _CHOICES:
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            return f"a non-empty list of names from {list(_CHOICES[key])}"
        bad = [x for x in v if x not in _CHOICES[key]]
        return f"names from {list(_CHOICES[key])} (unknown: {bad})" if bad else None
    if key in _RANGES:
        ok = isinstance(v, list) and len(v) == 2 and all(_number(x) and x > 0 for x in v) and v[0] <= v[1]
        return None if ok else "a range [low, high] of positive numbers with low <= high"
    if key in _UNIT:
        lo, hi = _UNIT[key]
        return None if _number(v) and lo <= v < hi else f"a number in [{lo:g}, {hi:g})"
    if key == "epochs":
        ok = isinstance(v, list) and len(v) == 2 and all(_integer(x, 1) for x in v) and v[0] <= v[1]
        return None if ok else "a range [low, high] of integers >= 1 with low <= high"
    if key == "checkpoints":
        return None if isinstance(v, list) and all(_integer(x, 0) for x in v) else "a list of integers >= 0"
    if key == "train_fractions":
        ok = isinstance(v, list) and v and all(_number(x) and 0 < x <= 1 for x in v)
        return None if ok else "a non-empty list of numbers in (0, 1]"
    if key == "widths":
        ok = isinstance(v, list) and len(v) >= 2 and all(_integer(x, 1) for x in v) and v[0] == 2 and v[-1] == 1
        return None if ok else "a list of positive layer widths from 2 (pixel coordinates) to 1 (intensity)"
    if key in ("w0", "lr"):
        return None if _number(v) and v > 0 else "a positive number"
    if isinstance(default, int) and not isinstance(default, bool):
        return None if _integer(v, 1) else "a positive integer"
    if isinstance(default, float):
        return None if _number(v) and v > 0 else "a positive number"
    return None


def check_build_options(kind: str, options: dict[str, Any], defaults: dict[str, Any]) -> None:
    """ValueError naming the first option of ``options`` whose value the builder of ``kind`` cannot use."""
    for key, value in options.items():
        problem = _problem(key, value, defaults.get(key))
        if problem:
            raise ValueError(f"{kind}: option {key}={value!r} must be {problem}")
