"""Drawings of parameter graphs and zoo summaries: valid PNGs, clear refusals, numbers checked directly."""

from __future__ import annotations

import json
import math
import struct
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.cli import main
from monomial_gmn.viz import (MAX_DRAW_EDGES, MAX_DRAW_NODES, GraphTooLargeError, draw_graph, format_zoo_summary,
                              plot_zoo, zoo_summary)
from monomial_gmn.viz._draw import _arcs, _tied_pairs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.endswith(b"IEND\xaeB`\x82")                 # complete file: ends with the IEND chunk
    return width, height


def _example_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.Tanh(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


# ---------------------------------------------------------------------------------------------- drawings
def test_draw_graph_writes_a_png(tmp_path):
    path = draw_graph(mg.to_graph(_example_cnn()), tmp_path / "sub" / "graph.png",
                      layer_names=["0: Conv2d", "2: Conv2d", "6: Linear"])
    assert path == tmp_path / "sub" / "graph.png"
    w, h = _png_size(path)
    assert 600 <= w <= 2000 and 400 <= h <= 1500
    assert 10_000 < path.stat().st_size < 300_000
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]   # atomic write left nothing


def test_draw_graph_marks_skip_edges(tmp_path):
    """A graph with an edge that spans two layers (as a residual connection gives) still draws."""
    graph = mg.to_graph(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.SiLU(), nn.Linear(4, 2)))
    inputs = (graph.layer == 0).nonzero().flatten()
    targets = (graph.layer == 2).nonzero().flatten()
    src, dst = inputs[:2], targets[:2]
    ei = torch.cat([graph.edge_index, torch.stack([src, dst])], dim=1)
    ea = torch.cat([graph.edge_attr, torch.ones(2, graph.edge_attr.shape[1])])
    el = torch.cat([graph.edge_layer, torch.ones(2, dtype=torch.long)])
    order = torch.argsort(ei[1] * graph.num_nodes + ei[0])
    skip = mg.ParameterGraph(**{**dict(graph.items()), "edge_index": ei[:, order], "edge_attr": ea[order],
                                "edge_layer": el[order]}).validate()
    path = draw_graph(skip, tmp_path / "skip.png", edge_scale="global")
    _png_size(path)
    G = skip.to_networkx()
    spans = [G.nodes[i]["layer"] - G.nodes[j]["layer"] for j, i in G.edges]
    assert spans.count(2) == 2


def test_arcs_join_the_endpoints():
    p0 = np.array([[0.0, 0.0], [0.0, 1.0]])
    p1 = np.array([[1.0, 0.0], [1.0, 0.0]])
    arcs = _arcs(p0, p1, bend=0.2, steps=9)
    assert arcs.shape == (2, 9, 2)
    np.testing.assert_allclose(arcs[:, 0], p0)
    np.testing.assert_allclose(arcs[:, -1], p1)
    assert abs(arcs[0, 4, 1]) > 0.05                     # bulges away from the straight line


def test_tied_pairs_link_consecutive_copies():
    block = np.array([-1, 0, 0, 0, 0, 1, 0, 0, -1])
    pos = np.array([-1, 0, 1, 0, 1, 0, 0, 1, -1])
    layer = np.array([0, 1, 1, 2, 2, 2, 3, 3, 4])
    pairs = sorted(map(tuple, _tied_pairs(block, pos, layer).tolist()))
    assert pairs == [(1, 3), (2, 4), (3, 6), (4, 7)]
    assert _tied_pairs(np.array([-1, -1]), np.array([-1, -1]), np.array([0, 1])).shape == (0, 2)


