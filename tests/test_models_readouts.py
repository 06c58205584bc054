"""Readouts as parts (issues 18 and 20): MonomialGMN is a backbone only; the invariant-feature and probe readouts
are parts composed by the registry around every torch model, from one JSON-serialisable ModelConfig; fitting is
fit_normalizer (unsupervised) then fit_reference (the training targets); the GBMs take probe features too."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import monomial_gmn as mg
from monomial_gmn.data import digits_cnn_architecture
from monomial_gmn.models import ComposedModel, ModelConfig, build_model, list_models, model_info
from monomial_gmn.testing import assert_equivariant

SRC = Path(__file__).resolve().parents[1] / "src" / "monomial_gmn"
TORCH_MODELS = ("monomial", "gmn", "np", "statnn")


def _batch(arch, n=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    graphs = [arch.spec.graph(torch.randn(arch.num_params, generator=g, dtype=torch.float64).to(dtype))
              for _ in range(n)]
    return mg.batch_graphs(graphs)


def _imported_parts(path: Path) -> set[str]:
    """Subpackages of monomial_gmn that a module imports (relative imports from inside one subpackage)."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 2 and node.module:
                parts.add(node.module.split(".")[0])
            elif node.level == 0 and (node.module or "").startswith("monomial_gmn."):
                parts.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            parts |= {a.name.split(".")[1] for a in node.names if a.name.startswith("monomial_gmn.")}
    return parts


def test_the_backbone_imports_no_features():
    for f in ("_model.py", "_compose.py"):
        parts = _imported_parts(SRC / "nn" / f)
        assert parts <= {"graph", "group", "_errors"}, (f, parts)
    # and features does not import baselines (baselines import features: no cycle)
    for f in (SRC / "features").glob("*.py"):
        assert "baselines" not in _imported_parts(f), f.name


def test_model_info_states_the_parts_each_model_accepts():
    for name in TORCH_MODELS:
        info = model_info(name)
        assert info.trainable and info.parts == ("features", "probes"), name
    for name in ("statnn-gbm", "invariant-gbm"):
        info = model_info(name)
        assert not info.trainable and info.parts == ("probes",), name
    assert set(list_models()) == set(TORCH_MODELS) | {"statnn-gbm", "invariant-gbm"}


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_every_torch_model_takes_both_readouts_and_they_are_exactly_invariant(name):
    arch = digits_cnn_architecture("relu")
    batch = _batch(arch, n=4, dtype=torch.float64)
    extra = {"depth": len(arch.spec.layers)} if name == "np" else {}
    torch.manual_seed(0)
    model = build_model(name, out_dim=2, hidden_dim=8, num_layers=1, feature_readout=True, feature_slots=4,
                        probes=8, architectures=[arch], **extra).double()
    assert isinstance(model, ComposedModel) and set(model.parts) == {"features", "probes"}
    model.fit_normalizer(batch).eval()
    out = model(batch)
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    torch.testing.assert_close(out, model.backbone(batch) + model.parts["features"](batch)
                               + model.parts["probes"](batch))
    # the parts are exactly invariant under the whole monomial group whatever the backbone
    gen = torch.Generator().manual_seed(1)
    assert_equivariant(lambda b: sum(p(b) for p in model.parts.values()), batch, n_random=2, generator=gen)
    if name == "monomial":                                # and with MonomialGMN, the whole model is
        assert_equivariant(model, batch, n_random=2, generator=gen)


def test_readouts_are_refused_with_the_equivariant_readout():
    with pytest.raises(ValueError, match="readout='invariant'"):
        build_model("gmn", out_dim=1, readout="equivariant", feature_readout=True)
    backbone = build_model("monomial", out_dim=1, readout="equivariant", hidden_dim=8, num_layers=1)
    parts = {"features": build_model("monomial", out_dim=1, hidden_dim=8, num_layers=1,
                                     feature_readout=True).parts["features"]}
    with pytest.raises(ValueError, match="edited graph"):
        ComposedModel(backbone, parts)


