"""The comparison sweep: several models × seeds trained on one zoo, selected on validation, tested at every
augmentation level.

Protocol (``compare(..., tune=N)``; ``monomial-gmn compare --tune N``):

1. Every model gets the same budget: N configurations drawn from its own search space (``ModelInfo.search_space``
   in :mod:`monomial_gmn.models`; draws deterministic in ``tune_seed`` and the model's name, the same for each
   training seed). Without ``tune`` there is one trial: the configuration the keyword arguments give.
2. For each training seed, every trial is trained on the train split (the best validation epoch kept) and scored
   on the validation split only; no test metric of a trial is computed (``train(evaluate_test=False)``).
3. The trial with the best validation metric (NaN ranks last; ties go to the lower trial number) is the seed's
   selected configuration, and only it is evaluated on the test split, at every augmentation level.

Outputs (``compare(..., out=DIR)``):

``DIR/results.json``  rows ``{"model", "task", "augment_level", "seed", "metric", "value", "split", "trial",
                      "selected"}``: every trial's validation metrics (``split: "val"``, level 0), the selected
                      trial's test metrics (``split: "test"``, one row per level and metric) and every trial's
                      parameter count (``metric: "params"``, ``split``/``augment_level`` None). An undefined
                      metric (Kendall τ of constant predictions) has ``value`` None.
``DIR/trials.json``   per (model, seed, trial): the drawn parameters, the full run configuration, the
                      validation metrics, whether it was selected, and its run directory
``DIR/meta.json``     the zoo (path and content digest ``zoo_digest``, see :func:`monomial_gmn.data.zoo_digest`),
                      task, activation, models, seeds, levels, tuning budget and seed, each model's search space
``DIR/predictions/<model>-s<seed>.json``  (generalization) the selected trial's test predictions per level,
                      with the test nets' zoo positions and targets (for paired bootstraps over test nets)
``DIR/table.md``      test metric mean ± std over seeds per model and level, and the selected configurations
``DIR/tau_vs_scale.png``  the metric against log10 of the scaling bound (level k ↔ factors U[1, 10^k])
``DIR/runs/<model>-s<seed>/`` (one trial) or ``DIR/runs/<model>-t<trial>-s<seed>/`` (tuning): the runs; a
                      re-run of ``compare`` with the same settings reuses finished ones

``append=True`` keeps the rows, trials and predictions of the models not run now, and refuses a ``DIR`` whose
``meta.json`` records another zoo digest, task or activation (or none: results from before digests were
recorded cannot be checked).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._io import atomic_path, atomic_write_json, atomic_write_text
from ._augment import parse_augment
from ._tasks import make_task
from ._config import TrainConfig, model_names, model_options
from ._evaluate import evaluate_run
from ._run import open_run_zoo
from ._trainer import train

__all__ = ["compare", "results_table", "plot_results", "parse_levels", "parse_models", "select_trial",
           "trial_configs", "selection_table", "check_append", "format_level", "EVAL_SEED"]

#: The seed of the augmentation draws when ``compare`` tests the selected runs (``evaluate_run(seed=...)``):
#: every model sees the very same transformed test nets.
EVAL_SEED = 12345
ROW_KEYS = ("model", "task", "augment_level", "seed", "metric", "value", "split", "trial", "selected")


def parse_models(text: str | Sequence[str], variants: Iterable[str] = ()) -> list[str]:
    """'monomial,gmn' → ['monomial', 'gmn'] (ValueError naming an unknown model); names in ``variants`` (see
    :func:`compare`) are accepted beside the registered models."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    known = set(variants)
    if not names:
        raise ValueError("--models is empty")
    for m in names:
        if m not in model_names() and m not in known:
            raise ValueError(f"unknown model {m!r}; expected one of {', '.join(model_names())}")
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {','.join(names)}")
    return names


