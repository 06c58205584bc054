"""Zoo formats: the Small CNN Zoo (real sample + files written here), our own format, SIREN state dicts."""

from __future__ import annotations

import csv
import gzip
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn import ZooFormatError
from monomial_gmn.data import (Architecture, Zoo, digits, digits_cnn_architecture, load_zoo, save_zoo,
                               siren_architecture)
from monomial_gmn.graph import Symmetry

SAMPLE = Path(__file__).parent / "data" / "small-cnn-zoo-sample"


def _assert_batches_equal(a, b):
    assert set(a.keys()) == set(b.keys())
    for k in b.keys():
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert a.num_graphs == b.num_graphs
    for ga, gb in zip(a.to_data_list(), b.to_data_list()):
        assert torch.equal(ga.edge_index, gb.edge_index) and torch.equal(ga.edge_attr, gb.edge_attr)


# ---------------------------------------------------------------------------------------------- the real sample
def test_sample_counts_filters_and_layout():
    assert mg.data.detect_format(SAMPLE) == "small-cnn-zoo"
    final = load_zoo(SAMPLE)
    assert len(final) == 12 and set(final.columns["step"].tolist()) == {86}
    assert len(load_zoo(SAMPLE, step=None)) == 24
    assert len(load_zoo(SAMPLE, step=0)) == 12
    relu = load_zoo(SAMPLE, activation="relu")
    assert set(relu.columns["activation"].tolist()) == {"relu"} and len(relu) == 5
    arch = relu.arch_of(0)
    assert arch.num_params == 4970                       # derived from layout.csv, not hard-coded
    g = relu.graph(0)
    assert g.num_nodes == 1 + 16 * 3 + 10 and g.edge_index.shape[1] == 16 + 256 * 2 + 160
    assert set(g.symmetry_counts()) >= {"positive_scale"}
    assert "sign" in load_zoo(SAMPLE, activation="tanh").graph(0).symmetry_counts()
    with pytest.raises(ZooFormatError, match="activation 'gelu'"):
        load_zoo(SAMPLE, activation="gelu")
    split = final.split(seed=0)
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(12))
    assert split["test"].tolist() == list(range(6, 12)) and len(split["train"]) == 5


def test_sample_nets_reproduce_recorded_accuracy():
    """Sign of life: the rebuilt torch nets classify the digits as well as the metrics say."""
    zoo = load_zoo(SAMPLE, padding="symmetric")          # the sample was trained with torch padding=1
    d = digits()
    x = torch.from_numpy(d["images"] - 0.5).unsqueeze(1)
    y = torch.from_numpy(d["labels"].copy())
    accs = []
    with torch.no_grad():
        for i in range(len(zoo)):
            accs.append(float((zoo.module(i)(x).argmax(1) == y).float().mean()))
    rec = zoo.columns["test_accuracy"]
    assert np.abs(np.array(accs) - rec).mean() < 0.05
    assert max(accs) > 0.8 and np.corrcoef(accs, rec)[0, 1] > 0.95


def test_sample_batch_equals_per_net_graphs():
    zoo = load_zoo(SAMPLE, step=None)
    idx = [5, 0, 23, 2, 2]                                # relu and tanh mixed, repeats
    ref = mg.batch_graphs([mg.to_graph(zoo.module(i)) for i in idx])
    _assert_batches_equal(zoo.batch(idx), ref)
    y = torch.arange(5.0).view(-1, 1)
    assert torch.equal(zoo.batch(idx, y=y).y, y)


# ---------------------------------------------------------------------------------------------- files written here
def _tf_export(net: nn.Sequential, flatten_hw: tuple[int, int] | None = None):
    """A torch CNN's parameters in the Small CNN Zoo's TF layout: (layout rows, flat vector)."""
    rows, parts, off = [], [], 0
    convs = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    for li, m in enumerate(convs):
        base = f"sequential/{'conv2d' if isinstance(m, nn.Conv2d) else 'dense'}_{li}"
        w = m.weight.detach()
        if isinstance(m, nn.Conv2d):
            k = w.permute(2, 3, 1, 0)                       # (out, in, h, w) -> (h, w, in, out)
        else:
            if flatten_hw is not None and li == len(convs) - 1:
                c = convs[li - 1].out_channels
                h, ww = flatten_hw
                w = w.reshape(w.shape[0], c, h, ww).permute(0, 2, 3, 1).reshape(w.shape[0], -1)
            k = w.t()
        for kind, t in (("kernel", k), ("bias", m.bias.detach())):
            rows.append((f"{base}/{kind}:0", off, off + t.numel(), t.numel(), str(tuple(t.shape))))
            parts.append(t.reshape(-1))
            off += t.numel()
    return rows, torch.cat(parts).numpy()


