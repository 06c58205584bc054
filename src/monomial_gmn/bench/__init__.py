"""Benchmarks: training/inference throughput, peak memory, conversion throughput, FLOP/s and scaling.

>>> from monomial_gmn.bench import run_bench, quick_config, format_table
>>> result = run_bench(quick_config(), progress=False)   # doctest: +SKIP
>>> print(format_table(result))                           # doctest: +SKIP

The command line is ``monomial-gmn bench`` (see ``--help``).
"""

from ._measure import (linear_fit, measure_conversion, measure_matmul, measure_model, measure_scaling,
                       measure_training)
from ._worker import run_in_subprocess
from ._models import MODEL_NAMES, ModelUnavailable, bench_model_names, build_bench_model
from ._report import format_markdown, format_table
from ._runner import TARGETS, BenchConfig, check_targets, plan_tasks, quick_config, run_bench
from ._shapes import SHAPES, BenchShape, cnn_zoo_net, siren_net, synthetic_zoo
from ._timing import loadavg, machine_info, peak_rss_mb, time_it

__all__ = [
    "BenchConfig", "run_bench", "plan_tasks", "quick_config", "check_targets", "TARGETS", "format_table", "format_markdown",
    "measure_conversion", "measure_matmul", "measure_model", "measure_scaling", "measure_training", "linear_fit",
    "run_in_subprocess",
    "MODEL_NAMES", "ModelUnavailable", "build_bench_model", "bench_model_names",
    "SHAPES", "BenchShape", "cnn_zoo_net", "siren_net", "synthetic_zoo",
    "time_it", "loadavg", "peak_rss_mb", "machine_info",
]
