"""``EventJsonl``: the event log, one JSON object per line, appended and flushed per line.

Records: :func:`event_record` for ``person_seen`` / ``label_decided`` / ``label_changed`` (with
``previous``, the label before the change) / ``track_ended`` and,
written by the alert sink (:mod:`maskwatch.sinks.alerts`), ``alert`` records with the same keys
plus a few more. Every event record has a ``model`` key: the mask classifier in use when it was written
(``"name version (sha256 8 hex)"``, ``null`` while unknown); when the model is swapped during a
run a :func:`model_record` (``"kind": "model_swapped"``) says so, at the wall-clock time of the swap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.records import event_record, model_record  # noqa: F401 - re-exported (maskwatch.records)
from maskwatch.results import Event
from maskwatch.sinks.appended import AppendedFile, open_append, sync

FIRST_LINE_LIMIT = 64 * 1024
"""An events file's first line is one record (well under a kilobyte); a longer one is not ours."""


def check_events_file(path: str | Path) -> bool:
    """Whether appending to ``path`` needs a newline first (its last line is torn); one-line
    ``MaskwatchError`` unless it is missing, empty or a JSON-lines log (first line a JSON object),
    so events are never appended to yesterday's CSV or to the video being watched.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "counts.csv"
    >>> check_events_file(path)
    False
    >>> _ = path.write_text("start,end,frames\\n")
    >>> check_events_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    maskwatch.errors.MaskwatchError: events file .../counts.csv exists and is not a JSON-lines event log (its first line is not a JSON object): use another --events file
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise MaskwatchError(f"cannot write events {path}: it is a directory")
        with open(path, "rb") as fh:
            head = fh.read(FIRST_LINE_LIMIT)
            if not head:
                return False
            fh.seek(-1, os.SEEK_END)
            needs_newline = fh.read(1) != b"\n"
    except FileNotFoundError:
        return False
    except OSError as e:
        raise MaskwatchError(f"cannot read events {path}: {e.strerror or e}") from None
    first, newline, _ = head.partition(b"\n")
    if not _is_json_object(first) and not (not newline and first.startswith(b'{"')):  # a torn first record is ours
        raise MaskwatchError(f"events file {path} exists and is not a JSON-lines event log "
                             "(its first line is not a JSON object): use another --events file")
    return needs_newline


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except ValueError:  # not UTF-8 (a video), not JSON (a CSV)
        return False


class EventJsonl(AppendedFile):
    """One JSON object per event line (see :func:`event_record`), appended and flushed per line.

    An existing file is appended to only if it is an event log (:func:`check_events_file`).

    As a sink it writes every ``on_event``; :meth:`write_record` appends any other record (alerts).
    :meth:`on_model` (from the monitor) sets the ``model`` of the records written after it, and
    writes a ``model_swapped`` record when the model changes during the run.
    """

    model: str | None = None

    def __init__(self, path: str | Path, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        needs_newline = check_events_file(self.path)
        self._fh = open_append(self.path, "events")
        if needs_newline:
            self._fh.write("\n")

    def write(self, event: Event) -> None:
        self.write_all([event])

    on_event = write

    def on_model(self, info) -> None:
        """The mask classifier in use (a :class:`~maskwatch.classification.ModelInfo`)."""
        described = info.describe()
        if self.model is not None and described != self.model:
            self._write_lines([model_record(info, self.model)])
        self.model = described

    def write_all(self, events: Iterable[Event]) -> None:
        self._write_lines([event_record(e, self.model) for e in events])

    def write_record(self, record: dict) -> None:
        """Append one JSON object (its own line, flushed)."""
        self._write_lines([record])

    def _write_lines(self, records: list[dict]) -> None:
        if self._fh is None:
            raise MaskwatchError(f"events {self.path} is closed")
        if not records:
            return
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        try:
            self._fh.write(text)
            sync(self._fh) if self.fsync else self._fh.flush()
        except OSError as e:
            raise MaskwatchError(f"cannot write events {self.path}: {e.strerror or e}") from None
