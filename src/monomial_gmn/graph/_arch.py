"""Architectures as JSON-able values (layer lists) that build ``nn.Sequential`` templates (zoos store them).

An :class:`Architecture` is what a zoo stores once per architecture group: its layers (type + options),
the input shape and a name. Every network of the group is a flat parameter vector in the
:class:`~monomial_gmn.GraphSpec` order of the template (``arch.spec.params``).

Layer entries are ``[type, {options}]`` lists:

============  ====================================================================================
type          options
============  ====================================================================================
``conv2d``    ``in``, ``out``, ``kernel`` (int or [kh, kw]), ``stride`` (1), ``padding`` (int, or "tf_same"
              for TensorFlow's "same" padding: extra zero row/column at the bottom/right when odd)
``linear``    ``in``, ``out``
``relu``, ``tanh``, ``sigmoid``, ``gelu``, ``identity``, ``leaky_relu`` (``slope``)   activations
``sine``      ``w0`` (SIREN ``sin(w0 x)``, :class:`monomial_gmn.Sine`)
``gap``       global average pooling (``AdaptiveAvgPool2d(1)``)
``flatten``   ``Flatten()``
============  ====================================================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import ZooFormatError
from ._convert import graph_spec, register_op
from ._convert_builtins import _unknown_spatial
from ._modules import Sine
from ._spec import GraphSpec

__all__ = ["Architecture", "SamePad2d", "digits_cnn_architecture", "siren_architecture", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "identity", "leaky_relu", "sine")
_PARAMETRIC = ("conv2d", "linear")
_OPS = ACTIVATIONS + ("gap", "flatten")


class SamePad2d(nn.Module):
    """TensorFlow "same" zero padding for a following ``kernel``×``kernel`` convolution with ``stride``.

    TF pads ``max((ceil(H/s) - 1)·s + k - H, 0)`` rows, the odd one at the bottom (same for columns), so it
    depends on the input size; a symmetric ``padding=1`` in torch shifts the sampling grid for even inputs.
    Zero padding is linear, so the op keeps every per-channel symmetry (registered as ``"scale"``).
    """

    def __init__(self, kernel: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1):
        super().__init__()
        self.kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        self.stride = (stride, stride) if isinstance(stride, int) else tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


register_op(SamePad2d, "scale", effect=_unknown_spatial)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _activation(kind: str, opts: dict[str, Any]) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "tanh":
        return nn.Tanh()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "gelu":
        return nn.GELU()
    if kind == "identity":
        return nn.Identity()
    if kind == "leaky_relu":
        return nn.LeakyReLU(float(opts.get("slope", 0.01)))
    if kind == "sine":
        return Sine(float(opts.get("w0", 30.0)))
    raise ValueError(f"unknown activation {kind!r}; expected one of {ACTIVATIONS}")


@dataclass
class Architecture:
    """A Sequential architecture as data.

    Attributes:
        name: unique name inside a zoo, e.g. ``"cnn-gap-relu"``.
        layers: ``[[type, {options}], ...]`` (see the module docstring).
        input_shape: shape of one input without the batch dim, e.g. ``[1, 8, 8]`` or ``[2]``.
        activation: the hidden activation (metadata; the layers are authoritative).
    """

    name: str
    layers: list[list[Any]]
    input_shape: list[int] = field(default_factory=list)
    activation: str = ""

    def __post_init__(self) -> None:
        norm = []
        for i, entry in enumerate(self.layers):
            if isinstance(entry, str):
                entry = [entry, {}]
            if not isinstance(entry, (list, tuple)) or not entry or not isinstance(entry[0], str):
                raise ZooFormatError(f"architecture '{self.name}': layer {i} must be [type, {{options}}], "
                                     f"got {entry!r}")
            opts = dict(entry[1]) if len(entry) > 1 and entry[1] else {}
            if entry[0] not in _PARAMETRIC + _OPS:
                raise ZooFormatError(f"architecture '{self.name}': layer {i} has unknown type {entry[0]!r}")
            norm.append([entry[0], opts])
        self.layers = norm
        self.input_shape = [int(s) for s in self.input_shape]

    # ------------------------------------------------------------------ (de)serialisation
    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "layers": self.layers, "input_shape": self.input_shape,
                "activation": self.activation}

    @classmethod
    def from_json(cls, obj: Any, where: str = "zoo.json") -> "Architecture":
        if not isinstance(obj, dict) or "name" not in obj or not isinstance(obj.get("layers"), list):
            raise ZooFormatError(f"{where}: an architecture entry must be an object with 'name' and 'layers'")
        try:
            return cls(str(obj["name"]), obj["layers"], list(obj.get("input_shape", [])),
                       str(obj.get("activation", "")))
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, ZooFormatError):
                raise
            raise ZooFormatError(f"{where}: architecture {obj.get('name')!r} is malformed ({exc})") from None

    def key(self) -> str:
        """A canonical string: two architectures with the same key hold the same networks."""
        return json.dumps([self.layers, self.input_shape], sort_keys=True)

    # ------------------------------------------------------------------ modules and specs
    def build(self) -> nn.Sequential:
        """A fresh template module (parameters uninitialised-by-us: torch defaults)."""
        mods: list[nn.Module] = []
        for i, (kind, o) in enumerate(self.layers):
            try:
                if kind == "conv2d":
                    k, s = _pair(o.get("kernel", 3)), _pair(o.get("stride", 1))
                    pad = o.get("padding", 0)
                    if pad == "tf_same":
                        mods.append(SamePad2d(k, s))
                        pad = 0
                    mods.append(nn.Conv2d(int(o["in"]), int(o["out"]), k, stride=s,
                                          padding=_pair(pad), bias=bool(o.get("bias", True))))
                elif kind == "linear":
                    mods.append(nn.Linear(int(o["in"]), int(o["out"]), bias=bool(o.get("bias", True))))
                elif kind == "gap":
                    mods.append(nn.AdaptiveAvgPool2d(1))
                elif kind == "flatten":
                    mods.append(nn.Flatten())
                else:
                    mods.append(_activation(kind, o))
            except (KeyError, TypeError, ValueError) as exc:
                raise ZooFormatError(f"architecture '{self.name}': layer {i} ({kind}) has bad options {o} "
                                     f"({exc})") from None
        return nn.Sequential(*mods)

    @cached_property
    def template(self) -> nn.Sequential:
        return self.build()

    @cached_property
    def spec(self) -> GraphSpec:
        """The GraphSpec of the template (node metadata, flat parameter order)."""
        return graph_spec(self.template)

    @property
    def num_params(self) -> int:
        return int(self.spec.num_params)

    @cached_property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...], int]]:
        """``(name, module shape, offset)`` of each parameter in flat order."""
        mod = dict(self.template.named_parameters())
        out, off = [], 0
        for name, shape in self.spec.params:
            n = math.prod(shape)
            out.append((name, tuple(mod[name].shape), off))
            off += n
        return out

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Flat parameters [..., P] → ``{name: [..., *shape]}`` views (module shapes)."""
        lead = flat.shape[:-1]
        return {name: flat[..., off:off + math.prod(shape)].reshape(*lead, *shape)
                for name, shape, off in self.param_shapes}

    def flatten_params(self, params: dict[str, Tensor]) -> Tensor:
        """Inverse of :meth:`unflatten`: ``{name: [G, *shape]}`` → [G, P]."""
        parts = [params[name].reshape(params[name].shape[0], -1) for name, _, _ in self.param_shapes]
        return torch.cat(parts, dim=1)

    def module(self, flat: Tensor) -> nn.Sequential:
        """A new module holding the flat parameters [P]."""
        net = self.build()
        state = self.unflatten(flat.reshape(-1))
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(state[name])
        return net.eval()


