"""Issue 19, INR part: digits-siren classification from the weights alone (no probes, no feature readout).

One run per call, selected on validation; every trial is appended to ``--log`` (JSON lines) with its validation
accuracy (and, for diagnosis only, the training accuracy of the selected weights). ``--test`` also evaluates the
selected weights on the test INRs, untransformed (level 0) and under random hidden-neuron permutations and
sign flips (level 1) — only for the final, validation-chosen configurations.

    python experiments/inr_classification_weights.py --model monomial --view single --epochs 10 --seed 0
    python experiments/inr_classification_weights.py --model monomial --view copies --epochs 40 \
        --kwargs '{"phase_features": 30.0}' --seed 0 --test
    python experiments/inr_classification_weights.py --table          # results table from the log

The zoo (``--zoo``, built if absent) is digits-siren, 1,797 images × ``copies=2`` fits (3,594 INRs,
resolution 16); ``single`` is copy 0 of every image (1,797 INRs), ``copies`` adds the second fit of every
*training* image (validation and test INRs are the same in both views; see experiments/inr_classification.py).
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
from _common import RESULTS, ROOT, ensure_zoo  # noqa: E402
from inr_classification import training_views  # noqa: E402

OUT = RESULTS / "inr_classification_weights"


def run(a) -> dict:
    from monomial_gmn.data import zoo_digest
    from monomial_gmn.train import TrainConfig, build_backbone, evaluate_model, make_task, open_zoo, train

    torch.set_num_threads(a.threads)
    zoo_path = ensure_zoo("digits-siren", a.zoo, a.nets, seed=0, workers=1, copies=2, resolution=16)
    zoo = open_zoo(zoo_path)
    view = training_views(zoo)[a.view]
    kwargs = json.loads(a.kwargs)
    name = a.name or f"{a.model}-{a.view}-e{a.epochs}-h{a.hidden}-l{a.layers}-lr{a.lr:g}-b{a.batch}" + \
        (f"-{json.dumps(kwargs, sort_keys=True)}" if kwargs else "") + f"-s{a.seed}"
    out = Path(a.runs) / name.replace(" ", "").replace('"', "").replace("{", "(").replace("}", ")").replace(":", "=")
    cfg = TrainConfig(zoo=str(zoo_path), task="inr-classification", model=a.model, out=str(out), epochs=a.epochs,
                      batch_size=a.batch, lr=a.lr, hidden_dim=a.hidden, num_layers=a.layers, seed=a.seed,
                      weight_decay=a.wd, model_kwargs=kwargs)
    t0 = time.perf_counter()
    res = train(cfg, zoo=view, progress=False, evaluate_test=a.test, resume=True)
    secs = time.perf_counter() - t0
    row = {"name": name, "model": a.model, "view": a.view, "epochs": a.epochs, "hidden": a.hidden,
           "layers": a.layers, "lr": a.lr, "batch": a.batch, "wd": a.wd, "kwargs": kwargs, "seed": a.seed,
           "val": res["val"]["accuracy"], "best_epoch": res.get("best_epoch"), "seconds": round(secs, 1),
           "params": res.get("params"), "zoo_digest_view": zoo_digest(view), "zoo_digest": zoo_digest(zoo),
           "run": str(out.relative_to(ROOT)) if out.resolve().is_relative_to(ROOT) else str(out)}
    # diagnosis only (never used for selection): accuracy of the selected weights on the training INRs
    task = make_task("inr-classification")
    task.setup(view)
    module = task.wrap(build_backbone(cfg, task, view), view)
    module.load_state_dict(torch.load(out / "model.pt", weights_only=False)["model"])
    sp = view.split(0)
    row["train_acc"] = evaluate_model(module, view, task, np.asarray(sp["train"]))["accuracy"]
    if a.test:
        row["test"] = {str(lv): evaluate_model(module, view, task, np.asarray(sp["test"]),
                                               augment=str(lv))["accuracy"] for lv in (0, 1)}
        row["val_level1"] = evaluate_model(module, view, task, np.asarray(sp["val"]), augment="1")["accuracy"]
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    with open(a.log, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in row if k not in ("zoo_digest_view",)}), flush=True)
    return row


def config_key(r: dict) -> str:
    kw = json.dumps(r["kwargs"], sort_keys=True) if r["kwargs"] else ""
    return (f"{r['view']} e{r['epochs']} lr{r['lr']:g} h{r['hidden']} l{r['layers']} b{r['batch']}"
            + (f" {kw}" if kw else ""))


def table(log: Path, out: Path, final: dict[str, str]) -> str:
    """Write ``results.json`` (every logged trial) and ``table.md``: every configuration's validation accuracy
    (seed 0) per model, then the final rows (``final``: model -> configuration key, chosen on validation) with
    test accuracy, mean ± std over the seeds that have it."""
    from _common import write_meta
    from monomial_gmn.io import atomic_write_json, atomic_write_text

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["**Trials (selection on validation; seed 0)** — validation accuracy of the weights selected on "
             "validation; train accuracy of those weights for diagnosis only", "",
             "| model | configuration | val acc | train acc | best epoch | seconds |", "|---|---|---|---|---|---|"]
    for m in models:
        for r in rows:
            if r["model"] == m and r["seed"] == 0 and "test" not in r:
                lines.append(f"| {m} | {config_key(r)} | {r['val']:.3f} | {r['train_acc']:.3f} | {r['best_epoch']} "
                             f"| {r['seconds']:.0f} |")
    lines += ["", "**Final (configuration chosen on validation; test read once)** — mean ± std over seeds", "",
              "| model | configuration | seeds | val acc | test acc, level 0 | test acc, level 1 (perm + sign flips) "
              "| params |", "|---|---|---|---|---|---|---|"]
    for m, key in final.items():
        fr = [r for r in rows if r["model"] == m and config_key(r) == key and "test" in r]
        if not fr:
            continue
        seeds = sorted({r["seed"] for r in fr})
        fr = [next(r for r in fr if r["seed"] == s) for s in seeds]
        val = np.array([r["val"] for r in fr])
        t0 = np.array([r["test"]["0"] for r in fr])
        t1 = np.array([r["test"]["1"] for r in fr])
        lines.append(f"| {m} | {key} | {','.join(map(str, seeds))} | {val.mean():.3f} ± {val.std():.3f} | "
                     f"{t0.mean():.3f} ± {t0.std():.3f} | {t1.mean():.3f} ± {t1.std():.3f} | {fr[0]['params']:,} |")
    md = "\n".join(lines) + "\n"
    atomic_write_text(out / "table.md", md)
    write_meta(out, zoo_digest=rows[0]["zoo_digest"], zoo_digest_single_view=next(
        (r["zoo_digest_view"] for r in rows if r["view"] == "single"), None), final=final, trials=len(rows))
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-siren-3594-c2-r16"))
    p.add_argument("--nets", type=int, default=3594)
    p.add_argument("--view", default="single", choices=("single", "copies"))
    p.add_argument("--model", default="monomial")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=1e-2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--kwargs", default="{}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="")
    p.add_argument("--test", action="store_true")
    p.add_argument("--table", default="", help="JSON {model: configuration key}: write results.json, table.md, "
                   "meta.json to --out from --log and stop")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "inr_weights"))
    p.add_argument("--log", default=str(ROOT / "runs" / "experiments" / "inr_weights" / "log.jsonl"))
    a = p.parse_args(argv)
    if a.table:
        print(table(Path(a.log), Path(a.out), json.loads(a.table)))
        return 0
    run(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
