"""ProbeFeatures: networks' outputs on random probes, rebuilt from the graph, exactly invariant."""

import numpy as np
import pytest
import torch

import monomial_gmn as mg
from monomial_gmn._errors import GraphMismatchError
from monomial_gmn.data import Architecture, digits_cnn_architecture, siren_architecture
from monomial_gmn.features import InvariantFeatureMLP, InvariantGBM, ProbeFeatures, probe_feature_names
from monomial_gmn.models import build_model
from monomial_gmn.testing import assert_equivariant

_ACTS = ("relu", "tanh", "leaky_relu", "sine", "gelu", "identity")


def _random_arch(seed: int, out: int = 4) -> Architecture:
    """A random Sequential-as-data: an MLP, a CNN with global pooling, or a CNN read by a Linear over its map."""
    rng = np.random.default_rng(seed)
    kind = ["mlp", "gap", "flat"][seed % 3]
    act = lambda: [str(rng.choice(_ACTS)), {}]  # noqa: E731
    layers = []
    if kind == "mlp":
        width = int(rng.integers(2, 6))
        shape, c = [width], width
        for _ in range(int(rng.integers(1, 4))):
            w = int(rng.integers(2, 7))
            layers += [["linear", {"in": c, "out": w}], act()]
            c = w
        layers.append(["linear", {"in": c, "out": out}])
        return Architecture(f"rand{seed}", layers, shape)
    side = int(rng.integers(5, 9))
    c_in = int(rng.integers(1, 3))
    c, s = c_in, side
    for _ in range(int(rng.integers(1, 3))):
        k, st = int(rng.choice([1, 3])), int(rng.choice([1, 2]))
        pad = k // 2 if rng.random() < 0.7 else 0
        w = int(rng.integers(2, 5))
        layers += [["conv2d", {"in": c, "out": w, "kernel": k, "stride": st, "padding": pad}], act()]
        c, s = w, (s + 2 * pad - k) // st + 1
    if kind == "gap":
        layers += [["gap", {}], ["flatten", {}], ["linear", {"in": c, "out": out}]]
    else:
        layers += [["flatten", {}], ["linear", {"in": c * s * s, "out": out}]]
    return Architecture(f"rand{seed}", layers, [c_in, side, side])


