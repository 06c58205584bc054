"""Paper INR-editing experiment on our zoo: edit a SIREN's weights so that it renders its digit dilated (3×3 grey
dilation) or with its contrast raised ×1.5 around the mean.

    python experiments/inr_editing.py                       # the committed results
    python experiments/inr_editing.py --images 64 --epochs 1 --seeds 1 --out /tmp/edit   # a quick check

Every model that has an equivariant readout (``monomial``, ``gmn``, ``np``; StatNN and the GBMs only predict
invariants, so they cannot return an edited network) is trained with ``monomial_gmn.train.train`` on the
``inr-editing`` task (loss: MSE between the edited INR's rendering and the transformed image) for each edit and
seed, and evaluated on the test INRs untransformed (level 0) and with random hidden-neuron permutations and
signs (level 1; an exactly equivariant editor gives the same MSE). Two references need no training:

* ``no edit``: the source INR itself (MSE of its rendering against the transformed target) — an editor must
  beat it to have learned anything;
* ``pixel oracle``: the source INR's own rendering, edited in pixel space by the same transform (the floor an
  editor could reach if it rendered perfectly; non-zero only through the INR's fitting error).

Writes ``results.json``, ``table.md``, ``meta.json`` and ``grid_<edit>.png`` (source / target / edited
renderings of a few test INRs, one column per model) to ``--out``.
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

EDIT_MODELS = ("monomial", "gmn", "np")
NO_EDIT_MODELS = ("statnn", "statnn-gbm")   # invariant readout only


def select_copy(zoo, copy: int = 0):
    """The zoo's nets of one fitting copy (one INR per image), or the zoo itself without a ``copy`` column."""
    if "copy" not in zoo.columns:
        return zoo
    return zoo.subset(np.nonzero(zoo.columns["copy"] == copy)[0])


def reference_rows(zoo, task, idx: np.ndarray, levels: list[float]) -> list[dict]:
    """``no edit`` and ``pixel oracle`` rows (the same at every level: rendering is invariant to the group)."""
    from monomial_gmn.train import INRRenderer, coordinate_grid

    h, w = zoo.images.shape[1:]
    renderer = INRRenderer(zoo.module(0))
    with torch.no_grad():
        batch = zoo.batch(idx)
        src = renderer(batch.x, batch.edge_attr, coordinate_grid(h, w)).reshape(len(idx), h, w).numpy()
    target = task.targets(idx).numpy()
    oracle = task.transform_images(np.clip(src, 0.0, 1.0)).reshape(len(idx), -1)
    rows = []
    for name, pred in (("no edit", src.reshape(len(idx), -1)), ("pixel oracle", oracle)):
        mse = float(((pred.astype(np.float64) - target) ** 2).mean())
        rows += [{"model": name, "task": "inr-editing", "edit": task.edit, "augment_level": lv, "seed": 0,
                  "metric": "mse", "value": mse} for lv in levels]
    return rows


def edited_renderings(run: Path, zoo, idx: np.ndarray) -> np.ndarray:
    """[len(idx), H, W] renderings of the edited INRs of a finished run's selected model."""
    from monomial_gmn.train import load_run
    from monomial_gmn.train import build_backbone, mix_seed, task_for

    cfg, weights = load_run(run)
    task = task_for(cfg)
    task.setup(zoo)
    torch.manual_seed(mix_seed(cfg.seed, 0xB11D))
    module = task.wrap(build_backbone(cfg, task, zoo), zoo)
    module.load_state_dict(weights)
    module.eval()
    with torch.no_grad():
        out = module(zoo.batch(idx))
    return out.reshape(len(idx), *zoo.images.shape[1:]).numpy()


