"""``monomial-gmn bench``: throughput, peak memory, conversion speed, FLOP/s and scaling, against targets."""

from __future__ import annotations

import argparse
import sys

from .cmd_train import with_registered_models


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v.replace("_", "").replace("k", "000")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (e.g. 1k,3k,10k), got {text!r}")
    return vals


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="measure training/inference throughput, peak memory, conversion speed and scaling",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark the metanetworks on fixed synthetic graphs of the Small CNN Zoo shape (59 nodes,\n"
                    "688 edges, 3x3 kernels) and the SIREN shape (67 nodes, 1,120 edges): training throughput\n"
                    "(forward + backward + AdamW step), inference throughput, peak RSS (each configuration in a\n"
                    "fresh process), zoo conversion throughput (GraphSpec.stacked, one thread), achieved forward\n"
                    "FLOP/s against a dense matmul measured in the same process, and epoch time against zoo\n"
                    "size with a least-squares fit. Warm-up runs first; medians over repetitions are reported.\n"
                    "The full run takes several minutes on 2 cores; --quick takes seconds (numbers meaningless).",
        epilog="examples:\n"
               "  monomial-gmn bench --quick\n"
               "  monomial-gmn bench --models monomial --shapes cnn --scaling-sizes none\n"
               "  monomial-gmn bench --out experiments/results/bench.json --markdown experiments/results/bench.md\n"
               "Models that are not installed are reported as skipped with the reason.")
    p.add_argument("--quick", action="store_true",
                   help="tiny setting (batch 4, hidden 8, 1 layer, 256-net conversion, scaling 16/32/48)")
    p.add_argument("--models", type=_names, help="comma-separated: BENCH_MODELS (default: all)")
    p.add_argument("--shapes", type=_names, help="comma-separated: cnn,siren (default: both)")
    p.add_argument("--batch", type=int, help="nets per batch (default 64)")
    p.add_argument("--hidden", type=int, help="hidden width (default 128)")
    p.add_argument("--layers", type=int, help="message-passing layers (default 4)")
    p.add_argument("--threads", type=int, help="torch threads for model runs (default: all cores)")
    p.add_argument("--reps", type=int, help="timed repetitions, median reported (default 5)")
    p.add_argument("--warmup", type=int, help="untimed warm-up runs (default 2)")
    p.add_argument("--steps", type=int, help="training steps per repetition (default 1)")
    p.add_argument("--conversion-nets", type=int, help="zoo size for the conversion timing (default 10000)")
    p.add_argument("--scaling-sizes", help="comma-separated zoo sizes, or 'none' (default 1k,3k,10k,30k)")
    p.add_argument("--scaling-mode", choices=["infer", "train", "convert"],
                   help="epoch = model inference, training steps, or conversion+batching only (default infer)")
    p.add_argument("--scaling-hidden", type=int, help="hidden width of the scaling model (default 32)")
    p.add_argument("--scaling-layers", type=int, help="layers of the scaling model (default 2)")
    p.add_argument("--no-profile", action="store_true", help="skip the torch.profiler top-ops table")
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting and the matmul reference")
    p.add_argument("--malloc-mmap-threshold", type=int,
                   help="glibc MALLOC_MMAP_THRESHOLD_ (bytes) for the model processes: shows how much of the peak RSS "
                        "is heap retention (costs CPU time; diagnostic)")
    p.add_argument("--in-process", action="store_true",
                   help="run measurements in this process (faster start; peak RSS values then mix)")
    p.add_argument("--seed", type=int, help="seed of the synthetic zoos and models (default 0)")
    p.add_argument("--out", help="write the JSON result here (atomic)")
    p.add_argument("--markdown", help="also write a Markdown report here (atomic)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    with_registered_models(p, "BENCH_MODELS", trainable_only=True)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from ..bench import BenchConfig, quick_config

    cfg = quick_config() if args.quick else BenchConfig()
    for name in ("models", "shapes", "batch", "hidden", "layers", "threads", "reps", "warmup", "steps",
                 "conversion_nets", "scaling_mode", "scaling_hidden", "scaling_layers", "seed",
                 "malloc_mmap_threshold"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.scaling_sizes is not None:
        cfg.scaling_sizes = [] if args.scaling_sizes.strip().lower() == "none" else _int_list(args.scaling_sizes)
    cfg.profile = cfg.profile and not args.no_profile
    cfg.flops = cfg.flops and not args.no_flops
    cfg.isolate = not args.in_process
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_json, atomic_write_text
    from ..bench import format_markdown, format_table, run_bench

    try:
        cfg = config_from_args(args)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
    command = "monomial-gmn " + " ".join(sys.argv[1:]) if sys.argv and "bench" in sys.argv else None
    def save(result: dict, final: bool = False) -> None:
        # written after every measurement too (atomically), so a run cut short leaves its results so far
        result["meta"]["complete"] = final
        if args.out:
            atomic_write_json(args.out, result)
        if args.markdown:
            atomic_write_text(args.markdown, format_markdown(result))

    result = run_bench(cfg, progress=not args.no_progress, command=command,
                       log=lambda msg: print(f"note: {msg}", file=sys.stderr), on_update=save)
    save(result, final=True)
    print(format_table(result))
    for path in (args.out, args.markdown):
        if path:
            print(f"wrote {path}")
    return 0
