"""Hyperparameter search spaces: the distributions each registered model is tuned over.

A search space is an ordered ``{name: Param}``. A name is either a run setting (a :class:`TrainConfig` field
such as ``lr``, ``hidden_dim``, ``num_layers``, ``epochs``, ``weight_decay``) or a keyword argument of the
model's constructor (``dropout``, ``max_leaf_nodes``, ...); ``compare`` routes each value to the right place.
The spaces themselves live in the model registry (:mod:`monomial_gmn.models`, ``ModelInfo.search_space``),
so every model's space is documented next to its constructor.

:func:`sample_configs` draws ``n`` configurations from ``numpy.random.default_rng([seed, crc32(key)])``,
every parameter of every trial in the space's order, so the draws depend only on (space, n, seed, key) and
a parameter that does not apply to a trial (``Param.requires`` names a model option that is off) still
consumes its draw: two variants of one model (with and without a readout) get the same values for the
parameters they share.

Overrides (``compare(..., tune_space=...)``, ``monomial-gmn compare --tune-space JSON``) use a JSON grammar:
a list is a :class:`Choice`, ``{"log_uniform": [lo, hi]}`` a :class:`LogUniform`, ``{"uniform": [lo, hi]}``
a :class:`Uniform`, a scalar a one-value choice, and ``null`` removes the parameter; see
:func:`apply_overrides`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np

__all__ = ["Choice", "LogUniform", "Uniform", "Param", "SearchSpace", "sample_configs", "parse_distribution",
           "apply_overrides", "describe_space"]


@dataclass(frozen=True)
class Choice:
    """One of ``values``, uniformly."""

    values: tuple

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Choice needs at least one value")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def describe(self) -> str:
        return "{" + ", ".join(_fmt(v) for v in self.values) + "}"

    def to_json(self) -> Any:
        return list(self.values)


@dataclass(frozen=True)
class LogUniform:
    """exp(U[log low, log high]), rounded to 3 significant digits (readable configurations)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low <= self.high) or not math.isfinite(self.high):
            raise ValueError(f"LogUniform needs 0 < low <= high, got [{self.low}, {self.high}]")

    def sample(self, rng: np.random.Generator) -> float:
        return _round3(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def describe(self) -> str:
        return f"log-uniform [{_fmt(self.low)}, {_fmt(self.high)}]"

    def to_json(self) -> Any:
        return {"log_uniform": [self.low, self.high]}


@dataclass(frozen=True)
class Uniform:
    """U[low, high], rounded to 3 significant digits."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low <= self.high) or not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"Uniform needs finite low <= high, got [{self.low}, {self.high}]")

    def sample(self, rng: np.random.Generator) -> float:
        return _round3(rng.uniform(self.low, self.high))

    def describe(self) -> str:
        return f"uniform [{_fmt(self.low)}, {_fmt(self.high)}]"

    def to_json(self) -> Any:
        return {"uniform": [self.low, self.high]}


Distribution = Union[Choice, LogUniform, Uniform]


@dataclass(frozen=True)
class Param:
    """A tuned parameter: its distribution and, optionally, the model option it applies under.

    Attributes:
        dist: where its values come from.
        requires: a model option (e.g. ``"probes"``) that must be set (truthy) in the model's fixed options for
            the parameter to be used; otherwise the drawn value is dropped (readout options of an optional
            readout).
        doc: one line for the documentation table.
    """

    dist: Distribution
    requires: str | None = None
    doc: str = ""


SearchSpace = Mapping[str, Param]


def _round3(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.3g}")


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)


def _plain(value: Any) -> Any:
    """JSON-plain values (tuples → lists, numpy scalars → Python), so a drawn config equals its JSON record."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def sample_configs(space: SearchSpace, n: int, seed: int = 0, key: str = "",
                   fixed: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``n`` configurations ``{name: value}`` drawn from ``space`` (deterministic in ``(space, n, seed, key)``).

    Args:
        space: ``{name: Param}``; drawn in this order.
        n: number of configurations (>= 1).
        seed: the tuning seed; key: a string mixed into it (``compare`` passes the registered model name, so
            every model has its own, reproducible, draws).
        fixed: the model's fixed options; a ``Param`` whose ``requires`` option is not truthy here is left out.

    Returns:
        [n] dicts holding the applicable parameters only.
    """
    if n < 1:
        raise ValueError(f"the number of configurations must be >= 1, got {n}")
    fixed = dict(fixed or {})
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
    out = []
    for _ in range(n):
        cfg = {}
        for name, p in space.items():
            value = p.dist.sample(rng)
            if p.requires is None or fixed.get(p.requires):
                cfg[name] = _plain(value)
        out.append(cfg)
    return out


def parse_distribution(spec: Any, where: str = "search space") -> Distribution:
    """A JSON value → a distribution: list → Choice, ``{"log_uniform": [lo, hi]}`` → LogUniform,
    ``{"uniform": [lo, hi]}`` → Uniform, scalar → one-value Choice (ValueError naming ``where`` otherwise)."""
    if isinstance(spec, (Choice, LogUniform, Uniform)):
        return spec
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(f"{where}: an empty list of values")
        return Choice(tuple(spec))
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in ("log_uniform", "uniform"):
            raise ValueError(f"{where}: expected {{\"log_uniform\": [lo, hi]}} or {{\"uniform\": [lo, hi]}}, "
                             f"got {spec!r}")
        kind, bounds = next(iter(spec.items()))
        if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
            raise ValueError(f"{where}: {kind} needs [low, high] numbers, got {bounds!r}")
        try:
            return (LogUniform if kind == "log_uniform" else Uniform)(float(bounds[0]), float(bounds[1]))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if isinstance(spec, (str, int, float, bool)):
        return Choice((spec,))
    raise ValueError(f"{where}: cannot read a distribution from {spec!r}")


def apply_overrides(spaces: Mapping[str, SearchSpace], overrides: Mapping[str, Any] | None,
                    models: Sequence[str], other_models: Sequence[str] = (),
                    known_names: Sequence[str] = ()) -> dict[str, dict[str, Param]]:
    """The spaces of ``models`` with ``overrides`` applied.

    ``overrides`` holds, like ``model_kwargs``, entries for every model (``{"epochs": [1, 2]}``: replaces the
    parameter in each model's space that has it; a name that neither a listed model nor ``known_names`` (e.g.
    the parameters of every registered model) has is an error, most likely a typo) and entries
    under a model's name for that model only (``{"monomial": {"hidden_dim": [64, 128], "feature_slots": null}}``:
    replaces, adds, or with ``null`` removes). A replaced parameter keeps its ``requires``. Entries under the
    name of a model in ``other_models`` (known, but not run now) are ignored.

    Raises:
        ValueError: a malformed distribution or a global name no model's space has.
    """
    overrides = dict(overrides or {})
    out = {m: dict(spaces[m]) for m in models}
    per_model = {k: v for k, v in overrides.items() if k in spaces or k in other_models}
    common = {k: v for k, v in overrides.items() if k not in per_model}
    for name, spec in common.items():
        hit = [m for m in models if name in out[m]]
        if not hit and name not in known_names:
            raise ValueError(f"tune_space: no model of {', '.join(models)} tunes {name!r} (put an option to add "
                             f"under a model's name: {{\"MODEL\": {{\"{name}\": ...}}}})")
        for m in hit:
            _set(out[m], name, spec, f"tune_space[{name!r}]")
    for model, entries in per_model.items():
        if model not in out:
            continue
        if not isinstance(entries, dict):
            raise ValueError(f"tune_space[{model!r}] must be an object of parameters, got {entries!r}")
        for name, spec in entries.items():
            _set(out[model], name, spec, f"tune_space[{model!r}][{name!r}]")
    return out


def _set(space: dict[str, Param], name: str, spec: Any, where: str) -> None:
    if spec is None:
        space.pop(name, None)
        return
    old = space.get(name)
    space[name] = Param(parse_distribution(spec, where), old.requires if old else None, old.doc if old else "")


def describe_space(space: SearchSpace) -> dict[str, Any]:
    """A JSON-able description ``{name: {"values"|"log_uniform"|"uniform": ..., "requires": ...}}``."""
    out = {}
    for name, p in space.items():
        d = p.dist.to_json()
        out[name] = {"dist": d, **({"requires": p.requires} if p.requires else {})}
    return out
