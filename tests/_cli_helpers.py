"""Shared by the CLI tests: run the CLI and require one error line, exit code 2, no traceback."""

from monomial_gmn.cli import main


def one_line_error(capsys, argv) -> str:
    """Run ``monomial-gmn ARGV``; assert exit 2 with one error line on stderr and no traceback; return it."""
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err, err
    return err
