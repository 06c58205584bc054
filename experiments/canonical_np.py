"""Validation-only check of another exactly invariant design: NFN-NP read on each network's canonical form.

MonomialGMN's default design is canonical form → GMN backbone. NFN-NP is the strongest baseline on unscaled
nets, so this asks whether canonical form → NFN-NP learns better. The model is registered for this process only
(``canonical-np``, NFN-NP's search space) and trained like any registered model; test is never computed.

    python experiments/canonical_np.py --zoo zoos/digits-cnn-2048-s0 --seeds 2 --out /tmp/canonical_np

Writes ``OUT/results.json`` and ``OUT/table.md`` (``model_selection.py``'s format).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))


class CanonicalNP(nn.Module):
    """NFN-NP on :func:`monomial_gmn.group.canonical_form` of every network: exactly invariant (batch → [B, out])."""

    def __init__(self, out_dim: int, readout: str = "invariant", hidden_dim: int = 64, num_layers: int = 3, **kw):
        super().__init__()
        from monomial_gmn.baselines import NFNNP

        if readout != "invariant":
            raise ValueError("CanonicalNP: invariant readout only")
        self.inner = NFNNP(out_dim=out_dim, readout=readout, hidden_dim=hidden_dim, num_layers=num_layers, **kw)
        self.readout, self.out_dim = readout, out_dim

    @staticmethod
    def _canonical(batch):
        from monomial_gmn.group import canonical_form

        with torch.no_grad():
            return canonical_form(batch).graph

    def fit_normalizer(self, data) -> "CanonicalNP":
        data = [data] if hasattr(data, "x") else list(data)
        self.inner.fit_normalizer([self._canonical(b) for b in data])
        return self

    def forward(self, batch):
        return self.inner(self._canonical(batch))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", required=True)
    p.add_argument("--activations", default="relu,tanh")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--runs", default=None, help="run directories (default OUT/runs)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    import monomial_gmn as mg
    from monomial_gmn.models import register_model, search_space
    from model_selection import run, write

    register_model("canonical-np", lambda out_dim, readout, hidden_dim, num_layers, **kw:
                   CanonicalNP(out_dim, readout, hidden_dim, num_layers, **kw), ("invariant",),
                   "NFN-NP on canonical forms (experiment)", search_space=search_space("np"), overwrite=True)
    depth = max(len(arch.spec.layers) for arch in mg.load_zoo(a.zoo).archs.values())
    configs = {"canonical-np-h64-e30": {"model": "canonical-np", "model_kwargs": {"depth": depth}}}
    out = Path(a.out)
    rows = run(a.zoo, configs, [s for s in a.activations.split(",") if s], a.seeds, Path(a.runs or out / "runs"))
    write(out, a.zoo, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
