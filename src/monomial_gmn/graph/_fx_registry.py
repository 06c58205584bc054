"""The fx interpreter's op handlers, registered by the fx target they read.

Three tables, one per kind of fx call node:

* functions (``call_function``), keyed by the function object (``torch.cat``, ``operator.add``, ``F.relu``);
* tensor methods (``call_method``), keyed by the method name (``"view"``, ``"relu"``);
* modules (``call_module``), keyed by the module type; subclasses match too, as for
  :func:`~monomial_gmn.register_converter`. Converters and :func:`~monomial_gmn.register_op` rules are
  separate, package-wide registries: a converter is tried before this table, a registered op after it.

A handler is a plain function:

* function and method handlers: ``handler(it, target, args, kwargs) -> value``, ``it`` being the
  interpreter, ``target`` the function or method name, ``args``/``kwargs`` the node's arguments already
  replaced by abstract values (``_Feat``, ``_Const``, ...; for a method ``args[0]`` is the tensor it is called
  on). It is called only when a feature tensor is among the arguments (for a method: when it is called on
  one) unless registered with ``constants=True``; other ops on constants are evaluated by the interpreter.
* module handlers: ``handler(it, target, module, x) -> value``, ``target`` the module path and ``x`` the
  feature tensor the module is applied to.

A handler returns the abstract value of the node, raises ``_Fail`` with a reason for an op it cannot read,
or returns ``NotImplemented`` to decline, which gives the same "not supported" error as an unregistered op.
It reads the interpreter's state through its methods (``nodes``, ``constrain``, ``tie``, ``cut``, ``alloc``,
``unary``, ``mark_called``) and its ``records``/``norms``/``covered`` lists.

Registering a handler is how a new op is taught to the fx converter::

    @register_fx_function(torch.cumsum)
    def _cumsum(it, fn, args, kwargs):
        return it.unary(args[0], Symmetry.SCALE, "cumsum")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ._convert_registry import _lookup

__all__ = ["register_fx_function", "register_fx_method", "register_fx_module", "fx_handler"]


@dataclass(frozen=True)
class _Handler:
    """A function or method handler and whether it also runs when no argument is a feature tensor."""

    fn: Callable
    constants: bool = False


_FX_FUNCTIONS: dict[Any, _Handler] = {}
_FX_METHODS: dict[str, _Handler] = {}
_FX_MODULES: dict[type, Callable] = {}


def register_fx_function(*targets: Any, constants: bool = False) -> Callable:
    """Decorator: register ``handler(it, fn, args, kwargs)`` for the functions ``targets``.

    ``constants=True`` also sends it calls whose arguments are all constants (``getattr``, indexing).
    """

    def deco(fn: Callable) -> Callable:
        for t in targets:
            _FX_FUNCTIONS[t] = _Handler(fn, constants)
        return fn

    return deco


def register_fx_method(*names: str) -> Callable:
    """Decorator: register ``handler(it, method, args, kwargs)`` for the tensor methods ``names``."""

    def deco(fn: Callable) -> Callable:
        for n in names:
            _FX_METHODS[n] = _Handler(fn)
        return fn

    return deco


def register_fx_module(*module_types: type) -> Callable:
    """Decorator: register ``handler(it, target, module, x)`` for ``module_types`` and their subclasses."""

    def deco(fn: Callable) -> Callable:
        for t in module_types:
            _FX_MODULES[t] = fn
        return fn

    return deco


def fx_handler(op: str, target: Any) -> Callable | None:
    """The handler registered for an fx node ``(op, target)``; for ``call_module`` pass the module itself.

    Returns None if there is none (converters and registered ops are looked up by the interpreter).
    """
    if op == "call_module":
        return _lookup(_FX_MODULES, target) if isinstance(target, nn.Module) else None
    table = _FX_FUNCTIONS if op == "call_function" else _FX_METHODS if op == "call_method" else None
    if table is None:
        return None
    try:
        entry = table.get(target)
    except TypeError:  # an unhashable target has no handler
        return None
    return entry.fn if entry is not None else None
