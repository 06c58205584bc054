"""MonomialGMN, its layers and heads: exact invariance/equivariance under each network's monomial group."""

import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Role, Symmetry
from monomial_gmn.nn import (Canonicalize, EquivariantHead, GraphEncoder, InvariantHead, MonomialGMN,
                             MonomialMPLayer, canvas_index)
from monomial_gmn.nn._ops import Segments, edge_update, gather_gather_mul, gather_mul, scatter_sum
from monomial_gmn.testing import assert_equivariant, random_network

ACT_SETS = {
    "relu": ["relu"], "tanh": ["tanh"], "sin": ["sin"], "identity": ["identity"],
    "mixed": ["relu", "tanh", "sin", "identity", "gelu", "leaky_relu", "sigmoid"],
}
# readout, bidirectional — cycled over the sweep so every variant meets every activation set
VARIANTS = [("invariant", False), ("invariant", True), ("equivariant", True), ("equivariant", False)]


def _batch(seed: int, acts, n: int = 3, dtype=torch.float32):
    graphs = [mg.to_graph(random_network(1000 * seed + k, activations=acts, max_depth=4, max_width=8,
                                         dtype=dtype)[0]) for k in range(n)]
    return mg.batch_graphs(graphs)


def _model(readout, bidirectional, dtype, seed, batch=None, **kw):
    """A small MonomialGMN; ``design="layers"`` unless given (most tests here reach into that design's layers)."""
    torch.manual_seed(seed)
    kw.setdefault("design", "layers")
    kw.setdefault("hidden_dim", 8)
    kw.setdefault("num_layers", 3)
    if kw["design"] == "canonical":
        bidirectional = None                          # always bidirectional; False is refused
    m = MonomialGMN(out_dim=3, readout=readout, bidirectional=bidirectional, **kw).to(dtype)
    if batch is not None:
        m.fit_normalizer(batch)
    return m.eval()


def _check(fn, batch, mode, seed, **kw):
    with torch.no_grad():
        return assert_equivariant(fn, batch, mode=mode, generator=torch.Generator().manual_seed(seed), **kw)


