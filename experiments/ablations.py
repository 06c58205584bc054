"""Issue 8, item 6: MonomialGMN ablations — bidirectional vs forward-only messages, depth, hidden size.

    python experiments/ablations.py                                      # the committed results
    python experiments/ablations.py --zoo /tmp/z --nets 256 --seeds 1 --epochs 2 --out /tmp/abl   # quick check

One-factor-at-a-time around a base configuration (forward-only, ``--base-layers`` 3, ``--base-hidden`` 32): the
direction (``bidirectional`` True), the depth (``--depths``) and the width (``--hiddens``). Every variant is
trained on the digits-cnn subsets of ``--activations`` with seeds 0..K-1 through the library's public sweep
``monomial_gmn.train.compare`` and evaluated on the test nets at augmentation levels 0 and 4 (level 4: ReLU
factors U[1, 10^4], tanh random signs, permuted hidden neurons; MonomialGMN is exactly invariant, so both
columns must agree up to float rounding — a built-in check). The validation τ is that of the weights selected on
validation (``metrics.json`` of each run). ``feature_readout`` is the same for every variant (default off, so
the ablation measures the message-passing backbone itself, not the invariant-feature MLP added to it).

Writes ``results.json`` (one row per activation × variant × seed), ``table.md``, ``ablations.png`` and
``meta.json`` to ``--out`` (default experiments/results/ablations/). Runs go to ``--runs`` (not committed); a
re-run reuses the finished ones.
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
from _common import RESULTS, ROOT, command, ensure_zoo, git_state, load_json, parse_list, write_meta  # noqa: E402

FACTORS = ("direction", "depth", "width")
FIELD = {"direction": "bidirectional", "depth": "num_layers", "width": "hidden_dim"}  # what each factor varies


def _num(v) -> float:
    """A metric value from compare's rows (None: undefined, e.g. τ of constant predictions) as a float (NaN)."""
    return float("nan") if v is None else float(v)


def variants(base_layers: int, base_hidden: int, depths: list[int], hiddens: list[int],
             direction: bool = True) -> list[dict[str, Any]]:
    """The variants to train: the base, then one factor changed at a time (duplicates of the base dropped).
    Each: ``name``, ``factors`` (the ablations it belongs to), ``bidirectional``, ``num_layers``, ``hidden_dim``.
    ``direction=False`` drops the direction ablation: the canonical design's messages are always bidirectional, so
    its variants are all ``bi-*``."""
    base = {"bidirectional": not direction, "num_layers": base_layers, "hidden_dim": base_hidden}
    out: dict[tuple, dict] = {}

    def add(factor: str, **change: Any) -> None:
        v = {**base, **change}
        key = (v["bidirectional"], v["num_layers"], v["hidden_dim"])
        name = f"{'bi' if v['bidirectional'] else 'fwd'}-L{v['num_layers']}-H{v['hidden_dim']}"
        factors = out.setdefault(key, {"name": name, "factors": [], **v})["factors"]
        if factor not in factors:
            factors.append(factor)

    for f in FACTORS:
        if f != "direction" or direction:
            add(f)  # the base belongs to every ablation
    if direction:
        add("direction", bidirectional=True)
    for d in depths:
        add("depth", num_layers=d)
    for h in hiddens:
        add("width", hidden_dim=h)
    return list(out.values())


def summarise(rows: list[dict], act: str, name: str, key: str) -> tuple[float, float, int]:
    v = np.array([r[key] for r in rows if r["activation"] == act and r["variant"] == name], dtype=np.float64)
    return (float(v.mean()), float(v.std()), len(v)) if len(v) else (float("nan"), float("nan"), 0)


