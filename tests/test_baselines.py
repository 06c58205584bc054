"""Baselines (GMN, NFN-NP, StatNN, StatNN-GBM): permutation invariance/equivariance through the shared helper,
sensitivity to scales and signs (so the comparison with MonomialGMN is meaningful), vectorised statistics
against slow references, errors."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.baselines import (GMN, NFNNP, QUANTILES, RunningStandardize, StatNN, StatNNGBM, dense_layout,
                                    grouped_stats, layer_slots, statnn_features)
from monomial_gmn.graph import graph_spec
from monomial_gmn.testing import assert_equivariant, random_network


def small_cnn(act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), act(), nn.Conv2d(4, 5, 3, stride=2), act(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))


def mixed_batch(seeds, activations=("relu", "tanh", "leaky_relu", "sin"), dtype=torch.float64, max_width=8):
    nets = [random_network(s, max_depth=4, max_width=max_width, activations=list(activations), dtype=dtype)[0]
            for s in seeds]
    return mg.batch_graphs([mg.to_graph(n) for n in nets])


def same_arch_batch(n=3, dtype=torch.float64):
    nets = [small_cnn(nn.ReLU if i % 2 == 0 else nn.Tanh, seed=i).to(dtype) for i in range(n)]
    return mg.batch_graphs([mg.to_graph(m) for m in nets])


def perm_elements(batch, n=3, seed=0):
    group, gen = mg.MonomialGroup(batch), torch.Generator().manual_seed(seed)
    return [(f"perm{i}", group.sample(gen, scale=False)) for i in range(n)]


def scale_elements(batch, n=2, seed=1):
    group, gen = mg.MonomialGroup(batch), torch.Generator().manual_seed(seed)
    return [(f"scale{i}", group.sample(gen, max_scale=10.0, permute=False)) for i in range(n)]


def make(name, readout="invariant"):
    torch.manual_seed(0)
    if name == "gmn":
        m = GMN(3, readout=readout, hidden_dim=16, num_layers=2, kernel_side=7)
    elif name == "np":
        m = NFNNP(3, readout=readout, hidden_dim=8, num_layers=2)
    else:
        m = StatNN(3, hidden_dim=16, num_layers=2)
    return m.double().eval()


def batch_for(name):
    return same_arch_batch() if name == "np" else mixed_batch(range(5))


# ------------------------------------------------------------------------------------------ invariance
@pytest.mark.parametrize("name", ["gmn", "np", "statnn"])
def test_baselines_are_permutation_invariant(name):
    batch = batch_for(name)
    model = make(name)
    errs = assert_equivariant(model, batch, perm_elements(batch), mode="invariant")
    assert len(errs) == 3


@pytest.mark.parametrize("name", ["gmn", "np", "statnn"])
def test_baselines_are_not_scale_or_sign_invariant(name):
    batch = batch_for(name)
    model = make(name)
    with pytest.raises(AssertionError, match="not invariant"):
        assert_equivariant(model, batch, scale_elements(batch), mode="invariant")


@pytest.mark.parametrize("name", ["gmn", "np"])
def test_equivariant_readout_is_permutation_equivariant_only(name):
    batch = batch_for(name)
    model = make(name, "equivariant")
    out = model(batch)
    assert out.x.shape == batch.x.shape and out.edge_attr.shape == batch.edge_attr.shape
    assert not torch.equal(out.edge_attr, batch.edge_attr)
    assert_equivariant(model, batch, perm_elements(batch), mode="equivariant")
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(model, batch, scale_elements(batch), mode="equivariant")


def test_gmn_batch_composition_does_not_change_a_graph_output():
    """Padding a graph's kernels to a larger canvas (by batching with a bigger-kernel net) changes nothing."""
    small = mg.to_graph(small_cnn().double())
    big = mg.to_graph(nn.Sequential(nn.Conv2d(1, 2, 7), nn.ReLU(), nn.Conv2d(2, 2, 5)).double())
    for model in (make("gmn"), make("statnn")):
        alone = model(mg.batch_graphs([small]))
        together = model(mg.batch_graphs([small, big]))[:1]
        torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-12)


def test_gmn_is_float32_permutation_invariant_at_default_size():
    batch = mixed_batch(range(3), dtype=torch.float32)
    model = GMN(2, kernel_side=7).eval()
    assert_equivariant(model, batch, perm_elements(batch, 2), mode="invariant", rtol=1e-4)


