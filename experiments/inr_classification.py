"""Paper table 2 on our zoo: INR classification on digits-siren (SIREN 2→32→32→1, ω0 = 30, one per digit image).

    python experiments/inr_classification.py                       # the committed results
    python experiments/inr_classification.py --nets 256 --seeds 1 --epochs 2 --out /tmp/inr   # a quick check

Every model is trained with seeds 0..K-1 through ``monomial_gmn.train.compare`` (the code behind
``monomial-gmn compare --task inr-classification``) and evaluated on the test INRs, untransformed (level 0)
and with random hidden-neuron permutations and signs (level 1: sin neurons admit d = ±1 only, so every level
k >= 1 is the same sign-flip group). ``invariant-gbm`` (boosted trees on exactly invariant features,
:class:`monomial_gmn.features.InvariantGBM`) is fitted here on the same splits and the same transformed test
nets. Writes ``results.json``, ``table.md``, ``meta.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, ensure_zoo, write_meta  # noqa: E402


def invariant_gbm_rows(zoo, levels, seeds, eval_seed, batch_size=256) -> list[dict]:
    from monomial_gmn.features import InvariantGBM
    from monomial_gmn.train import make_task, parse_augment
    from monomial_gmn.train._trainer import _mix

    task = make_task("inr-classification")
    task.setup(zoo)
    sp = zoo.split(0)
    tr, va, te = (np.asarray(sp[k], dtype=np.int64) for k in ("train", "val", "test"))
    depth = max(len(a.spec.layers) for a in zoo.archs.values())
    rows = []
    for seed in range(seeds):
        model = InvariantGBM(out_dim=task.out_dim, task="classification", num_layers=depth, seed=seed)
        model.fit(zoo.batch(tr), task.targets(tr).numpy(), zoo.batch(va), task.targets(va).numpy())
        for level in levels:
            aug = parse_augment(str(level))
            preds = []
            for b, start in enumerate(range(0, len(te), batch_size)):
                chunk = te[start:start + batch_size]
                batch = aug(zoo.batch(chunk), torch.Generator().manual_seed(_mix(eval_seed, b)))
                preds.append(torch.as_tensor(model.predict(batch)))
            m = task.metrics(torch.cat(preds), task.targets(te))
            for metric, value in m.items():
                rows.append({"model": "invariant-gbm", "task": task.name, "augment_level": level, "seed": seed,
                             "metric": metric, "value": float(value)})
        rows.append({"model": "invariant-gbm", "task": task.name, "augment_level": None, "seed": seed,
                     "metric": "params", "value": float(model.num_parameters())})
    return rows


def merge(parts: list[Path], out: Path) -> int:
    """One results.json / table.md / meta.json from partial runs (their metas are kept under 'parts')."""
    import json

    from monomial_gmn._io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import results_table

    rows, metas = [], []
    for d in parts:
        rows += json.loads((d / "results.json").read_text())
        metas.append(json.loads((d / "meta.json").read_text()))
    sizes = metas[0]["split_sizes"]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    table = results_table(rows, "accuracy", title=f"INR classification, digits-siren ({sizes['train']} train / "
                                                  f"{sizes['val']} val / {sizes['test']} test INRs)")
    atomic_write_text(out / "table.md", table)
    write_meta(out, parts=metas, merged_from=[str(d) for d in parts])
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-siren-1024"), help="digits-siren zoo (built if absent)")
    p.add_argument("--nets", type=int, default=1024)
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--models", default="statnn,gmn,np,monomial")
    p.add_argument("--invariant-gbm", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--levels", default="0,1")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden-dim", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-augment", default="none")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "inr_classification"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "inr_classification"))
    p.add_argument("--merge", default="", help="comma-separated result dirs of partial runs (e.g. models split "
                                                 "over two processes): merge them into --out and stop")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.merge:
        return merge([Path(d) for d in a.merge.split(",") if d], Path(a.out))

    from monomial_gmn._io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import compare, results_table
    from monomial_gmn.train._compare import EVAL_SEED, parse_levels
    from monomial_gmn.train._trainer import open_zoo

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    zoo_path = ensure_zoo("digits-siren", a.zoo, a.nets, seed=a.zoo_seed)
    zoo = open_zoo(zoo_path)
    levels = parse_levels(a.levels)
    models = [m for m in a.models.split(",") if m]
    sp = zoo.split(0)
    sizes = {k: int(len(v)) for k, v in sp.items()}
    rows: list[dict] = []
    if models:
        rows = compare(str(zoo_path), "inr-classification", models, levels, a.runs, seeds=a.seeds,
                       progress=not a.quiet, zoo_obj=zoo, epochs=a.epochs, hidden_dim=a.hidden_dim,
                       num_layers=a.num_layers, lr=a.lr, augment=a.train_augment)
    if a.invariant_gbm:
        rows += invariant_gbm_rows(zoo, levels, a.seeds, EVAL_SEED)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    table = results_table(rows, "accuracy", title=f"INR classification, digits-siren ({sizes['train']} train / "
                                                  f"{sizes['val']} val / {sizes['test']} test INRs)")
    atomic_write_text(out / "table.md", table)
    zoo_rel = str(Path(zoo_path).resolve().relative_to(ROOT)) if Path(zoo_path).resolve().is_relative_to(ROOT) \
        else str(zoo_path)
    write_meta(out, zoo=zoo_rel, zoo_nets=a.nets, zoo_seed=a.zoo_seed, split_sizes=sizes, seeds=a.seeds,
               levels=levels, models=models + (["invariant-gbm"] if a.invariant_gbm else []),
               settings={k: getattr(a, k) for k in ("epochs", "hidden_dim", "num_layers", "lr", "train_augment",
                                                    "threads")},
               wall_seconds=round(time.perf_counter() - t0, 1))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