def plot_grid(path: Path, edit: str, zoo, task, idx: np.ndarray, edited: dict[str, np.ndarray]) -> None:
    """Rows: test INRs; columns: source rendering, target, then each model's edited rendering."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monomial_gmn.io import atomic_path
    from monomial_gmn.train import INRRenderer, coordinate_grid

    h, w = zoo.images.shape[1:]
    with torch.no_grad():
        b = zoo.batch(idx)
        src = INRRenderer(zoo.module(0))(b.x, b.edge_attr, coordinate_grid(h, w)).reshape(len(idx), h, w).numpy()
    target = task.targets(idx).numpy().reshape(len(idx), h, w)
    cols = [("source INR", src), (f"target ({edit})", target)] + [(f"{m} edit", v) for m, v in edited.items()]
    fig, axes = plt.subplots(len(idx), len(cols), figsize=(1.5 * len(cols), 1.5 * len(idx)), dpi=110,
                             squeeze=False)
    for r in range(len(idx)):
        for c, (name, imgs) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(np.clip(imgs[r], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
            if c >= 2:
                ax.set_xlabel(f"MSE {((imgs[r] - target[r]) ** 2).mean():.4f}", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def table(rows: list[dict], edits: list[str], levels: list[float], sizes: dict[str, int]) -> str:
    """Markdown: one row per model, one column per (edit, level), mean ± std over seeds of the test MSE."""
    models = list(dict.fromkeys(r["model"] for r in rows if r["metric"] == "mse"))
    cols = [(e, lv) for e in edits for lv in levels]
    lines = [f"**INR editing, digits-siren ({sizes['train']} train / {sizes['val']} val / {sizes['test']} test "
             f"INRs)** — test MSE of the edited INR's rendering against the transformed digit (pixels in [0, 1]), "
             "mean ± std over seeds; level 1 = test INRs with random hidden-neuron permutations and sign flips",
             "", "| model | " + " | ".join(f"{e}, level {lv:g}" for e, lv in cols) + " | params |",
             "|" + "---|" * (len(cols) + 2)]
    best = {}
    trained = [m for m in models if m not in ("no edit", "pixel oracle")]
    for c in cols:
        means = [np.mean([r["value"] for r in rows if r["model"] == m and (r["edit"], r["augment_level"]) == c
                          and r["metric"] == "mse"]) for m in trained]
        best[c] = min(means) if means else None
    for m in models + [n for n in NO_EDIT_MODELS]:
        cells = []
        for c in cols:
            v = np.array([r["value"] for r in rows if r["model"] == m and (r.get("edit"), r["augment_level"]) == c
                          and r["metric"] == "mse"])
            if not len(v):
                cells.append("cannot edit (invariant readout only)" if m in NO_EDIT_MODELS else "—")
                continue
            cell = (f"{v.mean():.4f} ± {v.std():.4f}" if m in trained
                    else f"{v.mean():.4f}" if v.mean() >= 1e-3 else f"{v.mean():.1e}")
            cells.append(f"**{cell}**" if m in trained and best[c] is not None and v.mean() == best[c] else cell)
        p = [r["value"] for r in rows if r["model"] == m and r["metric"] == "params"]
        cells.append(f"{int(p[0]):,}" if p else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-siren-2560-c2-r16"),
                   help="digits-siren zoo (built if absent, with --nets/--copies/--resolution)")
    p.add_argument("--nets", type=int, default=2560)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--images", type=int, default=0, help="use only the first N INRs of copy 0 (0: all)")
    p.add_argument("--models", default=",".join(EDIT_MODELS))
    p.add_argument("--edits", default="dilate,contrast")
    p.add_argument("--levels", default="0,1")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--hidden-dim", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--grid", type=int, default=6, help="test INRs shown in each PNG grid")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "inr_editing"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "inr_editing"))
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import TrainConfig, evaluate_run, make_task, open_zoo, train
    from monomial_gmn.train import EVAL_SEED, parse_levels

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    zoo_path = ensure_zoo("digits-siren", a.zoo, a.nets, seed=a.zoo_seed, workers=1, copies=a.copies,
                          resolution=a.resolution)
    zoo = select_copy(open_zoo(zoo_path))
    if a.images:
        zoo = zoo.subset(np.arange(min(a.images, len(zoo))))
    levels = parse_levels(a.levels)
    edits = [e for e in a.edits.split(",") if e]
    models = [m for m in a.models.split(",") if m]
    for m in models:
        if m not in EDIT_MODELS:
            raise SystemExit(f"--models: {m!r} cannot edit networks (an equivariant readout is needed: "
                             f"{', '.join(EDIT_MODELS)})")
    sp = zoo.split(0)
    sizes = {k: int(len(v)) for k, v in sp.items()}
    show = np.asarray(sp["test"][:a.grid])
    out, runs = Path(a.out), Path(a.runs)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for edit in edits:
        task = make_task("inr-editing", edit=edit)
        task.setup(zoo)
        rows += reference_rows(zoo, task, np.asarray(sp["test"]), levels)
        edited: dict[str, np.ndarray] = {}
        for model in models:
            for seed in range(a.seeds):
                run = runs / f"{edit}-{model}-s{seed}"
                cfg = TrainConfig(zoo=str(zoo_path), task="inr-editing", model=model, out=str(run), seed=seed,
                                  edit=edit, epochs=a.epochs, hidden_dim=a.hidden_dim, num_layers=a.num_layers,
                                  lr=a.lr, batch_size=a.batch_size)
                t1 = time.perf_counter()
                result = train(cfg, resume=True, zoo=zoo, progress=not a.quiet)
                ev = evaluate_run(run, [str(lv) for lv in levels], seed=EVAL_SEED, zoo=zoo)
                for lv, row in zip(levels, ev["rows"]):
                    rows.append({"model": model, "task": "inr-editing", "edit": edit, "augment_level": lv,
                                 "seed": seed, "metric": "mse", "value": float(row["mse"])})
                rows.append({"model": model, "task": "inr-editing", "edit": edit, "augment_level": None,
                             "seed": seed, "metric": "params", "value": float(result.get("params", 0))})
                print(f"{edit:<8} {model:<9} seed {seed}: test MSE " +
                      " ".join(f"{r['mse']:.4f}" for r in ev["rows"]) +
                      f" (best epoch {result['best_epoch']}, {time.perf_counter() - t1:.0f} s)", flush=True)
                if seed == 0:
                    edited[model] = edited_renderings(run, zoo, show)
        plot_grid(out / f"grid_{edit}.png", edit, zoo, task, show, edited)
        atomic_write_json(out / "results.json", rows)   # partial results survive an interrupted sweep
    md = table(rows, edits, levels, sizes)
    atomic_write_text(out / "table.md", md)
    zoo_rel = str(Path(zoo_path).resolve().relative_to(ROOT)) if Path(zoo_path).resolve().is_relative_to(ROOT) \
        else str(zoo_path)
    write_meta(out, zoo=zoo_rel, zoo_nets=len(zoo), zoo_copy=0, zoo_seed=a.zoo_seed, split_sizes=sizes,
               seeds=a.seeds, levels=levels, edits=edits, models=models,
               settings={k: getattr(a, k) for k in ("epochs", "hidden_dim", "num_layers", "lr", "batch_size",
                                                    "threads")},
               grid_nets=show.tolist(), wall_seconds=round(time.perf_counter() - t0, 1))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
