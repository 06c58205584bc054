"""Any traceable torch module → GraphSpec, with each neuron's symmetry derived from the traced dataflow.

The module is traced with ``torch.fx`` (registered layers and torch.nn modules stay leaves; user blocks and
activations are traced through) and the traced graph is read by an abstract interpreter. Every tensor that
carries features is tracked as one graph neuron per channel (its *representative*); every op either keeps
the channels (elementwise ops, pooling, reshapes over spatial dimensions), concatenates or slices them, or
feeds them to a parametric layer (Linear/Conv and registered converters), whose output channels are new
neurons. Rules, all conservative (a neuron only keeps factors under which the whole network is unchanged):

* The factor set of a neuron is the :func:`~monomial_gmn.graph.meet` of what every op reading its value
  allows: ReLU-like and max-pooling ops ``positive_scale``; odd ops (tanh, sin, x**3, ...) ``sign``; linear
  ops (a constant factor, average pooling, dropout, zero padding, interpolation) ``scale``; any other
  elementwise op (sigmoid, GELU, adding a constant, a product of two features) ``none``.
* ``a + b`` (and ``a - b``, a concatenation along a spatial dim) ties the neurons of a and b channel by
  channel: they share one slot — one permutation and one factor (same ``block`` and ``pos``).
  ``a * b`` ties them too, with factor 1.
* A norm layer (BatchNorm/LayerNorm/GroupNorm/InstanceNorm) gives the neurons it reads factor 1 (``none``:
  still permutable, its per-channel parameters and statistics move with them in the ``norm`` field);
  GroupNorm with 1 < G < C splits the block at its group boundaries. Channel-mixing ops without
  parameters (softmax over channels, F.normalize) give ``none``.
* Slicing channels (``x[:, a:b]``, chunk, split) splits blocks at the slice boundaries; blocks tied
  across an addition are split the same way, so every copy of a block is a contiguous, aligned range.
* Input neurons, output neurons (everything the forward returns) and neurons combined with a per-channel
  constant are fixed.

Anything else raises :class:`UnsupportedModuleError` naming the module path and the fx op.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from .._errors import UnsupportedModuleError
from ._convert import _CONVERTERS, _OPS, ConvertContext, _lookup, _op_params_reason, register_spec_builder
from ._fx_spec import FxGraphSpec, NormKind, NormRecord
from ._parameter_graph import ParameterGraph
from ._spec import LayerRecord
from ._symmetry import Role, Symmetry, meet

__all__ = ["fx_graph_spec", "fx_to_graph"]

S = Symmetry

# ------------------------------------------------------------------------------------------ op tables
_UNARY_FUNCS: dict[Any, Symmetry] = {}
_UNARY_METHODS: dict[str, Symmetry] = {}


def _table(sym: Symmetry, funcs: tuple = (), methods: tuple[str, ...] = ()) -> None:
    for f in funcs:
        _UNARY_FUNCS[f] = sym
    for m in methods:
        _UNARY_METHODS[m] = sym


_table(S.POSITIVE_SCALE, (F.relu, torch.relu, torch.relu_, F.relu_, F.leaky_relu, F.leaky_relu_, torch.abs),
       ("relu", "relu_", "abs", "abs_"))
_table(S.SIGN, (torch.tanh, F.tanh, torch.sin, torch.sinh, torch.asinh, torch.arcsinh, torch.atan, torch.arctan,
                torch.erf, F.softsign, F.tanhshrink, F.softshrink, F.hardshrink, torch.sign),
       ("tanh", "tanh_", "sin", "sin_", "sinh", "asinh", "atan", "arctan", "erf", "sign"))
_table(S.NONE, (torch.sigmoid, F.sigmoid, F.gelu, F.silu, F.elu, F.celu, F.selu, F.softplus, F.mish, F.hardswish,
                F.hardsigmoid, F.logsigmoid, F.relu6, F.rrelu, F.threshold, torch.exp, torch.log, torch.log1p,
                torch.expm1, torch.cos, torch.cosh, torch.sqrt, torch.rsqrt, torch.square, torch.reciprocal,
                torch.erfc, torch.exp2, torch.log2),
       ("sigmoid", "sigmoid_", "exp", "log", "log1p", "expm1", "cos", "cosh", "sqrt", "rsqrt", "square",
        "reciprocal", "erfc"))
_table(S.SCALE, (torch.neg, operator.neg, operator.pos, F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout,
                 F.feature_alpha_dropout, torch.clone, torch.positive),
       ("neg", "contiguous", "clone", "detach", "float", "double", "half", "to", "type_as", "cpu", "cuda"))

_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub, torch.subtract}
_MUL = {operator.mul, operator.imul, torch.mul, torch.multiply}
_DIV = {operator.truediv, operator.itruediv, torch.div, torch.true_divide, torch.divide}
_ADD_M, _MUL_M, _DIV_M = {"add", "add_", "sub", "sub_"}, {"mul", "mul_"}, {"div", "div_", "true_divide"}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_POOL_FUNCS: dict[Any, tuple[Symmetry, Callable | None]] = {
    F.avg_pool1d: (S.SCALE, None), F.avg_pool2d: (S.SCALE, None),
    F.max_pool1d: (S.POSITIVE_SCALE, None), F.max_pool2d: (S.POSITIVE_SCALE, None),
    F.adaptive_avg_pool1d: (S.SCALE, nn.AdaptiveAvgPool1d), F.adaptive_avg_pool2d: (S.SCALE, nn.AdaptiveAvgPool2d),
    F.adaptive_max_pool1d: (S.POSITIVE_SCALE, nn.AdaptiveMaxPool1d),
    F.adaptive_max_pool2d: (S.POSITIVE_SCALE, nn.AdaptiveMaxPool2d),
}
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


class _Fail(Exception):
    """An op the converter cannot read (turned into UnsupportedModuleError naming the module and op)."""


# ------------------------------------------------------------------------------------------ abstract values
@dataclass
class _Feat:
    """A feature tensor [B, C, *spatial] (or [B, C*P] after a flatten): one representative vid per channel.

    ``nodes`` is None while the network input's channel count is still unknown (``pending``).
    """

    nodes: Tensor | None
    ctx: ConvertContext
    pending: bool = False

    @property
    def flat(self) -> bool:
        return self.ctx.channels is None and self.ctx.flat_channels is not None


class _Batch:
    """The batch size (x.size(0), x.shape[0])."""


_BATCH = _Batch()


@dataclass
class _Shape:
    dims: tuple


class _Opaque:
    """A non-feature value whose content the converter does not need (dtype, device, unknown int)."""


_OPAQUE = _Opaque()


@dataclass
class _Const:
    """A constant (python number or tensor) that does not depend on the input."""

    value: Any


# ------------------------------------------------------------------------------------------ tracing
class _Tracer(fx.Tracer):
    """Keeps registered layers/ops and torch.nn modules as leaves; remembers where tracing failed."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_at: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if _lookup(_CONVERTERS, m) is not None or _lookup(_OPS, m) is not None:
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at = (self.path_of_module(m), type(m).__name__)
            raise


