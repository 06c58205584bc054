"""Reader for INR zoos stored as one state dict per network (the NFN / DWSNets / ScaleGMN distributions).

Whatever the key names, the layer chain is recovered from the tensors: 2-d tensors are Linear weights,
1-d tensors biases; layers are ordered by the numbers in their names (natural order), each bias is paired
with its weight by name (``...weight`` → ``...bias``) or by position and size, and the chain is checked
(each layer reads what the previous one writes). The networks become ``Linear, Sine(w0), ..., Linear``
templates converted by the core converter (sign symmetry on hidden neurons).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .._errors import ZooFormatError
from .._io import read_json, torch_load_error
from ..graph import Architecture, siren_architecture
from ._safe import load_array, read_csv_columns
from ._zoo import Zoo

__all__ = ["read_siren_dir", "is_state_dict_dir", "state_dict_files", "siren_layers", "net_index", "LABEL_SOURCES"]

_SUFFIXES = (".pt", ".pth", ".safetensors")


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def state_dict_files(path: Path) -> list[Path]:
    """Weight files under ``path`` (recursive), in natural path order."""
    files = [p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: _natural(str(p.relative_to(path))))


def is_state_dict_dir(path: Path) -> bool:
    return path.is_dir() and any(True for _ in state_dict_files(path))


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A flat tensor state dict from .pt/.pth (weights_only) or .safetensors; ZooFormatError otherwise."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path))
        except Exception as exc:  # malformed header, truncated file
            raise ZooFormatError(f"{path}: not a readable safetensors file ({exc})") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickled objects and corrupt files; nothing is executed
            raise ZooFormatError(f"{path}: cannot read it as a state dict: {torch_load_error(exc)}") from None
    for key in ("state_dict", "model_state_dict", "model", "params"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ZooFormatError(f"{path}: expected a non-empty dict of tensors (a state dict)")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise ZooFormatError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        if v.layout != torch.strided:
            raise ZooFormatError(f"{path}: tensor {k!r} is a {v.layout} tensor; expected a dense tensor")
        if not v.is_floating_point():  # a complex weight would lose its imaginary part, an int one is no weight
            raise ZooFormatError(f"{path}: tensor {k!r} has dtype {v.dtype}; expected real floating-point weights")
        if 0 in v.shape:
            raise ZooFormatError(f"{path}: tensor {k!r} has shape {tuple(v.shape)}, with no values")
        out[str(k)] = v
    return out


def siren_layers(state: dict[str, torch.Tensor], where: str) -> list[tuple[str, str | None]]:
    """``[(weight key, bias key or None)]`` in forward order, whatever the key names (checked chain)."""
    keys = sorted(state, key=_natural)
    weights = [k for k in keys if state[k].dim() == 2]
    biases = [k for k in keys if state[k].dim() == 1]
    other = [k for k in keys if state[k].dim() not in (1, 2)]
    if other:
        raise ZooFormatError(f"{where}: tensor {other[0]!r} has shape {tuple(state[other[0]].shape)}; an MLP "
                             f"state dict holds 2-d weights and 1-d biases only")
    if not weights:
        raise ZooFormatError(f"{where}: no 2-d weight tensor found")
    pairs: list[tuple[str, str | None]] = []
    free = list(biases)
    for w in weights:
        cand = [w.replace("weight", "bias")] if "weight" in w else []
        cand += [w[:-1] + "b"] if w.endswith("w") or w.endswith("W") else []
        b = next((c for c in cand if c in free), None)
        if b is None:  # positional: the first unused bias after this weight with the right size
            after = [k for k in free if _natural(k) > _natural(w) and state[k].numel() == state[w].shape[0]]
            b = after[0] if after else None
        if b is not None:
            if state[b].numel() != state[w].shape[0]:
                raise ZooFormatError(f"{where}: bias {b!r} has {state[b].numel()} values; weight {w!r} has "
                                     f"{state[w].shape[0]} outputs")
            free.remove(b)
        pairs.append((w, b))
    if free:
        raise ZooFormatError(f"{where}: bias tensor(s) {free} match no weight")
    for (w0, _), (w1, _) in zip(pairs, pairs[1:]):
        if state[w1].shape[1] != state[w0].shape[0]:
            raise ZooFormatError(f"{where}: layer {w1!r} reads {state[w1].shape[1]} values but {w0!r} (the layer "
                                 f"before it in name order) writes {state[w0].shape[0]}; cannot chain the layers")
    return pairs


_INDEX = re.compile(r"(\d+)(?!.*\d)")          # the last run of digits in a file's stem: net12 -> 12
_LABEL_DIR = (re.compile(r"^(\d+)$"), re.compile(r"_(\d+)s$"))  # '<label>/' or NFN's 'randinit_test_<label>s/'
LABEL_SOURCES = ("labels.csv (columns file,label), labels.json (file -> label), labels.npy (label k for the file "
                 "named net<k>), or label folders (<label>/ or NFN's *_<label>s/)")


def net_index(file: Path) -> int | None:
    """The network index in a file name (the last number in its stem: ``net12.pth`` → 12), or None."""
    found = _INDEX.search(file.stem)
    return int(found.group(1)) if found else None


def _array_by_index(where: str, rel: list[Path], arr: np.ndarray) -> np.ndarray:
    """Labels from an array with no file names, matched by the explicit rule: the label of the file named
    ``...<k>`` (``net<k>.pth``) is ``arr[k]``. Files without numbers in one folder take the array in name order;
    anything else is ambiguous and refused."""
    n = len(rel)
    where_fix = (f"{where}: cannot tell which of its {arr.shape[0]} labels belongs to which of the {n} weight "
                 "files")
    hint = "; give each file's label explicitly in labels.csv (file,label) or labels.json (file -> label)"
    index = [net_index(r) for r in rel]
    if all(i is None for i in index):
        if len({r.parent for r in rel}) > 1:
            raise ZooFormatError(f"{where_fix}: the file names carry no net index and the files lie in several "
                                 f"folders{hint}")
        if arr.shape[0] != n:
            raise ZooFormatError(f"{where}: has {arr.shape[0]} labels for {n} weight files")
        return arr  # one folder, names without numbers: name order (natural == lexicographic here)
    if any(i is None for i in index):
        bad = rel[index.index(None)]
        raise ZooFormatError(f"{where_fix}: labels are matched by the net index in each file name (net<k> takes "
                             f"label k) but '{bad}' has none{hint}")
    if len(set(index)) != n:
        seen: dict[int, Path] = {}
        for r, i in zip(rel, index):
            if i in seen:
                raise ZooFormatError(f"{where_fix}: labels are matched by the net index in each file name, but "
                                     f"'{seen[i]}' and '{r}' both have index {i}{hint}")
            seen[i] = r
    if arr.shape[0] != n or max(index) >= n:
        raise ZooFormatError(f"{where_fix}: labels are matched by the net index in each file name (net<k> takes "
                             f"label k), which needs indices 0..{arr.shape[0] - 1} for {arr.shape[0]} labels; the "
                             f"files have {n} indices from {min(index)} to {max(index)}{hint}")
    return arr[np.asarray(index)]


def _folder_labels(rel: list[Path]) -> np.ndarray | None:
    """Labels from the innermost label folder of each file (``3/net.pt``, ``randinit_test_3s/net7.pth``), or
    None when no file lies in one; a file outside one while others are inside is refused."""
    found: list[int | None] = []
    for r in rel:
        label = None
        for part in reversed(r.parts[:-1]):
            m = next((m for m in (pat.search(part) for pat in _LABEL_DIR) if m), None)
            if m:
                label = int(m.group(1))
                break
        found.append(label)
    if all(v is None for v in found):
        return None
    if any(v is None for v in found):
        bad = rel[found.index(None)]
        n_in = sum(v is not None for v in found)
        raise ZooFormatError(f"'{bad}' is not inside a label folder (<label>/ or *_<label>s/) while {n_in} other "
                             f"weight files are; put every file in one, or give {LABEL_SOURCES}")
    return np.asarray(found, dtype=np.int64)


def _labels(path: Path, files: list[Path], labels: Any) -> np.ndarray:
    rel_paths = [f.relative_to(path) for f in files]
    rel = [str(r) for r in rel_paths]
    if labels is not None and not isinstance(labels, (str, os.PathLike)):
        arr = np.asarray(labels)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise ValueError(f"labels must be a 1-d array of integers, got shape {arr.shape} dtype {arr.dtype}")
        return _array_by_index("labels", rel_paths, arr.astype(np.int64))
    lf = Path(labels) if labels is not None else next(
        (path / n for n in ("labels.csv", "labels.json", "labels.npy") if (path / n).is_file()), None)
    if lf is not None:
        if lf.suffix == ".npy":
            arr = np.asarray(load_array(lf, mmap=False, ndim=1, dtype=np.integer), dtype=np.int64)
            return _array_by_index(str(lf), rel_paths, arr)
        if lf.suffix == ".json":
            mapping = read_json(lf, "labels file", kind=None, error=ZooFormatError)
        else:
            _, cols = read_csv_columns(lf)
            if "file" not in cols or "label" not in cols:
                raise ZooFormatError(f"{lf}: needs columns 'file' and 'label'")
            mapping = dict(zip(cols["file"], cols["label"]))
        if not isinstance(mapping, dict):
            raise ZooFormatError(f"{lf}: expected a mapping file -> label")
        missing = [r for r in rel if r not in mapping]
        if missing:
            raise ZooFormatError(f"{lf}: no label for {missing[0]!r} ({len(missing)} files missing)")
        bad = next((r for r in rel if not _integer_label(mapping[r])), None)
        if bad is not None:  # int(1.7) == 1 and int(True) == 1 would be silently wrong labels
            raise ZooFormatError(f"{lf}: labels must be integers; {bad!r} has {mapping[bad]!r}")
        return np.array([int(mapping[r]) for r in rel], dtype=np.int64)
    try:
        folders = _folder_labels(rel_paths)
    except ZooFormatError as exc:
        raise ZooFormatError(f"{path}: {exc}") from None
    return folders if folders is not None else np.full(len(files), -1, dtype=np.int64)


def _integer_label(v: Any) -> bool:
    if isinstance(v, str):
        return re.fullmatch(r"\s*[-+]?\d+\s*", v) is not None
    return isinstance(v, int) and not isinstance(v, bool)


def read_siren_dir(path: str | os.PathLike, w0: float = 30.0, labels: Any = None,
                   progress: bool = True) -> Zoo:
    """Load a directory of SIREN state dicts (``.pt``/``.pth`` via weights_only, or ``.safetensors``).

    Args:
        path: directory searched recursively for weight files (natural path order = zoo order).
        w0: the SIREN frequency ω0 used by every sine layer (default 30).
        labels: where each network's class label comes from:

            * a labels file: ``.csv`` with columns ``file,label`` or ``.json`` mapping relative path → label
              (explicit per file), or ``.npy`` / an array of integers, matched by the *net index* in each file
              name (the last number in its stem: ``net12.pth`` takes label 12 of the array, whatever the folder
              or the path order); only files without numbers in a single folder take an array in name order.
              Anything else (files without an index, repeated indices, indices not covering the array) is
              refused with a ZooFormatError, never guessed;
            * None (default): ``labels.{csv,json,npy}`` in ``path`` if present, else the label folder each file
              lies in — ``path/<label>/net.pt``, or NFN's SIREN zoo layout ``randinit_test_<label>s/net<k>.pth``
              (the innermost folder matching ``<label>`` or ``*_<label>s``) — else -1 (no labels).
    """
    path = Path(path)
    if isinstance(w0, bool) or not isinstance(w0, (int, float)) or not math.isfinite(w0) or w0 <= 0:
        raise ValueError(f"w0 must be a positive finite number (the SIREN frequency), not {w0!r}")
    files = state_dict_files(path)
    if not files:
        raise ZooFormatError(f"{path}: no .pt/.pth/.safetensors weight files found")
    archs: dict[str, Architecture] = {}
    sigs: dict[tuple, tuple[str, list[str]]] = {}
    rows: dict[str, list[np.ndarray]] = {}
    arch_col, net_row = [], []
    for f in tqdm(files, desc="reading INRs", unit="net", disable=not progress or len(files) < 200):
        state = load_state(f)
        sig = tuple(sorted((k, tuple(v.shape)) for k, v in state.items()))
        if sig not in sigs:
            pairs = siren_layers(state, str(f))
            widths = [int(state[pairs[0][0]].shape[1])] + [int(state[w].shape[0]) for w, _ in pairs]
            no_bias = [w for w, b in pairs if b is None]
            if no_bias:
                raise ZooFormatError(f"{f}: every SIREN layer needs a bias; {no_bias[0]!r} has none")
            name = f"siren-{'-'.join(map(str, widths))}" + (f"-{len(sigs)}" if len(sigs) else "")
            base, k = name, 1
            while name in archs:  # 'siren-2-4-1' + '-1' is also the name of widths (2, 4, 1, 1): never merge them
                name, k = f"{base}_{k}", k + 1
            arch = siren_architecture(tuple(widths), w0, name=name)
            order = [k for pair in pairs for k in pair if k is not None]
            sigs[sig] = (name, order)
            archs[name] = arch
            rows[name] = []
        name, order = sigs[sig]
        flat = torch.cat([state[k].detach().reshape(-1).to(torch.float32) for k in order]).numpy()
        if not np.isfinite(flat).all():
            raise ZooFormatError(f"{f}: weights hold NaN or infinite values")
        arch_col.append(name)
        net_row.append(len(rows[name]))
        rows[name].append(flat)
    params = {name: np.stack(r).astype(np.float32) for name, r in rows.items()}
    columns = {"activation": np.full(len(files), "sine"), "arch": np.array(arch_col),
               "label": _labels(path, files, labels), "psnr": np.full(len(files), np.nan),
               "file": np.array([str(f.relative_to(path)) for f in files])}
    meta = {"format": "state-dict-dir", "path": str(path), "source": str(path), "w0": float(w0)}
    return Zoo(archs, params, np.array(net_row), columns, None, meta, "inr")


