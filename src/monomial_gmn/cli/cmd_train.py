"""``monomial-gmn train``: train a metanetwork on a zoo (resumable; runs under torchrun for several processes)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

TASK_NAMES = ("generalization", "inr-classification", "inr-editing")


def one_line_errors(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make argparse report a bad or missing option in one line (exit code 2) instead of usage + error."""

    def error(message: str):
        print(f"{p.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    p.error = error  # type: ignore[method-assign]
    return p


def add_run_size_options(p: argparse.ArgumentParser) -> None:
    """--epochs, --batch-size, --lr, --hidden-dim, --num-layers with :class:`TrainConfig`'s defaults (one source;
    chosen on validation): shared by ``train``, ``compare`` and ``demo``."""
    from .._defaults import TRAIN_DEFAULTS as d
    p.add_argument("--epochs", type=int, default=d["epochs"], help=f"training epochs (default: {d['epochs']})")
    p.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help=f"nets per step, summed over processes (default: {d['batch_size']})")
    p.add_argument("--lr", type=float, default=d["lr"], help=f"AdamW learning rate (default: {d['lr']:g})")
    p.add_argument("--hidden-dim", type=int, default=d["hidden_dim"],
                   help=f"metanetwork width (default: {d['hidden_dim']})")
    p.add_argument("--num-layers", type=int, default=d["num_layers"],
                   help=f"metanetwork depth (default: {d['num_layers']})")


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``compare``; the defaults are :class:`TrainConfig`'s (one source)."""
    from .._defaults import TRAIN_DEFAULTS as d
    add_run_size_options(p)
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                   help=f"AdamW weight decay (default: {d['weight_decay']:g})")
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a better validation metric (default: 0 = off)")
    p.add_argument("--activation", choices=("relu", "tanh"), default=None,
                   help="use only the zoo's nets with this recorded activation (default: all)")
    p.add_argument("--train-with", default="", metavar="ACTS",
                   help="also train on the train and val nets of these other activations, e.g. tanh; validation "
                        "and test stay --activation's own nets (default: none)")
    p.add_argument("--edit", choices=("dilate", "contrast"), default="dilate",
                   help="inr-editing target transformation (default: dilate)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)")
    p.add_argument("--model-kwargs", type=_json_object, default={}, metavar="JSON",
                   help="model options as a JSON object, e.g. '{\"feature_readout\": true, \"probes\": 128}' for "
                        "MonomialGMN's invariant-feature and probe readout; options under a model's name go to that "
                        "model only, e.g. '{\"monomial\": {\"probes\": 128}, \"invariant-gbm\": {\"max_iter\": "
                        "200}}'. Width, depth, readout and outputs come from --hidden-dim, --num-layers and the task "
                        "(default: {})")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"probes\": 128}}', got {text!r}")
    return value


