"""Timing and machine facts: warm-up then repeated runs, median reported; load average; peak RSS."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from typing import Callable

import torch

__all__ = ["Timing", "time_it", "loadavg", "peak_rss_mb", "machine_info"]


class Timing(dict):
    """Seconds per call: wall clock ``median``, ``min``, ``max``, every repetition (``runs``), and the
    process CPU time of each repetition (``cpu_runs``, ``cpu_median``; summed over threads).

    On a shared machine ``cpu_median / median`` (per thread) shows the share of the CPU the run got; with
    one thread, ``cpu_median`` is what the run costs on a dedicated core.
    """


def time_it(fn: Callable[[], object], warmup: int, reps: int) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``reps`` times timed (``perf_counter`` and ``process_time``)."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    for _ in range(max(warmup, 0)):
        fn()
    runs, cpu = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing(median=statistics.median(runs), min=min(runs), max=max(runs), runs=runs,
                  cpu_median=statistics.median(cpu), cpu_runs=cpu)


def loadavg() -> list[float] | None:
    """``os.getloadavg()`` (1, 5, 15 min), or None where the platform lacks it."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``resource.getrusage(...).ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB on Linux


_THREAD_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def machine_info() -> dict:
    """Platform, Python/torch versions, CPU count and the current load."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "loadavg": loadavg(),
        # thread-pool settings inherited by every worker: OMP_WAIT_POLICY=PASSIVE keeps 2-thread runs from
        # spinning at barriers while the partner thread waits for a busy core (see bench_layers.md)
        "thread_env": {v: os.environ[v] for v in _THREAD_ENV if v in os.environ},
    }
