"""InvariantGBM: gradient-boosted trees on the exactly invariant features (a strong, symmetry-proof baseline)."""

from __future__ import annotations

from typing import Any, Sequence

from ._config import make_probes
from ._probe import ProbeFeatures
from ._readouts import InvariantFeatures
from ._trees import FeatureGBM

__all__ = ["InvariantGBM", "probe_part"]


def probe_part(owner: str, probes: int | ProbeFeatures | None, architectures: Sequence[Any] | None,
               probe_outputs: str, probe_scales: Sequence[float], probe_agreement: float) -> list[tuple[str, Any]]:
    """``[("probes", ProbeFeatures)]`` from a GBM's probe options (a ProbeFeatures or the flat options), or []."""
    if isinstance(probes, ProbeFeatures):
        return [("probes", probes)]
    pf = make_probes(probes or 0, architectures, owner, probe_outputs, probe_scales, probe_agreement)
    return [] if pf is None else [("probes", pf)]


class InvariantGBM(FeatureGBM):
    """scikit-learn ``HistGradientBoosting*`` on :func:`~monomial_gmn.features.invariant_features` (and,
    optionally, probe features).

    The fit/predict surface of :class:`~monomial_gmn.features.FeatureGBM` (``fit(batches, y, val_data, val_y)``,
    ``predict``, ``model(batch)`` → [B, out_dim], ``is_torch_trainable = False``), but its inputs —
    statistics of canonical weights and path norms — are invariant under the whole monomial group (the
    transformation law of :mod:`monomial_gmn.graph._parameter_graph`), so its predictions on rescaled or
    sign-flipped networks are those on the originals (up to float rounding at tree thresholds).

    Args:
        out_dim: regression targets / classification classes.
        task: ``"regression"`` or ``"classification"``.
        num_layers: layer slots of the features (see :mod:`monomial_gmn.features`; default 8).
        path_norm: include the 9 path-norm features (default True).
        seed: ``random_state`` of the boosters.
        probes: append :class:`ProbeFeatures`: a ready ProbeFeatures, or the number of random probes (default 0:
            none; needs ``architectures``).
        architectures: the zoo's architectures (``Architecture`` objects or their JSON dicts) for the probes.
        probe_outputs: ``"summary"``, ``"raw"`` or ``"both"``; probe_scales: input scales; probe_agreement:
            top fraction of the training networks whose majority vote is each probe's reference class (see
            :class:`ProbeFeatures`; fitted by :meth:`fit`).
        **gbm_kwargs: scikit-learn options and ``n_threads`` (see :class:`FeatureGBM`).

    Shapes:
        ``model(batch)``: [B, out_dim].
    """

    def __init__(self, out_dim: int = 1, task: str = "regression", num_layers: int = 8, path_norm: bool = True,
                 seed: int = 0, random_state: int | None = None, probes: int | ProbeFeatures | None = 0,
                 architectures: list | None = None, probe_outputs: str = "summary",
                 probe_scales: Sequence[float] = (1.0,), probe_agreement: float = 0.0, **gbm_kwargs):
        parts = [("invariant", InvariantFeatures(num_layers, path_norm))]
        parts += probe_part("InvariantGBM", probes, architectures, probe_outputs, probe_scales, probe_agreement)
        super().__init__(parts, out_dim=out_dim, task=task, seed=seed, random_state=random_state, **gbm_kwargs)
        self.max_layers, self.path_norm = int(num_layers), bool(path_norm)

    @property
    def probes(self) -> ProbeFeatures | None:
        """The probe features (None without probes)."""
        return self.part("probes")

    def _header(self) -> dict:
        return {**super()._header(), "max_layers": self.max_layers, "path_norm": self.path_norm,
                "probes": 0 if self.probes is None else int(self.probes.num_probes)}
