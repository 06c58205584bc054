"""Training machinery: renderer, augmentation specs, sampler, tasks, determinism, resume, DDP, GBM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn import ZooFormatError
from monomial_gmn.train import (DistributedBatchSampler, INREditingTask, INRRenderer, TrainConfig, coordinate_grid,
                                evaluate_run, kendall_tau, make_task, parse_augment, r2_score, train)
from monomial_gmn.train._trainer import _lr_factor, _SimulatedCrash

from test_train_zoos import make_cnn_zoo, make_inr_zoo

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------ renderer
def _siren(width: int = 8) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), mg.Sine(30.0), nn.Linear(width, width), mg.Sine(30.0),
                         nn.Linear(width, 1))


def test_renderer_matches_modules_and_to_module():
    torch.manual_seed(0)
    nets = [_siren() for _ in range(3)]
    graphs = [mg.to_graph(n) for n in nets]
    batch = mg.batch_graphs(graphs)
    coords = coordinate_grid(5, 6)
    out = INRRenderer(nets[0])(batch.x, batch.edge_attr, coords)
    assert out.shape == (3, 30, 1)
    for b, (net, g) in enumerate(zip(nets, graphs)):
        torch.testing.assert_close(out[b], net(coords), rtol=0, atol=1e-5)
        torch.testing.assert_close(out[b], mg.to_module(g, nets[0])(coords), rtol=0, atol=1e-5)


def test_renderer_is_invariant_and_differentiable():
    torch.manual_seed(1)
    net = _siren()
    g = mg.to_graph(net)
    moved = mg.sample_transform(g, generator=torch.Generator().manual_seed(0))(g)
    r, c = INRRenderer(net), coordinate_grid(4, 4)
    torch.testing.assert_close(r(moved.x, moved.edge_attr, c), r(g.x, g.edge_attr, c), rtol=0, atol=1e-5)
    x, e = g.x.clone().requires_grad_(), g.edge_attr.clone().requires_grad_()
    r(x, e, c).square().sum().backward()
    assert x.grad.abs().sum() > 0 and e.grad.abs().sum() > 0


def test_renderer_matches_zoo_modules(tmp_path):
    zoo = make_inr_zoo(tmp_path / "inr", n=4)
    b = zoo.batch(np.arange(4))
    c = coordinate_grid(*zoo.images.shape[1:])
    out = INRRenderer(zoo.module(0))(b.x, b.edge_attr, c)
    for i in range(4):
        torch.testing.assert_close(out[i], zoo.module(i)(c), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ small parts
@pytest.mark.parametrize("spec,bound,label", [("none", None, "none"), ("0", None, "none"), (2, 100.0, "2"),
                                              ("scale:50", 50.0, "scale:50"), ("sign", 1.0, "sign")])
def test_parse_augment(spec, bound, label):
    a = parse_augment(spec)
    assert a.bound == bound and a.label == label


@pytest.mark.parametrize("bad", ["scale:0.5", "scale:x", "sideways", "-1", "nan", "99"])
def test_parse_augment_rejects(bad):
    with pytest.raises(ValueError, match="augmentation"):
        parse_augment(bad)


def test_augment_levels_transform_as_documented(tmp_path):
    zoo = make_cnn_zoo(tmp_path / "z", n=8)
    batch = zoo.batch(np.arange(8))
    assert parse_augment("none")(batch) is batch
    node_act = zoo.columns["activation"][batch.batch.numpy()]
    relu, tanh = torch.from_numpy(node_act == "relu"), torch.from_numpy(node_act == "tanh")

    def magnitudes(b, mask):  # sorted |bias| of the selected nets' nodes (a permutation-invariant summary)
        return b.x[mask, 0].abs().sort().values

    for spec in ("3", "sign"):
        moved = parse_augment(spec)(batch, torch.Generator().manual_seed(0))
        assert not torch.equal(moved.x, batch.x)
        # tanh neurons only flip signs (and move), at every level
        torch.testing.assert_close(magnitudes(moved, tanh), magnitudes(batch, tanh))
        if spec == "sign":
            torch.testing.assert_close(magnitudes(moved, relu), magnitudes(batch, relu))
        else:  # ReLU neurons are scaled by factors in [1, 1000]
            ratio = magnitudes(moved, relu).sum() / magnitudes(batch, relu).sum()
            assert 10 < ratio < 1000


def test_sampler_shards_union_to_the_single_process_batches():
    idx = np.arange(100, 137)
    single = DistributedBatchSampler(idx, 8, seed=3)
    shards = [DistributedBatchSampler(idx, 8, seed=3, rank=r, world_size=3) for r in range(3)]
    assert len(single) == 4
    for epoch in range(2):
        ref = list(single.batches(epoch))
        parts = [list(s.batches(epoch)) for s in shards]
        for b, (glob, count) in enumerate(ref):
            assert count == 8
            assert sorted(np.concatenate([p[b][0] for p in parts]).tolist()) == sorted(glob.tolist())
        assert [b.tolist() for b, _ in single.batches(epoch, start=2)] == [b.tolist() for b, _ in ref[2:]]
    assert list(single.batches(0))[0][0].tolist() != list(single.batches(1))[0][0].tolist()


def test_lr_schedule_warmup_then_cosine():
    f = [_lr_factor(s, 100, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01


def test_metrics_match_scipy_and_definitions():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    p, t = rng.normal(size=50), rng.normal(size=50)
    assert kendall_tau(p, t) == pytest.approx(kendalltau(p, t).statistic)
    assert r2_score(t, t) == 1.0 and r2_score(np.full(50, t.mean()), t) == pytest.approx(0.0)
    task = make_task("generalization")
    m = task.metrics(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.1, 0.3, 0.2]))
    assert m["tau"] == pytest.approx(1 / 3) and m["mse"] == pytest.approx(2 * 0.01 / 3)


def test_editing_targets():
    img = np.zeros((1, 5, 5), dtype=np.float32)
    img[0, 2, 2] = 1.0
    dil = INREditingTask("dilate").transform_images(img)
    assert dil[0, 1:4, 1:4].min() == 1.0 and dil.sum() == 9
    con = INREditingTask("contrast").transform_images(img)
    assert con.mean() == pytest.approx(img.mean()) and con[0, 2, 2] > 1.0
    with pytest.raises(ValueError, match="unknown edit"):
        INREditingTask("blur")


# ------------------------------------------------------------------------------------------------ training
def _cfg(tmp_path, zoo_path, name, **kw):
    base = dict(zoo=str(zoo_path), task="generalization", model="monomial", out=str(tmp_path / name), epochs=2,
                batch_size=8, hidden_dim=8, num_layers=1, checkpoint_every=2, eval_batch_size=64)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def cnn_zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "cnn"
    make_cnn_zoo(path, n=64)
    return path


def test_training_is_deterministic_and_seeded(tmp_path, cnn_zoo):
    a = train(_cfg(tmp_path, cnn_zoo, "a", augment="2"), progress=False)
    b = train(_cfg(tmp_path, cnn_zoo, "b", augment="2"), progress=False)
    c = train(_cfg(tmp_path, cnn_zoo, "c", augment="2", seed=1), progress=False)
    assert a["test"] == b["test"] and a["history"] == b["history"]
    assert a["test"] != c["test"]
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["test"] == a["test"] and set(saved["test"]) == {"tau", "r2", "mse"}
    assert saved["nets"]["train"] > 0 and saved["params"] > 0
    # checkpoints and model files load with weights_only=True
    for f in ("checkpoint.pt", "model.pt"):
        torch.load(tmp_path / "a" / f, weights_only=True)
    # a finished run is not silently overwritten
    with pytest.raises(ValueError, match="already holds a finished run"):
        train(_cfg(tmp_path, cnn_zoo, "a"), progress=False)


@pytest.mark.parametrize("crash_after", [3, 4, 5])
def test_resume_after_a_kill_equals_a_straight_run(tmp_path, cnn_zoo, crash_after):
    straight = train(_cfg(tmp_path, cnn_zoo, "straight", epochs=3, augment="1"), progress=False)
    cfg = _cfg(tmp_path, cnn_zoo, "killed", epochs=3, augment="1")
    with pytest.raises(_SimulatedCrash):
        train(cfg, progress=False, _crash_after_step=crash_after)
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = train(cfg, resume=True, progress=False)
    assert resumed["test"] == straight["test"] and resumed["val"] == straight["val"]
    assert resumed["history"] == straight["history"] and resumed["steps"] == straight["steps"]


def test_resume_refuses_other_options(tmp_path, cnn_zoo):
    cfg = _cfg(tmp_path, cnn_zoo, "r")
    with pytest.raises(_SimulatedCrash):
        train(cfg, progress=False, _crash_after_step=2)
    with pytest.raises(ValueError, match="holds an unfinished run"):
        train(cfg, progress=False)
    cfg.lr = 0.5
    with pytest.raises(ValueError, match="cannot resume"):
        train(cfg, resume=True, progress=False)


def test_early_stopping_and_eval(tmp_path, cnn_zoo):
    res = train(_cfg(tmp_path, cnn_zoo, "es", epochs=8, patience=1, lr=0.3), progress=False)
    assert res["epochs_run"] < 8 or res["best_epoch"] == 8
    ev = evaluate_run(tmp_path / "es", ["none", "3", "sign"])
    assert [r["augment"] for r in ev["rows"]] == ["none", "3", "sign"]
    assert ev["rows"][0]["tau"] == pytest.approx(res["test"]["tau"], abs=1e-12, nan_ok=True)
    # the monomial model is invariant: transformed test nets give (nearly) the same metrics
    for row in ev["rows"][1:]:
        assert row["tau"] == pytest.approx(res["test"]["tau"], abs=0.02, nan_ok=True)


def test_split_for_keeps_each_subsets_own_val_and_test(cnn_zoo):
    from monomial_gmn.train import open_run_zoo, open_zoo, split_for
    both = open_run_zoo(cnn_zoo, "relu", ["tanh"])
    acts = both.columns["activation"]
    for act, other in (("relu", "tanh"), ("tanh", "relu")):
        own = open_zoo(cnn_zoo, act)
        ref = own.split(3)
        sp = split_for(both, act, [other], seed=3)
        key = lambda z, idx: sorted(z.columns["test_accuracy"][idx].tolist())  # noqa: E731 (unique floats)
        for k in ("val", "test"):
            assert key(both, sp[k]) == key(own, ref[k]) and (acts[sp[k]] == act).all()
        mine = sp["train"][acts[sp["train"]] == act]
        assert key(both, mine) == key(own, ref["train"])
        theirs = split_for(both, other, (), seed=3)
        extra = sp["train"][acts[sp["train"]] == other]
        assert sorted(extra.tolist()) == sorted(np.concatenate([theirs["train"], theirs["val"]]).tolist())
        assert not set(sp["train"].tolist()) & (set(sp["val"].tolist()) | set(sp["test"].tolist()))
        assert not set(extra.tolist()) & set(theirs["test"].tolist())   # never the other subset's test nets
        # without train_with the split of a subset is the same whatever else the zoo holds
        alone = split_for(both, act, (), seed=3)
        assert all(key(both, alone[k]) == key(own, ref[k]) for k in ("train", "val", "test"))
    with pytest.raises(ValueError, match="no networks with activation 'sine'"):
        split_for(both, "sine")


def test_train_with_trains_on_more_nets_and_resumes_old_runs(tmp_path, cnn_zoo):
    res = train(_cfg(tmp_path, cnn_zoo, "tw", activation="tanh", train_with="relu", epochs=1), progress=False)
    own = train(_cfg(tmp_path, cnn_zoo, "own", activation="tanh", epochs=1), progress=False)
    assert res["nets"]["test"] == own["nets"]["test"] and res["nets"]["train"] > own["nets"]["train"]
    assert json.loads((tmp_path / "tw" / "config.json").read_text())["train_with"] == ["relu"]
    # a checkpoint written before the option existed (no 'train_with' key) still resumes
    cfg = _cfg(tmp_path, cnn_zoo, "old", activation="tanh", epochs=4, checkpoint_every=1)
    with pytest.raises(_SimulatedCrash):
        train(cfg, progress=False, _crash_after_step=2)
    ck = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)
    del ck["config"]["train_with"]
    torch.save(ck, tmp_path / "old" / "checkpoint.pt")
    assert train(cfg, resume=True, progress=False)["nets"] == own["nets"]
    with pytest.raises(ValueError, match="train_with"):   # but a different choice does not
        cfg2 = _cfg(tmp_path, cnn_zoo, "old", activation="tanh", epochs=4, checkpoint_every=1, train_with=["relu"])
        (tmp_path / "old" / "metrics.json").unlink()
        train(cfg2, resume=True, progress=False)


@pytest.mark.parametrize("model", ["statnn-gbm", "invariant-gbm"])
def test_gbm_baseline(tmp_path, cnn_zoo, model):
    res = train(_cfg(tmp_path, cnn_zoo, "gbm", model=model), progress=False)
    assert set(res["test"]) == {"tau", "r2", "mse"}
    ev = evaluate_run(tmp_path / "gbm", ["none", "2"])
    assert ev["rows"][0]["tau"] == pytest.approx(res["test"]["tau"])
    if model == "invariant-gbm":   # exactly invariant features: rescaled test nets get the same ranking
        assert ev["rows"][1]["tau"] == pytest.approx(ev["rows"][0]["tau"], abs=1e-3)


def test_inr_tasks_train(tmp_path):
    path = tmp_path / "inr"
    make_inr_zoo(path, n=24)
    res = train(_cfg(tmp_path, path, "cls", task="inr-classification", epochs=1), progress=False)
    assert 0.0 <= res["test"]["accuracy"] <= 1.0
    res = train(_cfg(tmp_path, path, "edit", task="inr-editing", epochs=1, hidden_dim=4), progress=False)
    assert np.isfinite(res["test"]["mse"])
    with pytest.raises(ValueError, match="needs a cnn zoo"):
        train(_cfg(tmp_path, path, "bad"), progress=False)


def test_ddp_two_processes_match_a_single_process(tmp_path, cnn_zoo):
    """torchrun --nproc_per_node=2 (gloo, CPU) vs one process: same global batches, gradients averaged.

    Tolerance: float32 all-reduce sums the two halves' gradients in another order than one process does,
    so weights differ by rounding (~1e-7 relative per step); after a few AdamW steps metrics agree to 1e-3.
    """
    single = train(_cfg(tmp_path, cnn_zoo, "single", epochs=2, device="cpu"), progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "monomial_gmn.cli", "train", "--zoo", str(cnn_zoo), "--task", "generalization",
           "--model", "monomial", "--out", str(tmp_path / "ddp"), "--epochs", "2", "--batch-size", "8",
           "--hidden-dim", "8", "--num-layers", "1", "--checkpoint-every", "2", "--device", "cpu", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and ddp["steps"] == single["steps"]
    for split in ("val", "test"):
        for k, v in single[split].items():
            assert ddp[split][k] == pytest.approx(v, abs=1e-3), (split, k)


def test_an_opened_zoo_trains_on_the_run_activation_only(tmp_path, cnn_zoo):
    """train(cfg, zoo=load_zoo(path)) with a mixed-activation zoo reads exactly the networks of train(cfg): the same
    metrics and the same recorded digest (the other activation's nets are left out, not silently trained on)."""
    from monomial_gmn.data import load_zoo

    kw = dict(activation="relu", model="gmn")
    a = train(_cfg(tmp_path, cnn_zoo, "path", **kw), progress=False)
    b = train(_cfg(tmp_path, cnn_zoo, "opened", **kw), zoo=load_zoo(cnn_zoo), progress=False)
    assert a["test"] == b["test"] and a["history"] == b["history"] and a["nets"] == b["nets"]
    rec = [json.loads((tmp_path / d / "config.json").read_text())["zoo_digest"] for d in ("path", "opened")]
    assert rec[0] == rec[1]
    relu_only = load_zoo(cnn_zoo, activation="relu")
    with pytest.raises(ZooFormatError, match="no networks with activation 'tanh'"):
        train(_cfg(tmp_path, cnn_zoo, "tanh", activation="tanh"), zoo=relu_only, progress=False)