def make_table(rows: list[dict], vs: list[dict], acts: list[str], cmd: str, note: str) -> str:
    lines = [f"Command: `{cmd}`", "", note, ""]
    for act in acts:
        sizes = next(r["split_sizes"] for r in rows if r["activation"] == act)
        lines += [f"## {act} nets ({sizes['train']} train / {sizes['val']} val / {sizes['test']} test)", ""]
        for factor, title in (("direction", "Bidirectional vs forward-only"), ("depth", "Depth (num_layers)"),
                              ("width", "Hidden size (hidden_dim)")):
            if not any(factor in v["factors"] for v in vs):
                continue
            lines += [f"### {title}", "",
                      "| variant | bidirectional | layers | hidden | val τ | test τ, level 0 | test τ, level 4 "
                      "| max abs(τ4 − τ0) | params | train s / run |", "|---|---|---|---|---|---|---|---|---|---|"]
            for v in sorted((v for v in vs if factor in v["factors"]), key=lambda v: v[FIELD[factor]]):
                st = {k: summarise(rows, act, v["name"], k) for k in ("val_tau", "tau0", "tau4", "train_seconds")}
                if st["tau0"][2] == 0:
                    continue
                drift = max(abs(r["tau4"] - r["tau0"]) for r in rows
                            if r["activation"] == act and r["variant"] == v["name"])
                params = next(r["params"] for r in rows if r["activation"] == act and r["variant"] == v["name"])
                lines.append(f"| {v['name']} | {v['bidirectional']} | {v['num_layers']} | {v['hidden_dim']} | "
                             + " | ".join(f"{st[k][0]:.3f} ± {st[k][1]:.3f}" for k in ("val_tau", "tau0", "tau4"))
                             + f" | {drift:.1e} | {params:,} | {st['train_seconds'][0]:.0f} |")
            lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict], vs: list[dict], acts: list[str], path: Path) -> None:
    """Three panels (direction, depth, width): validation τ and test τ (level 0) against the factor; one colour
    per activation; error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monomial_gmn.io import atomic_path

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=120, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, factor in zip(axes, FACTORS):
        field = FIELD[factor]
        sel = sorted((v for v in vs if factor in v["factors"]), key=lambda v: v[field])
        for i, act in enumerate(acts):
            for key, style, lab in (("tau0", "-", "test τ"), ("val_tau", ":", "val τ")):
                pts = [(int(v[field]), summarise(rows, act, v["name"], key)) for v in sel]
                pts = [(x, s) for x, s in pts if s[2]]
                if pts:
                    ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts], yerr=[p[1][1] for p in pts],
                                color=colors[i % len(colors)], ls=style, marker="o", ms=4, capsize=3,
                                label=f"{act}, {lab}")
        if factor == "direction":
            ax.set_xticks([0, 1], ["forward", "bidirectional"])
            ax.set_xlim(-0.4, 1.4)
        else:
            if factor == "width":
                ax.set_xscale("log", base=2)
            ax.set_xticks([int(v[field]) for v in sel], [str(v[field]) for v in sel])
        ax.set_xlabel(field)
        ax.set_title(factor, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Kendall τ")
    axes[0].legend(fontsize=7)
    fig.suptitle("MonomialGMN ablations on digits-cnn (test τ at level 4 equals level 0: exact invariance)",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-cnn-768"), help="digits-cnn zoo (built if absent)")
    p.add_argument("--nets", type=int, default=768, help="nets to build if the zoo is absent (default 768)")
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--activations", default="relu")
    p.add_argument("--base-layers", type=int, default=3)
    p.add_argument("--base-hidden", type=int, default=32)
    p.add_argument("--depths", default="1,2,3,4")
    p.add_argument("--hiddens", default="16,32,64")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--design", choices=("canonical", "layers"), default="canonical",
                   help="MonomialGMN design (default canonical; 'layers' adds the direction ablation)")
    p.add_argument("--feature-readout", action=argparse.BooleanOptionalAction, default=False,
                   help="MonomialGMN's feature_readout option, the same for every variant (default off)")
    p.add_argument("--out", default=str(RESULTS / "ablations"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "ablations"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.train import compare
    from monomial_gmn.train import EVAL_SEED, open_zoo

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    if a.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    acts = [s for s in a.activations.split(",") if s]
    for act in acts:
        if act not in ("relu", "tanh"):
            raise SystemExit(f"--activations: {act!r} is not relu or tanh")
    vs = variants(a.base_layers, a.base_hidden, parse_list(a.depths, int), parse_list(a.hiddens, int),
                  direction=a.design == "layers")
    zoo_path = ensure_zoo("digits-cnn", a.zoo, a.nets, seed=a.zoo_seed)
    rows: list[dict] = []
    for act in acts:
        zoo = open_zoo(zoo_path, act)
        sizes = {k: int(len(v)) for k, v in zoo.split(0).items()}
        for v in vs:
            run_dir = Path(a.runs) / act / a.design / (("feat-" if a.feature_readout else "") + v["name"])
            got = compare(str(zoo_path), "generalization", ["monomial"], [0, 4], run_dir, seeds=a.seeds,
                          activation=act, progress=not a.quiet, zoo_obj=zoo, epochs=a.epochs,
                          batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, hidden_dim=v["hidden_dim"],
                          num_layers=v["num_layers"],
                          model_kwargs={"feature_readout": a.feature_readout, "design": a.design,
                                        **({"bidirectional": v["bidirectional"]} if a.design == "layers" else {})})
            for seed in range(a.seeds):
                met = load_json(run_dir / "runs" / f"monomial-s{seed}" / "metrics.json")
                tau = {r["augment_level"]: r["value"] for r in got
                       if r["seed"] == seed and r["metric"] == "tau" and r["split"] == "test"}
                rows.append({"activation": act, "variant": v["name"], "factors": v["factors"],
                             "bidirectional": v["bidirectional"], "num_layers": v["num_layers"],
                             "hidden_dim": v["hidden_dim"], "feature_readout": a.feature_readout, "seed": seed,
                             "val_tau": float(met["val"]["tau"]), "tau0": _num(tau[0.0]), "tau4": _num(tau[4.0]),
                             "params": int(met["params"]), "train_seconds": float(met["train_seconds"]),
                             "best_epoch": met["best_epoch"], "split_sizes": sizes})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    note = (f"MonomialGMN (design={a.design!r}), generalization prediction (Kendall τ), mean ± std over seeds 0..{a.seeds - 1}; "
            f"{a.epochs} epochs, batch {a.batch_size}, AdamW lr {a.lr:g}, weight decay {a.weight_decay:g}; "
            f"feature_readout={a.feature_readout} for every variant. val τ: the weights selected on validation. "
            "Level 4: test nets with ReLU factors U[1, 10^4] (tanh: random signs) and permuted hidden neurons. "
            "Edge/message width: the model's default edge_dim (min(hidden, 32) since commit 35204df). "
            "max abs(τ4 − τ0): over seeds; non-zero only where float rounding flips a tie in the ranking.")
    table = make_table(rows, vs, acts, command(), note)
    atomic_write_text(out / "table.md", table)
    plot(rows, vs, acts, out / "ablations.png")
    zoo_rel = str(Path(zoo_path).resolve().relative_to(ROOT)) if Path(zoo_path).resolve().is_relative_to(ROOT) \
        else str(zoo_path)
    write_meta(out, **git_state(), zoo=zoo_rel, zoo_nets=a.nets, zoo_seed=a.zoo_seed, activations=acts,
               seeds=list(range(a.seeds)), variants=vs, test_levels=[0, 4], eval_seed=EVAL_SEED,
               settings={k: getattr(a, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "feature_readout",
                                                     "design", "threads")},
               wall_seconds=round(time.perf_counter() - t_start, 1))
    print(table, flush=True)
    print(f"wrote {out}/results.json, table.md, ablations.png, meta.json", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
