"""``DatabaseSink``: one camera's interval rows and events into the history database (the MQTT outbox).

Each closed interval becomes an ``intervals`` row and each counter event an ``events`` row of
:class:`~maskwatch.history.History`, written (committed) before anything publishes it.

A database that is away for a while (PostgreSQL restarting, an SQLite file locked by another
writer beyond its busy timeout: :class:`~maskwatch.history.DatabaseUnavailable`) does not end
the run: the row (its payload, with its ``id``, made once) waits in a bounded in-memory queue, in
order, and later calls try the queue again (first after ``retry_initial_s``, the wait doubling up to
``retry_max_s``); one warning when the outage starts, one when the queue is written. Rows keep their
order: while anything waits, a new row joins the end of the queue. The bound (``max_queued`` rows;
a week of one-minute intervals is 10 080) keeps a long outage from eating the
camera's memory: when it is full a NEW row is dropped (the oldest, already waiting, are kept),
counted in :attr:`DatabaseSink.dropped` and logged as an error (the first drop and every 100th),
and the total is said again when the database is back. :meth:`DatabaseSink.close` tries the queue
for up to ``close_wait_s`` more, then raises a one-line ``MaskwatchError`` saying how many rows are
lost. Any other database error (a dropped table, a schema that is not maskwatch's) is raised as a
one-line ``MaskwatchError``: the monitor gives every other sink its turn (the CSV log still gets
the row) and then ends the run, so a row is never dropped silently.

Snapshots: the snapshot sink saves its JPEG in ``on_result``, after every sink's ``on_event``
(:func:`maskwatch.monitor.fan_out`). Given that sink (``snapshots=``; its place in the sink list
does not matter), an event it may save a JPEG for (``label_decided`` with a flagged label, or a
``label_changed`` from with_mask to one: the mask taken off) waits until the snapshot sink hands
over the paths it saved for that frame (:meth:`~maskwatch.sinks.snapshots.SnapshotSaver.on_saved`)
and is written then, with its JPEG's path; an event still waiting when the run ends is written by
:meth:`close`.

>>> import tempfile, pathlib
>>> from maskwatch.results import Event
>>> from maskwatch.history import History
>>> history = History(pathlib.Path(tempfile.mkdtemp()) / "history.db")
>>> written = []
>>> sink = DatabaseSink(history, "door", on_write=lambda kind, payload: written.append((kind, payload["type"])))
>>> sink.on_event(Event("person_seen", 1, 1e9, 0))
>>> written, [p["camera"] for p in history.events()]
([('event', 'new')], ['door'])
>>> sink.close(); history.close()
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from maskwatch.errors import MaskwatchError
from maskwatch.history import DatabaseUnavailable, History, RowRejected
from maskwatch.records import event_payload, interval_payload
from maskwatch.sinks.alerts import alert_worthy
from maskwatch.sinks.base import BaseSink

if TYPE_CHECKING:
    from maskwatch.results import Event, FrameResult, IntervalSummary
    from maskwatch.sinks.snapshots import SnapshotSaver

log = logging.getLogger("maskwatch.sinks.database")

MAX_QUEUED = 20_000
"""Rows a :class:`DatabaseSink` keeps in memory while the database is away (a few MB)."""

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
                 snapshots: SnapshotSaver | None = None, max_queued: int = MAX_QUEUED,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0, close_wait_s: float = 10.0):
        self.history = history
        self.camera = str(camera)
        self.on_write = on_write
        self.snapshots = snapshots
        self.max_queued = max(1, int(max_queued))
        self.retry_initial_s, self.retry_max_s = float(retry_initial_s), float(retry_max_s)
        self.close_wait_s = float(close_wait_s)
        self.dropped = 0  # rows lost because the queue was full (all outages)
        self._waiting: list[Event] = []  # label_decided events whose snapshot is saved in on_result
        self._queue: deque[tuple[str, dict]] = deque()  # rows the database did not take yet, oldest first
        self._outage_since: float | None = None  # time.monotonic() the outage began
        self._outage_dropped = 0
        self._retry_wait = self.retry_initial_s
        self._next_try = 0.0
        if snapshots is not None:
            snapshots.on_saved(self._snapshots_saved)  # the explicit hand-over of the JPEG paths

    @property
    def queued(self) -> int:
        """Rows waiting for the database."""
        return len(self._queue)

    def on_interval(self, summary: IntervalSummary) -> None:
        self._store("interval", interval_payload(self.camera, summary))

    def on_event(self, event: Event) -> None:
        if self._may_have_snapshot(event):
            self._waiting.append(event)
        else:
            self._add_event(event, None)

    def on_result(self, result: FrameResult) -> None:
        if self._queue and time.monotonic() >= self._next_try:
            self._flush()

    def close(self) -> None:
        if self._waiting:  # the run ended between an event and its frame's results
            self._write_waiting({})
        deadline = time.monotonic() + self.close_wait_s
        while self._queue and not self._flush():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(self._retry_wait, left, 1.0))
        if self._queue:
            lost = len(self._queue)
            self._queue.clear()
            dropped = f" ({self.dropped} more were dropped earlier)" if self.dropped else ""
            raise MaskwatchError(f"{lost} row{'s' if lost != 1 else ''} of camera {self.camera} could not be "
                                 f"written to database {self.history.shown_url} and are lost{dropped}: it is still "
                                 "away (the CSV and JSONL logs, if any, have them)")
        if self.dropped:
            log.error("%d rows of camera %s were dropped while database %s was away (the queue was full)",
                      self.dropped, self.camera, self.history.shown_url)

    # -- internals ------------------------------------------------------------------------------

    def _may_have_snapshot(self, event: Event) -> bool:
        return self.snapshots is not None and alert_worthy(event, self.snapshots.labels)

    def _snapshots_saved(self, paths: dict) -> None:
        """The snapshot sink is done with a frame: write the events that waited for its JPEGs."""
        if self._waiting:
            self._write_waiting(paths)

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
        self._store("event", event_payload(self.camera, event, snapshot))

    def _store(self, kind: str, payload: dict) -> None:
        """Write the row now, or queue it behind the rows that wait (their order is kept)."""
        if self._queue:
            self._enqueue(kind, payload)
            if time.monotonic() >= self._next_try:
                self._flush()
            return
        try:
            self.history.write(kind, payload)
        except DatabaseUnavailable as e:
            self._outage(e)
            self._enqueue(kind, payload)
            return
        self._written(kind, payload)

    def _enqueue(self, kind: str, payload: dict) -> None:
        if len(self._queue) >= self.max_queued:  # keep the oldest; the newest is lost, loudly
            self.dropped += 1
            self._outage_dropped += 1
            if self._outage_dropped == 1 or self._outage_dropped % 100 == 0:
                log.error("database %s is still away and %d rows wait in memory (the most kept): %d new "
                          "row%s dropped so far (%s %s)", self.history.shown_url, len(self._queue),
                          self._outage_dropped, "s" if self._outage_dropped != 1 else "", kind, payload.get("id"))
            return
        self._queue.append((kind, payload))

    def _outage(self, error: BaseException) -> None:
        self._outage_since = time.monotonic()
        self._outage_dropped = 0
        self._retry_wait = self.retry_initial_s
        self._next_try = self._outage_since + self._retry_wait
        log.warning("%s; keeping rows in memory (up to %d) and trying again", error, self.max_queued)

    def _flush(self) -> bool:
        """Write the waiting rows, oldest first; ``True`` when none is left. A row the database
        refuses for its values (it would never be written) is logged and dropped."""
        while self._queue:
            kind, payload = self._queue[0]
            try:
                self.history.write(kind, payload)
            except DatabaseUnavailable:
                self._next_try = time.monotonic() + self._retry_wait
                self._retry_wait = min(self._retry_wait * 2, self.retry_max_s)
                return False
            except RowRejected as e:
                self._queue.popleft()
                self.dropped += 1
                log.error("%s: row dropped", e)
                continue
            self._queue.popleft()
            self._written(kind, payload)
        since = self._outage_since
        self._outage_since = None
        if since is not None:
            lost = f"; {self._outage_dropped} rows were dropped (the queue was full)" if self._outage_dropped else ""
            log.warning("database %s is back after %.0f s: every waiting row written%s", self.history.shown_url,
                        time.monotonic() - since, lost)
        return True

    def _written(self, kind: str, payload: dict) -> None:
        if self.on_write is not None:
            self.on_write(kind, payload)