def parse_levels(text: str | Sequence[float]) -> list[float]:
    """'0,1,2' → [0.0, 1.0, 2.0] (ValueError for non-numbers or levels outside [0, 30])."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for p in parts:
        try:
            v = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"--augment-levels: {p!r} is not a number") from None
        if not math.isfinite(v) or v < 0 or v > 30:
            raise ValueError(f"--augment-levels: {p!r} must be a number in [0, 30]")
        out.append(v)
    if not out:
        raise ValueError("--augment-levels is empty")
    return out


def format_level(level: float) -> str:
    """An augmentation level as ``compare`` writes it in tables and in the keys of its prediction files
    (``2.0`` → ``'2'``, ``0.5`` → ``'0.5'``)."""
    return f"{level:g}"


_fmt_level = format_level


def _value(v: Any) -> float | None:
    """A metric for JSON: a float, or None where it is undefined (NaN)."""
    v = float(v)
    return None if math.isnan(v) else v


def _defined(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def select_trial(val_scores: Sequence[float | None], higher_is_better: bool = True) -> int:
    """The index of the best validation score (None/NaN rank last; ties go to the lowest index).

    Only validation scores enter: this is the whole of model selection in :func:`compare`.
    """
    if not val_scores:
        raise ValueError("select_trial needs at least one trial")
    best = 0
    for i, v in enumerate(val_scores):
        b = val_scores[best]
        if not _defined(v):
            continue
        if not _defined(b) or (v > b if higher_is_better else v < b):
            best = i
    return best


_RUN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def trial_configs(model: str, tune: int | None, tune_seed: int = 0, space: Mapping[str, Any] | None = None,
                  fixed: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The configurations tried for a registered ``model``: ``[{}]`` (the base configuration) without ``tune``,
    else ``tune`` draws from ``space`` (default: the model's registered search space) seeded by ``tune_seed``
    and the model's name; ``fixed`` are the model's fixed options (for parameters that require one)."""
    from .._search_space import sample_configs
    from ..models import search_space

    if tune is None:
        return [{}]
    if int(tune) < 1:
        raise ValueError(f"--tune must be at least 1, got {tune}")
    space = search_space(model) if space is None else space
    if not space:
        raise ValueError(f"model {model!r} has no search space to tune over")
    return sample_configs(space, int(tune), tune_seed, key=model, fixed=fixed)


