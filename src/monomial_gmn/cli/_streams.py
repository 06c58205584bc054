"""Keep what the CLI prints on stdout on lines of its own when progress bars share the log.

Progress bars (tqdm) write to stderr and redraw their line with carriage returns; a bar closed with
``leave=False`` ends without a newline. In a terminal that is invisible, but in a log file (``> log 2>&1``,
``| tee``) the next output (a result JSON, a table, an error line) would be appended to the bar's line.
While a command runs, :func:`guarded_streams` wraps both streams: whenever stderr was left mid-line (and is
not a terminal), the next line on stdout or stderr starts with a newline. When both streams go to the same
file, stdout is also line-buffered so its lines land in the file in the order they were printed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

__all__ = ["guarded_streams"]


class _Line:
    """Shared state: is stderr (a non-terminal) left in the middle of a line?"""

    def __init__(self, err: Any):
        self.open = False
        self.err = err
        try:
            self.tty = bool(err.isatty())
        except (AttributeError, ValueError, OSError):
            self.tty = False

    def close(self) -> None:
        """End stderr's open line (a progress bar) before other text is written."""
        if self.open and not self.tty:
            self.open = False
            self.err.write("\n")
            with contextlib.suppress(AttributeError, ValueError, OSError):
                self.err.flush()


class _Stream:
    """A text stream proxy: delegates everything, ends an open progress line before text starts."""

    def __init__(self, inner: Any, line: _Line, is_err: bool):
        self._inner, self._line, self._is_err = inner, line, is_err

    def write(self, text: str) -> int:
        if not text:
            return self._inner.write(text)
        line = self._line
        if self._is_err:
            # a bar's redraw starts with '\r' and stays on its line, text starting with '\n' ends the line
            # itself; any other text after an open line starts afresh
            if line.open and not text.startswith(("\r", "\n")):
                line.close()
            n = self._inner.write(text)
            line.open = not text.endswith("\n")
            return n
        line.close()
        return self._inner.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __iter__(self):
        return iter(self._inner)


def _same_file(a: Any, b: Any) -> bool:
    try:
        sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


@contextlib.contextmanager
def guarded_streams() -> Iterator[None]:
    """Wrap ``sys.stdout``/``sys.stderr`` for the duration of a command (restored afterwards)."""
    out, err = sys.stdout, sys.stderr
    if out is None or err is None:
        yield
        return
    line = _Line(err)
    if not line.tty and _same_file(out, err):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            out.reconfigure(line_buffering=True)
    sys.stdout, sys.stderr = _Stream(out, line, False), _Stream(err, line, True)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
