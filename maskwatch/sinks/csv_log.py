"""``IntervalCsvLog``: one CSV row per interval summary, appended and fsynced as it is written.

>>> import tempfile, pathlib
>>> from maskwatch.results import IntervalSummary
>>> from maskwatch.frames import SourceState
>>> path = pathlib.Path(tempfile.mkdtemp()) / "counts.csv"
>>> row = IntervalSummary(start=0.0, end=60.0, frames=1500, faces=3000, people_seen=4,
...                       by_label={"with_mask": 3, "without_mask": 1, "mask_worn_incorrectly": 0},
...                       fps=25.0, dropped_frames=0, source_state=SourceState.LIVE)
>>> with IntervalCsvLog(path) as log:
...     log.on_interval(row)
>>> path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
True
>>> path.read_text().splitlines()[1].split(",")[2:]
['1500', '3000', '4', '3', '1', '0', '0.750', '25.0', '0', 'live', '', '0.0', '0.0', '0.0', '', '0']

``model`` names the mask classifier that labelled the interval (``IntervalSummary.model``:
``"name version (sha256 8 hex)"``, ``"A -> B"`` when it was swapped during the interval). The last
five columns are time-weighted: ``with_mask_s``, ``without_mask_s``, ``mask_worn_incorrectly_s``
(person-seconds in view by label: the time counted people were seen with that label, summed over
people), ``masked_time_share`` (the with_mask share of that time; empty with no time) and
``label_changes`` (``label_changed`` events in the interval). Per-person columns (``people_seen``,
the labels, ``compliance_rate``) count each person once, with the first label decided for them.

A log written before a column existed keeps its header and gets rows of its own shape (the new
columns are always appended at the end; :data:`OLDER_HEADERS`): appending never breaks a file.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.records import (  # noqa: F401 - re-exported: the record shapes live in maskwatch.records
    CSV_COLUMNS,
    LEGACY_COLUMNS,
    OLDER_HEADERS,
    TIME_COLUMNS,
    interval_csv_row,
)
from maskwatch.results import IntervalSummary
from maskwatch.sinks.appended import AppendedFile, open_append, sync


def check_log_file(path: str | Path) -> tuple[str, bool] | None:
    """(first line, ends with a newline) of an existing non-empty interval log at ``path``, ``None``
    if it is missing or empty; one-line ``MaskwatchError`` if it is something else (another
    header, a video, a directory), so rows are never appended to a file that is not ours. The
    header before the ``model`` column (:data:`LEGACY_COLUMNS`) is ours too."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as e:
        raise MaskwatchError(f"cannot read log {path}: {e.strerror or e}") from None
    if path.is_dir():
        raise MaskwatchError(f"cannot write log {path}: it is a directory")
    if size == 0:
        return None
    try:
        with open(path, "rb") as fh:
            first = fh.readline(64 * 1024).decode("utf-8", "replace").rstrip("\r\n")
            fh.seek(-1, os.SEEK_END)
            ends_with_newline = fh.read(1) == b"\n"
    except OSError as e:
        raise MaskwatchError(f"cannot read log {path}: {e.strerror or e}") from None
    header = ",".join(CSV_COLUMNS)
    if first not in (header, *(",".join(h) for h in OLDER_HEADERS)):
        raise MaskwatchError(f"{path} exists with a different header; use another --log file (expected: {header})")
    return first, ends_with_newline


class IntervalCsvLog(AppendedFile):
    """The per-interval CSV log (one row per :class:`~maskwatch.results.IntervalSummary`).

    Opens in append mode: a new or empty file gets the header; an existing file must have exactly
    this header (else ``MaskwatchError``, and the file is left untouched). Each row is flushed
    and fsynced, so another reader sees it at once. ``timespec`` is the precision of the ``start``
    and ``end`` times (:func:`~maskwatch.sinks.timestamps.timespec_for` picks it from the interval).
    """

    def __init__(self, path: str | Path, fsync: bool = True, timespec: str = "seconds"):
        self.path = Path(path)
        self.fsync = fsync
        self.timespec = timespec
        header = ",".join(CSV_COLUMNS)
        existing = check_log_file(self.path)
        self.columns = CSV_COLUMNS
        for older in OLDER_HEADERS:  # an older log is appended to in its own shape
            if existing is not None and existing[0] == ",".join(older):
                self.columns = older
        self._fh = open_append(self.path, "log")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        try:
            if existing is None:
                self._fh.write(header + "\n")
            elif not existing[1]:  # a previous run died mid-row: start ours on a fresh line
                self._fh.write("\n")
            self._flush()
        except OSError as e:
            self.close()
            raise MaskwatchError(f"cannot write log {self.path}: {e.strerror or e}") from None

    @staticmethod
    def row(summary: IntervalSummary, timespec: str = "seconds", columns: tuple[str, ...] = CSV_COLUMNS) -> list[str]:
        """The CSV fields of one summary (:func:`maskwatch.records.interval_csv_row`)."""
        return interval_csv_row(summary, timespec, columns)

    def write(self, summary: IntervalSummary) -> None:
        if self._fh is None:
            raise MaskwatchError(f"log {self.path} is closed")
        try:
            self._writer.writerow(self.row(summary, self.timespec, self.columns))
            self._flush()
        except OSError as e:
            raise MaskwatchError(f"cannot write log {self.path}: {e.strerror or e}") from None

    on_interval = write

    def _flush(self) -> None:
        if self.fsync:
            sync(self._fh)
        else:
            self._fh.flush()