def _split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drawn parameters → (TrainConfig fields, model constructor options)."""
    run = {k: v for k, v in params.items() if k in _RUN_FIELDS}
    return run, {k: v for k, v in params.items() if k not in _RUN_FIELDS}


def _load_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def check_append(out: str | Path, digest: str, task: str, activation: str | None) -> dict[str, Any]:
    """The ``meta.json`` of a results directory that rows of this zoo (``digest``), task and activation may be
    appended to; ValueError naming the difference otherwise (``{}`` when the directory holds no results)."""
    out = Path(out)
    if not (out / "results.json").is_file():
        return {}
    meta = _load_json(out / "meta.json", None)
    if not isinstance(meta, dict) or not meta.get("zoo_digest"):
        raise ValueError(f"{out}: its results do not record a zoo digest (meta.json), so rows of this zoo cannot be "
                         f"appended to them safely; choose another output directory")
    if meta["zoo_digest"] != digest:
        raise ValueError(f"{out}: holds results of another zoo (digest {meta['zoo_digest'][:12]}, this one "
                         f"{digest[:12]}: {meta.get('zoo')}); rows of two zoos are never mixed — choose another "
                         f"output directory")
    for key, mine in (("task", task), ("activation", activation)):
        if meta.get(key) != mine:
            raise ValueError(f"{out}: holds results of {key} {meta.get(key)!r}, not {mine!r}; choose another "
                             f"output directory")
    return meta


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def compare(zoo: str, task: str, models: Sequence[str], levels: Sequence[float], out: str | Path,
            seeds: int = 3, activation: str | None = None, progress: bool = True, zoo_obj: Any = None,
            variants: dict[str, tuple[str, dict[str, Any]]] | None = None, tune: int | None = None,
            tune_seed: int = 0, tune_space: Mapping[str, Any] | None = None, append: bool = False,
            **train_kwargs: Any) -> list[dict[str, Any]]:
    """Train, select on validation and test every model with training seeds 0..seeds-1 (see the module docstring).

    Args:
        zoo: zoo path (its content digest is recorded in ``DIR/meta.json``); task: task name.
        models: registered model names, or names in ``variants``.
        levels: augmentation levels of the test nets (level k: factors U[1, 10^k]; tanh/sin: random signs).
        out: the results directory ``DIR``.
        seeds: training seeds per model (and per trial).
        activation: the zoo's activation subset (None: every net).
        zoo_obj: the already opened zoo of ``zoo``/``activation``/``train_with`` (default: opened here).
        variants: configured models ``models`` may list, e.g.
            ``{"monomial+probe": ("monomial", {"feature_readout": True, "probes": 128})}``: the registered model
            with those fixed options (merged over its ``model_kwargs``); tuned over the registered model's space.
        tune: N configurations per model drawn from its search space, selected per seed on validation; None:
            one trial, the configuration ``train_kwargs`` give.
        tune_seed: the seed of the draws (the same configurations for every training seed of a model).
        tune_space: overrides of the search spaces (JSON grammar of :func:`monomial_gmn._search_space.apply_overrides`,
            e.g. ``{"epochs": [2]}``, ``{"monomial": {"hidden_dim": [64]}}``).
        append: keep the results of other models already in ``DIR`` (same zoo digest, task and activation only).
        **train_kwargs: :class:`TrainConfig` fields shared by every run (epochs, hidden_dim, lr, batch_size,
            augment, train_with, model_kwargs, ...); a drawn parameter replaces the field of the same name.

    Returns:
        The rows written to ``DIR/results.json`` (those of appended-to models included).
    """
    from .._search_space import apply_overrides, describe_space
    from ..data import zoo_digest
    from ..models import search_space

    variants = dict(variants or {})
    for name, spec in variants.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)):
            raise ValueError(f"variant {name!r} must be (registered model, {{options}}), got {spec!r}")
        parse_models([spec[0]])
    models = parse_models(models, variants)
    levels = parse_levels(levels)
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if tune is not None and int(tune) < 1:
        raise ValueError(f"--tune must be at least 1, got {tune}")
    out = Path(out)
    bases = {m: variants.get(m, (m, {}))[0] for m in models}
    every_param = {p for m in model_names() for p in search_space(m)}
    spaces = apply_overrides({m: search_space(bases[m]) for m in models}, tune_space, models, model_names(),
                             every_param) if tune is not None else {m: {} for m in models}
    task_obj = make_task(task, **({"edit": train_kwargs["edit"]} if task == "inr-editing" and "edit" in train_kwargs
                                  else {}))
    task_name = task_obj.name
    digest = zoo_digest(zoo)
    prev_meta = check_append(out, digest, task_name, activation) if append else {}
    if zoo_obj is None:
        zoo_obj = open_run_zoo(zoo, activation, train_kwargs.get("train_with", ()))
    want_predictions = task_name == "generalization"

    rows: list[dict[str, Any]] = []
    trials: list[dict[str, Any]] = []
    predictions: dict[str, Any] = {}
    metric = task_obj.metric
    for model in models:
        base, options = variants.get(model, (model, {}))
        kwargs = dict(train_kwargs)
        mk = dict(kwargs.get("model_kwargs", {}))
        if options:
            mk[base] = {**mk.get(base, {}), **options}
        fixed = model_options(mk, base)
        configs = trial_configs(base, tune, tune_seed, spaces[model], fixed) if tune is not None else [{}]
        for seed in range(seeds):
            t0 = time.perf_counter()
            scores, runs = [], []
            for t, params in enumerate(configs):
                run_params, model_params = _split_params(params)
                mk_t = {**mk, base: {**mk.get(base, {}), **model_params}} if model_params else mk
                name = f"{model}-s{seed}" if tune is None else f"{model}-t{t}-s{seed}"
                cfg = TrainConfig(zoo=str(zoo), task=task, model=base, out=str(out / "runs" / name), seed=seed,
                                  activation=activation, **{**kwargs, **run_params, "model_kwargs": mk_t})
                result = train(cfg, resume=True, zoo=zoo_obj, progress=progress, evaluate_test=False)
                val = {k: _value(v) for k, v in result["val"].items()}
                scores.append(val[metric])
                runs.append(cfg.out)
                trials.append({"model": model, "base_model": base, "seed": seed, "trial": t, "params": params,
                               "config": _jsonable({k: v for k, v in cfg.to_dict().items() if k != "zoo"}),
                               "run": cfg.out, "val": val, "selected": False})
                for k, v in val.items():
                    rows.append({"model": model, "task": task_name, "augment_level": 0.0, "seed": seed, "metric": k,
                                 "value": v, "split": "val", "trial": t, "selected": False})
                rows.append({"model": model, "task": task_name, "augment_level": None, "seed": seed,
                             "metric": "params", "value": float(result.get("params", 0)), "split": None,
                             "trial": t, "selected": False})
                if progress and tune is not None:
                    shown = "n/a" if val[metric] is None else f"{val[metric]:.3f}"
                    tqdm.write(f"  {model:<10} seed {seed} trial {t}: val {metric} {shown}  {params}")
            best = select_trial(scores, task_obj.higher_is_better)
            for r in rows:
                if r["model"] == model and r["seed"] == seed and r["trial"] == best:
                    r["selected"] = True
            for tr in trials:
                if tr["model"] == model and tr["seed"] == seed and tr["trial"] == best:
                    tr["selected"] = True
            ev = evaluate_run(runs[best], [str(lv) for lv in levels], seed=EVAL_SEED, zoo=zoo_obj,
                              return_predictions=want_predictions)
            for level, row in zip(levels, ev["rows"]):
                for k, v in row.items():
                    if k in ("augment", "predictions"):
                        continue
                    rows.append({"model": model, "task": task_name, "augment_level": level, "seed": seed,
                                 "metric": k, "value": _value(v), "split": "test", "trial": best, "selected": True})
            if want_predictions:
                predictions[f"{model}-s{seed}"] = {
                    "model": model, "seed": seed, "trial": best, "run": runs[best], "split": "test",
                    "index": ev["index"], "targets": ev["targets"],
                    "levels": {format_level(lv): row["predictions"] for lv, row in zip(levels, ev["rows"])}}
            if progress:
                sweep = " ".join("n/a" if not _defined(_value(row[metric])) else f"{row[metric]:.3f}"
                                 for row in ev["rows"])
                sel = "" if tune is None else f"selected trial {best} of {len(configs)}, "
                shown = "n/a" if scores[best] is None else f"{scores[best]:.3f}"
                tqdm.write(f"  {model:<10} seed {seed}: {sel}val {metric} {shown} | test {metric} at levels "
                           f"{','.join(format_level(lv) for lv in levels)}: {sweep} ({time.perf_counter() - t0:.0f} s)")
                sys.stdout.flush()

    out.mkdir(parents=True, exist_ok=True)
    now = set(models)
    if append and prev_meta:
        rows = [r for r in _load_json(out / "results.json", []) if r["model"] not in now] + rows
        trials = [t for t in _load_json(out / "trials.json", []) if t["model"] not in now] + trials
    for stale in (out / "predictions").glob("*.json"):  # this call's models (all models without append)
        if not append or stale.stem.rsplit("-s", 1)[0] in now:
            stale.unlink()
    for key, value in predictions.items():
        atomic_write_json(out / "predictions" / f"{key}.json", value)
    call = {"models": models, "variants": {k: [b, o] for k, (b, o) in variants.items() if k in now},
            "seeds": seeds, "levels": levels, "tune": tune, "tune_seed": tune_seed,
            "search_spaces": {m: describe_space(spaces[m]) for m in models},
            "settings": _jsonable(train_kwargs), "eval_seed": EVAL_SEED,
            "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    history = (prev_meta.get("history", []) + [prev_meta.get("last", {})]) if prev_meta else []
    meta = {"zoo": str(zoo), "zoo_digest": digest, "task": task_name, "activation": activation,
            "models": list(dict.fromkeys(r["model"] for r in rows)), "last": call,
            "history": [h for h in history if h]}
    atomic_write_json(out / "results.json", rows)
    atomic_write_json(out / "trials.json", trials)
    atomic_write_json(out / "meta.json", meta)
    title = task_name + (f" ({activation} nets)" if activation else "")
    atomic_write_text(out / "table.md", results_table(rows, metric, title=title) + "\n" + selection_table(trials))
    plot_results(rows, metric, out / "tau_vs_scale.png",
                 title=task_name + (f", {activation} nets" if activation else ""))
    return rows


def _is_test(r: Mapping[str, Any]) -> bool:
    """Rows written before the split field existed hold test metrics only."""
    return r.get("split", "test") == "test"


def _summary(rows: list[dict[str, Any]], metric: str) -> tuple[list[str], list[float], dict]:
    """Per (model, level): (mean, std over the defined values, defined count, total count) of test ``metric``."""
    sel = [r for r in rows if r["metric"] == metric and _is_test(r)]
    models = list(dict.fromkeys(r["model"] for r in sel))
    levels = sorted({r["augment_level"] for r in sel})
    stats = {}
    for m in models:
        for lv in levels:
            vals = [r["value"] for r in sel if r["model"] == m and r["augment_level"] == lv]
            if not vals:
                continue
            ok = np.array([v for v in vals if _defined(v)], dtype=np.float64)
            mean = float(ok.mean()) if len(ok) else float("nan")
            std = float(ok.std(ddof=0)) if len(ok) else float("nan")
            stats[m, lv] = (mean, std, len(ok), len(vals))
    return models, levels, stats


def results_table(rows: list[dict[str, Any]], metric: str, title: str = "") -> str:
    """A markdown table: test ``metric`` mean ± std over seeds per model (rows) and augmentation level (columns).

    Only test rows enter (``split == "test"``; rows without a split are read as test rows). Level k means test nets
    transformed with factors U[1, 10^k] on ReLU neurons / random signs on tanh neurons (level 0: untransformed). An
    undefined value (Kendall τ of constant predictions; None or NaN in the rows) is never averaged as a number: a
    cell reads "n/a (k/n seeds)" when no seed has a value, and "mean ± std (k of n n/a)" when some do. The best
    mean per column is in bold. ``params`` is the selected trial's parameter count (a range when the seeds
    selected different sizes). Where rows carry a ``peak_rss_mb`` metric (peak memory of training the model, see
    :func:`monomial_gmn.bench.measure_training`), a ``peak MiB`` column follows.
    """
    models, levels, stats = _summary(rows, metric)
    higher = metric not in ("mse", "cross_entropy")
    peak = {r["model"]: r["value"] for r in rows if r["metric"] == "peak_rss_mb"}
    head = ("| model | " + " | ".join(f"level {format_level(lv)}" for lv in levels) + " | params |"
            + (" peak MiB |" if peak else ""))
    lines = []
    if title:
        lines += [f"**{title}** — test {metric}, mean ± std over seeds", ""]
    lines += [head, "|" + "---|" * (len(levels) + 2 + bool(peak))]
    best = {}
    for lv in levels:
        vals = [stats[m, lv][0] for m in models if (m, lv) in stats and stats[m, lv][2]]
        best[lv] = (max if higher else min)(vals) if vals else None
    undefined = 0
    for m in models:
        cells = []
        for lv in levels:
            if (m, lv) not in stats:
                cells.append("—")
                continue
            mean, std, k, n = stats[m, lv]
            undefined += n - k
            if k == 0:
                cells.append(f"n/a ({n}/{n} seeds)")
                continue
            cell = f"{mean:.3f} ± {std:.3f}"
            cell = f"**{cell}**" if best[lv] is not None and mean == best[lv] else cell
            cells.append(cell + (f" ({n - k} of {n} n/a)" if k < n else ""))
        p = sorted({int(r["value"]) for r in rows if r["model"] == m and r["metric"] == "params"
                    and r.get("selected", True) and r["value"] is not None})
        cells.append("—" if not p or p[-1] <= 0 else f"{p[0]:,}" if len(p) == 1 else f"{p[0]:,}–{p[-1]:,}")
        if peak:
            cells.append(f"{peak[m]:,.0f}" if m in peak else "—")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if undefined:
        lines += ["", f"n/a: {metric} undefined (constant predictions) — {undefined} (model, seed, level) "
                      f"value(s); means and stds are over the defined seeds only."]
    return "\n".join(lines) + "\n"


def selection_table(trials: list[dict[str, Any]]) -> str:
    """Markdown: for each model and seed, the selected trial, its validation metrics and drawn parameters
    (empty string when there is nothing to choose from: no trials, or one per model and seed)."""
    if not trials or all(t["trial"] == 0 and not t["params"] for t in trials):
        return ""
    lines = ["**Selected configurations** (best validation metric among each seed's trials; test evaluated "
             "for these only)", "", "| model | seed | trial | of | validation | parameters |", "|---|---|---|---|---|---|"]
    count: dict[tuple[str, int], int] = {}
    for t in trials:
        count[t["model"], t["seed"]] = count.get((t["model"], t["seed"]), 0) + 1
    for t in trials:
        if not t.get("selected"):
            continue
        val = ", ".join(f"{k} " + ("n/a" if v is None else f"{v:.3f}") for k, v in t["val"].items())
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items()) or "(base configuration)"
        lines.append(f"| {t['model']} | {t['seed']} | {t['trial']} | {count[t['model'], t['seed']]} | {val} | "
                     f"{params} |")
    return "\n".join(lines) + "\n"


def plot_results(rows: list[dict[str, Any]], metric: str, path: str | Path, title: str = "") -> None:
    """The test metric against log10 of the scaling bound, one line per model, error bars over seeds (PNG).

    Levels where a model's metric is undefined for every seed are left out of its line. The legend sits to the
    right of the axes, so any number of models stays readable: each model gets a colour of a 10-colour (up to 10
    models) or 20-colour cycle, and the line style changes each time the cycle wraps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, levels, stats = _summary(rows, metric)
    ncol = 1 if len(models) <= 18 else 2
    longest = max((len(m) for m in models), default=8)
    fig, ax = plt.subplots(figsize=(5.5 + ncol * (0.6 + 0.065 * longest), max(3.8, 0.2 * len(models) / ncol + 1)),
                           dpi=120)
    colors = plt.get_cmap("tab20" if len(models) > 10 else "tab10").colors
    styles = ("-", "--", ":", "-.")
    for i, m in enumerate(models):
        lv = [x for x in levels if (m, x) in stats and stats[m, x][2]]
        ax.errorbar(lv, [stats[m, x][0] for x in lv], yerr=[stats[m, x][1] for x in lv], marker="o", markersize=4,
                    capsize=3, label=m, color=colors[i % len(colors)], linestyle=styles[i // len(colors) % 4])
    ax.set_xlabel("log10 of the scaling bound s (ReLU neurons × U[1, s]; tanh/sin: random signs)", fontsize=8)
    ax.set_ylabel(f"test {metric}")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if models:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=ncol, frameon=False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


_ = parse_augment  # the level grammar the sweep relies on (levels are passed as parse_augment specs)
