"""The issue-8 experiment scripts (augmentation sweep, ablations) run end to end on a tiny zoo, so they cannot rot."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_train_zoos import make_cnn_zoo

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(EXPERIMENTS))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield importlib.import_module("augmentation"), importlib.import_module("ablations")
    finally:
        torch.set_num_threads(before)
        sys.path.remove(str(EXPERIMENTS))


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "cnn"
    make_cnn_zoo(path, n=48, channels=2)
    return path


def _meta_ok(out: Path) -> dict:
    meta = json.loads((out / "meta.json").read_text())
    assert {"command", "utc", "machine", "commit", "dirty_src", "zoo_digest"} <= set(meta)
    assert all(f.startswith("src/") for f in meta["dirty_src"])  # whole paths from `git status --porcelain`
    assert (out / "table.md").read_text().startswith("Command: `")
    return meta


def test_augmentation_script(scripts, tiny_zoo, tmp_path):
    aug, _ = scripts
    out = tmp_path / "aug"
    rc = aug.main(["--zoo", str(tiny_zoo), "--models", "statnn,monomial", "--train-levels", "0,2",
                   "--invariant-train-levels", "0,2", "--test-levels", "0,2", "--seeds", "1", "--epochs", "1",
                   "--hidden-dim", "4", "--num-layers", "1", "--batch-size", "8", "--out", str(out),
                   "--runs", str(tmp_path / "runs"), "--threads", "1", "--quiet"])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    taus = {(r["model"], r["train_level"], r["augment_level"]): r["value"] for r in rows if r["metric"] == "tau"}
    assert set(taus) == {(m, tl, lv) for m in ("statnn", "monomial") for tl in (0.0, 2.0) for lv in (0.0, 2.0)}
    # MonomialGMN is exactly invariant: every test level gives the same τ (up to float ties)
    for tl in (0.0, 2.0):
        assert taus["monomial", tl, 0.0] == pytest.approx(taus["monomial", tl, 2.0], abs=0.02)
    # train-time augmentation really changed the permutation-only model's training
    assert taus["statnn", 0.0, 0.0] != taus["statnn", 2.0, 0.0]
    assert {r["metric"] for r in rows} >= {"tau", "val_tau", "train_seconds", "params"}
    assert (out / "tau_vs_scale.png").stat().st_size > 1000
    meta = _meta_ok(out)
    assert meta["train_levels"] == {"statnn": [0.0, 2.0], "monomial": [0.0, 2.0]}
    table = (out / "table.md").read_text()
    assert "| statnn | train-time |" in table and "| monomial | level 2 |" in table


def test_ablation_variants_are_one_factor_at_a_time(scripts):
    _, abl = scripts
    vs = abl.variants(3, 32, [1, 3], [16, 32])
    names = [v["name"] for v in vs]
    assert names == ["fwd-L3-H32", "bi-L3-H32", "fwd-L1-H32", "fwd-L3-H16"]
    assert vs[0]["factors"] == ["direction", "depth", "width"]  # the base row appears in every ablation
    assert [v["factors"] for v in vs[1:]] == [["direction"], ["depth"], ["width"]]
    assert vs[1]["bidirectional"] and not vs[0]["bidirectional"]


def test_ablations_script(scripts, tiny_zoo, tmp_path):
    _, abl = scripts
    out = tmp_path / "abl"
    rc = abl.main(["--zoo", str(tiny_zoo), "--design", "layers", "--activations", "relu,tanh", "--base-layers", "1",
                   "--base-hidden", "4",
                   "--depths", "1,2", "--hiddens", "4", "--seeds", "1", "--epochs", "1", "--batch-size", "8",
                   "--out", str(out), "--runs", str(tmp_path / "runs"), "--threads", "1", "--quiet"])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    assert {(r["activation"], r["variant"]) for r in rows} == {
        (a, v) for a in ("relu", "tanh") for v in ("fwd-L1-H4", "bi-L1-H4", "fwd-L2-H4")}
    for r in rows:
        assert r["tau4"] == pytest.approx(r["tau0"], abs=0.02)  # exact invariance, up to float ties
        assert r["params"] > 0 and r["train_seconds"] > 0 and -1 <= r["val_tau"] <= 1
    p = {r["variant"]: r["params"] for r in rows if r["activation"] == "relu"}
    assert p["fwd-L2-H4"] > p["fwd-L1-H4"] and p["bi-L1-H4"] > p["fwd-L1-H4"]
    assert (out / "ablations.png").stat().st_size > 1000
    _meta_ok(out)
    assert "### Bidirectional vs forward-only" in (out / "table.md").read_text()


def _generalization():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        return importlib.import_module("generalization")
    finally:
        sys.path.remove(str(EXPERIMENTS))


def test_generalization_script_with_and_without_the_other_subset(tiny_zoo, tmp_path):
    gen = _generalization()
    out, runs = tmp_path / "gen", tmp_path / "runs"
    common = ["--zoo", str(tiny_zoo), "--activations", "relu", "--levels", "0,2", "--seeds", "1", "--epochs", "1",
              "--hidden-dim", "4", "--num-layers", "1", "--batch-size", "8", "--out", str(out), "--runs", str(runs),
              "--threads", "1", "--quiet"]
    assert gen.main([*common, "--models", "statnn-gbm,statnn", "--no-invariant-gbm"]) == 0
    assert gen.main([*common, "--models", "statnn", "--append", "--train-with-other",
                     "--extra-model", 'monomial+f:monomial:{"feature_readout": true, "feature_slots": 2}']) == 0
    rows = json.loads((out / "relu" / "results.json").read_text())
    assert {r["model"] for r in rows} == {"statnn-gbm", "statnn", "statnn+other", "monomial+f+other", "invariant-gbm+other"}
    # the same test nets for every row: one test set size, from the subset's own split
    meta = json.loads((out / "relu" / "meta.json").read_text())
    assert meta["train_with"] == ["tanh"] and meta["train_nets"] > meta["split_sizes"]["train"]
    assert meta["history"][0]["split_sizes"] == meta["split_sizes"]
    assert (runs / "relu+other" / "runs" / "statnn-s0" / "metrics.json").is_file()
    trained = json.loads((runs / "relu+other" / "runs" / "statnn-s0" / "metrics.json").read_text())["nets"]
    assert trained["train"] == meta["train_nets"] and trained["test"] == meta["split_sizes"]["test"]
    # baselines trained on both subsets count towards the bar too
    check = gen.target_check(rows, [0.0, 2.0])
    taus = {m: [r["value"] for r in rows if r["model"] == m and r["metric"] == "tau" and r["augment_level"] == 0.0
                and r["split"] == "test" and r["value"] is not None] for m in ("statnn-gbm", "statnn", "statnn+other")}
    best = max((m for m in taus if taus[m]), key=lambda m: taus[m][0])       # undefined τ (None) is no baseline
    assert check[0].startswith(f"best baseline at level 0: {best} ")
    assert any(line.startswith("monomial+f+other τ per level") for line in check)


def test_generalization_script_memory_and_report_only(tiny_zoo, tmp_path):
    """--memory-only adds a peak-MiB column without training; --report-only rewrites the reports from the rows."""
    gen = _generalization()
    out, runs = tmp_path / "gen", tmp_path / "runs"
    common = ["--zoo", str(tiny_zoo), "--activations", "relu", "--levels", "0", "--seeds", "1", "--epochs", "1",
              "--hidden-dim", "4", "--num-layers", "1", "--batch-size", "8", "--out", str(out), "--runs", str(runs),
              "--threads", "1", "--quiet", "--no-invariant-gbm"]
    assert gen.main([*common, "--models", "statnn-gbm,statnn"]) == 0
    before = json.loads((out / "relu" / "results.json").read_text())
    assert "peak MiB" not in (out / "relu" / "table.md").read_text()
    assert gen.main([*common, "--models", "statnn", "--memory-only"]) == 0
    rows = json.loads((out / "relu" / "results.json").read_text())
    assert [r for r in rows if r["metric"] != "peak_rss_mb"] == before  # nothing retrained, nothing dropped
    peak = [r for r in rows if r["metric"] == "peak_rss_mb"]
    assert [r["model"] for r in peak] == ["statnn"] and peak[0]["value"] > 0
    table = (out / "relu" / "table.md").read_text()
    assert "| params | peak MiB |" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("| statnn |"))
    assert line.rstrip(" |").split("|")[-1].strip() == f"{peak[0]['value']:,.0f}"
    assert next(ln for ln in table.splitlines() if ln.startswith("| statnn-gbm |")).endswith("| — |")
    assert "peak MiB" in (out / "summary.md").read_text()
    # measuring again replaces the memory row instead of adding a second one
    assert gen.main([*common, "--models", "statnn", "--memory-only"]) == 0
    rows = json.loads((out / "relu" / "results.json").read_text())
    assert sum(r["metric"] == "peak_rss_mb" for r in rows) == 1
    table = (out / "relu" / "table.md").read_text()
    (out / "relu" / "table.md").unlink()
    (out / "summary.md").unlink()
    assert gen.main(["--out", str(out), "--report-only"]) == 0
    assert (out / "relu" / "table.md").read_text() == table and (out / "summary.md").is_file()
    with pytest.raises(SystemExit, match="no <act>/results.json"):
        gen.main(["--out", str(tmp_path / "empty"), "--report-only"])


def test_generalization_append_refuses_another_zoo(tiny_zoo, tmp_path):
    gen = _generalization()
    other = tmp_path / "other-zoo"
    make_cnn_zoo(other, n=48, channels=2, seed=1)
    common = ["--activations", "relu", "--levels", "0", "--seeds", "1", "--out", str(tmp_path / "gen"),
              "--runs", str(tmp_path / "runs"), "--threads", "1", "--quiet", "--no-invariant-gbm",
              "--models", "statnn-gbm"]
    assert gen.main(["--zoo", str(tiny_zoo), *common]) == 0
    from monomial_gmn.data import zoo_digest

    assert json.loads((tmp_path / "gen" / "relu" / "meta.json").read_text())["zoo_digest"] == zoo_digest(tiny_zoo)
    with pytest.raises(SystemExit, match="another zoo"):
        gen.main(["--zoo", str(other), *common, "--append", "--runs", str(tmp_path / "runs2")])
    assert gen.main(["--zoo", str(tiny_zoo), *common, "--append"]) == 0     # the same zoo is welcome


def test_protocol_script_end_to_end_from_an_empty_cache(tmp_path, capsys):
    """Two zoo seeds built from nothing, two training seeds, two tuned configurations per model, a paired bootstrap
    beside every claim; JSON + Markdown + PNG."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        protocol = importlib.import_module("protocol")
    finally:
        sys.path.remove(str(EXPERIMENTS))
    out, cache = tmp_path / "out", tmp_path / "cache"
    quick = {"epochs": [1], "hidden_dim": [4], "num_layers": [1], "max_iter": [10], "min_samples_leaf": [2, 4]}
    argv = ["--nets", "40", "--zoo-seeds", "0,1", "--cache", str(cache), "--workers", "1",
            "--zoo-option", "epochs=[1,2]", "--zoo-option", "channels=4", "--zoo-option", "train_fractions=[0.25]",
            "--models", "statnn-gbm,statnn", "--activations", "relu", "--levels", "0,2", "--seeds", "2",
            "--tune", "2", "--tune-space", json.dumps(quick), "--batch-size", "8", "--bootstrap", "30",
            "--out", str(out), "--runs", str(tmp_path / "runs"), "--threads", "1", "--quiet"]
    assert protocol.main(argv) == 0
    assert len([d for d in cache.iterdir() if (d / "zoo.json").is_file()]) == 2       # built from an empty cache
    rows = json.loads((out / "results.json").read_text())
    test = [r for r in rows if r["metric"] == "tau" and r["split"] == "test"]
    assert {(r["model"], r["zoo_seed"], r["seed"], r["augment_level"]) for r in test} == {
        (m, z, s, lv) for m in ("statnn-gbm", "statnn") for z in (0, 1) for s in (0, 1) for lv in (0.0, 2.0)}
    assert all(r["selected"] for r in test)
    assert {r["trial"] for r in rows if r["split"] == "val"} == {0, 1}       # every trial's validation rows
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["zoo_digests"]) == {"0", "1"} and len(set(meta["zoo_digests"].values())) == 2
    assert meta["settings"]["tune"] == 2 and meta["wall_seconds"] > 0
    assert meta["search_spaces"]["statnn-gbm"]["min_samples_leaf"]["dist"] == [2, 4]
    claims = json.loads((out / "claims.json").read_text())["relu"]
    assert {(c["a"], c["b"]) for c in claims} and {c["augment_level"] for c in claims} == {0.0, 2.0}
    for c in claims:
        if c["delta"] is not None:
            assert c["low"] <= c["high"] and 0 <= c["p"] <= 1 and c["beats"] == (c["low"] > 0)
    table = (out / "table.md").read_text()
    assert "paired bootstrap over test nets" in table and "| statnn-gbm |" in table and "Wall time" in table
    assert (out / "tau_vs_scale_relu.png").read_bytes()[:4] == b"\x89PNG"
    # a re-run reuses the cached zoos and runs and reproduces the numbers
    assert protocol.main(argv) == 0
    assert json.loads((out / "results.json").read_text()) == rows
    # --estimate times one epoch / fit per model on the cached zoo and projects the run's wall time
    capsys.readouterr()
    assert protocol.main([*argv, "--estimate"]) == 0
    text = capsys.readouterr().out
    assert "| statnn | one epoch at hidden 4 (depth 1)" in text and "| statnn-gbm | one fit" in text
    assert "× 2 trials × 4 (zoo seeds × activations × seeds)" in text


