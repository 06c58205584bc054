"""digits-siren: one SIREN INR per digit image, fitted many at a time (batched matmuls, vectorised Adam).

Network k fits image ``order[k // copies]`` (copy ``k % copies``: extra copies differ only in their random
init, the "augmented" INR sets of the literature), where ``order`` is a seed-dependent permutation of the
1,797 digits. The image is upsampled to ``resolution``² pixels; the INR maps pixel-centre coordinates
(row, col) in [-1, 1]² to the intensity in [0, 1]. Initialisation follows Sitzmann et al. (2020).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..graph import siren_architecture, stacked_forward
from ._digits import digits, upsample
from ._zoo import Zoo

__all__ = ["SIREN_DEFAULTS", "build_siren_chunk", "siren_grid", "siren_image_order", "siren_init"]

SIREN_DEFAULTS: dict[str, Any] = {
    "resolution": 28,
    "widths": [2, 32, 32, 1],
    "w0": 30.0,
    "steps": 100,
    "lr": 1e-3,
    "copies": 1,
}


def siren_grid(resolution: int) -> torch.Tensor:
    """[resolution², 2] coordinates (row, col) in [-1, 1], row-major (matches ``image.reshape(-1)``)."""
    t = torch.linspace(-1.0, 1.0, resolution)
    rr, cc = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([rr.reshape(-1), cc.reshape(-1)], dim=1)


def siren_init(arch: Any, n: int, w0: float, seed: int, chunk_index: int) -> dict[str, torch.Tensor]:
    """The initial parameters of chunk ``chunk_index`` of a SIREN zoo built with ``seed``: ``n`` networks of ``arch``
    (SIREN init: first layer U(±1/fan_in), later ones U(±sqrt(6/fan_in)/w0), biases U(±1/sqrt(fan_in))).

    Shapes: ``{name: [n, *shape]}`` for every ``arch.param_shapes`` entry.
    """
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(chunk_index) + 17)
    params: dict[str, torch.Tensor] = {}
    first = True
    for name, shape, _ in arch.param_shapes:
        fan_in = shape[1] if len(shape) == 2 else params[name.replace("bias", "weight")].shape[2]
        if name.endswith("weight"):
            bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / w0
            first = False
        else:
            bound = 1.0 / math.sqrt(fan_in)
        params[name] = (torch.rand(n, *shape, generator=gen) * 2 - 1) * bound
    return params


def siren_image_order(seed: int) -> np.ndarray:
    return np.random.default_rng([int(seed), 7]).permutation(len(digits()["labels"]))


def build_siren_chunk(cfg: dict[str, Any], seed: int, start: int, end: int, chunk_index: int) -> Zoo:
    """INRs ``start .. end-1`` of a digits-siren zoo."""
    d = digits()
    copies = int(cfg["copies"])
    k = np.arange(start, end)
    order = siren_image_order(seed)
    if k.size and k.max() // copies >= len(order):
        raise ValueError(f"digits-siren: {end} nets need {math.ceil(end / copies)} images; the digits have "
                         f"{len(order)} (raise copies=)")
    image_id = order[k // copies]
    res = int(cfg["resolution"])
    images = upsample(d["images"][image_id], res)                          # [G, res, res]
    arch = siren_architecture(tuple(cfg["widths"]), float(cfg["w0"]), name="siren")
    g, w0 = len(k), float(cfg["w0"])
    params = siren_init(arch, g, w0, seed, chunk_index)
    coords = siren_grid(res)
    target = torch.from_numpy(images.reshape(g, -1, 1))
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    lr, b1, b2 = float(cfg["lr"]), 0.9, 0.999
    for t in range(1, int(cfg["steps"]) + 1):
        leaves = {n: p.requires_grad_(True) for n, p in params.items()}
        out = stacked_forward(arch, leaves, coords)                         # [G, P, 1]
        ((out - target) ** 2).mean(dim=(1, 2)).sum().backward()
        with torch.no_grad():
            for n, p in leaves.items():
                m[n] = b1 * m[n] + (1 - b1) * p.grad
                v[n] = b2 * v[n] + (1 - b2) * p.grad * p.grad
                params[n] = (p - lr * (m[n] / (1 - b1 ** t)) / ((v[n] / (1 - b2 ** t)).sqrt() + 1e-8)).detach()
    with torch.no_grad():
        mse = ((stacked_forward(arch, params, coords) - target) ** 2).mean(dim=(1, 2)).double()
    psnr = 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))
    flat = arch.flatten_params(params).numpy().astype(np.float32)
    columns = {
        "net_id": np.array([f"inr{i:06d}" for i in k]), "net_index": k.astype(np.int64),
        "activation": np.full(g, "sine"), "arch": np.full(g, arch.name),
        "label": d["labels"][image_id].astype(np.int64), "image_id": image_id.astype(np.int64),
        "image_split": d["split"][image_id].astype(np.int64), "copy": (k % copies).astype(np.int64),
        "psnr": psnr.numpy(), "mse": mse.numpy(),
    }
    return Zoo({arch.name: arch}, {arch.name: flat}, np.arange(g), columns, images.astype(np.float32),
               {"kind": "digits-siren"}, "inr")
