"""The ``monomial-gmn`` command.

Each subcommand lives in its own ``cmd_<name>.py`` module here, exposing ``register(subparsers)`` which adds
its parser and sets ``func(args) -> int``. Modules are discovered, so adding a command touches no other file.

User errors (bad files, unknown names, bad option values) print one line ``monomial-gmn: error: ...`` and
exit with code 2 — never a traceback. A closed output pipe (``monomial-gmn zoo info Z | head -1``) ends the
command quietly (exit code 141, as a shell reports SIGPIPE). Output on stdout (result JSON, tables) and
error lines start on a line of their own even when a progress bar on stderr shares the log (``_streams``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

__all__ = ["main", "CLIError"]


class CLIError(Exception):
    """A user error the CLI reports in one line (exit code 2)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .._errors import GraphMismatchError, NonFiniteWeightsError, UnsupportedModuleError, ZooFormatError

    return (CLIError, UnsupportedModuleError, NonFiniteWeightsError, GraphMismatchError, ZooFormatError,
            FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monomial-gmn",
        description="Learn on neural networks with monomial-group-equivariant graph metanetworks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    _one_line_everywhere(parser)
    return parser


def _one_line_everywhere(parser: argparse.ArgumentParser) -> None:
    """Every parser and subparser reports a bad or missing argument in one line (exit code 2), not usage + error
    (``monomial-gmn zoo build digits-foo``, ``monomial-gmn bench --nope``)."""
    from .cmd_train import one_line_errors

    one_line_errors(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _one_line_everywhere(child)


def main(argv: list[str] | None = None) -> int:
    from ._streams import guarded_streams

    try:
        try:
            with guarded_streams():  # results start on their own line after a progress bar
                code = _run(argv)
        except SystemExit:  # --help, argparse errors: flush what was printed before leaving
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        _drop_stdout()
        return 141


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except _user_errors() as exc:  # one line, exit 2
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"monomial-gmn: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("monomial-gmn: interrupted", file=sys.stderr)
        return 130


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        if sys.stdout is not None and sys.stdout is sys.__stdout__:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        else:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
