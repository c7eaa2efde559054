"""Local ISO 8601 times for the logs, and how precise they must be for an interval length.

>>> timespec_for(60), timespec_for(1), timespec_for(0.5), timespec_for(2.5)
('seconds', 'seconds', 'milliseconds', 'milliseconds')
>>> iso_time(1e9 + 0.25, timespec_for(0.5))[19:23]
'.250'
"""

from __future__ import annotations

from datetime import datetime


def iso_time(epoch: float, timespec: str = "seconds") -> str:
    """Local time with its UTC offset, ISO 8601.

    >>> datetime.fromisoformat(iso_time(1e9)).timestamp()
    1000000000.0
    """
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec=timespec)


def timespec_for(interval_s: float) -> str:
    """``"seconds"`` for intervals of whole seconds, else ``"milliseconds"``.

    Interval rows start ``interval_s`` apart: with ``--interval 0.5`` (or 2.5) second-resolution
    times would repeat or jump, so such logs get millisecond times (every row of the file alike).
    """
    return "seconds" if float(interval_s).is_integer() else "milliseconds"
