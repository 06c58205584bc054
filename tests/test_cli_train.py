"""The train / eval / compare / demo subcommands, run in-process with ``main([...])``."""

from __future__ import annotations

import json

import pytest
from _cli_helpers import one_line_error as _one_line_error
import torch

from monomial_gmn.cli import main
from test_train_zoos import make_cnn_zoo, make_inr_zoo

TINY = ["--epochs", "1", "--batch-size", "8", "--hidden-dim", "8", "--num-layers", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "zoo"
    make_cnn_zoo(path, n=48)
    return path




@pytest.mark.parametrize("cmd", ["train", "eval", "compare", "demo"])
def test_help_has_examples(capsys, cmd):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out


def test_train_then_eval(tmp_path, zoo, capsys):
    run = tmp_path / "run"
    assert main(["train", "--zoo", str(zoo), "--task", "generalization", "--model", "monomial", "--out", str(run),
                 "--quiet", *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"tau", "r2", "mse"}
    capsys.readouterr()
    assert main(["eval", str(run), "--augment", "none,scale:100,sign"]) == 0
    out = capsys.readouterr().out
    assert "scale:100" in out and "tau" in out
    ev = json.loads((run / "eval.json").read_text())
    assert [r["augment"] for r in ev["rows"]] == ["none", "scale:100", "sign"]
    assert ev["rows"][0]["tau"] == pytest.approx(metrics["test"]["tau"])
    # --resume of a finished run returns its metrics; without --resume the run is protected
    assert main(["train", "--zoo", str(zoo), "--task", "generalization", "--model", "monomial", "--out", str(run),
                 "--quiet", "--resume", *TINY]) == 0
    err = _one_line_error(capsys, ["train", "--zoo", str(zoo), "--task", "generalization", "--model", "monomial",
                                   "--out", str(run), "--quiet", *TINY])
    assert "already holds a finished run" in err


def test_train_activation_subset(tmp_path, zoo):
    run = tmp_path / "tanh"
    assert main(["train", "--zoo", str(zoo), "--task", "generalization", "--model", "statnn", "--out", str(run),
                 "--activation", "tanh", "--quiet", *TINY]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["activation"] == "tanh" and sum(m["nets"].values()) == 24


def test_train_with_other_activation(tmp_path, zoo):
    """--train-with adds the other subset's train+val nets to training; val and test stay the subset's own."""
    own, both = tmp_path / "own", tmp_path / "both"
    argv = ["train", "--zoo", str(zoo), "--task", "generalization", "--model", "statnn", "--activation", "relu",
            "--quiet", *TINY]
    assert main([*argv, "--out", str(own)]) == 0
    assert main([*argv, "--out", str(both), "--train-with", "tanh"]) == 0
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (own, both))
    assert b["nets"]["val"] == a["nets"]["val"] and b["nets"]["test"] == a["nets"]["test"]
    assert b["nets"]["train"] == a["nets"]["train"] + 12   # the tanh subset's train + val: the first half of 24
    from monomial_gmn.train import evaluate_run
    ev = evaluate_run(both, ["none"])   # re-opens the zoo the way the run did
    assert ev["rows"][0]["tau"] == pytest.approx(b["test"]["tau"], abs=1e-12)


def test_compare_writes_results_table_and_plot(tmp_path, zoo, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--zoo", str(zoo), "--task", "generalization", "--models", "monomial,statnn",
                 "--augment-levels", "0,2", "--out", str(out), "--seeds", "2", "--activation", "relu", "--quiet",
                 *TINY]) == 0
    rows = json.loads((out / "results.json").read_text())
    keys = {"model", "task", "augment_level", "seed", "metric", "value", "split", "trial", "selected"}
    assert all(set(r) == keys for r in rows)
    taus = [r for r in rows if r["metric"] == "tau" and r["split"] == "test"]
    assert {(r["model"], r["augment_level"], r["seed"]) for r in taus} == {
        (m, lv, s) for m in ("monomial", "statnn") for lv in (0.0, 2.0) for s in (0, 1)}
    assert all(r["task"] == "generalization" and (r["value"] is None or -1 <= r["value"] <= 1) for r in taus)
    table = (out / "table.md").read_text()
    assert "| monomial |" in table and "level 2" in table and "±" in table
    png = (out / "tau_vs_scale.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert "| statnn |" in capsys.readouterr().out
    # the seed ensemble is the metric of the mean of the seeds' predictions on the very same transformed nets
    from monomial_gmn.train import ensemble_run_metrics, kendall_tau, load_run, make_task, open_zoo, predict_model
    from monomial_gmn.train._trainer import _splits, build_backbone
    runs = [out / "runs" / f"monomial-s{s}" for s in range(2)]
    ens = ensemble_run_metrics(runs, ["2"])
    z = open_zoo(str(zoo), "relu")
    preds = []
    for r in runs:
        cfg, w = load_run(r)
        task = make_task("generalization")
        task.setup(z)
        m = task.wrap(build_backbone(cfg, task, z), z)
        m.load_state_dict(w)
        preds.append(predict_model(m, z, task, _splits(z, cfg)["test"], "2", seed=12345))
    y = task.targets(_splits(z, cfg)["test"]).numpy()
    assert ens["rows"][0]["tau"] == pytest.approx(kendall_tau(torch.stack(preds).mean(0).numpy(), y), abs=1e-12)


@pytest.mark.parametrize("argv,match", [
    (["train", "--zoo", "{missing}", "--task", "generalization", "--model", "monomial", "--out", "{out}"],
     "no such zoo"),
    (["train", "--zoo", "{bad}", "--task", "generalization", "--model", "monomial", "--out", "{out}"], "zoo"),
    (["train", "--zoo", "{zoo}", "--task", "nope", "--model", "monomial", "--out", "{out}"], "unknown task"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "nope", "--out", "{out}"],
     "unknown model"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "gmn", "--out", "{out}", "--augment",
      "huge"], "augmentation"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "gmn", "--out", "{out}", "--epochs",
      "0"], "--epochs"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "gmn", "--out", "{out}", "--epochs",
      "x"], "invalid int"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "gmn", "--out", "{out}",
      "--activation", "sigmoid"], "invalid choice"),
    (["train", "--zoo", "{zoo}", "--task", "inr-classification", "--model", "gmn", "--out", "{out}"],
     "needs a inr zoo"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "gmn", "--out", "{out}",
      "--train-with", "tanh"], "--train-with needs --activation"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--model", "gmn", "--out", "{out}",
      "--activation", "relu", "--train-with", "relu"], "--train-with"),
    (["compare", "--zoo", "{zoo}", "--task", "generalization", "--models", "gmn", "--out", "{out}",
      "--activation", "relu", "--train-with", "sine"], "--train-with"),
    (["train", "--zoo", "{zoo}", "--task", "generalization", "--out", "{out}"], "--model"),
    (["eval", "{missing}"], "no such run"),
    (["eval", "{out}", "--augment", "scale:0"], "augmentation"),
    (["compare", "--zoo", "{zoo}", "--task", "generalization", "--models", "monomial,bogus", "--out", "{out}"],
     "unknown model"),
    (["compare", "--zoo", "{zoo}", "--task", "generalization", "--augment-levels", "0,x", "--out", "{out}"],
     "augment-levels"),
    (["compare", "--zoo", "{zoo}", "--task", "generalization", "--seeds", "0", "--out", "{out}"], "--seeds"),
    (["demo", "--nets", "3"], "--nets"),
    (["demo", "--activations", "relu,sine"], "activations"),
])
def test_errors_are_one_line_exit_2(tmp_path, zoo, capsys, argv, match):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zoo.json").write_text("{not json")
    fill = {"missing": str(tmp_path / "missing"), "bad": str(bad), "zoo": str(zoo), "out": str(tmp_path / "o")}
    if argv[0] == "eval" and argv[1] == "{out}":  # a finished run to evaluate with a bad option
        main(["train", "--zoo", str(zoo), "--task", "generalization", "--model", "statnn", "--out",
              fill["out"], "--quiet", *TINY])
        capsys.readouterr()
    argv = [a.format(**fill) for a in argv]
    err = _one_line_error(capsys, argv)
    assert match in err, err


def test_eval_on_an_inr_zoo_mismatch(tmp_path, zoo, capsys):
    inr = tmp_path / "inr"
    make_inr_zoo(inr, n=12)
    run = tmp_path / "run"
    assert main(["train", "--zoo", str(zoo), "--task", "generalization", "--model", "statnn", "--out", str(run),
                 "--quiet", *TINY]) == 0
    err = _one_line_error(capsys, ["eval", str(run), "--zoo", str(inr)])
    assert "needs a cnn zoo" in err


def test_train_with_probe_readout_then_eval_under_rescaling(tmp_path, zoo, capsys):
    """--model-kwargs reaches MonomialGMN; the trainer hands the zoo's architectures to the probe readout, a
    saved run is rebuilt with them, and its predictions do not move under the group (eval on rescaled nets)."""
    run = tmp_path / "probe"
    assert main(["train", "--zoo", str(zoo), "--task", "generalization", "--model", "monomial", "--out", str(run),
                 "--quiet", *TINY, "--model-kwargs", '{"feature_readout": true, "feature_slots": 4, "probes": 16}']) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model_kwargs"]["probes"] == 16
    state = torch.load(run / "model.pt", weights_only=True)
    assert any(k.endswith("parts.probes.extractor.bank0") for k in state["model"])    # the probe readout part
    assert cfg["model_config"]["readouts"]["probes"]["architectures"] == cfg["architectures"]
    capsys.readouterr()
    assert main(["eval", str(run), "--augment", "none,scale:1000,sign"]) == 0
    rows = json.loads((run / "eval.json").read_text())["rows"]
    assert rows[0]["tau"] == pytest.approx(rows[1]["tau"], abs=1e-6) == pytest.approx(rows[2]["tau"], abs=1e-6)
    assert rows[0]["mse"] == pytest.approx(rows[1]["mse"], rel=1e-4)


@pytest.mark.parametrize("value, needle", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_model_kwargs_must_be_a_json_object(tmp_path, zoo, capsys, value, needle):
    err = _one_line_error(capsys, ["train", "--zoo", str(zoo), "--task", "generalization", "--model", "monomial",
                                   "--out", str(tmp_path / "r"), "--model-kwargs", value])
    assert needle in err and "--model-kwargs" in err


def test_model_kwargs_unknown_option_is_one_line(tmp_path, zoo, capsys):
    err = _one_line_error(capsys, ["train", "--zoo", str(zoo), "--task", "generalization", "--model", "gmn",
                                   "--out", str(tmp_path / "r"), *TINY, "--model-kwargs", '{"kernel_radius": 8}'])
    assert "model 'gmn' has no option 'kernel_radius'" in err


def test_compare_runs_named_variants_beside_registered_models(tmp_path, zoo):
    """compare(variants=...) — what `monomial-gmn demo` uses for 'monomial+probe' — trains the base model
    with the variant's options, names its rows and runs after the variant, and checks names up front."""
    from monomial_gmn.train import compare

    variants = {"monomial+probe": ("monomial", {"feature_readout": True, "feature_slots": 2, "probes": 8})}
    rows = compare(str(zoo), "generalization", ["monomial+probe", "statnn"], [0, 3], tmp_path / "v", seeds=1,
                   activation="relu", progress=False, variants=variants, epochs=1, batch_size=8, hidden_dim=8,
                   num_layers=1)
    taus = {(r["model"], r["augment_level"]): r["value"] for r in rows if r["metric"] == "tau" and r["split"] == "test"}
    assert set(taus) == {(m, lv) for m in ("monomial+probe", "statnn") for lv in (0.0, 3.0)}
    assert taus["monomial+probe", 0.0] == pytest.approx(taus["monomial+probe", 3.0], abs=1e-6)   # exactly invariant
    cfg = json.loads((tmp_path / "v" / "runs" / "monomial+probe-s0" / "config.json").read_text())
    assert cfg["model"] == "monomial" and cfg["model_kwargs"]["monomial"]["probes"] == 8   # the variant's options
    assert "| monomial+probe |" in (tmp_path / "v" / "table.md").read_text()
    with pytest.raises(ValueError, match=r"unknown model 'monomial\+typo'"):
        compare(str(zoo), "generalization", ["monomial+typo"], [0], tmp_path / "w", variants=variants)
    with pytest.raises(ValueError, match="must be \\(registered model"):
        compare(str(zoo), "generalization", ["x"], [0], tmp_path / "w", variants={"x": "monomial"})


def test_demo_gives_every_model_the_same_readout_parts():
    """The demo's default compares weights alone; its +probe variants give each model the feature and probe
    readouts it accepts (the same probe bank), so no model is shown with a readout the others cannot have."""
    from monomial_gmn.cli.cmd_demo import DEFAULT_MODELS, VARIANTS
    from monomial_gmn.graph import digits_cnn_architecture
    from monomial_gmn.models import ModelConfig, list_models, model_info

    assert all(m in list_models() for m in DEFAULT_MODELS.split(","))     # plain registered models only
    archs = [digits_cnn_architecture("relu").to_json()]
    probes = set()
    for name, (model, opts) in VARIANTS.items():
        assert name == f"{model}+probe"
        cfg = ModelConfig.from_kwargs(model, out_dim=1, **opts, architectures=archs)
        assert set(cfg.readouts.parts) == set(model_info(model).parts)   # every part the model can take
        probes.add(cfg.readouts.probes.count)
    assert probes == {128}
    assert {m for m, _ in VARIANTS.values()} == {m for m in DEFAULT_MODELS.split(",")}
