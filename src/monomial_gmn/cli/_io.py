"""Safe loading for the CLI: state dicts only (weights_only), architectures by import path."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_torch_save, state_dict_mismatch, torch_load_error
from . import CLIError


def import_callable(spec: str):
    """'package.module:name' → the object (a class or factory).

    The current working directory is searched too (after the installed packages), so ``--arch mymodels:make``
    finds ``./mymodels.py`` even when the command runs as an installed script.
    """
    if ":" not in spec:
        raise CLIError(f"--arch must look like 'package.module:callable', got {spec!r}")
    mod, name = spec.split(":", 1)
    if not mod or not name:
        raise CLIError(f"--arch must look like 'package.module:callable', got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        obj = importlib.import_module(mod)
    except ModuleNotFoundError as exc:
        if exc.name and (mod == exc.name or mod.startswith(exc.name + ".")):
            raise CLIError(f"--arch: no module named '{exc.name}' (searched the installed packages and the "
                           f"current directory {cwd}; run from the directory holding it or add it to "
                           f"PYTHONPATH)") from None
        raise CLIError(f"--arch: importing module '{mod}' failed: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any error raised while importing the user's module
        raise CLIError(f"--arch: importing module '{mod}' failed: {_one_line(exc)}") from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"--arch: module '{mod}' has no attribute '{name}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CLIError(f"--arch: '{spec}' is not callable")
    return obj


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


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
        raise CLIError(f"{path}: cannot read it as a state dict: {torch_load_error(exc)}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CLIError(f"{path}: expected a dict of tensors (a state dict)")
    for key, value in obj.items():
        if value.layout != torch.strided:  # load_state_dict fails on it with a multi-line RuntimeError
            raise CLIError(f"{path}: tensor {key!r} is a {value.layout} tensor; expected a dense tensor")
        if value.is_complex():  # load_state_dict would drop the imaginary part with a warning only
            raise CLIError(f"{path}: tensor {key!r} has dtype {value.dtype}; a complex value cannot be loaded into "
                           f"a real parameter without losing its imaginary part")
    return obj


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> None:
    """A one-line CLIError when ``path`` cannot become a directory (a file in the way, an unwritable parent),
    checked before any work; nothing is created."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "exists and is not a directory" if p == path else f"{p} is a file, not a directory"
                raise CLIError(f"{flag} {path}: {where}")
            if not os.access(p, os.W_OK | os.X_OK):
                raise CLIError(f"{flag} {path}: " + (f"{p} is not writable" if p == path else
                                                     f"cannot create it: {p} is not writable"))
            return


def load_network(path: str, arch: str, arch_kwargs: str = "{}") -> nn.Module:
    """Build ``arch(**kwargs)`` and load the state dict at ``path`` into it (strict).

    The file is read (and checked) before the architecture is built.
    """
    try:
        kwargs = json.loads(arch_kwargs)
    except json.JSONDecodeError as exc:
        raise CLIError(f"--arch-kwargs is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(kwargs, dict):
        raise CLIError(f"--arch-kwargs must be a JSON object such as '{{\"in_features\": 2}}', got {arch_kwargs!r}")
    state = load_state_dict(path)
    factory = import_callable(arch)
    try:
        net = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - bad keyword arguments or an error inside the user's factory
        raise CLIError(f"--arch {arch} with --arch-kwargs {json.dumps(kwargs)} failed: {_one_line(exc)}") from None
    if not isinstance(net, nn.Module):
        raise CLIError(f"--arch '{arch}' did not return an nn.Module (got {type(net).__name__})")
    problem = state_dict_mismatch(net, state)
    if problem:
        raise CLIError(f"{path}: does not fit architecture {arch}: {problem}")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CLIError(f"{path}: does not fit architecture {arch}: {_one_line(exc)}") from None
    return net.eval()


def save_graph(graph, path: str | os.PathLike) -> None:
    """Save a graph's tensors as a dict (loadable with weights_only=True)."""
    atomic_torch_save({k: v for k, v in graph.items() if isinstance(v, torch.Tensor)}, path)