def _trace(module: nn.Module) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is reported with the failing module
        path, name = tracer.failed_at or ("", type(module).__name__)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModuleError(path, name, f"torch.fx cannot trace it ({type(exc).__name__}: {msg}); "
                                     "data-dependent control flow or unsupported Python must be removed from "
                                     "its forward") from exc
    return fx.GraphModule(module, graph)


# ------------------------------------------------------------------------------------------ the interpreter
class _Interpreter:
    def __init__(self, root: nn.Module, gm: fx.GraphModule):
        self.root = root
        self.gm = gm
        self.vlayer: list[int] = []            # per vid: 0 input, l for the l-th parametric layer
        self.vsym: list[Symmetry] = []         # per vid: meet of the constraints applied to it
        self.vfixed: list[bool] = []
        self.vnorm: list[str | None] = []      # per vid: path of the norm whose parameters it carries
        self.group_start: list[int] = []
        self.cuts: set[int] = set()            # vids that start a segment
        self.ties: list[tuple[Tensor, Tensor]] = []
        self.events: list[tuple[Tensor, Symmetry, str]] = []
        self.records: list[tuple[str, str, str | None, Tensor, Tensor, tuple[int, ...]]] = []
        self.norms: list[tuple[str, NormKind, tuple, Tensor, str | None]] = []
        self.covered: set[str] = set()
        self.called: dict[str, str] = {}
        self.input_nodes: Tensor | None = None
        self.outputs: list[Tensor] = []
        self.where = ""

    # ---------------------------------------------------------------- node allocation and constraints
    def alloc(self, layer: int, count: int) -> Tensor:
        start = len(self.vlayer)
        self.group_start.append(start)
        self.vlayer += [layer] * count
        self.vsym += [S.FIXED if layer == 0 else S.SCALE] * count
        self.vfixed += [layer == 0] * count
        self.vnorm += [None] * count
        return torch.arange(start, start + count)

    def nodes(self, feat: _Feat, count: int | None = None) -> Tensor:
        """The vids of a feature, resolving the network input's channel count on first need."""
        if feat.nodes is not None:
            return feat.nodes
        if self.input_nodes is None:
            if count is None:
                raise _Fail("the number of input channels cannot be inferred here; apply a Linear/Conv/norm "
                            "layer to the input first")
            self.input_nodes = self.alloc(0, count)
        if count is not None and self.input_nodes.numel() != count:
            raise _Fail(f"the input has {self.input_nodes.numel()} channels here but {count} are expected")
        return self.input_nodes

    def constrain(self, feat: _Feat, sym: Symmetry, why: str) -> None:
        if feat.nodes is None and feat.pending:
            return  # input neurons are fixed anyway
        vids = self.nodes(feat)
        for v in vids.tolist():
            self.vsym[v] = meet(self.vsym[v], sym)
            if sym == S.FIXED:
                self.vfixed[v] = True
        self.events.append((vids, sym, why))

    def tie(self, a: Tensor, b: Tensor) -> Tensor:
        """Tie two channel lists; returns the representative (the later-created neuron) per channel."""
        self.ties.append((a, b))
        la, lb = torch.tensor(self.vlayer)[a], torch.tensor(self.vlayer)[b]
        return torch.where((lb > la) | ((lb == la) & (b > a)), b, a)

    def cut(self, vids: Tensor, positions: list[int]) -> None:
        for p in positions:
            if 0 < p < vids.numel():
                self.cuts.add(int(vids[p]))

    # ---------------------------------------------------------------- running the fx graph
    def run(self) -> None:
        env: dict[fx.Node, Any] = {}
        placeholders = 0
        for node in self.gm.graph.nodes:
            self.where = node
            try:
                if node.op == "placeholder":
                    if placeholders == 0:
                        env[node] = _Feat(None, ConvertContext(), pending=True)
                    elif node.args:
                        env[node] = _Const(node.args[0])
                    else:
                        raise _Fail("the forward takes more than one input; only single-input networks convert")
                    placeholders += 1
                elif node.op == "get_attr":
                    env[node] = self.get_attr(node.target)
                elif node.op == "output":
                    self.output(node.args[0], env)
                else:
                    args = fx.node.map_arg(node.args, lambda n: env[n])
                    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
                    if node.op == "call_module":
                        env[node] = self.call_module(node.target, args, kwargs)
                    elif node.op == "call_function":
                        env[node] = self.call_function(node.target, args, kwargs)
                    else:
                        env[node] = self.call_method(node.target, args, kwargs)
                    self.check_inplace(node, env[node])
            except _Fail as exc:
                raise self.error(node, str(exc)) from None
            except UnsupportedModuleError as exc:
                if exc.path != "<root>" or node.op != "call_module":
                    raise
                raise self.error(node, exc.reason) from None

    def error(self, node: fx.Node, reason: str) -> UnsupportedModuleError:
        if node.op == "call_module":
            return UnsupportedModuleError(node.target, type(self.root.get_submodule(node.target)).__name__, reason)
        stack = node.meta.get("nn_module_stack") or {}
        path, cls = ("", type(self.root))
        if stack:
            path, cls = list(stack.values())[-1]
        target = getattr(node.target, "__name__", str(node.target))
        return UnsupportedModuleError(path, getattr(cls, "__name__", str(cls)),
                                      f"fx op '{node.name}' ({node.op} {target}): {reason}")

    def check_inplace(self, node: fx.Node, value: Any) -> None:
        name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        inplace = (node.op == "call_method" and name.endswith("_")) or node.kwargs.get("inplace", False)
        if node.op == "call_module":
            inplace = bool(getattr(self.root.get_submodule(node.target), "inplace", False))
        if inplace and isinstance(value, _Feat) and not node.users:
            raise _Fail("an in-place op whose result is not used; fx cannot follow the mutation (use the result)")

    # ---------------------------------------------------------------- sources and sinks
    def get_attr(self, target: str) -> _Const:
        value = self.root
        for part in target.split("."):
            value = getattr(value, part)
        params = dict(self.root.named_parameters())
        if target in params:
            size = "a scalar" if value.numel() == 1 else f"{value.numel()} values"
            raise _Fail(f"parameter '{target}' ({size}) is used directly in the forward; the graph carries only "
                        "the parameters of Linear/Conv/norm layers and registered converters, so networks that "
                        "differ in it would get the same graph (register it as a buffer if it is a fixed constant "
                        "of the architecture, or register a converter for the module that owns it)")
        return _Const(value.detach() if torch.is_tensor(value) else value)

    def output(self, value: Any, env: dict) -> None:
        value = fx.node.map_arg(value, lambda n: env[n])
        for feat in _flatten_values(value):
            if isinstance(feat, _Feat):
                if feat.nodes is None and self.input_nodes is None:
                    continue  # the raw input returned as it is: nothing to fix
                vids = self.nodes(feat)
                self.outputs.append(vids)
                self.constrain(feat, S.FIXED, "returned by the forward")

    # ---------------------------------------------------------------- modules
    def call_module(self, target: str, args: tuple, kwargs: dict) -> Any:
        m = self.root.get_submodule(target)
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, _Feat):
            raise _Fail("it is applied to something that is not a feature tensor")
        conv = _lookup(_CONVERTERS, m)
        if conv is not None:
            return self.parametric(target, m, conv, x)
        if isinstance(m, _NORM_TYPES):
            return self.norm_module(target, m, x)
        if isinstance(m, nn.Flatten):
            self.mark_called(target, m)
            return self.flatten(x, m.start_dim, m.end_dim)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.Softmin)):
            self.mark_called(target, m)
            return self.unary(x, S.NONE, f"{type(m).__name__} at '{target}'")
        if isinstance(m, nn.Upsample):
            self.mark_called(target, m)
            return self.unary(x, S.SCALE, "upsampling", spatial=None)
        rule = _lookup(_OPS, m)
        if rule is None:
            raise _Fail("no converter or op is registered for it; use mg.register_op(type, symmetry) for a "
                        "parameter-free activation or mg.register_converter for a layer")
        own = [n for n, _ in m.named_parameters()]
        if own and not (rule.allow_params and rule.allow_params(m)):
            raise _Fail(_op_params_reason(own))
        self.mark_called(target, m)
        prefix = f"{target}." if target else ""
        self.covered.update(prefix + n for n in own)
        sym = rule.symmetry(m) if callable(rule.symmetry) else rule.symmetry
        out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
        out.ctx.path = target
        if rule.effect is not None:
            rule.effect(m, out.ctx)
        self.constrain(x, sym, f"{type(m).__name__} at '{target}'")
        return out

    def mark_called(self, target: str, m: nn.Module) -> None:
        if target in self.called and any(True for _ in m.parameters()):
            raise _Fail("the module is called more than once; shared weights are not supported")
        self.called[target] = type(m).__name__

    def parametric(self, target: str, m: nn.Module, conv: Callable, x: _Feat) -> _Feat:
        self.mark_called(target, m)
        ctx = copy.copy(x.ctx)
        ctx.path = target
        lc = conv(m, ctx)
        expected = ctx.channels if ctx.channels is not None else ctx.flat_channels
        if x.nodes is None and self.input_nodes is None:
            in_vids = self.nodes(x, lc.in_channels)
        else:
            in_vids = self.nodes(x)
            if expected is None:
                expected = in_vids.numel()
            if lc.in_channels != expected:
                raise UnsupportedModuleError(target, type(m).__name__, f"it expects {lc.in_channels} input "
                                             f"channels but the layer before it gives {expected}")
        if torch.unique(in_vids).numel() != in_vids.numel():
            raise _Fail("it reads the same neurons twice (e.g. torch.cat([x, x])); the graph would have "
                        "duplicate edges")
        out_vids = self.alloc(len(self.records) + 1, lc.out_channels)
        prefix = f"{target}." if target else ""
        bias = prefix + lc.bias if lc.bias else None
        self.records.append((target, prefix + lc.weight, bias, in_vids, out_vids, tuple(lc.kernel)))
        self.covered.update({prefix + lc.weight} | ({bias} if bias else set()))
        self.covered.update(prefix + p for p in lc.extra_params)
        return _Feat(out_vids, ConvertContext(path=target, channels=lc.out_channels, rank=lc.out_rank))

    def norm_module(self, target: str, m: nn.Module, x: _Feat) -> _Feat:
        self.mark_called(target, m)
        name = type(m).__name__
        prefix = f"{target}." if target else ""
        if isinstance(m, nn.LayerNorm):
            shape = tuple(m.normalized_shape)
            if m.weight is None and getattr(m, "bias", None) is None:
                self.constrain(x, S.NONE, f"{name} at '{target}' (mixes features)")
                return _Feat(x.nodes, copy.copy(x.ctx), x.pending)
            if len(shape) != 1 or x.flat or x.ctx.rank not in (None, 0):
                raise _Fail("only LayerNorm over the features of a vector ([B, C], normalized_shape=(C,)) keeps "
                            "one parameter per neuron; use elementwise_affine=False or GroupNorm(1, C) for maps")
            kind, count = NormKind.LAYER, shape[0]
        elif isinstance(m, nn.GroupNorm):
            kind, count = NormKind.GROUP, m.num_channels
        elif isinstance(m, nn.modules.instancenorm._InstanceNorm):
            kind, count = NormKind.INSTANCE, m.num_features
        else:
            kind, count = NormKind.BATCH, m.num_features
        if x.flat:
            raise _Fail(f"it normalises a flattened map ({x.ctx.flat_channels} channels × positions); its "
                        "parameters are not one per neuron")
        vids = self.nodes(x, count)
        if vids.numel() != count:
            raise UnsupportedModuleError(target, name, f"it expects {count} channels but gets {vids.numel()}")
        if torch.unique(vids).numel() != count:
            raise _Fail("it normalises the same neuron twice")
        for v in vids.tolist():
            if self.vnorm[v] is not None:
                raise _Fail(f"its neurons already carry the norm '{self.vnorm[v]}'; one neuron carries one norm "
                            "(the graph's 'norm' field)")
            self.vnorm[v] = target
        names = []
        for attr in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(m, attr, None)
            names.append(prefix + attr if t is not None else None)
            if attr in ("weight", "bias") and t is not None:
                self.covered.add(prefix + attr)
        tracked = prefix + "num_batches_tracked" if getattr(m, "num_batches_tracked", None) is not None else None
        self.norms.append((target, kind, tuple(names), vids, tracked))
        self.constrain(x, S.NONE, f"{name} at '{target}'")
        if isinstance(m, nn.GroupNorm) and 1 < m.num_groups < count:
            size = count // m.num_groups
            self.cut(vids, list(range(size, count, size)))
        return _Feat(x.nodes, copy.copy(x.ctx), x.pending)

    # ---------------------------------------------------------------- elementwise and structural ops
    def unary(self, x: _Feat, sym: Symmetry, why: str, spatial: Any = "keep") -> _Feat:
        self.constrain(x, sym, why)
        out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
        if spatial != "keep":
            out.ctx.spatial = spatial
        return out

    def call_function(self, fn: Any, args: tuple, kwargs: dict) -> Any:
        name = getattr(fn, "__name__", str(fn))
        feats = [a for a in _flatten_values((args, kwargs)) if isinstance(a, _Feat)]
        if fn is getattr:
            obj, attr = args[0], args[1]
            if isinstance(obj, _Feat):
                if attr == "shape":
                    return self.shape_of(obj)
                if attr in ("dtype", "device", "is_cuda", "ndim"):
                    return _OPAQUE if attr != "ndim" else self.ndim(obj)
                raise _Fail(f"attribute '{attr}' of a feature tensor is not supported")
            return _Const(getattr(obj.value, attr)) if isinstance(obj, _Const) else _OPAQUE
        if fn is operator.getitem:
            return self.getitem(args[0], args[1])
        if not feats:
            return self.evaluate(fn, args, kwargs)
        x = args[0] if args else None
        if fn in _ADD or fn in _MUL or fn in _DIV or fn in (operator.pow, torch.pow):
            return self.binary(fn, args[0], args[1] if len(args) > 1 else kwargs.get("other"), kwargs)
        if fn in _CAT:
            tensors = args[0] if args else kwargs["tensors"]
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            return self.cat(list(tensors), dim)
        if fn is torch.flatten:
            return self.flatten(x, _arg(args, kwargs, 1, "start_dim", 0), _arg(args, kwargs, 2, "end_dim", -1))
        if fn in (torch.reshape,):
            return self.reshape(x, args[1] if len(args) > 1 else kwargs["shape"])
        if fn in (torch.chunk, torch.split, torch.tensor_split):
            return self.split(fn.__name__, x, args[1:], kwargs)
        if fn in (torch.squeeze, torch.unsqueeze):
            return self.squeeze(fn.__name__, x, _arg(args, kwargs, 1, "dim", None))
        if fn in (torch.mean, torch.sum, torch.amax, torch.max) and len(args) + len(kwargs) > 1:
            return self.reduce(fn.__name__, x, args[1:], kwargs)
        if fn in _POOL_FUNCS:
            sym, mod = _POOL_FUNCS[fn]
            out = self.unary(x, sym, f"{name}")
            if mod is None:
                out.ctx.spatial = None
            else:
                size = _arg(args, kwargs, 1, "output_size", None)
                core_rule = _lookup(_OPS, mod(size))
                core_rule.effect(mod(size), out.ctx)
            return out
        if fn in (F.softmax, F.log_softmax, F.softmin, torch.softmax, torch.log_softmax, F.normalize):
            return self.unary(x, S.NONE, f"{name} (mixes features)")
        if fn is F.layer_norm or fn is F.group_norm:
            if any(isinstance(a, _Const) and torch.is_tensor(a.value) for a in _flatten_values((args[2:], kwargs))):
                raise _Fail(f"{name} with affine parameters: use the nn module so the graph carries them")
            out = self.unary(x, S.NONE, f"{name}")
            if fn is F.group_norm:
                groups, vids = _arg(args, kwargs, 1, "num_groups", 1), self.nodes(x)
                if 1 < groups < vids.numel():
                    size = vids.numel() // groups
                    self.cut(vids, list(range(size, vids.numel(), size)))
            return out
        if fn is F.pad:
            return self.pad(x, args[1:], kwargs)
        if fn is F.interpolate:
            return self.unary(x, S.SCALE, "interpolation", spatial=None)
        if fn is F.hardtanh or fn is torch.clamp or fn is torch.clip:
            lo, hi = ((_arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0))
                      if fn is F.hardtanh else (_arg(args, kwargs, 1, "min", None), _arg(args, kwargs, 2, "max", None)))
            return self.unary(x, _clamp_symmetry(lo, hi), f"{name}({lo}, {hi})")
        if fn is F.prelu:
            w = args[1] if len(args) > 1 else kwargs.get("weight")
            if not (isinstance(w, _Const) and torch.is_tensor(w.value) and w.value.numel() == 1):
                raise _Fail("prelu with a per-channel slope: its parameters are not carried by the graph")
            return self.unary(x, S.POSITIVE_SCALE, "prelu")
        if fn in _UNARY_FUNCS:
            if len(feats) != 1 or feats[0] is not x:
                raise _Fail(f"{name} is applied to several feature tensors")
            return self.unary(x, _UNARY_FUNCS[fn], name)
        raise _Fail(f"the function {name} is not supported by the fx converter")

    def call_method(self, method: str, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if not isinstance(x, _Feat):
            if any(isinstance(a, _Feat) for a in _flatten_values((args, kwargs))):
                raise _Fail(f"method '{method}' of a constant applied to a feature tensor")
            return self.evaluate(lambda obj, *a, **k: getattr(obj, method)(*a, **k), args, kwargs)
        rest = args[1:]
        if method in _ADD_M | _MUL_M | _DIV_M or method == "pow":
            fn = {**{m: torch.add for m in _ADD_M if "sub" not in m}, **{m: torch.sub for m in _ADD_M if "sub" in m},
                  **{m: torch.mul for m in _MUL_M}, **{m: torch.div for m in _DIV_M}, "pow": torch.pow}[method]
            return self.binary(fn, x, rest[0] if rest else kwargs.get("other", kwargs.get("exponent")), kwargs)
        if method == "size":
            shape = self.shape_of(x)
            d = rest[0] if rest else kwargs.get("dim")
            return shape if d is None else self.getitem(shape, d)
        if method == "dim":
            return self.ndim(x)
        if method in ("view", "reshape"):
            shape = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list, _Shape)) else rest
            return self.reshape(x, shape)
        if method == "flatten":
            return self.flatten(x, _arg(rest, kwargs, 0, "start_dim", 0), _arg(rest, kwargs, 1, "end_dim", -1))
        if method in ("chunk", "split", "tensor_split"):
            return self.split(method, x, rest, kwargs)
        if method in ("squeeze", "unsqueeze"):
            return self.squeeze(method, x, _arg(rest, kwargs, 0, "dim", None))
        if method in ("mean", "sum", "amax") and (rest or "dim" in kwargs):
            return self.reduce(method, x, rest, kwargs)
        if method in ("softmax", "log_softmax"):
            return self.unary(x, S.NONE, f"{method} (mixes features)")
        if method in ("clamp", "clip", "clamp_min", "clamp_max"):
            lo = _arg(rest, kwargs, 0, "min", None) if method != "clamp_max" else None
            hi = (_arg(rest, kwargs, 1, "max", None) if method in ("clamp", "clip")
                  else (_arg(rest, kwargs, 0, "max", None) if method == "clamp_max" else None))
            return self.unary(x, _clamp_symmetry(lo, hi), f"{method}({lo}, {hi})")
        if method in _UNARY_METHODS:
            if any(isinstance(a, _Feat) for a in _flatten_values((rest, kwargs))):
                raise _Fail(f"method '{method}' with a feature tensor argument")
            return self.unary(x, _UNARY_METHODS[method], method)
        raise _Fail(f"the tensor method '{method}' is not supported by the fx converter")

    def evaluate(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        """An op on constants only: computed now when every input is known, else opaque."""
        known = True

        def unwrap(v):
            nonlocal known
            if isinstance(v, _Const):
                return v.value
            if isinstance(v, (_Opaque, _Batch, _Shape)):
                known = False
            return v

        a = _map_values(args, unwrap)
        k = _map_values(kwargs, unwrap)
        if not known:
            return _OPAQUE
        try:
            return _Const(fn(*a, **k))
        except Exception:  # noqa: BLE001 - a constant we cannot compute is simply opaque
            return _OPAQUE

    def binary(self, fn: Any, a: Any, b: Any, kwargs: dict) -> Any:
        is_add = fn in _ADD
        is_mul = fn in _MUL
        is_pow = fn in (operator.pow, torch.pow)
        name = getattr(fn, "__name__", str(fn))
        if isinstance(a, _Feat) and isinstance(b, _Feat):
            if is_pow:
                raise _Fail("a power with a feature-valued exponent")
            return self.feat_feat(a, b, tie_only=is_add, why=name)
        x, c, feat_first = (a, b, True) if isinstance(a, _Feat) else (b, a, False)
        if isinstance(c, (int, float, bool)) or torch.is_tensor(c):
            c = _Const(c)
        if is_pow:
            if not feat_first or not isinstance(c, _Const) or not isinstance(c.value, (int, float)):
                raise _Fail("only powers x ** k with a constant number k are supported")
            k = c.value
            sym = S.SCALE if k == 1 else (S.SIGN if float(k).is_integer() and int(k) % 2 == 1 else S.NONE)
            return self.unary(x, sym, f"x ** {k}")
        if isinstance(c, (_Batch, _Opaque)) or c is None:
            uniform = True
        elif isinstance(c, _Const):
            uniform = self.channel_uniform(x, c.value)
        else:
            raise _Fail(f"{name} of a feature tensor and {type(c).__name__}")
        if not uniform:
            return self.unary(x, S.FIXED, f"{name} with a per-channel constant (the graph does not carry it)")
        if is_add:
            return self.unary(x, S.NONE, f"{name} with a constant (not homogeneous)")
        if fn in _DIV and not feat_first:
            return self.unary(x, S.NONE, "a constant divided by a feature")
        return self.unary(x, S.SCALE, f"{name} by a constant")

    def channel_uniform(self, x: _Feat, value: Any) -> bool:
        """True if a constant acts the same on every channel of ``x`` (so permuting channels commutes)."""
        if not torch.is_tensor(value):
            return isinstance(value, (int, float, bool))
        if value.numel() == 1:
            return True
        if x.flat or x.ctx.rank is None:
            return False
        r = x.ctx.rank
        if value.dim() > r + 2:
            raise _Fail(f"a constant of shape {tuple(value.shape)} broadcasts a feature tensor to more dimensions")
        return value.dim() < r + 1 or value.shape[-(r + 1)] == 1

    def feat_feat(self, a: _Feat, b: _Feat, tie_only: bool, why: str) -> _Feat:
        if a.flat != b.flat or (a.ctx.rank is not None and b.ctx.rank is not None and a.ctx.rank != b.ctx.rank):
            raise _Fail(f"{why} of feature tensors of different layouts")
        if a.nodes is None and b.nodes is None:
            if not tie_only:
                self.constrain(a, S.NONE, why)
            return _Feat(None, copy.copy(a.ctx), True)
        if a.nodes is None:
            vb = self.nodes(b)
            va = self.nodes(a, vb.numel() if self.input_nodes is None else None)
        else:
            va = self.nodes(a)
            vb = self.nodes(b, va.numel() if b.nodes is None and self.input_nodes is None else None)
        base = a if a.ctx.spatial is not None or b.ctx.spatial is None else b
        ctx = copy.copy(base.ctx)
        if va.numel() != vb.numel():
            if 1 not in (va.numel(), vb.numel()):
                raise _Fail(f"{why} of feature tensors with {va.numel()} and {vb.numel()} channels")
            self.constrain(a, S.FIXED, f"{why} broadcast over channels")
            self.constrain(b, S.FIXED, f"{why} broadcast over channels")
            wide = a if va.numel() > vb.numel() else b
            return _Feat(self.nodes(wide), copy.copy(wide.ctx))
        rep = self.tie(va, vb)
        if not tie_only:
            self.constrain(_Feat(rep, ctx), S.NONE, f"{why} of two feature tensors")
        if ctx.channels is not None:
            ctx.channels = rep.numel()
        return _Feat(rep, ctx)

    def cat(self, tensors: list, dim: int) -> _Feat:
        feats = [t for t in tensors if isinstance(t, _Feat)]
        if len(feats) != len(tensors):
            raise _Fail("torch.cat of feature tensors with constants")
        ranks = {f.ctx.rank for f in feats}
        if len(ranks) != 1 or None in ranks:
            raise _Fail("torch.cat of tensors whose layouts differ or are unknown")
        rank = ranks.pop()
        d = _norm_dim(dim, rank)
        if any(f.flat for f in feats):
            raise _Fail("torch.cat of flattened spatial maps (flatten after concatenating instead)")
        vids = [self.nodes(f) for f in feats]
        if d == 1:
            spatial = {f.ctx.spatial for f in feats}
            ctx = ConvertContext(channels=sum(v.numel() for v in vids), rank=rank,
                                 spatial=spatial.pop() if len(spatial) == 1 else None)
            return _Feat(torch.cat(vids), ctx)
        rep = vids[0]
        for v in vids[1:]:
            if v.numel() != rep.numel():
                raise _Fail(f"torch.cat along dim {dim} of tensors with different channel counts")
            rep = self.tie(rep, v)
        ctx = copy.copy(feats[0].ctx)
        ctx.spatial = None
        return _Feat(rep, ctx)

    def shape_of(self, x: _Feat) -> _Shape:
        c = x.nodes.numel() if x.nodes is not None and not x.flat else None
        rank = x.ctx.rank or 0
        spatial = x.ctx.spatial or (None,) * rank
        return _Shape((_BATCH, c if c is not None else _OPAQUE, *[s if s is not None else _OPAQUE for s in spatial]))

    def ndim(self, x: _Feat) -> Any:
        return _Const(2 + x.ctx.rank) if x.ctx.rank is not None else _OPAQUE

    def getitem(self, obj: Any, idx: Any) -> Any:
        if isinstance(obj, _Shape):
            if isinstance(idx, _Const):
                idx = idx.value
            if isinstance(idx, int) and -len(obj.dims) <= idx < len(obj.dims):
                v = obj.dims[idx]
                return _Const(v) if isinstance(v, int) else v
            return _OPAQUE
        if isinstance(obj, (tuple, list)):
            return obj[idx.value if isinstance(idx, _Const) else idx]
        if isinstance(obj, _Const):
            return self.evaluate(operator.getitem, (obj, idx), {})
        if not isinstance(obj, _Feat):
            raise _Fail(f"indexing {type(obj).__name__}")
        idx = idx if isinstance(idx, tuple) else (idx,)
        if any(i is Ellipsis for i in idx):
            k = idx.index(Ellipsis)
            if obj.ctx.rank is None:
                raise _Fail("indexing with ... before the layout is known")
            fill = 2 + obj.ctx.rank - (len(idx) - 1)
            idx = idx[:k] + (slice(None),) * fill + idx[k + 1:]
        if any(not isinstance(i, slice) for i in idx):
            raise _Fail("only slicing (x[:, a:b], x[..., a:b]) of feature tensors is supported, not integer or "
                        "tensor indexing")
        if idx[0] != slice(None):
            raise _Fail("slicing the batch dimension")
        out = _Feat(obj.nodes, copy.copy(obj.ctx), obj.pending)
        if len(idx) > 1 and idx[1] != slice(None):
            if obj.flat:
                raise _Fail("slicing a flattened spatial map")
            sl = idx[1]
            if sl.step not in (None, 1):
                raise _Fail("a channel slice with a step")
            vids = self.nodes(obj)
            start, stop, _ = sl.indices(vids.numel())
            self.cut(vids, [start, stop])
            out.nodes = vids[start:stop]
            out.ctx.channels = out.nodes.numel()
        if any(i != slice(None) for i in idx[2:]):
            out.ctx.spatial = None
        return out

    def flatten(self, x: _Feat, start: Any, end: Any) -> _Feat:
        start, end = _value(start), _value(end)
        if end not in (-1, None) and not (x.ctx.rank is not None and end == x.ctx.rank + 1):
            raise _Fail("flatten must run to the last dimension")
        out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
        if start == 1:
            rule = _lookup(_OPS, nn.Flatten())
            rule.effect(nn.Flatten(), out.ctx)
            return out
        if start >= 2 and x.ctx.rank is not None and not x.flat:
            out.ctx.rank, out.ctx.spatial = start - 1, None
            return out
        raise _Fail(f"flatten(start_dim={start}) mixes the batch or an unknown layout")

    def reshape(self, x: _Feat, shape: Any) -> _Feat:
        dims = list(shape.dims if isinstance(shape, _Shape) else shape)
        dims = [_value(d) if isinstance(d, _Const) else d for d in dims]
        if len(dims) == 2 and (dims[0] is _BATCH or (dims[0] == -1 and isinstance(dims[1], int) and dims[1] > 0)) \
                and (dims[1] == -1 or isinstance(dims[1], int)):
            return self.flatten(x, 1, -1)
        c = x.nodes.numel() if x.nodes is not None else None
        if len(dims) >= 2 and dims[0] in (_BATCH, -1) and not x.flat and c is not None and dims[1] == c:
            out = _Feat(x.nodes, copy.copy(x.ctx))
            out.ctx.rank, out.ctx.spatial = len(dims) - 2, None
            return out
        raise _Fail("only reshapes that flatten per sample (x.view(x.size(0), -1)) or keep the channels "
                    "(x.view(B, C, -1)) are supported")

    def split(self, name: str, x: _Feat, rest: tuple, kwargs: dict) -> tuple:
        arg = _value(rest[0] if rest else kwargs.get("chunks", kwargs.get("split_size_or_sections",
                                                                          kwargs.get("split_size"))))
        dim = _value(_arg(rest, kwargs, 1, "dim", 0))
        if x.flat or x.ctx.rank is None:
            raise _Fail(f"{name} of a tensor of unknown or flattened layout")
        d = _norm_dim(dim, x.ctx.rank)
        if d != 1:
            if d == 0:
                raise _Fail(f"{name} along the batch dimension")
            n = arg if name == "chunk" else None
            if n is None:
                raise _Fail(f"{name} along a spatial dimension with sizes; use chunk")
            return tuple(self.unary(x, S.SCALE, name, spatial=None) for _ in range(n))
        vids = self.nodes(x)
        c = vids.numel()
        if name == "chunk":
            size = -(-c // arg)
            bounds = list(range(0, c, size)) + [c]
        elif isinstance(arg, int):
            bounds = list(range(0, c, arg)) + [c]
        else:
            bounds = [0] + [int(s) for s in torch.tensor(list(arg)).cumsum(0).tolist()]
        self.cut(vids, bounds)
        outs = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            ctx = copy.copy(x.ctx)
            ctx.channels = hi - lo
            outs.append(_Feat(vids[lo:hi], ctx))
        return tuple(outs)

    def squeeze(self, name: str, x: _Feat, dim: Any) -> _Feat:
        dim = _value(dim)
        if dim is None or x.ctx.rank is None:
            raise _Fail(f"{name} without a dim, or before the layout is known")
        out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
        if x.flat:
            raise _Fail(f"{name} of a flattened map")
        if name == "squeeze":
            d = _norm_dim(dim, x.ctx.rank)
            if d < 2:
                if x.nodes is not None and x.nodes.numel() == 1 and d == 1 and x.ctx.rank == 0:
                    return out  # [B, 1] -> [B]: the single output channel stays
                raise _Fail("squeezing the batch or channel dimension")
            sp = x.ctx.spatial
            if sp is not None and sp[d - 2] != 1:
                return out
            out.ctx.rank -= 1
            out.ctx.spatial = None if sp is None else sp[:d - 2] + sp[d - 1:]
            return out
        d = dim if dim >= 0 else dim + x.ctx.rank + 3
        if d < 2:
            raise _Fail("unsqueezing before the channel dimension")
        out.ctx.rank += 1
        out.ctx.spatial = None if x.ctx.spatial is None else x.ctx.spatial[:d - 2] + (1,) + x.ctx.spatial[d - 2:]
        return out

    def reduce(self, name: str, x: _Feat, rest: tuple, kwargs: dict) -> _Feat:
        dim = _value(_arg(rest, kwargs, 0, "dim", None))
        keep = bool(_value(_arg(rest, kwargs, 1, "keepdim", False)))
        if name == "max":
            raise _Fail("torch.max with a dim returns indices; use amax")
        if x.flat or x.ctx.rank is None or dim is None:
            raise _Fail(f"{name} over an unknown layout")
        dims = {_norm_dim(d, x.ctx.rank) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        if min(dims) < 2:
            raise _Fail(f"{name} over the batch or channel dimension mixes neurons")
        sym = S.POSITIVE_SCALE if name == "amax" else S.SCALE
        out = self.unary(x, sym, name)
        if keep:
            sp = x.ctx.spatial or (None,) * x.ctx.rank
            out.ctx.spatial = tuple(1 if i + 2 in dims else s for i, s in enumerate(sp))
            if None in out.ctx.spatial:
                out.ctx.spatial = None
        else:
            out.ctx.rank = x.ctx.rank - len(dims)
            out.ctx.spatial = None
        return out

    def pad(self, x: _Feat, rest: tuple, kwargs: dict) -> _Feat:
        pads = _value(_arg(rest, kwargs, 0, "pad", ()))
        mode = _value(_arg(rest, kwargs, 1, "mode", "constant"))
        value = _value(_arg(rest, kwargs, 2, "value", None))
        if x.ctx.rank is None or x.flat or len(pads) > 2 * x.ctx.rank:
            raise _Fail("padding beyond the spatial dimensions")
        sym = S.NONE if mode == "constant" and value not in (None, 0, 0.0) else S.SCALE
        return self.unary(x, sym, f"pad({mode}, {value})", spatial=None)

    # ---------------------------------------------------------------- assembling the spec
    def finish(self) -> FxGraphSpec:
        if not self.records:
            raise UnsupportedModuleError("", type(self.root).__name__, "it has no parametric layer (Linear/Conv)")
        missing = [n for n, _ in self.root.named_parameters() if n not in self.covered]
        if missing:
            owner = missing[0].rsplit(".", 1)[0] if "." in missing[0] else ""
            mod = self.root.get_submodule(owner) if owner else self.root
            raise UnsupportedModuleError(owner, type(mod).__name__, f"parameters {missing} are not used by any "
                                         "layer the converter reads (unused modules cannot be converted)")
        n = len(self.vlayer)
        vlayer = torch.tensor(self.vlayer)
        final = torch.empty(n, dtype=torch.long)
        final[torch.argsort(vlayer, stable=True)] = torch.arange(n)
        seg_start = torch.zeros(n + 1, dtype=torch.bool)
        seg_start[self.group_start] = True
        seg_start[n] = True
        if self.cuts:
            seg_start[list(self.cuts)] = True
        while True:  # refine: tied lists must be cut at the same channel positions
            changed = False
            for a, b in self.ties:
                bd = _run_starts(a, seg_start) | _run_starts(b, seg_start)
                for v in (a, b):
                    if not bool(seg_start[v[bd]].all()):
                        seg_start[v[bd]] = True
                        changed = True
            if not changed:
                break
        seg_of = torch.cumsum(seg_start[:n].long(), 0) - 1
        starts = seg_start[:n].nonzero().flatten()
        offset = torch.arange(n) - starts[seg_of]
        nseg = int(starts.numel())
        parent = list(range(nseg))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in self.ties:
            bd = _run_starts(a, seg_start)
            for sa, sb in zip(seg_of[a[bd]].tolist(), seg_of[b[bd]].tolist()):
                ra, rb = find(sa), find(sb)
                if ra != rb:
                    parent[ra] = rb
        comp = torch.tensor([find(s) for s in range(nseg)], dtype=torch.long)[seg_of]
        sym_v = torch.tensor([int(s) for s in self.vsym], dtype=torch.long)
        fixed_v = torch.tensor(self.vfixed, dtype=torch.bool)
        for a, b in self.ties:  # safety net: a tie that does not align position by position fixes its neurons
            bad = (offset[a] != offset[b]) | (comp[a] != comp[b])
            if bool(bad.any()):
                fixed_v[a[bad]] = True
                fixed_v[b[bad]] = True
        # per component: meet of the members' symmetries, fixed if any member is
        comp_sym: dict[int, Symmetry] = {}
        comp_fixed: dict[int, bool] = {}
        for c, s, f in zip(comp.tolist(), sym_v.tolist(), fixed_v.tolist()):
            comp_sym[c] = meet(comp_sym.get(c, S.SCALE), Symmetry(s))
            comp_fixed[c] = comp_fixed.get(c, False) or f or s == S.FIXED
        role_v = torch.full((n,), int(Role.HIDDEN), dtype=torch.long)
        role_v[vlayer == 0] = int(Role.INPUT)
        if self.outputs:
            out_v = torch.unique(torch.cat(self.outputs))
            key = comp * (n + 1) + offset
            is_out = torch.isin(key, key[out_v]) & (vlayer > 0)
            role_v[is_out] = int(Role.OUTPUT)
        # number the free components by their first node id (the Sequential walker's block order)
        free = [c for c in comp_sym if not comp_fixed[c]]
        first = {c: int(final[comp == c].min()) for c in free}
        block_id = {c: i for i, c in enumerate(sorted(free, key=first.get))}
        block_v = torch.tensor([block_id.get(c, -1) for c in comp.tolist()], dtype=torch.long)
        pos_v = torch.where(block_v >= 0, offset, torch.full_like(offset, -1))
        symf_v = torch.tensor([int(comp_sym[c]) if not comp_fixed[c] else int(S.FIXED) for c in comp.tolist()],
                              dtype=torch.long)
        notes: dict[int, list[str]] = {}
        for vids, sym, why in self.events:
            for c in sorted(set(comp[vids].tolist())):
                if c in block_id and sym != S.SCALE:
                    notes.setdefault(block_id[c], [])
                    line = f"{why} → {sym.label}"
                    if line not in notes[block_id[c]]:
                        notes[block_id[c]].append(line)

        def to_final(t: Tensor) -> Tensor:
            out = torch.empty_like(t)
            out[final] = t
            return out

        layers = [LayerRecord(path, w, b, final[i], final[o], k) for path, w, b, i, o, k in self.records]
        params: list[tuple[str, tuple[int, ...]]] = []
        for rec in layers:
            params.append((rec.weight, (rec.n_out, rec.n_in, *rec.kernel)))
            if rec.bias is not None:
                params.append((rec.bias, (rec.n_out,)))
        norms = []
        for path, kind, names, vids, tracked in self.norms:
            norms.append(NormRecord(path, kind, names, final[vids], tracked))
            params += [(nm, (vids.numel(),)) for nm in names if nm is not None]
        return FxGraphSpec(layer=to_final(vlayer), role=to_final(role_v), sym=to_final(symf_v),
                           block=to_final(block_v), pos=to_final(pos_v), layers=layers, params=params,
                           norms=norms, notes=notes)


# ------------------------------------------------------------------------------------------ helpers
def _run_starts(vids: Tensor, seg_start: Tensor) -> Tensor:
    """[len] True where a channel list starts a new run (first entry, a segment start, or a jump)."""
    out = seg_start[vids].clone()
    if vids.numel():
        out[0] = True
        out[1:] |= vids[1:] != vids[:-1] + 1
    return out


def _norm_dim(dim: Any, rank: int | None) -> int:
    dim = _value(dim)
    if not isinstance(dim, int):
        raise _Fail(f"a dimension given as {type(dim).__name__}")
    if dim >= 0:
        return dim
    if rank is None:
        raise _Fail("a negative dimension before the layout is known")
    return dim + rank + 2


def _value(v: Any) -> Any:
    return v.value if isinstance(v, _Const) else v


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _clamp_symmetry(lo: Any, hi: Any) -> Symmetry:
    lo, hi = _value(lo), _value(hi)
    if not all(v is None or isinstance(v, (int, float)) for v in (lo, hi)):
        return S.NONE
    if hi is None and lo == 0:
        return S.POSITIVE_SCALE
    if lo is not None and hi is not None and lo == -hi:
        return S.SIGN
    return S.NONE


def _flatten_values(v: Any) -> list:
    if isinstance(v, (tuple, list)):
        return [y for x in v for y in _flatten_values(x)]
    if isinstance(v, dict):
        return [y for x in v.values() for y in _flatten_values(x)]
    if isinstance(v, slice):
        return _flatten_values((v.start, v.stop, v.step))
    return [v]


def _map_values(v: Any, fn: Callable) -> Any:
    if isinstance(v, tuple):
        return tuple(_map_values(x, fn) for x in v)
    if isinstance(v, list):
        return [_map_values(x, fn) for x in v]
    if isinstance(v, dict):
        return {k: _map_values(x, fn) for k, x in v.items()}
    if isinstance(v, slice):
        return slice(*(_map_values((v.start, v.stop, v.step), fn)))
    return fn(v)


# ------------------------------------------------------------------------------------------ public API
def fx_graph_spec(module: nn.Module) -> FxGraphSpec:
    """The :class:`FxGraphSpec` of any traceable module, symmetries derived from its dataflow.

    Raises:
        UnsupportedModuleError: naming the untraceable module, or the module and fx op the converter cannot
            read (an unknown function, a per-neuron parameter used outside a layer, a shared layer, ...).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"fx_graph_spec takes an nn.Module, not {type(module).__name__}")
    gm = _trace(module)
    interp = _Interpreter(module, gm)
    interp.run()
    return interp.finish()


def fx_to_graph(module: nn.Module) -> ParameterGraph:
    """``to_graph(module, method="fx")``: the parameter graph through torch.fx tracing."""
    return fx_graph_spec(module).module_graph(module)


register_spec_builder(fx_graph_spec, name="fx")
