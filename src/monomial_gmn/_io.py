"""Atomic writes (temp file in the target directory + rename) and safe reads, shared by the whole library."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "safe_torch_load", "torch_load_error", "state_dict_mismatch", "read_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed over ``path`` (atomic on POSIX)."""
    path = Path(path)
    _writable_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # an unwritable or read-only directory: name the file asked for, not the temp file
        raise _path_error(exc, f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _writable_target(path: Path) -> None:
    """Create ``path``'s directory; an error naming the path (one line) when it cannot hold a file."""
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"cannot write {path}: {blocker} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _path_error(exc, f"cannot write {path}: cannot create its directory {path.parent} "
                               f"({exc.strerror or exc})") from None


def _path_error(exc: OSError, message: str) -> OSError:
    """``message`` as a FileNotFoundError / PermissionError (what the CLI reports in one line); other OS errors
    on a path the user named (a read-only file system) read as PermissionError."""
    return (FileNotFoundError if isinstance(exc, FileNotFoundError) else PermissionError)(message)


def _write(path: str | os.PathLike, fn: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        fn(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    _write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    _write(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically. Save only tensors/containers/numbers so it loads with weights_only=True."""
    _write(path, lambda p: torch.save(obj, p))


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; never unpickles arbitrary objects."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def read_json(path: str | os.PathLike, what: str = "file", kind: type | None = dict,
              error: type[Exception] = ValueError) -> Any:
    """A JSON file's content; ``error`` (a ValueError by default) naming the file for anything that is not valid
    JSON (syntax, bad encoding, nesting too deep for the parser, integers too long to convert) or, with ``kind``,
    not of that type. ``what`` names the file's role in the message (e.g. "run configuration")."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # ValueError covers JSONDecodeError
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise error(f"{p}: malformed {what} (not valid JSON: {why})") from None
    if kind is not None and not isinstance(obj, kind):
        raise error(f"{p}: malformed {what} (expected a JSON {'object' if kind is dict else kind.__name__}, "
                    f"got {type(obj).__name__})")
    return obj


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def torch_load_error(exc: BaseException) -> str:
    """Our one-line reason for a failed ``torch.load(weights_only=True)`` (never torch's advice to retry with
    ``weights_only=False``, which would execute code from the file)."""
    text = _ANSI.sub("", str(exc))
    if isinstance(exc, EOFError) or "Ran out of input" in text:
        return "the file is empty or truncated"
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" (it references {found.group(1)})" if found else ""
        return (f"it holds pickled Python objects{what}, not only tensors; such files are never unpickled here "
                "(save a state dict: torch.save(model.state_dict(), path))")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if isinstance(exc, RuntimeError) and "zip" in first.lower():
        return f"not a file written by torch.save, or a corrupt one ({first})"
    return f"not a file written by torch.save, or a corrupt one ({type(exc).__name__}" + \
        (f": {first})" if first else ")")


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def state_dict_mismatch(net: torch.nn.Module, state: dict[str, torch.Tensor], limit: int = 5) -> str:
    """'' if ``state`` fits ``net`` exactly; else one line naming the missing and unexpected keys and the shape
    mismatches (the first ``limit`` of each, then a count)."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k!r} has shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}"
              for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    if missing:
        parts.append(f"missing key(s) {_names(missing, limit)}")
    if unexpected:
        parts.append(f"unexpected key(s) {_names(unexpected, limit)}")
    if shapes:
        parts.append("shape mismatch: " + "; ".join(shapes[:limit])
                     + (f" and {len(shapes) - limit} more" if len(shapes) > limit else ""))
    return "; ".join(parts)
