"""Run one measurement in a fresh Python process, so peak RSS and thread settings never mix.

Protocol: the parent starts ``python -m monomial_gmn.bench._worker`` with a JSON task on stdin
(``{"kind": "conversion"|"matmul"|"model"|"scaling"|"training", "threads": T, "kwargs": {...}, "env": {...}}``, ``env``
optional extra environment variables); the worker sets the
thread count, runs the measurement and prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_task", "run_in_subprocess"]

_KINDS = ("conversion", "matmul", "model", "scaling", "training")


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run a task in this process (the worker's body)."""
    import torch

    from . import _measure

    kind = task.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown bench task kind {kind!r}; expected one of {_KINDS}")
    threads = int(task.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    kwargs = dict(task.get("kwargs") or {})
    fn = {"conversion": _measure.measure_conversion, "matmul": _measure.measure_matmul,
          "model": _measure.measure_model, "scaling": _measure.measure_scaling,
          "training": _measure.measure_training}[kind]
    return fn(**kwargs)


def run_in_subprocess(task: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run ``task`` in a fresh interpreter; returns its result, or ``{"status": "error", "reason": ...}``."""
    if task.get("kind") not in _KINDS:
        return {"status": "error", "reason": f"unknown bench task kind {task.get('kind')!r}; expected one of {_KINDS}"}
    env = dict(os.environ)
    threads = int(task.get("threads") or 0)
    if threads > 0:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    for var, value in (task.get("env") or {}).items():
        env[str(var)] = str(value)
    src = str(Path(__file__).resolve().parents[2])  # the directory holding the monomial_gmn package
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "monomial_gmn.bench._worker"], input=json.dumps(task),
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"status": "error", "reason": f"worker exited with code {proc.returncode}: {tail}"}
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"status": "error", "reason": f"worker printed no JSON result: {lines[-1][:200]}"}
    out.setdefault("status", "ok")
    return out


def _main() -> int:
    task = json.loads(sys.stdin.read())
    result = run_task(task)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
