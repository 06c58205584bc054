"""``monomial-gmn zoo``: build embedded zoos, merge shards, describe any zoo."""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import CLIError

__all__ = ["register", "add_info_arguments"]

_EPILOG = """examples:
  monomial-gmn zoo build digits-cnn --out zoos/cnn --nets 1000 --workers 2
  monomial-gmn zoo build digits-cnn --out shard0 --nets 30000 --shard 0/8     # on 8 machines, then:
  monomial-gmn zoo merge shard0 shard1 shard2 shard3 shard4 shard5 shard6 shard7 --out zoos/cnn30k
  monomial-gmn zoo build digits-siren --out zoos/inr --nets 1797 --option resolution=28 --option copies=2
  monomial-gmn zoo info zoos/cnn            # our format, a Small CNN Zoo directory, or SIREN state dicts
  monomial-gmn zoo info path/to/small-cnn-zoo --activation relu --json
  monomial-gmn zoo info zoos/cnn --plot zoo.png   # + counts, accuracy histogram, weight norms per layer
A build resumes where it stopped (finished chunks on disk are kept) and gives the same zoo for the same
--seed whatever --workers or --shard."""


def _option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option must look like key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _step(text: str) -> str | int | None:
    if text == "final":
        return "final"
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--step must be 'final', 'all' or an integer, got {text!r}") from None


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``zoo info`` (shared so other commands can extend it, e.g. with ``--plot``)."""
    p.add_argument("path", help="zoo directory (our format, Small CNN Zoo, or a directory of SIREN state dicts)")
    p.add_argument("--activation", help="keep only networks with this activation (relu, tanh, sine, ...)")
    p.add_argument("--step", type=_step, default="final",
                   help="checkpoint: 'final' (default), 'all', or a step number")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="build, merge and describe zoos of trained networks",
                       description="Zoos of trained networks: build the embedded ones (digits-cnn, digits-siren) "
                                   "offline, merge shards, describe any supported zoo.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True

    b = zsub.add_parser("build", help="build an embedded zoo", epilog=_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Train a zoo offline from data shipped with scikit-learn (the 8×8 digits).")
    b.add_argument("kind", choices=["digits-cnn", "digits-siren"], help="which zoo")
    b.add_argument("--out", required=True, help="output directory (resumed if it holds an unfinished build)")
    b.add_argument("--nets", type=int, default=1000, help="number of networks (default: 1000)")
    b.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: 1)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    b.add_argument("--shard", help="build only shard i of n, as 'i/n' (then 'zoo merge')")
    b.add_argument("--chunk-size", type=int, help="networks per chunk (default: 64 cnn, 128 siren)")
    b.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="kind-specific setting, JSON value, e.g. epochs=[1,4] families='[\"gap\",\"flat\"]' "
                        "resolution=16 copies=2 (repeatable)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)

    m = zsub.add_parser("merge", help="join shard directories into one zoo", epilog=_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Join the shards of a sharded build (same kind, nets, seed, options).")
    m.add_argument("shards", nargs="+", help="shard directories")
    m.add_argument("--out", required=True, help="output directory")
    m.set_defaults(func=run_merge)

    i = zsub.add_parser("info", help="describe a zoo (any supported format)", epilog=_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Counts per activation and architecture, metric statistics, how it was built.")
    add_info_arguments(i)
    i.add_argument("--plot", metavar="PNG", help="also draw counts per activation/architecture, the target "
                                                "histogram and per-layer weight norms to this PNG, and print "
                                                "the same numbers as tables")
    i.set_defaults(func=run_info)


def run_build(args: argparse.Namespace) -> int:
    from ..data import build_zoo

    options = dict(args.option)
    out = build_zoo(args.kind, args.out, nets=args.nets, workers=args.workers, seed=args.seed, shard=args.shard,
                    chunk_size=args.chunk_size, progress=not args.quiet, **options)
    if args.shard and not args.shard.endswith("/1"):
        print(f"wrote shard {args.shard} to {out}; join the shards with 'monomial-gmn zoo merge'")
    else:
        print(f"wrote {args.kind} zoo to {out}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from ..data import merge_shards

    out = merge_shards(args.shards, args.out)
    print(f"merged {len(args.shards)} shard(s) into {out}")
    return 0


def _table(info: dict[str, Any], indent: int = 0) -> list[str]:
    lines = []
    pad = "  " * indent
    for key, value in info.items():
        if isinstance(value, dict) and value and all(isinstance(v, (int, float, str)) for v in value.values()):
            cells = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
            lines.append(f"{pad}{key:<14} {cells}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines += _table(value, indent + 1)
        else:
            lines.append(f"{pad}{key:<14} {_fmt(value)}")
    return lines


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def run_info(args: argparse.Namespace) -> int:
    from ..data import load_zoo

    zoo = load_zoo(args.path, activation=args.activation, step=args.step)
    if len(zoo) == 0:
        given = [f"--activation {args.activation}"] if args.activation is not None else []
        given += [] if args.step == "final" else [f"--step {'all' if args.step is None else args.step}"]
        raise CLIError(f"{args.path}: no network" + (f" matches {' '.join(given)}" if given else " in the zoo"))
    info = zoo.info()
    summary = None
    if getattr(args, "plot", None):
        from ..viz import plot_zoo

        summary = plot_zoo(zoo, args.plot)
        info["summary"] = summary
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print("\n".join(_table({k: v for k, v in info.items() if k != "summary"})))
        if summary is not None:
            from ..viz import format_zoo_summary

            print()
            print(format_zoo_summary(summary))
    if summary is not None:
        print(f"wrote {args.plot}")
    return 0
