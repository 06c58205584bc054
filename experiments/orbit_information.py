"""How much of the gap between the invariant model and GMN on unscaled nets is information invariance removes?

A diagnostic, not a model: ``monomial+orbit`` is MonomialGMN's canonical design whose backbone is *also* given
each hidden neuron's log canonicalising factor log f_i (the position of the network inside its scale orbit; the
raw network is f⁻¹ · canonical form). It therefore sees exactly what GMN sees (the raw weights, in another
coordinate system) and is **not** scale-invariant. If it reaches GMN's score while the invariant model does
not, the invariant model's deficit on unscaled nets is the orbit position — information no scale-invariant
model can use — and not a failure to learn.

Also prints, per zoo, Kendall τ between a network's mean |log f_i| over hidden neurons (how far training left
it from the balanced point) and its test accuracy.

    python experiments/orbit_information.py --zoo zoos/digits-cnn-2048-s0 --zoo zoos/digits-cnn-2048-s1 \
        --seeds 3 --extra-model 'monomial-e64:monomial:{"edge_dim": 64}' \
        --extra-model 'monomial+orbit-e64:monomial+orbit:{"edge_dim": 64}' --out experiments/results/orbit_information

Writes ``OUT/results.json`` and ``OUT/table.md``: validation and test Kendall τ of every run, beside the test τ
of the shared-default ``monomial``, ``gmn`` and ``np`` runs of ``experiments/quality_defaults.py`` (same zoos,
splits and seeds; read from its saved predictions). Test is read here because nothing is selected by this
script: it is a diagnostic of designs already chosen, and every run uses the shared defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


class OrbitAwareMonomial(nn.Module):
    """Canonical form + per-node log canonicalising factor → the permutation-equivariant backbone (batch → [B, out]).

    Not scale-invariant (deliberately; see the module docstring)."""

    def __init__(self, out_dim: int, readout: str = "invariant", hidden_dim: int = 64, num_layers: int = 3, **kw):
        super().__init__()
        from monomial_gmn.nn import MonomialGMN, PermutationGMN

        if readout != "invariant":
            raise ValueError("OrbitAwareMonomial: invariant readout only")
        ref = MonomialGMN(out_dim, hidden_dim=hidden_dim, num_layers=num_layers, **kw)   # the same widths
        self.inner = PermutationGMN(out_dim, hidden_dim=hidden_dim, num_layers=num_layers, edge_dim=ref.edge_dim,
                                    residual=False, node_features=1)
        self.readout, self.out_dim = readout, out_dim

    def forward(self, batch):
        from monomial_gmn.group import canonical_form

        with torch.no_grad():
            cf = canonical_form(batch)
            rep = copy.copy(cf.graph)
            rep.node_extra = cf.factor.log().to(batch.x.dtype).unsqueeze(-1)
        return self.inner(rep)


def mean_log_factor(zoo, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per network of the subset: mean |log f_i| over hidden neurons, and its test accuracy."""
    import monomial_gmn as mg
    from monomial_gmn.group import canonical_form

    sub = mg.data.filter_zoo(zoo, activation=activation)
    out = []
    for s in range(0, len(sub), 256):
        b = sub.batch(np.arange(s, min(s + 256, len(sub))))
        cf = canonical_form(b)
        hid = b.sym != mg.Symmetry.FIXED
        lf, gid = cf.factor.log().abs(), b.batch
        tot = torch.zeros(int(gid.max()) + 1, dtype=torch.float64).index_add_(0, gid[hid], lf[hid])
        cnt = torch.zeros_like(tot).index_add_(0, gid[hid], torch.ones_like(lf[hid]))
        out.append((tot / cnt).numpy())
    return np.concatenate(out), sub.columns["test_accuracy"].astype(float)


