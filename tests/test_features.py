"""Invariant features: canonical forms, exact invariance under the monomial group, statistics, path norms."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.features import (balance, canonicalize, feature_names, invariant_features, num_features, path_norms,
                                   segment_stats, weight_statistics)
from monomial_gmn.graph import Symmetry
from monomial_gmn.group import MonomialTransform
from monomial_gmn.testing import assert_equivariant, random_network


def _small_cnn(act, seed=0):
    """The Small CNN Zoo architecture (3 conv × 16 ch, stride 2, GAP, dense 10) at 1 input channel."""
    torch.manual_seed(seed)
    a = {"relu": nn.ReLU, "tanh": nn.Tanh}[act]
    return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), a(), nn.Conv2d(16, 16, 3, stride=2), a(),
                         nn.Conv2d(16, 16, 3, stride=2), a(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


@pytest.mark.parametrize("seed", range(12))
def test_invariant_under_random_group_elements(seed, dtype):
    net, _ = random_network(seed, dtype=dtype)
    graph = mg.to_graph(net)
    gen = torch.Generator().manual_seed(seed)
    errs = assert_equivariant(invariant_features, graph, mode="invariant", max_scale=100.0, n_random=3,
                              generator=gen)
    assert len(errs) == 8


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_invariant_on_small_cnn_zoo_architecture_with_papers_factors(act):
    net = _small_cnn(act)
    graph = mg.to_graph(net)
    group = mg.MonomialGroup(graph)
    gen = torch.Generator().manual_seed(1)
    elements = [group.sample(gen, scale_range=(1.0, 10.0 ** k), distribution="uniform") for k in range(5)]
    errs = assert_equivariant(invariant_features, graph, elements=elements, mode="invariant")
    assert max(errs.values()) <= 1e-5


def test_every_feature_column_is_invariant_not_just_the_largest():
    """assert_equivariant normalises by the largest feature; check each column on its own scale."""
    graphs = [mg.to_graph(random_network(s, activations=["relu", "tanh", "leaky_relu", "sin"])[0])
              for s in range(8)]
    batch = mg.batch_graphs(graphs)
    base = invariant_features(batch, num_layers=4)
    g = mg.MonomialGroup(batch).sample(torch.Generator().manual_seed(0), max_scale=100.0)
    moved = invariant_features(g(batch), num_layers=4)
    col_scale = base.abs().amax(0).clamp(min=1e-6)
    rel = ((moved - base).abs() / col_scale).max().item()
    assert rel <= 1e-4, rel


def test_raw_statistics_are_not_invariant_but_permutation_invariant():
    """Sensitivity: StatNN-like statistics of raw weights fail the same check under scalings/signs."""
    for act in ("relu", "tanh"):
        graph = mg.to_graph(_small_cnn(act))
        with pytest.raises(AssertionError, match="not invariant"):
            assert_equivariant(weight_statistics, graph, mode="invariant", generator=torch.Generator().manual_seed(0))
        group = mg.MonomialGroup(graph)
        perm_only = group.sample(torch.Generator().manual_seed(0), scale=False)
        assert_equivariant(weight_statistics, graph, elements=[perm_only], mode="invariant")
    # Normalising each neuron's incoming row on its own (without pushing the factor into the next layer)
    # is not enough: W[i, j] / ||W[i, :]|| still carries 1 / d_j of the previous layer.
    def row_normalised_stats(G):
        e, x = G.edge_attr, G.x
        sq = torch.zeros(x.shape[0], dtype=e.dtype).index_add_(0, G.edge_index[1], (e * e).sum(-1)) + x[:, 0] ** 2
        norm = torch.where(G.sym == Symmetry.POSITIVE_SCALE, sq.sqrt(), torch.ones_like(sq))
        H = G.clone()
        H.edge_attr, H.x = e / norm[G.edge_index[1]].unsqueeze(-1), x / norm.unsqueeze(-1)
        return weight_statistics(H)

    graph = mg.to_graph(_small_cnn("relu"))
    with pytest.raises(AssertionError, match="not invariant"):
        assert_equivariant(row_normalised_stats, graph, mode="invariant", generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("seed", range(12))
def test_canonical_form_moves_only_by_the_permutation(seed):
    net, _ = random_network(seed, dtype=torch.float64)
    graph = mg.to_graph(net)
    g = mg.sample_transform(graph, max_scale=100.0, generator=torch.Generator().manual_seed(seed))
    perm_only = MonomialTransform(g.structure, g.perm, torch.ones_like(g.factor))
    a = canonicalize(g(graph))
    b = perm_only(canonicalize(graph))
    assert torch.equal(a.edge_index, b.edge_index)
    torch.testing.assert_close(a.x, b.x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.edge_attr, b.edge_attr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_canonical_network_computes_the_same_function(seed):
    net, x = random_network(seed, dtype=torch.float64, activations=["relu", "leaky_relu", "tanh", "sin",
                                                                    "identity", "gelu"])
    canon = mg.to_module(canonicalize(mg.to_graph(net)), net)
    torch.testing.assert_close(canon(x), net(x), rtol=1e-9, atol=1e-12)


def _reference_canonical_mlp(net):
    """Slow reference on the module's own tensors: loop over layers and neurons."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    ws = [m.weight.detach().double().clone() for m in linears]
    bs = [m.bias.detach().double().clone() for m in linears]
    for l in range(len(ws) - 1):
        for i in range(ws[l].shape[0]):
            v = torch.cat([ws[l][i], bs[l][i:i + 1]])
            n = v.norm()
            ws[l][i] /= n
            bs[l][i] /= n
            ws[l + 1][:, i] *= n
    return ws, bs


