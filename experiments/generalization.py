"""Issue 11 / paper table 1 and figure: generalization prediction on digits-cnn, ReLU and tanh subsets.

    python experiments/generalization.py                               # the committed results
    python experiments/generalization.py --nets 256 --seeds 1 --epochs 3 --out /tmp/gen   # a quick check

For each activation subset, every model (``invariant-gbm`` included) is trained with seeds 0..K-1 through the
library's public sweep (``monomial_gmn.train.compare``, the code behind ``monomial-gmn compare``), selected on the
validation nets (with ``--tune N``: the best of N configurations drawn from each model's search space) and
evaluated on the test nets transformed at augmentation levels 0-4 (level k: ReLU-neuron factors U[1, 10^k]; tanh
neurons: random signs at every level k >= 1; level 0: untransformed; the same transformed nets for every model).
``meta.json`` records the zoo's content digest; ``--append`` refuses results of another zoo.

Writes to ``--out`` (default experiments/results/generalization/): ``<act>/results.json``, ``<act>/table.md``,
``<act>/tau_vs_scale.png``, ``summary.md`` (both subsets + the issue-11 target check) and ``meta.json``
(command, machine, zoo, seeds, settings). Runs (model weights) go to ``--runs`` (not committed); a re-run
reuses the finished ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

if "--threads" in sys.argv:  # BLAS/OpenMP (scikit-learn) threads must be fixed before numpy is imported
    os.environ.setdefault("OMP_NUM_THREADS", sys.argv[sys.argv.index("--threads") + 1])
else:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, ensure_zoo, load_json, parse_extra_model, write_meta  # noqa: E402

NN_MODELS = ("statnn-gbm", "statnn", "gmn", "np", "monomial")
BASELINES = ("statnn-gbm", "statnn", "gmn", "np")
OTHER = "+other"  # name suffix of the models trained with --train-with-other (they count as baselines too)


def ensemble_rows(run_dir: Path, models: list[str], extra: list[str], levels: list[float], seeds: int, zoo,
                  eval_seed: int) -> list[dict]:
    """Rows of '<name>-ens<K>': each NN model's K seed runs averaged (``monomial_gmn.train.ensemble_run_metrics``)."""
    from monomial_gmn.models import model_info
    from monomial_gmn.train import ensemble_run_metrics

    named = [(m, run_dir, m) for m in models if model_info(m).trainable]
    for name, model, _ in map(parse_extra_model, extra):
        if model_info(model).trainable:
            named.append((name, run_dir / name, model))
    rows = []
    for name, cmp_dir, model in named:
        ev = ensemble_run_metrics(selected_runs(cmp_dir, model, seeds), [str(lv) for lv in levels], zoo=zoo,
                                  seed=eval_seed)
        for level, row in zip(levels, ev["rows"]):
            rows += [{"model": f"{name}-ens{seeds}", "task": ev["task"], "augment_level": level, "seed": 0,
                      "metric": k, "value": None if v != v else float(v), "split": "test", "trial": None,
                      "selected": True} for k, v in row.items() if k != "augment"]
    return rows


def selected_runs(cmp_dir: Path, model: str, seeds: int) -> list[Path]:
    """The run of each seed's selected trial, from ``compare``'s ``cmp_dir/trials.json``."""
    trials = load_json(Path(cmp_dir) / "trials.json")
    by_seed = {t["seed"]: Path(t["run"]) for t in trials if t["model"] == model and t["selected"]}
    missing = [s for s in range(seeds) if s not in by_seed]
    if missing:
        raise SystemExit(f"{cmp_dir}/trials.json: no selected run of {model} for seed(s) {missing}")
    return [by_seed[s] for s in range(seeds)]


def memory_rows(specs: list[tuple[str, str, dict]], zoo_path: Path, act: str, common: dict, threads: int,
                progress: bool = True) -> list[dict]:
    """Rows of metric ``peak_rss_mb``: peak memory of training each (name, model, options) configuration for one
    epoch (seed 0, the runs' own settings), each in a fresh process (``monomial_gmn.bench.measure_training``)."""
    import dataclasses

    from monomial_gmn.bench import run_in_subprocess
    from monomial_gmn.train import TrainConfig

    settings = {f.name: common[f.name] for f in dataclasses.fields(TrainConfig) if f.name in common}
    rows = []
    for name, model, kw in specs:
        cfg = TrainConfig(zoo=str(zoo_path), task="generalization", model=model, out="unused", seed=0,
                          model_kwargs=dict(kw), **settings)
        res = run_in_subprocess({"kind": "training", "threads": threads, "kwargs": {"config": cfg.to_dict()}})
        if res.get("status") != "ok":
            raise SystemExit(f"--memory: measuring {name} ({act}) failed: {res.get('reason')}")
        if progress:
            print(f"  {name}: peak RSS {res['peak_rss_mb']:.0f} MiB training one epoch "
                  f"({res['peak_rss_mb_above_import']:.0f} MiB above the import)", flush=True)
        rows.append({"model": name, "task": "generalization", "augment_level": None, "seed": 0,
                     "metric": "peak_rss_mb", "value": float(res["peak_rss_mb"]), "split": None, "trial": None,
                     "selected": True})
    return rows


