"""Module ↔ ParameterGraph conversion: layout, exact round trips, registries and errors."""

import math

import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Role, Symmetry, graph_spec
from monomial_gmn.testing import random_network

SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_round_trip_is_bit_exact(seed):
    net, x = random_network(seed)
    graph = mg.to_graph(net).validate()
    net2 = mg.to_module(graph, net)
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), net2.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    assert torch.equal(net(x), net2(x))


@pytest.mark.parametrize("seed", range(10))
def test_to_module_ignores_edge_order(seed):
    net, x = random_network(seed)
    graph = mg.to_graph(net)
    perm = torch.randperm(graph.edge_index.shape[1], generator=torch.Generator().manual_seed(seed))
    shuffled = graph.clone()
    shuffled.edge_index, shuffled.edge_attr = graph.edge_index[:, perm], graph.edge_attr[perm]
    shuffled.edge_layer = graph.edge_layer[perm]
    net2 = mg.to_module(shuffled, net)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))


def test_layout_of_the_issue_example():
    net = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    g = mg.to_graph(net)
    assert g.num_nodes == 1 + 16 + 16 + 10
    assert g.edge_index.shape[1] == 16 + 16 * 16 + 16 * 10
    assert g.edge_attr.shape[1] == 9 and g.x.shape == (43, 1)
    assert g.symmetry_counts() == {"fixed": 11, "positive_scale": 16, "sign": 16}
    # edge j -> i carries W[i, j]: first conv, output channel 5, input channel 0
    w = net[0].weight.detach()
    e = ((g.edge_index[0] == 0) & (g.edge_index[1] == 1 + 5)).nonzero().item()
    assert torch.equal(g.edge_attr[e], w[5, 0].reshape(-1))
    # a Linear weight sits at the centre of the 3x3 canvas
    lin = ((g.edge_index[0] == 17 + 3) & (g.edge_index[1] == 33 + 7)).nonzero().item()
    assert g.edge_attr[lin, 4] == net[6].weight[7, 3] and g.edge_attr[lin].count_nonzero() <= 1
    assert torch.equal(g.x[1:17, 0], net[0].bias.detach())
    assert (g.role[:1] == Role.INPUT).all() and (g.role[-10:] == Role.OUTPUT).all()
    # canonical order: sorted by (target, source)
    key = g.edge_index[1] * g.num_nodes + g.edge_index[0]
    assert torch.equal(key, key.sort().values)


def test_flatten_over_spatial_map_keeps_one_node_per_channel():
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(256, 10))
    g = mg.to_graph(net)
    assert g.num_nodes == 1 + 16 + 10
    assert g.kernel_side == 5  # the 4x4 block per channel, centred on an odd canvas
    e = ((g.edge_index[0] == 1 + 2) & (g.edge_index[1] == 17 + 4)).nonzero().item()
    block = g.edge_attr[e].reshape(5, 5)[:4, :4]
    assert torch.equal(block, net[4].weight.detach().reshape(10, 16, 4, 4)[4, 2])
    x = torch.randn(2, 1, 8, 8)
    gn = mg.random_transform(net, max_scale=10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(gn(x), net(x), rtol=1e-5, atol=1e-5)


def test_symmetry_from_the_ops_after_a_layer():
    def syms(*ops):
        net = nn.Sequential(nn.Linear(2, 3), *ops, nn.Linear(3, 1))
        return Symmetry(int(mg.to_graph(net).sym[2]))

    assert syms(nn.ReLU()) == Symmetry.POSITIVE_SCALE
    assert syms(nn.LeakyReLU(0.2)) == Symmetry.POSITIVE_SCALE
    assert syms(nn.Tanh()) == Symmetry.SIGN
    assert syms(mg.Sine(30.0)) == Symmetry.SIGN
    assert syms() == Symmetry.SCALE
    assert syms(nn.Dropout(0.5)) == Symmetry.SCALE
    assert syms(nn.Sigmoid()) == Symmetry.NONE
    assert syms(nn.GELU()) == Symmetry.NONE
    assert syms(nn.ReLU(), nn.Tanh()) == Symmetry.NONE   # positive ∩ sign
    assert syms(nn.ReLU6()) == Symmetry.NONE             # clipping is not homogeneous


def test_batch_of_mixed_architectures():
    nets = [random_network(s)[0] for s in range(6)]
    graphs = [mg.to_graph(n) for n in nets]
    batch = mg.batch_graphs(graphs)
    assert batch.num_graphs == 6
    side = max(g.kernel_side for g in graphs)
    assert batch.edge_attr.shape[1] == side * side
    for net, g in zip(nets, batch.to_data_list()):
        net2 = mg.to_module(g, net)  # padded canvases load back exactly
        assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))
    loader = mg.GraphLoader(graphs, batch_size=4)
    assert [b.num_graphs for b in loader] == [4, 2]


