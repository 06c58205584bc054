"""The model registry: names, errors, every model on the same Batch type, parameter counts."""

import importlib

import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.models import build_model, count_parameters, list_models, model_info, register_model


def cnn_batch(n=3):
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)) for _ in range(n)]
    batch = mg.batch_graphs([mg.to_graph(m) for m in nets])
    batch.y = torch.rand(n)
    return batch


def _has_monomial() -> bool:
    try:
        return hasattr(importlib.import_module("monomial_gmn.nn"), "MonomialGMN")
    except ImportError:
        return False


def test_list_and_unknown_name():
    assert list_models() == ["gmn", "invariant-gbm", "monomial", "np", "statnn", "statnn-gbm"]
    with pytest.raises(ValueError, match="choose one of: gmn, invariant-gbm, monomial, np, statnn, statnn-gbm"):
        build_model("nfn-hnp", out_dim=1)
    with pytest.raises(ValueError, match="supports readout invariant only"):
        build_model("statnn", out_dim=1, readout="equivariant")
    with pytest.raises(ValueError, match="readout must be"):
        build_model("gmn", out_dim=1, readout="pooled")
    assert not model_info("statnn-gbm").trainable and model_info("gmn").trainable
    assert not model_info("invariant-gbm").trainable
    with pytest.raises(ValueError, match="already registered"):
        register_model("gmn", lambda **kw: None)


@pytest.mark.parametrize("name", ["monomial", "gmn", "np", "statnn"])
def test_every_torch_model_takes_the_same_batch(name):
    if name == "monomial" and not _has_monomial():
        pytest.skip("monomial_gmn.nn.MonomialGMN is not available yet")
    torch.manual_seed(0)
    model = build_model(name, out_dim=2, hidden_dim=16, num_layers=2).eval()
    batch = cnn_batch()
    out = model(batch)
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    n = count_parameters(model)
    assert n == sum(p.numel() for p in model.parameters()) and n > 0
    wide = build_model(name, out_dim=2, hidden_dim=32, num_layers=2)
    wide.eval()(batch)
    assert count_parameters(wide) > n


@pytest.mark.parametrize("name", ["monomial", "gmn", "np"])
def test_equivariant_readout_returns_a_graph(name):
    if name == "monomial" and not _has_monomial():
        pytest.skip("monomial_gmn.nn.MonomialGMN is not available yet")
    model = build_model(name, out_dim=1, readout="equivariant", hidden_dim=8, num_layers=1).eval()
    batch = cnn_batch()
    out = model(batch)
    assert out.x.shape == batch.x.shape and out.edge_attr.shape == batch.edge_attr.shape


def test_gbm_through_the_registry():
    model = build_model("statnn-gbm", out_dim=1, random_state=1, max_iter=5, min_samples_leaf=1)
    assert count_parameters(model) == 0 and not model.is_torch_trainable
    batch = cnn_batch(6)
    model.fit([batch])                                     # targets from batch.y
    assert model(batch).shape == (6, 1)
    assert count_parameters(model) == model.num_parameters() > 0
