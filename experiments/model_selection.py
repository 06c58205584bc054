"""Validation-only sweep of run configurations (the evidence behind the default run settings).

Trains every named configuration with seeds 0..K-1 on each activation subset of a zoo and records the
*validation* Kendall τ of the epoch each run selected (``RUN/metrics.json["val"]``). Test scores are never
computed (``train(..., evaluate_test=False)``), so nothing here can leak into the choice.

    python experiments/model_selection.py --zoo zoos/digits-cnn-2048 --seeds 2 \
        --configs '{"mono-h32": {"model": "monomial"}, "gmn-h64-e30": {"model": "gmn", "hidden_dim": 64,
                    "epochs": 30, "lr": 0.003}}'

A configuration is a JSON object of ``TrainConfig`` fields (``model`` required; ``model_kwargs`` for model
options); fields it leaves out take ``TrainConfig``'s defaults *at the time of the run*, which the results
record. Writes ``OUT/results.json`` (one row per activation × configuration × seed), ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(zoo: str, configs: dict, activations: list[str], seeds: int, runs: Path, progress: bool = False) -> list[dict]:
    """Train every (activation, configuration, seed); return rows with the validation metrics only."""
    from monomial_gmn.train import TrainConfig, train

    rows = []
    for act in activations:
        for name, cfg in configs.items():
            cfg = dict(cfg)
            model = cfg.pop("model")
            for seed in range(seeds):
                out = runs / act / f"{name}-s{seed}"
                tc = TrainConfig(zoo=zoo, task="generalization", model=model, out=str(out), activation=act, seed=seed,
                                 **cfg)
                t = time.perf_counter()
                train(tc, progress=progress, evaluate_test=False)
                met = json.loads((out / "metrics.json").read_text())
                rows.append({"activation": act, "config": name, "seed": seed, "val_tau": float(met["val"]["tau"]),
                             "best_epoch": met["best_epoch"], "seconds": round(time.perf_counter() - t, 1),
                             "settings": {k: v for k, v in dataclasses.asdict(tc).items()
                                          if k not in ("zoo", "out", "seed", "activation")}})
                print(json.dumps({k: rows[-1][k] for k in ("activation", "config", "seed", "val_tau")}), flush=True)
    return rows


def table(rows: list[dict], command: str, digest: str) -> str:
    acts = sorted({r["activation"] for r in rows})
    names = list(dict.fromkeys(r["config"] for r in rows))
    lines = ["# Model selection on validation", "", f"Command: `{command}`", "", f"Zoo digest: `{digest}`", "",
             "Validation Kendall τ of the selected epoch, mean ± std over seeds (test never computed).", "",
             "| configuration | " + " | ".join(acts) + " |", "|---|" + "---|" * len(acts)]
    for n in names:
        cells = []
        for a in acts:
            v = np.array([r["val_tau"] for r in rows if r["config"] == n and r["activation"] == a])
            cells.append(f"{v.mean():.3f} ± {v.std():.3f} (n={v.size})" if v.size else "")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(out: Path, zoo: str, rows: list[dict]) -> None:
    """``OUT/results.json`` (the zoo's digest and the rows) and ``OUT/table.md``."""
    from monomial_gmn.data import zoo_digest
    from monomial_gmn.io import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    digest = zoo_digest(zoo)
    atomic_write_json(out / "results.json", {"zoo_digest": digest, "rows": rows})
    atomic_write_text(out / "table.md", table(rows, " ".join(["python", *sys.argv]), digest))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", required=True)
    p.add_argument("--configs", required=True, help="JSON object {name: {TrainConfig fields}}")
    p.add_argument("--activations", default="relu,tanh")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "model_selection"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "experiments" / "model_selection"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    configs = json.loads(a.configs)
    if not isinstance(configs, dict) or not all(isinstance(c, dict) and "model" in c for c in configs.values()):
        raise SystemExit("--configs must be a JSON object of objects, each with a 'model'")
    rows = run(a.zoo, configs, [s for s in a.activations.split(",") if s], a.seeds, Path(a.runs))
    write(Path(a.out), a.zoo, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