def with_registered_models(p: argparse.ArgumentParser, token: str, trainable_only: bool = False) -> None:
    """Replace ``token`` in ``p``'s help by the registered models (:func:`monomial_gmn.models.list_models`; only
    the SGD-trained ones with ``trainable_only``), read when the help is shown: the registry imports numpy,
    and building the parser must not."""
    plain = p.format_help

    def format_help() -> str:
        from ..models import list_models, model_info

        names = [m for m in list_models() if not trainable_only or model_info(m).trainable]
        return plain().replace(token, ", ".join(names) if not trainable_only else ",".join(names))

    p.format_help = format_help  # type: ignore[method-assign]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a metanetwork on a zoo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a metanetwork on a zoo of networks and write RUN/metrics.json (validation and test\n"
                    "metrics of the weights selected on validation), RUN/model.pt and RUN/checkpoint.pt.\n"
                    "Tasks: generalization (predict CNN test accuracy; Kendall tau, R^2, MSE),\n"
                    "inr-classification (accuracy), inr-editing (MSE of the edited INR's rendering).",
        epilog="examples:\n"
               "  monomial-gmn train --zoo zoo/ --task generalization --model monomial --out runs/m0\n"
               "  monomial-gmn train --zoo zoo/ --task generalization --model gmn --augment 2 --out runs/g0\n"
               "  monomial-gmn train --zoo zoo/ --task generalization --model monomial --out runs/m0 --resume\n"
               "  monomial-gmn train --zoo zoo/ --task generalization --model statnn --activation tanh --out r\n"
               "  monomial-gmn train --zoo zoo/ --task generalization --model monomial --activation relu \\\n"
               "      --train-with tanh --out runs/r1   # train on ReLU + tanh nets, validate/test on ReLU nets\n"
               "  monomial-gmn train --zoo zoo/ --task generalization --model monomial --out runs/p0 \\\n"
               "      --model-kwargs '{\"feature_readout\": true, \"probes\": 128}'   # + invariant features, probes\n"
               "  torchrun --nproc_per_node=2 -m monomial_gmn.cli train --zoo zoo/ --task generalization \\\n"
               "      --model monomial --out runs/ddp      # same entry point, DistributedDataParallel\n"
               "--augment: none, a level k (factors U[1, 10^k] on ReLU neurons, random signs on tanh/sin\n"
               "neurons), scale:S or sign. A run killed at any moment continues with --resume and ends\n"
               "with the same metrics as an uninterrupted run.")
    p.add_argument("--zoo", required=True, help="zoo directory or file (any supported format)")
    p.add_argument("--task", required=True, help=f"one of: {', '.join(TASK_NAMES)}")
    p.add_argument("--model", required=True, help="one of: MODEL_NAMES (the registry, monomial_gmn.models)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--augment", default="none", help="training augmentation (default: none)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default: 100)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_training_options(p)
    with_registered_models(p, "MODEL_NAMES")
    p.set_defaults(func=run)


def cli_message(message: str, args: argparse.Namespace | None = None) -> str:
    """A library message in the command line's words: ``TrainConfig.hidden_dim`` → ``--hidden-dim``,
    ``resume=True`` → ``--resume`` (``TrainConfig.augment`` is ``--train-augment`` under ``compare``)."""
    flags = {"augment": "--train-augment"} if args is not None and hasattr(args, "train_augment") else {}
    flags.update(zoo_path="--zoo")
    message = re.sub(r"TrainConfig\.(\w+)", lambda m: flags.get(m.group(1), "--" + m.group(1).replace("_", "-")),
                     message)
    return message.replace("resume=True", "--resume").replace("(zoo_path)", "(--zoo)")


def _cli_errors(args: argparse.Namespace, fn, *a, **kw):
    """``fn(*a, **kw)``; a user error's message is re-raised in the command line's words (:func:`cli_message`)."""
    from . import CLIError

    try:
        return fn(*a, **kw)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        msg = cli_message(str(exc), args)
        if msg == str(exc):
            raise
        raise CLIError(msg) from None


def config_from_args(args: argparse.Namespace, **over):
    """The TrainConfig of the command line's options, validated (errors name the flags)."""
    from ..train import TrainConfig

    fields = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                  hidden_dim=args.hidden_dim, num_layers=args.num_layers, patience=args.patience,
                  activation=args.activation, train_with=args.train_with, edit=args.edit, device=args.device,
                  model_kwargs=dict(args.model_kwargs))
    fields.update(over)
    cfg = TrainConfig(**fields)
    _cli_errors(args, cfg.validate)
    return cfg


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..train import train
    from . import CLIError

    out = Path(args.out)
    if args.resume and not out.exists():
        raise CLIError(f"--resume: {out} does not exist, so there is no run to resume (leave out --resume to "
                       f"start one there)")
    if args.resume and not (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists():
        print(f"note: {out} holds no checkpoint yet; --resume starts the run from step 0", file=sys.stderr)
    cfg = config_from_args(args, zoo=args.zoo, task=args.task, model=args.model, out=args.out,
                           augment=args.augment, seed=args.seed, checkpoint_every=args.checkpoint_every)
    from ._io import check_out_dir

    check_out_dir(out)
    result = _cli_errors(args, train, cfg, resume=args.resume, progress=not args.quiet)
    summary = {"val": result["val"], "test": result["test"], "best_epoch": result["best_epoch"],
               "params": result["params"], "train_seconds": result["train_seconds"]}
    if int(os.environ.get("RANK", "0")) == 0:  # one report under torchrun
        print(json.dumps(summary, indent=2))
        print(f"wrote {args.out}/metrics.json")
    return 0
