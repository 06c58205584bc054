"""Run the benchmark (same code and options as ``monomial-gmn bench``) and write the results files.

    python experiments/bench.py                      # full run -> experiments/results/bench.{json,md}
    python experiments/bench.py --quick --out /tmp/b.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from monomial_gmn.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    results = Path(__file__).resolve().parent / "results"
    if "--out" not in argv:
        argv += ["--out", str(results / ("bench_quick.json" if "--quick" in argv else "bench.json"))]
    if "--markdown" not in argv and "--quick" not in argv:
        argv += ["--markdown", str(results / "bench.md")]
    sys.exit(main(["bench", *argv]))
