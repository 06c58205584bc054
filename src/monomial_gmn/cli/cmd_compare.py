"""``monomial-gmn compare``: models × seeds on one zoo, evaluated at every augmentation level."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train import TASK_NAMES, add_training_options, one_line_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare models across augmentation levels (table + plot)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train each model with seeds 0..K-1 and evaluate it on the test nets transformed at every\n"
                    "augmentation level (level k: factors U[1, 10^k] on ReLU neurons, random signs on tanh/sin\n"
                    "neurons; level 0: untransformed). Writes DIR/results.json (rows {model, task,\n"
                    "augment_level, seed, metric, value}), DIR/table.md and DIR/tau_vs_scale.png.",
        epilog="examples:\n"
               "  monomial-gmn compare --zoo zoo/ --task generalization --models monomial,gmn,statnn \\\n"
               "      --augment-levels 0,1,2,3,4 --out cmp/ --seeds 3\n"
               "  monomial-gmn compare --zoo zoo/ --task generalization --models monomial,statnn-gbm \\\n"
               "      --activation tanh --out cmp_tanh/\n"
               "Re-running with the same --out reuses the finished runs in DIR/runs/.\n"
               "--model-kwargs goes to every model of --models (compare one model's options per call).")
    p.add_argument("--zoo", required=True, help="zoo directory or file")
    p.add_argument("--task", required=True, help=f"one of: {', '.join(TASK_NAMES)}")
    p.add_argument("--models", default="monomial,gmn,statnn", help="comma-separated (default: monomial,gmn,statnn)")
    p.add_argument("--augment-levels", default="0,1,2,3,4", help="comma-separated levels k (default: 0,1,2,3,4)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model (default: 3)")
    p.add_argument("--train-augment", default="none", help="training augmentation of every run (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_training_options(p)
    one_line_errors(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import compare
    from ..train._compare import parse_levels, parse_models
    from .cmd_train import config_from_args

    models, levels = parse_models(args.models), parse_levels(args.augment_levels)
    cfg = config_from_args(args, zoo=args.zoo, task=args.task, model=models[0], out=args.out,
                           augment=args.train_augment)
    cfg.validate()
    keep = ("epochs", "batch_size", "lr", "weight_decay", "hidden_dim", "num_layers", "patience", "edit",
            "device", "augment", "model_kwargs", "train_with")
    compare(args.zoo, args.task, models, levels, args.out, seeds=args.seeds, activation=args.activation,
            progress=not args.quiet, **{k: getattr(cfg, k) for k in keep})
    out = Path(args.out)
    print((out / "table.md").read_text())
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'tau_vs_scale.png'}")
    return 0
