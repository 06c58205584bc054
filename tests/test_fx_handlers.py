"""The fx interpreter's handler registry: every handler is reached, unknown ops fail as before, new ops plug in."""

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import monomial_gmn as mg
from monomial_gmn.graph import Symmetry, fx_graph_spec
from monomial_gmn.graph import _fx
from monomial_gmn.graph._fx_registry import (_FX_FUNCTIONS, _FX_METHODS, _FX_MODULES, _Handler, fx_handler,
                                             register_fx_function, register_fx_method, register_fx_module)

KIND_MODULES = {"_fx_layers", "_fx_activations", "_fx_arith", "_fx_shape", "_fx_pool"}


class Body(nn.Module):
    """Applies ``fn`` to the hidden features (a plain function, so fx traces through it)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Vec(nn.Module):
    """Linear(4, 6) → body → Linear(6, 3): the body sees [B, 6] features."""

    def __init__(self, body):
        super().__init__()
        self.a, self.body, self.b = nn.Linear(4, 6), body, nn.Linear(6, 3)

    def forward(self, x):
        return self.b(self.body(self.a(x)))


class Img(nn.Module):
    """Conv2d(3, 6) → body → Conv2d(6, 2, 1): the body sees [B, 6, H, W] maps."""

    def __init__(self, body):
        super().__init__()
        self.a, self.body, self.b = nn.Conv2d(3, 6, 3), body, nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.b(self.body(self.a(x)))


def vec(fn):
    return Vec(Body(fn))


def img(fn):
    return Img(Body(fn))


def hidden_symmetries(spec):
    return {Symmetry(int(s)) for s in spec.sym[spec.layer == 1].unique()}


# (op, target, network whose conversion must reach the handler registered for that target)
CASES = [
    ("call_function", F.relu, vec(F.relu)),
    ("call_method", "tanh", vec(lambda h: h.tanh())),
    ("call_function", F.hardtanh, vec(F.hardtanh)),
    ("call_method", "clamp", vec(lambda h: h.clamp(min=0))),
    ("call_function", F.prelu, vec(lambda h: F.prelu(h, torch.tensor([0.2])))),
    ("call_function", F.softmax, vec(lambda h: F.softmax(h, 1))),
    ("call_method", "softmax", vec(lambda h: h.softmax(1))),
    ("call_module", nn.Softmax, Vec(nn.Softmax(1))),
    ("call_function", operator.add, vec(lambda h: h + h)),
    ("call_method", "mul", vec(lambda h: h.mul(2))),
    ("call_function", torch.cat, vec(lambda h: torch.cat([h[:, :2], h[:, 2:]], 1))),
    ("call_function", getattr, vec(lambda h: h.view(h.shape[0], -1))),
    ("call_method", "size", vec(lambda h: h.view(h.size(0), -1))),
    ("call_method", "dim", vec(lambda h: h * h.dim())),
    ("call_function", operator.getitem, vec(lambda h: torch.cat([h[:, 3:], h[:, :3]], 1))),
    ("call_function", torch.flatten, img(lambda h: torch.flatten(h, 2).unsqueeze(-1))),
    ("call_method", "flatten", img(lambda h: h.flatten(2).unsqueeze(-1))),
    ("call_module", nn.Flatten, Vec(nn.Flatten())),
    ("call_function", torch.reshape, vec(lambda h: torch.reshape(h, (-1, 6)))),
    ("call_method", "view", vec(lambda h: h.view(-1, 6))),
    ("call_function", torch.chunk, vec(lambda h: torch.cat(torch.chunk(h, 2, 1), 1))),
    ("call_method", "split", vec(lambda h: torch.cat(h.split(3, 1), 1))),
    ("call_function", torch.unsqueeze, img(lambda h: torch.unsqueeze(h, -1).squeeze(-1))),
    ("call_method", "squeeze", img(lambda h: h.unsqueeze(-1).squeeze(-1))),
    ("call_function", F.avg_pool2d, img(lambda h: F.avg_pool2d(h, 2))),
    ("call_function", torch.mean, img(lambda h: torch.mean(h, (2, 3), keepdim=True))),
    ("call_method", "amax", img(lambda h: h.amax((2, 3), keepdim=True))),
    ("call_function", F.pad, img(lambda h: F.pad(h, (1, 1, 1, 1)))),
    ("call_function", F.interpolate, img(lambda h: F.interpolate(h, scale_factor=2))),
    ("call_module", nn.Upsample, Img(nn.Upsample(scale_factor=2))),
    ("call_module", nn.BatchNorm2d, Img(nn.BatchNorm2d(6))),
    ("call_function", F.group_norm, img(lambda h: F.group_norm(h, 2))),
]


def _spy(monkeypatch, op, target, calls):
    """Replace the handler registered for ``target`` by a wrapper that counts its calls."""
    if op == "call_module":
        key = next(c for c in target.__mro__ if c in _FX_MODULES)
        inner = _FX_MODULES[key]
        monkeypatch.setitem(_FX_MODULES, key, lambda *a: (calls.append(target), inner(*a))[1])
        return
    table = _FX_FUNCTIONS if op == "call_function" else _FX_METHODS
    entry = table[target]
    wrapped = _Handler(lambda *a: (calls.append(target), entry.fn(*a))[1], entry.constants)
    monkeypatch.setitem(table, target, wrapped)


@pytest.mark.parametrize("op, target, net", CASES, ids=[f"{o}-{getattr(t, '__name__', t)}" for o, t, _ in CASES])
def test_each_handler_is_reached_through_the_dispatch(monkeypatch, op, target, net):
    calls = []
    _spy(monkeypatch, op, target, calls)
    fx_graph_spec(net)
    assert calls, f"the handler for {target} was not called"


def test_every_registered_handler_belongs_to_a_kind_and_has_a_case():
    handlers = {e.fn for e in _FX_FUNCTIONS.values()} | {e.fn for e in _FX_METHODS.values()} | set(_FX_MODULES.values())
    kinds = {h.__module__.rsplit(".", 1)[-1] for h in handlers}
    assert kinds == KIND_MODULES
    covered = {fx_handler(op, t if op != "call_module" else _instance(t)) for op, t, _ in CASES}
    missing = {f"{h.__module__}.{h.__name__}" for h in handlers} - {f"{h.__module__}.{h.__name__}" for h in covered}
    assert not missing


def _instance(cls):
    return {nn.Softmax: nn.Softmax(1), nn.Flatten: nn.Flatten(), nn.Upsample: nn.Upsample(scale_factor=2),
            nn.BatchNorm2d: nn.BatchNorm2d(6)}[cls]


def test_fx_handler_lookup():
    assert fx_handler("call_function", torch.cat).__name__ == "cat_function"
    assert fx_handler("call_method", "view").__name__ == "reshape_method"
    assert fx_handler("call_module", nn.SyncBatchNorm(3)).__name__ == "norm_module"  # subclasses match
    assert fx_handler("call_function", torch.cumsum) is None
    assert fx_handler("call_module", nn.Linear(2, 2)) is None  # converters are a separate registry
    assert _fx.register_fx_function is register_fx_function  # the extension API is importable from _fx


# ------------------------------------------------------------------------------------------ unknown ops
# The messages below are those of the interpreter before it was split into handlers.
UNKNOWN = [
    (vec(lambda h: torch.cumsum(h, 1)), "body", "Body", "fx op 'cumsum' (call_function cumsum): the function cumsum "
     "is not supported by the fx converter"),
    (vec(lambda h: h.cumsum(1)), "body", "Body", "fx op 'cumsum' (call_method cumsum): the tensor method 'cumsum' is "
     "not supported by the fx converter"),
    (vec(lambda h: torch.mean(h)), "body", "Body", "fx op 'mean' (call_function mean): the function mean is not "
     "supported by the fx converter"),  # the reduction handler declines without a dim
    (vec(lambda h: h.mean()), "body", "Body", "fx op 'mean' (call_method mean): the tensor method 'mean' is not "
     "supported by the fx converter"),
    (Img(nn.ChannelShuffle(2)), "body", "ChannelShuffle", "no converter or op is registered for it; use "
     "mg.register_op(type, symmetry) for a parameter-free activation or mg.register_converter for a layer"),
]


@pytest.mark.parametrize("net, path, cls, reason", UNKNOWN)
def test_unknown_op_gives_the_same_error_as_before(net, path, cls, reason):
    with pytest.raises(mg.UnsupportedModuleError) as info:
        fx_graph_spec(net)
    assert (info.value.path, info.value.module_type, info.value.reason) == (path, cls, reason)


# ------------------------------------------------------------------------------------------ registering new ops
@pytest.fixture
def scratch_registry():
    saved = [dict(t) for t in (_FX_FUNCTIONS, _FX_METHODS, _FX_MODULES)]
    yield
    for table, old in zip((_FX_FUNCTIONS, _FX_METHODS, _FX_MODULES), saved):
        table.clear()
        table.update(old)


def test_registering_a_function_handler_makes_the_op_convertible(scratch_registry):
    net = vec(lambda h: torch.cumsum(h, 1))
    with pytest.raises(mg.UnsupportedModuleError, match="cumsum is not supported"):
        fx_graph_spec(net)
    seen = []

    @register_fx_function(torch.cumsum)
    def cumsum(it, fn, args, kwargs):
        seen.append((fn, args[1]))
        return it.unary(args[0], Symmetry.SIGN, "cumsum")

    spec = fx_graph_spec(net)
    assert seen == [(torch.cumsum, 1)]
    assert hidden_symmetries(spec) == {Symmetry.SIGN}  # the handler's constraint reached the graph


def test_registering_a_method_handler_makes_the_op_convertible(scratch_registry):
    net = vec(lambda h: h.cumsum(1))
    with pytest.raises(mg.UnsupportedModuleError, match="method 'cumsum' is not supported"):
        fx_graph_spec(net)

    @register_fx_method("cumsum")
    def cumsum(it, method, args, kwargs):
        return it.unary(args[0], Symmetry.POSITIVE_SCALE, method)

    assert hidden_symmetries(fx_graph_spec(net)) == {Symmetry.POSITIVE_SCALE}


class Untraceable(nn.Module):
    """A parameter-free op whose forward fx cannot trace (data-dependent control flow)."""

    def forward(self, x):
        return x if bool(x.sum() > 0) else -x


def test_registering_a_module_handler_makes_the_module_convertible(scratch_registry):
    net = Vec(Untraceable())
    with pytest.raises(mg.UnsupportedModuleError, match="cannot trace"):
        fx_graph_spec(net)
    seen = []

    @register_fx_module(Untraceable)
    def untraceable(it, target, m, x):
        seen.append((target, m))
        it.mark_called(target, m)
        return it.unary(x, Symmetry.SIGN, f"{type(m).__name__} at '{target}'")

    spec = fx_graph_spec(net)
    assert seen == [("body", net.body)]
    assert hidden_symmetries(spec) == {Symmetry.SIGN}


def test_a_declining_handler_gives_the_unsupported_error(scratch_registry):
    register_fx_function(torch.cumsum)(lambda it, fn, args, kwargs: NotImplemented)
    with pytest.raises(mg.UnsupportedModuleError, match="the function cumsum is not supported by the fx converter"):
        fx_graph_spec(vec(lambda h: torch.cumsum(h, 1)))
