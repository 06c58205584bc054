"""Networks written the way users write them, which the rest of the suite does not build: ResNet blocks with
identity and 1x1-conv skips, nested and pre-activation residuals, a SIREN with its own Sine module, every common
activation, norm layers with non-trivial running statistics, pooling, odd kernels, dead neurons, zero biases
and weights from 1e-6 to 1e4. For each: the claimed group keeps the function, the canonical form is invariant
and idempotent, and MonomialGMN is exactly invariant/equivariant on a batch mixing all of them (fp32 and fp64).
Then regressions: ops the fx converter used to accept with a wrong symmetry (clamp with reversed, per-channel or
feature-tensor bounds; ``view(-1, n)`` of a map, which may merge samples) must be read right or refused."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Symmetry
from monomial_gmn.group import MonomialGroup, MonomialTransform, canonical_form
from monomial_gmn.testing import assert_equivariant, default_tolerance
from monomial_gmn.testing._equivariance import relative_error


# ------------------------------------------------------------------------------------------ the networks
class Sine(nn.Module):
    """A user's own SIREN activation (not the library's Sine)."""

    def __init__(self, w0=3.0):
        super().__init__()
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * x)


class BasicBlock(nn.Module):
    """Identity skip: the block's output neurons are tied to its input neurons."""

    def __init__(self, c, bn=False):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c) if bn else nn.Identity()

    def forward(self, x):
        return F.relu(x + self.bn(self.c2(F.relu(self.c1(x)))))


class DownBlock(nn.Module):
    """Strided block with a 1x1-conv skip: the two branches' output neurons are tied."""

    def __init__(self, i, o):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(i, o, 3, stride=2, padding=1), nn.Conv2d(o, o, 3, padding=1)
        self.skip = nn.Conv2d(i, o, 1, stride=2)

    def forward(self, x):
        return F.relu(self.skip(x) + self.c2(F.relu(self.c1(x))))


class ResNet(nn.Module):
    def __init__(self, bn=False):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.b1, self.b2, self.b3 = BasicBlock(4, bn), DownBlock(4, 6), BasicBlock(6, bn)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = self.b3(self.b2(self.b1(F.relu(self.stem(x)))))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PreAct(nn.Module):
    """Pre-activation residual stream: the stream neurons are linear (``scale``) and tied across blocks."""

    def __init__(self, c=5):
        super().__init__()
        self.inp, self.l1, self.l2 = nn.Linear(3, c), nn.Linear(c, c), nn.Linear(c, c)
        self.l3, self.l4, self.out = nn.Linear(c, 7), nn.Linear(7, c), nn.Linear(c, 2)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.l2(F.relu(self.l1(F.relu(h))))
        h = h + self.l4(F.relu(self.l3(F.relu(h))))
        return self.out(F.relu(h))


class Nested(nn.Module):
    """A residual inside a residual."""

    def __init__(self, c=4):
        super().__init__()
        self.inp, self.a, self.b, self.c, self.out = (nn.Linear(3, c), nn.Linear(c, c), nn.Linear(c, c),
                                                      nn.Linear(c, c), nn.Linear(c, 2))

    def forward(self, x):
        h = F.relu(self.inp(x))
        inner = h + self.b(F.relu(self.a(h)))
        return self.out(h + F.relu(inner + self.c(F.relu(inner))))


class Siren(nn.Module):
    def __init__(self):
        super().__init__()
        self.l0, self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(8, 8), nn.Linear(8, 2)
        self.act = Sine(30.0)

    def forward(self, x):
        return self.l2(self.act(self.l1(self.act(self.l0(x)))))


def mlp(*acts, widths=None, bias=True):
    widths = widths or [3] + [6] * len(acts) + [2]
    layers = []
    for i, a in enumerate(acts):
        layers += [nn.Linear(widths[i], widths[i + 1], bias=bias), a]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1], bias=bias))


