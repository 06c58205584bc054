"""The benchmark's fixed network shapes and their synthetic zoos (vectorised, seeded).

Two shapes stand for the two standard zoos:

* ``"cnn"`` — the Small CNN Zoo network (Unterthiner et al. 2020): three 3×3 stride-2 convolutions with 16
  channels and ReLU, global average pooling, a dense layer to 10 classes. 4,970 parameters; its parameter
  graph has 59 nodes and 688 edges with 3×3 (9-vector) kernels.
* ``"siren"`` — the INR zoo network: SIREN 2→32→32→1 with ``Sine(w0=30)``. 1,185 parameters; 67 nodes and
  1,120 edges with 1×1 kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..graph import GraphSpec, Sine, graph_spec

__all__ = ["BenchShape", "SHAPES", "cnn_zoo_net", "siren_net", "synthetic_zoo"]


def cnn_zoo_net() -> nn.Sequential:
    """The Small CNN Zoo architecture (ReLU variant), PyTorch layout."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


def siren_net() -> nn.Sequential:
    """The SIREN INR architecture 2→32→32→1 with sine activations (w0 = 30)."""
    return nn.Sequential(nn.Linear(2, 32), Sine(), nn.Linear(32, 32), Sine(), nn.Linear(32, 1))


@dataclass(frozen=True)
class BenchShape:
    """One benchmark shape: how to build the network, and the task head the models get.

    Attributes:
        name: ``"cnn"`` or ``"siren"``.
        build: factory of the network architecture.
        out_dim: model output size (1: regression of test accuracy; 10: classification of the INR's class).
        task: ``"regression"`` (MSE) or ``"classification"`` (cross-entropy).
    """

    name: str
    build: Callable[[], nn.Module]
    out_dim: int
    task: str

    def spec(self) -> GraphSpec:
        return graph_spec(self.build())


SHAPES: dict[str, BenchShape] = {
    "cnn": BenchShape("cnn", cnn_zoo_net, 1, "regression"),
    "siren": BenchShape("siren", siren_net, 10, "classification"),
}


def synthetic_zoo(spec: GraphSpec, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` random networks of one architecture as flat parameters [n, P] (``spec.params`` order).

    Every weight block is drawn as PyTorch's default initialisation draws it, U(−1/√fan_in, 1/√fan_in) with
    fan_in = n_in · kernel size; a layer's bias uses the same bound. One draw per block for the whole zoo.
    """
    if n < 1:
        raise ValueError(f"synthetic_zoo: n must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(seed)
    flat = torch.empty(n, spec.num_params, dtype=dtype)
    bounds: dict[str, float] = {}
    for rec in spec.layers:
        fan_in = rec.n_in * rec.kernel_numel
        bounds[rec.weight] = 1.0 / math.sqrt(max(fan_in, 1))
        if rec.bias is not None:
            bounds[rec.bias] = bounds[rec.weight]
    off = 0
    for name, shape in spec.params:
        size = math.prod(shape)
        bound = bounds.get(name, 1.0)
        flat[:, off:off + size].uniform_(-bound, bound, generator=gen)
        off += size
    return flat
