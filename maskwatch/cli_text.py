"""The command line's own lines on stderr: ``maskwatch: error: ...`` and ``maskwatch: warning: ...``.

One line each (whitespace folded), every credential hidden (:func:`maskwatch.sources.spec.redact`).
Light: :mod:`maskwatch.cli` imports it before anything heavy.

>>> error_line("cannot open rtsp://admin:s3cret@cam/live\\n  (timeout)")
'maskwatch: error: cannot open rtsp://admin:***@cam/live (timeout)'
"""

from __future__ import annotations

import sys

from maskwatch.sources.spec import redact

PROG = "maskwatch"


def error_line(message) -> str:
    line = " ".join(redact(str(message)).split()) or "unknown error"
    return f"{PROG}: error: {line}"


def warning_line(message) -> str:
    return f"{PROG}: warning: {' '.join(redact(str(message)).split())}"


def say_error(message) -> None:
    print(error_line(message), file=sys.stderr, flush=True)


def say_warning(message) -> None:
    print(warning_line(message), file=sys.stderr, flush=True)
