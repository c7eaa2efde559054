"""One record, written once: every row maskwatch writes, for every place it goes.

A record type has one function per destination here, and nowhere else:

- **interval** (a closed :class:`~maskwatch.results.IntervalSummary`): :func:`interval_csv_row` (the
  CSV log, :data:`CSV_COLUMNS`), :func:`interval_payload` (the MQTT ``intervals`` body, which is
  also the history database's row and what :meth:`History.intervals` returns; :data:`INTERVAL_FIELDS`);
- **event** (a counter :class:`~maskwatch.results.Event`): :func:`event_record` (the JSONL event
  log), :func:`event_payload` (the MQTT ``events`` body and database row; :data:`EVENT_FIELDS`;
  ``type`` is Frigate's ``new`` / ``update`` / ``end``, :data:`EVENT_TYPES`);
- **alert**: :func:`alert_record` (the JSONL event log; MQTT and the database carry the event
  that raised it);
- **model swap**: :func:`model_record` (the JSONL event log);
- **received rows** (``maskwatch aggregate``, :meth:`History.upsert`): :func:`checked_row` turns a
  payload of any version into a complete database row, or refuses it in one line (:class:`RowRejected`).

Time has one rule, :func:`iso_time`: local ISO 8601 with the UTC offset, at the precision the
record needs (:func:`timespec_for` for a CSV log's interval length; milliseconds for events;
:func:`payload_time`: milliseconds only when the time has them); epoch seconds go next to it
(``epoch``, ``ts``, ``start_ts``/``end_ts``) wherever a program reads the record.

:data:`SCHEMA_VERSION` counts the changes of these shapes. Changes only ever add keys or columns
at the end (older CSV headers keep their shape: :data:`OLDER_HEADERS`; older payloads miss keys,
stored as ``null``), so files and databases written by earlier versions still read.

This module is core: it imports nothing of the runtime or the app (sinks, site, gui).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError

if TYPE_CHECKING:
    from maskwatch.results import Event, IntervalSummary

SCHEMA_VERSION = 4
"""1: the first release; 2: ``model`` (CSV column, interval key, JSONL key); 3: the time-weighted
interval keys (:data:`TIME_FIELDS`) and an event's ``previous``; 4: an event payload's
``frame_index`` (the JSONL record had it; the MQTT body and the database row now too)."""


# -- time ------------------------------------------------------------------------------------------


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

    >>> timespec_for(60), timespec_for(1), timespec_for(0.5), timespec_for(2.5)
    ('seconds', 'seconds', 'milliseconds', 'milliseconds')
    """
    return "seconds" if float(interval_s).is_integer() else "milliseconds"


EVENT_TYPES: dict[str, str] = {"person_seen": "new", "label_decided": "update", "label_changed": "update",
                               "track_ended": "end"}
"""Counter event kind -> the ``type`` of its payload (Frigate's event types)."""


class RowRejected(MaskwatchError):
    """This row cannot be stored (a value of the wrong type, too large, not finite, a constraint):
    writing it again would fail again, so a consumer logs it and moves on."""


TIME_FIELDS: tuple[str, ...] = (*(f"{label}_s" for label in LABELS), "masked_time_share", "label_changes")
"""The time-weighted interval keys (person-seconds by label, masked share of person-time, label changes);
``null`` in rows written before they existed."""

INTERVAL_FIELDS: tuple[str, ...] = (
    "id", "camera", "start", "end", "start_ts", "end_ts", "frames", "faces", "people_seen",
    *LABELS, "compliance_rate", "fps", "dropped_frames", "source_state", "model", *TIME_FIELDS,
)
"""The keys of an interval payload, in order."""

EVENT_FIELDS: tuple[str, ...] = (
    "id", "type", "camera", "track_id", "label", "time", "ts", "confidence", "box", "snapshot", "previous",
    "frame_index",
)
"""The keys of an event payload, in order (``previous``: the label before a change, else ``null``;
``frame_index``: the frame of the source the event happened on, as in the JSONL record; ``null``
in payloads of earlier versions)."""


# -- intervals: the CSV log -------------------------------------------------------------------------

TIME_COLUMNS: tuple[str, ...] = TIME_FIELDS
"""The time-weighted columns (person-seconds by label, masked share of person-time, label changes)."""

