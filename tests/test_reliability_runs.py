"""Runs that stay tied to their zoo and their model (issue 21): zoo digests, resolved paths, saved trees and
probe architectures, option handling, clear one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _cli_helpers import one_line_error as _one_line_error

from monomial_gmn.data import Zoo, load_zoo, save_zoo, zoo_digest

from test_train_zoos import make_cnn_zoo


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cnn_zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "zoo"
    make_cnn_zoo(path, n=48)
    return path


# ------------------------------------------------------------------------------------------ zoo digest
def test_zoo_digest_is_a_content_fingerprint(cnn_zoo, tmp_path):
    zoo = load_zoo(cnn_zoo, step=None)
    d = zoo_digest(cnn_zoo)
    assert len(d) == 64 and int(d, 16) >= 0
    assert zoo_digest(str(cnn_zoo)) == d == zoo_digest(zoo)          # path or Zoo, same networks
    shutil.copytree(cnn_zoo, tmp_path / "copy")
    assert zoo_digest(tmp_path / "copy") == d                         # not the path: the content
    assert zoo_digest(zoo.subset(np.arange(10))) != d                 # other networks
    assert zoo_digest(zoo.subset(np.arange(len(zoo))[::-1])) != d     # other order
    # one weight, one metadata value changed
    name = next(iter(zoo.archs))
    params = {k: np.array(v) for k, v in zoo.params.items()}
    params[name][0, 0] += 1e-3
    changed = Zoo(zoo.archs, params, zoo.net_row, zoo.columns, zoo.images, zoo.meta, zoo.task_kind)
    assert zoo_digest(changed) != d
    cols = {k: np.array(v) for k, v in zoo.columns.items()}
    cols["test_accuracy"][3] += 0.5
    assert zoo_digest(Zoo(zoo.archs, zoo.params, zoo.net_row, cols, zoo.images, zoo.meta, zoo.task_kind)) != d
    save_zoo(changed, tmp_path / "changed")
    assert zoo_digest(tmp_path / "changed") == zoo_digest(changed)
    with pytest.raises(TypeError, match="Zoo or a path"):
        zoo_digest(3)


# ------------------------------------------------------------------------------------------ helpers
import torch  # noqa: E402

from monomial_gmn.cli import main  # noqa: E402
from monomial_gmn.train import TrainConfig, evaluate_run, train  # noqa: E402
from monomial_gmn.train._trainer import _SimulatedCrash  # noqa: E402

TINY = ["--epochs", "1", "--batch-size", "8", "--hidden-dim", "8", "--num-layers", "1"]


def _cfg(tmp_path, zoo, name, **kw):
    base = dict(zoo=str(zoo), task="generalization", model="monomial", out=str(tmp_path / name), epochs=2,
                batch_size=8, hidden_dim=8, num_layers=1, checkpoint_every=1)
    base.update(kw)
    return TrainConfig(**base)




@pytest.fixture(scope="module")
def other_zoo(tmp_path_factory):
    """Same architectures and size as cnn_zoo, other weights and targets."""
    path = tmp_path_factory.mktemp("runs") / "other"
    make_cnn_zoo(path, n=48, seed=7)
    return path


# ------------------------------------------------------------------------------------------ item 2: resume
def test_resume_on_another_zoo_is_refused(tmp_path, cnn_zoo, other_zoo, capsys):
    cfg = _cfg(tmp_path, cnn_zoo, "r")
    with pytest.raises(_SimulatedCrash):
        train(cfg, progress=False, _crash_after_step=2)
    rec = json.loads((tmp_path / "r" / "config.json").read_text())
    assert rec["zoo_digest"] == zoo_digest(load_zoo(cnn_zoo))
    with pytest.raises(ValueError, match="cannot resume: the run was started on the zoo .* other networks"):
        train(_cfg(tmp_path, other_zoo, "r"), resume=True, progress=False)
    err = _one_line_error(capsys, ["train", "--zoo", str(other_zoo), "--task", "generalization", "--model",
                                   "monomial", "--out", str(tmp_path / "r"), "--resume", "--quiet", *TINY[2:],
                                   "--epochs", "2", "--checkpoint-every", "1"])
    assert "cannot resume" in err and "other networks" in err and "--out" in err and "TrainConfig" not in err
    # the same networks at another path resume fine (the digest is of the content)
    shutil.copytree(cnn_zoo, tmp_path / "moved")
    res = train(_cfg(tmp_path, tmp_path / "moved", "r"), resume=True, progress=False)
    assert res["steps"] > 2
    # a finished run too: resume=True on it with another zoo is refused, not answered with the old metrics
    with pytest.raises(ValueError, match="other networks"):
        train(_cfg(tmp_path, other_zoo, "r"), resume=True, progress=False)
    gbm = _cfg(tmp_path, cnn_zoo, "g", model="statnn-gbm", model_kwargs={"max_iter": 10})
    train(gbm, progress=False)
    with pytest.raises(ValueError, match="other networks"):
        train(_cfg(tmp_path, other_zoo, "g", model="statnn-gbm", model_kwargs={"max_iter": 10}), resume=True,
              progress=False)


def test_resume_of_a_missing_run_directory_says_so(tmp_path, cnn_zoo, capsys):
    err = _one_line_error(capsys, ["train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model",
                                   "statnn", "--out", str(tmp_path / "nope"), "--resume", "--quiet", *TINY])
    assert "--resume" in err and "does not exist" in err and not (tmp_path / "nope").exists()


# ------------------------------------------------------------------------------------------ item 4: paths
def test_run_records_the_absolute_zoo_path(tmp_path, cnn_zoo, capsys, monkeypatch):
    shutil.copytree(cnn_zoo, tmp_path / "work" / "z")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["train", "--zoo", "z", "--task", "generalization", "--model", "statnn", "--out", "run", "--quiet",
                 *TINY]) == 0
    rec = json.loads((tmp_path / "work" / "run" / "config.json").read_text())
    assert rec["zoo"] == str((tmp_path / "work" / "z").resolve())
    assert rec["zoo_digest"] == zoo_digest(load_zoo(tmp_path / "work" / "z"))
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "work" / "run")]) == 0
    ev = json.loads((tmp_path / "work" / "run" / "eval.json").read_text())
    assert ev["zoo"] == rec["zoo"] and ev["zoo_digest"] == rec["zoo_digest"]
    # the run's zoo replaced by other networks: refused unless named on purpose with --zoo
    shutil.rmtree(tmp_path / "work" / "z")
    make_cnn_zoo(tmp_path / "work" / "z", n=48, seed=3)
    err = _one_line_error(capsys, ["eval", str(tmp_path / "work" / "run")])
    assert "other networks than the run was trained on" in err and "--zoo" in err
    assert main(["eval", str(tmp_path / "work" / "run"), "--zoo", str(tmp_path / "work" / "z")]) == 0


# ------------------------------------------------------------------------------------------ item 3: trees
@pytest.mark.parametrize("model", ["statnn-gbm", "invariant-gbm"])
def test_gbm_runs_save_their_trees_and_eval_uses_them(tmp_path, cnn_zoo, other_zoo, model):
    from monomial_gmn.train import make_task, open_zoo
    from monomial_gmn.train._trainer import _mix, _splits, build_backbone, evaluate_gbm
    from monomial_gmn.train import parse_augment

    cfg = _cfg(tmp_path, cnn_zoo, "gbm", model=model, model_kwargs={"max_iter": 30, "min_samples_leaf": 3},
               augment="1")
    res = train(cfg, progress=False)
    with np.load(tmp_path / "gbm" / "model.npz", allow_pickle=False) as z:   # plain arrays, no pickle
        assert "header" in z.files and all(z[k].dtype != object for k in z.files)
    own = evaluate_run(tmp_path / "gbm", ["none"])
    assert np.isfinite(res["test"]["tau"])                                    # predictions that rank the nets
    assert own["rows"][0] == {"augment": "none", **res["test"]}               # the very trees of the run
    # on another zoo: the run's model (fitted on its own training split), not one refitted on the other zoo's
    task = make_task("generalization")
    z = open_zoo(cnn_zoo)
    task.setup(z)
    sp = _splits(z, cfg)
    ref = build_backbone(cfg, task, z)
    batch = parse_augment("1")(z.batch(sp["train"]), torch.Generator().manual_seed(_mix(cfg.seed, 0)))
    ref.fit(batch, task.targets(sp["train"]).numpy(), z.batch(sp["val"]), task.targets(sp["val"]).numpy())
    o = open_zoo(other_zoo)
    task.setup(o)
    expected = evaluate_gbm(ref, o, task, _splits(o, cfg)["test"])
    ev = evaluate_run(tmp_path / "gbm", ["none"], zoo_path=str(other_zoo))
    assert ev["rows"][0] == {"augment": "none", **expected}
    # a run from before the trees were saved: refitted on its own zoo only
    (tmp_path / "gbm" / "model.npz").unlink()
    assert evaluate_run(tmp_path / "gbm", ["none"])["rows"][0]["tau"] == pytest.approx(res["test"]["tau"])
    with pytest.raises(ValueError, match="holds no fitted trees"):
        evaluate_run(tmp_path / "gbm", ["none"], zoo_path=str(other_zoo))


def test_saved_trees_are_checked_when_loaded(tmp_path):
    from monomial_gmn.baselines import StatNNGBM

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=40)
    m = StatNNGBM(max_iter=15, min_samples_leaf=3).fit(x, y)
    m.save(tmp_path / "t.npz")
    loaded = StatNNGBM().load(tmp_path / "t.npz")
    assert np.array_equal(loaded.predict(x), m.predict(x)) and loaded.num_parameters() == m.num_parameters()
    xn = x.copy()
    xn[::3, 0] = np.nan                                                        # missing values follow the trees
    assert np.array_equal(loaded.predict(xn), m.predict(xn))
    with pytest.raises(ValueError, match="out_dim=1, this model has 2"):
        StatNNGBM(out_dim=2).load(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["e0.left"] = np.zeros_like(arrays["e0.left"])                     # a cycle: refused, not looped on
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="child lies outside its tree"):
        StatNNGBM().load(tmp_path / "bad.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable tree file"):
        StatNNGBM().load(tmp_path / "empty.npz")


# ------------------------------------------------------------------------------------------ item 6: probes
def test_probe_architectures_are_saved_with_the_run(tmp_path, cnn_zoo):
    relu_only = tmp_path / "relu"
    full = load_zoo(cnn_zoo)
    save_zoo(full.subset(np.nonzero(full.columns["activation"] == "relu")[0]), relu_only)
    kw = {"feature_readout": True, "feature_slots": 2, "probes": 4}
    train(_cfg(tmp_path, relu_only, "p", epochs=1, model_kwargs=kw), progress=False)
    rec = json.loads((tmp_path / "p" / "config.json").read_text())
    assert [a["name"] for a in rec["architectures"]] == list(load_zoo(relu_only).archs)
    # the run's probes know ReLU nets only; evaluating on a zoo with tanh nets too must not rebuild them for it
    with pytest.raises(ValueError, match="matches none of the probe architectures"):
        evaluate_run(tmp_path / "p", ["none"], zoo_path=str(cnn_zoo))
    assert evaluate_run(tmp_path / "p", ["none"])["rows"][0]["tau"] == pytest.approx(
        json.loads((tmp_path / "p" / "metrics.json").read_text())["test"]["tau"], abs=1e-12)


def test_evaluation_rebuilds_the_model_from_the_saved_model_config(tmp_path, cnn_zoo):
    """The run's ModelConfig (backbone + readout parts, JSON) is what evaluation builds, not a re-derivation."""
    train(_cfg(tmp_path, cnn_zoo, "m", epochs=1, model="gmn", model_kwargs={"feature_readout": True,
                                                                         "feature_slots": 2}), progress=False)
    path = tmp_path / "m" / "config.json"
    rec = json.loads(path.read_text())
    assert rec["model_config"]["name"] == "gmn" and rec["model_config"]["readouts"]["features"] is not None
    tau = json.loads((tmp_path / "m" / "metrics.json").read_text())["test"]["tau"]
    assert evaluate_run(tmp_path / "m", ["none"])["rows"][0]["tau"] == pytest.approx(tau, abs=1e-12)
    # the saved config is read: one naming another model is refused, one without the readout part cannot load
    path.write_text(json.dumps({**rec, "model_config": {**rec["model_config"], "name": "statnn"}}))
    with pytest.raises(ValueError, match="model config is for model 'statnn'"):
        evaluate_run(tmp_path / "m", ["none"])
    path.write_text(json.dumps({**rec, "model_config": {**rec["model_config"],
                                                         "readouts": {**rec["model_config"]["readouts"],
                                                                      "features": None}}}))
    with pytest.raises(ValueError, match="saved weights do not fit"):
        evaluate_run(tmp_path / "m", ["none"])
    # a damaged model config is a clear refusal, not a traceback from deep inside
    for bad, msg in [("oops", "model_config must be a JSON object"),
                     ({**rec["model_config"], "readouts": {"probes": {"count": "x"}}}, "malformed model_config")]:
        path.write_text(json.dumps({**rec, "model_config": bad}))
        with pytest.raises(ValueError, match=msg):
            evaluate_run(tmp_path / "m", ["none"])
    # a run from before model configs were saved is rebuilt from its TrainConfig, as it was trained
    path.write_text(json.dumps({k: v for k, v in rec.items() if k != "model_config"}))
    assert evaluate_run(tmp_path / "m", ["none"])["rows"][0]["tau"] == pytest.approx(tau, abs=1e-12)


