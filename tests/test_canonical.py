"""Canonical forms (group.canonical_form): exact invariance, idempotence, function, ties, and the model on top."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Symmetry
from monomial_gmn.group import MonomialGroup, MonomialTransform, canonical_form
from monomial_gmn.testing import assert_equivariant, random_network
from monomial_gmn.testing._equivariance import default_tolerance, relative_error


def _perm_only(g: MonomialTransform) -> MonomialTransform:
    return MonomialTransform(g.structure, g.perm, torch.ones_like(g.factor))


def _graph_error(a, b) -> float:
    assert torch.equal(a.edge_index, b.edge_index)
    return max(relative_error(a.x, b.x), relative_error(a.edge_attr, b.edge_attr))


class ResidualMLP(nn.Module):
    """A ReLU residual stream (tied neurons), a layer mapping the stream into itself, and a dead stream neuron."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d, self.o = (nn.Linear(3, 6), nn.Linear(6, 5), nn.Linear(5, 6), nn.Linear(6, 6),
                                                  nn.Linear(6, 2))

    def forward(self, x):
        h = F.relu(self.a(x))
        h = F.relu(h + self.c(F.relu(self.b(h))))
        return self.o(F.relu(h + self.d(h)))


def _residual(dtype, dead: bool = True):
    torch.manual_seed(0)
    net = ResidualMLP().to(dtype).eval()
    if dead:
        with torch.no_grad():
            net.a.weight[1] = 0.0
            net.a.bias[1] = 0.0
    return net


# ---------------------------------------------------------------- invariance: >= 500 cases per dtype
@pytest.mark.parametrize("scale", ["balance", "norm"])
@pytest.mark.parametrize("chunk", range(4))
def test_canonical_form_removes_every_factor(chunk, scale, dtype):
    """4 chunks × 25 random architectures (every activation, MLPs and CNNs) × 7 elements = 700 cases per dtype
    and scale, factors log-uniform in [1e-2, 1e2]: canonical_form(g·G) == π_g·canonical_form(G)."""
    nets = [random_network(100 * chunk + k, dtype=dtype, max_width=12)[0] for k in range(25)]
    graph = mg.batch_graphs([mg.to_graph(n) for n in nets])
    group = MonomialGroup(graph)
    gen = torch.Generator().manual_seed(chunk)
    base = canonical_form(graph, scale=scale)
    elements = group.testing_elements(gen, max_scale=100.0) + [("r", group.sample(gen, max_scale=100.0))
                                                                for _ in range(2)]
    for name, g in elements:
        err = _graph_error(canonical_form(g(graph), scale=scale).graph, _perm_only(g)(base.graph))
        assert err <= default_tolerance(dtype), (name, err)


@pytest.mark.parametrize("seed", range(6))
def test_canonical_form_is_idempotent_keeps_the_function_and_maps_back(seed):
    net, x = random_network(seed, dtype=torch.float64)
    graph = mg.to_graph(net)
    cf = canonical_form(graph)
    again = canonical_form(cf.graph)
    assert _graph_error(again.graph, cf.graph) <= 1e-10
    torch.testing.assert_close(mg.to_module(cf.graph, net)(x), net(x), rtol=1e-9, atol=1e-12)
    # graph = f·input (by the law): lifting the representative gives back the input
    x0, e0 = cf.lift(cf.graph.x, cf.graph.edge_attr, graph.edge_index)
    torch.testing.assert_close(x0, graph.x, rtol=1e-10, atol=0)
    torch.testing.assert_close(e0, graph.edge_attr, rtol=1e-10, atol=0)


def test_canonical_form_batches_like_graphs_one_by_one():
    nets = [random_network(s, activations=["relu", "tanh", "identity"], dtype=torch.float64)[0] for s in range(5)]
    graphs = [mg.to_graph(n) for n in nets]
    batched = canonical_form(mg.batch_graphs(graphs)).graph.to_data_list()
    for g, b in zip(graphs, batched):
        c = canonical_form(g).graph
        side = mg.graph.kernel_side(b.edge_attr)
        assert _graph_error(b, c.pad_kernel(side)) <= 1e-12


