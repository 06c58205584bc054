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

How the code is laid out: this module traces the network and walks the fx graph (:class:`_Interpreter`: the
per-neuron state, the primitives handlers use, and the dispatch of each node to a handler). The handlers are
registered by fx target in :mod:`._fx_registry` and grouped by kind of op: :mod:`._fx_layers` (parametric
layers, norm layers, registered ops), :mod:`._fx_activations` (elementwise activations, clamps, softmax),
:mod:`._fx_arith` (add/sub/mul/div/pow, residual ties, concatenation), :mod:`._fx_shape` (shape queries,
indexing, flatten/view/reshape, split, squeeze) and :mod:`._fx_pool` (pooling, reductions, padding,
resampling). :mod:`._fx_assemble` turns the recorded state into the :class:`FxGraphSpec`. A new op is taught
to the converter by registering a handler (:func:`register_fx_function`, :func:`register_fx_method`,
:func:`register_fx_module`), not by editing the interpreter.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import Tensor, fx, nn

from .._errors import UnsupportedModuleError
from . import _fx_activations, _fx_arith, _fx_pool, _fx_shape  # noqa: F401 - importing registers the handlers
from ._convert_registry import _CONVERTERS, _OPS, ConvertContext, _lookup, register_spec_builder
from ._fx_assemble import assemble
from ._fx_layers import parametric, registered_op
from ._fx_registry import _FX_FUNCTIONS, _FX_METHODS, _FX_MODULES  # the handler tables
from ._fx_registry import fx_handler, register_fx_function, register_fx_method, register_fx_module  # noqa: F401
from ._fx_spec import FxGraphSpec, NormKind
# the abstract values stay importable from here (they lived in this module before it was split)
from ._fx_values import _BATCH, _Batch, _Const, _Fail, _Feat, _feats, _flatten_values, _map_values  # noqa: F401
from ._fx_values import _OPAQUE, _Opaque, _Shape
from ._parameter_graph import ParameterGraph
from ._symmetry import Symmetry, meet

# The extension API: a new op is converted by registering a handler for it (see ._fx_registry).
__all__ = ["fx_graph_spec", "fx_to_graph", "register_fx_function", "register_fx_method", "register_fx_module",
           "fx_handler"]

S = Symmetry


# ------------------------------------------------------------------------------------------ tracing
class _Tracer(fx.Tracer):
    """Keeps registered layers/ops and torch.nn modules as leaves; remembers where tracing failed.

    A module type with an fx module handler (:func:`register_fx_module`) is a leaf too, so its handler sees it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failed_at: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if _lookup(_CONVERTERS, m) is not None or _lookup(_OPS, m) is not None:
            return True
        if _lookup(_FX_MODULES, m) is not None:
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
    """Walks the traced graph once, node by node, sending each call to the handler registered for it.

    State (read and written by the handlers through the methods below, read by :func:`assemble`): per neuron
    id (vid) its layer (``vlayer``: 0 input, l for the l-th parametric layer), the meet of the constraints on
    it (``vsym``), whether it is fixed (``vfixed``) and the norm it carries (``vnorm``); the first vid of each
    allocated group (``group_start``), the vids that start a block (``cuts``), the tied channel lists
    (``ties``), the constraint log (``events``), the parametric layers (``records``) and norms (``norms``)
    read, the parameter names they cover (``covered``), the modules called so far (``called``), the input's
    vids once known (``input_nodes``) and the vids the forward returns (``outputs``).
    """

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

    # ---------------------------------------------------------------- primitives for the handlers
    def alloc(self, layer: int, count: int) -> Tensor:
        """``count`` new neurons of layer ``layer`` (fixed if it is the input, else free with ``scale``)."""
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
        """Meet the symmetry of every neuron of ``feat`` with ``sym`` (logged with ``why`` for the notes)."""
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
        """Start a new block at each of ``positions`` (channel offsets into ``vids``)."""
        for p in positions:
            if 0 < p < vids.numel():
                self.cuts.add(int(vids[p]))

    def unary(self, x: _Feat, sym: Symmetry, why: str, spatial: Any = "keep") -> _Feat:
        """A channel-preserving op on ``x`` that commutes with ``sym``; ``spatial`` replaces the known size."""
        self.constrain(x, sym, why)
        out = _Feat(x.nodes, copy.copy(x.ctx), x.pending)
        if spatial != "keep":
            out.ctx.spatial = spatial
        return out

    def mark_called(self, target: str, m: nn.Module) -> None:
        """Record a module call; a module with parameters may be called only once (no shared weights)."""
        if target in self.called and any(True for _ in m.parameters()):
            raise _Fail("the module is called more than once; shared weights are not supported")
        self.called[target] = type(m).__name__

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


    # ---------------------------------------------------------------- dispatch to the registered handlers
    def call_module(self, target: str, args: tuple, kwargs: dict) -> Any:
        """A module call: its converter if one is registered, else its fx module handler, else its op rule."""
        m = self.root.get_submodule(target)
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, _Feat):
            raise _Fail("it is applied to something that is not a feature tensor")
        conv = _lookup(_CONVERTERS, m)
        if conv is not None:
            return parametric(self, target, m, conv, x)
        handler = _lookup(_FX_MODULES, m)
        if handler is not None:
            out = handler(self, target, m, x)
            if out is not NotImplemented:
                return out
        return registered_op(self, target, m, x)

    def call_function(self, fn: Any, args: tuple, kwargs: dict) -> Any:
        """A function call: its handler when a feature tensor is an argument, else evaluated as a constant."""
        entry = _entry(_FX_FUNCTIONS, fn)
        if entry is not None and entry.constants:
            return entry.fn(self, fn, args, kwargs)
        if not _feats((args, kwargs)):
            return self.evaluate(fn, args, kwargs)
        out = entry.fn(self, fn, args, kwargs) if entry is not None else NotImplemented
        if out is NotImplemented:
            raise _Fail(f"the function {getattr(fn, '__name__', str(fn))} is not supported by the fx converter")
        return out

    def call_method(self, method: str, args: tuple, kwargs: dict) -> Any:
        """A tensor method: its handler when called on a feature tensor, else evaluated as a constant."""
        x = args[0]
        if not isinstance(x, _Feat):
            if _feats((args, kwargs)):
                raise _Fail(f"method '{method}' of a constant applied to a feature tensor")
            return self.evaluate(lambda obj, *a, **k: getattr(obj, method)(*a, **k), args, kwargs)
        entry = _entry(_FX_METHODS, method)
        out = entry.fn(self, method, args, kwargs) if entry is not None else NotImplemented
        if out is NotImplemented:
            raise _Fail(f"the tensor method '{method}' is not supported by the fx converter")
        return out

    # ---------------------------------------------------------------- assembling the spec
    def finish(self) -> FxGraphSpec:
        return assemble(self)


def _entry(table: dict, target: Any):
    try:
        return table.get(target)
    except TypeError:  # an unhashable target has no handler
        return None


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
