"""Test τ of every model at its default settings (no tuning) on one or more zoo seeds, with paired bootstraps.

The cheaper sibling of ``protocol.py`` (which tunes every model with the same budget): each model trains with
the shared default run settings (``monomial_gmn._defaults``, chosen on validation in
``experiments/results/model_selection/``), selects its epoch on validation and is tested once, at every
augmentation level. For each activation subset it calls ``monomial_gmn.train.compare`` (finished runs are
reused), then writes the paired bootstrap over test nets beside every comparison (``protocol.claims``).

    python experiments/quality_defaults.py --zoo zoos/digits-cnn-2048-s0 --zoo zoos/digits-cnn-2048-s1 --seeds 3
    python experiments/quality_defaults.py --zoo-seeds 0,1 --seeds 3     # the same, building the zoos if absent

``--zoo-seeds`` builds (or reuses, when the build there finished with the same configuration)
``CACHE/digits-cnn-<nets>-s<seed>`` with ``monomial_gmn.data.build_zoo`` (byte-identical whatever the worker
count), so the table comes from an empty cache with one command.

With one ``--zoo`` it writes ``OUT/<act>/`` (compare's results.json, table.md, tau_vs_scale.png, meta.json with the
zoo digest, runs); with several, zoo i's are in ``OUT/z<i>/<act>/``. Then ``OUT/claims.md`` / ``OUT/claims.json``
(paired bootstraps over the test nets of every zoo, pooled over zoo seeds × training seeds) and ``OUT/table.md``
(mean ± std over the (zoo, training seed) pairs); ``claims-<act>.*`` / ``table-<act>.md`` when ``--activations``
names one subset, so the subsets can run as parallel processes (a final call with both reuses every run).
``--from-saved`` builds the tables from the ``results.json`` and predictions already in those directories
without training (e.g. when the runs themselves were not kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", action="append", default=[], help="a zoo (repeat for several zoo seeds)")
    p.add_argument("--zoo-seeds", default=None, help="build or reuse digits-cnn zoos of these seeds (e.g. 0,1) "
                                                     "in --cache, after any --zoo")
    p.add_argument("--nets", type=int, default=2048, help="nets per built zoo (default 2048)")
    p.add_argument("--cache", default=str(ROOT / "zoos"), help="where --zoo-seeds zoos are built (default zoos/)")
    p.add_argument("--workers", type=int, default=2, help="zoo build worker processes (default 2)")
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
    p.add_argument("--from-saved", action="store_true",
                   help="read each directory's results.json and predictions instead of training")
    a = p.parse_args(argv)
    import torch

    from monomial_gmn.data import zoo_digest
    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import compare, results_table
    from _common import parse_extra_model
    from protocol import claims, claims_table

    torch.set_num_threads(a.threads)
    if a.zoo_seeds:
        from protocol import zoo_path

        a.zoo += [str(zoo_path(Path(a.cache), a.nets, int(z), {}, a.workers)) for z in a.zoo_seeds.split(",") if z]
    if not a.zoo:
        p.error("name at least one --zoo or --zoo-seeds")
    variants = {name: (model, kw) for name, model, kw in map(parse_extra_model, a.extra_model)}
    models = [m for m in a.models.split(",") if m] + list(variants)
    levels = [float(x) for x in a.levels.split(",")]
    out = Path(a.out)
    acts = [s for s in a.activations.split(",") if s]
    digests = [zoo_digest(z) for z in a.zoo]
    cmd = "python experiments/quality_defaults.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    all_claims = []
    md = ["# Paired bootstraps over test nets", "", f"Command: `{cmd}`", ""]
    zoos = f"{len(a.zoo)} zoo seed" + ("s" if len(a.zoo) > 1 else "")
    tables = [f"# Test Kendall τ at the shared defaults: {zoos} × {a.seeds} training seeds", "",
              f"Command: `{cmd}`", "", "Zoos: " + ", ".join(f"`{z}` (digest {d[:12]}…)" for z, d in zip(a.zoo, digests))
              + f". Each cell: mean ± std over the {len(a.zoo) * a.seeds} (zoo, training seed) pairs.", ""]
    for act in acts:
        cmp_dirs, rows = {}, []
        for i, zoo in enumerate(a.zoo):
            d = out / act if len(a.zoo) == 1 else out / f"z{i}" / act
            cmp_dirs[i] = d
            if a.from_saved:
                meta = json.loads((d / "meta.json").read_text())
                if meta.get("zoo_digest") not in (None, digests[i]):
                    raise SystemExit(f"{d}: its results are for another zoo than {zoo} (digest "
                                     f"{meta['zoo_digest'][:12]}, not {digests[i][:12]})")
                got = json.loads((d / "results.json").read_text())
            else:
                got = compare(zoo, "generalization", models, levels, d, seeds=a.seeds, activation=act, progress=False,
                              variants=variants)
            rows += [{**r, "zoo_seed": i} for r in got]
        cl = claims(rows, cmp_dirs, models, levels, a.seeds, a.bootstrap)
        all_claims += [{"activation": act, **c} for c in cl]
        md.append(claims_table(cl, act))
        tables += [results_table(rows, "tau", title=f"generalization, {act} nets"), ""]
    stem = "" if acts == ["relu", "tanh"] else "-" + "-".join(acts)   # one process per subset may run
    atomic_write_json(out / f"claims{stem}.json", all_claims)
    atomic_write_text(out / f"claims{stem}.md", "\n".join(md))
    atomic_write_text(out / f"table{stem}.md", "\n".join(tables) + "\n")
    print("\n".join(tables + md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