def test_canonical_form_matches_slow_reference_and_has_unit_rows():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    ws, bs = _reference_canonical_mlp(net)
    canon = mg.to_module(canonicalize(mg.to_graph(net)), net)
    lin = [m for m in canon if isinstance(m, nn.Linear)]
    for m, w, b in zip(lin, ws, bs):
        torch.testing.assert_close(m.weight, w, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(m.bias, b, rtol=1e-12, atol=1e-14)
    for m in lin[:-1]:
        rows = torch.cat([m.weight, m.bias[:, None]], 1).norm(dim=1)
        torch.testing.assert_close(rows, torch.ones_like(rows))


def test_sign_neurons_get_a_positive_odd_statistic_and_dead_neurons_lose_outgoing_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        net[2].weight[1].zero_()
        net[2].bias[1] = 0.0
    c = mg.to_module(canonicalize(mg.to_graph(net)), net)
    v = torch.cat([c[0].weight, c[0].bias[:, None]], 1)
    assert bool(((v ** 3).sum(1) > 0).all())
    assert bool((c[4].weight[:, 1] == 0).all())
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(c(x), net(x))


def test_mixed_architecture_batch_equals_per_graph_features():
    graphs = [mg.to_graph(random_network(s, max_depth=6)[0]) for s in range(10)]
    batch = mg.batch_graphs(graphs)
    feats = invariant_features(batch, num_layers=3)
    assert feats.shape == (10, num_features(3))
    for i, g in enumerate(graphs):
        side = math.isqrt(batch.edge_attr.shape[1])
        torch.testing.assert_close(feats[i], invariant_features(g.pad_kernel(side), num_layers=3)[0])


def test_depth_slots_rule():
    shallow = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    deep = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(),
                         nn.Linear(5, 2))
    names = feature_names(3)
    f = invariant_features(mg.batch_graphs([mg.to_graph(shallow), mg.to_graph(deep)]), num_layers=3)
    present = [names.index(n) for n in ("layer0_present", "layer1_present", "out_present")]
    assert f[0, present].tolist() == [1.0, 0.0, 1.0]      # shallow: input layer and output layer only
    assert f[1, present].tolist() == [1.0, 1.0, 1.0]      # deep: two middle layers pooled into slot 1
    numel = names.index("layer1_log_numel")
    assert math.isclose(f[1, numel].item(), math.log1p(50), rel_tol=1e-6)
    assert len(names) == f.shape[1]


