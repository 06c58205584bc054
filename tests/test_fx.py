"""torch.fx conversion of arbitrary modules: derived symmetries, norm layers, exact round trips, errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import FxGraphSpec, NormKind, Role, Symmetry, fx_graph_spec, graph_spec
from monomial_gmn.testing import random_network


# ------------------------------------------------------------------------------------------ the gallery
class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class DownBlock(nn.Module):
    """torchvision-style: strided conv, 1×1 conv + BN on the skip, in-place add and ReLU."""

    def __init__(self, i, o):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = nn.Sequential(nn.Conv2d(i, o, 1, stride=2, bias=False), nn.BatchNorm2d(o))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, c=6, classes=3):
        super().__init__()
        self.stem = nn.Conv2d(2, c, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(c)
        self.layer1 = nn.Sequential(BasicBlock(c), BasicBlock(c))
        self.layer2 = DownBlock(c, 2 * c)
        self.head = nn.Linear(2 * c, classes)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        x = x.mean((2, 3))
        return self.head(x)


class LayerNormMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 8)
        self.ln = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h = F.gelu(self.ln(self.inp(x)))
        return self.out(F.relu(self.hidden(h)))


class SineLayer(nn.Module):
    """SIREN layer written the way users write it: a Linear and sin(w0 · x) in its own forward."""

    def __init__(self, i, o, w0=30.0):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(i, o)

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(SineLayer(2, 16), SineLayer(16, 16, w0=1.0))
        self.last = nn.Linear(16, 1)

    def forward(self, coords):
        return self.last(self.net(coords))


class MixedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(4, 7), nn.Linear(7, 6), nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, x):
        x = F.relu(self.a(x))
        x = torch.tanh(self.b(x))
        x = F.gelu(self.c(x))
        return self.d(x)


class FlattenCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(5 * 4 * 4, 3)

    def forward(self, x):
        x = self.pool(F.leaky_relu(self.conv(x), 0.1))
        return self.fc(x.view(x.size(0), -1))


class CatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(3, 4), nn.Linear(3, 5)
        self.mix = nn.Linear(9, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        h = torch.cat([F.relu(self.left(x)), torch.tanh(self.right(x))], dim=1)
        return self.out(torch.sigmoid(self.mix(h)))


class GroupNormCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 8, 3)
        self.gn = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv1d(8, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.gn(self.conv1(x)))
        x = F.relu(self.conv2(x))
        return self.fc(F.adaptive_avg_pool1d(x, 1).flatten(1))


class PreActResidualMLP(nn.Module):
    """Residual stream with a norm on the stream, projections into and out of it, dropout."""

    def __init__(self, d=6):
        super().__init__()
        self.embed = nn.Linear(3, d)
        self.norm1 = nn.LayerNorm(d)
        self.f1 = nn.Linear(d, 10)
        self.g1 = nn.Linear(10, d)
        self.f2 = nn.Linear(d, 10)
        self.g2 = nn.Linear(10, d)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        x = self.embed(x)
        x = x + self.drop(self.g1(F.relu(self.f1(self.norm1(x)))))
        x = x + self.g2(torch.tanh(self.f2(x)))
        return self.head(x)


def _gallery():
    return {
        "resnet": (TinyResNet, lambda g: torch.randn(3, 2, 6, 6, generator=g)),
        "layernorm_mlp": (LayerNormMLP, lambda g: torch.randn(5, 3, generator=g)),
        "siren": (Siren, lambda g: torch.rand(7, 2, generator=g) * 2 - 1),
        "mixed": (MixedMLP, lambda g: torch.randn(5, 4, generator=g)),
        "flatten_cnn": (FlattenCNN, lambda g: torch.randn(2, 1, 8, 8, generator=g)),
        "cat": (CatNet, lambda g: torch.randn(5, 3, generator=g)),
        "groupnorm": (GroupNormCNN, lambda g: torch.randn(3, 2, 9, generator=g)),
        "preact_residual": (PreActResidualMLP, lambda g: torch.randn(5, 3, generator=g)),
    }


GALLERY = _gallery()


def make(name, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    cls, inp = GALLERY[name]
    net = cls().to(dtype)
    with torch.no_grad():  # non-trivial norm statistics and affine parameters
        for mod in net.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
            if isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return net.eval(), inp(torch.Generator().manual_seed(seed)).to(dtype)


# ------------------------------------------------------------------------------------------ round trips, verifier
@pytest.mark.parametrize("name", list(GALLERY))
def test_gallery_round_trip_is_exact(name):
    net, x = make(name)
    graph = mg.to_graph(net).validate()
    net2 = mg.to_module(graph, net)
    for (n1, t1), (n2, t2) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2), n1
    # another net's graph loads all its parameters, running statistics and step counts into this net's copy
    other, _ = make(name, seed=1)
    for m in other.modules():
        if getattr(m, "num_batches_tracked", None) is not None:
            m.num_batches_tracked.fill_(7)
    net3 = mg.to_module(mg.to_graph(other), net)
    for (n1, t1), (n2, t2) in zip(other.state_dict().items(), net3.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2), n1
    assert torch.equal(net3(x), other(x)) and not torch.equal(net3(x), net(x))
    assert torch.equal(net2(x), net(x))


@pytest.mark.parametrize("name", list(GALLERY))
def test_gallery_verifier_passes(name, dtype):
    net, x = make(name, dtype)
    report = mg.verify_symmetry(net, x, n_samples=4, max_scale=10.0, generator=torch.Generator().manual_seed(1))
    assert report.passed, str(report)
    assert len(report.errors) == 4 and report.num_slots > 0
    if dtype == torch.float64:
        assert report.max_error < 1e-10


@pytest.mark.parametrize("name", list(GALLERY))
def test_transformed_module_converts_to_the_transformed_graph(name):
    net, x = make(name)
    spec = graph_spec(net)
    graph = spec.graph(spec.flatten(net))
    g = mg.sample_transform(graph, max_scale=5.0, generator=torch.Generator().manual_seed(3))
    moved = mg.to_module(g(graph), net)
    back = mg.to_graph(moved)
    torch.testing.assert_close(back.x, g(graph).x, rtol=0, atol=0)
    torch.testing.assert_close(back.edge_attr, g(graph).edge_attr, rtol=0, atol=0)
    torch.testing.assert_close(moved(x), net(x), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------ derived symmetries
def _block_sym(graph, layer):
    return {Symmetry(int(s)).label for s in graph.sym[graph.layer == layer].unique()}


def test_mixed_activations_get_their_own_symmetry():
    net, _ = make("mixed")
    g = mg.to_graph(net)
    assert _block_sym(g, 1) == {"positive_scale"}
    assert _block_sym(g, 2) == {"sign"}
    assert _block_sym(g, 3) == {"none"}
    assert _block_sym(g, 4) == {"fixed"} and (g.role[g.layer == 4] == Role.OUTPUT).all()


def test_siren_with_custom_sine_layer_keeps_signs():
    net, _ = make("siren")
    g = mg.to_graph(net)
    assert g.symmetry_counts() == {"fixed": 3, "sign": 32}
    assert [r.weight for r in graph_spec(net).layers] == ["net.0.linear.weight", "net.1.linear.weight",
                                                           "last.weight"]


def test_resnet_ties_the_residual_stream_and_norms_fix_scales():
    net, _ = make("resnet")
    spec = graph_spec(net)
    assert isinstance(spec, FxGraphSpec)
    g = spec.graph(spec.flatten(net))
    paths = [r.path for r in spec.layers]
    assert paths == ["stem", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2",
                     "layer2.conv1", "layer2.conv2", "layer2.downsample.0", "head"]
    lay = {p: i + 1 for i, p in enumerate(paths)}
    stream = [g.block[g.layer == lay[p]] for p in ("stem", "layer1.0.conv2", "layer1.1.conv2")]
    assert all(torch.equal(s, stream[0]) for s in stream)        # one block, tied position by position
    assert torch.equal(g.pos[g.layer == lay["stem"]], torch.arange(6))
    assert len({int(g.block[g.layer == lay[p]][0]) for p in paths[:5]}) == 3
    # the projection shortcut is tied to the second stage's last conv
    assert torch.equal(g.block[g.layer == lay["layer2.conv2"]], g.block[g.layer == lay["layer2.downsample.0"]])
    assert spec.layers[lay["layer2.downsample.0"] - 1].kernel == (1, 1)
    # every conv output feeds a BatchNorm: permutable, not scalable; norm parameters sit on those neurons
    assert _block_sym(g, lay["layer1.0.conv1"]) == {"none"}
    assert (g.norm_kind[g.layer >= 1][:-3] == NormKind.BATCH).all() and len(spec.norms) == 8
    bn = net.layer1[1].bn2
    nodes = spec.norms[[n.path for n in spec.norms].index("layer1.1.bn2")].nodes
    assert torch.equal(g.norm[nodes], torch.stack([bn.weight, bn.bias, bn.running_mean, bn.running_var], 1))
    # the next block reads the latest neuron of the stream
    assert torch.equal(spec.layers[3].in_nodes, spec.layers[2].out_nodes)
    # tied neurons move together
    gg = mg.sample_transform(g, generator=torch.Generator().manual_seed(0))
    node_perm = gg.node_perm()
    a, b = (g.layer == lay["stem"]).nonzero().flatten(), (g.layer == lay["layer1.1.conv2"]).nonzero().flatten()
    assert torch.equal(node_perm[a] - a, node_perm[b] - b)


def test_layernorm_breaks_scaling_but_not_permutation():
    net, _ = make("layernorm_mlp")
    g = mg.to_graph(net)
    assert _block_sym(g, 1) == {"none"} and int((g.block[g.layer == 1] >= 0).sum()) == 8
    assert _block_sym(g, 2) == {"positive_scale"}
    assert (g.norm_kind[g.layer == 1] == NormKind.LAYER).all()
    # LayerNorm has no running statistics: stored as mean 0, var 1
    assert torch.equal(g.norm[g.layer == 1, 2:], torch.tensor([[0.0, 1.0]], dtype=g.norm.dtype).expand(8, 2))


def test_groupnorm_splits_blocks_at_group_boundaries():
    net, _ = make("groupnorm")
    g = mg.to_graph(net)
    blocks = g.block[g.layer == 1]
    assert len(blocks.unique()) == 2 and torch.equal(g.pos[g.layer == 1], torch.arange(8) % 4)
    assert _block_sym(g, 1) == {"none"}


def test_cat_keeps_each_part_in_its_own_block():
    net, _ = make("cat")
    spec = graph_spec(net)
    g = spec.graph(spec.flatten(net))
    assert _block_sym(g, 1) == {"positive_scale"} and _block_sym(g, 2) == {"sign"}
    assert int(g.block[g.layer == 1][0]) != int(g.block[g.layer == 2][0])
    assert torch.equal(spec.layers[2].in_nodes, torch.cat([spec.layers[0].out_nodes, spec.layers[1].out_nodes]))


def test_flatten_over_a_4x4_map_matches_the_sequential_layout():
    net, _ = make("flatten_cnn")
    g = mg.to_graph(net)
    assert g.num_nodes == 1 + 5 + 3 and g.kernel_side == 5
    assert _block_sym(g, 1) == {"positive_scale"}
    seq = nn.Sequential(net.conv, nn.LeakyReLU(0.1), nn.MaxPool2d(2), nn.Flatten(), net.fc)
    ref = mg.to_graph(seq)
    for key in ("x", "edge_index", "edge_attr", "sym", "block", "pos", "layer", "role"):
        assert torch.equal(g[key], ref[key]), key


def test_preact_residual_stream():
    net, _ = make("preact_residual")
    spec = graph_spec(net)
    g = spec.graph(spec.flatten(net))
    # embed, g1, g2 form the stream: LayerNorm on it fixes factors to 1, tied permutation stays
    for p in ("embed", "g1", "g2"):
        lay = [r.path for r in spec.layers].index(p) + 1
        assert _block_sym(g, lay) == {"none"}
    f1 = [r.path for r in spec.layers].index("f1") + 1
    f2 = [r.path for r in spec.layers].index("f2") + 1
    assert _block_sym(g, f1) == {"positive_scale"} and _block_sym(g, f2) == {"sign"}
    assert spec.explain()[0]["because"]


@pytest.mark.parametrize("op,expected", [
    (lambda x: F.relu(x), "positive_scale"), (lambda x: torch.tanh(x), "sign"), (lambda x: x.sin(), "sign"),
    (lambda x: torch.sin(30.0 * x), "sign"), (lambda x: torch.sin(x + 1.0), "none"), (lambda x: 3.0 * x, "scale"),
    (lambda x: x / 2, "scale"), (lambda x: -x, "scale"), (lambda x: x * x, "none"), (lambda x: x ** 3, "sign"),
    (lambda x: x ** 2, "none"), (lambda x: F.gelu(x), "none"), (lambda x: torch.sigmoid(x), "none"),
    (lambda x: x.clamp(min=0), "positive_scale"), (lambda x: torch.clamp(x, -1, 1), "sign"),
    (lambda x: F.hardtanh(x), "sign"), (lambda x: x.abs(), "positive_scale"),
    (lambda x: F.leaky_relu(x, 0.2), "positive_scale"), (lambda x: x + torch.ones(5), "fixed"),
    (lambda x: x * torch.arange(5.0), "fixed"), (lambda x: F.softmax(x, dim=1), "none"),
    (lambda x: F.dropout(x, 0.5, training=False), "scale"), (lambda x: F.relu(x) + F.relu(x).tanh(), "none"),
])
def test_symmetry_of_functional_ops(op, expected):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 5), nn.Linear(5, 1)

        def forward(self, x):
            return self.b(op(self.a(x)))

    net = Net().double()
    g = mg.to_graph(net)
    assert _block_sym(g, 1) == {expected}
    assert mg.verify_symmetry(net, torch.randn(6, 2, dtype=torch.float64), n_samples=3,
                              generator=torch.Generator().manual_seed(0)).passed


def test_channel_slices_split_blocks():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(2, 6), nn.Linear(3, 3), nn.Linear(3, 1)

        def forward(self, x):
            h = F.relu(self.a(x))
            lo, hi = h[:, :3], h[:, 3:]
            return self.c(self.b(lo) + hi)

    net = Net().double()
    g = mg.to_graph(net)
    first = g.block[g.layer == 1]
    assert first[0] != first[3] and torch.equal(g.pos[g.layer == 1], torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.equal(g.block[g.layer == 2], first[3:])     # b's outputs tied to the upper half of a
    assert mg.verify_symmetry(net, torch.randn(4, 2, dtype=torch.float64), n_samples=4).passed


# ------------------------------------------------------------------------------------------ cross-check with the walker
@pytest.mark.parametrize("seed", range(30))
def test_fx_equals_the_sequential_walker(seed):
    net, _ = random_network(seed)
    a, b = graph_spec(net, "sequential"), graph_spec(net, "fx")
    for key in ("layer", "role", "sym", "block", "pos", "edge_index", "edge_layer"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert a.params == b.params and a.side == b.side
    for r, s in zip(a.layers, b.layers, strict=True):
        assert (r.path, r.weight, r.bias, r.kernel) == (s.path, s.weight, s.bias, s.kernel)
        assert torch.equal(r.in_nodes, s.in_nodes) and torch.equal(r.out_nodes, s.out_nodes)
    ga, gb = a.graph(a.flatten(net)), b.graph(b.flatten(net))
    assert set(ga.keys()) == set(gb.keys()) and all(torch.equal(ga[k], gb[k]) for k in ga.keys())


class MySine(nn.Module):
    def __init__(self, w0):
        super().__init__()
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * x)


def test_siren_with_a_custom_sine_activation_in_a_sequential():
    net = nn.Sequential(nn.Linear(2, 8), MySine(30.0), nn.Linear(8, 8), MySine(30.0), nn.Linear(8, 1)).double()
    g = mg.to_graph(net)
    assert g.symmetry_counts() == {"fixed": 3, "sign": 16}
    assert mg.verify_symmetry(net, torch.rand(5, 2, dtype=torch.float64), n_samples=3).passed


def test_sequential_holding_a_custom_block_goes_through_fx():
    net = nn.Sequential(nn.Linear(2, 4), SineLayer(4, 4), nn.Linear(4, 1)).double()
    g = mg.to_graph(net)                       # the walker stops at SineLayer; auto falls back to fx
    assert g.symmetry_counts() == {"fixed": 3, "scale": 4, "sign": 4}
    assert torch.equal(mg.to_module(g, net)[1].linear.weight, net[1].linear.weight)


# ------------------------------------------------------------------------------------------ batching
def test_fx_graphs_batch_with_sequential_graphs():
    nets = [make("resnet")[0], random_network(0, dtype=torch.float64)[0], make("mixed")[0], make("cat")[0]]
    graphs = [mg.to_graph(n) for n in nets]
    batch = mg.batch_graphs(graphs)
    assert batch.num_graphs == 4 and batch.norm.shape == (batch.num_nodes, 4)
    assert int((batch.norm_kind > 0).sum()) == int((graphs[0].norm_kind > 0).sum())
    for net, g in zip(nets, batch.to_data_list()):
        loaded = mg.to_module(g, net).state_dict().values()
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded))
    # a group element of the whole batch moves the norm rows with their neurons
    gb = mg.sample_transform(batch, generator=torch.Generator().manual_seed(0))
    moved = gb(batch).to_data_list()[0]
    x = make("resnet")[1]
    torch.testing.assert_close(mg.to_module(moved, nets[0])(x), nets[0](x), rtol=1e-10, atol=1e-10)
    assert "norm" not in mg.batch_graphs(graphs[1:]).keys()


# ------------------------------------------------------------------------------------------ errors
class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(2, 3), Branchy())

    def forward(self, x):
        return self.inner(x)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def test_untraceable_module_is_named():
    with pytest.raises(mg.UnsupportedModuleError, match=r"'inner\.1'.*Branchy.*torch\.fx cannot trace"):
        mg.to_graph(DataDependent())


class PerChannelScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.gain = nn.Parameter(torch.ones(3))
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        return self.out(self.fc(x) * self.gain)


class SharedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


class UnknownFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return torch.cumsum(self.fc(x), dim=1)


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.spare = nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x)


def test_unsupported_parts_are_named():
    with pytest.raises(mg.UnsupportedModuleError, match=r"'<root>'.*PerChannelScale.*parameter 'gain'"):
        mg.to_graph(PerChannelScale())
    with pytest.raises(mg.UnsupportedModuleError, match=r"'fc'.*more than once"):
        mg.to_graph(SharedLayer())
    with pytest.raises(mg.UnsupportedModuleError, match=r"cumsum is not supported"):
        mg.to_graph(UnknownFunction())
    with pytest.raises(mg.UnsupportedModuleError, match=r"'spare'.*not used"):
        mg.to_graph(Unused())
    with pytest.raises(mg.UnsupportedModuleError, match=r"'1'.*BatchNorm1d"):  # the walker alone refuses it
        mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), method="sequential")
    for method in ("fx", "auto"):  # auto falls back to the dataflow converter
        g = mg.to_graph(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), method=method)
        assert (g.norm_kind == NormKind.BATCH).sum() == 3
    with pytest.raises(ValueError, match="unknown conversion method"):
        mg.to_graph(nn.Linear(2, 2), method="onnx")


def test_fx_graph_spec_is_the_explicit_entry_point():
    net, _ = make("mixed")
    assert isinstance(fx_graph_spec(net), FxGraphSpec)
    assert torch.equal(mg.graph.fx_to_graph(net).edge_attr, mg.to_graph(net).edge_attr)
    assert torch.equal(mg.to_graph(net, method="fx").x, mg.to_graph(net).x)
    with pytest.raises(mg.UnsupportedModuleError, match="no parametric layer"):
        fx_graph_spec(nn.Sequential(nn.ReLU()))


# ------------------------------------------------------------------------------------------ random dataflow graphs
_ACTS = {
    "relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "sine": lambda h: torch.sin(3.0 * h),
    "leaky": lambda h: F.leaky_relu(h, 0.2), "identity": lambda h: h, "sigmoid": torch.sigmoid,
    "cube": lambda h: h ** 3,
}


class RandomDAG(nn.Module):
    """A random residual/concatenating/normalised MLP: a static plan that fx unrolls."""

    def __init__(self, seed):
        super().__init__()
        import random

        rng = random.Random(seed)
        width = self.in_dim = rng.randint(2, 5)
        self.plan, self.mods, k = [], nn.ModuleList(), 0

        def lin(i, o):
            nonlocal k
            self.mods.append(nn.Linear(i, o, bias=rng.random() < 0.8))
            k += 1
            return k - 1

        for _ in range(rng.randint(2, 5)):
            kind = rng.choice(["dense", "residual", "cat", "norm", "slice"])
            a1, a2 = rng.choice(list(_ACTS)), rng.choice(list(_ACTS))
            if kind == "dense":
                new = rng.randint(2, 7)
                self.plan.append(("dense", lin(width, new), a1))
                width = new
            elif kind == "residual":
                mid = rng.randint(2, 7)
                self.plan.append(("residual", lin(width, mid), lin(mid, width), a1, a2))
            elif kind == "cat":
                w1, w2 = rng.randint(1, 4), rng.randint(1, 4)
                self.plan.append(("cat", lin(width, w1), lin(width, w2), a1, a2))
                width = w1 + w2
            elif kind == "norm":
                new = 2 * rng.randint(1, 3)
                norm = rng.choice([nn.BatchNorm1d(new), nn.LayerNorm(new), nn.GroupNorm(2, new)])
                with torch.no_grad():
                    for name, t in list(norm.named_parameters()) + list(norm.named_buffers()):
                        if t.is_floating_point():
                            t.copy_(torch.rand(t.shape, generator=torch.Generator().manual_seed(seed)) + 0.5)
                first = lin(width, new)
                self.mods.append(norm)
                k += 1
                self.plan.append(("norm", first, k - 1, a1))
                width = new
            elif width >= 2 and k > 0:  # (slicing the raw input leaves its channel count unknown)
                half = width // 2
                self.plan.append(("slice", lin(half, half), half, a1))
                width = half
        self.plan.append(("dense", lin(width, rng.randint(1, 3)), "identity"))

    def forward(self, h):
        m = self.mods
        for step in self.plan:
            if step[0] == "dense":
                h = _ACTS[step[2]](m[step[1]](h))
            elif step[0] == "residual":
                h = _ACTS[step[4]](h + m[step[2]](_ACTS[step[3]](m[step[1]](h))))
            elif step[0] == "cat":
                h = torch.cat([_ACTS[step[3]](m[step[1]](h)), _ACTS[step[4]](m[step[2]](h))], dim=1)
            elif step[0] == "norm":
                h = _ACTS[step[3]](m[step[2]](m[step[1]](h)))
            else:
                half = step[2]
                h = _ACTS[step[3]](h[:, :half] + m[step[1]](h[:, half:2 * half]))
        return h


@pytest.mark.parametrize("seed", range(40))
def test_random_dataflow_graphs_round_trip_and_verify(seed):
    torch.manual_seed(seed)
    net = RandomDAG(seed).double().eval()
    x = torch.randn(6, net.in_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    graph = mg.to_graph(net).validate()
    net2 = mg.to_module(graph, net)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))
    report = mg.verify_symmetry(net, x, n_samples=3, max_scale=10.0, generator=torch.Generator().manual_seed(seed))
    assert report.passed and report.max_error < 1e-9, str(report)
