"""Where results go: the interval CSV log, the JSONL event log and snapshot JPEGs.

Every writer appends and flushes each record as it is written, so a crash, SIGKILL or power cut
loses at most the record being written, and an existing log is never clobbered.

>>> import tempfile, pathlib
>>> from maskwatch.results import IntervalSummary
>>> from maskwatch.frames import SourceState
>>> path = pathlib.Path(tempfile.mkdtemp()) / "counts.csv"
>>> row = IntervalSummary(start=0.0, end=60.0, frames=1500, faces=3000, people_seen=4,
...                       by_label={"with_mask": 3, "without_mask": 1, "mask_worn_incorrectly": 0},
...                       fps=25.0, dropped_frames=0, source_state=SourceState.LIVE)
>>> with IntervalCsvLog(path) as log:
...     log.write(row)
>>> path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
True
>>> path.read_text().splitlines()[1].split(",")[2:]
['1500', '3000', '4', '3', '1', '0', '0.750', '25.0', '0', 'live']
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.overlay import draw
from maskwatch.results import Event, IntervalSummary

CSV_COLUMNS: tuple[str, ...] = (
    "start", "end", "frames", "faces", "people_seen",
    "with_mask", "without_mask", "mask_worn_incorrectly",
    "compliance_rate", "fps", "dropped_frames", "source_state",
)
"""The interval log's header, in order."""


def iso_time(epoch: float, timespec: str = "seconds") -> str:
    """Local time with its UTC offset, ISO 8601.

    >>> datetime.fromisoformat(iso_time(1e9)).timestamp()
    1000000000.0
    """
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec=timespec)


def _open_append(path: Path, what: str):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8", newline="")
    except IsADirectoryError:
        raise MaskwatchError(f"cannot write {what} {path}: it is a directory") from None
    except OSError as e:
        raise MaskwatchError(f"cannot write {what} {path}: {e.strerror or e}") from None


def _flush(fh) -> None:
    fh.flush()
    try:
        os.fsync(fh.fileno())
    except OSError:  # pipes, some network file systems
        pass


