"""Issue 18: the README quality table under one protocol — ≥ 2 zoo seeds × ≥ 3 training seeds, every model tuned
with the same budget and selected on validation, a paired bootstrap over test nets beside every "beats" claim.

    python experiments/protocol.py                                   # the full-size run (see "Cost" below)
    python experiments/protocol.py --nets 256 --seeds 1 --tune 2 --tune-space '{"epochs": [2]}' \\
        --out /tmp/protocol --runs /tmp/protocol-runs --cache /tmp/protocol-zoos   # a quick check

Steps, from an empty cache:

1. For every zoo seed z, build (or reuse, when its build finished) ``CACHE/digits-cnn-<nets>-s<z>`` with
   ``monomial_gmn.data.build_zoo("digits-cnn", nets=..., seed=z)`` (byte-identical whatever ``--workers``); its
   content digest (:func:`monomial_gmn.data.zoo_digest`) goes into ``meta.json``.
2. For every zoo seed and activation subset, ``monomial_gmn.train.compare(..., tune=N)`` (the code behind
   ``monomial-gmn compare --tune N``): each model — ``--extra-model`` variants included — gets N configurations
   drawn from its own search space (``monomial_gmn.models``), trained on the train nets with training seeds
   0..K-1; each seed keeps the configuration with the best validation τ, and only that one is evaluated on the
   test nets, at every augmentation level. Runs go to ``RUNS/z<z>/<act>/`` and are reused by a re-run.
3. The quality table per activation: test τ mean ± std over every (zoo seed, training seed) pair, per model and
   level ("n/a" with a count where τ is undefined).
4. Claims: at every level, the best model (highest mean τ at level 0) against each other model, and every
   ``monomial*`` model against the best other model. Δτ = mean over (zoo seed, training seed) of τ_A − τ_B on the
   same test nets; its 95 % interval and one-sided p come from a paired bootstrap over test nets (the test nets
   of each zoo resampled with replacement, the same draw for both models and every seed). "beats" is written
   only where the whole interval is above 0.

Writes to ``--out``: ``results.json`` (compare's rows + ``zoo_seed``, ``activation``), ``claims.json``,
``table.md`` (tables, claims, selected configurations, commands), ``tau_vs_scale_<act>.png`` and ``meta.json``
(command, machine, git state, zoo seeds and digests, settings, search spaces, wall time).

Cost. Every model trains ``zoo seeds × activations × seeds × N`` runs (defaults: 2 × 2 × 3 × 8 = 96). The wall
time measured for one run of each model on the 2,048-net zoo, and the estimate of the full default run, are in
``experiments/results/protocol_cost.md``.
"""

from __future__ import annotations

import argparse
import json
import os
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
from _common import RESULTS, ROOT, command, ensure_zoo, git_state, machine, parse_extra_model  # noqa: E402

MODELS = ("statnn-gbm", "invariant-gbm", "statnn", "gmn", "np", "monomial")


def _tau(pred: np.ndarray, target: np.ndarray) -> float:
    from monomial_gmn.train import kendall_tau

    return kendall_tau(pred, target)


