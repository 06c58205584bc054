"""``monomial-gmn compare``: models × seeds on one zoo, evaluated at every augmentation level."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train import TASK_NAMES, _json_object, add_training_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare models across augmentation levels (table + plot)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train each model with seeds 0..K-1, select on the validation nets, and evaluate the selected\n"
                    "model on the test nets transformed at every augmentation level (level k: factors U[1, 10^k] on\n"
                    "ReLU neurons, random signs on tanh/sin neurons; level 0: untransformed).\n\n"
                    "--tune N gives every model the same budget: N configurations drawn (deterministically from\n"
                    "--tune-seed) from its own search space (help(monomial_gmn.models); SGD models: lr, weight\n"
                    "decay, width, depth, epochs, dropout, readout options; boosted trees: their tree options).\n"
                    "For each seed every configuration is trained and scored on validation only; the best is\n"
                    "the only one evaluated on test. Without --tune there is one trial: the flags' configuration.\n\n"
                    "Writes DIR/results.json (rows {model, task, augment_level, seed, metric, value, split\n"
                    "(val|test), trial, selected}), DIR/trials.json (every trial's configuration and validation\n"
                    "metrics), DIR/meta.json (zoo path and content digest, search spaces), DIR/table.md and\n"
                    "DIR/tau_vs_scale.png.",
        epilog="examples:\n"
               "  monomial-gmn compare --zoo zoo/ --task generalization --models monomial,gmn,statnn \\\n"
               "      --augment-levels 0,1,2,3,4 --out cmp/ --seeds 3\n"
               "  monomial-gmn compare --zoo zoo/ --task generalization --models monomial,gmn,np,statnn,statnn-gbm \\\n"
               "      --activation relu --tune 8 --seeds 3 --out tuned/\n"
               "  monomial-gmn compare --zoo zoo/ --task generalization --models monomial,statnn --tune 4 \\\n"
               "      --tune-space '{\"epochs\": [5, 10], \"monomial\": {\"hidden_dim\": [64]}}' --out quick/\n"
               "  monomial-gmn compare --zoo zoo/ --task generalization --models invariant-gbm --append --out cmp/\n"
               "Re-running with the same --out reuses the finished runs in DIR/runs/.\n"
               "--append adds models to DIR's results; it refuses a DIR whose results came from another zoo\n"
               "(content digest), task or activation.")
    p.add_argument("--zoo", required=True, help="zoo directory or file")
    p.add_argument("--task", required=True, help=f"one of: {', '.join(TASK_NAMES)}")
    p.add_argument("--models", default="monomial,gmn,statnn", help="comma-separated (default: monomial,gmn,statnn)")
    p.add_argument("--augment-levels", default="0,1,2,3,4", help="comma-separated levels k (default: 0,1,2,3,4)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model (default: 3)")
    p.add_argument("--tune", type=int, default=None, metavar="N",
                   help="N configurations per model from its search space, selected on validation (default: "
                        "no tuning, one trial)")
    p.add_argument("--tune-seed", type=int, default=0, help="seed of the configuration draws (default: 0)")
    p.add_argument("--tune-space", type=_json_object, default=None, metavar="JSON",
                   help="search-space overrides: a list is a choice, {\"log_uniform\": [lo, hi]} or {\"uniform\": "
                        "[lo, hi]} a range, null removes; top-level names apply to every model that tunes them, "
                        "names under a model's name to that model, e.g. '{\"epochs\": [10, 20]}'")
    p.add_argument("--append", action="store_true",
                   help="keep DIR's results of other models (refused if they came from another zoo digest, task "
                        "or activation)")
    p.add_argument("--train-augment", default="none", help="training augmentation of every run (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_training_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import compare, parse_levels, parse_models
    from .cmd_train import config_from_args

    models, levels = parse_models(args.models), parse_levels(args.augment_levels)
    if args.tune is not None and args.tune < 1:
        raise ValueError(f"--tune must be at least 1, got {args.tune}")
    if args.tune_space is not None and args.tune is None:  # it was silently ignored
        raise ValueError("--tune-space narrows the search of --tune N; without --tune there is one trial, the "
                         "flags' configuration (add --tune N, or set the options with their flags)")
    cfg = config_from_args(args, zoo=args.zoo, task=args.task, model=models[0], out=args.out,
                           augment=args.train_augment)
    cfg.validate()
    from ._io import check_out_dir

    check_out_dir(args.out)
    keep = ("epochs", "batch_size", "lr", "weight_decay", "hidden_dim", "num_layers", "patience", "edit",
            "device", "augment", "model_kwargs", "train_with")
    compare(args.zoo, args.task, models, levels, args.out, seeds=args.seeds, activation=args.activation,
            progress=not args.quiet, tune=args.tune, tune_seed=args.tune_seed, tune_space=args.tune_space,
            append=args.append, **{k: getattr(cfg, k) for k in keep})
    out = Path(args.out)
    print((out / "table.md").read_text())
    print(f"wrote {out / 'results.json'}, {out / 'trials.json'}, {out / 'meta.json'}, {out / 'table.md'}, "
          f"{out / 'tau_vs_scale.png'}")
    return 0