def test_config_round_trips_through_json_and_rebuilds_the_same_model():
    arch = digits_cnn_architecture("relu")
    batch = _batch(arch, n=8, seed=2)
    y = np.linspace(0.1, 0.9, 8)
    cfg = ModelConfig.from_kwargs("monomial", 2, hidden_dim=8, num_layers=1, dropout=0.1, feature_readout=True,
                                  feature_slots=4, probes=8, probe_scales=(0.5, 2.0), probe_agreement=0.5,
                                  architectures=[arch])
    text = json.dumps(cfg.to_dict())
    back = ModelConfig.from_dict(json.loads(text))
    assert back == cfg and hash(back) == hash(cfg) and json.dumps(back.to_dict()) == text
    assert ModelConfig.from_kwargs("monomial", 2, hidden_dim=8, num_layers=1, **cfg.to_options()) == cfg
    with pytest.raises(Exception):
        cfg.out_dim = 3                                                   # frozen
    torch.manual_seed(0)
    model = cfg.build()
    model.fit_normalizer(batch)
    model.fit_reference(batch, y)
    model.eval()
    torch.manual_seed(123)                                                # other initial weights
    again = build_model(back)
    again.load_state_dict(model.state_dict())
    again.eval()
    torch.testing.assert_close(again(batch), model(batch), rtol=0, atol=0)
    gbm = ModelConfig.from_dict(json.loads(json.dumps(
        ModelConfig.from_kwargs("statnn-gbm", 1, probes=8, architectures=[arch], max_iter=5).to_dict())))
    assert gbm.readouts.probes.count == 8 and gbm.options == {"max_iter": 5}
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "feature_readout": True})


def test_fit_normalizer_ignores_targets_and_fit_reference_uses_them():
    arch = digits_cnn_architecture("relu")
    batch = _batch(arch, n=8, seed=2)
    y = np.linspace(0.9, 0.1, 8)

    def fitted(targets, scramble_y):
        torch.manual_seed(0)
        model = build_model("gmn", out_dim=2, hidden_dim=8, num_layers=1, feature_readout=True, feature_slots=4,
                            probes=16, probe_scales=(0.5, 2.0), probe_agreement=0.25, architectures=[arch])
        b = batch.clone()
        b.y = torch.as_tensor(np.random.default_rng(scramble_y).permutation(y))   # never read
        model.fit_normalizer(b)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.fit_reference([b], targets)
        return before, model

    before_a, a = fitted(y, 0)
    before_b, b = fitted(y, 1)
    for k in before_a:                                       # scrambling y changes nothing in fit_normalizer
        assert torch.equal(before_a[k], before_b[k]), k
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    _, flipped = fitted(-y, 0)                               # fit_reference reads the targets it is given
    ref = a.parts["probes"].probes.reference0
    assert (ref >= 0).all() and not torch.equal(flipped.parts["probes"].probes.reference0, ref)
    assert a.needs_reference and not build_model("gmn", out_dim=1, feature_readout=True).needs_reference
    a.eval()
    assert torch.isfinite(a(batch)).all()


