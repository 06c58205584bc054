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

from tqdm.auto import tqdm

from .._io import atomic_write_json, atomic_write_text, read_json
from ._augment import parse_augment
from ._config import TrainConfig, model_names, model_options
from ._evaluate import evaluate_run
from ._report import _defined, format_level, plot_results, results_table, selection_table
from ._run import open_run_zoo
from ._tasks import make_task
from ._trainer import train

__all__ = ["compare", "results_table", "plot_results", "parse_levels", "parse_models", "select_trial",
           "trial_configs", "selection_table", "check_append", "format_level", "EVAL_SEED",
           "tuning_spaces"]

#: The seed of the augmentation draws when ``compare`` tests the selected runs (``evaluate_run(seed=...)``):
#: every model sees the very same transformed test nets.
EVAL_SEED = 12345
ROW_KEYS = ("model", "task", "augment_level", "seed", "metric", "value", "split", "trial", "selected")


def parse_models(text: str | Sequence[str], variants: Iterable[str] = ()) -> list[str]:
    """'monomial,gmn' → ['monomial', 'gmn'] (ValueError naming an unknown model); names in ``variants`` (see
    :func:`compare`) are accepted beside the registered models."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    known = list(dict.fromkeys(variants))
    if not names:
        raise ValueError("--models is empty")
    for m in names:
        if m not in model_names() and m not in known:
            raise ValueError(f"unknown model {m!r}; expected one of {', '.join([*model_names(), *known])}")
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {','.join(names)}")
    return names


def tuning_spaces(models: Sequence[str], tune_space: Mapping[str, Any] | None = None,
                  variants: Mapping[str, tuple[str, dict[str, Any]]] | None = None) -> dict[str, dict[str, Any]]:
    """The search spaces ``compare(models, tune=N, tune_space=..., variants=...)`` draws from: ``{name: {param:
    Param}}``, each model's registry space (a variant's: its registered model's) with ``tune_space`` applied
    (the grammar of ``compare``'s ``tune_space``; a name that no registered model tunes is refused).

    Raises:
        ValueError: a malformed override, or one naming a parameter no registered model has.
    """
    from .._search_space import apply_overrides
    from ..models import search_space

    variants = dict(variants or {})
    models = list(models)
    every_param = {p for m in model_names() for p in search_space(m)}
    return apply_overrides({m: search_space(variants.get(m, (m, {}))[0]) for m in models}, tune_space, models,
                           model_names(), every_param)


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


_fmt_level = format_level  # its former name


def _value(v: Any) -> float | None:
    """A metric for JSON: a float, or None where it is undefined (NaN)."""
    v = float(v)
    return None if math.isnan(v) else v


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
    return read_json(path, "results file", kind=None) if path.is_file() else default


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
    from .._search_space import describe_space
    from ..data import zoo_digest

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
    spaces = tuning_spaces(models, tune_space, variants) if tune is not None else {m: {} for m in models}
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


_ = parse_augment  # the level grammar the sweep relies on (levels are passed as parse_augment specs)