def test_paired_bootstrap_detects_a_real_difference():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        protocol = importlib.import_module("protocol")
    finally:
        sys.path.remove(str(EXPERIMENTS))
    rng = np.random.default_rng(0)
    t = {0: rng.uniform(size=200), 1: rng.uniform(size=150)}
    good = {z: [t[z] + rng.normal(scale=0.05, size=len(t[z])) for _ in range(3)] for z in t}
    bad = {z: [t[z] + rng.normal(scale=0.5, size=len(t[z])) for _ in range(3)] for z in t}
    res = protocol.paired_bootstrap(good, bad, t, n_boot=200)
    assert res["delta"] > 0.3 and res["low"] > 0 and res["p"] == 0.0 and res["nets"] == 350
    same = protocol.paired_bootstrap(good, good, t, n_boot=50)
    assert same["delta"] == 0.0 and same["low"] == same["high"] == 0.0
    const = {z: [np.ones(len(t[z]))] for z in t}
    assert protocol.paired_bootstrap(const, good, t, n_boot=10)["delta"] is None      # undefined τ: no claim


def test_quality_defaults_pools_several_zoos_and_rebuilds_from_saved(tmp_path, tiny_zoo):
    """Two zoos → one table over (zoo, training seed) pairs and bootstraps over both zoos' test nets; the same
    tables again from the saved results without training; saved results of another zoo are refused."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        qd = importlib.import_module("quality_defaults")
    finally:
        sys.path.remove(str(EXPERIMENTS))
    other = tmp_path / "other"
    make_cnn_zoo(other, n=48, channels=2, seed=5)
    out = tmp_path / "q"
    argv = ["--zoo", str(tiny_zoo), "--zoo", str(other), "--models", "statnn,statnn-gbm", "--activations", "relu",
            "--levels", "0,2", "--seeds", "2", "--bootstrap", "20", "--out", str(out)]
    assert qd.main(argv) == 0
    assert (out / "z0" / "relu" / "results.json").is_file() and (out / "z1" / "relu" / "results.json").is_file()
    table = (out / "table-relu.md").read_text()
    assert "2 zoo seeds × 2 training seeds" in table and "| statnn-gbm |" in table
    claims = (out / "claims-relu.md").read_text()
    nets = sum(len(json.loads((out / f"z{i}" / "relu" / "predictions" / "statnn-gbm-s0.json").read_text())["targets"])
               for i in (0, 1))
    assert f"{nets} test nets" in claims and "| statnn | statnn-gbm |" in claims.replace("statnn-gbm | statnn |",
                                                                                        "statnn | statnn-gbm |")
    def body(name):
        return [ln for ln in (out / name).read_text().splitlines() if not ln.startswith("Command:")]

    first, first_claims = body("table-relu.md"), body("claims-relu.md")
    assert qd.main([*argv, "--from-saved"]) == 0
    assert body("table-relu.md") == first and body("claims-relu.md") == first_claims
    with pytest.raises(SystemExit, match="another zoo"):
        qd.main(["--zoo", str(other), "--zoo", str(tiny_zoo), *argv[4:], "--from-saved"])


def test_orbit_diagnostic_model_sees_the_orbit_and_only_that(tiny_zoo):
    """experiments/orbit_information.py's diagnostic model: permutation-invariant (assert_equivariant on pure
    permutations) but NOT scale-invariant (it is given the orbit position on purpose); the plain MonomialGMN with
    the same widths is invariant under the same scalings."""
    from monomial_gmn.data import load_zoo
    from monomial_gmn.group import MonomialGroup
    from monomial_gmn.nn import MonomialGMN
    from monomial_gmn.testing import assert_equivariant

    sys.path.insert(0, str(EXPERIMENTS))
    try:
        orbit = importlib.import_module("orbit_information")
    finally:
        sys.path.remove(str(EXPERIMENTS))
    torch.manual_seed(0)
    batch = load_zoo(tiny_zoo, activation="relu").batch(np.arange(4), dtype=torch.float64)
    diag = orbit.OrbitAwareMonomial(1, hidden_dim=8, num_layers=1).double().eval()
    plain = MonomialGMN(1, hidden_dim=8, num_layers=1).double().eval()
    named = MonomialGroup(batch).testing_elements(torch.Generator().manual_seed(0))
    by = dict(named)
    assert_equivariant(diag, batch, [("permutation", by["permutation"])])
    assert_equivariant(plain, batch, [("scaling", by["scaling"]), ("mixed", by["mixed"])])
    with pytest.raises(AssertionError):
        assert_equivariant(diag, batch, [("scaling", by["scaling"])])