@pytest.mark.parametrize("name", ["statnn-gbm", "invariant-gbm"])
def test_gbms_take_probe_features(name, tmp_path):
    archs = [digits_cnn_architecture("relu"), digits_cnn_architecture("tanh")]
    batch = mg.batch_graphs([g for a in archs for g in _batch(a, n=10, seed=5).to_data_list()])
    y = torch.rand(20, generator=torch.Generator().manual_seed(0))
    model = build_model(name, out_dim=1, probes=8, probe_agreement=0.5, architectures=archs, max_iter=5,
                        min_samples_leaf=2)
    plain = build_model(name, out_dim=1, max_iter=5, min_samples_leaf=2)
    names = model.feature_names()
    assert len(names) == len(plain.feature_names()) + model.probes.num_features and names[-1] == "agree_logp"
    model.fit(batch, y.numpy())
    assert model.probes.reference_fitted
    pred = model(batch)
    assert pred.shape == (20, 1) and torch.isfinite(pred).all()
    model.save(tmp_path / "t.npz")
    loaded = build_model(name, out_dim=1, probes=8, probe_agreement=0.5, architectures=archs).load(tmp_path / "t.npz")
    torch.testing.assert_close(loaded(batch), pred)
    assert torch.equal(loaded.probes.reference0, model.probes.reference0)
    with pytest.raises(ValueError, match="probes=8|does not have"):          # trees with probe columns
        plain.load(tmp_path / "t.npz")
    with pytest.raises(TypeError, match="unexpected keyword argument 'feature_readout'"):
        build_model(name, out_dim=1, feature_readout=True)


def test_weights_saved_with_the_old_feature_head_load_into_the_composed_model():
    arch = digits_cnn_architecture("tanh")
    batch = _batch(arch, n=4)
    torch.manual_seed(0)
    model = build_model("monomial", out_dim=1, hidden_dim=8, num_layers=1, feature_readout=True, feature_slots=4)
    model.fit_normalizer(batch).eval()
    old = {("feature_head." + k[len("parts.features."):]) if k.startswith("parts.features.")
           else k[len("backbone."):]: v for k, v in model.state_dict().items()}   # MonomialGMN(feature_readout=True)
    torch.manual_seed(1)
    again = build_model("monomial", out_dim=1, hidden_dim=8, num_layers=1, feature_readout=True, feature_slots=4)
    again.load_state_dict(old)
    torch.testing.assert_close(again.eval()(batch), model(batch), rtol=0, atol=0)


@pytest.mark.parametrize("options, message", [
    ({"probes": "many"}, r"probes must be an integer in \[2, 65536\]"),
    ({"probes": 10 ** 9}, r"probes must be an integer in \[2, 65536\]"),
    ({"probes": True}, r"probes must be an integer"),
    ({"feature_readout": "yes"}, "feature_readout must be true or false"),
])
def test_bad_readout_options_are_refused_by_name(options, message):
    from monomial_gmn.models import ModelConfig

    with pytest.raises(ValueError, match=message):
        ModelConfig.from_kwargs("gmn", out_dim=1, **options)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_composed_monomial_model_is_exact_on_mixed_architectures_and_gmn_is_not(dtype):
    """MonomialGMN + both readout parts on a batch mixing ReLU and tanh CNNs and a SIREN (10 outputs, as the CNNs), fp32 and
    fp64, random group elements (scales log-uniform in [1e-2, 1e2] by the shared helper); the same parts on the
    permutation-only GMN backbone fail the same check (sensitivity)."""
    from monomial_gmn.graph import siren_architecture

    archs = [digits_cnn_architecture("relu"), digits_cnn_architecture("tanh"), siren_architecture((2, 8, 8, 10))]
    g = torch.Generator().manual_seed(3)
    graphs = [a.spec.graph(torch.randn(a.num_params, generator=g, dtype=torch.float64).to(dtype))
              for a in archs for _ in range(2)]
    batch = mg.batch_graphs(graphs)
    models = {}
    for name in ("monomial", "gmn"):
        torch.manual_seed(0)
        models[name] = build_model(name, out_dim=2, hidden_dim=8, num_layers=1, feature_readout=True,
                                   feature_slots=4, probes=8, architectures=archs).to(dtype)
        models[name].fit_normalizer(batch).eval()
    with torch.no_grad():
        assert_equivariant(models["monomial"], batch, n_random=3, generator=torch.Generator().manual_seed(4))
        with pytest.raises(AssertionError, match="scaling"):
            assert_equivariant(models["gmn"], batch, n_random=3, generator=torch.Generator().manual_seed(4))
