"""InvariantGBM: gradient-boosted trees on the exactly invariant features (a strong, symmetry-proof baseline)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from ..baselines import StatNNGBM
from ._invariant import feature_names, invariant_features
from ._probe import make_probes

__all__ = ["InvariantGBM"]


class InvariantGBM(StatNNGBM):
    """scikit-learn ``HistGradientBoosting*`` on :func:`~monomial_gmn.features.invariant_features`.

    The same fit/predict surface as :class:`~monomial_gmn.baselines.StatNNGBM` (``fit(batches, y, val_data,
    val_y)``, ``predict``, ``model(batch)`` → [B, out_dim], ``is_torch_trainable = False``), but its inputs —
    statistics of canonical weights and path norms — are invariant under the whole monomial group (law:
    b_i → d_i b_i, W[i, j] → d_i W[i, j] / d_j, hidden neurons permuted), so its predictions on rescaled or
    sign-flipped networks are those on the originals (up to float rounding at tree thresholds).

    Args:
        out_dim: regression targets / classification classes.
        task: ``"regression"`` or ``"classification"``.
        num_layers: layer slots of the features (see :mod:`monomial_gmn.features`; default 8).
        path_norm: include the 9 path-norm features (default True).
        seed: ``random_state`` of the boosters.
        probes: append :class:`ProbeFeatures` with this many random probes (default 0: none); needs
            ``architectures``.
        architectures: the zoo's architectures (``Architecture`` objects or their JSON dicts) for the probes.
        probe_outputs: ``"summary"``, ``"raw"`` or ``"both"``; probe_scales: input scales; probe_agreement:
            top fraction of the training networks whose majority vote is each probe's reference class (see
            :class:`ProbeFeatures`; fitted by :meth:`fit`).
        **gbm_kwargs: scikit-learn options (defaults as StatNNGBM's).

    Shapes:
        ``model(batch)``: [B, out_dim].
    """

    def __init__(self, out_dim: int = 1, task: str = "regression", num_layers: int = 8, path_norm: bool = True,
                 seed: int = 0, random_state: int | None = None, probes: int = 0,
                 architectures: list | None = None, probe_outputs: str = "summary",
                 probe_scales: Sequence[float] = (1.0,), probe_agreement: float = 0.0, **gbm_kwargs):
        super().__init__(out_dim=out_dim, task=task, max_layers=num_layers, seed=seed, random_state=random_state,
                         **gbm_kwargs)
        self.path_norm = path_norm
        self.probes = make_probes(probes, architectures, "InvariantGBM", probe_outputs, probe_scales,
                                  probe_agreement)

    def fit(self, data, y=None, val_data=None, val_y=None) -> "InvariantGBM":
        """As :meth:`StatNNGBM.fit` (batches with ``y``, a batch, or a feature matrix); with
        ``probe_agreement`` the probes' reference classes are fitted on the training batches first."""
        if self.probes is not None and self.probes.agreement > 0 and not isinstance(data, (np.ndarray, tuple)):
            batches = [data] if isinstance(data, Data) else list(data)
            self.probes.fit_reference(batches, y)
            data = batches
        return super().fit(data, y, val_data, val_y)

    def _header(self) -> dict:
        return {**super()._header(), "path_norm": bool(self.path_norm),
                "probes": 0 if self.probes is None else int(self.probes.num_probes)}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """The probe bank and fitted reference classes (buffers of the probe features), saved with the trees."""
        if self.probes is None:
            return {}
        return {f"probes.{k}": v.detach().cpu().numpy() for k, v in self.probes.state_dict().items()}

    def _load_extra_arrays(self, arrays: dict[str, np.ndarray], where: str) -> None:
        if self.probes is None:
            return super()._load_extra_arrays(arrays, where)
        state = {k[len("probes."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                 if k.startswith("probes.")}
        try:
            self.probes.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{where}: its probe features do not fit this model "
                             f"({next(iter(str(exc).splitlines()), '')})") from None

    def features(self, data: Data) -> np.ndarray:
        """[B, F] float64 invariant features of one batch (computed in float64)."""
        with torch.no_grad():
            g = data.clone()
            g.x, g.edge_attr = data.x.double(), data.edge_attr.double()
            f = invariant_features(g, self.max_layers, self.path_norm)
            if self.probes is not None:
                f = torch.cat([f, self.probes(g)], dim=1)
            return f.cpu().numpy()

    def feature_names(self) -> list[str]:
        names = feature_names(self.max_layers, self.path_norm)
        return names + (self.probes.feature_names() if self.probes is not None else [])

    def __repr__(self) -> str:
        fitted = f"{len(self.estimators_)} booster(s)" if self.estimators_ else "unfitted"
        return f"InvariantGBM(task={self.task}, out_dim={self.out_dim}, num_layers={self.max_layers}, {fitted})"
