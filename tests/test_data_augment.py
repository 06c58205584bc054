"""RandomMonomial: augmented networks compute the same function as the originals."""

from __future__ import annotations

import pytest
import torch

import monomial_gmn as mg
from monomial_gmn.data import RandomMonomial, Zoo, digits_cnn_architecture, siren_architecture


def _zoo(act: str) -> Zoo:
    import numpy as np

    torch.manual_seed(0)
    arch = siren_architecture((2, 8, 8, 1)) if act == "sine" else digits_cnn_architecture(act, "gap", channels=6)
    params = torch.stack([arch.spec.flatten(arch.build()) for _ in range(3)]).numpy()
    cols = {"arch": np.array([arch.name] * 3), "activation": np.array([act] * 3)}
    return Zoo({arch.name: arch}, {arch.name: params}, np.arange(3), cols)


def _input(act: str) -> torch.Tensor:
    return torch.rand(5, 2) * 2 - 1 if act == "sine" else torch.randn(5, 1, 8, 8)


@pytest.mark.parametrize("act", ["relu", "tanh", "sine"])
@pytest.mark.parametrize("level", [1, 2, 4])
def test_augmented_graph_same_function(act, level):
    zoo = _zoo(act)
    t = RandomMonomial(level=level, seed=level)
    x = _input(act)
    for i in range(len(zoo)):
        net = zoo.module(i)
        g = zoo.graph(i, dtype=torch.float64)
        aug = t(g)
        assert not torch.equal(aug.edge_attr, g.edge_attr)
        moved = mg.to_module(aug, net.double())
        torch.testing.assert_close(moved(x.double()), net.double()(x.double()), rtol=1e-9, atol=1e-9)
        if act != "relu":                               # only signs (and permutations) for odd activations
            assert torch.allclose(aug.x.abs().sort(0).values, g.x.abs().sort(0).values)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_batch_vectorised_one_element_per_graph(act):
    zoo = _zoo(act)
    batch = zoo.batch([0, 1, 2], dtype=torch.float64)
    aug = RandomMonomial(level=3, seed=0)(batch)
    assert aug.num_graphs == 3 and torch.equal(aug.batch, batch.batch)
    x = _input(act).double()
    for i, g in enumerate(aug.to_data_list()):
        net = zoo.module(i).double()
        torch.testing.assert_close(mg.to_module(g, net)(x), net(x), rtol=1e-9, atol=1e-9)
    assert not torch.equal(aug.edge_attr, batch.edge_attr)


def test_scale_range_and_identity():
    zoo = _zoo("relu")
    g = zoo.graph(0, dtype=torch.float64)
    elem = RandomMonomial(level=2, seed=1, permute=False).sample(g)
    d = elem.node_factor()[g.role == 1]
    assert (d >= 1).all() and (d <= 100).all() and d.max() > 10      # U[1, 10^2]
    ident = RandomMonomial(level=0)(g)
    assert torch.equal(ident.edge_attr, g.edge_attr) and torch.equal(ident.x, g.x)
    with pytest.raises(ValueError):
        RandomMonomial(scale=0.5)
    a, b = RandomMonomial(level=1, seed=7)(g), RandomMonomial(level=1, seed=7)(g)
    assert torch.equal(a.edge_attr, b.edge_attr)                        # seeded: reproducible
