"""Safe readers for zoo files: arrays without pickles, bounded checks, errors that name the file."""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ZooFormatError

__all__ = ["load_array", "read_csv_columns", "check_finite"]

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def load_array(path: str | os.PathLike, mmap: bool = True, ndim: int | None = None,
               dtype: Any = None) -> np.ndarray:
    """``np.load(path, mmap_mode='r', allow_pickle=False)`` with every failure as a ZooFormatError.

    Rejects: missing files, pickles (and object arrays), truncated files, wrong rank or dtype kind.
    """
    path = Path(path)
    if not path.is_file():
        raise ZooFormatError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head[:2] in _PICKLE_MAGIC:
        raise ZooFormatError(f"{path}: is a Python pickle, not a .npy array; refusing to unpickle it")
    if head != b"\x93NUMPY":
        raise ZooFormatError(f"{path}: not a .npy file (bad magic bytes)")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        msg = str(exc)
        if "pickle" in msg.lower() or "object" in msg.lower():
            raise ZooFormatError(f"{path}: holds Python objects (pickled); refusing to unpickle it") from None
        raise ZooFormatError(f"{path}: truncated or malformed .npy file ({msg})") from None
    except (OSError, EOFError) as exc:
        raise ZooFormatError(f"{path}: truncated or unreadable .npy file ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ZooFormatError(f"{path}: expected a {ndim}-d array, got shape {tuple(arr.shape)}")
    if dtype is not None and not np.issubdtype(arr.dtype, dtype):
        want = getattr(dtype, "__name__", str(dtype))   # np.floating/np.integer are abstract: no np.dtype()
        raise ZooFormatError(f"{path}: expected {'an' if want[0] in 'aeiou' else 'a'} {want} array, got dtype "
                             f"{arr.dtype}")
    return arr


def check_finite(arr: np.ndarray, path: str | os.PathLike, what: str = "weights",
                 rows_label: str = "row", chunk: int = 4096) -> None:
    """Raise ZooFormatError naming the first rows holding NaN/inf (scans in chunks; mmap-friendly)."""
    for start in range(0, arr.shape[0], chunk):
        block = np.asarray(arr[start:start + chunk])
        bad = ~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
        if bad.any():
            rows = (np.nonzero(bad)[0][:5] + start).tolist()
            raise ZooFormatError(f"{path}: {what} hold NaN or infinite values (first {rows_label}s: {rows})")


def read_csv_columns(path: str | os.PathLike) -> tuple[list[str], dict[str, list[str]]]:
    """A CSV (plain or .gz) as ``(header, {column: [strings]})``; ragged rows raise ZooFormatError."""
    path = Path(path)
    if not path.is_file():
        raise ZooFormatError(f"{path}: no such file")
    try:
        if path.suffix == ".gz":  # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the header
            with gzip.open(path, "rb") as fh:
                text = fh.read().decode("utf-8-sig")
        else:
            text = path.read_text(encoding="utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise ZooFormatError(f"{path}: unreadable CSV ({exc})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ZooFormatError(f"{path}: empty CSV file (no header)") from None
    cols: dict[str, list[str]] = {h: [] for h in header}
    if len(cols) != len(header):
        raise ZooFormatError(f"{path}: duplicate column names in the header")
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ZooFormatError(f"{path}: line {lineno} has {len(row)} fields, the header has {len(header)} "
                                 f"(truncated file?)")
        for h, v in zip(header, row):
            cols[h].append(v)
    return header, cols


def parse_column(values: list[str], kind: str, path: Path, name: str) -> np.ndarray:
    """Strings → typed array (``kind``: float64, int64, bool, str)."""
    try:
        if kind == "float64":
            return np.array([float(v) if v != "" else np.nan for v in values], dtype=np.float64)
        if kind == "int64":
            return np.array([int(float(v)) for v in values], dtype=np.int64)
        if kind == "bool":
            bad = [v for v in values if v not in ("True", "False", "1", "0", "true", "false")]
            if bad:
                raise ValueError(f"not a boolean: {bad[0]!r}")
            return np.array([v in ("True", "1", "true") for v in values], dtype=bool)
        if kind == "str":
            return np.array(values, dtype=str) if values else np.array([], dtype="<U1")
    except ValueError as exc:
        raise ZooFormatError(f"{path}: column '{name}' is not {kind} ({exc})") from None
    raise ZooFormatError(f"{path}: column '{name}' has unknown type {kind!r}")


def infer_column(values: list[str]) -> np.ndarray:
    """Strings → int64, float64, bool or str array, whichever parses (for foreign CSVs)."""
    for kind, conv in (("int64", int), ("float64", float)):
        try:
            return np.array([conv(v) if v != "" else (np.nan if kind == "float64" else conv(v)) for v in values],
                            dtype=kind)
        except ValueError:
            continue
    if values and all(v in ("True", "False") for v in values):
        return np.array([v == "True" for v in values])
    return np.array(values, dtype=str) if values else np.array([], dtype="<U1")