def test_draw_residual_network(tmp_path):
    fx_to_graph = getattr(mg.graph, "fx_to_graph", None)
    if fx_to_graph is None:
        pytest.skip("no torch.fx converter in this build")

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.o = nn.Linear(3, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.o(h + torch.relu(self.b(h)))

    graph = fx_to_graph(Res())
    layer, block, pos = graph.layer.numpy(), graph.block.numpy(), graph.pos.numpy()
    assert _tied_pairs(block, pos, layer).shape[0] == 6            # the addition ties 6 channel pairs
    _png_size(draw_graph(graph, tmp_path / "res.png"))
    back = mg.ParameterGraph.from_networkx(graph.to_networkx())
    for key, value in graph.items():
        assert torch.equal(back[key], value), key


def test_too_large_graph_is_refused(tmp_path):
    net = nn.Sequential(nn.Linear(MAX_DRAW_NODES, 2))
    graph = mg.to_graph(net)
    with pytest.raises(GraphTooLargeError, match=rf"{MAX_DRAW_NODES + 2:,} neurons and {2 * MAX_DRAW_NODES:,} "
                                                 rf"edges \(limits: {MAX_DRAW_NODES:,} neurons, "
                                                 rf"{MAX_DRAW_EDGES:,} edges\)"):
        draw_graph(graph, tmp_path / "big.png")
    assert not (tmp_path / "big.png").exists()
    with pytest.raises(ValueError, match=r"20 edges \(limits: 400 neurons, 10 edges\)"):
        draw_graph(mg.to_graph(nn.Sequential(nn.Linear(4, 5))), tmp_path / "e.png", max_edges=10)
    batch = mg.batch_graphs([mg.to_graph(nn.Sequential(nn.Linear(2, 3)))] * 2)
    with pytest.raises(ValueError, match="batch of 2 graphs"):
        draw_graph(batch, tmp_path / "b.png")
    with pytest.raises(ValueError, match="edge_scale"):
        draw_graph(mg.to_graph(nn.Sequential(nn.Linear(4, 5))), tmp_path / "e.png", edge_scale="log")


def test_cli_convert_draw(tmp_path, capsys):
    model = tmp_path / "lin.pt"
    torch.save(nn.Linear(3, 2).state_dict(), model)
    kwargs = '{"in_features": 3, "out_features": 2}'
    out = tmp_path / "lin.png"
    assert main(["convert", str(model), "--arch", "torch.nn:Linear", "--arch-kwargs", kwargs,
                 "--draw", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    _png_size(out)
    big = tmp_path / "big.pt"
    torch.save(nn.Linear(500, 2).state_dict(), big)
    assert main(["convert", str(big), "--arch", "torch.nn:Linear", "--arch-kwargs",
                 '{"in_features": 500, "out_features": 2}', "--draw", str(tmp_path / "big.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("monomial-gmn: error: graph too large to draw readably: 502 neurons")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "big.png").exists()


# ---------------------------------------------------------------------------------------------- zoos
class TinyZoo:
    """The Zoo interface used by the summaries, over a list of modules (two architectures, two activations,
    two checkpoints per network of which only the last is "final")."""

    def __init__(self, n: int = 24, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.nets: list[nn.Module] = []
        cols: dict[str, list] = {k: [] for k in ("activation", "arch", "optimizer", "test_accuracy", "step",
                                                 "net_id")}
        for i in range(n):
            act = ("relu", "tanh")[i % 2]
            deep = i % 3 == 0
            A = nn.ReLU if act == "relu" else nn.Tanh
            layers = [nn.Linear(4, 6), A(), nn.Linear(6, 5), A(), nn.Linear(5, 3)] if deep else \
                [nn.Linear(4, 6, bias=i % 4 != 1), A(), nn.Linear(6, 3)]
            net = nn.Sequential(*layers)
            with torch.no_grad():
                for p in net.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * (0.5 + i / n))
            self.nets.append(net)
            cols["activation"].append(act)
            cols["arch"].append("mlp3" if deep else "mlp2")
            cols["optimizer"].append(("adam", "sgd", "rmsprop")[i % 3 if i % 5 else 0])
            cols["test_accuracy"].append(float(torch.rand(1, generator=g)) if i != 7 else float("nan"))
            cols["step"].append(100 if i % 4 else 50)       # every 4th net is an early checkpoint
            cols["net_id"].append(i if i % 4 else i + 1)
        self.columns = {k: np.asarray(v) for k, v in cols.items()}

    def __len__(self) -> int:
        return len(self.nets)

    def final_mask(self) -> np.ndarray:
        return self.columns["step"] == 100

    def batch(self, idx):
        return mg.batch_graphs([mg.to_graph(self.nets[int(i)]) for i in np.asarray(idx)])


def test_zoo_summary_matches_a_direct_computation():
    zoo = TinyZoo()
    s = zoo_summary(zoo, batch_size=5, progress=False)
    final = [i for i in range(len(zoo)) if zoo.columns["step"][i] == 100]
    assert s["networks"] == len(zoo) and s["summarised"] == len(final) == s["norm_networks"]
    for key in ("activation", "arch", "optimizer"):
        assert s["counts"][key] == dict(Counter(str(zoo.columns[key][i]) for i in final))
    assert "step" not in s["counts"] and "net_id" not in s["counts"]
    acc = np.array([zoo.columns["test_accuracy"][i] for i in final])
    acc = acc[np.isfinite(acc)]
    t = s["targets"]["test_accuracy"]
    assert t["n"] == acc.size
    for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max),
                     ("median", np.median)):
        assert t[name] == pytest.approx(float(fn(acc)), rel=1e-12)
    assert sum(t["hist"]["counts"]) == acc.size
    # per-layer weight / bias norms straight from the modules
    for rec in s["layers"]:
        l = rec["layer"] - 1
        w = [float(torch.linalg.vector_norm(lins[l].weight.detach().double()))
             for lins in ([m for m in zoo.nets[i] if isinstance(m, nn.Linear)] for i in final) if l < len(lins)]
        b = [float(torch.linalg.vector_norm(lins[l].bias.detach().double())) if lins[l].bias is not None else 0.0
             for lins in ([m for m in zoo.nets[i] if isinstance(m, nn.Linear)] for i in final) if l < len(lins)]
        assert rec["networks"] == len(w)
        for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max),
                         ("median", np.median)):
            assert rec["weight_norm"][name] == pytest.approx(float(fn(w)), rel=1e-5)
            assert rec["bias_norm"][name] == pytest.approx(float(fn(b)), rel=1e-5)
    assert [rec["layer"] for rec in s["layers"]] == [1, 2, 3]
    assert s["layers"][2]["networks"] == sum(1 for i in final if zoo.columns["arch"][i] == "mlp3")
    med = s["by_activation"]["tanh"][0]
    tanh_w0 = [float(torch.linalg.vector_norm(zoo.nets[i][0].weight.detach().double())) for i in final
               if zoo.columns["activation"][i] == "tanh"]
    assert med == pytest.approx(float(np.median(tanh_w0)), rel=1e-5)


def test_zoo_summary_subsets_and_labels():
    zoo = TinyZoo(n=12)
    zoo.columns["label"] = np.arange(12) % 3
    s = zoo_summary(zoo, max_nets=4, seed=1, progress=False)
    assert s["norm_networks"] == 4
    assert s["targets"]["label"] == {"kind": "categorical",
                                     "counts": dict(Counter(str(v) for v in zoo.columns["label"][zoo.final_mask()]))}
    assert _nan_equal(s, zoo_summary(zoo, max_nets=4, seed=1, progress=False))        # deterministic
    del zoo.columns["arch"]
    with pytest.raises(ValueError, match="no 'arch' column"):
        zoo_summary(zoo)


def _nan_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_nan_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_nan_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def test_plot_zoo_and_table(tmp_path):
    zoo = TinyZoo()
    summary = plot_zoo(zoo, tmp_path / "zoo.png", batch_size=8, progress=False)
    w, h = _png_size(tmp_path / "zoo.png")
    assert w >= 800 and h >= 600
    assert (tmp_path / "zoo.png").stat().st_size < 300_000
    assert _nan_equal(summary, zoo_summary(zoo, progress=False))
    table = format_zoo_summary(summary)
    assert f"networks: {len(zoo)}" in table
    for value, count in summary["counts"]["arch"].items():
        assert any(line.split()[:2] == [value, str(count)] for line in table.splitlines())
    layer1 = next(line for line in table.splitlines() if line.startswith("1 "))
    assert f"{summary['layers'][0]['weight_norm']['mean']:.4g}" in layer1


# ---------------------------------------------------------------------------------------------- real zoos
@pytest.fixture(scope="module")
def tiny_zoos(tmp_path_factory):
    from monomial_gmn.data import build_zoo

    root = tmp_path_factory.mktemp("zoos")
    cnn = build_zoo("digits-cnn", root / "cnn", nets=6, seed=3, chunk_size=6, progress=False, epochs=[1, 1],
                    train_fractions=[0.1], checkpoints=[0, 1], families=["gap", "flat"], channels=4)
    inr = build_zoo("digits-siren", root / "inr", nets=6, seed=1, chunk_size=6, progress=False, steps=5,
                    resolution=8, copies=1)
    return cnn, inr


def test_zoo_summary_on_a_real_zoo(tiny_zoos):
    from monomial_gmn.data import load_zoo

    zoo = load_zoo(tiny_zoos[0])
    s = zoo_summary(zoo, progress=False)
    assert s["counts"]["activation"] == dict(Counter(zoo.columns["activation"].astype(str).tolist()))
    assert s["counts"]["arch"] == dict(Counter(zoo.columns["arch"].astype(str).tolist()))
    acc = zoo.columns["test_accuracy"].astype(np.float64)
    assert s["targets"]["test_accuracy"]["mean"] == pytest.approx(float(acc.mean()), rel=1e-12)
    norms: dict[int, list[float]] = {}
    for i in range(len(zoo)):
        layers = [m for m in zoo.module(i).modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        for l, m in enumerate(layers):
            norms.setdefault(l, []).append(float(torch.linalg.vector_norm(m.weight.detach().double())))
    assert [rec["networks"] for rec in s["layers"]] == [len(norms[l]) for l in sorted(norms)]
    for rec in s["layers"]:
        v = norms[rec["layer"] - 1]
        assert rec["weight_norm"]["median"] == pytest.approx(float(np.median(v)), rel=1e-5)
        assert rec["weight_norm"]["max"] == pytest.approx(float(np.max(v)), rel=1e-5)


@pytest.mark.parametrize("which", [0, 1], ids=["cnn", "inr"])
def test_cli_zoo_info_plot(tiny_zoos, tmp_path, capsys, which):
    out = tmp_path / "zoo.png"
    assert main(["zoo", "info", str(tiny_zoos[which]), "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    _png_size(out)
    assert out.stat().st_size < 300_000
    assert f"wrote {out}" in text
    assert "‖W‖ mean" in text
    assert ("test_accuracy: n=" in text) if which == 0 else ("label" in text)


def test_cli_zoo_info_plot_json_is_strict_json(tiny_zoos, tmp_path, capsys):
    out = tmp_path / "zoo.png"
    assert main(["zoo", "info", str(tiny_zoos[0]), "--plot", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    body = text[:text.rindex("wrote ")]

    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    info = json.loads(body, parse_constant=no_nan)
    assert info["summary"]["networks"] == info["nets"]
    assert [rec["layer"] for rec in info["summary"]["layers"]] == list(range(1, len(info["summary"]["layers"]) + 1))
