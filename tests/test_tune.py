"""The evaluation protocol of issue 18: tuning budgets drawn from each model's search space, selection on
validation only, the zoo digest of a results directory, undefined τ shown as n/a."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from monomial_gmn.data import load_zoo, save_zoo, zoo_digest
from monomial_gmn.models import list_models, model_info, search_space
from monomial_gmn.train import compare, evaluate_run, kendall_tau, make_task, results_table
from monomial_gmn.train._compare import ROW_KEYS, select_trial, trial_configs
from monomial_gmn._search_space import Choice, LogUniform, Param, apply_overrides, sample_configs
from test_train_zoos import make_cnn_zoo

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(batch_size=8, hidden_dim=8, num_layers=1, epochs=1)
# a quick space: the registered ones with small networks and few epochs / boosting rounds
QUICK = {"epochs": [1, 2], "hidden_dim": [4, 8], "num_layers": [1], "max_iter": [10, 20], "min_samples_leaf": [2, 5]}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune") / "zoo"
    make_cnn_zoo(path, n=96)
    return path


@pytest.fixture(scope="module")
def tuned(zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned") / "out"
    rows = compare(str(zoo), "generalization", ["statnn", "statnn-gbm"], [0, 2], out, seeds=2, progress=False,
                   tune=3, tune_seed=7, tune_space=QUICK, **TINY)
    return out, rows


# ------------------------------------------------------------------------------------------- search spaces
def test_every_model_has_a_documented_search_space():
    import monomial_gmn.models as models

    doc = models.__doc__
    for name in list_models():
        space = model_info(name).search_space
        assert space, name
        for param in space:
            assert f"``{param}``" in doc, f"{name}: {param} is not in the models docstring table"
    assert search_space("gmn")["lr"].dist == LogUniform(3e-4, 1e-2)
    assert "learning_rate" in search_space("statnn-gbm") and "lr" not in search_space("statnn-gbm")


def test_draws_are_deterministic_and_respect_requires():
    space = search_space("monomial")
    a = sample_configs(space, 5, seed=3, key="monomial")
    assert a == sample_configs(space, 5, seed=3, key="monomial")
    assert a != sample_configs(space, 5, seed=4, key="monomial")
    assert len({json.dumps(c, sort_keys=True) for c in a}) > 1
    assert all("probe_scales" not in c and "feature_slots" not in c for c in a)   # readouts off
    with_probes = sample_configs(space, 5, seed=3, key="monomial", fixed={"probes": 64, "feature_readout": True})
    assert all({"probe_scales", "probe_agreement", "feature_slots"} <= set(c) for c in with_probes)
    # the shared parameters get the same draws with and without the readout (paired variants)
    assert [{k: c[k] for k in a[0]} for c in with_probes] == a
    for c in with_probes:
        assert 3e-4 <= c["lr"] <= 1e-2 and c["hidden_dim"] in (32, 64, 128)
        assert isinstance(c["probe_scales"], list)                              # JSON-plain, as config.json
    assert trial_configs("statnn", None) == [{}]
    with pytest.raises(ValueError, match="at least 1"):
        trial_configs("statnn", 0)


def test_overrides():
    spaces = {m: search_space(m) for m in ("monomial", "statnn-gbm")}
    out = apply_overrides(spaces, {"epochs": [1], "monomial": {"hidden_dim": {"log_uniform": [4, 8]},
                                                               "dropout": None}}, ["monomial", "statnn-gbm"])
    assert out["monomial"]["epochs"].dist == Choice((1,)) and "epochs" not in out["statnn-gbm"]
    assert out["monomial"]["hidden_dim"].dist == LogUniform(4.0, 8.0) and "dropout" not in out["monomial"]
    assert spaces["monomial"]["epochs"].dist != Choice((1,))                     # the registry is untouched
    with pytest.raises(ValueError, match="no model of statnn-gbm tunes 'epochs'"):
        apply_overrides(spaces, {"epochs": [1]}, ["statnn-gbm"])
    assert "epochs" not in apply_overrides(spaces, {"epochs": [1]}, ["statnn-gbm"], known_names=["epochs"])[
        "statnn-gbm"]                                   # a parameter of other models: no typo, nothing to replace
    with pytest.raises(ValueError, match=r"tune_space\[.lr.\]: LogUniform needs 0 < low"):
        apply_overrides(spaces, {"lr": {"log_uniform": [0, 1]}}, ["monomial"])
    assert Param(Choice((1, 2))).requires is None


def test_select_trial_uses_the_given_scores_only():
    assert select_trial([0.1, 0.5, 0.5, 0.2]) == 1                 # ties → the lower trial
    assert select_trial([None, float("nan"), 0.0]) == 2             # undefined ranks last
    assert select_trial([None, None]) == 0
    assert select_trial([0.3, 0.1], higher_is_better=False) == 1


# ------------------------------------------------------------------------------------------- tuned compare
def test_tuned_rows_trials_and_meta(zoo, tuned):
    out, rows = tuned
    assert all(set(r) == set(ROW_KEYS) for r in rows)
    assert rows == json.loads((out / "results.json").read_text())
    trials = json.loads((out / "trials.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["zoo_digest"] == zoo_digest(zoo) and meta["task"] == "generalization"
    assert meta["last"]["tune"] == 3 and set(meta["last"]["search_spaces"]) == {"statnn", "statnn-gbm"}
    assert meta["last"]["search_spaces"]["statnn"]["epochs"]["dist"] == [1, 2]
    assert len(trials) == 2 * 2 * 3
    for model in ("statnn", "statnn-gbm"):
        configs = [t["params"] for t in trials if t["model"] == model and t["seed"] == 0]
        assert configs == [t["params"] for t in trials if t["model"] == model and t["seed"] == 1]  # same draws
        assert len({json.dumps(c, sort_keys=True) for c in configs}) == 3
        for seed in (0, 1):
            mine = [t for t in trials if t["model"] == model and t["seed"] == seed]
            assert [t["trial"] for t in mine] == [0, 1, 2] and sum(t["selected"] for t in mine) == 1
            best = next(t for t in mine if t["selected"])
            assert best["trial"] == select_trial([t["val"]["tau"] for t in mine])
            for t in mine:                   # the drawn parameters reached the run's configuration
                cfg = json.loads((out / "runs" / f"{model}-t{t['trial']}-s{seed}" / "config.json").read_text())
                for k, v in t["params"].items():
                    assert cfg.get(k, cfg["model_kwargs"].get(model, {}).get(k)) == v, (k, v)
                val = {r["metric"]: r["value"] for r in rows if r["model"] == model and r["seed"] == seed
                       and r["trial"] == t["trial"] and r["split"] == "val"}
                assert val == t["val"] and set(val) == {"tau", "r2", "mse"}       # every trial's val rows
                # no test metric of any trial was computed by training (only the selection's, below)
                assert json.loads((out / "runs" / f"{model}-t{t['trial']}-s{seed}" / "metrics.json")
                                  .read_text())["test"] is None
            test = [r for r in rows if r["model"] == model and r["seed"] == seed and r["split"] == "test"]
            assert {r["trial"] for r in test} == {best["trial"]} and all(r["selected"] for r in test)
            assert {(r["augment_level"], r["metric"]) for r in test} == {
                (lv, m) for lv in (0.0, 2.0) for m in ("tau", "r2", "mse")}
            pred = json.loads((out / "predictions" / f"{model}-s{seed}.json").read_text())
            assert pred["trial"] == best["trial"] and set(pred["levels"]) == {"0", "2"}
            tau0 = next(r["value"] for r in test if r["augment_level"] == 0.0 and r["metric"] == "tau")
            again = kendall_tau(np.array(pred["levels"]["0"]), np.array(pred["targets"]))
            assert math.isnan(again) if tau0 is None else again == pytest.approx(tau0)
    # the test rows are the only ones of split "test", and no unselected trial has any
    assert not [r for r in rows if r["split"] == "test" and not r["selected"]]
    table = (out / "table.md").read_text()
    assert "| statnn |" in table and "Selected configurations" in table


def test_untuned_compare_is_one_trial_with_the_same_schema(zoo, tmp_path):
    rows = compare(str(zoo), "generalization", ["statnn"], [0], tmp_path / "one", seeds=1, progress=False,
                   **TINY)
    assert all(set(r) == set(ROW_KEYS) for r in rows)
    assert {r["trial"] for r in rows} == {0} and all(r["selected"] for r in rows)
    assert {r["split"] for r in rows} == {"val", "test", None}
    trials = json.loads((tmp_path / "one" / "trials.json").read_text())
    assert len(trials) == 1 and trials[0]["params"] == {} and trials[0]["config"]["epochs"] == 1
    assert (tmp_path / "one" / "runs" / "statnn-s0" / "model.pt").is_file()


def _zoo_with_test_targets(src, dst, targets_by_pos: dict[int, float]):
    """A copy of the zoo at ``src`` whose nets at the given positions get new ``test_accuracy`` targets."""
    z = load_zoo(src)
    cols = dict(z.columns)
    acc = np.array(cols["test_accuracy"], dtype=np.float64)
    for i, v in targets_by_pos.items():
        acc[i] = v
    cols["test_accuracy"] = acc
    from monomial_gmn.data import Zoo

    save_zoo(Zoo(z.archs, {k: np.asarray(v) for k, v in z.params.items()}, z.net_row, cols, z.images, {},
                 z.task_kind), dst)
    return dst


def test_selection_uses_validation_only(zoo, tuned, tmp_path):
    """Give the test nets targets equal to an unselected trial's test predictions (it ranks them as well as its
    ties allow): a selection on test would prefer it to the selected trial; compare's selection (and every
    validation number) does not move."""
    out, rows = tuned
    trials = json.loads((out / "trials.json").read_text())
    task = make_task("generalization")
    for model in ("statnn", "statnn-gbm"):
        mine = [t for t in trials if t["model"] == model and t["seed"] == 0]
        chosen = next(t["trial"] for t in mine if t["selected"])
        loser = next(t["trial"] for t in mine if not t["selected"])
        ev = evaluate_run(out / "runs" / f"{model}-t{loser}-s0", ["none"], return_predictions=True)
        pred = np.array(ev["rows"][0]["predictions"])
        assert np.unique(pred).size > 1, "the losing trial must rank the test nets"
        scrambled = _zoo_with_test_targets(zoo, tmp_path / f"zoo-{model}",
                                           dict(zip(ev["index"], (pred + 1e-3 * np.arange(len(pred))).tolist())))
        new_out = tmp_path / f"out-{model}"
        compare(str(scrambled), "generalization", [model], [0, 2], new_out, seeds=2, progress=False, tune=3,
                tune_seed=7, tune_space=QUICK, **TINY)
        new_trials = json.loads((new_out / "trials.json").read_text())
        assert [(t["seed"], t["trial"], t["selected"], t["val"]) for t in new_trials] == \
            [(t["seed"], t["trial"], t["selected"], t["val"]) for t in trials if t["model"] == model]
        # on the scrambled zoo the losing trial beats the chosen one on test: a test-based selection would switch
        task.setup(load_zoo(scrambled))
        taus = {}
        for t in (chosen, loser):
            e = evaluate_run(new_out / "runs" / f"{model}-t{t}-s0", ["none"])
            taus[t] = e["rows"][0]["tau"]
        assert taus[chosen] is None or math.isnan(taus[chosen]) or taus[loser] > taus[chosen], taus
        new_test = {(r["seed"], r["augment_level"], r["metric"]): r["value"]
                    for r in json.loads((new_out / "results.json").read_text()) if r["split"] == "test"}
        old_test = {(r["seed"], r["augment_level"], r["metric"]): r["value"]
                    for r in rows if r["split"] == "test" and r["model"] == model}
        assert new_test != old_test                           # the test targets did change the test scores


# ------------------------------------------------------------------------------------------- digest / append
def test_append_checks_the_zoo_digest(zoo, tuned, tmp_path):
    import shutil

    out = tmp_path / "res"
    shutil.copytree(tuned[0], out, ignore=shutil.ignore_patterns("runs"))
    compare(str(zoo), "generalization", ["statnn"], [0], out, seeds=1, progress=False, append=True,
            tune=2, tune_space=QUICK, **TINY)
    rows = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in rows} == {"statnn", "statnn-gbm"}               # statnn replaced, gbm kept
    assert {r["seed"] for r in rows if r["model"] == "statnn"} == {0}
    assert {r["seed"] for r in rows if r["model"] == "statnn-gbm"} == {0, 1}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["zoo_digest"] == zoo_digest(zoo) and len(meta["history"]) == 1
    assert not (out / "predictions" / "statnn-s1.json").exists()
    # another zoo (one target changed) is refused before anything is trained
    other = _zoo_with_test_targets(zoo, tmp_path / "other", {95: 0.5})
    assert zoo_digest(other) != zoo_digest(zoo)
    with pytest.raises(ValueError, match="another zoo"):
        compare(str(other), "generalization", ["gmn"], [0], out, seeds=1, progress=False, append=True, **TINY)
    assert not (out / "runs" / "gmn-s0").exists()
    # results without a recorded digest cannot be appended to
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "results.json").write_text("[]")
    with pytest.raises(ValueError, match="do not record a zoo digest"):
        compare(str(zoo), "generalization", ["statnn"], [0], legacy, seeds=1, progress=False, append=True, **TINY)
    with pytest.raises(ValueError, match="activation"):
        compare(str(zoo), "generalization", ["statnn"], [0], out, seeds=1, progress=False, append=True,
                activation="relu", **TINY)


def test_cli_tune_and_append_refusal(zoo, tmp_path, capsys):
    from monomial_gmn.cli import main

    out = tmp_path / "cli"
    argv = ["compare", "--zoo", str(zoo), "--task", "generalization", "--models", "statnn-gbm", "--out", str(out),
            "--seeds", "1", "--augment-levels", "0", "--quiet", "--tune", "2", "--tune-space", json.dumps(QUICK)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Selected configurations" in printed and "trials.json" in printed
    assert len(json.loads((out / "trials.json").read_text())) == 2
    other = _zoo_with_test_targets(zoo, tmp_path / "other", {95: 0.5})
    code = main(["compare", "--zoo", str(other), "--task", "generalization", "--models", "statnn-gbm", "--out",
                 str(out), "--seeds", "1", "--augment-levels", "0", "--quiet", "--append"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "another zoo" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------------------- undefined τ
def test_undefined_tau_is_na_with_a_count_never_zero(zoo, tmp_path):
    # one leaf per tree (min_samples_leaf above the training set): every prediction is the same value
    rows = compare(str(zoo), "generalization", ["statnn-gbm"], [0, 1], tmp_path / "const", seeds=2, progress=False,
                   model_kwargs={"statnn-gbm": {"min_samples_leaf": 10_000, "max_iter": 5}}, **TINY)
    taus = [r for r in rows if r["metric"] == "tau" and r["split"] == "test"]
    assert taus and all(r["value"] is None for r in taus)
    table = (tmp_path / "const" / "table.md").read_text()
    assert "n/a (2/2 seeds)" in table and "0.000" not in table.split("**Selected")[0]
    assert "undefined (constant predictions) — 4 (model, seed, level) value(s)" in table
    mixed = [{"model": "m", "task": "generalization", "augment_level": 0.0, "seed": s, "metric": "tau",
              "value": v, "split": "test", "trial": 0, "selected": True} for s, v in enumerate([0.5, None, 0.7])]
    legacy = [{"model": "old", "augment_level": 0.0, "seed": 0, "metric": "tau", "value": 0.65}]  # no split key
    val_row = [{**mixed[0], "split": "val", "value": 0.99}]
    text = results_table(mixed + legacy + val_row, "tau")
    assert re.search(r"\| m \| 0\.600 ± 0\.100 \(1 of 3 n/a\) \|", text)
    assert "| old | **0.650 ± 0.000** |" in text and "0.990" not in text        # legacy rows are test rows
    assert math.isnan(kendall_tau(np.ones(5), np.arange(5.0))) and math.isnan(kendall_tau(np.ones(1), np.ones(1)))
    assert torch.isfinite(torch.tensor(kendall_tau(np.arange(5.0), np.arange(5.0))))


def test_search_space_table_agrees_with_the_registry():
    """The models docstring's search-space table names, for every parameter, exactly the models that tune it (the
    readout parameters apply to every model that accepts the part)."""
    import re

    import monomial_gmn.models as models

    lines = models.__doc__.split("Search spaces")[1].splitlines()
    rules = [i for i, ln in enumerate(lines) if ln.startswith("====")]
    rows = lines[rules[1] + 1:rules[2]]
    width = len(lines[rules[0]].split()[0]) + 2
    table: dict[str, set[str]] = {}
    group: list[str] = []
    for ln in rows:
        cell, param = ln[:width].strip(), re.search(r"``(\w+)``", ln[width:]).group(1)
        if cell:
            group = list_models() if cell == "every model" else [m.strip() for m in cell.split(",")]
        table.setdefault(param, set()).update(group)
    for param, names in table.items():
        assert names == {m for m in list_models() if param in model_info(m).search_space}, param
    assert {p for m in list_models() for p in model_info(m).search_space} == set(table)
    for m in list_models():                            # the readout parameters of every part a model accepts
        space = model_info(m).search_space
        assert ("feature_slots" in space) == ("features" in model_info(m).parts), m
        assert {"probe_scales", "probe_agreement"} <= set(space) or "probes" not in model_info(m).parts, m