# ------------------------------------------------------------------------------------------ NFN-NP
def test_nfn_np_rejects_mixed_architectures():
    model = make("np")
    mixed = mg.batch_graphs([mg.to_graph(small_cnn().double()),
                             mg.to_graph(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double())])
    with pytest.raises(ValueError, match="one fixed architecture"):
        model(mixed)
    wider = nn.Sequential(nn.Conv2d(1, 5, 3, stride=2), nn.ReLU(), nn.Conv2d(5, 4, 3, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()  # same neuron count
    with pytest.raises(ValueError, match="one fixed architecture"):
        model(mg.batch_graphs([mg.to_graph(small_cnn().double()), mg.to_graph(wider)]))
    model(same_arch_batch())  # depth 3 is now fixed
    deeper = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(),
                           nn.Linear(3, 2)).double()
    with pytest.raises(ValueError, match="parametric layers"):
        model(mg.batch_graphs([mg.to_graph(deeper)]))


def test_nfn_np_dense_layout_matches_the_module_weights():
    nets = [small_cnn(seed=s).double() for s in range(3)]
    batch = mg.batch_graphs([mg.to_graph(n) for n in nets])
    g = mg.MonomialGroup(batch).sample(torch.Generator().manual_seed(0), scale=False)
    moved = g(batch)                               # edges re-sorted, values moved: the layout must follow
    layout = dense_layout(moved)
    assert layout.sizes == [1, 4, 5, 3]
    perm = g.node_perm()
    for k, mask in enumerate(layout.masks):
        src, dst = moved.edge_index[:, mask]
        w = torch.zeros(3, layout.sizes[k + 1], layout.sizes[k], 9, dtype=torch.float64)
        w[layout.edge_graph[mask], layout.row[mask], layout.col[mask]] = moved.edge_attr[mask]
        for b, net in enumerate(nets):
            rec = graph_spec(net).layers[k]
            ref = dict(net.named_parameters())[rec.weight].detach().reshape(rec.n_out, rec.n_in, -1)
            # row of neuron at original local index r is perm-moved; undo the move to compare
            out_nodes = rec.out_nodes + b * 13
            in_nodes = rec.in_nodes + b * 13
            rows = perm[out_nodes] - out_nodes[0]
            cols = perm[in_nodes] - in_nodes[0]
            kh = ref.shape[-1]
            got = w[b][rows][:, cols]
            if kh == 1:
                got = got[..., 4:5]
            torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_nfn_np_loads_weights_without_knowing_depth():
    batch = same_arch_batch()
    a = make("np")
    a(batch)
    b = NFNNP(3, hidden_dim=8, num_layers=2).double().eval()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b(batch), a(batch))
    c = NFNNP(3, hidden_dim=8, num_layers=2).double().train()
    with pytest.raises(RuntimeError, match="fit_normalizer"):
        c(batch)                                  # training layers an optimiser has not seen: refuse
    c.fit_normalizer(iter([batch]))
    assert c.depth == 3 and sum(p.numel() for p in c.parameters()) == sum(p.numel() for p in a.parameters())


# ------------------------------------------------------------------------------------------ statistics
def _reference_stats(v: torch.Tensor) -> torch.Tensor:
    if v.numel() == 0:
        return torch.zeros(7, dtype=torch.float64)
    q = torch.quantile(v, torch.tensor(QUANTILES, dtype=v.dtype))
    return torch.cat([v.mean().view(1), v.var(unbiased=False).view(1), q])


def _reference_features(net: nn.Module, k: int) -> torch.Tensor:
    """Slow per-network reference from the module's own parameter tensors (not from the graph)."""
    spec = graph_spec(net)
    params = dict(net.named_parameters())
    depth = len(spec.layers)
    out = torch.zeros(k, 15, dtype=torch.float64)
    for li, rec in enumerate(spec.layers):
        slot = k - 1 if li == depth - 1 else (li if li < k - 1 else -1)
        if slot < 0:
            continue
        w = params[rec.weight].detach().double().reshape(-1)
        b = params[rec.bias].detach().double() if rec.bias is not None else torch.zeros(rec.n_out, dtype=torch.float64)
        out[slot] = torch.cat([_reference_stats(w), _reference_stats(b), torch.ones(1, dtype=torch.float64)])
    return out


@pytest.mark.parametrize("k", [2, 3, 8])
def test_statnn_features_match_a_per_network_reference(k):
    nets = [random_network(s, max_depth=5, max_width=10, dtype=torch.float64)[0] for s in range(12)]
    nets.append(nn.Sequential(*[m for i in range(10) for m in (nn.Linear(3, 3), nn.ReLU())], nn.Linear(3, 2)).double())
    batch = mg.batch_graphs([mg.to_graph(n) for n in nets])          # mixed canvases, depths, bias-free layers
    feats = statnn_features(batch, k)
    assert feats.shape == (len(nets), k, 15)
    for i, net in enumerate(nets):
        torch.testing.assert_close(feats[i], _reference_features(net, k), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dt", [torch.float64, torch.float32])
def test_grouped_stats_match_torch_quantile(dt):
    gen = torch.Generator().manual_seed(0)
    sizes = [1, 2, 3, 7, 0, 50, 4, 9]
    vals = torch.randn(sum(sizes), generator=gen, dtype=dt) * 10
    vals[-9:] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, -1e3, 1e3, -1.5, -1.5, 2.0], dtype=dt)   # ties, ±0
    group = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    shuffle = torch.randperm(vals.numel(), generator=gen)
    out = grouped_stats(vals[shuffle], group[shuffle], len(sizes))
    start = 0
    for g, n in enumerate(sizes):
        ref = _reference_stats(vals[start:start + n].double())
        tol = 1e-6 if dt == torch.float32 else 1e-13
        torch.testing.assert_close(out[g, [2, 6]].double(), ref[[2, 6]], rtol=0, atol=0)   # min, max: exact
        torch.testing.assert_close(out[g, 2:].double(), ref[2:], rtol=tol, atol=1e-30)
        torch.testing.assert_close(out[g, :2].double(), ref[:2], rtol=1e-5 if dt == torch.float32 else 1e-12,
                                   atol=1e-12)
        start += n


