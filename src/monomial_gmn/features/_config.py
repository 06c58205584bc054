"""Frozen, JSON-serialisable configurations of the readout parts, and the flat keyword options they come from.

A model's readout parts are described by one :class:`ReadoutsConfig`: an optional :class:`FeatureReadoutConfig`
(the invariant-feature readout) and an optional :class:`ProbeConfig` (the probe readout / probe features). Users
pass them as flat keyword options (``feature_readout=True, feature_slots=4, probes=128, probe_outputs=...,
probe_scales=..., probe_agreement=..., architectures=...``); :meth:`ReadoutsConfig.from_options` reads them and
:meth:`ReadoutsConfig.to_options` writes them back. ``to_dict()`` / ``from_dict()`` round-trip through JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from ._probe import _OUTPUT_MODES, ProbeFeatures
from ._readouts import InvariantFeatureMLP, ProbeReadout

#: The largest probe bank a config accepts (each probe is one input per architecture, run in float64).
MAX_PROBES = 65536

__all__ = ["FeatureReadoutConfig", "ProbeConfig", "ReadoutsConfig", "READOUT_OPTIONS", "make_probes"]

#: the flat keyword options that describe readout parts (all models that accept parts take them)
READOUT_OPTIONS = ("feature_readout", "feature_slots", "probes", "probe_outputs", "probe_scales", "probe_agreement",
                   "architectures")
_PROBE_DEFAULTS = {"probe_outputs": "summary", "probe_scales": (1.0,), "probe_agreement": 0.0}


def _plain_architectures(archs: Iterable[Any] | None) -> tuple[dict, ...] | None:
    """Architecture objects or their JSON dicts → a tuple of deep-copied JSON dicts (None stays None)."""
    if archs is None:
        return None
    out = []
    for a in archs:
        d = a.to_json() if hasattr(a, "to_json") else a
        if not isinstance(d, Mapping):
            raise ValueError(f"architectures: expected Architecture objects or their JSON dicts, got "
                             f"{type(a).__name__}")
        out.append(json.loads(json.dumps(d)))
    return tuple(out)


@dataclass(frozen=True)
class FeatureReadoutConfig:
    """The invariant-feature readout (:class:`~monomial_gmn.features.InvariantFeatureMLP`).

    Attributes:
        slots: layer slots of the invariant features (default 8).
    """

    slots: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.slots, bool) or int(self.slots) != self.slots or self.slots < 1:
            raise ValueError(f"feature_slots must be an integer >= 1, got {self.slots!r}")
        object.__setattr__(self, "slots", int(self.slots))

    def to_dict(self) -> dict[str, Any]:
        return {"slots": self.slots}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureReadoutConfig":
        return cls(**dict(d))

    def build(self, out_dim: int, hidden_dim: int = 64, dropout: float = 0.0) -> InvariantFeatureMLP:
        """The readout part: [B, out_dim]."""
        return InvariantFeatureMLP(out_dim, num_layers=self.slots, hidden_dim=hidden_dim, dropout=dropout)


@dataclass(frozen=True)
class ProbeConfig:
    """Probe features (:class:`~monomial_gmn.features.ProbeFeatures`): the networks' outputs on random probes.

    Attributes:
        count: probes per input shape (>= 2).
        outputs: ``"summary"`` (default), ``"raw"`` or ``"both"``.
        scales: input scales the probe bank is run at (default ``(1.0,)``).
        agreement: top fraction of training networks whose majority vote is each probe's reference class (0: off;
            fitted by ``fit_reference`` from the training targets).
        architectures: the zoo's architectures as JSON dicts (the probe forward pass needs them); None until the
            trainer (or the user) fills them in with :meth:`with_architectures`.
        seed: seed of the probe bank (default 0).
    """

    count: int
    outputs: str = "summary"
    scales: tuple[float, ...] = (1.0,)
    agreement: float = 0.0
    architectures: tuple[dict, ...] | None = field(default=None, compare=True)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, (int, float)) or int(self.count) != self.count \
                or not 2 <= self.count <= MAX_PROBES:
            raise ValueError(f"probes must be an integer in [2, {MAX_PROBES}] (the number of probes), got "
                             f"{self.count!r}")
        if self.outputs not in _OUTPUT_MODES:
            raise ValueError(f"probe_outputs must be one of {_OUTPUT_MODES}, got {self.outputs!r}")
        scales = tuple(float(v) for v in (self.scales if isinstance(self.scales, (list, tuple)) else [self.scales]))
        if not scales or not all(math.isfinite(v) and v > 0 for v in scales) or len(set(scales)) != len(scales):
            raise ValueError(f"probe_scales must be distinct positive numbers, got {list(scales)}")
        agreement = float(self.agreement)
        if not (math.isfinite(agreement) and 0.0 <= agreement <= 1.0):
            raise ValueError(f"probe_agreement must be a fraction in [0, 1], got {self.agreement}")
        object.__setattr__(self, "count", int(self.count))
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "agreement", agreement)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "architectures", _plain_architectures(self.architectures))

    def __hash__(self) -> int:  # the architecture dicts are not hashable; their JSON is
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def with_architectures(self, architectures: Iterable[Any]) -> "ProbeConfig":
        """A copy that runs on ``architectures`` (Architecture objects or JSON dicts, e.g. ``zoo.archs.values()``)."""
        return replace(self, architectures=_plain_architectures(architectures))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "outputs": self.outputs, "scales": list(self.scales),
                "agreement": self.agreement,
                "architectures": None if self.architectures is None else [dict(a) for a in self.architectures],
                "seed": self.seed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProbeConfig":
        d = dict(d)
        if "scales" in d:
            d["scales"] = tuple(d["scales"])
        return cls(**d)

    def build(self, owner: str = "model") -> ProbeFeatures:
        """The probe feature extractor [B, F]; ``owner`` names the model in errors."""
        if not self.architectures:
            raise ValueError(f"{owner}: probes={self.count} needs the zoo's architectures (architectures=[...]; the "
                             "trainer passes zoo.archs)")
        return ProbeFeatures(self.architectures, num_probes=self.count, seed=self.seed, outputs=self.outputs,
                             scales=self.scales, agreement=self.agreement)


@dataclass(frozen=True)
class ReadoutsConfig:
    """The readout parts of a model: ``features`` (invariant-feature readout) and ``probes`` (probe readout, or
    probe features for the boosted-tree models); each None when off."""

    features: FeatureReadoutConfig | None = None
    probes: ProbeConfig | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """The names of the parts that are on, e.g. ``("features", "probes")``."""
        return tuple(n for n in ("features", "probes") if getattr(self, n) is not None)

    def __bool__(self) -> bool:
        return bool(self.parts)

    @property
    def needs_architectures(self) -> bool:
        """True when the probe part still waits for the zoo's architectures."""
        return self.probes is not None and not self.probes.architectures

    def with_architectures(self, architectures: Iterable[Any]) -> "ReadoutsConfig":
        """A copy whose probe part (if any) runs on ``architectures``; unchanged without probes."""
        if self.probes is None:
            return self
        return replace(self, probes=self.probes.with_architectures(architectures))

    def to_dict(self) -> dict[str, Any]:
        return {"features": None if self.features is None else self.features.to_dict(),
                "probes": None if self.probes is None else self.probes.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "ReadoutsConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - {"features", "probes"})
        if unknown:
            raise ValueError(f"readouts: unknown part(s) {unknown}; the parts are 'features' and 'probes'")
        f, p = d.get("features"), d.get("probes")
        return cls(None if f is None else FeatureReadoutConfig.from_dict(f),
                   None if p is None else ProbeConfig.from_dict(p))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], owner: str = "model") -> tuple["ReadoutsConfig", dict]:
        """Read the flat readout options (:data:`READOUT_OPTIONS`) out of ``options``.

        Returns:
            (the readouts config, the remaining options).

        Raises:
            ValueError: a readout option without its part (``feature_slots`` without ``feature_readout``,
                ``probe_agreement`` etc. without ``probes``) or a bad value; names ``owner``.
        """
        rest = {k: v for k, v in options.items() if k not in READOUT_OPTIONS}
        if not isinstance(options.get("feature_readout", False), bool):
            raise ValueError(f"{owner}: feature_readout must be true or false, got {options['feature_readout']!r}")
        features = None
        if options.get("feature_readout"):
            features = FeatureReadoutConfig(options.get("feature_slots", 8))
        elif "feature_slots" in options:
            raise ValueError(f"{owner}: feature_slots={options['feature_slots']} is an option of the feature readout; "
                             "pass feature_readout=True too")
        probes = None
        if options.get("probes"):
            try:
                probes = ProbeConfig(options["probes"], outputs=options.get("probe_outputs", "summary"),
                                     scales=options.get("probe_scales", (1.0,)),
                                     agreement=options.get("probe_agreement", 0.0),
                                     architectures=options.get("architectures"))
            except ValueError as exc:
                raise ValueError(f"{owner}: {exc}") from None
        else:
            for key, default in _PROBE_DEFAULTS.items():
                value = options.get(key, default)
                same = tuple(value) == default if key == "probe_scales" and isinstance(value, (list, tuple)) \
                    else value == default
                if not same:
                    raise ValueError(f"{owner}: {key}={value} needs probes (probes=128, say)")
        return cls(features, probes), rest

    def to_options(self) -> dict[str, Any]:
        """The flat keyword options that :meth:`from_options` reads back to this config (JSON-plain)."""
        out: dict[str, Any] = {}
        if self.features is not None:
            out.update(feature_readout=True, feature_slots=self.features.slots)
        if self.probes is not None:
            p = self.probes
            out.update(probes=p.count, probe_outputs=p.outputs, probe_scales=list(p.scales),
                       probe_agreement=p.agreement)
            if p.architectures is not None:
                out["architectures"] = [dict(a) for a in p.architectures]
        return out

    def build_parts(self, out_dim: int, hidden_dim: int = 64, dropout: float = 0.0,
                    owner: str = "model") -> dict[str, Any]:
        """The torch readout parts ``{name: module}`` ([B, out_dim] each) of this config."""
        parts: dict[str, Any] = {}
        if self.features is not None:
            parts["features"] = self.features.build(out_dim, hidden_dim=hidden_dim, dropout=dropout)
        if self.probes is not None:
            parts["probes"] = ProbeReadout(self.probes.build(owner), out_dim, hidden_dim=hidden_dim, dropout=dropout)
        return parts


def make_probes(num_probes: int, architectures: Iterable[Any] | None, owner: str, outputs: str = "summary",
                scales: Sequence[float] = (1.0,), agreement: float = 0.0) -> ProbeFeatures | None:
    """A :class:`ProbeFeatures` for a model option ``probes=num_probes`` (None when 0); names ``owner`` in errors."""
    cfg, _ = ReadoutsConfig.from_options({"probes": num_probes, "architectures": architectures,
                                          "probe_outputs": outputs, "probe_scales": scales,
                                          "probe_agreement": agreement}, owner)
    return None if cfg.probes is None else cfg.probes.build(owner)
