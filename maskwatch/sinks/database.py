"""``DatabaseSink``: one camera's interval rows and events into the history database (the MQTT outbox).

Each closed interval becomes an ``intervals`` row and each counter event an ``events`` row of
:class:`~maskwatch.site.history.History`, written (committed) before anything publishes it. A
database error is raised as a one-line ``MaskwatchError``: the monitor gives every other sink its
turn (the CSV log still gets the row) and then ends the run, so a row is never dropped silently.

Snapshots: the snapshot sink saves its JPEG in ``on_result``, after every sink's ``on_event``
(:func:`maskwatch.monitor.fan_out`). Given that sink (``snapshots=``, placed before this one in the
sink list), a ``label_decided`` event it may save a JPEG for is written in this sink's
``on_result`` of the same frame, with the path the snapshot sink reports
(:attr:`~maskwatch.sinks.snapshots.SnapshotSaver.written`); an event still waiting when the run
ends is written by :meth:`close`.

>>> import tempfile, pathlib
>>> from maskwatch.results import Event
>>> from maskwatch.site.history import History
>>> history = History(pathlib.Path(tempfile.mkdtemp()) / "history.db")
>>> written = []
>>> sink = DatabaseSink(history, "door", on_write=lambda kind, payload: written.append((kind, payload["type"])))
>>> sink.on_event(Event("person_seen", 1, 1e9, 0))
>>> written, [p["camera"] for p in history.events()]
([('event', 'new')], ['door'])
>>> sink.close(); history.close()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from maskwatch.sinks.base import BaseSink

if TYPE_CHECKING:
    from maskwatch.results import Event, FrameResult, IntervalSummary
    from maskwatch.site.history import History
    from maskwatch.sinks.snapshots import SnapshotSaver

WriteCallback = Callable[[str, dict], None]
"""``on_write(kind, payload)``: ``kind`` is ``"interval"`` or ``"event"``; called after the row is committed."""


class DatabaseSink(BaseSink):
    """Writes ``camera``'s intervals and events into ``history`` (see the module docstring).

    ``on_write(kind, payload)`` is called after each row is committed (``maskwatch serve``'s worker
    tells the supervisor there is something to publish). ``snapshots``: the run's
    :class:`~maskwatch.sinks.snapshots.SnapshotSaver`, if any, to record its JPEG paths. ``history``
    is not closed by this sink (its owner may share it).
    """

    def __init__(self, history: History, camera: str, *, on_write: WriteCallback | None = None,
                 snapshots: SnapshotSaver | None = None):
        self.history = history
        self.camera = str(camera)
        self.on_write = on_write
        self.snapshots = snapshots
        self._waiting: list[Event] = []  # label_decided events whose snapshot is saved in on_result

    def on_interval(self, summary: IntervalSummary) -> None:
        self._written("interval", self.history.add_interval(self.camera, summary))

    def on_event(self, event: Event) -> None:
        if self._may_have_snapshot(event):
            self._waiting.append(event)
        else:
            self._add_event(event, None)

    def on_result(self, result: FrameResult) -> None:
        if self._waiting:
            self._write_waiting(getattr(self.snapshots, "written", None) or {})

    def close(self) -> None:
        if self._waiting:  # the run ended between an event and its frame's results
            self._write_waiting({})

    # -- internals ------------------------------------------------------------------------------

    def _may_have_snapshot(self, event: Event) -> bool:
        return (self.snapshots is not None and event.kind == "label_decided"
                and event.label in getattr(self.snapshots, "labels", ()))

    def _write_waiting(self, paths: dict) -> None:
        waiting, self._waiting = self._waiting, []
        for i, event in enumerate(waiting):
            path = paths.get(event.track_id)
            try:
                self._add_event(event, None if path is None else os.path.abspath(path))
            except BaseException:
                self._waiting = waiting[i + 1:] + self._waiting  # close() still tries the rest
                raise

    def _add_event(self, event: Event, snapshot: str | None) -> None:
        self._written("event", self.history.add_event(self.camera, event, snapshot))

    def _written(self, kind: str, payload: dict) -> None:
        if self.on_write is not None:
            self.on_write(kind, payload)