def digits_cnn_architecture(activation: str = "relu", family: str = "gap", channels: int = 16,
                            in_channels: int = 1, classes: int = 10, side: int = 8) -> Architecture:
    """The digits-cnn families.

    ``gap``: the Small CNN Zoo network — 3 × [Conv2d(3×3, stride 2, padding 1), act], global average
    pooling, Flatten, Linear(channels, classes) (4,970 parameters for 16 channels).
    ``flat``: 2 × [Conv2d(3×3, stride 2, padding 1), act], Flatten over the spatial map, Linear.
    """
    conv = lambda i, o: ["conv2d", {"in": i, "out": o, "kernel": 3, "stride": 2, "padding": 1}]  # noqa: E731
    act = [activation, {}]
    if family == "gap":
        layers = [conv(in_channels, channels), act, conv(channels, channels), act, conv(channels, channels), act,
                  ["gap", {}], ["flatten", {}], ["linear", {"in": channels, "out": classes}]]
    elif family == "flat":
        s = side
        for _ in range(2):
            s = (s + 2 - 3) // 2 + 1
        layers = [conv(in_channels, channels), act, conv(channels, channels), act, ["flatten", {}],
                  ["linear", {"in": channels * s * s, "out": classes}]]
    else:
        raise ValueError(f"unknown digits-cnn family {family!r}; expected 'gap' or 'flat'")
    return Architecture(f"cnn-{family}-{activation}", layers, [in_channels, side, side], activation)


def siren_architecture(widths: tuple[int, ...] = (2, 32, 32, 1), w0: float = 30.0,
                       name: str | None = None) -> Architecture:
    """A SIREN MLP: Linear + Sine(w0) between consecutive ``widths`` (no activation after the last)."""
    layers: list[list[Any]] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(["linear", {"in": int(a), "out": int(b)}])
        if i < len(widths) - 2:
            layers.append(["sine", {"w0": float(w0)}])
    name = name or "siren-" + "-".join(str(w) for w in widths)
    return Architecture(name, layers, [int(widths[0])], "sine")