# ---------------------------------------------------------------- the sweep (>= 200 architecture × element cases)
@pytest.mark.parametrize("design", mg.nn.DESIGNS)
@pytest.mark.parametrize("acts", list(ACT_SETS))
@pytest.mark.parametrize("seed", range(3))
def test_model_exact_under_monomial_group(acts, seed, dtype, design):
    """3 mixed architectures × 9 elements per case; 2 designs × 5 activation sets × 3 seeds × 2 dtypes = 1620."""
    batch = _batch(seed, ACT_SETS[acts], dtype=dtype)
    readout, bidir = VARIANTS[(seed + list(ACT_SETS).index(acts)) % len(VARIANTS)]
    model = _model(readout, bidir, dtype, seed, batch, design=design)
    errors = _check(model, batch, readout, seed, max_scale=100.0)
    assert len(errors) == 9 and max(errors.values()) <= (1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("readout, bidirectional, edge_dim", [
    ("invariant", False, 3), ("invariant", True, 5), ("equivariant", True, 3), ("equivariant", False, 12)])
def test_edge_width_other_than_node_width_is_exact(readout, bidirectional, edge_dim, dtype):
    """edge_dim != hidden_dim (narrower, as by default at hidden 128, and wider) keeps the law exactly."""
    batch = _batch(21, ACT_SETS["mixed"], dtype=dtype)
    model = _model(readout, bidirectional, dtype, 21, batch, edge_dim=edge_dim)
    assert model.encoder.edge_channels == edge_dim and all(l.edge_channels == edge_dim for l in model.layers)
    if readout == "equivariant":
        assert model.head.edge_dim == edge_dim
        _check(lambda g: model.features(g)[:2], batch, "equivariant", 21, max_scale=100.0)
        assert model.features(batch)[1].shape == (batch.edge_index.shape[1], edge_dim)
    errors = _check(model, batch, readout, 22, max_scale=100.0)
    assert max(errors.values()) <= (1e-5 if dtype == torch.float32 else 1e-10)


def test_default_edge_width_is_capped():
    assert MonomialGMN(out_dim=1, hidden_dim=128, num_layers=1).edge_dim == mg.nn.DEFAULT_EDGE_DIM == 32
    assert MonomialGMN(out_dim=1, hidden_dim=16, num_layers=1).edge_dim == 16
    assert MonomialGMN(out_dim=1, hidden_dim=128, num_layers=1, edge_dim=128,
                       design="layers").layers[0].edge_lin.weight.shape == (128, 128)
    assert MonomialGMN(out_dim=1, hidden_dim=128, num_layers=1).backbone.layers[0].edge_channels == 32


@pytest.mark.parametrize("bidirectional", [False, True])
def test_deep_stack_stays_exact_in_fp32(bidirectional):
    """6 layers, mixed activations, factors in [1e-2, 1e2]: cancellation-free energies keep fp32 at 1e-5."""
    batch = _batch(7, ACT_SETS["mixed"], n=4)
    model = _model("equivariant", bidirectional, torch.float32, 7, batch, hidden_dim=24, num_layers=6)
    _check(lambda g: model.features(g)[:2], batch, "equivariant", 7, n_random=6)
    _check(model, batch, "equivariant", 8, n_random=6)


def test_single_graph_and_large_canvas():
    """A lone ParameterGraph (no batch vector) and kernels wider than the per-offset table (radius 1)."""
    net = nn.Sequential(nn.Conv2d(2, 4, 7, padding=3), nn.ReLU(), nn.Conv2d(4, 3, 5), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    graph = mg.to_graph(net)
    for readout in ("invariant", "equivariant"):
        model = _model(readout, True, torch.float32, 0, graph, kernel_radius=1)
        out = model(graph)
        if readout == "invariant":
            assert out.shape == (1, 3)
        else:
            assert out.x.shape == graph.x.shape and out.edge_attr.shape == graph.edge_attr.shape
        _check(model, graph, readout, 0)


# ---------------------------------------------------------------- layers
def test_layer_alone_is_equivariant_and_bidirectional_backward_is_exact(dtype):
    batch = _batch(3, ACT_SETS["mixed"], dtype=dtype)
    torch.manual_seed(0)
    enc = GraphEncoder(10).to(dtype)
    layer = MonomialMPLayer(10, bidirectional=True).to(dtype)

    def fn(g):
        h, e = enc(g)
        n = h.shape[0]
        energy = (h * h).sum(-1, keepdim=True)
        h, e, _ = layer(h, e, energy, g.sym, Segments(g.edge_index[0], n), Segments(g.edge_index[1], n))
        return h, e

    _check(fn, batch, "equivariant", 0)


def test_scalegmn_style_backward_message_is_not_scale_equivariant():
    """The published bidirectional message e_ji · h_i scales as d_i²/d_j: the helper catches it."""
    batch = _batch(2, ["relu"], dtype=torch.float64)
    torch.manual_seed(0)
    enc = GraphEncoder(6).to(torch.float64)

    def naive(g):
        h, e = enc(g)
        back = torch.zeros_like(h).index_add_(0, g.edge_index[0], e * h[g.edge_index[1]])
        return back, e

    with pytest.raises(AssertionError, match="scaling"):
        _check(naive, batch, "equivariant", 0)
    group = mg.MonomialGroup(batch)
    perms = [group.sample(torch.Generator().manual_seed(i), scale=False) for i in range(4)]
    _check(naive, batch, "equivariant", 0, elements=perms)


@pytest.mark.parametrize("acts", [["relu"], ["tanh"], ["sin"]])
def test_permutation_only_variant_fails_scale_and_sign_but_passes_permutations(acts):
    """Disabling canonicalisation (all neurons treated as symmetry 'none') must be caught by the helper."""
    batch = _batch(5, acts, dtype=torch.float64)
    model = _model("invariant", False, torch.float64, 0, batch)
    plain = (lambda g: model(g, sym=torch.full_like(g.sym, int(Symmetry.NONE))))
    with pytest.raises(AssertionError, match="not invariant"):
        _check(plain, batch, "invariant", 0)
    group = mg.MonomialGroup(batch)
    perms = [group.sample(torch.Generator().manual_seed(i), scale=False) for i in range(5)]
    _check(plain, batch, "invariant", 0, elements=perms)
    _check(model, batch, "invariant", 0)


def test_canonicalize_branches(dtype):
    torch.manual_seed(0)
    can = Canonicalize(5).to(dtype)
    h = torch.randn(4, 5, dtype=dtype)
    sym = torch.tensor([Symmetry.NONE, Symmetry.POSITIVE_SCALE, Symmetry.SIGN, Symmetry.SCALE])
    d = torch.tensor([[1.0], [37.0], [-1.0], [-0.013]], dtype=dtype)
    torch.testing.assert_close(can(d * h, sym), can(h, sym), rtol=1e-6 if dtype == torch.float32 else 1e-12,
                               atol=0)
    # the per-branch definition, written out
    v = can.U(h)
    ref = torch.stack([h[0], h[1] / h[1].norm(), h[2] * v[2] / h[2].norm(), h[3] * v[3] / h[3].square().sum()])
    torch.testing.assert_close(can(h, sym), ref, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    assert torch.equal(can(h, sym)[0], h[0])                          # d = 1 neurons pass through untouched
    wrong = torch.tensor([[1.0], [-1.0], [3.0], [1.0]], dtype=dtype)      # signs on a ReLU node, scale on tanh
    assert not torch.allclose(can(wrong * h, sym)[1:3], can(h, sym)[1:3])
    assert torch.equal(can(torch.zeros(4, 5, dtype=dtype), sym), torch.zeros(4, 5, dtype=dtype))


def test_canonicalize_without_sign_or_scale_neurons_skips_u_but_keeps_its_zero_gradient(dtype):
    """A batch with no sign/scale neuron never uses U h: same values, U still gets its (exactly zero) gradient."""
    torch.manual_seed(1)
    can = Canonicalize(6).to(dtype)
    h = torch.randn(5, 6, dtype=dtype, requires_grad=True)
    sym = torch.tensor([Symmetry.FIXED, Symmetry.POSITIVE_SCALE, Symmetry.NONE, Symmetry.POSITIVE_SCALE,
                        Symmetry.FIXED])
    out = can(h, sym)
    ref = torch.where((sym == Symmetry.POSITIVE_SCALE).unsqueeze(-1), h / h.norm(dim=-1, keepdim=True), h)
    torch.testing.assert_close(out, ref, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    out.square().sum().backward()
    assert can.U.weight.grad is not None and torch.equal(can.U.weight.grad, torch.zeros_like(can.U.weight))
    mixed = sym.clone()
    mixed[1] = Symmetry.SIGN                                           # one sign neuron: U is used again
    h.grad = None
    can.U.weight.grad = None
    can(h, mixed).square().sum().backward()
    assert can.U.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- heads
def _law_features(g, c=6, seed=0):
    """Features obeying the law, built without any model: h ∝ d_i (x), e ∝ d_i/d_j (edge_attr)."""
    gen = torch.Generator().manual_seed(seed)
    wx = torch.randn(g.x.shape[1], c, generator=gen, dtype=g.x.dtype)
    we = torch.randn(g.edge_attr.shape[1], c, generator=gen, dtype=g.x.dtype)
    fixed = torch.randn(1, c, generator=gen, dtype=g.x.dtype) * (g.role != Role.HIDDEN).unsqueeze(-1)
    return g.x @ wx + fixed, g.edge_attr @ we


def test_heads_alone(dtype):
    batch = _batch(11, ACT_SETS["mixed"], dtype=dtype)
    torch.manual_seed(0)
    inv = InvariantHead(6, 4).to(dtype)
    eq = EquivariantHead(6).to(dtype)
    y = inv(*_law_features(batch), batch)
    assert y.shape == (batch.num_graphs, 4)
    _check(lambda g: inv(*_law_features(g), g), batch, "invariant", 0)
    _check(lambda g: eq(*_law_features(g), g), batch, "equivariant", 0)


def test_invariant_head_with_permutation_only_features():
    """Baselines pass sym = all NONE: no canonicalisation; the head is then only permutation invariant."""
    batch = _batch(12, ["relu"], dtype=torch.float64)
    head = InvariantHead(6, 2).to(torch.float64)
    none = lambda g: torch.full_like(g.sym, int(Symmetry.NONE))  # noqa: E731
    fn = lambda g: head(*_law_features(g), g, sym=none(g))       # noqa: E731
    group = mg.MonomialGroup(batch)
    _check(fn, batch, "invariant", 0, elements=[group.sample(torch.Generator().manual_seed(i), scale=False)
                                                  for i in range(4)])
    with pytest.raises(AssertionError):
        _check(fn, batch, "invariant", 0)


def test_equivariant_head_edits_small_and_keeps_padding():
    mlp = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    batch = mg.batch_graphs([mg.to_graph(mlp), mg.to_graph(cnn)])
    model = _model("equivariant", False, torch.float32, 0, batch)
    out = model(batch)
    assert out is not batch and out.edge_attr.shape == batch.edge_attr.shape
    delta = out.edge_attr - batch.edge_attr
    canvas_zero = batch.edge_attr == 0
    mlp_edges = batch.batch[batch.edge_index[0]] == 0
    # the MLP's 1×1 weights were padded onto a 3×3 canvas: only the centre may change
    assert torch.all(delta[mlp_edges][:, [0, 1, 2, 3, 5, 6, 7, 8]] == 0)
    assert delta[mlp_edges][:, 4].abs().max() > 0
    assert (delta.abs().max() / batch.edge_attr.abs().max()) < 0.5        # small initial edit
    assert torch.all(out.x[batch.role == Role.INPUT] == batch.x[batch.role == Role.INPUT])
    assert canvas_zero.any()
    # the edited graph turns back into a working module
    edited = mg.to_module(out.get_example(0), mlp)
    assert edited(torch.randn(4, 3)).shape == (4, 2)


# ---------------------------------------------------------------- normaliser, training, options
def test_fit_normalizer_sets_per_layer_constants_and_keeps_exactness():
    batch = _batch(4, ["relu", "tanh"], dtype=torch.float64)
    model = _model("invariant", True, torch.float64, 0)
    before = model.encoder.edge_scale.clone()
    model.fit_normalizer(batch)
    assert not torch.equal(before, model.encoder.edge_scale)
    scaled = batch.clone()
    scaled.edge_attr = scaled.edge_attr * 10.0
    model2 = _model("invariant", True, torch.float64, 0).fit_normalizer(scaled)
    used = model.encoder.edge_scale != 1
    torch.testing.assert_close(model2.encoder.edge_scale[used], model.encoder.edge_scale[used] / 10.0)
    assert "encoder.edge_scale" in model.state_dict()
    _check(model, batch, "invariant", 0)
    # an iterable of batches gives the same constants as their union
    halves = [mg.batch_graphs(batch.to_data_list()[:1]), mg.batch_graphs(batch.to_data_list()[1:])]
    model3 = _model("invariant", True, torch.float64, 0).fit_normalizer(halves)
    torch.testing.assert_close(model3.encoder.edge_scale, model.encoder.edge_scale)


def test_training_step_reaches_every_parameter_and_learns():
    batch = _batch(6, ACT_SETS["mixed"], n=4)
    model = _model("invariant", True, torch.float32, 0, batch).train()
    y = torch.randn(batch.num_graphs, 3)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((model(batch) - y) ** 2).mean()
        loss.backward()
        if not losses:
            missing = [n for n, p in model.named_parameters() if p.grad is None]
            assert not missing, missing
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(out_dim=None), "MonomialGMN.*out_dim"),
    (dict(out_dim=2, readout="both"), "MonomialGMN.*readout"),
    (dict(out_dim=2, hidden_dim=0), "MonomialGMN.*hidden_dim"),
    (dict(out_dim=2, kernel_radius=-1), "MonomialGMN.*kernel_radius"),
    (dict(out_dim=2, design="equivariant-layers"), "MonomialGMN.*design"),
    (dict(out_dim=2, canonical_scale="unit"), "MonomialGMN.*canonical_scale"),
    (dict(out_dim=2, bidirectional=False), "MonomialGMN.*always bidirectional"),
    (dict(out_dim=2, edge_dim=0), "MonomialGMN.*edge_dim"),
])
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MonomialGMN(**kwargs)
    with pytest.raises(ValueError, match="MonomialMPLayer"):
        MonomialMPLayer(0)
    with pytest.raises(ValueError, match="MonomialMPLayer.*edge_channels"):
        MonomialMPLayer(4, edge_channels=0)
    with pytest.raises(ValueError, match="GraphEncoder.*edge_channels"):
        GraphEncoder(4, edge_channels=0)
    with pytest.raises(ValueError, match="EquivariantHead"):
        EquivariantHead(4, init_scale=0.0)
    with pytest.raises(ValueError, match="InvariantHead"):
        InvariantHead(4, 2, dropout=1.5)


def test_repr_and_equivariant_readout_needs_no_out_dim():
    m = MonomialGMN(readout="equivariant", hidden_dim=8, num_layers=2, bidirectional=True, design="layers")
    assert "readout='equivariant'" in repr(m) and "MonomialMPLayer(8, bidirectional=True" in repr(m)
    assert "edge_dim=8" in repr(m)
    assert "edge_channels=3" in repr(MonomialMPLayer(8, edge_channels=3))


# ---------------------------------------------------------------- fast kernels against slow references
def test_fused_edge_ops_match_autograd_reference():
    torch.manual_seed(0)
    n, e, c = 7, 30, 4
    src, dst = torch.randint(0, n, (e,)), torch.sort(torch.randint(0, n, (e,))).values
    s_src, s_dst = Segments(src, n), Segments(dst, n)
    assert s_dst.perm is None and s_src.perm is not None
    a = torch.randn(e, c, dtype=torch.float64, requires_grad=True)
    t1 = torch.randn(n, c, dtype=torch.float64, requires_grad=True)
    t2 = torch.randn(n, c, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, t: gather_mul(a, t, s_src), (a, t1))
    torch.autograd.gradcheck(lambda x, y: gather_gather_mul(x, s_dst, y, s_src), (t1, t2))
    torch.autograd.gradcheck(lambda x: scatter_sum(x, s_src), (a,))
    e0 = torch.randn(e, c, dtype=torch.float64, requires_grad=True)
    t3 = torch.randn(n, c, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda *args: edge_update(*args, s_dst, s_src), (e0, a, t1, t2, t3))
    torch.testing.assert_close(edge_update(e0, a, t1, t2, t3, s_dst, s_src), e0 + a * t1[dst] + t2[dst] * t3[src])
    torch.testing.assert_close(gather_mul(a, t1, s_src), a * t1[src])
    ref = torch.zeros(n, c, dtype=torch.float64).index_add_(0, src, a)
    torch.testing.assert_close(scatter_sum(a, s_src), ref)


def test_canvas_index_crops_and_clamps():
    assert canvas_index(1, 3).tolist() == [24]                  # centre of a 7×7 table
    assert canvas_index(3, 1).tolist() == list(range(9))
    big = canvas_index(5, 1).view(5, 5)
    assert big[0, 0] == 0 and big[2, 2] == 4 and big[4, 4] == 8 and big[0, 2] == 1
