"""Building embedded zoos: chunked, parallel, resumable, shardable; merging shards.

A build of ``nets`` networks is cut into chunks of ``chunk_size`` consecutive networks. Chunk c depends only
on (kind, options, seed, c), so a build gives the same zoo whatever the number of workers, shards or
restarts. Chunks are written (atomically) to ``OUT/chunks/chunk_XXXXX/`` in our zoo format; a restarted build
skips the chunks already there. ``--shard i/n`` builds the chunks ``c ≡ i (mod n)``; :func:`merge_shards`
joins shard directories. When every chunk is present the zoo is assembled in ``OUT`` and the chunks removed.

Worker processes are spawned (fresh interpreters), so a script that calls :func:`build_zoo` with ``workers > 1``
needs the usual ``if __name__ == "__main__":`` guard.

Bit-identical files. Every chunk is computed with exactly one intra-op thread (torch, OpenMP, MKL and oneDNN),
whatever the caller's thread settings, the number of workers or the machine's load: the float reductions of
the convolutions and matrix products (their gradients above all) are split across threads, and a different
thread count sums in a different order — a 256-net build with two threads per chunk gave other weights than
with one. Parallelism comes from worker processes, one chunk each at a time. The same (kind, nets, seed,
chunk_size, options) then gives byte-identical ``params_*.npy`` and ``metrics.csv`` with any ``workers``,
``shard`` split or restart, on one machine type. Across CPU generations the vectorised kernels themselves
(ATen, oneDNN, MKL pick AVX2 or AVX-512 code at run time) can round differently; compare zoos by their content
digest (:func:`monomial_gmn.data.zoo_digest`) rather than trusting a path.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .._errors import ZooFormatError
from .._io import atomic_write_json, read_json
from ._build_cnn import CNN_DEFAULTS, build_cnn_chunk
from ._build_options import check_build_options
from ._build_siren import SIREN_DEFAULTS, build_siren_chunk
from ._format import is_own_format, read_zoo, save_zoo
from ._zoo import Zoo

__all__ = ["build_zoo", "merge_shards", "KINDS", "concat_zoos", "build_config"]

KINDS = {"digits-cnn": (CNN_DEFAULTS, build_cnn_chunk, 64), "digits-siren": (SIREN_DEFAULTS, build_siren_chunk, 128)}


def _versions() -> dict[str, str]:
    import sklearn
    import torch_geometric

    from .._version import __version__

    return {"monomial_gmn": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "torch_geometric": torch_geometric.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def build_config(kind: str, nets: int, seed: int, chunk_size: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """The configuration :func:`build_zoo` records in ``zoo.json`` (``meta.config``) for these arguments: kind,
    nets, seed, chunk size (the kind's default when None) and every option (defaults filled in, JSON values).
    ValueError for an unknown kind or option, or fewer than one network."""
    if kind not in KINDS:
        raise ValueError(f"unknown zoo kind {kind!r}; expected one of {sorted(KINDS)}")
    defaults, _, default_chunk = KINDS[kind]
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"{kind}: unknown option(s) {sorted(unknown)}; known: {sorted(defaults)}")
    if nets < 1:
        raise ValueError("nets must be at least 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):  # 0 silently meant the default, negatives broke the chunks
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size!r}")
    check_build_options(kind, options, defaults)
    opts = json.loads(json.dumps({**defaults, **options}))   # plain JSON values (lists, not tuples)
    return {"kind": kind, "nets": int(nets), "seed": int(seed), "chunk_size": int(chunk_size or default_chunk),
            "options": opts}


def _chunk_dir(out: Path, c: int) -> Path:
    return out / "chunks" / f"chunk_{c:05d}"


def _build_chunk(config: dict[str, Any], c: int, out: str) -> int:
    """Build and write chunk c (runs in a worker process or inline) with one intra-op thread (see the module
    docstring: the thread count changes the float results)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, fn, _ = KINDS[config["kind"]]
        start = c * config["chunk_size"]
        end = min(start + config["chunk_size"], config["nets"])
        zoo = fn(config["options"], config["seed"], start, end, c)
        target = _chunk_dir(Path(out), c)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        save_zoo(zoo, tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        return end - start
    finally:
        torch.set_num_threads(prev)


def _parse_shard(shard: tuple[int, int] | str | None) -> tuple[int, int] | None:
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            i, n = (int(s) for s in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {shard!r}") from None
    else:
        i, n = (int(s) for s in shard)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= i < n")
    return i, n


def build_zoo(kind: str, out: str | os.PathLike, nets: int, workers: int = 1, seed: int = 0,
              shard: tuple[int, int] | str | None = None, chunk_size: int | None = None,
              progress: bool = True, **options: Any) -> Path:
    """Build an embedded zoo (``"digits-cnn"`` or ``"digits-siren"``) into directory ``out``.

    Args:
        nets: number of networks (digits-cnn: each also has checkpoint rows, see ``checkpoints``).
        workers: parallel processes, each building one chunk at a time with one thread (the files do not depend
            on ``workers``, the caller's thread count or the machine's load; see the module docstring).
        seed: everything (hyperparameters, inits, minibatches) follows from it.
        shard: ``(i, n)`` or ``"i/n"``: build only chunks ``c % n == i`` (then :func:`merge_shards`).
        chunk_size: networks per chunk (default 64 for digits-cnn, 128 for digits-siren).
        options: kind-specific settings (``CNN_DEFAULTS`` / ``SIREN_DEFAULTS``), e.g. ``epochs=[1, 3]``,
            ``families=['gap', 'flat']``, ``activations=['relu']``; ``resolution=16``, ``copies=2``.

    Returns:
        ``out`` (a finished zoo, loadable with :func:`load_zoo`; for a shard, the shard directory).
    """
    out = Path(out)
    config = build_config(kind, nets, seed, chunk_size, options)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    sh = _parse_shard(shard)
    n_chunks = math.ceil(config["nets"] / config["chunk_size"])
    mine = [c for c in range(n_chunks) if sh is None or c % sh[1] == sh[0]]
    bfile = out / "build.json"
    if is_own_format(out) and not bfile.exists():
        try:
            done = json.loads((out / "zoo.json").read_text()).get("meta", {}).get("config")
        except (ValueError, UnicodeDecodeError, RecursionError, AttributeError):
            done = None
        if done == config and sh is None:
            return out                                  # the same build finished earlier: nothing to do
        raise ValueError(f"{out} already holds a finished zoo built with other settings; choose another --out "
                         f"or delete it")
    if bfile.exists():
        prev = read_json(bfile, "build record", kind=None, error=ZooFormatError)
        if not isinstance(prev, dict) or prev.get("config") != config:
            raise ValueError(f"{out} holds a build with another configuration ({bfile}); use another --out "
                             f"or the same settings to resume")
    atomic_write_json(bfile, {"config": config, "shard": list(sh) if sh else None, "versions": _versions()})
    todo = [c for c in mine if not is_own_format(_chunk_dir(out, c))]
    sizes = {c: min((c + 1) * config["chunk_size"], config["nets"]) - c * config["chunk_size"] for c in mine}
    bar = tqdm(total=sum(sizes.values()), initial=sum(sizes.values()) - sum(sizes[c] for c in todo),
               desc=f"building {kind}", unit="net", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(todo) <= 1:
            for c in todo:
                bar.update(_build_chunk(config, c, str(out)))
        else:
            # spawn, not fork: a child forked from a parent whose OpenMP pool already ran several threads can hang
            # in its first parallel region (GNU libgomp is not fork-safe); spawned workers start clean
            ctx = get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
                futs = [pool.submit(_build_chunk, config, c, str(out)) for c in todo]
                for f in as_completed(futs):
                    bar.update(f.result())
    finally:
        bar.close()
    if sh is not None and sh[1] > 1:
        return out
    return _assemble([out], out, config)


def concat_zoos(zoos: Sequence[Zoo], meta: dict[str, Any] | None = None) -> Zoo:
    """One zoo holding the networks of ``zoos`` in order (architectures matched by their layers)."""
    if not zoos:
        raise ValueError("concat_zoos needs at least one zoo")
    archs, params, rows_by_arch = {}, {}, {}
    by_key: dict[str, str] = {}
    net_row, arch_col = [], []
    for z in zoos:
        rename = {}
        for name, a in z.archs.items():
            key = a.key()
            if key not in by_key:
                new = name if name not in archs else f"{name}-{len(archs)}"
                by_key[key], archs[new], rows_by_arch[new] = new, a, []
            rename[name] = by_key[key]
        col = z.columns["arch"].astype(str)
        zr = np.empty(len(z), dtype=np.int64)
        za = np.empty(len(z), dtype=object)
        for name in z.archs:
            sel = np.nonzero(col == name)[0]
            if sel.size == 0:
                continue
            tgt = rename[name]
            start = sum(blk.shape[0] for blk in rows_by_arch[tgt])
            rows_by_arch[tgt].append(np.asarray(z.params[name][z.net_row[sel]], dtype=np.float32))
            zr[sel] = start + np.arange(sel.size)
            za[sel] = tgt
        net_row.append(zr)
        arch_col.append(za)
    for name, blocks in rows_by_arch.items():
        params[name] = np.concatenate(blocks) if blocks else np.zeros((0, archs[name].num_params), np.float32)
    keys = list(zoos[0].columns)
    for z in zoos[1:]:
        if list(z.columns) != keys:
            raise ValueError("the zoos to join have different metadata columns")
    columns = {k: np.concatenate([z.columns[k] for z in zoos]) for k in keys}
    columns["arch"] = np.concatenate(arch_col).astype(str)
    images = None
    if all(z.images is not None for z in zoos):
        images = np.concatenate([np.asarray(z.images) for z in zoos])
    kinds = {z.task_kind for z in zoos}
    if len(kinds) != 1:
        raise ValueError(f"cannot join zoos of different task kinds {sorted(kinds)}")
    return Zoo(archs, params, np.concatenate(net_row), columns, images, {**zoos[0].meta, **(meta or {})},
               kinds.pop())


def _assemble(dirs: Sequence[Path], out: Path, config: dict[str, Any]) -> Path:
    n_chunks = math.ceil(config["nets"] / config["chunk_size"])
    where: dict[int, Path] = {}
    for d in dirs:
        for c in range(n_chunks):
            if c not in where and is_own_format(_chunk_dir(d, c)):
                where[c] = _chunk_dir(d, c)
    missing = [c for c in range(n_chunks) if c not in where]
    if missing:
        raise ZooFormatError(f"cannot assemble the zoo: chunk(s) {missing[:10]} of {n_chunks} are missing "
                             f"(build the remaining shards, or rerun the build to resume)")
    zoo = concat_zoos([read_zoo(where[c]) for c in range(n_chunks)])
    zoo.meta = {"kind": config["kind"], "seed": config["seed"], "config": config, "versions": _versions()}
    save_zoo(zoo, out)
    for d in dirs:
        if (d / "chunks").exists() and d.resolve() == out.resolve():
            shutil.rmtree(d / "chunks")
    if (out / "build.json").exists():
        (out / "build.json").unlink()
    return out


def merge_shards(dirs: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Join shard directories (from ``build_zoo(..., shard=(i, n))``) into one finished zoo at ``out``."""
    dirs = [Path(d) for d in dirs]
    configs = []
    for d in dirs:
        f = d / "build.json"
        if not f.is_file():
            raise ZooFormatError(f"{d}: not a shard directory (no build.json)")
        try:
            config = json.loads(f.read_text())["config"]
            ok = build_config(config["kind"], config["nets"], config["seed"], config["chunk_size"],
                              config["options"]) == config   # the very record build_zoo writes, checked
        except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError):
            ok = False
        if not ok:
            raise ZooFormatError(f"{f}: malformed build record")
        configs.append(config)
    if any(c != configs[0] for c in configs[1:]):
        raise ValueError("the shards were built with different configurations (kind, nets, seed or options)")
    out = Path(out)
    if is_own_format(out):
        raise ValueError(f"{out} already holds a finished zoo; choose another --out")
    return _assemble(dirs, out, configs[0])
