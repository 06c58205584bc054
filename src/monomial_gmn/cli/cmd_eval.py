"""``monomial-gmn eval``: evaluate a finished run under symmetry augmentation of the test nets."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train import _cli_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a trained run, optionally on transformed test nets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate the selected model of RUN (its selected weights, or its fitted trees) on the zoo's\n"
                    "test split, with the test nets transformed by random elements of their monomial group.\n"
                    "Prints a table, writes RUN/eval.json (RUN/eval_train.json, RUN/eval_val.json for --split\n"
                    "train / val). The run's own zoo is refused if its networks changed since training;\n"
                    "--zoo evaluates on another zoo on purpose.",
        epilog="examples:\n"
               "  monomial-gmn eval runs/m0\n"
               "  monomial-gmn eval runs/m0 --augment none,scale:10,scale:1000,sign\n"
               "  monomial-gmn eval runs/m0 --zoo other_zoo/ --augment 3\n"
               "--augment (comma-separated): none; scale:S (factors U[1, S] on ReLU neurons, random signs on\n"
               "tanh/sin neurons, random permutations); sign (signs and permutations only); a level k means\n"
               "scale:10^k.")
    p.add_argument("run", help="run directory written by 'monomial-gmn train'")
    p.add_argument("--zoo", default=None, help="evaluate on this zoo instead of the run's")
    p.add_argument("--augment", default="none", help="augmentations, comma-separated (default: none)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="(default: test)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the test-time transformations")
    p.set_defaults(func=run)


def format_table(result: dict) -> str:
    rows = result["rows"]
    keys = [k for k in rows[0] if k != "augment"]
    head = ["augment"] + keys
    body = [[r["augment"]] + [f"{r[k]:.4f}" for k in keys] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [f"{result['model']} on {result['task']} ({result['split']} split)", line(head),
           line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_json
    from ..train import evaluate_run

    augments = [a.strip() for a in args.augment.split(",") if a.strip()]
    if not augments:
        raise ValueError("--augment is empty")
    result = _cli_errors(args, evaluate_run, args.run, augments, zoo_path=args.zoo, split=args.split,
                         seed=args.seed)
    print(format_table(result))
    path = Path(args.run) / eval_file_name(args.split)
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return 0


def eval_file_name(split: str) -> str:
    """``eval.json`` for the test split, ``eval_<split>.json`` for the others (so none overwrites another)."""
    return "eval.json" if split == "test" else f"eval_{split}.json"
