"""ComposedModel: a backbone plus readout parts, output = backbone(batch) + Σ part(batch).

Generic: it imports nothing beyond torch, so the layering holds (nn reads only graph and group); the readout parts
(e.g. :class:`monomial_gmn.features.InvariantFeatureMLP`, :class:`monomial_gmn.features.ProbeReadout`) are any
modules mapping a batch to [B, out_dim]. The model registry (:func:`monomial_gmn.models.build_model`) builds it
from a :class:`monomial_gmn.models.ModelConfig`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from torch import Tensor, nn
from torch_geometric.data import Data

__all__ = ["ComposedModel"]


class ComposedModel(nn.Module):
    r"""``backbone(batch) + Σ_k parts[k](batch)``: an invariant backbone with readout parts added to its output.

    Transformation law: invariant when the backbone and every part are (e.g. MonomialGMN with the invariant-feature
    and probe readouts is exactly invariant under each network's monomial group). An equivariant backbone (one
    that returns an edited graph, ``backbone.readout == "equivariant"``) is refused: a [B, out_dim] part cannot be
    added to a graph.

    Args:
        backbone: an invariant model, batch → [B, out_dim].
        parts: ``{name: module}``, each batch → [B, out_dim] (at least one).

    Shapes:
        batch of B graphs → [B, out_dim].

    Fitting before training, in this order: :meth:`fit_normalizer` (unsupervised dataset constants of the backbone
    and of every part) and :meth:`fit_reference` (what parts learn from the training targets, e.g. the probes'
    reference classes).
    """

    def __init__(self, backbone: nn.Module, parts: Mapping[str, nn.Module]):
        super().__init__()
        if getattr(backbone, "readout", "invariant") != "invariant":
            raise ValueError(f"ComposedModel: readout parts ({', '.join(parts)}) add to an invariant prediction; "
                             f"{type(backbone).__name__} has readout={backbone.readout!r} (its output is an edited "
                             "graph). Use readout='invariant' or drop the readout parts")
        if not parts:
            raise ValueError("ComposedModel: needs at least one readout part (use the backbone alone otherwise)")
        self.backbone = backbone
        self.parts = nn.ModuleDict(dict(parts))
        self.readout = "invariant"
        self.out_dim = getattr(backbone, "out_dim", None)
        self._register_load_state_dict_pre_hook(_from_feature_head)

    def reset_parameters(self) -> None:
        for m in (self.backbone, *self.parts.values()):
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def fit_normalizer(self, data: Data | Iterable[Data]) -> "ComposedModel":
        """Fit the backbone's and every part's dataset-level normalisation constants on training data (a graph, a
        Batch or an iterable of them). Unsupervised: targets are not read."""
        data = [data] if isinstance(data, Data) else list(data)
        for m in (self.backbone, *self.parts.values()):
            if hasattr(m, "fit_normalizer"):
                m.fit_normalizer(data)
        return self

    @property
    def needs_reference(self) -> bool:
        """True when a part learns from the training targets (call :meth:`fit_reference`)."""
        return any(getattr(m, "needs_reference", False) for m in self.parts.values())

    def fit_reference(self, batches: Data | Iterable[Data], targets: Any) -> "ComposedModel":
        """Fit what the parts learn from the training targets (e.g. the probes' reference classes).

        Args:
            batches: the training networks (a batch or an iterable of batches).
            targets: one number per network, in batch order (higher = better, e.g. test accuracy).
        """
        batches = [batches] if isinstance(batches, Data) else list(batches)
        for m in self.parts.values():
            if getattr(m, "needs_reference", False):
                m.fit_reference(batches, targets)
        return self

    def forward(self, batch: Data, *args: Any, **kwargs: Any) -> Tensor:
        out = self.backbone(batch, *args, **kwargs)
        for part in self.parts.values():
            out = out + part(batch).to(dtype=out.dtype, device=out.device)
        return out

    def extra_repr(self) -> str:
        return f"parts=[{', '.join(self.parts)}]"


def _from_feature_head(state: dict, prefix: str, *args: Any) -> None:
    """Weights saved before readouts were parts (``MonomialGMN(feature_readout=True)``: the feature MLP was the
    model's ``feature_head``) are renamed to this layout: ``feature_head.*`` → ``parts.features.*``, the rest →
    ``backbone.*``. (A head that also read probes was one joint MLP; its weights do not fit the probe part.)"""
    old = prefix + "feature_head."
    if not any(k.startswith(old) for k in state):
        return
    for k in [k for k in state if k.startswith(prefix)]:
        rest = k[len(prefix):]
        new = "parts.features." + rest[len("feature_head."):] if k.startswith(old) else "backbone." + rest
        state[prefix + new] = state.pop(k)