def test_linear_padding_is_not_counted_as_weights():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    f = weight_statistics(mg.to_graph(net))
    names = feature_names(2, path_norm=False, balanced=False)
    assert math.isclose(f[0, names.index("out_log_numel")].item(), math.log1p(8), rel_tol=1e-6)
    assert math.isclose(f[0, names.index("layer0_log_numel")].item(), math.log1p(36), rel_tol=1e-6)
    w = net[4].weight.detach()
    assert math.isclose(f[0, names.index("out_w_mean")].item(), w.mean().item(), rel_tol=1e-5)
    assert math.isclose(f[0, names.index("out_w_q0")].item(), w.min().item(), rel_tol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_segment_stats_match_numpy(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 9, size=7)
    vals = [rng.normal(size=s) for s in sizes]
    seg = torch.cat([torch.full((s,), i, dtype=torch.long) for i, s in enumerate(sizes)])
    perm = torch.randperm(seg.numel(), generator=torch.Generator().manual_seed(seed))
    v = torch.from_numpy(np.concatenate(vals))
    stats, count = segment_stats(v[perm], seg[perm], 7)
    for i, arr in enumerate(vals):
        assert count[i] == len(arr)
        if len(arr) == 0:
            assert bool((stats[i] == 0).all())
            continue
        ref = [arr.mean(), arr.std(), *np.quantile(arr, [0, 0.25, 0.5, 0.75, 1.0])]
        np.testing.assert_allclose(stats[i].numpy(), ref, rtol=1e-12, atol=1e-12)


def test_path_norm_matches_brute_force_on_a_tiny_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    w1, b1, w2, b2 = (p.detach() for p in net.parameters())
    l1 = w2.abs() @ (w1.abs() @ torch.ones(2, dtype=torch.float64) + b1.abs()) + b2.abs()
    l1_nb = w2.abs() @ (w1.abs() @ torch.ones(2, dtype=torch.float64))
    l2 = (w2 ** 2 @ (w1 ** 2 @ torch.ones(2, dtype=torch.float64) + b1 ** 2) + b2 ** 2).sqrt()
    got = path_norms(mg.to_graph(net))[0]
    ref = torch.stack([l1.mean().log(), l1.min().log(), l1.max().log(), l2.mean().log(), l2.min().log(),
                       l2.max().log(), l1_nb.mean().log(), l1_nb.min().log(), l1_nb.max().log()])
    torch.testing.assert_close(got, ref)


def test_tied_neurons_share_one_factor():
    """Residual ties are canonicalised, not refused: tied neurons get one factor (tests/test_canonical.py has
    real residual networks; here the tie is made by hand on an MLP)."""
    graph = mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)).double())
    tied = graph.clone()
    tied.block = torch.where(tied.block == 1, torch.zeros_like(tied.block), tied.block)
    g = mg.sample_transform(tied, max_scale=100.0, generator=torch.Generator().manual_seed(0))
    perm_only = MonomialTransform(g.structure, g.perm, torch.ones_like(g.factor))
    for fn in (canonicalize, balance):
        a, b = fn(g(tied)), perm_only(fn(tied))
        torch.testing.assert_close(a.edge_attr, b.edge_attr, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(a.x, b.x, rtol=1e-10, atol=1e-12)


def test_invariant_gbm_predictions_do_not_move_under_the_group():
    from monomial_gmn.features import InvariantGBM

    graphs = [mg.to_graph(random_network(s, kind="mlp", max_depth=3, activations=["relu", "tanh"])[0])
              for s in range(80)]
    batch = mg.batch_graphs(graphs)
    y = invariant_features(batch, num_layers=3)[:, 5].numpy() + 0.1 * np.arange(80) % 1.0
    model = InvariantGBM(num_layers=3, max_iter=30, min_samples_leaf=5).fit(batch, y)
    assert model.num_parameters() > 0 and len(model.feature_names()) == num_features(3)
    pred = model(batch)
    assert pred.shape == (80, 1)
    assert np.corrcoef(pred[:, 0].numpy(), y)[0, 1] > 0.5        # it learned something
    moved = mg.MonomialGroup(batch).sample(torch.Generator().manual_seed(0), scale_range=(1.0, 1e4),
                                          distribution="uniform")(batch)
    torch.testing.assert_close(model(moved), pred, rtol=1e-6, atol=1e-6)


def test_invariant_feature_mlp_is_invariant_and_trains():
    from monomial_gmn.features import InvariantFeatureMLP

    torch.manual_seed(0)
    graphs = [mg.to_graph(_small_cnn("relu" if s % 2 else "tanh", seed=s)) for s in range(6)]
    batch = mg.batch_graphs(graphs)
    model = InvariantFeatureMLP(out_dim=2, num_layers=4, hidden_dim=16).fit_normalizer(batch).eval()
    assert int(model.standardize.count) == 6
    errs = assert_equivariant(model, batch, mode="invariant", generator=torch.Generator().manual_seed(0))
    assert max(errs.values()) <= 1e-5
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = torch.randn(6, 2)
    first = None
    for _ in range(30):
        loss = ((model(batch) - target) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_monomial_gmn_feature_readout_part_is_exactly_invariant():
    from monomial_gmn.models import ComposedModel, build_model
    from monomial_gmn.nn import MonomialGMN

    torch.manual_seed(0)
    graphs = [mg.to_graph(_small_cnn("relu" if s % 2 else "tanh", seed=s)) for s in range(4)]
    batch = mg.batch_graphs(graphs)
    model = build_model("monomial", out_dim=1, hidden_dim=8, num_layers=2, feature_readout=True, feature_slots=4)
    assert isinstance(model, ComposedModel) and isinstance(model.backbone, MonomialGMN)
    model.fit_normalizer(b for b in [batch])                    # a one-shot iterable, as the trainer passes
    assert int(model.parts["features"].standardize.count) == 4
    model.eval()
    plain = MonomialGMN(out_dim=1, hidden_dim=8, num_layers=2)
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in plain.parameters())
    assert_equivariant(model, batch, mode="invariant", generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="readout='invariant'"):
        build_model("monomial", out_dim=1, readout="equivariant", feature_readout=True)
    with pytest.raises(TypeError, match="feature_readout"):          # no longer an option of the backbone
        MonomialGMN(out_dim=1, feature_readout=True)


# ---------------------------------------------------------------- balanced representative


@pytest.mark.parametrize("seed", range(8))
def test_balanced_network_computes_the_same_function_and_is_invariant(seed):
    net, x = random_network(seed, dtype=torch.float64, activations=["relu", "leaky_relu", "tanh", "sin", "identity"])
    graph = mg.to_graph(net)
    bal = balance(graph)
    torch.testing.assert_close(mg.to_module(bal, net)(x), net(x), rtol=1e-9, atol=1e-12)
    g = mg.sample_transform(graph, max_scale=100.0, generator=torch.Generator().manual_seed(seed))
    perm_only = MonomialTransform(g.structure, g.perm, torch.ones_like(g.factor))
    moved, ref = balance(g(graph)), perm_only(bal)       # balance(g·G) = π_g·balance(G): the factors are gone
    assert torch.equal(moved.edge_index, ref.edge_index)
    torch.testing.assert_close(moved.edge_attr, ref.edge_attr, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(moved.x, ref.x, rtol=1e-9, atol=1e-12)


def test_balanced_mlp_has_equal_in_and_out_energy_and_least_total_energy():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        net[0].weight.mul_(30.0)                     # badly unbalanced on purpose
    m = mg.to_module(balance(mg.to_graph(net)), net)
    lin = [l for l in m if isinstance(l, nn.Linear)]
    for a, b in zip(lin[:-1], lin[1:]):
        e_in = (a.weight ** 2).sum(1) + a.bias ** 2
        e_out = (b.weight ** 2).sum(0)
        torch.testing.assert_close(e_in, e_out, rtol=1e-8, atol=1e-12)
    total = sum(float((l.weight ** 2).sum() + (l.bias ** 2).sum()) for l in lin)
    gen = torch.Generator().manual_seed(0)
    graph = mg.to_graph(m)
    for _ in range(5):                               # no other positive rescaling has less energy
        g = mg.MonomialGroup(graph).sample(gen, max_scale=1.5)
        h = g(graph)
        assert float((h.edge_attr ** 2).sum() + (h.x ** 2).sum()) >= total * (1 - 1e-9)
    assert total < float(sum((l.weight ** 2).sum() + (l.bias ** 2).sum() for l in net if isinstance(l, nn.Linear)))


def test_balance_rejects_a_bad_tolerance():
    with pytest.raises(ValueError, match="tol"):
        balance(mg.to_graph(_small_cnn("relu")), tol=0.0)


# ---------------------------------------------------------------- exact feature memo


def test_graph_digests_identify_networks_exactly():
    from monomial_gmn.features._cache import graph_digests
    graphs = [mg.to_graph(random_network(s)[0]) for s in range(6)]
    d = graph_digests(mg.batch_graphs(graphs))
    assert torch.unique(d, dim=0).shape[0] == 6
    # the same network gets the same digest alone or anywhere in a batch
    torch.testing.assert_close(graph_digests(graphs[3])[0], d[3], rtol=0, atol=0)
    torch.testing.assert_close(graph_digests(mg.batch_graphs(graphs[2:5]))[1], d[3], rtol=0, atol=0)
    # one flipped bit in one weight, or one rescaled neuron, changes it
    g = graphs[3].clone()
    g.edge_attr = g.edge_attr.clone()
    flat = g.edge_attr.view(-1)
    k = int(torch.nonzero(flat).flatten()[0])
    flat[k] = torch.nextafter(flat[k], torch.tensor(float("inf")))
    assert not torch.equal(graph_digests(g)[0], d[3])
    moved = mg.sample_transform(graphs[3], max_scale=10.0, generator=torch.Generator().manual_seed(0))(graphs[3])
    assert not torch.equal(graph_digests(moved)[0], d[3])


def test_feature_cache_returns_exactly_the_computed_rows():
    from monomial_gmn.features import InvariantFeatureMLP
    graphs = [mg.to_graph(random_network(s, activations=["relu", "tanh"])[0]) for s in range(8)]
    cached = InvariantFeatureMLP(2, num_layers=4)
    plain = InvariantFeatureMLP(2, num_layers=4, cache=False)
    first = cached.features(mg.batch_graphs(graphs[:6]))
    again = cached.features(mg.batch_graphs(graphs[:6][::-1]))      # all seen: looked up, in the new order
    assert cached.cache.hits == 6 and cached.cache.misses == 6
    torch.testing.assert_close(again, first.flip(0), rtol=0, atol=0)
    mixed = cached.features(mg.batch_graphs(graphs[4:8]))          # two new networks: computed and remembered
    torch.testing.assert_close(mixed, plain.features(mg.batch_graphs(graphs[4:8])), rtol=0, atol=0)
    assert len(cached.cache) == 8