def _small_cnn(flat: bool, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.ReLU()]
    if flat:
        layers += [nn.Flatten(), nn.Linear(5 * 2 * 2, 3)]
    else:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)]
    return nn.Sequential(*layers)


def write_small_cnn_zoo(path: Path, nets: list[nn.Sequential], flat: bool = False, gz: bool = True,
                        shuffle_layout: bool = False, activations=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rows, vecs = None, []
    for net in nets:
        rows, v = _tf_export(net, (2, 2) if flat else None)
        vecs.append(v)
    np.save(path / "weights.npy", np.stack(vecs).astype(np.float32))
    if shuffle_layout:
        rows = rows[::-1]
    with open(path / "layout.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["varname", "start_idx", "end_idx", "size", "shape"])
        w.writerows(rows)
    header = ["config.activation", "config.optimizer", "modeldir", "step", "train_accuracy", "train_loss",
              "test_accuracy", "test_loss"]
    lines = [",".join(header)]
    for i in range(len(nets)):
        act = (activations or ["relu"] * len(nets))[i]
        lines.append(f"{act},adam,net{i // 2:05d},{(i % 2) * 10},0.5,1.0,{0.1 * (i % 10):.2f},1.5")
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path / "metrics.csv.gz", "wt") as fh:
            fh.write(text)
    else:
        (path / "metrics.csv").write_text(text)
    return path


@pytest.mark.parametrize("flat", [False, True], ids=["gap", "flatten"])
@pytest.mark.parametrize("shuffle_layout", [False, True])
def test_published_format_round_trip(tmp_path, flat, shuffle_layout):
    nets = [_small_cnn(flat, s) for s in range(4)]
    p = write_small_cnn_zoo(tmp_path / "z", nets, flat=flat, gz=not flat, shuffle_layout=shuffle_layout)
    zoo = load_zoo(p, step=None, padding="symmetric")
    assert len(zoo) == 4 and zoo.columns["step"].tolist() == [0, 10, 0, 10]
    x = torch.randn(7, 1, 8, 8)
    for i, net in enumerate(nets):
        mod = zoo.module(i)
        torch.testing.assert_close(mod(x), net(x), rtol=1e-5, atol=1e-6)   # TF layout converted exactly
        assert torch.equal(zoo.graph(i).edge_attr, mg.to_graph(net).edge_attr)
    assert zoo.columns["net_id"].tolist() == ["net00000"] * 2 + ["net00001"] * 2
    assert load_zoo(p).columns["step"].tolist() == [10, 10]


def test_tf_same_padding_matches_tensorflow_rule():
    pad = mg.data.SamePad2d(3, 2)
    assert pad(torch.zeros(1, 1, 8, 8)).shape[-2:] == (9, 9)      # TF: total 1, all at the bottom/right
    assert pad(torch.zeros(1, 1, 7, 7)).shape[-2:] == (9, 9)      # odd input: 1 on each side
    x = torch.arange(4.0).view(1, 1, 2, 2)
    assert torch.equal(pad(x)[0, 0, :2, :2], x[0, 0])             # nothing added on the top/left


# ---------------------------------------------------------------------------------------------- hostile input
class _Boom:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def cnn_dir(tmp_path):
    return write_small_cnn_zoo(tmp_path / "z", [_small_cnn(False, s) for s in range(4)])


def test_hostile_truncated_weights(cnn_dir):
    data = (cnn_dir / "weights.npy").read_bytes()
    (cnn_dir / "weights.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(ZooFormatError, match=r"weights\.npy.*truncated"):
        load_zoo(cnn_dir)


def test_hostile_layout_mismatch(cnn_dir):
    text = (cnn_dir / "layout.csv").read_text().splitlines()
    (cnn_dir / "layout.csv").write_text("\n".join(text[:-1]) + "\n")          # drop the last bias
    with pytest.raises(ZooFormatError, match="layout does not match the weights"):
        load_zoo(cnn_dir)


def test_hostile_nonfinite_weights(cnn_dir):
    w = np.load(cnn_dir / "weights.npy")
    w[3, 7] = np.nan
    np.save(cnn_dir / "weights.npy", w)
    with pytest.raises(ZooFormatError, match=r"weights\.npy.*NaN"):
        load_zoo(cnn_dir, step=None)
    assert len(load_zoo(cnn_dir, step=None, nonfinite="drop")) == 3


def test_hostile_missing_column(cnn_dir):
    with gzip.open(cnn_dir / "metrics.csv.gz", "rt") as fh:
        rows = [r.split(",") for r in fh.read().splitlines()]
    col = rows[0].index("test_accuracy")
    text = "\n".join(",".join(r[:col] + r[col + 1:]) for r in rows) + "\n"
    with gzip.open(cnn_dir / "metrics.csv.gz", "wt") as fh:
        fh.write(text)
    with pytest.raises(ZooFormatError, match="missing column 'test_accuracy'"):
        load_zoo(cnn_dir)


def test_hostile_pickle_is_never_executed(cnn_dir, tmp_path):
    marker = tmp_path / "executed"
    (cnn_dir / "weights.npy").write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ZooFormatError, match="pickle"):
        load_zoo(cnn_dir)
    np.save(cnn_dir / "weights.npy", np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(ZooFormatError, match=r"weights\.npy"):
        load_zoo(cnn_dir)
    sd = tmp_path / "inrs"
    sd.mkdir()
    torch.save({"w": _Boom(str(marker))}, sd / "net.pt")
    with pytest.raises(ZooFormatError, match=r"net\.pt.*pickled Python objects.*never unpickled"):
        load_zoo(sd)
    assert not marker.exists()


def test_unknown_directory_and_missing_path(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ZooFormatError, match="not a recognised zoo"):
        load_zoo(tmp_path)
    with pytest.raises(ZooFormatError, match="no such file"):
        load_zoo(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------- our own format
def _random_zoo(n_per: int = 3, seed: int = 0) -> Zoo:
    """A zoo of two architectures with different canvases (3×3 conv nets and SIRENs), random weights."""
    torch.manual_seed(seed)
    archs = [digits_cnn_architecture("relu", "flat", channels=4), digits_cnn_architecture("tanh", "gap", channels=4),
             siren_architecture((2, 8, 8, 1))]
    params, arch_col, act_col, rows = {}, [], [], []
    for a in archs:
        params[a.name] = torch.stack([a.spec.flatten(a.build()) for _ in range(n_per)]).numpy()
    order = [(a, r) for r in range(n_per) for a in archs]
    for a, r in order:
        arch_col.append(a.name)
        act_col.append(a.activation)
        rows.append(r)
    cols = {"arch": np.array(arch_col), "activation": np.array(act_col), "score": np.linspace(0, 1, len(rows)),
            "flag": np.arange(len(rows)) % 2 == 0, "k": np.arange(len(rows)) * 3}
    return Zoo({a.name: a for a in archs}, params, np.array(rows), cols, None, {"note": "random"}, "cnn")


def test_own_format_round_trip_and_mixed_batch(tmp_path):
    zoo = _random_zoo()
    save_zoo(zoo, tmp_path / "z")
    back = load_zoo(tmp_path / "z", step=None)
    assert isinstance(back.params[zoo.columns["arch"][0]], np.memmap)
    assert len(back) == len(zoo)
    for k, v in zoo.columns.items():
        assert back.columns[k].dtype.kind == v.dtype.kind and (back.columns[k] == v).all(), k
    for i in range(len(zoo)):
        assert torch.equal(back.parameters(i), zoo.parameters(i))
    idx = [8, 0, 4, 1, 1, 6]
    ref = mg.batch_graphs([mg.to_graph(back.module(i)) for i in idx])
    _assert_batches_equal(back.batch(idx), ref)
    _assert_batches_equal(next(iter(mg.GraphLoader(back.subset(idx), batch_size=6))), ref)
    assert back.batch(idx, dtype=torch.float64).x.dtype == torch.float64
    sub = back.subset([5, 2])
    save_zoo(sub, tmp_path / "sub")
    again = load_zoo(tmp_path / "sub", step=None)
    assert again.columns["k"].tolist() == [15, 6] and torch.equal(again.parameters(0), zoo.parameters(5))
    assert load_zoo(tmp_path / "z", activation="sine").columns["arch"].tolist() == ["siren-2-8-8-1"] * 3


@pytest.mark.parametrize("damage", ["truncate", "columns", "nan", "missing_col", "version", "pickle", "rows"])
def test_own_format_hostile(tmp_path, damage):
    zoo = _random_zoo()
    p = save_zoo(zoo, tmp_path / "z")
    pf = p / "params_siren-2-8-8-1.npy"
    if damage == "truncate":
        pf.write_bytes(pf.read_bytes()[:200])
        match = "truncated"
    elif damage == "columns":
        np.save(pf, np.zeros((3, 5), np.float32))
        match = "layout does not match"
    elif damage == "nan":
        a = np.load(pf)
        a[1, 2] = np.inf
        np.save(pf, a)
        match = "NaN or infinite"
    elif damage == "missing_col":
        lines = (p / "metrics.csv").read_text().splitlines()
        (p / "metrics.csv").write_text("\n".join(",".join(r.split(",")[:-1]) for r in lines) + "\n")
        match = "missing column 'k'"
    elif damage == "version":
        (p / "zoo.json").write_text((p / "zoo.json").read_text().replace('"format_version": 1', '"format_version": 99'))
        match = "format_version"
    elif damage == "pickle":
        pf.write_bytes(pickle.dumps({"a": 1}))
        match = "pickle"
    else:
        np.save(pf, np.zeros((2, zoo.archs["siren-2-8-8-1"].num_params), np.float32))
        match = "rows"
    with pytest.raises(ZooFormatError, match=match) as exc:
        load_zoo(p)
    assert str(p) in str(exc.value)


# ---------------------------------------------------------------------------------------------- SIREN state dicts
def _siren_state(style: str, seed: int) -> tuple[dict[str, torch.Tensor], nn.Module]:
    torch.manual_seed(seed)
    net = siren_architecture((2, 6, 6, 1)).build()
    lin = [m for m in net if isinstance(m, nn.Linear)]
    if style == "seq":
        sd = {f"seq.{2 * i}.weight": m.weight.detach().clone() for i, m in enumerate(lin)}
        sd.update({f"seq.{2 * i}.bias": m.bias.detach().clone() for i, m in enumerate(lin)})
    else:                                                  # other names; numbers past 9 test natural order
        sd = {}
        for i, m in enumerate(lin):
            sd[f"net.layer{8 + i}.W"] = m.weight.detach().clone()
            sd[f"net.layer{8 + i}.b"] = m.bias.detach().clone()
    return sd, net


@pytest.mark.parametrize("style,suffix", [("seq", ".pt"), ("odd", ".pt"), ("odd", ".safetensors")])
def test_siren_state_dict_dir(tmp_path, style, suffix):
    from safetensors.torch import save_file

    nets = []
    for i in range(4):
        sd, net = _siren_state(style, i)
        d = tmp_path / str(i % 2)
        d.mkdir(exist_ok=True)
        f = d / f"model_{i}{suffix}"
        save_file(sd, str(f)) if suffix == ".safetensors" else torch.save({"state_dict": sd}, f)
        nets.append((f, net, i % 2))
    zoo = load_zoo(tmp_path)
    assert zoo.task_kind == "inr" and len(zoo) == 4
    coords = torch.rand(10, 2) * 2 - 1
    files = zoo.columns["file"].tolist()
    for f, net, label in nets:
        i = files.index(str(f.relative_to(tmp_path)))
        assert zoo.columns["label"][i] == label
        torch.testing.assert_close(zoo.module(i)(coords), net(coords))
        g = zoo.graph(i)
        assert (g.sym[g.role == 1] == int(Symmetry.SIGN)).all()
        assert torch.equal(g.edge_attr, mg.to_graph(net).edge_attr)


def test_siren_dir_unchainable(tmp_path):
    torch.save({"a.weight": torch.zeros(4, 2), "a.bias": torch.zeros(4), "b.weight": torch.zeros(1, 3),
                "b.bias": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ZooFormatError, match="cannot chain"):
        load_zoo(tmp_path)