def test_layer_slot_rule():
    layer = torch.arange(10)
    assert layer_slots(layer, torch.full((10,), 10), 4).tolist() == [0, 1, 2, -1, -1, -1, -1, -1, -1, 3]
    assert layer_slots(torch.arange(2), torch.full((2,), 2), 4).tolist() == [0, 3]
    with pytest.raises(ValueError):
        layer_slots(layer, layer, 0)


def test_running_standardize_matches_whole_data_and_freezes():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(100, 3, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]) + 5
    st = RunningStandardize(3, eps=0.0).double().train()
    for chunk in data.split(7):
        st(chunk)
    torch.testing.assert_close(st.mean, data.mean(0))
    torch.testing.assert_close(st.m2 / st.count, data.var(0, unbiased=False))
    st.fit(data[:50].split(13))
    before = st.mean.clone()
    st(data[50:])                                            # frozen: training mode does not update
    assert torch.equal(st.mean, before) and bool(st.frozen)
    torch.testing.assert_close(st.mean, data[:50].mean(0))


# ------------------------------------------------------------------------------------------ StatNN-GBM
def test_statnn_gbm_fits_learns_and_is_permutation_invariant():
    batch = mixed_batch(range(50), activations=("relu", "tanh"), dtype=torch.float32)
    feats = statnn_features(batch, 8)
    y = feats[:, 7, 1].sqrt().numpy() + 0.1 * feats[:, 0, 0].numpy()   # last layer's weight std, first layer mean
    model = StatNNGBM(out_dim=1, max_iter=25, min_samples_leaf=3, random_state=3)
    assert model.seed == 3 and not model.is_torch_trainable
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(batch)
    model.fit(batch, y)
    pred = model.predict(batch).reshape(-1)
    assert np.corrcoef(pred, y)[0, 1] > 0.9
    assert model.num_parameters() > 0
    out = model(batch)
    assert out.shape == (50, 1) and out.dtype == torch.float32
    assert_equivariant(model, batch, perm_elements(batch, 2), mode="invariant")
    with pytest.raises(AssertionError):
        assert_equivariant(model, batch, scale_elements(batch, 2), mode="invariant")


def test_statnn_gbm_classification_and_validation():
    batch = mixed_batch(range(40), dtype=torch.float32)
    feats = statnn_features(batch, 8)
    y = (feats[:, 7, 1] > feats[:, 7, 1].median()).long().numpy()
    model = StatNNGBM(out_dim=3, task="classification", max_iter=20, min_samples_leaf=3)
    model.fit(batch, y, val_data=batch, val_y=y)
    logp = model(batch)
    assert logp.shape == (40, 3)
    assert torch.isinf(logp[:, 2]).all()                        # class 2 never seen
    assert (logp[:, :2].exp().sum(1) - 1).abs().max() < 1e-5
    assert (logp.argmax(1).numpy() == y).mean() > 0.9
    with pytest.raises(ValueError, match="task"):
        StatNNGBM(task="ranking")


# ------------------------------------------------------------------------------------------ training & errors
@pytest.mark.parametrize("name", ["gmn", "np", "statnn"])
def test_baselines_train_and_have_gradients(name):
    batch = batch_for(name)
    model = make(name).train()
    if hasattr(model, "fit_normalizer"):
        model.fit_normalizer([batch])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    target = torch.linspace(-1, 1, batch.num_graphs, dtype=torch.float64).unsqueeze(1).expand(-1, 3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = ((model(batch) - target) ** 2).mean()
        loss.backward()
        losses.append(float(loss))
        opt.step()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert losses[-1] < 0.7 * losses[0]


def test_gmn_rejects_kernels_larger_than_configured():
    batch = mg.batch_graphs([mg.to_graph(nn.Sequential(nn.Conv2d(1, 2, 5), nn.ReLU(), nn.Conv2d(2, 1, 3)))])
    with pytest.raises(ValueError, match="kernel_side=5"):
        GMN(1, kernel_side=3)(batch)
    with pytest.raises(ValueError, match="readout"):
        GMN(1, readout="both")
    with pytest.raises(ValueError, match="kernel_side"):
        GMN(1, kernel_side=4)


def test_single_graph_input_works():
    graph = mg.to_graph(small_cnn())
    for model in (GMN(2, hidden_dim=8, num_layers=1), NFNNP(2, hidden_dim=8, num_layers=1), StatNN(2)):
        out = model.eval()(graph)
        assert out.shape == (1, 2) and torch.isfinite(out).all()
    assert math.isfinite(float(StatNN(1).eval()(graph)))
