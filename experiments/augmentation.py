"""Issue 8, item 2: the scale-augmentation sweep, test-time AND train-time (the paper's figure "τ vs log10 s").

    python experiments/augmentation.py                                   # the committed results
    python experiments/augmentation.py --nets 256 --seeds 1 --epochs 2 --zoo /tmp/z --out /tmp/aug   # quick check

Every model is trained on the digits-cnn ReLU nets with train-time augmentation at each level of
``--train-levels`` (level k: each training net of every step is transformed by a fresh element of its monomial
group — factors U[1, 10^k] on ReLU neurons and a random permutation of hidden neurons; level 0: no
augmentation; the trainer's ``--augment k``, :mod:`monomial_gmn.train._augment`) and evaluated on the test nets at
every level of ``--test-levels`` (the same transformed test nets for every model and run). Training and
evaluation go through the library's public sweep ``monomial_gmn.train.compare`` (one call per training level).

Two curves per model come out of that grid:

* test-time augmentation: trained at level 0, tested at level k (the permutation-only models collapse);
* train-time augmentation: trained at level k, tested at level k (what augmentation buys them back).

MonomialGMN is exactly invariant, so augmentation changes neither its inputs' orbit nor (up to float rounding)
its training; it is trained only at ``--invariant-train-levels`` (default 0 and 4) to show that the curve is
flat. Writes ``results.json`` (rows of ``compare`` plus ``train_level``; ``val_tau`` and ``train_seconds`` rows
from each run's ``metrics.json``), ``table.md``, ``tau_vs_scale.png`` and ``meta.json`` to ``--out``
(default experiments/results/augmentation/). Runs go to ``--runs`` (not committed); a re-run reuses the
finished ones, so adding a level or a seed only trains what is new.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, command, ensure_zoo, git_state, load_json, write_meta  # noqa: E402

MODELS = ("statnn", "gmn", "np", "monomial")
INVARIANT = ("monomial",)  # exactly invariant under the whole group: train-time augmentation is a no-op


def run_metrics(run_dir: Path, model: str, seed: int) -> dict[str, Any]:
    """The ``metrics.json`` that ``compare`` left for ``model`` seed ``seed`` under ``run_dir``."""
    return load_json(run_dir / "runs" / f"{model}-s{seed}" / "metrics.json")


def stat(rows: list[dict], **match: Any) -> tuple[float, float, int]:
    """Mean, std (ddof 0) and count of ``value`` over the rows matching every ``key=value``."""
    v = np.array([r["value"] for r in rows if all(r.get(k) == x for k, x in match.items())], dtype=np.float64)
    return (float(v.mean()), float(v.std()), len(v)) if len(v) else (float("nan"), float("nan"), 0)


def fmt(s: tuple[float, float, int]) -> str:
    return "—" if s[2] == 0 else f"{s[0]:.3f} ± {s[1]:.3f}"


def make_table(rows: list[dict], models: list[str], test_levels: list[float], cmd: str, sizes: dict,
               seeds: int, note: str, activation: str = "relu") -> str:
    """Markdown: the two curves of the figure, then the whole train-level × test-level grid, then costs."""
    lines = [f"Command: `{cmd}`", "",
             f"Generalization prediction on digits-cnn {activation} nets ({sizes['train']} train / {sizes['val']} val / "
             f"{sizes['test']} test), test Kendall τ, mean ± std over seeds 0..{seeds - 1}. {note}", "",
             "## Test-time vs train-time augmentation (the figure)", "",
             "test-time: trained at level 0, tested at level k; train-time: trained at level k, tested at level k "
             "(— : not trained at that level).", "",
             "| model | curve | " + " | ".join(f"level {lv:g}" for lv in test_levels) + " |",
             "|---|---|" + "---|" * len(test_levels)]
    for m in models:
        tt = [fmt(stat(rows, model=m, metric="tau", train_level=0.0, augment_level=lv)) for lv in test_levels]
        tr = [fmt(stat(rows, model=m, metric="tau", train_level=lv, augment_level=lv)) for lv in test_levels]
        lines += [f"| {m} | test-time | " + " | ".join(tt) + " |", f"| {m} | train-time | " + " | ".join(tr) + " |"]
    lines += ["", "## Every training level × test level", "",
              "| model | trained at | " + " | ".join(f"test {lv:g}" for lv in test_levels)
              + " | val τ | train s / run | params |", "|---|---|" + "---|" * (len(test_levels) + 3)]
    lines.insert(-2, "val τ: on the untransformed validation nets, where the trainer selects the epoch of every run "
                     "(augmented runs included). train s: seconds of training per run on a shared CPU, 1 thread.\n")
    for m in models:
        for tl in sorted({r["train_level"] for r in rows if r["model"] == m}):
            cells = [fmt(stat(rows, model=m, metric="tau", train_level=tl, augment_level=lv)) for lv in test_levels]
            val = fmt(stat(rows, model=m, metric="val_tau", train_level=tl))
            sec = stat(rows, model=m, metric="train_seconds", train_level=tl)
            par = stat(rows, model=m, metric="params", train_level=tl)
            lines.append(f"| {m} | level {tl:g} | " + " | ".join(cells) + f" | {val} | {sec[0]:.0f} | "
                         f"{int(par[0]):,} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], models: list[str], test_levels: list[float], path: Path, title: str) -> None:
    """Left: test-time (solid) and train-time (dashed) curves; right: the most augmented training level of each
    model tested at every level. Error bars: std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monomial_gmn.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), dpi=120, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(models):
        c = colors[i % len(colors)]
        for ax, curve, style in ((axes[0], "test-time", "-"), (axes[0], "train-time", "--")):
            pts = [(lv, stat(rows, model=m, metric="tau", augment_level=lv,
                             train_level=0.0 if curve == "test-time" else lv)) for lv in test_levels]
            pts = [(lv, s) for lv, s in pts if s[2]]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], color=c,
                            ls=style, marker="o" if curve == "test-time" else "s", capsize=3, ms=4,
                            label=f"{m}, {curve}")
        top = max(r["train_level"] for r in rows if r["model"] == m)
        pts = [(lv, stat(rows, model=m, metric="tau", train_level=top, augment_level=lv)) for lv in test_levels]
        axes[1].errorbar([p[0] for p in pts], [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], color=c,
                         marker="s", capsize=3, ms=4, label=f"{m}, trained at level {top:g}")
    axes[0].set_title("solid: trained at 0, tested at k; dashed: trained at k, tested at k", fontsize=8)
    axes[1].set_title("trained at the highest level, tested at k", fontsize=8)
    for ax in axes:
        ax.set_xlabel("k = log10 s (ReLU neurons × U[1, s], hidden neurons permuted)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5)
    axes[0].set_ylabel("test Kendall τ")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-cnn-768"), help="digits-cnn zoo (built if absent)")
    p.add_argument("--nets", type=int, default=768, help="nets to build if the zoo is absent (default 768)")
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--activation", default="relu", choices=("relu", "tanh"))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--train-levels", default="0,1,2,3,4", help="train-time augmentation levels (default 0..4)")
    p.add_argument("--invariant-train-levels", default="0,4",
                   help=f"training levels of the exactly invariant models {INVARIANT} (default 0,4)")
    p.add_argument("--test-levels", default="0,1,2,3,4")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--hidden-dim", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--feature-readout", action=argparse.BooleanOptionalAction, default=False,
                   help="MonomialGMN's feature_readout option (default off: the message-passing model alone)")
    p.add_argument("--out", default=str(RESULTS / "augmentation"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "augmentation"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import compare
    from monomial_gmn.train import EVAL_SEED, open_zoo, parse_levels, parse_models

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    models = parse_models(a.models)
    train_levels, inv_levels = parse_levels(a.train_levels), parse_levels(a.invariant_train_levels)
    test_levels = parse_levels(a.test_levels)
    if a.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    zoo_path = ensure_zoo("digits-cnn", a.zoo, a.nets, seed=a.zoo_seed)
    zoo = open_zoo(zoo_path, a.activation)
    sizes = {k: int(len(v)) for k, v in zoo.split(0).items()}
    settings = {k: getattr(a, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "hidden_dim",
                                           "num_layers", "feature_readout", "threads")}
    rows: list[dict] = []
    plan = {m: (inv_levels if m in INVARIANT else train_levels) for m in models}
    for tl in sorted(set().union(*plan.values())):
        todo = [m for m in models if tl in plan[m]]
        run_dir = Path(a.runs) / a.activation / f"train{tl:g}"
        for m in todo:  # one compare call per model: only MonomialGMN takes model_kwargs
            kw = {"model_kwargs": {"feature_readout": True}} if (m == "monomial" and a.feature_readout) else {}
            got = compare(str(zoo_path), "generalization", [m], test_levels, run_dir / m, seeds=a.seeds,
                          activation=a.activation, progress=not a.quiet, zoo_obj=zoo, epochs=a.epochs,
                          batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, hidden_dim=a.hidden_dim,
                          num_layers=a.num_layers, augment=f"{tl:g}", **kw)
            for seed in range(a.seeds):
                met = run_metrics(run_dir / m, m, seed)
                got += [{"model": m, "task": "generalization", "augment_level": None, "seed": seed,
                         "metric": "val_tau", "value": float(met["val"]["tau"])},
                        {"model": m, "task": "generalization", "augment_level": None, "seed": seed,
                         "metric": "train_seconds", "value": float(met["train_seconds"])}]
            rows += [{**r, "train_level": tl} for r in got]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    note = (f"Models: hidden {a.hidden_dim}, {a.num_layers} layers, {a.epochs} epochs, batch {a.batch_size}, "
            f"AdamW lr {a.lr:g}, weight decay {a.weight_decay:g}; MonomialGMN feature_readout="
            f"{a.feature_readout}.")
    table = make_table(rows, models, test_levels, command(), sizes, a.seeds, note, a.activation)
    atomic_write_text(out / "table.md", table)
    plot(rows, models, test_levels, out / "tau_vs_scale.png",
         f"digits-cnn {a.activation} nets: test-time vs train-time scale augmentation")
    zoo_rel = str(Path(zoo_path).resolve().relative_to(ROOT)) if Path(zoo_path).resolve().is_relative_to(ROOT) \
        else str(zoo_path)
    write_meta(out, **git_state(), zoo=zoo_rel, zoo_nets=a.nets, zoo_seed=a.zoo_seed, activation=a.activation,
               split_sizes=sizes, seeds=list(range(a.seeds)), models=models,
               train_levels={m: v for m, v in plan.items()}, test_levels=test_levels, eval_seed=EVAL_SEED,
               settings=settings, wall_seconds=round(time.perf_counter() - t_start, 1))
    print(table, flush=True)
    print(f"wrote {out}/results.json, table.md, tau_vs_scale.png, meta.json", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
