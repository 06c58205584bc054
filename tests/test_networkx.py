"""ParameterGraph <-> networkx: exact round trips and structural checks of converted networks."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Role, Symmetry, graph_from_networkx, graph_to_networkx
from monomial_gmn.testing import random_network

SEEDS = range(12)


def _assert_same_graph(a: mg.ParameterGraph, b: mg.ParameterGraph) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    for key, value in a.items():
        other = b[key]
        if isinstance(value, torch.Tensor):
            assert other.dtype == value.dtype, key
            assert other.shape == value.shape, key
            assert torch.equal(other, value), key
        else:
            assert other == value, key
    assert a.num_nodes == b.num_nodes


@pytest.mark.parametrize("seed", SEEDS)
def test_round_trip_is_exact(seed, dtype):
    net, _ = random_network(seed, dtype=dtype)
    graph = mg.to_graph(net)
    graph.y = torch.tensor([[0.25 + seed]], dtype=dtype)          # a per-graph target rides along
    G = graph.to_networkx()
    assert isinstance(G, nx.DiGraph)
    assert G.number_of_nodes() == graph.num_nodes
    assert G.number_of_edges() == graph.edge_index.shape[1]
    back = mg.ParameterGraph.from_networkx(G)
    assert isinstance(back, mg.ParameterGraph)
    _assert_same_graph(graph, back)
    # the function form is the same conversion
    _assert_same_graph(graph, graph_from_networkx(graph_to_networkx(graph)))


def test_round_trip_survives_edge_insertion_order():
    net, _ = random_network(3, kind="mlp")
    graph = mg.to_graph(net)
    G = graph.to_networkx()
    shuffled = nx.DiGraph()
    shuffled.graph.update(G.graph)
    shuffled.add_nodes_from(G.nodes(data=True))
    edges = list(G.edges(data=True))
    perm = torch.randperm(len(edges), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled.add_edges_from(edges[k] for k in perm)
    _assert_same_graph(graph, mg.ParameterGraph.from_networkx(shuffled))


def test_attributes_carry_labels_bias_and_magnitude():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    graph = mg.to_graph(net)
    G = graph.to_networkx()
    for i, attrs in G.nodes(data=True):
        assert attrs["sym_label"] == Symmetry(int(graph.sym[i])).label
        assert attrs["role_label"] == Role(int(graph.role[i])).name.lower()
        assert attrs["layer"] == int(graph.layer[i])
        assert attrs["bias"] == float(graph.x[i, 0])
    labels = {a["sym_label"] for _, a in G.nodes(data=True)}
    assert labels == {"fixed", "positive_scale", "sign"}
    for e, (j, i) in enumerate(graph.edge_index.t().tolist()):
        attrs = G.edges[j, i]
        assert attrs["kernel"] == graph.edge_attr[e].tolist()
        assert attrs["magnitude"] == pytest.approx(float(graph.edge_attr[e].double().norm()), rel=1e-12)
        assert attrs["edge_layer"] == int(graph.edge_layer[e])
    # a conv edge's kernel is the module's 3×3 block W[i, j]
    w = net[2].weight.detach()
    first_hidden2 = int((graph.layer == 2).nonzero()[0])
    first_hidden1 = int((graph.layer == 1).nonzero()[0])
    assert G.edges[first_hidden1 + 1, first_hidden2 + 2]["kernel"] == w[2, 1].reshape(-1).tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_feed_forward_structure(seed):
    net, _ = random_network(seed)
    graph = mg.to_graph(net)
    G = graph.to_networkx()
    assert nx.is_directed_acyclic_graph(G)
    assert nx.is_weakly_connected(G)
    layer = nx.get_node_attributes(G, "layer")
    role = nx.get_node_attributes(G, "role")
    # every edge goes from one layer to the next and belongs to the layer it feeds
    for j, i, attrs in G.edges(data=True):
        assert layer[i] == layer[j] + 1
        assert attrs["edge_layer"] == layer[i] - 1
    for node, deg in G.in_degree():
        assert (deg == 0) == (role[node] == Role.INPUT)
    for node, deg in G.out_degree():
        assert (deg == 0) == (role[node] == Role.OUTPUT)
    # as many weight / bias entries as the module has parameters (kernel sizes accounted; weights are
    # drawn from a Gaussian, so no entry is exactly zero)
    params = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    n_weight = sum(m.weight.numel() for m in params)
    n_bias = sum(m.bias.numel() for m in params if m.bias is not None)
    kernel_entries = sum(sum(1 for v in a["kernel"] if v != 0.0) for _, _, a in G.edges(data=True))
    bias_entries = sum(1 for _, a in G.nodes(data=True) if a["bias"] != 0.0)
    assert kernel_entries == n_weight
    assert bias_entries == n_bias
    # each layer: its output neurons are the module's rows, one edge per (input neuron, output neuron) pair,
    # and (for a conv) each edge's kernel has the module's kernel size
    width = {lay: sum(1 for n in G if layer[n] == lay) for lay in set(layer.values())}
    per_layer = {}
    for _, _, a in G.edges(data=True):
        per_layer[a["edge_layer"]] = per_layer.get(a["edge_layer"], 0) + 1
    assert sorted(per_layer) == list(range(len(params)))
    for lay, m in enumerate(params):
        assert width[lay + 1] == m.weight.shape[0]
        assert per_layer[lay] == width[lay] * width[lay + 1]
        if not isinstance(m, nn.Linear):
            assert m.weight.shape[1] == width[lay]


def test_hand_built_networkx_graph():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.25], [3.0, 4.0]]))
        net[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        net[2].weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
        net[2].bias.copy_(torch.tensor([-0.75]))
    expected = mg.to_graph(net)
    G = nx.DiGraph()
    for k in range(2):
        G.add_node(f"in{k}", layer=0, role=0, sym=0, bias=0.0)
    for k in range(3):
        G.add_node(f"h{k}", layer=1, role=1, sym=int(Symmetry.POSITIVE_SCALE), block=0, pos=k,
                   bias=float(net[0].bias[k].detach()))
    G.add_node("out", layer=2, role=2, sym=0, bias=float(net[2].bias[0].detach()))
    for k in reversed(range(3)):                         # deliberately not in canonical order
        G.add_edge(f"h{k}", "out", weight=float(net[2].weight[0, k].detach()))
        for m in range(2):
            G.add_edge(f"in{m}", f"h{k}", weight=float(net[0].weight[k, m].detach()))
    graph = graph_from_networkx(G)
    for key in ("x", "edge_index", "edge_attr", "layer", "role", "sym", "block", "pos", "edge_layer"):
        assert torch.equal(graph[key], expected[key]), key


def test_errors_name_the_problem():
    graph = mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))
    G = graph.to_networkx()
    del G.nodes[2]["sym"]
    with pytest.raises(ValueError, match=r"node 2 has no attribute 'sym'"):
        graph_from_networkx(G)
    with pytest.raises(ValueError, match="DiGraph"):
        graph_from_networkx(graph.to_networkx().to_undirected())
    H = nx.DiGraph()
    H.add_node(0, layer=0, role=0, sym=0, bias=0.0)
    H.add_node(1, layer=1, role=2, sym=0, bias=0.0)
    H.add_edge(0, 1)
    with pytest.raises(ValueError, match="edge 0 -> 1 has neither 'kernel' nor 'weight'"):
        graph_from_networkx(H)
