"""verify_symmetry: claimed symmetries are checked on the real function; wrong claims are caught."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Symmetry, graph_spec
from monomial_gmn.testing import random_network


class GeluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 6), nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, x):
        return self.c(torch.tanh(self.b(F.gelu(self.a(x)))))


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3)))


def _claim(graph, layer, sym):
    claimed = graph.clone()
    claimed.sym = graph.sym.clone()
    claimed.sym[graph.layer == layer] = int(Symmetry.parse(sym))
    return claimed


def test_report_fields_and_determinism():
    net, x = random_network(5, kind="mlp", dtype=torch.float64)
    r1 = mg.verify_symmetry(net, x, n_samples=5, generator=torch.Generator().manual_seed(0))
    r2 = mg.verify_symmetry(net, x, n_samples=5, generator=torch.Generator().manual_seed(0))
    assert r1.passed and r1.errors == r2.errors and len(r1.errors) == 5
    assert r1.max_error == max(r1.errors) and r1.rtol == mg.verify.default_verify_tolerance(torch.float64)
    assert r1.symmetry == mg.to_graph(net).symmetry_counts()
    assert "PASSED" in str(r1)


@pytest.mark.parametrize("seed", range(8))
def test_random_sequential_networks_pass(seed, dtype):
    net, x = random_network(seed, dtype=dtype)
    report = mg.verify_symmetry(net, x, n_samples=3, generator=torch.Generator().manual_seed(seed))
    assert report.passed, str(report)


def test_claiming_scaling_after_gelu_is_caught():
    net = GeluNet().double()
    x = torch.randn(8, 3, dtype=torch.float64)
    graph = mg.to_graph(net)
    assert mg.verify_symmetry(net, x, graph=graph).passed
    report = mg.verify_symmetry(net, x, graph=_claim(graph, 1, "positive_scale"), n_samples=4,
                                generator=torch.Generator().manual_seed(0))
    assert not report.passed and report.max_error > 1e-2
    # tanh neurons admit signs but not positive scales
    assert not mg.verify_symmetry(net, x, graph=_claim(graph, 2, "positive_scale"), n_samples=4,
                                  generator=torch.Generator().manual_seed(0)).passed
    # claiming less than the truth is always fine
    assert mg.verify_symmetry(net, x, graph=_claim(graph, 2, "none")).passed


def test_claiming_scaling_before_a_batchnorm_is_caught():
    torch.manual_seed(0)
    net = BNNet().double().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    graph = mg.to_graph(net)
    assert mg.verify_symmetry(net, x, graph=graph).passed
    for wrong in ("positive_scale", "sign", "scale"):
        report = mg.verify_symmetry(net, x, graph=_claim(graph, 1, wrong), n_samples=4,
                                    generator=torch.Generator().manual_seed(1))
        assert not report.passed, wrong


def test_claiming_permutations_of_an_output_is_caught():
    net = GeluNet().double()
    x = torch.randn(8, 3, dtype=torch.float64)
    graph = mg.to_graph(net)
    claimed = graph.clone()
    out = graph.layer == 3
    claimed.block = graph.block.clone()
    claimed.pos = graph.pos.clone()
    claimed.sym = graph.sym.clone()
    claimed.block[out] = int(graph.block.max()) + 1
    claimed.pos[out] = torch.arange(int(out.sum()))
    claimed.sym[out] = int(Symmetry.NONE)
    report = mg.verify_symmetry(net, x, graph=claimed, n_samples=6, generator=torch.Generator().manual_seed(0))
    assert not report.passed


def test_float32_tolerance_is_reasonable():
    net, x = random_network(11, kind="cnn2d", dtype=torch.float32)
    report = mg.verify_symmetry(net, x, n_samples=4, max_scale=10.0, generator=torch.Generator().manual_seed(0))
    assert report.passed and report.max_error < 1e-4


def test_verifier_rejects_a_graph_of_another_architecture():
    a = GeluNet().double()
    b = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with pytest.raises(mg.GraphMismatchError):
        mg.verify_symmetry(a, torch.randn(2, 3, dtype=torch.float64), graph=mg.to_graph(b))


def test_verifier_uses_the_spec_of_the_method():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1)).double().eval()
    x = torch.randn(4, 2, dtype=torch.float64)
    report = mg.verify_symmetry(net, x, method="fx", n_samples=3)
    assert report.passed and report.symmetry == {"fixed": 3, "none": 3}
    assert graph_spec(net, "fx").norms[0].path == "1"