# ------------------------------------------------------------------------------------------ item 7: normalisers
@pytest.mark.parametrize("name", ["statnn", "np", "monomial"])
def test_fit_normalizer_takes_a_batch_a_list_or_a_loader(cnn_zoo, name):
    from monomial_gmn.graph import GraphLoader
    from monomial_gmn.models import build_model

    zoo = load_zoo(cnn_zoo, activation="relu")
    idx = np.arange(12)
    batch = zoo.batch(idx)

    def fitted(data):
        m = build_model(name, 1, hidden_dim=8, num_layers=1)
        m.fit_normalizer(data)
        return {k: v.shape for k, v in m.state_dict().items()}, dict(m.named_buffers())

    shapes, ref = fitted(batch)   # NFN-NP builds its layers for the batch's depth; the others fit buffers
    for data in ([batch], [zoo.batch(idx[:5]), zoo.batch(idx[5:])], GraphLoader(zoo.subset(idx), batch_size=5)):
        got_shapes, got = fitted(data)
        assert got_shapes == shapes
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-6, atol=1e-9, msg=k)


# ------------------------------------------------------------------------------------------ item 8: empty files
def test_empty_checkpoint_or_model_file_is_a_clear_error(tmp_path, cnn_zoo, capsys):
    cfg = _cfg(tmp_path, cnn_zoo, "e", model="statnn")
    with pytest.raises(_SimulatedCrash):
        train(cfg, progress=False, _crash_after_step=1)
    (tmp_path / "e" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="unreadable checkpoint \\(the file is empty\\)"):
        train(cfg, resume=True, progress=False)
    err = _one_line_error(capsys, ["train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model", "statnn",
                                   "--out", str(tmp_path / "e"), "--resume", "--quiet", *TINY[2:], "--epochs", "2",
                                   "--checkpoint-every", "1"])
    assert "the file is empty" in err
    train(_cfg(tmp_path, cnn_zoo, "m", model="statnn", epochs=1), progress=False)
    (tmp_path / "m" / "model.pt").write_bytes(b"")
    err = _one_line_error(capsys, ["eval", str(tmp_path / "m")])
    assert "model.pt: unreadable (the file is empty)" in err
    (tmp_path / "m" / "model.pt").write_bytes(b"PK\x03\x04 truncated")
    err = _one_line_error(capsys, ["eval", str(tmp_path / "m")])
    assert "model.pt: unreadable" in err and "weights_only=False" not in err