def write_subset_report(sub: Path, rows: list[dict], act: str, sizes: dict) -> str:
    """``sub/table.md`` and ``sub/tau_vs_scale.png`` from ``rows``; returns the table."""
    from monomial_gmn.io import atomic_write_text
    from monomial_gmn.train import plot_results, results_table

    title = f"generalization, {act} nets ({sizes['train']} train / {sizes['val']} val / {sizes['test']} test)"
    table = results_table(rows, "tau", title=title)
    atomic_write_text(sub / "table.md", table)
    plot_results(rows, "tau", sub / "tau_vs_scale.png", title=f"digits-cnn, {act} nets")
    return table


def target_check(rows: list[dict], levels: list[float]) -> list[str]:
    """Issue 11: monomial τ >= best baseline τ at level 0 + 0.02 at every level, and |τ_k − τ_0| <= 0.002."""
    def mean(model, lv):  # test rows (rows without a split are older test rows); undefined τ left out
        v = [r["value"] for r in rows if r["model"] == model and r["augment_level"] == lv and r["metric"] == "tau"
             and r.get("split", "test") == "test" and r["value"] is not None]
        return float(np.mean(v)) if v else float("nan")

    base = {m: mean(m, 0.0) for b in BASELINES for m in (b, b + OTHER)}
    base = {m: v for m, v in base.items() if np.isfinite(v)}
    monomials = [m for m in dict.fromkeys(r["model"] for r in rows) if m.startswith("monomial")]
    if not base or not any(np.isfinite(mean(m, 0.0)) for m in monomials):
        return ["target check: missing models"]
    best_m = max(base, key=base.get)
    bar = base[best_m] + 0.02
    lines = [f"best baseline at level 0: {best_m} τ = {base[best_m]:.3f}; target τ >= {bar:.3f} at every level"]
    for name in monomials:
        mono = {lv: mean(name, lv) for lv in levels}
        drift = max(abs(mono[lv] - mono[0.0]) for lv in levels)
        ok_levels = all(mono[lv] >= bar for lv in levels)
        lines += [f"{name} τ per level: " + ", ".join(f"{lv:g}: {mono[lv]:.3f}" for lv in levels)
                  + f"; max |τ(k) − τ(0)| = {drift:.4f} (target <= 0.002) → "
                  + f"**target {'met' if ok_levels and drift <= 0.002 else 'NOT met'}**"]
    inv = {lv: mean("invariant-gbm", lv) for lv in levels}
    if all(np.isfinite(v) for v in inv.values()):
        lines.append("invariant-gbm τ per level: " + ", ".join(f"{lv:g}: {inv[lv]:.3f}" for lv in levels)
                     + f" (vs bar {bar:.3f}: {'above' if min(inv.values()) >= bar else 'below'})")
    return lines


