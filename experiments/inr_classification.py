"""Paper table 2 on our zoo: INR classification on digits-siren (SIREN 2→32→32→1, ω0 = 30, one per digit image),
trained on one INR per image and on the same images with an extra fitted copy each.

    python experiments/inr_classification.py                       # the committed results
    python experiments/inr_classification.py --images 256 --seeds 1 --epochs 1 --out /tmp/inr   # a quick check

The zoo (``--zoo``, built if absent) is fitted with ``copies=2``: each image has two INRs that differ only in
their random initialisation (the "augmented copies" of the INR literature). Two training sets share the very same
validation and test INRs (copy 0 of their images):

* ``single``: copy 0 of every image (one INR per image);
* ``copies``: copy 0 of every image plus the other copies of the *training* images (twice the training INRs).

Every model is trained with seeds 0..K-1 through ``monomial_gmn.train.compare`` (the code behind
``monomial-gmn compare --task inr-classification``); on ``copies`` it gets ``epochs // copies`` epochs, so both
training sets cost the same number of optimiser steps. Each model is evaluated on the test INRs untransformed
(level 0) and with random hidden-neuron permutations and signs (level 1: sin neurons admit d = ±1 only, so
every level k >= 1 is the same sign-flip group). ``invariant-gbm`` (boosted trees on exactly invariant features,
:class:`monomial_gmn.features.InvariantGBM`) is fitted on the same splits. Two references that are not
metanetworks frame the numbers: logistic regression on the INRs' *rendered pixels* (what the INRs encode: the
ceiling) and on their *raw flattened weights* (the weight-space floor). Writes ``results.json``, ``table.md``,
``meta.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, ensure_zoo, parse_extra_model, write_meta  # noqa: E402

TRAIN_SETS = ("single", "copies")
TRAIN_SET_LABELS = {"single": "one INR per image", "copies": "+ extra fitted copy per training image"}
REFERENCES = ("pixels + logreg (reference)", "raw weights + logreg (reference)")


def training_views(zoo) -> dict[str, object]:
    """``{"single": zoo of copy-0 INRs, "copies": copy 0 plus the other copies of the training images}``.

    Both views split (``zoo.split(0)``) into the same validation and test INRs (checked: the split groups by
    ``image_id`` with the images' fixed test flags, and both views hold the same set of images)."""
    if "copy" not in zoo.columns:
        raise ValueError("the zoo has no 'copy' column; build it with digits-siren copies >= 2")
    copy = zoo.columns["copy"]
    if copy.max() < 1:
        raise ValueError("the zoo holds a single copy per image; build it with digits-siren copies >= 2")
    full_split = zoo.split(0)
    train_images = np.zeros(len(zoo), dtype=bool)
    train_images[full_split["train"]] = True
    single = zoo.subset(np.nonzero(copy == 0)[0])
    copies = zoo.subset(np.nonzero((copy == 0) | train_images)[0])
    a, b = single.split(0), copies.split(0)
    for part in ("val", "test"):
        if not np.array_equal(single.columns["net_id"][a[part]], copies.columns["net_id"][b[part]]):
            raise RuntimeError(f"the two training views have different {part} INRs")
    return {"single": single, "copies": copies}


def _flat_weights(renderer, batch) -> np.ndarray:
    """[B, P] weights and biases read back from graphs (so transformed test nets give transformed weights)."""
    parts = []
    for w, b in renderer.weights(batch.x, batch.edge_attr):
        parts.append(w.flatten(1))
        if b is not None:
            parts.append(b)
    return torch.cat(parts, 1).double().numpy()


def reference_rows(zoo, levels, eval_seed: int, train_set: str) -> list[dict]:
    """Logistic regression on rendered pixels and on raw weights (deterministic: one row per level)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from monomial_gmn.train import INRRenderer, coordinate_grid, make_task, parse_augment

    task = make_task("inr-classification")
    task.setup(zoo)
    sp = zoo.split(0)
    tr, te = np.asarray(sp["train"]), np.asarray(sp["test"])
    renderer = INRRenderer(zoo.module(0))
    coords = coordinate_grid(*zoo.images.shape[1:])

    def features(idx, aug, gen):
        with torch.no_grad():
            batch = aug(zoo.batch(idx), gen)
            pix = renderer(batch.x, batch.edge_attr, coords).flatten(1).double().numpy()
            return pix, _flat_weights(renderer, batch)

    pix_tr, w_tr = features(tr, parse_augment("none"), None)
    y_tr, y_te = task.targets(tr).numpy(), task.targets(te).numpy()
    clfs = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(x, y_tr)
            for x in (pix_tr, w_tr)]
    rows = []
    for level in levels:
        pix_te, w_te = features(te, parse_augment(str(level)), torch.Generator().manual_seed(eval_seed))
        for name, clf, x in zip(REFERENCES, clfs, (pix_te, w_te)):
            rows.append({"model": name, "task": task.name, "train_set": train_set, "augment_level": level,
                         "seed": 0, "metric": "accuracy", "value": float(clf.score(x, y_te))})
    return rows


def invariant_gbm_rows(zoo, levels, seeds, eval_seed, train_set: str, batch_size=256) -> list[dict]:
    from monomial_gmn.features import InvariantGBM
    from monomial_gmn.train import make_task, parse_augment
    from monomial_gmn.train import mix_seed

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
                batch = aug(zoo.batch(chunk), torch.Generator().manual_seed(mix_seed(eval_seed, b)))
                preds.append(torch.as_tensor(model.predict(batch)))
            m = task.metrics(torch.cat(preds), task.targets(te))
            for metric, value in m.items():
                rows.append({"model": "invariant-gbm", "task": task.name, "train_set": train_set,
                             "augment_level": level, "seed": seed, "metric": metric, "value": float(value)})
        rows.append({"model": "invariant-gbm", "task": task.name, "train_set": train_set, "augment_level": None,
                     "seed": seed, "metric": "params", "value": float(model.num_parameters())})
    return rows


def table(rows: list[dict], sizes: dict[str, dict[str, int]], levels: list[float]) -> str:
    """Markdown: one row per model; columns (training set × level), mean ± std over seeds; best per column bold."""
    acc = [r for r in rows if r["metric"] == "accuracy" and r.get("split", "test") == "test"]  # not compare's val rows
    models = list(dict.fromkeys(r["model"] for r in acc if r["model"] not in REFERENCES)) + \
        [m for m in REFERENCES if any(r["model"] == m for r in acc)]
    sets = [s for s in TRAIN_SETS if any(r["train_set"] == s for r in acc)]
    cols = [(s, lv) for s in sets for lv in levels]
    desc = "; ".join(f"{s}: {TRAIN_SET_LABELS[s]}, {sizes[s]['train']} training INRs" for s in sets)
    first = sizes[sets[0]]
    lines = [f"**INR classification, digits-siren ({desc}; the same {first['val']} validation / {first['test']} "
             "test INRs)** — test accuracy, mean ± std over seeds (n = seeds); level 1 = test INRs with random "
             "hidden-neuron permutations and sign flips", "",
             "| model | " + " | ".join(f"{s}, level {lv:g}" for s, lv in cols) + " | params |",
             "|" + "---|" * (len(cols) + 2)]
    stats = {}
    for m in models:
        for c in cols:
            v = np.array([r["value"] for r in acc if r["model"] == m and (r["train_set"], r["augment_level"]) == c])
            if len(v):
                stats[m, c] = (v.mean(), v.std(), len(v))
    best = {c: max((stats[m, c][0] for m in models if (m, c) in stats and m not in REFERENCES), default=None)
            for c in cols}
    for m in models:
        cells = []
        for c in cols:
            if (m, c) not in stats:
                cells.append("—")
                continue
            mean, std, n = stats[m, c]
            cell = f"{mean:.3f}" if m in REFERENCES else f"{mean:.3f} ± {std:.3f} (n={n})"
            cells.append(f"**{cell}**" if m not in REFERENCES and best[c] is not None and mean == best[c] else cell)
        p = [r["value"] for r in rows if r["model"] == m and r["metric"] == "params"]
        cells.append(f"{int(p[0]):,}" if p and p[0] > 0 else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Chance is 0.1 (10 balanced classes; the most frequent test class is "
              f"{max(sizes[sets[0]]['test_class_counts']) / first['test']:.3f} of the test INRs)."]
    return "\n".join(lines) + "\n"


def merge(parts: list[Path], out: Path) -> int:
    """One results.json / table.md / meta.json from partial runs (their metas are kept under 'parts')."""
    from monomial_gmn.io import atomic_write_json, atomic_write_text

    rows, metas = [], []
    for d in parts:
        rows += json.loads((d / "results.json").read_text())
        metas.append(json.loads((d / "meta.json").read_text()))
    sizes = {}
    for m in metas:
        sizes.update(m["split_sizes"])
    levels = sorted({r["augment_level"] for r in rows if r["augment_level"] is not None})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    md = table(rows, sizes, levels)
    atomic_write_text(out / "table.md", md)
    write_meta(out, parts=metas, merged_from=[str(d) for d in parts], split_sizes=sizes)
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-siren-2560-c2-r16"),
                   help="digits-siren zoo with copies >= 2 (built if absent, with --nets/--copies/--resolution)")
    p.add_argument("--nets", type=int, default=2560)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--images", type=int, default=0, help="use only the INRs of the first N images (0: all)")
    p.add_argument("--train-sets", default=",".join(TRAIN_SETS))
    p.add_argument("--models", default="statnn,gmn,np,monomial")
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME:MODEL:JSON",
                   help="also run a registered MODEL with build_model keyword arguments JSON, reported as NAME, e.g. "
                        "'monomial+probe:monomial:{\"feature_readout\": true, \"probes\": 256, "
                        "\"probe_outputs\": \"raw\"}'")
    p.add_argument("--invariant-gbm", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--references", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--levels", default="0,1")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10, help="epochs on 'single' (on 'copies': epochs // copies)")
    p.add_argument("--hidden-dim", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "inr_classification"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "inr_classification_v2"))
    p.add_argument("--merge", default="", help="comma-separated result dirs of partial runs (e.g. models split "
                                                 "over two processes): merge them into --out and stop")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.merge:
        return merge([Path(d) for d in a.merge.split(",") if d], Path(a.out))

    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import compare
    from monomial_gmn.train import EVAL_SEED, open_zoo, parse_levels

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    zoo_path = ensure_zoo("digits-siren", a.zoo, a.nets, seed=a.zoo_seed, workers=1, copies=a.copies,
                          resolution=a.resolution)
    zoo = open_zoo(zoo_path)
    if a.images:
        keep = np.unique(zoo.columns["image_id"])[:a.images]
        zoo = zoo.subset(np.nonzero(np.isin(zoo.columns["image_id"], keep))[0])
    views = training_views(zoo)
    copies = int(zoo.columns["copy"].max()) + 1
    levels = parse_levels(a.levels)
    models = [m for m in a.models.split(",") if m]
    train_sets = [s for s in a.train_sets.split(",") if s]
    for s in train_sets:
        if s not in TRAIN_SETS:
            raise SystemExit(f"--train-sets: unknown {s!r}; expected {', '.join(TRAIN_SETS)}")
    sizes, rows = {}, []
    for s in train_sets:
        view = views[s]
        sp = view.split(0)
        sizes[s] = {k: int(len(v)) for k, v in sp.items()}
        sizes[s]["test_class_counts"] = np.bincount(view.columns["label"][sp["test"]], minlength=10).tolist()
        epochs = a.epochs if s == "single" else max(1, a.epochs // copies)
        if models:
            part = compare(str(zoo_path), "inr-classification", models, levels, Path(a.runs) / s, seeds=a.seeds,
                           progress=not a.quiet, zoo_obj=view, epochs=epochs, hidden_dim=a.hidden_dim,
                           num_layers=a.num_layers, lr=a.lr)
            rows += [{**r, "train_set": s} for r in part]
        for spec in a.extra_model:
            name, model, kw = parse_extra_model(spec)
            part = compare(str(zoo_path), "inr-classification", [model], levels, Path(a.runs) / s / name,
                           seeds=a.seeds, progress=not a.quiet, zoo_obj=view, epochs=epochs, hidden_dim=a.hidden_dim,
                           num_layers=a.num_layers, lr=a.lr, model_kwargs=kw)
            rows += [{**r, "model": name, "train_set": s} for r in part]
        if a.invariant_gbm:
            rows += invariant_gbm_rows(view, levels, a.seeds, EVAL_SEED, s)
        if a.references:
            rows += reference_rows(view, levels, EVAL_SEED, s)
        print(f"{s}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    md = table(rows, sizes, levels)
    atomic_write_text(out / "table.md", md)
    zoo_rel = str(Path(zoo_path).resolve().relative_to(ROOT)) if Path(zoo_path).resolve().is_relative_to(ROOT) \
        else str(zoo_path)
    write_meta(out, zoo=zoo_rel, zoo_nets=len(zoo), zoo_seed=a.zoo_seed, zoo_options=zoo.meta.get("config"),
               split_sizes=sizes, seeds=a.seeds, levels=levels, train_sets=train_sets,
               models=models + [x.split(":", 1)[0] for x in a.extra_model]
               + (["invariant-gbm"] if a.invariant_gbm else []), extra_models=a.extra_model,
               settings={**{k: getattr(a, k) for k in ("epochs", "hidden_dim", "num_layers", "lr", "threads")},
                         "epochs_copies": max(1, a.epochs // copies)},
               wall_seconds=round(time.perf_counter() - t0, 1))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