def test_two_different_networks_keep_different_canonical_forms():
    """Sensitivity: the map is not constant — networks of different orbits give different representatives."""
    net, _ = random_network(3, activations=["relu", "tanh"], dtype=torch.float64)
    other = mg.random_transform(net, generator=torch.Generator().manual_seed(0))   # same orbit
    changed = mg.random_transform(net, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        changed[0].weight[0, 0] += 0.5                                              # another orbit
    a, b, c = (canonical_form(mg.to_graph(n)).graph for n in (net, other, changed))
    g = mg.sample_transform(mg.to_graph(net), generator=torch.Generator().manual_seed(0))
    assert _graph_error(b, _perm_only(g)(a)) <= 1e-10
    assert _graph_error(c, _perm_only(g)(a)) > 1e-3


def test_balance_converges_to_equal_in_and_out_energy_and_least_total_energy():
    net = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        net[0].weight.mul_(40.0)                                    # badly unbalanced on purpose
    graph = mg.to_graph(net)
    cf = canonical_form(graph, tol=1e-12)
    assert 1 < cf.sweeps < 10_000
    g = cf.graph
    src, dst = g.edge_index
    ew = (g.edge_attr ** 2).sum(-1)
    e_in = torch.zeros(g.num_nodes, dtype=torch.float64).index_add_(0, dst, ew) + (g.x ** 2).sum(-1)
    e_out = torch.zeros(g.num_nodes, dtype=torch.float64).index_add_(0, src, ew)
    hidden = g.sym == Symmetry.POSITIVE_SCALE
    torch.testing.assert_close(e_in[hidden], e_out[hidden], rtol=1e-9, atol=0)
    total = float(ew.sum() + (g.x ** 2).sum())
    for seed in range(5):                                           # no other rescaling has less energy
        moved = mg.sample_transform(g, max_scale=1.5, permute=False, generator=torch.Generator().manual_seed(seed))(g)
        assert float((moved.edge_attr ** 2).sum() + (moved.x ** 2).sum()) >= total * (1 - 1e-12)


def test_tied_residual_neurons_share_one_factor_and_dead_neurons_are_handled(dtype):
    net = _residual(dtype)
    graph = mg.to_graph(net)
    assert graph.symmetry_counts()["positive_scale"] > 0 and int(graph.block.max()) >= 1
    cf = canonical_form(graph)
    assert bool(cf.determined.all())                 # the dead first copy is oriented at a later tied copy
    x = torch.randn(5, 3, dtype=dtype, generator=torch.Generator().manual_seed(0)).to(dtype)
    torch.testing.assert_close(mg.to_module(cf.graph, net)(x), net(x),
                               rtol=1e-5 if dtype == torch.float32 else 1e-10, atol=1e-6 if dtype == torch.float32 else 1e-12)
    group = MonomialGroup(graph)
    gen = torch.Generator().manual_seed(1)
    for name, g in group.testing_elements(gen, max_scale=100.0) + [("r", group.sample(gen, max_scale=100.0))]:
        assert _graph_error(canonical_form(g(graph)).graph, _perm_only(g)(cf.graph)) <= default_tolerance(dtype)


def test_a_neuron_with_zero_incoming_vector_is_undetermined_and_gets_zero_outgoing_weights():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        net[2].weight[1] = 0.0
        net[2].bias[1] = 0.0
    graph = mg.to_graph(net)
    cf = canonical_form(graph)
    dead = (graph.layer == 2) & (torch.arange(graph.num_nodes) == int((graph.layer == 2).nonzero()[1]))
    assert cf.determined.tolist() == (~dead).tolist()
    src = graph.edge_index[0]
    assert bool((cf.graph.edge_attr[dead[src]] == 0).all())
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(mg.to_module(cf.graph, net)(x), net(x))
    # the edit of an undetermined neuron's edges is zero: its factor is unknown
    dx, de = cf.lift(torch.ones_like(graph.x), torch.ones_like(graph.edge_attr), graph.edge_index)
    touches = dead[src] | dead[graph.edge_index[1]]
    assert bool((dx[dead] == 0).all()) and bool((de[touches] == 0).all()) and bool((de[~touches] != 0).all())


def test_sign_near_ties_are_decided_by_the_odd_statistic():
    """v = (1, −1 + δ): Σ v³ ≈ 3δ decides the sign; δ = 1e-4 is far above fp32 rounding and stays exact. At the
    exact tie δ = 0 the inputs' indices decide it (the second statistic), so −v is flipped back too."""
    for delta in (1e-4, 0.0):
        net = nn.Sequential(nn.Linear(2, 1, bias=False), nn.Tanh(), nn.Linear(1, 1))
        with torch.no_grad():
            net[0].weight.copy_(torch.tensor([[1.0, -1.0 + delta]]))
        graph = mg.to_graph(net)
        flipped = MonomialTransform(MonomialGroup(graph).structure, torch.arange(1), torch.tensor([-1.0],
                                                                                                  dtype=torch.float64))
        a, b = canonical_form(graph).graph, canonical_form(flipped(graph)).graph
        assert _graph_error(a, b) == 0.0
        if delta:
            assert float((a.edge_attr[:2, 0] ** 3).sum()) > 0


def _quantised_tanh_mlp(seed: int, widths=(3, 4, 4, 4, 2), biases: bool = True) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1])
        with torch.no_grad():
            lin.weight.copy_(0.5 * (torch.randint(0, 2, lin.weight.shape, generator=gen) * 2 - 1))
            b = 0.25 * (torch.randint(0, 3, lin.bias.shape, generator=gen) - 1)
            lin.bias.copy_(b if biases else torch.zeros_like(b))
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers[:-1]).double()


