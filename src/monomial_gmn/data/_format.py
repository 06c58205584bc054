"""Our own zoo format: a directory of memory-mappable arrays plus a JSON header and a metadata table.

Layout (format ``monomial-gmn-zoo``, version 1)::

    zoo.json               header: format, version, task_kind, count, architectures (layers, params file,
                           count), column types, how the zoo was built (kind, seed, config, versions)
    params_<arch>.npy      float32 [n_arch, P_arch], GraphSpec flat order, rows in zoo order
    metrics.csv            one row per network, the columns of ``zoo.json['columns']`` ('arch' included)
    images.npy             optional float32 [n, H, W] in [0, 1]

Arrays are read with ``np.load(mmap_mode='r', allow_pickle=False)``; nothing is ever unpickled. Every file
is written atomically and ``zoo.json`` last, so a directory without it is an unfinished write.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ZooFormatError
from .._io import atomic_path, atomic_write_json, atomic_write_text, read_json
from ..graph import Architecture
from ._safe import check_finite, load_array, parse_column, read_csv_columns
from ._zoo import Zoo

__all__ = ["save_zoo", "read_zoo", "FORMAT_NAME", "FORMAT_VERSION", "is_own_format"]

FORMAT_NAME = "monomial-gmn-zoo"
FORMAT_VERSION = 1
_MAX_HEADER = 64 * 1024 * 1024


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _kind(col: np.ndarray) -> str:
    if col.dtype == bool:
        return "bool"
    if np.issubdtype(col.dtype, np.integer):
        return "int64"
    if np.issubdtype(col.dtype, np.floating):
        return "float64"
    return "str"


def _fmt(v: Any, kind: str) -> str:
    if kind == "float64":
        return repr(float(v))
    if kind == "int64":
        return str(int(v))
    if kind == "bool":
        return "True" if bool(v) else "False"
    return str(v)


def save_npy(path: str | os.PathLike, arr: np.ndarray) -> None:
    """``np.save`` atomically (no pickles: object arrays are refused)."""
    arr = np.asarray(arr)
    if arr.dtype == object:
        raise ValueError(f"{path}: refusing to save an object array (it would need pickling)")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)


def save_zoo(zoo: Zoo, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Write ``zoo`` in our format to directory ``path`` (created; existing zoo files are replaced)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    n = len(zoo)
    arch_col = zoo.columns["arch"].astype(str)
    archs_json = []
    used = [name for name in zoo.archs if (arch_col == name).any()]
    files = set()
    for name in used:
        sel = np.nonzero(arch_col == name)[0]
        rows = zoo.net_row[sel]
        arr = np.asarray(zoo.params[name][rows], dtype=np.float32)
        fname = f"params_{_safe_name(name)}.npy"
        if fname in files:
            fname = f"params_{_safe_name(name)}_{len(files)}.npy"
        files.add(fname)
        save_npy(path / fname, arr)
        archs_json.append({**zoo.archs[name].to_json(), "params_file": fname, "count": int(len(sel)),
                           "num_params": zoo.archs[name].num_params})
    kinds = {k: _kind(v) for k, v in zoo.columns.items()}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(zoo.columns)
    w.writerow(names)
    cols = [zoo.columns[k] for k in names]
    for i in range(n):
        w.writerow([_fmt(c[i], kinds[k]) for k, c in zip(names, cols)])
    atomic_write_text(path / "metrics.csv", buf.getvalue())
    if zoo.images is not None:
        save_npy(path / "images.npy", np.asarray(zoo.images, dtype=np.float32))
    elif (path / "images.npy").exists():
        (path / "images.npy").unlink()
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "task_kind": zoo.task_kind, "count": n,
              "architectures": archs_json, "columns": kinds,
              "images": "images.npy" if zoo.images is not None else None,
              "meta": {k: v for k, v in {**zoo.meta, **(meta or {})}.items()
                       if k not in ("path", "format")}}
    atomic_write_json(path / "zoo.json", header)
    return path


def is_own_format(path: Path) -> bool:
    return path.is_dir() and (path / "zoo.json").is_file()


def _header(path: Path) -> dict[str, Any]:
    f = path / "zoo.json"
    if f.stat().st_size > _MAX_HEADER:
        raise ZooFormatError(f"{f}: header is larger than {_MAX_HEADER} bytes")
    head = read_json(f, "zoo header", kind=None, error=ZooFormatError)
    if not isinstance(head, dict) or head.get("format") != FORMAT_NAME:
        found = head.get("format") if isinstance(head, dict) else None
        raise ZooFormatError(f"{f}: not a {FORMAT_NAME} header (format={found!r})")
    if head.get("format_version") != FORMAT_VERSION:
        raise ZooFormatError(f"{f}: format_version {head.get('format_version')!r} is not supported "
                             f"(this library reads {FORMAT_VERSION})")
    for key, typ in (("architectures", list), ("columns", dict), ("count", int)):
        if not isinstance(head.get(key), typ) or isinstance(head.get(key), bool):
            raise ZooFormatError(f"{f}: field '{key}' is missing or not a {typ.__name__}")
    if head["count"] < 0:
        raise ZooFormatError(f"{f}: field 'count' is negative ({head['count']})")
    if not isinstance(head.get("meta") or {}, dict):
        raise ZooFormatError(f"{f}: field 'meta' must be an object, not {type(head['meta']).__name__}")
    if head.get("images") not in (None, "images.npy"):
        raise ZooFormatError(f"{f}: field 'images' must be null or \"images.npy\", not {head['images']!r}")
    return head


def _is_int(v: Any, low: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _int_pair(v: Any, low: int) -> bool:
    return _is_int(v, low) or (isinstance(v, list) and len(v) == 2 and all(_is_int(x, low) for x in v))


def _layer_problem(kind: str, o: dict[str, Any]) -> str | None:
    """Why a layer's options would build a network other than the one written (None when they are sound):
    the template builder casts ``int(16.7)``, ``bool("false")``, so wrong types must be refused here."""
    if kind in ("conv2d", "linear"):
        for key in ("in", "out"):
            if not _is_int(o.get(key)):
                return f"'{key}' must be a positive integer, not {o.get(key)!r}"
        if not isinstance(o.get("bias", True), bool):
            return f"'bias' must be true or false, not {o['bias']!r}"
    if kind == "conv2d":
        if not _int_pair(o.get("kernel", 3), 1) or not _int_pair(o.get("stride", 1), 1):
            return f"'kernel' and 'stride' must be positive integers (or pairs), not {o.get('kernel', 3)!r}, " \
                   f"{o.get('stride', 1)!r}"
        if o.get("padding", 0) != "tf_same" and not _int_pair(o.get("padding", 0), 0):
            return f"'padding' must be \"tf_same\" or integers >= 0, not {o['padding']!r}"
    for key in ("w0", "slope"):
        v = o.get(key, 1.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"'{key}' must be a finite number, not {v!r}"
    return None


def _check_architecture(arch: Architecture, where: Path) -> None:
    for i, (kind, opts) in enumerate(arch.layers):
        problem = _layer_problem(kind, opts)
        if problem:
            raise ZooFormatError(f"{where}: architecture '{arch.name}', layer {i} ({kind}): {problem}")
    first = next((o for kind, o in arch.layers if kind in ("conv2d", "linear")), None)
    shape = arch.input_shape
    if first is not None and shape and (shape[0] != first["in"] or min(shape) < 1):
        raise ZooFormatError(f"{where}: architecture '{arch.name}': input_shape {shape} does not fit its first "
                             f"layer, which reads {first['in']} channels")


def read_zoo(path: str | os.PathLike, check_finite_weights: bool = True) -> Zoo:
    """Read a zoo in our format (parameter arrays are memory-mapped, read-only)."""
    path = Path(path)
    head = _header(path)
    n = int(head["count"])
    archs: dict[str, Architecture] = {}
    params: dict[str, np.ndarray] = {}
    for entry in head["architectures"]:
        arch = Architecture.from_json(entry, where=str(path / "zoo.json"))
        if arch.name in archs:
            raise ZooFormatError(f"{path / 'zoo.json'}: two architectures are named '{arch.name}'")
        if not _is_int(entry.get("count"), 0):
            raise ZooFormatError(f"{path / 'zoo.json'}: architecture '{arch.name}' has a bad count "
                                 f"{entry.get('count')!r} (a non-negative integer)")
        _check_architecture(arch, path / "zoo.json")
        fname = entry.get("params_file")
        if not isinstance(fname, str) or "/" in fname or "\\" in fname or fname.startswith("."):
            raise ZooFormatError(f"{path / 'zoo.json'}: architecture '{arch.name}' has a bad params_file {fname!r}")
        f = path / fname
        arr = load_array(f, ndim=2, dtype=np.floating)
        try:
            p = arch.num_params
        except Exception as exc:  # the layers do not make a convertible network
            raise ZooFormatError(f"{path / 'zoo.json'}: architecture '{arch.name}' cannot be built ({exc})") from None
        if arr.shape[1] != p:
            raise ZooFormatError(f"{f}: has {arr.shape[1]} columns; architecture '{arch.name}' has {p} parameters "
                                 f"(layout does not match the weights)")
        if arr.shape[0] != int(entry.get("count", -1)):
            raise ZooFormatError(f"{f}: has {arr.shape[0]} rows; zoo.json says {entry.get('count')} networks")
        if check_finite_weights:
            check_finite(arr, f)
        archs[arch.name], params[arch.name] = arch, arr
    header, raw = read_csv_columns(path / "metrics.csv")
    columns: dict[str, np.ndarray] = {}
    for name, kind in head["columns"].items():
        if name not in raw:
            raise ZooFormatError(f"{path / 'metrics.csv'}: missing column '{name}' (zoo.json lists it)")
        if len(raw[name]) != n:
            raise ZooFormatError(f"{path / 'metrics.csv'}: has {len(raw[name])} rows; zoo.json says {n} networks")
        columns[name] = parse_column(raw[name], kind, path / "metrics.csv", name)
    for key in ("arch", "activation"):
        if key not in columns:
            raise ZooFormatError(f"{path / 'metrics.csv'}: missing column '{key}'")
    arch_col = columns["arch"]
    unknown = set(np.unique(arch_col).tolist()) - set(archs)
    if unknown:
        raise ZooFormatError(f"{path / 'metrics.csv'}: column 'arch' names unknown architectures {sorted(unknown)}")
    net_row = np.zeros(n, dtype=np.int64)
    for name in archs:
        sel = np.nonzero(arch_col == name)[0]
        if len(sel) != params[name].shape[0]:
            raise ZooFormatError(f"{path / 'metrics.csv'}: {len(sel)} rows name architecture '{name}'; its "
                                 f"params file has {params[name].shape[0]}")
        net_row[sel] = np.arange(len(sel))
    images = None
    if head.get("images"):
        images = load_array(path / "images.npy", ndim=3, dtype=np.floating)
        if images.shape[0] != n:
            raise ZooFormatError(f"{path / 'images.npy'}: has {images.shape[0]} images for {n} networks")
    kind = head.get("task_kind", "cnn")
    if kind not in ("cnn", "inr"):
        raise ZooFormatError(f"{path / 'zoo.json'}: task_kind must be 'cnn' or 'inr', not {kind!r}")
    meta = dict(head.get("meta") or {})
    meta.update(format=FORMAT_NAME, path=str(path))
    return Zoo(archs, params, net_row, columns, images, meta, kind)
