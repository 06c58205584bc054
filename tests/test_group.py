"""The monomial group: axioms, action on graphs and modules, function invariance, sampling."""

import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Symmetry, graph_spec
from monomial_gmn.testing import random_network


def _graphs_equal(a, b, exact=True):
    if not torch.equal(a.edge_index, b.edge_index):
        return False
    if exact:
        return torch.equal(a.x, b.x) and torch.equal(a.edge_attr, b.edge_attr)
    return torch.allclose(a.x, b.x, rtol=1e-12, atol=1e-12) and torch.allclose(a.edge_attr, b.edge_attr,
                                                                                rtol=1e-12, atol=1e-12)


def _direct_transform(net, g):
    """Slow reference: W' = D_out P_out W P_inᵀ D_in⁻¹ per layer, straight on the module's tensors."""
    spec = graph_spec(net)
    perm, d = g.node_perm(), g.node_factor(torch.float64)
    state = {k: v.detach().clone().double() for k, v in net.state_dict().items()}
    for rec in spec.layers:
        w = state[rec.weight].reshape(rec.n_out, rec.n_in, -1)
        new = torch.empty_like(w)
        po, pi = perm[rec.out_nodes] - rec.out_nodes[0], perm[rec.in_nodes] - rec.in_nodes[0]
        do, di = d[rec.out_nodes], d[rec.in_nodes]
        new[po[:, None], pi[None, :]] = w * (do[:, None] / di[None, :])[..., None]
        state[rec.weight] = new.reshape(state[rec.weight].shape)
        if rec.bias is not None:
            b = torch.empty_like(state[rec.bias])
            b[po] = state[rec.bias] * do
            state[rec.bias] = b
    return state


@pytest.mark.parametrize("seed", range(30))
def test_module_action_matches_graph_action_and_reference(seed):
    net, x = random_network(seed, dtype=torch.float64)
    graph = mg.to_graph(net)
    g = mg.sample_transform(graph, max_scale=10.0, generator=torch.Generator().manual_seed(seed))
    moved = g(net)
    assert _graphs_equal(mg.to_graph(moved), g(graph))
    ref = _direct_transform(net, g)
    for name, p in moved.named_parameters():
        torch.testing.assert_close(p, ref[name], rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", range(40))
def test_transformed_network_computes_the_same_function(seed, dtype):
    net, x = random_network(seed, dtype=dtype)
    graph = mg.to_graph(net)
    y = net(x)
    tol = 1e-5 if dtype == torch.float32 else 1e-11
    for name, g in mg.MonomialGroup(graph).testing_elements(torch.Generator().manual_seed(seed)):
        y2 = g(net)(x)
        err = ((y2 - y).abs().max() / y.abs().max().clamp_min(1e-30)).item()
        assert err <= tol, (name, err)


@pytest.mark.parametrize("seed", range(10))
def test_group_axioms(seed):
    net, _ = random_network(seed, dtype=torch.float64)
    graph = mg.to_graph(net)
    group = mg.MonomialGroup(graph)
    gen = torch.Generator().manual_seed(seed)
    a, b, c = (group.sample(gen) for _ in range(3))
    assert _graphs_equal((a @ b)(graph), a(b(graph)), exact=False)
    assert _graphs_equal(((a @ b) @ c)(graph), (a @ (b @ c))(graph), exact=False)
    assert _graphs_equal((~a)(a(graph)), graph, exact=False)
    assert (a @ ~a).is_identity() or torch.allclose((a @ ~a).factor, torch.ones_like(a.factor))
    assert _graphs_equal(group.identity()(graph), graph)


def test_transform_is_not_trivial_and_respects_symmetry():
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.GELU(),
                        nn.Linear(8, 8), nn.Linear(8, 2))
    graph = mg.to_graph(net)
    group = mg.MonomialGroup(graph)
    g = group.sample(torch.Generator().manual_seed(0), max_scale=10)
    d = g.node_factor()
    sym = graph.sym
    assert (d[sym == Symmetry.POSITIVE_SCALE] > 0).all()
    assert not torch.allclose(d[sym == Symmetry.POSITIVE_SCALE], torch.ones(8, dtype=torch.float64))
    assert set(d[sym == Symmetry.SIGN].tolist()) <= {-1.0, 1.0}
    assert (d[sym == Symmetry.NONE] == 1).all() and (d[sym == Symmetry.FIXED] == 1).all()
    assert (d[sym == Symmetry.SCALE] != 1).all()
    perm = g.node_perm()
    fixed = sym == Symmetry.FIXED
    assert torch.equal(perm[fixed], torch.arange(graph.num_nodes)[fixed])
    assert not torch.equal(perm, torch.arange(graph.num_nodes))
    assert not torch.equal(g(graph).edge_attr, graph.edge_attr)
    assert (graph.layer[perm] == graph.layer).all()   # neurons stay in their layer


def test_uniform_scale_range_like_the_paper():
    net = nn.Sequential(nn.Linear(3, 500), nn.ReLU(), nn.Linear(500, 2))
    g = mg.sample_transform(net, scale_range=(1.0, 1000.0), distribution="uniform",
                            generator=torch.Generator().manual_seed(0))
    d = g.factor
    assert d.min() >= 1 and d.max() <= 1000 and d.mean() > 300


def test_sampling_is_deterministic_given_a_generator():
    net, _ = random_network(5)
    a = mg.sample_transform(net, generator=torch.Generator().manual_seed(7))
    b = mg.sample_transform(net, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.perm, b.perm) and torch.equal(a.factor, b.factor)


def test_batch_action_equals_per_graph_action():
    graphs = [mg.to_graph(random_network(s, dtype=torch.float64)[0]) for s in range(5)]
    batch = mg.batch_graphs(graphs)
    g = mg.sample_transform(batch, generator=torch.Generator().manual_seed(0))
    moved = g(batch).to_data_list()
    perm, d = g.node_perm(), g.node_factor()
    for i, graph in enumerate(graphs):
        lo, hi = int(batch.ptr[i]), int(batch.ptr[i + 1])
        assert torch.equal(moved[i].layer, graph.layer)
        # x follows the law node by node
        expect = torch.empty_like(graph.x)
        expect[perm[lo:hi] - lo] = graph.x * d[lo:hi, None]
        torch.testing.assert_close(moved[i].x, expect, rtol=1e-15, atol=0)


def test_module_of_other_network_is_rejected():
    a = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    b = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 1))
    with pytest.raises(ValueError, match="neurons"):
        mg.sample_transform(a)(b)