def test_hostile_run_json_files_are_one_line_errors(tmp_path, cnn_zoo, capsys):
    """A run's config.json / metrics.json that is not valid JSON (syntax, nesting too deep for the parser, a huge
    integer, not an object) is refused naming the file, by the API and by `monomial-gmn eval` (one line, exit 2)."""
    from monomial_gmn.train import load_run

    train(_cfg(tmp_path, cnn_zoo, "h", model="statnn", epochs=1), progress=False)
    cfg_path = tmp_path / "h" / "config.json"
    good = cfg_path.read_text()
    for text, why in [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("{", "not valid JSON"),
                      ("9" * 5000, "not valid JSON"), ("[1, 2]", "expected a JSON object")]:
        cfg_path.write_text(text)
        with pytest.raises(ValueError, match=f"config.json: malformed run configuration .*{why}"):
            load_run(tmp_path / "h")
        err = _one_line_error(capsys, ["eval", str(tmp_path / "h")])
        assert "config.json: malformed run configuration" in err and why in err
    cfg_path.write_text(good)
    gbm = _cfg(tmp_path, cnn_zoo, "g", model="statnn-gbm")
    train(gbm, progress=False)
    (tmp_path / "g" / "metrics.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match="metrics.json: malformed run metrics .*nested too deeply"):
        train(gbm, resume=True, progress=False)


# ------------------------------------------------------------------------------------------ item 9: options
@pytest.mark.parametrize("key,flag", [("hidden_dim", "--hidden-dim"), ("num_layers", "--num-layers"),
                                      ("readout", "the task"), ("out_dim", "the task")])
def test_model_kwargs_that_duplicate_run_fields_are_refused(tmp_path, cnn_zoo, capsys, key, flag):
    value = "invariant" if key == "readout" else 4
    with pytest.raises(ValueError, match=f"option '{key}' of model 'monomial' is set by "
                                         f"{'TrainConfig.' + key if flag.startswith('--') else 'the task'}"):
        _cfg(tmp_path, cnn_zoo, "k", model_kwargs={key: value}).validate()
    err = _one_line_error(capsys, ["train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model",
                                   "monomial", "--out", str(tmp_path / "k"), *TINY,
                                   "--model-kwargs", json.dumps({key: value})])
    assert f"option '{key}'" in err and flag in err and "TrainConfig" not in err


def test_model_kwargs_per_model_and_clear_refusals(tmp_path, cnn_zoo, capsys):
    from monomial_gmn.train import compare

    # options under a model's name go to that model only
    compare(str(cnn_zoo), "generalization", ["monomial", "invariant-gbm"], [0], tmp_path / "c", seeds=1,
            progress=False, epochs=1, batch_size=8, hidden_dim=8, num_layers=1,
            model_kwargs={"monomial": {"feature_readout": True, "feature_slots": 2},
                          "invariant-gbm": {"max_iter": 7}})
    state = torch.load(tmp_path / "c" / "runs" / "monomial-s0" / "model.pt", weights_only=True)["model"]
    assert any(k.startswith("backbone.parts.features.") for k in state)          # the composed model's part
    rec = json.loads((tmp_path / "c" / "runs" / "monomial-s0" / "config.json").read_text())
    assert rec["model_config"]["readouts"]["features"] == {"slots": 2}               # the run records its model
    with np.load(tmp_path / "c" / "runs" / "invariant-gbm-s0" / "model.npz") as z:
        assert len(z["e0.offsets"]) - 1 <= 7                                  # max_iter=7 reached the trees
    # an option for every model that one of them does not take: named, in one line, before any fitting
    err = _one_line_error(capsys, ["compare", "--zoo", str(cnn_zoo), "--task", "generalization", "--models",
                                   "invariant-gbm,monomial", "--out", str(tmp_path / "d"), "--seeds", "1",
                                   "--augment-levels", "0", "--quiet", *TINY,
                                   "--model-kwargs", '{"feature_readout": true}'])
    assert "model 'invariant-gbm' has no option 'feature_readout'" in err and '"MODEL"' in err
    with pytest.raises(ValueError, match="model_kwargs\\['gmn'\\] must be a dict"):
        _cfg(tmp_path, cnn_zoo, "x", model_kwargs={"gmn": 3}).validate()


def test_probe_agreement_without_probes_is_refused(tmp_path, cnn_zoo, capsys):
    with pytest.raises(ValueError, match="probe_agreement=0.25 needs probes"):
        _cfg(tmp_path, cnn_zoo, "a", model_kwargs={"feature_readout": True, "probe_agreement": 0.25}).validate()
    err = _one_line_error(capsys, ["train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model",
                                   "monomial", "--out", str(tmp_path / "a"), *TINY,
                                   "--model-kwargs", '{"feature_readout": true, "probe_agreement": 0.25}'])
    assert "probe_agreement" in err and "needs probes" in err


# ------------------------------------------------------------------------------------------ rough edges
def test_eval_of_another_split_keeps_the_test_eval(tmp_path, cnn_zoo, capsys):
    run = tmp_path / "s"
    assert main(["train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model", "statnn", "--out", str(run),
                 "--quiet", *TINY]) == 0
    assert main(["eval", str(run)]) == 0
    assert main(["eval", str(run), "--split", "train"]) == 0
    assert main(["eval", str(run), "--split", "val"]) == 0
    assert json.loads((run / "eval.json").read_text())["split"] == "test"
    assert json.loads((run / "eval_train.json").read_text())["split"] == "train"
    assert json.loads((run / "eval_val.json").read_text())["split"] == "val"


@pytest.mark.parametrize("field,value", [("epochs", 0), ("lr", -1.0), ("train_with", "tanh"), ("patience", -1)])
def test_trainconfig_errors_name_fields_not_flags(tmp_path, cnn_zoo, capsys, field, value):
    with pytest.raises(ValueError) as exc:
        _cfg(tmp_path, cnn_zoo, "f", **{field: value}).validate()
    assert f"TrainConfig.{field}" in str(exc.value) and "--" not in str(exc.value)
    flag = "--" + field.replace("_", "-")
    err = _one_line_error(capsys, ["train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model", "gmn",
                                   "--out", str(tmp_path / "f"), flag, str(value)])
    assert flag in err and "TrainConfig" not in err
    with pytest.raises(ValueError, match="resume=True") as exc:   # the Python API's words, not the CLI's
        train(_cfg(tmp_path, cnn_zoo, "done", model="statnn", epochs=1), progress=False)
        train(_cfg(tmp_path, cnn_zoo, "done", model="statnn", epochs=1), progress=False)
    assert "--" not in str(exc.value)


def test_ddp_progress_bar_shows_the_global_batch_loss(tmp_path, cnn_zoo, monkeypatch):
    """Under torchrun the bar shows the loss of the whole global batch (all-reduced over processes), the number
    one process shows for the same batches, not rank 0's share of it."""
    import functools
    import io
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    import tqdm.auto

    def losses(text: str) -> list[float]:
        shown = [float(v) for v in re.findall(r"loss=([-+0-9.e]+)", text)]
        return [v for i, v in enumerate(shown) if i == 0 or v != shown[i - 1]]

    bar = io.StringIO()
    monkeypatch.setattr(tqdm.auto, "tqdm", functools.partial(tqdm.auto.tqdm, file=bar, mininterval=0))
    single = train(_cfg(tmp_path, cnn_zoo, "one", model="statnn", epochs=1, device="cpu"), progress=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_MININTERVAL": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "monomial_gmn.cli", "train", "--zoo", str(cnn_zoo), "--task", "generalization", "--model", "statnn",
           "--out", str(tmp_path / "two"), *TINY, "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = losses(bar.getvalue()), losses(proc.stderr)
    assert len(one) == single["steps"] and len(two) == len(one), (one, two)
    assert two == pytest.approx(one, rel=2e-3)


@pytest.mark.parametrize("argv", [["--quick"], []])
def test_bench_measures_only_the_models_asked_for(argv):
    from monomial_gmn.bench import plan_tasks
    from monomial_gmn.cli import build_parser
    from monomial_gmn.cli.cmd_bench import config_from_args

    cfg = config_from_args(build_parser().parse_args(["bench", *argv, "--models", "gmn,statnn", "--shapes", "siren"]))
    tasks = plan_tasks(cfg, threads=1)
    models = {t["kwargs"]["model"] for _, t in tasks if "model" in t["kwargs"]}
    assert models == {"gmn", "statnn"} and any(t["kind"] == "scaling" for _, t in tasks)
    assert {t["kwargs"]["shape"] for _, t in tasks if t["kind"] != "conversion"} == {"siren"}
    default = config_from_args(build_parser().parse_args(["bench", *argv]))
    assert [t["kwargs"]["model"] for _, t in plan_tasks(default, 1) if t["kind"] == "scaling"] == ["monomial"]


@pytest.mark.parametrize("field,value,why", [("lr", "x", "must be a number, got 'x'"),
                                             ("epochs", 2.5, "must be an integer, got 2.5"),
                                             ("hidden_dim", True, "must be an integer, got True")])
def test_trainconfig_refuses_wrong_types_by_name(tmp_path, cnn_zoo, capsys, field, value, why):
    """A value of the wrong type (e.g. drawn from a --tune-space entry) is refused naming the field, not with a bare
    conversion error, and never truncated (2.5 epochs is not silently 2)."""
    with pytest.raises(ValueError, match=f"TrainConfig.{field} {why}"):
        _cfg(tmp_path, cnn_zoo, "t", **{field: value}).validate()
    if field == "lr":
        err = _one_line_error(capsys, ["compare", "--zoo", str(cnn_zoo), "--task", "generalization", "--models", "gmn",
                                       "--out", str(tmp_path / "c"), "--tune", "1", "--tune-space", '{"lr": "x"}',
                                       "--quiet"])
        assert "lr" in err and "'x'" in err