CSV_COLUMNS: tuple[str, ...] = (
    "start", "end", "frames", "faces", "people_seen",
    "with_mask", "without_mask", "mask_worn_incorrectly",
    "compliance_rate", "fps", "dropped_frames", "source_state", "model", *TIME_COLUMNS,
)
"""The interval log's header, in order."""

LEGACY_COLUMNS: tuple[str, ...] = CSV_COLUMNS[:12]
"""The header of logs written before the ``model`` column: still appended to, in their shape."""

OLDER_HEADERS: tuple[tuple[str, ...], ...] = (CSV_COLUMNS[:13], LEGACY_COLUMNS)
"""Headers of logs written by earlier versions (before the time columns; before ``model``)."""


def state_text(state) -> str:
    """A source state (a :class:`~maskwatch.frames.SourceState` or its text) as its text.

    >>> from maskwatch.frames import SourceState
    >>> state_text(SourceState.LIVE), state_text("stopped")
    ('live', 'stopped')
    """
    return str(getattr(state, "value", state))


def interval_csv_row(summary: IntervalSummary, timespec: str = "seconds",
                     columns: tuple[str, ...] = CSV_COLUMNS) -> list[str]:
    """The CSV fields of one summary, in :data:`CSV_COLUMNS` order (an older header: its first columns)."""
    rate = summary.compliance_rate
    share = summary.masked_time_share
    return [
        iso_time(summary.start, timespec),
        iso_time(summary.end, timespec),
        str(summary.frames),
        str(summary.faces),
        str(summary.people_seen),
        *(str(summary.by_label.get(k, 0)) for k in LABELS),
        "" if rate is None else f"{rate:.3f}",
        f"{summary.fps:.1f}",
        str(summary.dropped_frames),
        state_text(summary.source_state),
        summary.model or "",
        *(f"{summary.person_s.get(k, 0.0):.1f}" for k in LABELS),
        "" if share is None else f"{share:.3f}",
        str(summary.label_changes),
    ][:len(columns)]


# -- intervals and events: the MQTT payloads and database rows ---------------------------------------


def payload_time(epoch: float) -> str:
    """Local ISO 8601 time with its offset, like the CSV's; milliseconds only if the time has them.

    >>> from datetime import datetime
    >>> len(payload_time(1e9)), len(payload_time(1e9 + 0.25))  # 2001-09-09T01:46:40+00:00 (in UTC)
    (25, 29)
    >>> datetime.fromisoformat(payload_time(1e9 + 0.25)).timestamp()
    1000000000.25
    """
    whole = round(float(epoch) * 1000) % 1000 == 0
    return iso_time(float(epoch), "seconds" if whole else "milliseconds")


def new_id() -> str:
    """A row id: uuid4 hex, made once when the row is written (a republished row keeps it)."""
    return uuid.uuid4().hex


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def interval_payload(camera: str, summary: IntervalSummary, id: str | None = None) -> dict:
    """The JSON-ready payload of one closed interval of ``camera`` (the MQTT ``intervals`` body).

    >>> from maskwatch.frames import SourceState
    >>> from maskwatch.results import IntervalSummary
    >>> p = interval_payload("door", IntervalSummary(0.0, 60.0, 10, 12, 2, {"with_mask": 1,
    ...     "without_mask": 1, "mask_worn_incorrectly": 0}, 9.5, 0, SourceState.RECONNECTING), id="x")
    >>> {k: p[k] for k in ("id", "camera", "start_ts", "end_ts", "with_mask", "compliance_rate", "source_state")}
    {'id': 'x', 'camera': 'door', 'start_ts': 0.0, 'end_ts': 60.0, 'with_mask': 1, 'compliance_rate': 0.5, 'source_state': 'reconnecting'}
    >>> tuple(p) == INTERVAL_FIELDS
    True
    """
    return {
        "id": id or new_id(),
        "camera": str(camera),
        "start": payload_time(summary.start),
        "end": payload_time(summary.end),
        "start_ts": float(summary.start),
        "end_ts": float(summary.end),
        "frames": int(summary.frames),
        "faces": int(summary.faces),
        "people_seen": int(summary.people_seen),
        **{label: int(summary.by_label.get(label, 0)) for label in LABELS},
        "compliance_rate": _finite(summary.compliance_rate),
        "fps": _finite(summary.fps) or 0.0,
        "dropped_frames": int(summary.dropped_frames),
        "source_state": state_text(summary.source_state),
        "model": summary.model,
        **{f"{label}_s": round(float(summary.person_s.get(label, 0.0)), 3) for label in LABELS},
        "masked_time_share": _finite(summary.masked_time_share),
        "label_changes": int(summary.label_changes),
    }