def test_stacked_zoo_path_equals_single_conversion():
    net, _ = random_network(3, kind="cnn2d")
    spec = graph_spec(net)
    nets = [random_network(3, kind="cnn2d")[0] for _ in range(2)]
    with torch.no_grad():
        for p in nets[1].parameters():
            p.mul_(-2.0)
    flat = torch.stack([spec.flatten(n) for n in nets])
    x, e = spec.stacked(flat)
    batch = mg.batch_stacked(spec, x, e, y=torch.tensor([[0.1], [0.2]]))
    ref = mg.batch_graphs([mg.to_graph(n) for n in nets])
    for key in ("x", "edge_index", "edge_attr", "layer", "role", "sym", "block", "pos", "edge_layer", "batch"):
        assert torch.equal(batch[key], ref[key]), key
    parts = batch.to_data_list()
    assert isinstance(parts[1], mg.ParameterGraph) and torch.equal(parts[1].edge_attr, ref.to_data_list()[1].edge_attr)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.scale


def test_unsupported_module_is_named():
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), Custom()), nn.Linear(3, 1))
    with pytest.raises(mg.UnsupportedModuleError, match=r"'1\.1'.*Custom"):
        mg.to_graph(net)
    with pytest.raises(mg.UnsupportedModuleError, match=r"'1'.*BatchNorm1d"):
        mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), method="sequential")
    with pytest.raises(mg.UnsupportedModuleError, match="groups=2"):
        mg.to_graph(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.ReLU(), nn.Conv2d(4, 2, 1)))
    with pytest.raises(mg.UnsupportedModuleError, match=r"'1'.*Softmax"):
        mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=1), nn.Linear(3, 1)), method="sequential")


def test_auto_conversion_falls_back_to_dataflow_for_norm_layers():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
    g = mg.to_graph(net)
    assert g.symmetry_counts() == {"fixed": 3, "none": 3}   # BatchNorm absorbs no per-neuron factor
    net2 = mg.to_module(g, net)
    assert torch.equal(net2[1].running_mean, net[1].running_mean)
    x = torch.randn(5, 2)
    assert torch.equal(net2(x), net(x))
    with pytest.raises(mg.UnsupportedModuleError, match="expects 4 input channels"):
        mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(4, 1)))


def test_non_finite_weights_are_rejected():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[2].weight[0, 1] = float("nan")
    with pytest.raises(mg.NonFiniteWeightsError, match=r"2\.weight"):
        mg.to_graph(net)


def test_graph_of_other_architecture_is_rejected():
    a = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    b = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(mg.GraphMismatchError):
        mg.to_module(mg.to_graph(a), b)


def test_registering_converters_and_ops():
    class MyLinear(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.kernel = nn.Parameter(torch.randn(o, i))
            self.shift = nn.Parameter(torch.randn(o))

        def forward(self, x):
            return x @ self.kernel.T + self.shift

    @mg.register_converter(MyLinear)
    def _conv(module, ctx):
        from monomial_gmn.graph import LayerConversion
        return LayerConversion(module.kernel.shape[1], module.kernel.shape[0], (), weight="kernel", bias="shift")

    net = nn.Sequential(MyLinear(2, 5), nn.Tanh(), MyLinear(5, 1))
    g = mg.to_graph(net)
    assert g.symmetry_counts()["sign"] == 5
    net2 = mg.to_module(g, net)
    assert torch.equal(net2[0].kernel, net[0].kernel)
    x = torch.randn(4, 2)
    torch.testing.assert_close(mg.random_transform(net)(x), net(x))