def reference_rows(ref: Path, zi: int, activation: str, models: list[str], seeds: int) -> list[dict]:
    """Test τ at level 0 of the shared-default runs of ``experiments/quality_defaults.py`` (same zoo, split, seeds)."""
    from scipy.stats import kendalltau

    rows = []
    for m in models:
        for seed in range(seeds):
            f = ref / f"z{zi}" / activation / "predictions" / f"{m}-s{seed}.json"
            if not f.exists():
                continue
            j = json.loads(f.read_text())
            tau = kendalltau(np.ravel(j["levels"]["0"]), np.ravel(j["targets"]))[0]
            rows.append({"zoo": zi, "model": m, "seed": seed, "val_tau": None, "test_tau": float(tau),
                         "source": str(f)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", action="append", required=True)
    p.add_argument("--activation", default="relu")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME:MODEL:JSON",
                   help="also train this variant (e.g. 'monomial-e64:monomial:{\"edge_dim\": 64}')")
    p.add_argument("--reference", default=str(ROOT / "experiments" / "results" / "quality_defaults"),
                   help="quality_defaults output whose z<i>/<activation>/predictions give the reference rows")
    p.add_argument("--reference-models", default="monomial,gmn,np")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from scipy.stats import kendalltau

    import monomial_gmn as mg
    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.models import register_model, search_space
    from monomial_gmn.train import TrainConfig, train
    from _common import parse_extra_model

    register_model("monomial+orbit", lambda out_dim, readout, hidden_dim, num_layers, **kw:
                   OrbitAwareMonomial(out_dim, readout, hidden_dim, num_layers, **kw), ("invariant",),
                   "canonical form + log orbit factor (diagnostic, not invariant)",
                   search_space=search_space("monomial"), overwrite=True)
    variants = [("monomial+orbit", "monomial+orbit", {})] + [parse_extra_model(s) for s in a.extra_model]
    out = Path(a.out)
    cmd = "python experiments/orbit_information.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    rows, zoos = [], []
    for zi, zoo_path in enumerate(a.zoo):
        zoo = mg.load_zoo(zoo_path)
        imb, acc = mean_log_factor(zoo, a.activation)
        zoos.append({"zoo": zoo_path, "digest": mg.data.zoo_digest(zoo_path), "nets": int(imb.size),
                     "tau_mean_abs_log_factor_vs_test_accuracy": float(kendalltau(imb, acc)[0])})
        print(json.dumps(zoos[-1]), flush=True)
        rows += reference_rows(Path(a.reference), zi, a.activation, a.reference_models.split(","), a.seeds)
        for name, model, kw in variants:
            for seed in range(a.seeds):
                run = out / "runs" / f"z{zi}" / f"{name}-s{seed}"
                tc = TrainConfig(zoo=zoo_path, task="generalization", model=model, out=str(run),
                                 activation=a.activation, seed=seed, model_kwargs=kw)
                train(tc, resume=True, progress=False, evaluate_test=True)
                met = json.loads((run / "metrics.json").read_text())
                rows.append({"zoo": zi, "model": name, "seed": seed, "val_tau": met["val"]["tau"],
                             "test_tau": met["test"]["tau"]})
                print(json.dumps(rows[-1]), flush=True)
    atomic_write_json(out / "results.json", {"command": cmd, "zoos": zoos, "rows": rows})
    atomic_write_text(out / "table.md", table(rows, zoos, cmd))
    print(table(rows, zoos, cmd))
    return 0


def table(rows: list[dict], zoos: list[dict], cmd: str) -> str:
    """Per model: test τ per zoo and pooled (mean ± std over zoo × seed), and the paired difference to
    ``monomial`` (same zoo and seed) when both are present."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["zoo"], r["seed"]): r["test_tau"] for r in rows}
    val = {(r["model"], r["zoo"], r["seed"]): r["val_tau"] for r in rows if r["val_tau"] is not None}
    lines = ["# Orbit information on unscaled nets (diagnostic)", "", f"Command: `{cmd}`", ""]
    for zi, z in enumerate(zoos):
        lines.append(f"- zoo {zi}: `{z['zoo']}` (digest `{z['digest']}`), {z['nets']} nets; Kendall τ between a "
                     f"net's mean |log f_i| (distance of its raw weights from the balanced point) and its test "
                     f"accuracy: **{z['tau_mean_abs_log_factor_vs_test_accuracy']:.3f}**")
    heads = " | ".join(f"zoo {zi} test τ" for zi in range(len(zoos)))
    lines += ["", "Test τ: mean ± std over training seeds (pooled: over zoo × seed). Reference rows (`monomial`, `gmn`, "
              "`np`) are the shared-default runs of `experiments/quality_defaults.py` on the same zoos, splits and "
              "seeds, read from its saved test predictions (their validation τ is not re-read here).", "",
              f"| model | {heads} | pooled test τ | Δ test vs monomial (paired, mean ± std) | pooled val τ |",
              "|---|" + "---|" * (len(zoos) + 3)]
    for n in names:
        cells, pooled, diffs = [], [], []
        for zi in range(len(zoos)):
            v = [by[(n, zi, s)] for s in range(64) if (n, zi, s) in by]
            pooled += v
            cells.append(f"{np.mean(v):.3f} ± {np.std(v):.3f}" if v else "—")
            diffs += [by[(n, zi, s)] - by[("monomial", zi, s)] for s in range(64)
                      if (n, zi, s) in by and ("monomial", zi, s) in by]
        d = f"{np.mean(diffs):+.3f} ± {np.std(diffs):.3f} (n={len(diffs)})" if diffs and n != "monomial" else "—"
        vv = [v for (m, _, _), v in val.items() if m == n]
        vcell = f"{np.mean(vv):.3f} ± {np.std(vv):.3f}" if vv else "—"
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {np.mean(pooled):.3f} ± {np.std(pooled):.3f} | {d} | {vcell} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