def event_payload(camera: str, event: Event, snapshot: str | os.PathLike | None = None, id: str | None = None) -> dict:
    """The JSON-ready payload of one counter event of ``camera`` (the MQTT ``events`` body).

    ``type``: ``new`` (person seen), ``update`` (label decided, or changed: then ``previous`` is the
    label before), ``end`` (track ended).

    >>> from maskwatch.results import Event
    >>> p = event_payload("door", Event("label_decided", 7, 1e9, 3, label="with_mask", confidence=0.9,
    ...                                 box=(1, 2, 3, 4)), id="y")
    >>> p["type"], p["track_id"], p["label"], p["box"], p["snapshot"], tuple(p) == EVENT_FIELDS
    ('update', 7, 'with_mask', [1.0, 2.0, 3.0, 4.0], None, True)
    """
    try:
        kind = EVENT_TYPES[event.kind]
    except KeyError:
        raise MaskwatchError(f"unknown event kind {event.kind!r} (known: {', '.join(EVENT_TYPES)})") from None
    return {
        "id": id or new_id(),
        "type": kind,
        "camera": str(camera),
        "track_id": int(event.track_id),
        "label": event.label,
        "time": payload_time(event.timestamp),
        "ts": float(event.timestamp),
        "confidence": _finite(event.confidence),
        "box": None if event.box is None else [float(v) for v in event.box],
        "snapshot": None if snapshot is None else os.fspath(snapshot),
        "previous": event.previous if event.kind == "label_changed" else None,
        "frame_index": int(event.frame_index),
    }


# -- events and alerts: the JSONL event log --------------------------------------------------------


