"""MonomialGMN(phase_features=w0): sin/cos of w0·bias and w0·weight of sign-symmetric neurons, read on the
canonical form, keep the model exactly invariant (and equivariant with the equivariant readout)."""

import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.testing import assert_equivariant, random_network


def _siren(seed: int, dtype, widths=(2, 8, 8, 1), w0: float = 30.0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(mg.Sine(w0))
    return nn.Sequential(*layers).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_phase_features_keep_the_model_exact_on_sirens_and_mixed_batches(dtype):
    nets = [_siren(s, dtype) for s in range(3)] + [_siren(9, dtype, (2, 5, 6, 4, 3))] + \
        [random_network(s, dtype=dtype, max_width=8)[0] for s in range(3)]
    batch = mg.batch_graphs([mg.to_graph(n) for n in nets])
    assert int((batch.sym == mg.Symmetry.SIGN).sum()) > 0
    torch.manual_seed(0)
    model = mg.MonomialGMN(out_dim=3, hidden_dim=16, num_layers=2, phase_features=30.0).to(dtype).eval()
    assert model.backbone.node_in[0].in_features == 5 and model.backbone.edge_in.in_features == 7 * 7 + 2 + 2
    with torch.no_grad():
        assert_equivariant(model, batch, generator=torch.Generator().manual_seed(3))
        both = mg.MonomialGMN(out_dim=3, hidden_dim=16, num_layers=2, phase_features=30.0,
                              energy_features=True).to(dtype).eval()
        assert both.backbone.node_in[0].in_features == 7
        assert_equivariant(both, batch, generator=torch.Generator().manual_seed(4))
        edit = mg.MonomialGMN(hidden_dim=16, num_layers=2, readout="equivariant", phase_features=30.0).to(dtype).eval()
        assert_equivariant(edit, batch, mode="equivariant", generator=torch.Generator().manual_seed(5))
        plain = mg.MonomialGMN(out_dim=3, hidden_dim=16, num_layers=2).to(dtype).eval()
        assert plain.phase_features == 0.0 and plain.backbone.edge_in.in_features == 7 * 7 + 2   # off by default
        assert not torch.allclose(model(batch), plain(batch))


def test_phase_features_are_validated():
    with pytest.raises(ValueError, match="phase_features"):
        mg.MonomialGMN(out_dim=1, phase_features=-1.0)
    with pytest.raises(ValueError, match="phase_features"):
        mg.MonomialGMN(out_dim=1, phase_features=30.0, design="layers")