def test_exact_sign_ties_of_quantised_nets_are_mostly_broken():
    """Random ±0.5 tanh MLPs (every odd statistic Σ v³ of an even fan-in can vanish): the tie-breaking statistics
    (kernel offsets, source identities and signatures, outgoing weights to outputs) make canonical_form
    invariant on most group elements — 16 of 200 left (documented), against 122 of 200 with Σ v³ alone — and a
    net with a tie only on its first layer (inputs told apart by index) on every one."""
    bad = 0
    for seed in range(40):
        graph = mg.to_graph(_quantised_tanh_mlp(seed, biases=bool(seed % 2)))
        group, gen = MonomialGroup(graph), torch.Generator().manual_seed(seed)
        base = canonical_form(graph).graph
        for _ in range(5):
            g = group.sample(gen, max_scale=100.0)
            bad += _graph_error(canonical_form(g(graph)).graph, _perm_only(g)(base)) > 1e-9
    assert bad <= 16
    first_only = _quantised_tanh_mlp(0, widths=(4, 6, 1))
    graph = mg.to_graph(first_only)
    group, gen = MonomialGroup(graph), torch.Generator().manual_seed(0)
    base = canonical_form(graph).graph
    for _ in range(20):
        g = group.sample(gen)
        assert _graph_error(canonical_form(g(graph)).graph, _perm_only(g)(base)) == 0.0


def test_bad_options_raise():
    graph = mg.to_graph(random_network(0)[0])
    with pytest.raises(ValueError, match="scale"):
        canonical_form(graph, scale="unit")
    with pytest.raises(ValueError, match="tol"):
        canonical_form(graph, tol=0.0)
    with pytest.raises(ValueError, match="'sym'"):
        canonical_form(torch_geometric_data_without_sym(graph))


def torch_geometric_data_without_sym(graph):
    from torch_geometric.data import Data

    return Data(x=graph.x, edge_index=graph.edge_index, edge_attr=graph.edge_attr)


# ---------------------------------------------------------------- the canonical-design model
@pytest.mark.parametrize("readout", ["invariant", "equivariant"])
def test_canonical_model_is_exact_on_mixed_batches_with_residual_nets(readout, dtype):
    nets = [random_network(s, dtype=dtype, max_width=8)[0] for s in range(4)] + [_residual(dtype)]
    batch = mg.batch_graphs([mg.to_graph(n) for n in nets])
    torch.manual_seed(0)
    model = mg.MonomialGMN(out_dim=2, hidden_dim=16, num_layers=2, readout=readout).to(dtype).eval()
    if readout == "equivariant":                      # make the edit large enough to matter
        with torch.no_grad():
            model.backbone.head.scale_x.fill_(1.0)
            model.backbone.head.scale_e.fill_(1.0)
    with torch.no_grad():
        errors = assert_equivariant(model, batch, mode=readout, generator=torch.Generator().manual_seed(2))
    assert len(errors) >= 9
    if readout == "equivariant":
        out = model(batch)
        assert float((out.edge_attr - batch.edge_attr).abs().max()) > 1e-3 * float(batch.edge_attr.abs().max())


def test_permutation_only_backbone_on_raw_graphs_fails_the_same_check():
    """Sensitivity: the same backbone without the canonical form (the GMN baseline) is not scale invariant."""
    nets = [random_network(s, activations=["relu"], max_width=8)[0] for s in range(3)]
    batch = mg.batch_graphs([mg.to_graph(n) for n in nets])
    torch.manual_seed(0)
    gmn = mg.build_model("gmn", out_dim=2, hidden_dim=16, num_layers=2).eval()
    with torch.no_grad(), pytest.raises(AssertionError, match="scaling"):
        assert_equivariant(gmn, batch, generator=torch.Generator().manual_seed(0))


def test_energy_features_keep_the_model_exact_and_change_its_input(dtype):
    nets = [random_network(s, dtype=dtype, max_width=8)[0] for s in range(4)] + [_residual(dtype)]
    batch = mg.batch_graphs([mg.to_graph(n) for n in nets])
    torch.manual_seed(0)
    model = mg.MonomialGMN(out_dim=2, hidden_dim=16, num_layers=2, energy_features=True).to(dtype).eval()
    assert model.backbone.node_in[0].in_features == 5
    with torch.no_grad():
        assert_equivariant(model, batch, generator=torch.Generator().manual_seed(3))
        plain = mg.MonomialGMN(out_dim=2, hidden_dim=16, num_layers=2).to(dtype).eval()
        with pytest.raises(ValueError, match="node_extra"):
            model.backbone(batch)                     # the backbone alone needs the extra columns
        assert plain(batch).shape == model(batch).shape == (5, 2)