def event_record(event: Event, model: str | None = None) -> dict:
    """The JSON object written for one event (``model``: the classifier in use, described).

    >>> from maskwatch.results import Event
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
        "model": model,
        **({"previous": event.previous} if event.kind == "label_changed" else {}),
    }


def model_record(info, previous: str | None, epoch: float | None = None) -> dict:
    """The record written when the mask classifier is swapped during a run.

    >>> from pathlib import Path
    >>> from maskwatch.classification import ModelInfo
    >>> info = ModelInfo("m", "2", "ab" * 32, Path("/runs/site/mask_classifier.tflite"), 0.2, 96)
    >>> r = model_record(info, "m 1 (sha256 cdcdcdcd)", epoch=0.0)
    >>> r["kind"], r["model"], r["previous"], r["path"]
    ('model_swapped', 'm 2 (sha256 abababab)', 'm 1 (sha256 cdcdcdcd)', 'site/mask_classifier.tflite')
    """
    epoch = time.time() if epoch is None else float(epoch)
    return {
        "kind": "model_swapped",
        "time": iso_time(epoch, timespec="milliseconds"),
        "epoch": round(epoch, 3),
        "model": info.describe(),
        "previous": previous,
        "version": info.version,
        "sha256": info.sha256,
        "path": info.short_path(),
    }


def alert_record(alert) -> dict:
    """The JSON object written to the event log for one alert (a :class:`~maskwatch.sinks.alerts.Alert`:
    read by its attributes, so this core module needs no import of the sinks)."""
    when = alert.timestamp if alert.timestamp is not None else alert.at
    return {
        "kind": "alert",
        "alert": alert.kind,
        "message": alert.message,
        "track_id": None if alert.track_id is None else int(alert.track_id),
        "label": alert.label,
        "confidence": None if alert.confidence is None else round(float(alert.confidence), 4),
        "time": iso_time(when, timespec="milliseconds"),
        "epoch": round(float(when), 3),
        "frame_index": None if alert.frame_index is None else int(alert.frame_index),
        "box": None if alert.box is None else [round(float(v), 1) for v in alert.box],
        "compliance": None if alert.compliance is None else round(float(alert.compliance), 4),
        "threshold": alert.threshold,
        "interval_start": None if alert.interval_start is None else iso_time(alert.interval_start, "milliseconds"),
    }


# -- rows received from elsewhere -------------------------------------------------------------------

_INT_RANGE = (-(2**31), 2**31 - 1)
"""Every integer column is a 32-bit INTEGER (PostgreSQL's bound; SQLite takes more, but one rule)."""


def checked_row(kind: str, payload) -> dict:
    """A received payload made into a complete row, or a one-line :class:`RowRejected`.

    Every value the database would refuse, or that would break a later step, is refused here with
    the key's name: a required key missing or null, a number that is not finite (JSON's ``1e400``
    is infinity), a string where a number belongs or the other way round, a count that is negative
    or beyond 32 bits, a ``box`` that is not four numbers.

    >>> checked_row("event", {"id": "e1", "type": "new", "camera": "door", "track_id": 3, "ts": 1e9})["time"][:4]
    '2001'
    >>> checked_row("interval", {"id": "i1", "camera": "door", "start_ts": 1.0, "end_ts": float("inf")})
    Traceback (most recent call last):
    ...
    maskwatch.records.RowRejected: interval payload has no valid 'end_ts' (a finite number), got inf
    """
    if not isinstance(payload, dict):
        raise RowRejected(f"{kind} payload is not a JSON object")

    def bad(key: str, what: str) -> RowRejected:
        value = repr(payload.get(key))
        return RowRejected(f"{kind} payload has no valid {key!r} ({what}), got {value[:60]}")

    def text(key: str, required: bool, limit: int | None = None) -> str | None:
        value = payload.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or (limit is not None and len(value) > limit):
            raise bad(key, "text" + (f" of at most {limit} characters" if limit else ""))
        return value

    def number(key: str, required: bool, default: float | None = None) -> float | None:
        value = payload.get(key)
        if value is None and not required:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(key, "a finite number")
        try:
            value = float(value)
        except OverflowError:  # an int too large for a float
            raise bad(key, "a finite number") from None
        if not math.isfinite(value):
            raise bad(key, "a finite number")
        return value

    def integer(key: str, required: bool, low: int = 0, high: int = _INT_RANGE[1]) -> int:
        value = payload.get(key)
        if value is None and not required:
            return 0
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not max(low, _INT_RANGE[0]) <= value <= high:
            raise bad(key, "a whole number" + (" >= 0" if low == 0 else ""))
        return value

    row: dict[str, Any] = {"id": text("id", True, 32), "camera": text("camera", True)}
    if kind == "interval":
        row["start_ts"], row["end_ts"] = number("start_ts", True), number("end_ts", True)
        for key in ("start", "end"):
            row[key] = text(key, False) or _time_or_rejected(kind, key, row[f"{key}_ts"])
        for key in ("frames", "faces", "people_seen", *LABELS, "dropped_frames"):
            row[key] = integer(key, False)
        row["fps"] = number("fps", False, 0.0)
        row["compliance_rate"] = number("compliance_rate", False)
        row["source_state"] = text("source_state", False) or "live"
        row["model"] = text("model", False)
        for label in LABELS:  # absent in payloads of earlier versions: stored as null
            row[f"{label}_s"] = number(f"{label}_s", False)
        row["masked_time_share"] = number("masked_time_share", False)
        row["label_changes"] = integer("label_changes", False) if payload.get("label_changes") is not None else None
    else:
        row["type"] = text("type", True)
        if row["type"] not in EVENT_TYPES.values():
            raise RowRejected(f"event payload has an unknown type {row['type'][:40]!r}")
        row["track_id"] = integer("track_id", True, low=_INT_RANGE[0])
        row["ts"] = number("ts", True)
        row["time"] = text("time", False) or _time_or_rejected(kind, "time", row["ts"])
        row["label"] = text("label", False)
        row["confidence"] = number("confidence", False)
        box = payload.get("box")
        if box is not None:
            if (not isinstance(box, list) or len(box) != 4
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
                    or not all(math.isfinite(float(v)) for v in box)):
                raise RowRejected("event payload 'box' is not [x1, y1, x2, y2] (four finite numbers)")
            box = [float(v) for v in box]
        row["box"] = box
        row["snapshot"] = text("snapshot", False)
        row["previous"] = text("previous", False)
        row["frame_index"] = (integer("frame_index", False, high=2**63 - 1)  # BigInteger: years of frames
                              if payload.get("frame_index") is not None else None)
    return row

def _time_or_rejected(kind: str, key: str, epoch: float) -> str:
    """The ISO time of ``epoch`` for a payload without ``key``; a time no calendar holds is refused."""
    try:
        return payload_time(epoch)
    except (ArithmeticError, ValueError, OSError):
        raise RowRejected(f"{kind} payload has no valid {key!r}: {epoch!r} is no time") from None