class _AppendedFile:
    """Shared by the append-only logs: an idempotent ``close`` and context-manager use."""

    _fh = None

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IntervalCsvLog(_AppendedFile):
    """The per-interval CSV log (one row per :class:`~maskwatch.results.IntervalSummary`).

    Opens in append mode: a new or empty file gets the header; an existing file must have exactly
    this header (else ``MaskwatchError``, and the file is left untouched). Each ``write`` is flushed
    and fsynced, so another reader sees the row at once.
    """

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        header = ",".join(CSV_COLUMNS)
        existing = self._read_existing()
        if existing is not None and existing[0] != header:
            raise MaskwatchError(
                f"{self.path} exists with a different header; use another --log file (expected: {header})")
        self._fh = _open_append(self.path, "log")
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

    def _read_existing(self) -> tuple[str, bool] | None:
        """(first line, ends with newline) of an existing non-empty file, ``None`` if new or empty."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as e:
            raise MaskwatchError(f"cannot read log {self.path}: {e.strerror or e}") from None
        if self.path.is_dir():
            raise MaskwatchError(f"cannot write log {self.path}: it is a directory")
        if size == 0:
            return None
        try:
            with open(self.path, "rb") as fh:
                first = fh.readline().decode("utf-8", "replace").rstrip("\r\n")
                fh.seek(-1, os.SEEK_END)
                ends_with_newline = fh.read(1) == b"\n"
        except OSError as e:
            raise MaskwatchError(f"cannot read log {self.path}: {e.strerror or e}") from None
        return first, ends_with_newline

    @staticmethod
    def row(summary: IntervalSummary) -> list[str]:
        """The CSV fields of one summary, in ``CSV_COLUMNS`` order."""
        rate = summary.compliance_rate
        state = getattr(summary.source_state, "value", str(summary.source_state))
        return [
            iso_time(summary.start),
            iso_time(summary.end),
            str(summary.frames),
            str(summary.faces),
            str(summary.people_seen),
            *(str(summary.by_label.get(k, 0)) for k in LABELS),
            "" if rate is None else f"{rate:.3f}",
            f"{summary.fps:.1f}",
            str(summary.dropped_frames),
            state,
        ]

    def write(self, summary: IntervalSummary) -> None:
        if self._fh is None:
            raise MaskwatchError(f"log {self.path} is closed")
        try:
            self._writer.writerow(self.row(summary))
            self._flush()
        except OSError as e:
            raise MaskwatchError(f"cannot write log {self.path}: {e.strerror or e}") from None

    def _flush(self) -> None:
        if self.fsync:
            _flush(self._fh)
        else:
            self._fh.flush()



def event_record(event: Event) -> dict:
    """The JSON object written for one event.

    >>> event_record(Event("label_decided", 4, 0.0, 12, label="with_mask", confidence=0.8,
    ...                    box=(1.0, 2.0, 3.0, 4.0)))["box"]
    [1.0, 2.0, 3.0, 4.0]
    """
    return {
        "kind": event.kind,
        "track_id": int(event.track_id),
        "label": event.label,
        "confidence": None if event.confidence is None else round(float(event.confidence), 4),
        "time": iso_time(event.timestamp, timespec="milliseconds"),
        "epoch": round(float(event.timestamp), 3),
        "frame_index": int(event.frame_index),
        "box": None if event.box is None else [round(float(v), 1) for v in event.box],
    }


class EventJsonl(_AppendedFile):
    """One JSON object per event line (see :func:`event_record`), appended and flushed per line."""

    def __init__(self, path: str | Path, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        if self.path.is_dir():
            raise MaskwatchError(f"cannot write events {self.path}: it is a directory")
        needs_newline = False
        try:
            if self.path.stat().st_size > 0:
                with open(self.path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    needs_newline = fh.read(1) != b"\n"
        except FileNotFoundError:
            pass
        except OSError as e:
            raise MaskwatchError(f"cannot read events {self.path}: {e.strerror or e}") from None
        self._fh = _open_append(self.path, "events")
        if needs_newline:
            self._fh.write("\n")

    def write(self, event: Event) -> None:
        self.write_all([event])

    def write_all(self, events) -> None:
        if self._fh is None:
            raise MaskwatchError(f"events {self.path} is closed")
        if not events:
            return
        buf = io.StringIO()
        for e in events:
            buf.write(json.dumps(event_record(e), separators=(",", ":")) + "\n")
        try:
            self._fh.write(buf.getvalue())
            _flush(self._fh) if self.fsync else self._fh.flush()
        except OSError as e:
            raise MaskwatchError(f"cannot write events {self.path}: {e.strerror or e}") from None



class SnapshotSaver:
    """Saves the annotated frame when a person is decided with one of ``labels``, once per track.

    File names: ``<local time, e.g. 20261121T235959+0100>_track<id>_<label>.jpg`` in ``folder``
    (created if missing).
    """

    def __init__(self, folder: str | Path, labels=("without_mask", "mask_worn_incorrectly"), jpeg_quality: int = 90):
        self.folder = Path(folder)
        self.labels = tuple(labels)
        unknown = set(self.labels) - set(LABELS)
        if unknown:
            raise MaskwatchError(f"unknown snapshot label(s): {', '.join(sorted(unknown))}")
        self.jpeg_quality = int(jpeg_quality)
        self._saved: set[int] = set()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MaskwatchError(f"cannot create snapshot folder {self.folder}: {e.strerror or e}") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise MaskwatchError(f"cannot write snapshots to {self.folder}: permission denied")

    def maybe_save(self, frame_image_bgr: np.ndarray, faces: Faces, events) -> list[Path]:
        """Save one JPEG per qualifying ``label_decided`` event; returns the paths written."""
        todo = [e for e in events
                if e.kind == "label_decided" and e.label in self.labels and e.track_id not in self._saved]
        if not todo:
            return []
        annotated = draw(frame_image_bgr, faces)
        ok, data = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise MaskwatchError("cannot encode snapshot JPEG")
        written = []
        for e in todo:
            stamp = datetime.fromtimestamp(e.timestamp).astimezone().strftime("%Y%m%dT%H%M%S%z")
            path = self.folder / f"{stamp}_track{e.track_id}_{e.label}.jpg"
            part = path.with_name(path.name + ".part")
            try:  # a reader (the GUI's gallery) never sees half a JPEG
                part.write_bytes(data.tobytes())
                os.replace(part, path)
            except OSError as err:
                raise MaskwatchError(f"cannot write snapshot {path}: {err.strerror or err}") from None
            self._saved.add(e.track_id)
            written.append(path)
        return written
