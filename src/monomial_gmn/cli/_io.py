"""Safe loading for the CLI: state dicts only (weights_only), architectures by import path."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_torch_save
from . import CLIError


def import_callable(spec: str):
    """'package.module:name' → the object (a class or factory)."""
    if ":" not in spec:
        raise CLIError(f"--arch must look like 'package.module:callable', got {spec!r}")
    mod, name = spec.split(":", 1)
    try:
        obj = importlib.import_module(mod)
    except ImportError as exc:
        raise CLIError(f"--arch: cannot import module '{mod}': {exc}") from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"--arch: module '{mod}' has no attribute '{name}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CLIError(f"--arch: '{spec}' is not callable")
    return obj


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .pt/.pth (``torch.load(weights_only=True)``) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # malformed header, truncated file
            raise CLIError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled modules and corrupt files land here; nothing is executed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"{path}: not a tensor-only state dict (loaded with weights_only=True): {first}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CLIError(f"{path}: expected a dict of tensors (a state dict)")
    return obj


def load_network(path: str, arch: str, arch_kwargs: str = "{}") -> nn.Module:
    """Build ``arch(**kwargs)`` and load the state dict at ``path`` into it (strict)."""
    try:
        kwargs = json.loads(arch_kwargs)
    except json.JSONDecodeError as exc:
        raise CLIError(f"--arch-kwargs is not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise CLIError("--arch-kwargs must be a JSON object")
    net = import_callable(arch)(**kwargs)
    if not isinstance(net, nn.Module):
        raise CLIError(f"--arch '{arch}' did not return an nn.Module")
    state = load_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CLIError(f"{path}: does not fit architecture {arch}: {str(exc).splitlines()[0]}") from None
    return net.eval()


def save_graph(graph, path: str | os.PathLike) -> None:
    """Save a graph's tensors as a dict (loadable with weights_only=True)."""
    atomic_torch_save({k: v for k, v in graph.items() if isinstance(v, torch.Tensor)}, path)
