"""`monomial-gmn bench` runs on a tiny setting and emits well-formed JSON (no timed assertions)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import monomial_gmn as mg
from monomial_gmn.bench import SHAPES, linear_fit, synthetic_zoo
from monomial_gmn.bench._worker import run_in_subprocess, run_task
from monomial_gmn.cli import main

TOP_KEYS = {"meta", "config", "conversion", "models", "scaling", "targets"}
TARGET_KEYS = {"train_nets_per_s", "peak_rss_mb", "conversion_nets_per_s", "forward_vs_matmul", "scaling_r2"}


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_quick_bench_cli_writes_wellformed_json(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    md = tmp_path / "bench.md"
    rc = main(["bench", "--quick", "--in-process", "--no-progress", "--out", str(out), "--markdown", str(md)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert TOP_KEYS <= set(res)
    meta = res["meta"]
    assert {"command", "date_utc", "machine", "loadavg_start", "loadavg_end"} <= set(meta)
    assert {"platform", "cpu_count", "torch", "python"} <= set(meta["machine"])
    assert meta["complete"] is True
    assert res["config"]["batch"] == 4 and res["config"]["threads_used"] >= 1

    conv = res["conversion"]
    assert conv["status"] == "ok", conv
    assert (conv["num_nodes"], conv["num_edges"], conv["num_params"]) == (59, 688, 4970)
    for key in ("stacked_nets_per_s", "batch_stacked_nets_per_s", "per_graph_reference_nets_per_s"):
        assert _finite_positive(conv[key]), key
    assert conv["stacked_seconds"]["median"] <= conv["stacked_seconds"]["max"]
    assert conv["profile_stacked_top_ops"] and _finite_positive(conv["stacked_nets_per_cpu_s"])

    (m,) = res["models"]
    assert (m["model"], m["shape"]) == ("monomial", "cnn")
    if m["status"] == "ok":  # the model is optional at this layer; a missing one is reported, not a crash
        for key in ("train_nets_per_s", "infer_nets_per_s", "peak_rss_mb"):
            assert _finite_positive(m[key]), key
        assert m["peak_rss_mb"] >= m["rss_mb_after_import"]
        fl = m["flops"]
        assert fl["forward_flops_per_batch"] > 0 and fl["train_flops_per_step"] > fl["forward_flops_per_batch"]
        assert _finite_positive(fl["forward_vs_matmul"]) and _finite_positive(fl["matmul"]["flop_per_s"])
        assert m["saved_for_backward"]["total_mb"] > 0 and m["saved_for_backward"]["top_shapes"]
        ops = m["profile_train_top_ops"]
        assert ops and {"op", "calls", "self_cpu_ms", "self_pct"} <= set(ops[0])
    else:
        assert m["status"] == "skipped" and m["reason"]

    sc = res["scaling"]
    assert sc["status"] == "ok"
    assert [p["nets"] for p in sc["points"]] == [16, 32, 48]
    assert {"slope", "intercept", "r2"} <= set(sc["fit"])

    assert set(res["targets"]) == TARGET_KEYS
    for t in res["targets"].values():
        assert t["met"] is None and t["not_applicable"]  # the quick setting is not the targets' setting
    text = capsys.readouterr().out
    assert "targets:" in text and "conversion" in text
    assert md.read_text().startswith("# monomial-gmn benchmark")


def test_worker_runs_in_a_fresh_process_and_reports_errors():
    ok = run_in_subprocess({"kind": "matmul", "threads": 1, "kwargs": {"n": 32, "warmup": 0, "reps": 2}},
                           timeout=120)
    assert ok["status"] == "ok" and ok["threads"] == 1 and ok["flops"] == 2 * 32 ** 3
    assert _finite_positive(ok["flop_per_s"])
    bad = run_in_subprocess({"kind": "nope"}, timeout=120)
    assert bad["status"] == "error" and "nope" in bad["reason"]
    with pytest.raises(ValueError, match="nope"):
        run_task({"kind": "nope"})



def test_a_crashing_worker_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr("sys.executable", "false")  # exits 1 at once, prints nothing
    crash = run_in_subprocess({"kind": "matmul", "threads": 1}, timeout=60)
    assert crash["status"] == "error" and "code 1" in crash["reason"]


@pytest.mark.parametrize("argv", [["--models", "transformer"], ["--shapes", "resnet"], ["--batch", "0"],
                                  ["--scaling-sizes", "10"], ["--scaling-sizes", "a,b"]])
def test_bad_options_are_one_line_user_errors(argv, capsys):
    assert main(["bench", "--quick", "--in-process", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("monomial-gmn: error:")


@pytest.mark.parametrize("slope,intercept", [(2.5, 0.3), (1e-3, -0.2), (0.0, 1.0)])
def test_linear_fit_recovers_a_line(slope, intercept):
    xs = [1000.0, 3000.0, 10000.0, 30000.0]
    fit = linear_fit(xs, [slope * x + intercept for x in xs])
    assert fit["slope"] == pytest.approx(slope, abs=1e-12)
    assert fit["intercept"] == pytest.approx(intercept, abs=1e-9)
    if slope:
        assert fit["r2"] == pytest.approx(1.0)
    noisy = linear_fit(xs, [1.0, 5.0, 2.0, 3.0])
    assert noisy["r2"] < 0.9


def test_loglog_exponent_detects_quadratic_growth():
    xs = [1000.0, 3000.0, 10000.0, 30000.0]
    assert linear_fit(xs, [x for x in xs])["loglog_exponent"] == pytest.approx(1.0)
    assert linear_fit(xs, [x * x for x in xs])["loglog_exponent"] == pytest.approx(2.0)


@pytest.mark.parametrize("name,nodes,edges,params,side", [("cnn", 59, 688, 4970, 3), ("siren", 67, 1120, 1185, 1)])
def test_bench_shapes_and_synthetic_zoo(name, nodes, edges, params, side):
    spec = SHAPES[name].spec()
    assert (spec.num_nodes, spec.num_edges, spec.num_params, spec.side) == (nodes, edges, params, side)
    a, b = synthetic_zoo(spec, 5, seed=3), synthetic_zoo(spec, 5, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, synthetic_zoo(spec, 5, seed=4))
    # each block within PyTorch's default-init bound, and the zoo converts like the per-net path
    net = SHAPES[name].build()
    bound = max(1.0 / math.sqrt(r.n_in * r.kernel_numel) for r in spec.layers)
    assert a.abs().max() <= bound
    x, e = spec.stacked(a)
    g = spec.graph(a[2])
    assert torch.equal(x[2], g.x) and torch.equal(e[2], g.edge_attr)
    state = spec.state_from_graph(g)
    net.load_state_dict(state)
    assert torch.equal(spec.flatten(net), a[2])
    batch = mg.batch_stacked(spec, x, e)
    assert batch.num_graphs == 5 and batch.x.shape == (5 * nodes, 1) and batch.edge_attr.shape == (5 * edges, side ** 2)


def test_measure_training_reports_the_peak_memory_of_a_real_run_configuration(tmp_path):
    """The memory figure next to τ: one epoch of a configured run (feature readout included) in a fresh process."""
    from test_train_zoos import make_cnn_zoo

    from monomial_gmn.train import TrainConfig

    zoo = tmp_path / "zoo"
    make_cnn_zoo(zoo, n=48, channels=2)
    cfg = TrainConfig(zoo=str(zoo), task="generalization", model="monomial", out=str(tmp_path / "unused"),
                      epochs=50, batch_size=4, hidden_dim=8, num_layers=1, activation="relu",
                      model_kwargs={"feature_readout": True, "feature_slots": 2})
    res = run_in_subprocess({"kind": "training", "threads": 1, "kwargs": {"config": cfg.to_dict()}}, timeout=300)
    assert res["status"] == "ok", res
    assert res["epochs"] == 1 and res["model"] == "monomial" and res["model_kwargs"]["feature_readout"] is True
    assert 0 < res["train_nets"] // 4 <= res["steps"] <= math.ceil(res["train_nets"] / 4)  # one epoch, not 50
    assert res["params"] > 0 and res["peak_rss_mb"] >= res["rss_mb_after_import"] > 0
    assert res["peak_rss_mb_above_import"] == pytest.approx(res["peak_rss_mb"] - res["rss_mb_after_import"])
    assert not (tmp_path / "unused").exists()  # the run went to a temporary directory
    bad = run_in_subprocess({"kind": "training", "threads": 1,
                             "kwargs": {"config": {**cfg.to_dict(), "zoo": str(tmp_path / "missing")}}}, timeout=120)
    assert bad["status"] == "error" and "missing" in bad["reason"]