def cnn(k, stride=1, pad=0, pool=None, flat=False):
    pad2 = tuple(s // 2 for s in k) if isinstance(k, tuple) else k // 2
    layers = [nn.Conv2d(3, 4, k, stride=stride, padding=pad), nn.ReLU(), *([pool] if pool else []),
              nn.Conv2d(4, 5, k, padding=pad2), nn.Tanh(), nn.AdaptiveAvgPool2d(2 if flat else 1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(20 if flat else 5, 3))


def _init(net, seed=0, lo=None, hi=None):
    """Gaussian weights (0.5 std), log-uniform magnitudes in [lo, hi] if given, random running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            if lo is not None:
                p.mul_(10 ** torch.empty(p.shape).uniform_(math.log10(lo), math.log10(hi), generator=g))
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net.eval()


def _dead(net, layer=0, rows=(1,)):
    """Neurons with all-zero incoming weights and bias."""
    lin = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][layer]
    with torch.no_grad():
        lin.weight[list(rows)] = 0.0
        if lin.bias is not None:
            lin.bias[list(rows)] = 0.0
    return net


def _zero_bias(net):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.zero_()
    return net


IMG, VEC = (3, 10, 10), (3,)
FAMILIES = {
    "resnet_identity_and_1x1_skips": (lambda: _init(ResNet()), IMG),
    "resnet_with_batchnorm_eval": (lambda: _init(ResNet(bn=True)), IMG),
    "preactivation_stream": (lambda: _init(PreAct()), VEC),
    "nested_residuals": (lambda: _init(Nested()), VEC),
    "siren_custom_sine": (lambda: _init(Siren()), VEC),
    "mlp_leaky_relu6_gelu": (lambda: _init(mlp(nn.LeakyReLU(0.2), nn.ReLU6(), nn.GELU())), VEC),
    "mlp_silu_tanh_sigmoid": (lambda: _init(mlp(nn.SiLU(), nn.Tanh(), nn.Sigmoid())), VEC),
    "mlp_softplus_hardtanh_sine": (lambda: _init(mlp(nn.Softplus(), nn.Hardtanh(-2.0, 2.0), Sine())), VEC),
    "mlp_mixed_identity_dropout": (lambda: _init(mlp(nn.ReLU(), nn.Identity(), nn.Dropout(0.3))), VEC),
    "mlp_without_bias": (lambda: _init(mlp(nn.ReLU(), nn.Tanh(), bias=False)), VEC),
    "mlp_zero_biases": (lambda: _zero_bias(_init(mlp(nn.ReLU(), nn.Identity()))), VEC),
    "mlp_dead_neurons": (lambda: _dead(_dead(_init(mlp(nn.ReLU(), nn.Tanh(), nn.Identity())), 0, (1, 3)), 2), VEC),
    "residual_dead_stream_neuron": (lambda: _dead(_init(PreAct()), 0, (1,)), VEC),
    "mlp_weights_1e-6_to_1e4": (lambda: _init(mlp(nn.ReLU(), nn.Tanh(), nn.Identity()), lo=1e-6, hi=1e4), VEC),
    "residual_weights_1e-6_to_1e4": (lambda: _init(PreAct(), lo=1e-6, hi=1e4), VEC),
    "bn1d_after_relu": (lambda: _init(nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Linear(6, 2))),
                        VEC),
    "groupnorm_instancenorm_cnn": (lambda: _init(nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.GroupNorm(3, 6), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.InstanceNorm2d(4, affine=True),
        nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))), IMG),
    "cnn_1x1": (lambda: _init(cnn(1)), IMG),
    "cnn_5x5_maxpool": (lambda: _init(cnn(5, pad=2, pool=nn.MaxPool2d(2))), IMG),
    "cnn_7x7_stride2": (lambda: _init(cnn(7, stride=2, pad=3)), IMG),
    "cnn_1x3_avgpool_flatten": (lambda: _init(cnn((1, 3), pool=nn.AvgPool2d(2), flat=True)), IMG),
    "cnn_5x2_padded_avgpool": (lambda: _init(cnn((5, 2), pad=1, pool=nn.AvgPool2d(3, 1, 1))), IMG),
    "cnn_flatten_full_map": (lambda: _init(nn.Sequential(nn.Conv2d(3, 3, 3, stride=2), nn.ReLU(), nn.Flatten(),
                                                         nn.Linear(3 * 4 * 4, 2))), IMG),
    "cnn_tanh_then_maxpool": (lambda: _init(nn.Sequential(
        nn.Conv2d(3, 3, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(3, 3, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
        nn.Flatten(), nn.Linear(3, 2))), IMG),
}


def _net(name, dtype):
    make, shape = FAMILIES[name]
    torch.manual_seed(0)
    net = make().to(dtype)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    return net, x


def _perm_only(g: MonomialTransform) -> MonomialTransform:
    return MonomialTransform(g.structure, g.perm, torch.ones_like(g.factor))


def _graph_error(a, b) -> float:
    assert torch.equal(a.edge_index, b.edge_index)
    return max(relative_error(a.x, b.x), relative_error(a.edge_attr, b.edge_attr))


# ------------------------------------------------------------------------------------------ the families
@pytest.mark.parametrize("name", list(FAMILIES))
def test_group_keeps_the_function_and_the_canonical_form_is_invariant(name, dtype):
    """Elements with factors in [1e-2, 1e2] loaded back into the module leave its output unchanged, and
    canonical_form(g·G) == π_g·canonical_form(G); the canonical form is idempotent and computes the same function."""
    net, x = _net(name, dtype)
    graph = mg.to_graph(net)
    gen = torch.Generator().manual_seed(0)
    report = mg.verify_symmetry(net, x, n_samples=4, max_scale=100.0, generator=gen)
    assert report.passed, report
    assert report.num_slots > 0
    group = MonomialGroup(graph)
    base = canonical_form(graph)
    with torch.no_grad():
        out = net(x)
        for _, g in group.testing_elements(gen, max_scale=100.0)[1:]:
            moved = mg.to_module(g(graph), net)
            assert relative_error(moved(x), out) <= default_tolerance(dtype, "output")
            err = _graph_error(canonical_form(g(graph)).graph, _perm_only(g)(base.graph))
            assert err <= default_tolerance(dtype), err
        assert _graph_error(canonical_form(base.graph).graph, base.graph) <= default_tolerance(dtype)
        assert relative_error(mg.to_module(base.graph, net)(x), out) <= default_tolerance(dtype, "output")


@pytest.mark.parametrize("readout", ["invariant", "equivariant"])
def test_monomial_gmn_is_exact_on_a_batch_of_every_family(readout, dtype):
    batch = mg.batch_graphs([mg.to_graph(_net(name, dtype)[0]) for name in FAMILIES])
    torch.manual_seed(0)
    model = mg.MonomialGMN(out_dim=2, hidden_dim=8, num_layers=2, readout=readout).to(dtype).eval()
    with torch.no_grad():
        errors = assert_equivariant(model, batch, mode=readout, max_scale=100.0,
                                    generator=torch.Generator().manual_seed(1))
    assert len(errors) == 9 and max(errors.values()) <= default_tolerance(dtype)


def test_batchnorm_in_train_mode_keeps_the_function_under_the_group():
    """With batch statistics (train mode) the group still acts without changing the function."""
    net, x = _net("resnet_with_batchnorm_eval", torch.float64)
    net.train()
    graph = mg.to_graph(net)
    g = mg.sample_transform(graph, max_scale=100.0, generator=torch.Generator().manual_seed(0))
    moved = mg.to_module(g(graph), net).train()
    with torch.no_grad():
        assert relative_error(moved(x), net(x)) <= 1e-9


# ------------------------------------------------------------------------------------------ regressions
class Clamp(nn.Module):
    def __init__(self, lo=None, hi=None, buffers=False):
        super().__init__()
        self.a, self.b = nn.Linear(3, 5), nn.Linear(5, 2)
        if buffers:
            self.register_buffer("lo", lo)
            self.register_buffer("hi", hi)
        else:
            self.lo, self.hi = lo, hi

    def forward(self, x):
        return self.b(torch.clamp(self.a(x), self.lo, self.hi))


class ClampByFeature(nn.Module):
    """clamp(a(x), min=c(x)) is an elementwise max of two features."""

    def __init__(self):
        super().__init__()
        self.a, self.c, self.b = nn.Linear(3, 5), nn.Linear(3, 5), nn.Linear(5, 2)

    def forward(self, x):
        return self.b(self.a(x).clamp(self.c(x)))


def _hidden_symmetries(net):
    g = mg.to_graph(net)
    return {Symmetry(int(s)) for s in g.sym[g.layer == 1].unique()}


def _verify(net, dtype=torch.float64):
    net = _init(net).to(dtype)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2)).to(dtype)
    return mg.verify_symmetry(net, x, n_samples=6, max_scale=100.0, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make, expected", [
    (lambda: Clamp(-1.0, 1.0), Symmetry.SIGN),
    (lambda: Clamp(0.0, None), Symmetry.POSITIVE_SCALE),
    (lambda: Clamp(1.0, -1.0), Symmetry.NONE),              # torch gives the constant -1: no sign flip (was sign)
    (lambda: Clamp(torch.tensor(-0.5), torch.tensor(0.5), buffers=True), Symmetry.SIGN),   # one-element tensors
    (lambda: Clamp(-torch.rand(5), torch.rand(5), buffers=True), Symmetry.FIXED),         # per-channel (was none)
    (lambda: Clamp(torch.full((5,), -1.0), torch.full((5,), 1.0), buffers=True), Symmetry.FIXED),
    (lambda: ClampByFeature(), Symmetry.NONE),              # tied to the bound's neurons (they were left free)
], ids=["[-1,1]", "[0,inf)", "[1,-1]", "one-element-tensors", "per-channel-tensors", "equal-per-channel-tensors",
        "feature-bound"])
def test_clamp_bounds_give_the_right_symmetry(make, expected, dtype):
    net = make()
    assert _hidden_symmetries(net) == {expected}
    report = _verify(net, dtype)
    assert report.passed, report


def test_clamp_by_a_feature_ties_both_operands():
    g = mg.to_graph(ClampByFeature())
    hidden = g.role == 1
    assert int(hidden.sum()) == 10 and int(torch.unique(g.block[hidden]).numel()) == 1   # one block, tied pairs
    assert set(g.sym[hidden].tolist()) == {int(Symmetry.NONE)}


class ViewNet(nn.Module):
    """A conv map reshaped with -1 in place of the batch, as ``x.view(-1, n)``."""

    def __init__(self, n, how):
        super().__init__()
        self.c, self.l, self.how = nn.Conv1d(2, 4, 3, padding=1), nn.Linear(n, 2), how
        self.n = n

    def forward(self, x):
        h = F.relu(self.c(x))
        if self.how == "view":
            return self.l(h.view(-1, self.n))
        if self.how == "reshape":
            return self.l(h.reshape(-1, self.n))
        if self.how == "view3":
            return self.l(h.view(-1, 4, self.n // 4 * 6).mean(2))
        if self.how == "pooled":
            return self.l(F.adaptive_avg_pool1d(h, 1).view(-1, self.n))
        return self.l(h.view(h.size(0), -1))


@pytest.mark.parametrize("n, how", [(4, "view"), (8, "reshape"), (4, "view3")])
def test_reshape_with_minus_one_for_the_batch_is_refused_on_maps_of_unknown_size(n, how):
    """[B, 4, L] viewed as (-1, 4) or (-1, 8) makes rows out of several positions and channels (and L/1, L/2
    times as many samples); a group element then changed the output by a factor up to 1e3. Now refused."""
    with pytest.raises(mg.UnsupportedModuleError, match=r"flatten\(1\)"):
        mg.to_graph(ViewNet(n, how))


@pytest.mark.parametrize("n, how, length", [(4, "pooled", 6), (24, "batch", 6)])
def test_per_sample_reshapes_still_convert(n, how, length):
    net = _init(ViewNet(n, how)).double()
    x = torch.randn(3, 2, length, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    report = mg.verify_symmetry(net, x, n_samples=4, max_scale=100.0, generator=torch.Generator().manual_seed(0))
    assert report.passed and report.num_slots == 4


def test_reshape_of_the_input_and_of_vectors_still_converts():
    """The input's neurons are fixed, so x.view(-1, n) there is read as a per-sample flatten; on a vector
    [B, C] the per-sample size is known and (-1, C) is accepted."""

    class InputView(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(16, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.b(F.relu(self.a(x.view(-1, 16))).view(-1, 5))

    net = _init(InputView()).double()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    assert mg.verify_symmetry(net, x, n_samples=4, max_scale=100.0).passed
