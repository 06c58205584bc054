"""Shared helpers of the experiment scripts: the zoo they build or reuse, and the provenance they record."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def machine() -> dict[str, Any]:
    """Where a result came from: CPU, cores, OS, library versions."""
    import numpy as np
    import sklearn
    import torch
    import torch_geometric

    import monomial_gmn

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "monomial_gmn": monomial_gmn.__version__,
            "cuda": torch.cuda.is_available()}


def command() -> str:
    """The command line that produced a result, relative to the repository root."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def ensure_zoo(kind: str, path: str | Path, nets: int, seed: int = 0, workers: int = 2, **options: Any) -> Path:
    """The zoo at ``path``; built with ``monomial_gmn.data.build_zoo`` (deterministic in ``seed``) if absent
    or unfinished (a restarted build resumes its chunks)."""
    from monomial_gmn.data import build_zoo, detect_format

    path = Path(path)
    try:
        detect_format(path)
        if not (path / "build.json").exists():
            return path
    except Exception:
        pass
    print(f"building {kind} zoo of {nets} nets (seed {seed}) in {path} ...", flush=True)
    return Path(build_zoo(kind, path, nets=nets, workers=workers, seed=seed, **options))


def write_meta(out: Path, **extra: Any) -> None:
    """``out/meta.json``: command, machine, UTC time, plus ``extra``; with a ``zoo`` path (relative to the
    repository root or absolute) and no ``zoo_digest``, the zoo's content digest (``monomial_gmn.data.zoo_digest``)
    is added, so every results directory names the very networks it was computed on."""
    from monomial_gmn.io import atomic_write_json

    if isinstance(extra.get("zoo"), (str, Path)) and "zoo_digest" not in extra:
        from monomial_gmn.data import zoo_digest

        path = Path(extra["zoo"]) if Path(extra["zoo"]).is_absolute() else ROOT / extra["zoo"]
        if path.exists():
            extra["zoo_digest"] = zoo_digest(path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "meta.json", {"command": command(), "utc": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                                  time.gmtime()),
                                          "machine": machine(), **extra})


def load_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def git_state() -> dict[str, Any]:
    """``commit`` (``git rev-parse HEAD``) and ``dirty_src``: files under src/ that differ from it (the tree is
    shared, so a run may see uncommitted library edits)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                                  check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    # porcelain lines are "XY path": the path starts at column 3 (do not strip the output: X may be a space)
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines() if len(line) > 3]
    return {"commit": git("rev-parse", "HEAD").strip() or None, "dirty_src": dirty}


def parse_list(text: str, cast=float) -> list:
    return [cast(x) for x in text.split(",") if x.strip()]


def parse_extra_model(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``NAME:MODEL:JSON`` (an ``--extra-model`` value) → (name, registered model, build_model keyword args)."""
    parts = spec.split(":", 2)
    if len(parts) != 3:
        raise SystemExit(f"--extra-model {spec!r}: expected NAME:MODEL:JSON")
    name, model, kw = parts
    try:
        kwargs = json.loads(kw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--extra-model {spec!r}: the options are not valid JSON ({exc.msg})") from None
    if not isinstance(kwargs, dict):
        raise SystemExit(f"--extra-model {spec!r}: the options must be a JSON object")
    return name, model, kwargs