def paired_bootstrap(preds_a: dict, preds_b: dict, targets: dict, n_boot: int = 1000,
                     seed: int = 0) -> dict[str, float | int | None]:
    """Paired bootstrap over test nets of Δτ = τ_A − τ_B.

    Args:
        preds_a, preds_b: ``{zoo_seed: [[n_z] predictions per training seed]}`` of models A and B on the same
            test nets (the training seeds need not match in number).
        targets: ``{zoo_seed: [n_z] targets}``.
        n_boot: bootstrap draws; seed: their seed.

    Returns:
        ``{"delta", "low", "high", "p", "n_boot", "nets"}``: Δ on the full test sets (mean over zoo seeds and
        training seeds of each model's τ, undefined τ left out), the 2.5 / 97.5 % bootstrap quantiles of Δ, the
        one-sided p = P(Δ* <= 0), and the number of test nets. ``delta`` None where a model has no defined τ.
    """
    rng = np.random.default_rng(seed)
    zs = sorted(targets)

    def delta(index: dict | None) -> float:
        def mean_tau(preds: dict) -> float:
            vals = []
            for z in zs:
                t = targets[z] if index is None else targets[z][index[z]]
                for p in preds[z]:
                    vals.append(_tau(p if index is None else p[index[z]], t))
            vals = [v for v in vals if np.isfinite(v)]
            return float(np.mean(vals)) if vals else float("nan")
        return mean_tau(preds_a) - mean_tau(preds_b)

    full = delta(None)
    nets = int(sum(len(targets[z]) for z in zs))
    if not np.isfinite(full):
        return {"delta": None, "low": None, "high": None, "p": None, "n_boot": n_boot, "nets": nets}
    boots = np.array([delta({z: rng.integers(0, len(targets[z]), len(targets[z])) for z in zs})
                      for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    return {"delta": full, "low": float(np.quantile(boots, 0.025)), "high": float(np.quantile(boots, 0.975)),
            "p": float(np.mean(boots <= 0)), "n_boot": int(len(boots)), "nets": nets}


def _load_predictions(cmp_dirs: dict[int, Path], model: str, seeds: int, level: str) -> tuple[dict, dict]:
    preds, targets = {}, {}
    for z, d in cmp_dirs.items():
        files = [json.loads((d / "predictions" / f"{model}-s{s}.json").read_text()) for s in range(seeds)]
        preds[z] = [np.asarray(f["levels"][level], dtype=np.float64) for f in files]
        targets[z] = np.asarray(files[0]["targets"], dtype=np.float64)
        if any(f["index"] != files[0]["index"] for f in files):
            raise SystemExit(f"{d}: the seeds of {model} were tested on different nets")
    return preds, targets


def _mean_tau(rows: list[dict], model: str, level: float) -> float:
    v = [r["value"] for r in rows if r["model"] == model and r["augment_level"] == level and r["metric"] == "tau"
         and r["split"] == "test" and r["value"] is not None]
    return float(np.mean(v)) if v else float("nan")


def claims(rows: list[dict], cmp_dirs: dict[int, Path], models: list[str], levels: list[float], seeds: int,
           n_boot: int, seed: int = 0) -> list[dict]:
    """The pairs compared (see the module docstring) with their paired bootstrap at every level."""
    from monomial_gmn.train import format_level

    means = {m: _mean_tau(rows, m, levels[0]) for m in models}
    ranked = [m for m in sorted(models, key=lambda m: -means[m] if np.isfinite(means[m]) else np.inf)]
    pairs = []
    if ranked and np.isfinite(means[ranked[0]]):
        pairs += [(ranked[0], m) for m in ranked[1:]]
    for m in models:
        if m.startswith("monomial"):
            others = [o for o in ranked if not o.startswith("monomial") and np.isfinite(means[o])]
            if others and (m, others[0]) not in pairs:
                pairs.append((m, others[0]))
    out = []
    for a, b in pairs:
        for lv in levels:
            key = format_level(lv)
            pa, targets = _load_predictions(cmp_dirs, a, seeds, key)
            pb, targets_b = _load_predictions(cmp_dirs, b, seeds, key)
            if any(not np.array_equal(targets[z], targets_b[z]) for z in targets):
                raise SystemExit(f"{a} and {b} were tested on different nets")
            res = paired_bootstrap(pa, pb, targets, n_boot, seed)
            out.append({"a": a, "b": b, "augment_level": lv, **res,
                        "beats": res["low"] is not None and res["low"] > 0})
    return out


def claims_table(cl: list[dict], act: str) -> str:
    if not cl:
        return ""
    lines = [f"**{act}: paired bootstrap over test nets** (Δτ = τ_A − τ_B, mean over zoo seeds × training seeds; "
             f"95 % interval; p = P(Δ* ≤ 0); {cl[0]['n_boot']} draws, {cl[0]['nets']} test nets)", "",
             "| A | B | level | Δτ | 95 % interval | p | A beats B? |", "|---|---|---|---|---|---|---|"]
    for c in cl:
        if c["delta"] is None:
            lines.append(f"| {c['a']} | {c['b']} | {c['augment_level']:g} | n/a | — | — | undefined τ |")
            continue
        verdict = "**yes**" if c["beats"] else ("no (B higher)" if c["high"] < 0 else "not shown (interval ∋ 0)")
        lines.append(f"| {c['a']} | {c['b']} | {c['augment_level']:g} | {c['delta']:+.4f} | "
                     f"[{c['low']:+.4f}, {c['high']:+.4f}] | {c['p']:.3f} | {verdict} |")
    return "\n".join(lines) + "\n"


def _zoo_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--zoo-option {text!r}: expected KEY=JSON")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def zoo_path(cache: Path, nets: int, seed: int, options: dict, workers: int) -> Path:
    """``cache/digits-cnn-<nets>-s<seed>[-<options digest>]``, built if absent or unfinished; a finished zoo there
    built with another configuration (kind, nets, seed, chunk size, options) is refused, not reused."""
    import hashlib

    from monomial_gmn.data import build_config

    want = build_config("digits-cnn", nets, seed, None, options)
    tag = "" if not options else "-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    path = ensure_zoo("digits-cnn", cache / f"digits-cnn-{nets}-s{seed}{tag}", nets, seed=seed, workers=workers,
                      **options)
    got = json.loads((path / "zoo.json").read_text()).get("meta", {}).get("config")
    if got != want:
        raise SystemExit(f"{path}: holds a zoo built with another configuration ({got}); move it away or use "
                         f"another --cache")
    return path


def estimate(zoo: Path, act: str, models: list[str], variants: dict, tune: int, tune_space: dict | None,
             runs_per_trial: int, batch_size: int, work: Path) -> tuple[str, float]:
    """Time one epoch of each SGD model at every width of its search space (at the space's mean depth, rounded)
    and one fit of each boosted-tree model on ``zoo``'s ``act`` nets; project the wall time of ``tune`` trials ×
    ``runs_per_trial`` (zoo seeds × activations × training seeds) from the mean epochs of each space. Returns
    (a markdown table, the projected seconds)."""
    from monomial_gmn.models import Choice, model_info
    from monomial_gmn.train import TrainConfig, open_run_zoo, train, tuning_spaces

    z = open_run_zoo(zoo, act)
    lines = ["| model | measured (wall s) | expected s per trial: wall / CPU |", "|---|---|---|"]
    total = cpu_total = 0.0

    def timed(cfg: TrainConfig) -> tuple[float, float]:
        c0 = time.process_time()
        sec = float(train(cfg, resume=True, zoo=z, progress=False, evaluate_test=False)["train_seconds"])
        return sec, time.process_time() - c0
    for name in models:
        base, opts = variants.get(name, (name, {}))
        space = tuning_spaces([name], tune_space, variants)[name]

        def mean_of(key: str, default: float) -> float:
            d = space[key].dist if key in space else None
            return float(np.mean(d.values)) if isinstance(d, Choice) else default

        kw = {"model_kwargs": {base: opts}} if opts else {}
        if not model_info(base).trainable:
            cfg = TrainConfig(zoo=str(zoo), task="generalization", model=base, out=str(work / f"{name}-gbm"),
                              activation=act, **kw)
            sec, cpu = timed(cfg)
            lines.append(f"| {name} | one fit (default options): {sec:.1f} | {sec:.0f} / {cpu:.0f} |")
            total, cpu_total = total + sec, cpu_total + cpu
            continue
        hd = space["hidden_dim"].dist if "hidden_dim" in space else None
        widths = list(hd.values) if isinstance(hd, Choice) else [32]
        depth = int(round(mean_of("num_layers", 3)))
        per, cpus = [], []
        for h in widths:
            cfg = TrainConfig(zoo=str(zoo), task="generalization", model=base, out=str(work / f"{name}-h{h}"),
                              activation=act, epochs=1, hidden_dim=int(h), num_layers=depth, batch_size=batch_size,
                              **kw)
            sec, cpu = timed(cfg)
            per.append(sec)
            cpus.append(cpu)
        epochs = mean_of("epochs", 10)
        sec, cpu = float(np.mean(per)) * epochs, float(np.mean(cpus)) * epochs
        lines.append(f"| {name} | one epoch at hidden {', '.join(map(str, widths))} (depth {depth}): "
                     f"{', '.join(f'{x:.1f}' for x in per)} | {sec:.0f} / {cpu:.0f} |")
        total, cpu_total = total + sec, cpu_total + cpu
    projected, projected_cpu = total * tune * runs_per_trial, cpu_total * tune * runs_per_trial
    lines += ["", f"Projected: {total:.0f} s wall ({cpu_total:.0f} s CPU) per (zoo seed, activation, seed, trial) × "
                  f"{tune} trials × {runs_per_trial} (zoo seeds × activations × seeds) = {projected / 3600:.1f} h wall "
                  f"at this machine's current load, {projected_cpu / 3600:.1f} h of one core's CPU time (the wall "
                  "time on a free core), in one process; plus the zoo builds and the test evaluation of the selected "
                  "trials."]
    return "\n".join(lines) + "\n", projected


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", type=int, default=2048, help="nets per zoo (default 2048)")
    p.add_argument("--zoo-seeds", default="0,1", help="zoo seeds (default 0,1)")
    p.add_argument("--cache", default=str(ROOT / "zoos"), help="where zoos are built or reused (default zoos/)")
    p.add_argument("--workers", type=int, default=2, help="zoo build worker processes (default 2)")
    p.add_argument("--zoo-option", action="append", default=[], metavar="KEY=JSON",
                   help="a digits-cnn build option (monomial_gmn.data.CNN_DEFAULTS), e.g. epochs=[1,2]; the zoo "
                        "directory name then carries the options (default: none, the standard zoo)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME:MODEL:JSON",
                   help="also run a registered MODEL with fixed options, reported as NAME, tuned over MODEL's "
                        "space, e.g. 'monomial+probe:monomial:{\"feature_readout\": true, \"probes\": 128}'")
    p.add_argument("--activations", default="relu,tanh")
    p.add_argument("--levels", default="0,1,2,3,4")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per configuration (default 3)")
    p.add_argument("--tune", type=int, default=8, help="configurations per model (default 8)")
    p.add_argument("--tune-seed", type=int, default=0)
    p.add_argument("--tune-space", type=json.loads, default=None, metavar="JSON",
                   help="search-space overrides (see monomial_gmn._search_space), e.g. '{\"epochs\": [20, 40]}'")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws per claim (default 1000)")
    p.add_argument("--out", default=str(RESULTS / "protocol"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "protocol"))
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads (default 1: the CPU is shared)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--estimate", action="store_true",
                   help="only time one epoch / fit of each model on the first zoo seed's first activation and "
                        "print the projected wall time of the run these flags describe")
    a = p.parse_args(argv)

    from monomial_gmn.io import atomic_write_json, atomic_write_text
    from monomial_gmn.data import zoo_digest
    from monomial_gmn.train import compare, plot_results, results_table
    from monomial_gmn.train import parse_levels, parse_models, selection_table

    t_start = time.perf_counter()
    torch.set_num_threads(a.threads)
    zoo_seeds = [int(s) for s in a.zoo_seeds.split(",") if s.strip()]
    acts = [s for s in a.activations.split(",") if s.strip()]
    levels = parse_levels(a.levels)
    extras = [parse_extra_model(x) for x in a.extra_model]
    variants = {name: (model, kw) for name, model, kw in extras}
    models = parse_models([m for m in a.models.split(",") if m] + list(variants), variants)
    if len(zoo_seeds) < 1 or a.seeds < 1:
        raise SystemExit("--zoo-seeds and --seeds need at least one seed each")
    out, runs = Path(a.out), Path(a.runs)
    options = dict(_zoo_option(x) for x in a.zoo_option)
    zoos, timings = {}, {}
    for z in (zoo_seeds[:1] if a.estimate else zoo_seeds):  # an estimate needs the first zoo only
        t0 = time.perf_counter()
        zoos[z] = zoo_path(Path(a.cache), a.nets, z, options, a.workers)
        timings[f"zoo_s{z}"] = round(time.perf_counter() - t0, 1)
    if a.estimate:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            text, _ = estimate(zoos[zoo_seeds[0]], acts[0], models, variants, a.tune, a.tune_space,
                               len(zoo_seeds) * len(acts) * a.seeds, a.batch_size, Path(tmp))
        print(f"Cost estimate ({acts[0]} nets of zoo seed {zoo_seeds[0]}, {a.threads} thread(s), "
              f"{machine()['cpu']}, {os.cpu_count()} cores):\n\n{text}", flush=True)
        return 0
    digests = {z: zoo_digest(path) for z, path in zoos.items()}
    rows, trials, all_claims, spaces = [], [], {}, {}
    settings = dict(seeds=a.seeds, tune=a.tune, tune_seed=a.tune_seed, tune_space=a.tune_space,
                    batch_size=a.batch_size, levels=levels, threads=a.threads)
    for act in acts:
        cmp_dirs = {}
        for z in zoo_seeds:
            t0 = time.perf_counter()
            cmp_dirs[z] = runs / f"z{z}" / act
            got = compare(str(zoos[z]), "generalization", models, levels, cmp_dirs[z], seeds=a.seeds, activation=act,
                          progress=not a.quiet, variants=variants, tune=a.tune, tune_seed=a.tune_seed,
                          tune_space=a.tune_space, batch_size=a.batch_size)
            rows += [{**r, "zoo_seed": z, "activation": act} for r in got]
            trials += [{**t, "zoo_seed": z, "activation": act}
                       for t in json.loads((cmp_dirs[z] / "trials.json").read_text())]
            spaces = json.loads((cmp_dirs[z] / "meta.json").read_text())["last"]["search_spaces"]
            timings[f"{act}_z{z}"] = round(time.perf_counter() - t0, 1)
        mine = [r for r in rows if r["activation"] == act]
        all_claims[act] = claims(mine, cmp_dirs, models, levels, a.seeds, a.bootstrap)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rows)
    atomic_write_json(out / "claims.json", all_claims)
    n = len(zoo_seeds) * a.seeds
    parts = [f"# Generalization prediction (Kendall τ on test nets): {len(zoo_seeds)} zoo seeds × {a.seeds} training "
             f"seeds, every model tuned with {a.tune} configurations", "",
             f"Command: `{command()}`", "",
             f"Zoos: digits-cnn, {a.nets} nets, seeds {', '.join(map(str, zoo_seeds))} (digests "
             + ", ".join(f"s{z} {digests[z][:12]}" for z in zoo_seeds) + "). Each cell: mean ± std over the "
             f"{n} (zoo seed, training seed) pairs of the selected configuration's test τ; level k: test nets "
             "transformed with factors U[1, 10^k] on ReLU neurons, random signs on tanh neurons.", ""]
    for act in acts:
        mine = [r for r in rows if r["activation"] == act]
        parts += [f"## {act} nets", "", results_table(mine, "tau", title=f"generalization, {act} nets"),
                  claims_table(all_claims[act], act)]
        plot_results(mine, "tau", out / f"tau_vs_scale_{act}.png",
                     title=f"digits-cnn {act}: {len(zoo_seeds)} zoos × {a.seeds} seeds, tune {a.tune}")
    parts += ["## Configurations chosen on validation", ""]
    for act in acts:
        for z in zoo_seeds:
            sel = [t for t in trials if t["activation"] == act and t["zoo_seed"] == z]
            parts += [f"### {act}, zoo seed {z}", "", selection_table(sel)]
    wall = round(time.perf_counter() - t_start, 1)
    parts += [f"Wall time: {wall:.0f} s on {os.cpu_count()} cores ({machine()['cpu']}); per step: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".", ""]
    atomic_write_text(out / "table.md", "\n".join(parts))
    atomic_write_json(out / "meta.json", {
        "command": command(), "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "machine": machine(),
        **git_state(), "zoo_nets": a.nets, "zoo_seeds": zoo_seeds, "zoo_options": options,
        "zoos": {str(z): str(p) for z, p in zoos.items()}, "zoo_digests": {str(z): d for z, d in digests.items()},
        "activations": acts, "models": models, "extra_models": a.extra_model, "settings": settings,
        "search_spaces": spaces, "bootstrap": a.bootstrap, "wall_seconds": wall, "timings": timings})
    print((out / "table.md").read_text(), flush=True)
    print(f"wrote {out}/results.json, claims.json, table.md, meta.json, tau_vs_scale_<act>.png", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