def _batch(archs, per_arch=2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    graphs, flats = [], []
    for a in archs:
        for _ in range(per_arch):
            flat = torch.randn(a.num_params, generator=g, dtype=torch.float64).to(dtype)
            graphs.append(a.spec.graph(flat))
            flats.append((a, flat))
    return mg.batch_graphs(graphs), flats


@pytest.mark.parametrize("seed", range(6))
def test_outputs_are_the_real_networks_outputs(seed):
    archs = [_random_arch(seed), _random_arch(seed + 100)]
    pf = ProbeFeatures(archs, num_probes=16, seed=seed)
    batch, flats = _batch(archs, dtype=torch.float64)
    out = pf.outputs(batch)
    assert out.shape == (len(flats), 16, 4)
    for i, (a, flat) in enumerate(flats):
        net, state = a.build().double(), a.unflatten(flat)     # the torch module itself, in float64
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(state[name])
            want = net(pf._bank(a).double())
        torch.testing.assert_close(out[i], want, rtol=1e-10, atol=1e-12)


def test_probe_bank_fed_in_chunks_gives_the_same_outputs(monkeypatch):
    """Bounded memory: the forward pass runs the bank in (networks × probes)-limited chunks, same outputs."""
    import monomial_gmn.features._probe as probe_mod

    archs = [_random_arch(3, out=10), digits_cnn_architecture("relu")]
    pf = ProbeFeatures(archs, num_probes=20, seed=1, scales=[0.5, 2.0])
    batch, flats = _batch(archs, per_arch=3, dtype=torch.float64)
    whole = pf.outputs(batch)
    calls, orig = [], probe_mod.stacked_forward

    def counting(arch, params, x, *args, **kwargs):
        calls.append(x.shape[0])
        return orig(arch, params, x, *args, **kwargs)

    monkeypatch.setattr(probe_mod, "_MAX_FORWARD_ROWS", 7)  # 3 networks → 2 probes a pass
    monkeypatch.setattr(probe_mod, "stacked_forward", counting)
    chunked = pf.outputs(batch)
    assert max(calls) == 2 and sum(calls) == 2 * 40  # 40 probes (20 × 2 scales) per architecture
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_invariant_under_random_group_elements(seed, dtype):
    archs = [_random_arch(seed), _random_arch(seed + 50)]
    pf = ProbeFeatures(archs, num_probes=32)
    batch, _ = _batch(archs, per_arch=2, seed=seed, dtype=dtype)
    errs = assert_equivariant(pf, batch, mode="invariant", max_scale=100.0, n_random=3,
                              generator=torch.Generator().manual_seed(seed))
    assert len(errs) == 8


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_invariant_on_digits_cnn_with_papers_factors(act):
    """U[1, 10^4] on every ReLU neuron (the paper's hardest level), signs on tanh: fp32 within 1e-5."""
    arch = digits_cnn_architecture(act)
    pf = ProbeFeatures([arch], num_probes=64)
    batch, _ = _batch([arch], per_arch=3, seed=1)
    group = mg.MonomialGroup(batch)
    gen = torch.Generator().manual_seed(0)
    elements = [(f"U[1,1e4] #{i}", group.sample(generator=gen, scale_range=(1.0, 1e4), distribution="uniform"))
                for i in range(3)]
    assert_equivariant(pf, batch, elements=elements, mode="invariant")


def test_order_of_edges_and_nodes_does_not_matter():
    """Parameters are read through edge_index: shuffling the edge list of a graph changes nothing."""
    arch = digits_cnn_architecture("relu")
    pf = ProbeFeatures([arch], num_probes=8)
    batch, _ = _batch([arch], per_arch=2)
    ref = pf(batch)
    perm = torch.randperm(batch.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = batch.clone()
    shuffled.edge_index, shuffled.edge_attr = batch.edge_index[:, perm], batch.edge_attr[perm]
    shuffled.edge_layer = batch.edge_layer[perm]
    torch.testing.assert_close(pf(shuffled), ref)


def test_sensitive_to_the_function_and_not_a_symmetry_proof_statistic():
    """Changing one weight changes the features; so does a rescaling that is NOT in the group (an input)."""
    arch = digits_cnn_architecture("relu")
    pf = ProbeFeatures([arch], num_probes=32)
    batch, _ = _batch([arch], per_arch=1)
    ref = pf(batch)
    bumped = batch.clone()
    bumped.edge_attr = batch.edge_attr.clone()
    bumped.edge_attr[0, 4] += 1.0
    assert not torch.allclose(pf(bumped), ref)
    outside = batch.clone()
    outside.x = batch.x * 3.0                       # biases alone: not a group element
    with pytest.raises(AssertionError):
        assert_equivariant(lambda d: pf(outside if d is batch else d), batch, n_random=1)


def test_mixed_batch_and_feature_names():
    archs = [digits_cnn_architecture("relu"), digits_cnn_architecture("tanh"), digits_cnn_architecture("relu", "flat")]
    pf = ProbeFeatures([a.to_json() for a in archs], num_probes=8)
    batch, _ = _batch(archs, per_arch=2)
    f = pf(batch)
    assert f.shape == (6, pf.num_features) == (6, len(probe_feature_names(10)))
    assert torch.isfinite(f).all()
    assert len(probe_feature_names(1)) == 4                 # regression outputs: no softmax columns


def test_siren_coordinate_probes():
    arch = siren_architecture((2, 8, 8, 1))
    pf = ProbeFeatures([arch], num_probes=16)
    batch, _ = _batch([arch], per_arch=2, dtype=torch.float64)
    assert pf(batch).shape == (2, 4)
    assert_equivariant(pf, batch, n_random=2)


def test_errors_name_what_is_wrong():
    relu = digits_cnn_architecture("relu")
    pf = ProbeFeatures([relu], num_probes=8)
    batch, _ = _batch([digits_cnn_architecture("tanh")], per_arch=1)
    with pytest.raises(GraphMismatchError, match="matches none of the probe architectures.*cnn-gap-relu"):
        pf(batch)
    same = Architecture("twin", relu.layers, [1, 12, 12])     # other input size, same neuron layout
    with pytest.raises(ValueError, match="same neuron layout"):
        ProbeFeatures([relu, same])
    with pytest.raises(ValueError, match="output counts"):
        ProbeFeatures([relu, siren_architecture()])
    with pytest.raises(ValueError, match="needs the zoo's architectures"):
        build_model("monomial", out_dim=1, feature_readout=True, probes=8)
    with pytest.raises(ValueError, match="feature_readout=True"):
        build_model("monomial", out_dim=1, feature_slots=4)
    with pytest.raises(ValueError, match="probe_agreement=0.25 needs probes"):
        build_model("monomial", out_dim=1, feature_readout=True, probe_agreement=0.25)
    with pytest.raises(ValueError, match="probe_scales=.* needs probes"):
        build_model("gmn", out_dim=1, probe_scales=[0.1, 1.0])
    with pytest.raises(ValueError, match="needs the zoo's architectures"):
        InvariantGBM(probes=8)
    with pytest.raises(TypeError, match="unexpected keyword argument 'feature_readout'"):
        build_model("statnn-gbm", out_dim=1, feature_readout=True)


def test_monomial_gmn_with_probe_readout_is_invariant(dtype):
    archs = [digits_cnn_architecture("relu"), digits_cnn_architecture("tanh")]
    torch.manual_seed(0)
    model = build_model("monomial", out_dim=2, hidden_dim=8, num_layers=1, feature_readout=True, feature_slots=4,
                        probes=16, architectures=[a.to_json() for a in archs]).to(dtype).eval()
    batch, _ = _batch(archs, per_arch=2, dtype=dtype)
    model.fit_normalizer(batch)
    assert set(model.parts) == {"features", "probes"}
    assert model.parts["features"].in_dim == InvariantFeatureMLP(2, num_layers=4).in_dim
    assert model.parts["probes"].in_dim == model.parts["probes"].probes.num_features
    assert_equivariant(model, batch, n_random=2, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("mode", ["raw", "both"])
def test_raw_outputs_mode_is_the_outputs_in_fixed_probe_order(mode, dtype):
    """An INR's outputs at fixed coordinates are samples of its image: 'raw' keeps them, column p·K + k."""
    arch = siren_architecture((2, 8, 8, 1))
    pf = ProbeFeatures([arch], num_probes=12, outputs=mode)
    batch, _ = _batch([arch], per_arch=3, dtype=dtype)
    f = pf(batch)
    assert f.shape == (3, pf.num_features) == (3, len(pf.feature_names()))
    raw = pf.outputs(batch).flatten(1)
    torch.testing.assert_close(f[:, -raw.shape[1]:], raw)
    assert pf.feature_names()[-1] == "probe11_out0"
    assert_equivariant(pf, batch, n_random=2, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match="outputs must be one of"):
        ProbeFeatures([arch], outputs="logits")


def test_published_small_cnn_zoo_format_without_recorded_image_size():
    """The Small CNN Zoo layout records channels only; its conv nets pool globally, so probes are C×16×16."""
    zoo = mg.load_zoo("tests/data/small-cnn-zoo-sample")
    pf = ProbeFeatures(zoo.archs.values(), num_probes=8)
    batch = zoo.batch(np.arange(len(zoo)))
    out = pf.outputs(batch)
    for i in range(len(zoo)):
        with torch.no_grad():
            want = zoo.module(i)(pf._bank(zoo.arch_of(i)))         # TF 'same' padding, the loader's module
        torch.testing.assert_close(out[i], want, rtol=1e-4, atol=1e-5)
    assert_equivariant(pf, batch, n_random=2)
    flat_read = Architecture("flat", [["conv2d", {"in": 1, "out": 2, "kernel": 3}], ["relu", {}], ["flatten", {}],
                                      ["linear", {"in": 8, "out": 3}]], [1])
    with pytest.raises(ValueError, match="input_shape=\\[C, H, W\\]"):
        ProbeFeatures([flat_read])


def test_overflowing_networks_get_finite_features():
    arch = digits_cnn_architecture("relu")
    pf = ProbeFeatures([arch], num_probes=8)
    batch, _ = _batch([arch], per_arch=2)
    batch.edge_attr = batch.edge_attr * 1e12                       # float32 overflow in the forward pass
    assert torch.isfinite(pf(batch)).all()


def test_probe_scales_give_one_block_of_columns_per_scale(dtype):
    arch = digits_cnn_architecture("relu")
    batch, _ = _batch([arch], per_arch=2, dtype=dtype)
    one = ProbeFeatures([arch], num_probes=8)
    three = ProbeFeatures([arch], num_probes=8, scales=(0.1, 1.0, 10.0))
    f1, f3 = one(batch), three(batch)
    assert f3.shape[1] == 3 * f1.shape[1] == len(three.feature_names())
    assert three.feature_names()[0].startswith("x0.1_")
    torch.testing.assert_close(f3[:, f1.shape[1]:2 * f1.shape[1]], f1)           # the scale-1 block
    assert not torch.allclose(f3[:, :f1.shape[1]], f1)
    assert_equivariant(three, batch, n_random=2)
    for bad in ((), (1.0, -1.0), (1.0, 1.0)):
        with pytest.raises(ValueError, match="scales must be distinct positive"):
            ProbeFeatures([arch], scales=bad)


def _reference_by_hand(pf, batch, y, frac):
    """Majority vote, per probe, of the argmax classes of the networks in the top ``frac`` by target."""
    lab = pf.outputs(batch.clone()).double().argmax(-1)               # [B, S·P]
    keep = max(1, int(np.ceil(frac * len(y))))
    top = np.argsort(-np.asarray(y), kind="stable")[:keep]
    counts = torch.nn.functional.one_hot(lab[torch.as_tensor(top)], pf.out_dim).sum(0)
    return counts.argmax(-1)


@pytest.mark.parametrize("frac", [0.25, 1.0])
def test_agreement_is_the_reference_class_probability(frac, dtype):
    arch = digits_cnn_architecture("relu")
    batch, _ = _batch([arch], per_arch=8, seed=2, dtype=dtype)
    y = np.linspace(0.1, 0.9, 8)[::-1].copy()
    pf = ProbeFeatures([arch], num_probes=16, scales=(0.5, 2.0), agreement=frac)
    with pytest.raises(ValueError, match="call fit_reference"):
        pf(batch)
    batch.y = torch.as_tensor(y, dtype=dtype)
    with pytest.raises(ValueError, match="needs the training targets"):
        pf.fit_reference(batch, None)  # the batch's y is never read: targets are explicit
    pf.fit_reference(batch, y)
    ref = _reference_by_hand(pf, batch, y, frac)
    assert torch.equal(pf.reference0, ref)
    f = pf(batch)
    names = pf.feature_names()
    assert f.shape == (8, len(names)) and names[-4:] == ["x0.5_agree_p", "x0.5_agree_logp", "x2_agree_p",
                                                          "x2_agree_logp"]
    logp = pf.outputs(batch).double().log_softmax(-1).gather(-1, ref.view(1, -1, 1).expand(8, -1, 1))
    logp = logp.squeeze(-1).view(8, 2, 16)
    want = torch.stack([logp.exp().mean(-1), logp.clamp_min(-50).mean(-1)], -1).flatten(1)
    torch.testing.assert_close(f[:, -4:].double(), want, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-7)
    # the same targets as a list of batches give the same reference; an upside-down ranking picks other networks
    other = ProbeFeatures([arch], num_probes=16, scales=(0.5, 2.0), agreement=frac).fit_reference([batch], y)
    assert torch.equal(other.reference0, ref)
    if frac < 1:
        flipped = ProbeFeatures([arch], num_probes=16, scales=(0.5, 2.0), agreement=frac).fit_reference(batch, -y)
        assert torch.equal(flipped.reference0, _reference_by_hand(pf, batch, -y, frac))
        assert not torch.equal(flipped.reference0, ref)
    # exactly invariant, the paper's hardest scaling included
    assert_equivariant(pf, batch, n_random=2, generator=torch.Generator().manual_seed(4))
    group = mg.MonomialGroup(batch)
    el = [("U[1,1e4]", group.sample(generator=torch.Generator().manual_seed(5), scale_range=(1.0, 1e4),
                                    distribution="uniform"))]
    assert_equivariant(pf, batch, elements=el, mode="invariant")


def test_agreement_errors_and_state_dict():
    arch = digits_cnn_architecture("tanh")
    with pytest.raises(ValueError, match="agreement must be a fraction"):
        ProbeFeatures([arch], agreement=1.5)
    with pytest.raises(ValueError, match="agreement needs networks with >= 2 outputs"):
        ProbeFeatures([siren_architecture((2, 8, 1))], agreement=0.5)
    with pytest.raises(ValueError, match="built with agreement=0"):
        ProbeFeatures([arch]).fit_reference([])
    with pytest.raises(ValueError, match="needs probes"):
        InvariantGBM(probe_agreement=0.25)
    batch, _ = _batch([arch], per_arch=4)
    pf = ProbeFeatures([arch], num_probes=8, agreement=0.5)
    with pytest.raises(ValueError, match="NaN"):
        pf.fit_reference(batch, [0.1, float("nan"), 0.3, 0.4])
    pf.fit_reference(batch, [0.1, 0.2, 0.3, 0.4])
    twin = ProbeFeatures([arch], num_probes=8, agreement=0.5)
    twin.load_state_dict(pf.state_dict())                         # the reference classes travel with the model
    torch.testing.assert_close(twin(batch), pf(batch))


def test_monomial_gmn_and_gbm_fit_the_agreement_reference():
    archs = [digits_cnn_architecture("relu"), digits_cnn_architecture("tanh")]
    batch, _ = _batch(archs, per_arch=6, seed=3)
    y = torch.rand(12, generator=torch.Generator().manual_seed(0))
    batch.y = y
    torch.manual_seed(0)
    model = build_model("monomial", out_dim=1, hidden_dim=8, num_layers=1, feature_readout=True, feature_slots=4,
                        probes=16, probe_agreement=0.5, architectures=[a.to_json() for a in archs]).eval()
    model.fit_normalizer(batch)                       # unsupervised: leaves the reference to fit_reference
    probes = model.parts["probes"].probes
    assert not probes.reference_fitted
    model.fit_reference(batch, y.numpy())
    ref = probes.reference0
    assert (ref >= 0).all()
    assert torch.equal(ref, _reference_by_hand(probes, batch, y.numpy(), 0.5))
    assert bool(model.parts["probes"].standardize.frozen)
    assert_equivariant(model, batch, n_random=2, generator=torch.Generator().manual_seed(1))
    gbm = InvariantGBM(probes=16, probe_agreement=0.5, architectures=archs, max_iter=5)
    gbm.fit(batch, y.numpy())
    assert torch.equal(gbm.probes.reference0, ref)
    assert gbm.feature_names()[-2:] == ["agree_p", "agree_logp"]
    assert np.isfinite(gbm.predict(batch)).all()