def write_summary(out: Path) -> None:
    """``out/summary.md`` from every ``out/<act>/results.json`` present (tables + the issue-11 target check)."""
    from monomial_gmn.io import atomic_write_text
    from monomial_gmn.train import results_table

    lines = ["# Generalization prediction on digits-cnn (Kendall τ on the test split)", ""]
    for sub in sorted(p for p in out.iterdir() if (p / "results.json").is_file()):
        rows, meta = load_json(sub / "results.json"), load_json(sub / "meta.json")
        levels = meta["levels"]
        sz = meta["split_sizes"]
        title = f"{sub.name} nets ({sz['train']} train / {sz['val']} val / {sz['test']} test)"
        lines += [f"## {sub.name} subset", "", results_table(rows, "tau", title=title),
                  *[f"- {c}" for c in target_check(rows, levels)], "",
                  "Commands (in order; later ones add models with --append):", ""]
        for m in [*meta.get("history", []), meta]:
            lines += [f"- `{m['command']}` — models {', '.join(m['models'])}; zoo {m['zoo']} (seed {m['zoo_seed']}); "
                      f"seeds 0..{m['seeds'] - 1}; {m['wall_seconds']:.0f} s on {m['machine']['cores']} shared cores "
                      f"({m['machine']['cpu']}), {m['utc']} UTC"]
        lines += [""]
    lines += ["Level k: test nets transformed with factors U[1, 10^k] on ReLU neurons and random signs on tanh "
              "neurons, hidden neurons permuted (level 0: untransformed).", ""]
    atomic_write_text(out / "summary.md", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-cnn-1024"), help="digits-cnn zoo (built if absent)")
    p.add_argument("--nets", type=int, default=1024, help="nets to build if the zoo is absent (default 1024)")
    p.add_argument("--zoo-seed", type=int, default=0)
    p.add_argument("--models", default=",".join(NN_MODELS))
    p.add_argument("--invariant-gbm", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--activations", default="relu,tanh")
    p.add_argument("--levels", default="0,1,2,3,4")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--hidden-dim", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--patience", type=int, default=0)
    p.add_argument("--train-augment", default="none", help="training augmentation of every run")
    p.add_argument("--train-with-other", action="store_true",
                   help="also train every model on the other activation's train and val nets (validation and test "
                        f"nets unchanged); rows are named '<model>{OTHER}', runs go to <runs>/<act>{OTHER}")
    p.add_argument("--out", default=str(RESULTS / "generalization"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "generalization"))
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME:MODEL:JSON",
                   help="also run a registered MODEL with build_model keyword arguments JSON, reported as NAME, "
                        "e.g. 'monomial+feat:monomial:{\"feature_readout\": true, \"feature_slots\": 4}'")
    p.add_argument("--ensemble", action="store_true",
                   help="also report, for every NN model run now, the mean prediction of its seeds as '<name>-ens<K>'")
    p.add_argument("--append", action="store_true",
                   help="keep the rows of other models already in --out/<act>/results.json (replace only the "
                        "models run now)")
    p.add_argument("--memory", action="store_true",
                   help="also measure each model run now: peak RSS of training its seed-0 configuration for one "
                        "epoch in a fresh process (a 'peak MiB' column in the tables)")
    p.add_argument("--memory-only", action="store_true",
                   help="only measure the peak memory of the given models (no training) and merge it into "
                        "--out/<act>/results.json")
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite the tables, plots and summary.md from --out/<act>/results.json")
    p.add_argument("--tune", type=int, default=None, metavar="N",
                   help="N configurations per model drawn from its search space, selected per seed on validation "
                        "(monomial_gmn.train.compare(tune=N); default: one trial, the flags' configuration)")
    p.add_argument("--tune-seed", type=int, default=0, help="seed of the configuration draws (default 0)")
    p.add_argument("--tune-space", type=json.loads, default=None, metavar="JSON",
                   help="search-space overrides, e.g. '{\"epochs\": [20, 40]}' (see monomial_gmn._search_space)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads (default 1: the CPU is shared)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    from monomial_gmn.io import atomic_write_json
    from monomial_gmn.data import zoo_digest
    from monomial_gmn.train import compare
    from monomial_gmn.train import EVAL_SEED, parse_levels
    from monomial_gmn.train import open_run_zoo, split_for

    out = Path(a.out)
    if a.report_only:
        subs = sorted(p for p in out.iterdir() if (p / "results.json").is_file()) if out.is_dir() else []
        if not subs:
            raise SystemExit(f"--report-only: no <act>/results.json under {out}")
        for sub in subs:
            write_subset_report(sub, load_json(sub / "results.json"), sub.name,
                                load_json(sub / "meta.json")["split_sizes"])
        write_summary(out)
        print(f"wrote {out}/summary.md", flush=True)
        return 0
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    zoo_path = ensure_zoo("digits-cnn", a.zoo, a.nets, seed=a.zoo_seed)
    levels = parse_levels(a.levels)
    models = [m for m in a.models.split(",") if m]
    run_models = models + (["invariant-gbm"] if a.invariant_gbm and "invariant-gbm" not in models else [])
    settings = {k: getattr(a, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "hidden_dim", "num_layers",
                                           "patience", "train_augment", "train_with_other", "threads", "tune",
                                           "tune_seed", "tune_space")}
    digest = zoo_digest(zoo_path)
    zoo_rel = str(Path(zoo_path).resolve().relative_to(ROOT)) if Path(zoo_path).resolve().is_relative_to(ROOT) \
        else str(zoo_path)
    for act in [s for s in a.activations.split(",") if s]:
        t0 = time.perf_counter()
        train_with = [o for o in ("relu", "tanh") if o != act] if a.train_with_other else []
        zoo = open_run_zoo(zoo_path, act, train_with)
        sizes = {k: int(len(v)) for k, v in split_for(zoo, act, (), 0).items()}  # the subset's own split
        trained_on = int(len(split_for(zoo, act, train_with, 0)["train"]))
        sub = out / act
        if (a.append or a.memory_only) and (sub / "results.json").is_file():
            theirs = load_json(sub / "meta.json").get("zoo_digest") if (sub / "meta.json").is_file() else None
            if theirs != digest:
                raise SystemExit(f"--append: {sub} holds results of "
                                 + (f"another zoo (digest {theirs[:12]}, {zoo_path} is {digest[:12]})" if theirs
                                    else "a zoo whose digest was not recorded")
                                 + "; rows of two zoos are never mixed — use another --out")
        run_dir = Path(a.runs) / (act + ("" if a.train_augment == "none" else f"-aug{a.train_augment}")
                                  + (OTHER if train_with else ""))
        common = dict(seeds=a.seeds, activation=act, progress=not a.quiet, zoo_obj=zoo, epochs=a.epochs,
                      batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, hidden_dim=a.hidden_dim,
                      num_layers=a.num_layers, patience=a.patience, augment=a.train_augment, train_with=train_with,
                      tune=a.tune, tune_seed=a.tune_seed, tune_space=a.tune_space)
        rows: list[dict] = []
        extras = [parse_extra_model(x) for x in a.extra_model]
        specs = [(m, m, {}) for m in run_models] + extras
        if not a.memory_only:
            if run_models:
                rows = compare(str(zoo_path), "generalization", run_models, levels, run_dir, **common)
            for name, model, kw in extras:
                extra = compare(str(zoo_path), "generalization", [model], levels, run_dir / name, model_kwargs=kw,
                                **common)
                for r in extra:
                    r["model"] = name
                rows += extra
            if a.ensemble:
                rows += ensemble_rows(run_dir, models, a.extra_model, levels, a.seeds, zoo, EVAL_SEED)
        if a.memory or a.memory_only:
            rows += memory_rows(specs, Path(zoo_path), act, common, a.threads, progress=not a.quiet)
        for r in rows:  # the schema of compare's rows (rows written by older versions carry test metrics only)
            r.setdefault("split", "test" if r["augment_level"] is not None else None)
            r.setdefault("trial", 0)
            r.setdefault("selected", True)
        if train_with:
            for r in rows:  # 'np' → 'np+other', 'np-ens3' → 'np+other-ens3'
                r["model"] = re.sub(r"(-ens\d+)?$", lambda m: OTHER + (m.group(1) or ""), r["model"], count=1)
        sub.mkdir(parents=True, exist_ok=True)
        if (a.append or a.memory_only) and (sub / "results.json").is_file():
            now = {r["model"] for r in rows}
            if a.memory_only:  # replace only the memory rows of the models measured now
                keep = lambda r: not (r["model"] in now and r["metric"] == "peak_rss_mb")  # noqa: E731
            else:
                keep = lambda r: r["model"] not in now  # noqa: E731
            rows = [r for r in load_json(sub / "results.json") if keep(r)] + rows
        atomic_write_json(sub / "results.json", rows)
        table = write_subset_report(sub, rows, act, sizes)
        history = []
        if (a.append or a.memory_only) and (sub / "meta.json").is_file():
            prev = load_json(sub / "meta.json")
            history = prev.pop("history", []) + [prev]
        write_meta(sub, history=history, zoo=zoo_rel, zoo_digest=digest, zoo_nets=a.nets, zoo_seed=a.zoo_seed,
                   activation=act, split_sizes=sizes, train_with=train_with, train_nets=trained_on,
                   seeds=a.seeds, levels=levels,
                   models=run_models + [x.split(":", 1)[0] for x in a.extra_model],
                   extra_models=a.extra_model, settings=settings, wall_seconds=round(time.perf_counter() - t0, 1))
        print(table, "\n".join(target_check(rows, levels)), sep="\n", flush=True)
    write_summary(out)
    print(f"wrote {out}/summary.md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
