"""Test τ of every model at its default settings (no tuning) on one or more zoo seeds, with paired bootstraps.

The cheaper sibling of ``protocol.py`` (which tunes every model with the same budget): each model trains with
the shared default run settings (``monomial_gmn._defaults``, chosen on validation in
``experiments/results/model_selection/``), selects its epoch on validation and is tested once, at every
augmentation level. For each activation subset it calls ``monomial_gmn.train.compare`` (finished runs are
reused), then writes the paired bootstrap over test nets beside every comparison (``protocol.claims``).

    python experiments/quality_defaults.py --zoo zoos/digits-cnn-2048-s0 --seeds 3

Writes ``OUT/<act>/`` (compare's results.json, table.md, tau_vs_scale.png, meta.json with the zoo digest, runs)
and ``OUT/claims.md`` / ``OUT/claims.json`` (``claims-<act>.*`` when ``--activations`` names one subset, so the
subsets can run as parallel processes; a final call with both reuses every run and writes ``claims.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", required=True)
    p.add_argument("--models", default="monomial,gmn,np,statnn-gbm")
    p.add_argument("--activations", default="relu,tanh")
    p.add_argument("--levels", default="0,1,2,3,4")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME:MODEL:JSON",
                   help="also run a registered MODEL with fixed options as NAME, e.g. "
                        "'monomial-layers:monomial:{\"design\": \"layers\"}' (the earlier equivariant-layer design)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "quality_defaults"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import torch

    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import compare
    from _common import parse_extra_model
    from protocol import claims, claims_table

    torch.set_num_threads(a.threads)
    variants = {name: (model, kw) for name, model, kw in map(parse_extra_model, a.extra_model)}
    models = [m for m in a.models.split(",") if m] + list(variants)
    levels = [float(x) for x in a.levels.split(",")]
    out = Path(a.out)
    all_claims, md = [], ["# Paired bootstraps over test nets", "",
                          f"Command: `python experiments/quality_defaults.py {' '.join(argv or sys.argv[1:])}`", ""]
    for act in [s for s in a.activations.split(",") if s]:
        d = out / act
        rows = compare(a.zoo, "generalization", models, levels, d, seeds=a.seeds, activation=act, progress=False,
                       variants=variants)
        cl = claims(rows, {0: d}, models, levels, a.seeds, a.bootstrap)
        all_claims += [{"activation": act, **c} for c in cl]
        md.append(claims_table(cl, act))
    acts = [s for s in a.activations.split(",") if s]
    stem = "claims" if acts == ["relu", "tanh"] else "claims-" + "-".join(acts)   # one process per subset may run
    atomic_write_json(out / f"{stem}.json", all_claims)
    atomic_write_text(out / f"{stem}.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
