"""Atomic file writes, public: a reader never sees a half-written file, and a process killed while writing
leaves the previous file (or none) in place.

Each writer writes a temporary file in the target's directory and renames it over the target (atomic on
POSIX); the directory is created when missing. These are the writers the library uses for run records,
checkpoints and result files.

>>> from monomial_gmn.io import atomic_write_json
>>> atomic_write_json("results/summary.json", {"tau": 0.81})       # doctest: +SKIP
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import _io

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "atomic_write_bytes"]


def atomic_path(path: str | os.PathLike) -> AbstractContextManager[Path]:
    """A context manager yielding a temporary path next to ``path``; write the file there (e.g.
    ``fig.savefig(tmp)``) and on leaving the block it is renamed over ``path``. If the block raises, the
    temporary file is removed and ``path`` is left as it was.

    >>> with atomic_path("plot.png") as tmp:                          # doctest: +SKIP
    ...     fig.savefig(tmp, format="png")
    """
    return _io.atomic_path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _io.atomic_write_text(path, text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (two spaces, keys in their order, a final newline) to ``path`` atomically."""
    _io.atomic_write_json(path, obj)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _io.atomic_write_bytes(path, data)
