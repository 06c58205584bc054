"""Reader for the Small CNN Zoo directory format (Unterthiner et al. 2020).

Files: ``weights.npy`` (N × P float32, TensorFlow layout: conv kernels h×w×in×out, dense kernels in×out),
``metrics.csv.gz`` or ``metrics.csv`` (one row per weights row: ``config.*`` hyperparameters, ``modeldir``,
``step``, ``train_accuracy``, ``train_loss``, ``test_accuracy``, ``test_loss``) and ``layout.csv``
(``varname,start_idx,end_idx,size,shape``; kernel and bias rows of each layer, located by ``start_idx``).

The architecture is reconstructed from the layout: rank-4 kernels are 'same'-padded convolutions
(stride ``conv_stride``, TensorFlow padding semantics via :class:`SamePad2d`), rank-2 kernels dense layers,
with global average pooling before the first dense layer when its input size equals the last conv's channels
(else a Flatten over the spatial map, re-ordered from TF's (h, w, c) to torch's (c, h, w)).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ZooFormatError
from ..graph import Architecture
from ._safe import infer_column, load_array, read_csv_columns
from ._zoo import Zoo

__all__ = ["read_small_cnn_zoo", "is_small_cnn_zoo", "parse_layout"]

_REQUIRED = ("step", "test_accuracy")


def is_small_cnn_zoo(path: Path) -> bool:
    return path.is_dir() and (path / "weights.npy").is_file() and (path / "layout.csv").is_file()


def _metrics_file(path: Path) -> Path:
    for name in ("metrics.csv.gz", "metrics.csv"):
        if (path / name).is_file():
            return path / name
    raise ZooFormatError(f"{path}: no metrics.csv.gz or metrics.csv next to weights.npy")


def parse_layout(path: Path) -> list[dict[str, Any]]:
    """layout.csv → ``[{layer, kind ('kernel'|'bias'), start, end, shape}]`` in file order (checked)."""
    header, cols = read_csv_columns(path)
    for key in ("varname", "start_idx", "end_idx", "shape"):
        if key not in cols:
            raise ZooFormatError(f"{path}: missing column '{key}'")
    out = []
    for i, var in enumerate(cols["varname"]):
        try:
            start, end = int(cols["start_idx"][i]), int(cols["end_idx"][i])
            shape = tuple(int(s) for s in re.findall(r"-?\d+", cols["shape"][i]))
        except ValueError:
            raise ZooFormatError(f"{path}: row {i + 2} ({var}) has a non-integer start/end index") from None
        size = cols["size"][i].strip() if "size" in cols else ""
        if size and (not re.fullmatch(r"\d+", size) or int(size) != end - start):
            raise ZooFormatError(f"{path}: row {i + 2} ({var}): size {cols['size'][i]!r} != end_idx - start_idx "
                                 f"({end - start})")
        if not shape or math.prod(shape) != end - start or start < 0:
            raise ZooFormatError(f"{path}: row {i + 2} ({var}): shape {cols['shape'][i]} does not hold "
                                 f"{end - start} values")
        name = var.split(":")[0]
        layer, _, kind = name.rpartition("/")
        if kind not in ("kernel", "bias"):
            raise ZooFormatError(f"{path}: row {i + 2}: variable {var!r} is neither a kernel nor a bias")
        out.append({"layer": layer, "kind": kind, "start": start, "end": end, "shape": shape, "var": var})
    if not out:
        raise ZooFormatError(f"{path}: lists no variables (a header without rows)")
    spans = sorted((r["start"], r["end"], r["var"]) for r in out)
    for (s0, e0, v0), (s1, e1, v1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ZooFormatError(f"{path}: variables {v0} and {v1} overlap")
    return out


def check_coverage(rows: list[dict[str, Any]], path: Path, width: int, wfile: Path) -> None:
    """The layout's variables must tile the weight columns exactly: ``[0, width)``, no value outside a variable
    (a column no variable reads would be silently dropped: a missing bias, a mismatched layout)."""
    end = max(r["end"] for r in rows)
    if end != width:
        raise ZooFormatError(f"{path}: describes {end} values per network; {wfile} has {width} columns (layout "
                             f"does not match the weights)")
    at = 0
    for r in sorted(rows, key=lambda r: r["start"]):
        if r["start"] > at:
            raise ZooFormatError(f"{path}: weight columns {at}..{r['start'] - 1} belong to no variable (before "
                                 f"{r['var']}); the layout does not match the weights (a missing variable?)")
        at = r["end"]


def _architecture(rows: list[dict[str, Any]], path: Path, activation: str, stride: int,
                  input_shape: list[int] | None, padding: str = "tf_same") -> tuple[Architecture, list[tuple]]:
    """Layers from the layout; returns the architecture and, per parametric layer, (kind, kernel, bias) rows."""
    layers: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = layers.setdefault(r["layer"], {})
        if r["kind"] in entry:
            raise ZooFormatError(f"{path}: layer {r['layer']!r} has two {r['kind']} variables")
        entry[r["kind"]] = r
    order = sorted((e for e in layers.values() if "kernel" in e), key=lambda e: e["kernel"]["start"])
    if len(order) != len(layers):
        bad = [k for k, e in layers.items() if "kernel" not in e]
        raise ZooFormatError(f"{path}: layer(s) {bad} have a bias but no kernel")
    arch_layers: list[list[Any]] = []
    plan = []
    if padding not in ("tf_same", "symmetric"):
        raise ValueError(f"padding must be 'tf_same' or 'symmetric', not {padding!r}")
    channels, flattened, spatial = None, False, None
    n = len(order)
    for li, e in enumerate(order):
        k = e["kernel"]["shape"]
        b = e.get("bias")
        if len(k) == 4:
            kh, kw, cin, cout = k
            pad: Any = "tf_same" if padding == "tf_same" else [kh // 2, kw // 2]
            if flattened:
                raise ZooFormatError(f"{path}: convolution {e['kernel']['var']} follows a dense layer")
            if channels is not None and cin != channels:
                raise ZooFormatError(f"{path}: {e['kernel']['var']} reads {cin} channels; the layer before has "
                                     f"{channels}")
            arch_layers.append(["conv2d", {"in": cin, "out": cout, "kernel": [kh, kw], "stride": stride,
                                           "padding": pad, "bias": b is not None}])
            channels = cout
            plan.append(("conv", e["kernel"], b, None))
        elif len(k) == 2:
            cin, cout = k
            reorder = None
            if not flattened and channels is not None:
                if cin == channels:
                    arch_layers += [["gap", {}], ["flatten", {}]]
                elif cin % channels == 0 and math.isqrt(cin // channels) ** 2 == cin // channels:
                    s = math.isqrt(cin // channels)
                    arch_layers.append(["flatten", {}])
                    reorder = (s, s, channels)
                else:
                    raise ZooFormatError(f"{path}: dense kernel {e['kernel']['var']} reads {cin} values; the last "
                                         f"convolution has {channels} channels")
                flattened = True
            elif channels is not None and cin != channels:
                raise ZooFormatError(f"{path}: {e['kernel']['var']} reads {cin} values; the layer before has "
                                     f"{channels}")
            arch_layers.append(["linear", {"in": cin, "out": cout, "bias": b is not None}])
            channels, flattened = cout, True
            plan.append(("dense", e["kernel"], b, reorder))
        else:
            raise ZooFormatError(f"{path}: kernel {e['kernel']['var']} has rank {len(k)}; expected 4 (conv) or 2")
        if b is not None and b["shape"] != (channels,):
            raise ZooFormatError(f"{path}: bias {b['var']} has shape {b['shape']}; its layer has {channels} outputs")
        if li < n - 1:
            arch_layers.append([activation, {}])
    first = order[0]["kernel"]["shape"]
    cin = first[2] if len(first) == 4 else first[0]
    if input_shape is not None and (int(input_shape[0]) != cin or len(input_shape) not in
                                    ((1, 3) if len(first) == 4 else (1,))):
        want = f"[{cin}] or [{cin}, H, W]" if len(first) == 4 else f"[{cin}]"
        raise ZooFormatError(f"{path}: input_shape {list(input_shape)} does not fit the first layer "
                             f"{order[0]['kernel']['var']} (expected {want})")
    shape = list(input_shape) if input_shape is not None else [cin]
    return Architecture(f"smallcnn-{activation}", arch_layers, shape, activation), plan


def _to_torch(weights: np.ndarray, arch: Architecture, plan: list) -> np.ndarray:
    """TF-layout rows [n, P_tf] → GraphSpec-order rows [n, P] (vectorised over networks)."""
    n = weights.shape[0]
    parts: dict[str, np.ndarray] = {}
    names = [name for name, _, _ in arch.param_shapes]
    it = iter(names)
    for kind, k, b, reorder in plan:
        wname = next(it)
        w = weights[:, k["start"]:k["end"]].reshape(n, *k["shape"])
        if kind == "conv":
            w = w.transpose(0, 4, 3, 1, 2)          # (n, h, w, in, out) -> (n, out, in, h, w)
        else:
            if reorder is not None:                 # TF flattens (h, w, c); torch flattens (c, h, w)
                s1, s2, c = reorder
                w = w.reshape(n, s1, s2, c, -1).transpose(0, 3, 1, 2, 4).reshape(n, s1 * s2 * c, -1)
            w = w.transpose(0, 2, 1)                # (n, in, out) -> (n, out, in)
        parts[wname] = w.reshape(n, -1)
        if b is not None:
            bname = next(it)
            parts[bname] = weights[:, b["start"]:b["end"]]
    flat = np.concatenate([parts[name] for name, _, _ in arch.param_shapes], axis=1)
    return np.ascontiguousarray(flat, dtype=np.float32)


def _check_options(conv_stride: Any, input_shape: Any, nonfinite: Any, padding: Any) -> None:
    """ValueError naming a bad reader option (before any file is read)."""
    if isinstance(conv_stride, bool) or not isinstance(conv_stride, (int, np.integer)) or conv_stride < 1:
        raise ValueError(f"conv_stride must be a positive integer, not {conv_stride!r}")
    if input_shape is not None and (not isinstance(input_shape, (list, tuple)) or not input_shape or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in input_shape)):
        raise ValueError(f"input_shape must be a list of positive integers such as [1, 28, 28], not {input_shape!r}")
    if nonfinite not in ("error", "drop"):
        raise ValueError(f"nonfinite must be 'error' or 'drop', not {nonfinite!r}")
    if padding not in ("tf_same", "symmetric"):
        raise ValueError(f"padding must be 'tf_same' or 'symmetric', not {padding!r}")


def check_step(where: Any, step: Any, steps: np.ndarray, activation: str | None = None) -> None:
    """ZooFormatError unless ``step`` is an integer found in ``steps`` (the message lists the steps there are)."""
    try:
        value = int(step)
    except (TypeError, ValueError):
        raise ZooFormatError(f"step must be 'final', None or an integer, got {step!r}") from None
    if value in steps:
        return
    have = np.unique(steps).tolist()
    shown = ", ".join(map(str, have[:12])) + (f", ... {have[-1]} ({len(have)} steps)" if len(have) > 12 else "")
    nets = f"no {activation} network" if activation is not None else "no network"
    raise ZooFormatError(f"{where}: {nets} has a checkpoint at step {value} (steps there: {shown or 'none'})")


def read_small_cnn_zoo(path: str | os.PathLike, activation: str | None = None, step: str | int | None = "final",
                       conv_stride: int = 2, input_shape: list[int] | None = None,
                       nonfinite: str = "error", padding: str = "tf_same") -> Zoo:
    """Load a Small CNN Zoo directory, filtered by activation and checkpoint step.

    Args:
        path: the directory holding weights.npy, layout.csv and metrics.csv(.gz).
        activation: keep only networks with this ``config.activation`` (None: all, one arch per activation).
        step: ``"final"`` (the last checkpoint of each ``modeldir``), an int (that step), or None (all rows).
        conv_stride: stride of the convolutions (the layout does not record it; 2 in the published zoos).
        input_shape: recorded in the architecture (e.g. ``[1, 28, 28]``); optional.
        nonfinite: ``"error"`` (default) raises ZooFormatError on NaN/inf weights; ``"drop"`` skips such rows.
        padding: how the rebuilt modules pad (the graphs do not depend on it): ``"tf_same"`` (TensorFlow
            'same', as the published zoos were trained) or ``"symmetric"`` (torch ``padding=k//2``, as the
            sample in tests/data/small-cnn-zoo-sample was trained, on inputs ``x/16 - 0.5``).
    """
    path = Path(path)
    if not path.is_dir():
        raise ZooFormatError(f"{path}: not a directory")
    _check_options(conv_stride, input_shape, nonfinite, padding)
    wfile = path / "weights.npy"
    weights = load_array(wfile, ndim=2, dtype=np.floating)
    if weights.shape[0] == 0:
        raise ZooFormatError(f"{wfile}: holds no networks (0 rows)")
    rows = parse_layout(path / "layout.csv")
    check_coverage(rows, path / "layout.csv", weights.shape[1], wfile)
    mfile = _metrics_file(path)
    header, raw = read_csv_columns(mfile)
    act_key = "config.activation" if "config.activation" in raw else "activation"
    for key in (act_key,) + _REQUIRED:
        if key not in raw:
            raise ZooFormatError(f"{mfile}: missing column '{key}'")
    nrows = len(raw[act_key])
    if nrows != weights.shape[0]:
        raise ZooFormatError(f"{mfile}: has {nrows} rows but {wfile} has {weights.shape[0]} (one row per network "
                             f"checkpoint in both; a truncated or mismatched file)")
    cols: dict[str, np.ndarray] = {}
    for key, values in raw.items():
        name = key[len("config."):] if key.startswith("config.") else key
        name = {"modeldir": "net_id", "l2reg": "l2reg"}.get(name, name)
        cols[name] = infer_column(values)
    cols["activation"] = np.asarray(raw[act_key], dtype=str)
    steps = cols["step"]
    if not np.issubdtype(steps.dtype, np.number) or steps.dtype == bool or \
            (np.issubdtype(steps.dtype, np.floating) and not (np.isfinite(steps) & (steps == np.round(steps))).all()):
        raise ZooFormatError(f"{mfile}: column 'step' is not an integer")
    cols["step"] = steps.astype(np.int64)
    for key in ("test_accuracy", "train_accuracy", "test_loss", "train_loss"):
        if key in cols and not np.issubdtype(cols[key].dtype, np.number):
            raise ZooFormatError(f"{mfile}: column '{key}' is not numeric")
    if "net_id" not in cols:
        if step == "final" and len(np.unique(cols["step"])) > 1:
            raise ZooFormatError(f"{mfile}: has no 'modeldir' column, so the rows of one network's checkpoints "
                                 f"cannot be told apart and its final checkpoint is unknown; pass step=None "
                                 f"(every row) or a step number")
        cols["net_id"] = np.asarray([f"row{i}" for i in range(nrows)])
    cols["net_id"] = cols["net_id"].astype(str)
    step_col = cols["step"]
    _, inv = np.unique(cols["net_id"], return_inverse=True)
    best = np.full(inv.max() + 1, np.iinfo(np.int64).min)
    np.maximum.at(best, inv, step_col)
    final = step_col == best[inv]
    keep = np.ones(nrows, dtype=bool)
    if activation is not None:
        keep &= cols["activation"] == activation
        if not keep.any():
            raise ZooFormatError(f"{mfile}: no network has activation {activation!r} (found "
                                 f"{sorted(set(cols['activation'].tolist()))})")
    if step == "final":
        keep &= final
    elif step is not None:
        check_step(mfile, step, step_col[keep], activation)
        keep &= step_col == int(step)
    cols["final"] = final
    sel = np.nonzero(keep)[0]
    if nonfinite == "drop":
        ok = np.isfinite(np.asarray(weights[sel])).all(axis=1) if sel.size else np.zeros(0, bool)
        sel = sel[ok]
    archs: dict[str, Architecture] = {}
    params: dict[str, np.ndarray] = {}
    net_row = np.zeros(len(sel), dtype=np.int64)
    acts = cols["activation"][sel]
    arch_col = np.empty(len(sel), dtype=object)
    for act in dict.fromkeys(acts.tolist()):
        pos = np.nonzero(acts == act)[0]
        try:
            arch, plan = _architecture(rows, path / "layout.csv", act, int(conv_stride), input_shape, padding)
            arch.spec  # noqa: B018  (fails early on an unconvertible layout)
        except ValueError as exc:
            if isinstance(exc, ZooFormatError):
                raise
            raise ZooFormatError(f"{path}: activation {act!r} is not supported ({exc})") from None
        w = np.asarray(weights[sel[pos]], dtype=np.float32)
        if nonfinite == "error":
            bad = ~np.isfinite(w).all(axis=1)
            if bad.any():
                raise ZooFormatError(f"{wfile}: weights hold NaN or infinite values (rows "
                                     f"{sel[pos][bad][:5].tolist()})")
        params[arch.name] = _to_torch(w, arch, plan)
        archs[arch.name] = arch
        net_row[pos] = np.arange(len(pos))
        arch_col[pos] = arch.name
    columns = {k: v[sel] for k, v in cols.items()}
    columns["arch"] = arch_col.astype(str) if len(sel) else np.array([], dtype=str)
    meta = {"format": "small-cnn-zoo", "path": str(path), "source": str(path),
            "filter": {"activation": activation, "step": step}, "padding": padding}
    return Zoo(archs, params, net_row, columns, None, meta, "cnn")
