"""``zoo_digest``: a deterministic content fingerprint of a zoo (which networks, weights, columns, images).

A run records the digest of the networks it reads, so that resuming it on another zoo, or evaluating it on a
zoo that changed under its path, is refused instead of silently mixing two zoos.

What is hashed (SHA-256, in this order; version tag ``monomial-gmn-zoo-digest/1``):

* ``task_kind`` and the number of networks;
* per architecture used by the zoo, in sorted name order: its JSON (``Architecture.to_json``, keys sorted),
  the positions of its networks in zoo order (int64), and their flat parameter rows in that order (the
  array's own dtype, little-endian, dtype string included);
* per column, in sorted name order: the name, then the values — bool as uint8, integers as int64, floats as
  float64 (little-endian), anything else as the JSON list of ``str(value)``;
* the images ([n, H, W], float32, shape included), when the zoo has them.

The zoo's ``meta`` (its path, format, how it was built) is not hashed: the same networks read from a copy,
another directory or another supported format have the same digest, and any change to a weight, a
metadata value, the order of the networks or their number changes it. A subset of a zoo (``zoo.subset``,
``load_zoo(path, activation=...)``) is other networks, so it has its own digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

__all__ = ["zoo_digest"]

_VERSION = b"monomial-gmn-zoo-digest/1"
_ROWS_PER_CHUNK = 4096


def _update_array(h: "hashlib._Hash", arr: np.ndarray) -> None:
    arr = np.asarray(arr)
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    h.update(f"{dt.str}{list(arr.shape)}".encode())
    h.update(np.ascontiguousarray(arr, dtype=dt).tobytes())


def _update_column(h: "hashlib._Hash", col: np.ndarray) -> None:
    col = np.asarray(col)
    if col.dtype == bool:
        _update_array(h, col.astype(np.uint8))
    elif np.issubdtype(col.dtype, np.integer):
        _update_array(h, col.astype(np.int64))
    elif np.issubdtype(col.dtype, np.floating):
        _update_array(h, col.astype(np.float64))
    else:
        h.update(b"str")
        h.update(json.dumps([str(v) for v in col.tolist()]).encode())


def _digest_zoo(zoo: Any) -> str:
    h = hashlib.sha256(_VERSION)
    n = len(zoo)
    h.update(json.dumps({"task_kind": zoo.task_kind, "nets": n}, sort_keys=True).encode())
    arch_col = np.asarray(zoo.columns["arch"]).astype(str)
    for name in sorted(set(arch_col.tolist())):
        h.update(b"arch")
        h.update(json.dumps(zoo.archs[name].to_json(), sort_keys=True, default=str).encode())
        pos = np.nonzero(arch_col == name)[0].astype(np.int64)
        _update_array(h, pos)
        rows = zoo.net_row[pos]
        params = zoo.params[name]
        for s in range(0, len(rows), _ROWS_PER_CHUNK):  # bounded memory on big (memory-mapped) zoos
            _update_array(h, np.asarray(params[rows[s:s + _ROWS_PER_CHUNK]]))
    for key in sorted(zoo.columns):
        h.update(b"column")
        h.update(key.encode())
        _update_column(h, zoo.columns[key])
    if zoo.images is not None:
        h.update(b"images")
        _update_array(h, np.asarray(zoo.images, dtype=np.float32))
    return h.hexdigest()


def zoo_digest(path_or_zoo: Any) -> str:
    """The SHA-256 content digest (64 hex characters) of a :class:`Zoo` or of the zoo at a path.

    A path is read with ``load_zoo(path, step=None)`` (every network, every checkpoint; any supported
    format), so ``zoo_digest(path) == zoo_digest(load_zoo(path, step=None))``; a ``Zoo`` is hashed as it is
    (pass the very subset you mean). Deterministic across runs, processes and platforms; see the module
    docstring for what is hashed.

    Raises:
        ZooFormatError: the path holds no readable zoo.
        TypeError: neither a Zoo nor a path.
    """
    from ._zoo import Zoo

    if isinstance(path_or_zoo, Zoo):
        return _digest_zoo(path_or_zoo)
    if isinstance(path_or_zoo, (str, os.PathLike)):
        from ._load import load_zoo

        return _digest_zoo(load_zoo(path_or_zoo, step=None))
    raise TypeError(f"zoo_digest takes a Zoo or a path, not {type(path_or_zoo).__name__}")
