"""``monomial-gmn demo``: the main job on the embedded default.

Builds (or reuses) the embedded digits-cnn zoo, then for its ReLU and its tanh subsets trains MonomialGMN and
the baselines to predict each CNN's test accuracy, evaluates every model on test nets transformed at each
augmentation level, prints the comparison tables and saves the plots.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .cmd_train import add_run_size_options

DEFAULT_MODELS = "monomial,gmn,statnn,np,statnn-gbm"

#: Configured models the demo can list beside the registered ones: ``<model>+probe`` adds the readout parts to
#: every model (the exactly invariant feature readout where the model takes it, and 128 random probes: each
#: CNN's outputs on fixed random images, which the group does not change). The default compares the models on
#: their weights alone; ``--models monomial+probe,gmn+probe,...`` gives every model the same readouts.
VARIANTS = {
    "monomial+probe": ("monomial", {"feature_readout": True, "feature_slots": 4, "probes": 128}),
    "gmn+probe": ("gmn", {"feature_readout": True, "feature_slots": 4, "probes": 128}),
    "np+probe": ("np", {"feature_readout": True, "feature_slots": 4, "probes": 128}),
    "statnn+probe": ("statnn", {"feature_readout": True, "feature_slots": 4, "probes": 128}),
    "statnn-gbm+probe": ("statnn-gbm", {"probes": 128}),
}


def _default_cache() -> str:
    base = os.environ.get("MONOMIAL_GMN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "monomial_gmn")
    return base


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the main job on the embedded default (about 6 minutes on 2 cores, the zoo build "
                      "included; longer on a shared machine)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the embedded digits-cnn zoo (ReLU and tanh CNNs trained on scikit-learn's digits;\n"
                    "cached, so a second run reuses it), train MonomialGMN and the baselines to predict each\n"
                    "CNN's test accuracy on each subset, evaluate them on test nets rescaled by U[1, 10^k]\n"
                    "(ReLU) or sign-flipped (tanh) for k = 0..4, print the comparison tables and save the plots.",
        epilog="examples:\n"
               "  monomial-gmn demo\n"
               "  monomial-gmn demo --out demo_out --seeds 3\n"
               "  monomial-gmn demo --epochs 12 --hidden-dim 24 --num-layers 2     # a quicker, weaker run\n"
               "  monomial-gmn demo --nets 300 --models monomial,statnn --levels 0,2,4\n"
               f"The zoo is cached under --cache (default: $MONOMIAL_GMN_CACHE or ~/.cache/monomial_gmn).")
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--cache", default=None, help="zoo cache directory (default: ~/.cache/monomial_gmn)")
    p.add_argument("--nets", type=int, default=800, help="CNNs in the zoo, both activations (default: 800)")
    p.add_argument("--workers", type=int, default=2, help="processes building the zoo (default: 2)")
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help=f"comma-separated registered models, or MODEL+probe (the model with the invariant feature "
                        f"and probe readout parts: {', '.join(VARIANTS)}) (default: {DEFAULT_MODELS})")
    p.add_argument("--levels", default="0,1,2,3,4", help="augmentation levels (default: 0,1,2,3,4)")
    p.add_argument("--activations", default="relu,tanh", help="subsets to run (default: relu,tanh)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per model (default: 2)")
    add_run_size_options(p)   # the library's run defaults (chosen on validation), as `train` and `compare` use
    p.add_argument("--seed", type=int, default=0, help="zoo seed (default: 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for training (default: 1; these small models gain little from more)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import compare
    from ..train import parse_levels, parse_models

    import torch

    t0 = time.perf_counter()
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    models = parse_models(args.models, VARIANTS)
    levels = parse_levels(args.levels)
    acts = [a.strip() for a in args.activations.split(",") if a.strip()]
    for a in acts:
        if a not in ("relu", "tanh"):
            raise ValueError(f"--activations: {a!r} is not relu or tanh")
    if args.nets < 40:
        raise ValueError(f"--nets must be at least 40 (the split needs train, val and test nets), got {args.nets}")
    if args.seeds < 1 or args.epochs < 1:
        raise ValueError("--seeds and --epochs must be at least 1")
    zoo_dir = Path(args.cache or _default_cache()) / f"digits-cnn-n{args.nets}-s{args.seed}"
    zoo_dir = _ensure_zoo(zoo_dir, args)
    out = Path(args.out)
    torch.set_num_threads(args.threads)
    tables = []
    for act in acts:
        print(f"\n== {act} nets: training {', '.join(models)} × {args.seeds} seed(s) ==", flush=True)
        compare(str(zoo_dir), "generalization", models, levels, out / act, seeds=args.seeds, activation=act,
                variants=VARIANTS, epochs=args.epochs, hidden_dim=args.hidden_dim, num_layers=args.num_layers,
                batch_size=args.batch_size, lr=args.lr)
        tables.append((act, (out / act / "table.md").read_text()))
    print("\nPredicting CNN test accuracy from weights (Kendall tau on the test split; level k = test nets"
          "\ntransformed by factors U[1, 10^k] on ReLU neurons, random signs on tanh neurons):\n")
    for act, table in tables:
        print(table)
        print(f"plot: {out / act / 'tau_vs_scale.png'}\n")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; results in {out}/")
    return 0


def _ensure_zoo(zoo_dir: Path, args: argparse.Namespace) -> Path:
    from ..data import build_zoo, load_zoo

    if zoo_dir.exists():
        try:
            zoo = load_zoo(zoo_dir)
            if len(zoo) >= args.nets:
                print(f"reusing the cached zoo {zoo_dir} ({len(zoo)} nets)", flush=True)
                return zoo_dir
        except Exception as exc:  # a broken cache (e.g. killed mid-build) is rebuilt, not trusted
            print(f"rebuilding the cached zoo {zoo_dir}: {str(exc).splitlines()[0] if str(exc) else exc}")
    print(f"building the digits-cnn zoo ({args.nets} CNNs, {args.workers} workers) into {zoo_dir}", flush=True)
    t = time.perf_counter()
    build_zoo("digits-cnn", out=zoo_dir, nets=args.nets, workers=args.workers, seed=args.seed, progress=True)
    print(f"zoo built in {time.perf_counter() - t:.0f} s", flush=True)
    return zoo_dir
