"""Run a :class:`~maskwatch.monitor.Monitor` off the UI thread and hand its results to Qt.

The monitor (the same one ``maskwatch --headless`` runs: pipeline + the sinks the config names:
CSV log, JSONL events, snapshots, video, alerts) runs in a plain Python thread. The UI is one more
sink: a :class:`ResultMailbox` that keeps only the newest ``FrameResult``: if the UI has not
consumed the previous result yet, that frame is *dropped* (counted), never queued, so a slow UI
can't build a backlog or lag behind the camera. Events, interval summaries and alerts (raised by
the same :class:`~maskwatch.sinks.alerts.AlertSink` that writes them to the JSONL log; a person's
alert carries the face thumbnail the alert sink cut from the deciding frame) of dropped frames are
carried over to the next delivery, so no alert and no chart point is lost.

The worker emits ``result_available`` only when the UI has taken the previous delivery, so at most
one queued signal exists at any time.

>>> from maskwatch.gui.worker import ResultMailbox
>>> box = ResultMailbox()
>>> box.take() is None
True
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from maskwatch.config import Config
from maskwatch.crop import crop_face
from maskwatch.errors import MaskwatchError
from maskwatch.monitor import Monitor
from maskwatch.results import Event, FrameResult, IntervalSummary, Stats
from maskwatch.sinks import sinks_from_config
from maskwatch.sinks.alerts import PERSON_ALERT_LABELS, Alert
from maskwatch.sinks.base import BaseSink

log = logging.getLogger("maskwatch.gui.worker")

ALERT_LABELS: tuple[str, ...] = PERSON_ALERT_LABELS
"""Decided labels whose person gets a thumbnail in the alert log."""


@dataclass
class Delivery:
    """What the UI receives: the newest result plus everything decided since the last delivery."""

    result: FrameResult | None  # None when only a status update or a summary came
    events: list[Event] = field(default_factory=list)  # all events since the last delivery, in order
    summaries: list[IntervalSummary] = field(default_factory=list)  # intervals closed since then
    skipped: int = 0  # results the UI never saw, since the worker started (cumulative)
    status: Stats | None = None  # newest status while the source delivers no frames (after ``result``)
    alerts: list[Alert] = field(default_factory=list)  # raised since the last delivery, in order; a person's
    # alert has its face thumbnail (the alert sink's ``thumbnail``, :func:`person_thumbnail` in the app)


THUMBNAIL_SIZE = 96


def person_thumbnail(image_bgr: np.ndarray, box) -> np.ndarray | None:
    """The person's face as an RGB (96, 96, 3) square, cut by the classifier's own crop function
    (the desktop app's alert sink cuts each person alert's thumbnail with it, once).

    >>> person_thumbnail(np.zeros((100, 100, 3), np.uint8), (40, 40, 60, 60)).shape
    (96, 96, 3)
    """
    if box is None:
        return None
    return crop_face(image_bgr, box, THUMBNAIL_SIZE, margin=0.35, bgr=True)


class ResultMailbox(BaseSink):
    """Latest-result mailbox between the monitor thread (``put*``) and the UI thread (``take``).

    Each ``put*`` returns ``True`` when the UI should be notified (it had consumed the previous
    delivery); a result put while an earlier one is still waiting replaces it and counts as skipped.
    Interval summaries come through ``put_summary`` (every CSV row, including the final partial
    one), status-only updates through ``put_status``, alerts through ``put_alert``.

    It is the desktop app's sink: ``on_result`` (frames and status updates), ``on_interval`` and
    ``on_alert`` (an :class:`~maskwatch.sinks.alerts.AlertSink` listener) put, and call ``notify``
    when the UI should take. Events are read from each result, so ``on_event`` has nothing to do.
    """

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._latest: FrameResult | None = None
        self._events: list[Event] = []
        self._summaries: list[IntervalSummary] = []
        self._alerts: list[Alert] = []
        self._status: Stats | None = None
        self._skipped = 0
        self._notify = True
        self.notify = notify

    # -- the sink ----------------------------------------------------------------------------------
    def on_result(self, result: FrameResult) -> None:
        self._notified(self.put(result) if result.frame is not None else self.put_status(result.stats))

    def on_interval(self, summary: IntervalSummary) -> None:
        self._notified(self.put_summary(summary))

    def on_alert(self, alert: Alert) -> None:
        self._notified(self.put_alert(alert))

    def _notified(self, armed: bool) -> None:
        if armed and self.notify is not None:
            self.notify()

    def _armed(self) -> bool:
        notify, self._notify = self._notify, False
        return notify

    def put(self, result: FrameResult) -> bool:
        with self._lock:
            if self._latest is not None:
                self._skipped += 1
            self._latest = result
            self._status = None
            self._events.extend(result.events)
            return self._armed()

    def put_summary(self, summary: IntervalSummary) -> bool:
        with self._lock:
            self._summaries.append(summary)
            return self._armed()

    def put_status(self, stats: Stats) -> bool:
        with self._lock:
            self._status = stats
            return self._armed()

    def put_alert(self, alert: Alert) -> bool:
        with self._lock:
            self._alerts.append(alert)
            return self._armed()

    def take(self) -> Delivery | None:
        with self._lock:
            self._notify = True
            if self._latest is None and self._status is None and not self._summaries and not self._alerts:
                return None
            delivery = Delivery(self._latest, self._events, self._summaries, self._skipped, self._status,
                                self._alerts)
            self._latest, self._status, self._events, self._summaries, self._alerts = None, None, [], [], []
            return delivery

    @property
    def skipped(self) -> int:
        with self._lock:
            return self._skipped


def _default_monitor_factory(config: Config, mailbox: ResultMailbox):
    """The headless mode's ``Monitor`` with the config's sinks, plus the mailbox (and alerts to it)."""
    def open_sinks():
        sinks = sinks_from_config(config, alert_listeners=[mailbox.on_alert], alert_thumbnail=person_thumbnail)
        return [*sinks, mailbox]

    return Monitor(config, sinks=open_sinks)


class MonitorWorker(QObject):
    """Owns one monitor run in a background thread.

    ``monitor_factory(config, mailbox)`` builds the run's monitor in that thread (models load off
    the UI thread); the default is the headless mode's :class:`~maskwatch.monitor.Monitor` with the
    config's sinks plus ``mailbox`` (a :class:`ResultMailbox`, itself a sink).

    Signals (delivered on the UI thread, queued):
      ``result_available()`` — call :meth:`take` to get the newest :class:`Delivery`.
      ``failed(str)`` — a one-line error (``MaskwatchError`` message, already free of passwords).
      ``finished(object)`` — the run is over (source ended, stopped or failed); ``Totals`` or ``None``.
      ``sink_failed(object, str)`` — a sink added with :meth:`add_sink` failed (a recording: disk
      full); it was removed and closed, the run goes on.
    """

    result_available = pyqtSignal()
    failed = pyqtSignal(str)
    finished = pyqtSignal(object)
    sink_failed = pyqtSignal(object, str)

    def __init__(self, monitor_factory=_default_monitor_factory, parent: QObject | None = None):
        super().__init__(parent)
        self._factory = monitor_factory
        self._redact: Callable[[str], str] = lambda text: text
        self._mailbox = ResultMailbox()
        self._thread: threading.Thread | None = None
        self._monitor = None
        self._lock = threading.Lock()
        self._stop_requested = False
        self._pending_sinks: list = []  # added before the monitor exists (models still loading)
        self._accepting = False  # a run is starting or running: add_sink may queue

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def skipped(self) -> int:
        return self._mailbox.skipped

    def start(self, config: Config, redact: Callable[[str], str] | None = None) -> None:
        """Start a run; ``redact`` cleans every message the worker emits or logs (passwords)."""
        if self.running:
            raise RuntimeError("the monitor is already running")
        self._mailbox = ResultMailbox(notify=self.result_available.emit)
        self._stop_requested = False
        self._monitor = None
        self._pending_sinks = []
        self._accepting = True
        self._redact = redact or (lambda text: text)
        self._thread = threading.Thread(target=self._run, args=(config,), name="maskwatch-monitor", daemon=True)
        self._thread.start()

    def take(self) -> Delivery | None:
        return self._mailbox.take()

    def stop(self) -> None:
        """Ask the run to end (thread-safe, returns at once)."""
        with self._lock:
            self._stop_requested = True
            monitor = self._monitor
        if monitor is not None:
            monitor.stop()

    def add_sink(self, sink) -> bool:
        """Feed ``sink`` (e.g. a :class:`~maskwatch.sinks.video.VideoSink`) from the running
        monitor's next result on; the run closes it when it ends. Its errors are reported by
        ``sink_failed`` instead of ending the run. ``False`` (and the sink closed) when no run is
        going on."""
        with self._lock:
            monitor = self._monitor
            if monitor is None and self._accepting and not self._stop_requested:
                self._pending_sinks.append(sink)
                return True
        if monitor is not None and monitor.add_sink(sink, on_error=self._sink_error):
            return True
        sink.close()
        return False

    def remove_sink(self, sink) -> None:
        """Stop feeding ``sink`` and close it: when this returns, a video is finalised, also when
        the run is ending at the same moment (closing is idempotent and thread-safe)."""
        with self._lock:
            monitor = self._monitor
            if sink in self._pending_sinks:
                self._pending_sinks.remove(sink)
        if monitor is not None:
            monitor.remove_sink(sink)
        else:
            sink.close()

    def swap_model(self, path) -> str:
        """Load and check the mask classifier at ``path`` (in the calling thread) and have the
        running monitor use it from its next frame, counts kept (:meth:`Monitor.swap_model`).
        Returns its description; a one-line ``MaskwatchError`` when it is bad (the old one stays)
        or when no run is going on."""
        with self._lock:
            monitor = self._monitor
        if monitor is None or not self.running:
            raise MaskwatchError("no run is going on: the model is used from the next Start")
        return monitor.swap_model(path)

    def _sink_error(self, sink, error: BaseException) -> None:
        self.sink_failed.emit(sink, self._redact(str(error).splitlines()[0] if str(error) else type(error).__name__))

    def join(self, timeout: float | None = 10.0) -> bool:
        """Wait for the thread; ``True`` when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self, config: Config) -> None:
        totals = None
        try:
            monitor = self._factory(config, self._mailbox)  # may load models: off the UI thread
            with self._lock:  # the queued sinks reach the monitor before remove_sink can look for them
                self._monitor = monitor
                stop_now = self._stop_requested
                pending, self._pending_sinks = self._pending_sinks, []
                refused = [s for s in pending if not monitor.add_sink(s, on_error=self._sink_error)]
            for sink in refused:
                sink.close()
            if stop_now:
                monitor.stop()
            totals = monitor.run()
        except MaskwatchError as e:
            self.failed.emit(self._redact(str(e).splitlines()[0] if str(e) else type(e).__name__))
        except Exception as e:  # an unexpected bug: keep the UI alive, log the traceback
            log.error("monitor crashed:\n%s", self._redact(traceback.format_exc()))
            first = str(e).splitlines()[0] if str(e) else ""
            self.failed.emit(self._redact(f"internal error: {type(e).__name__}: {first}"))
        finally:
            with self._lock:
                self._monitor = None
                self._accepting = False
                pending, self._pending_sinks = self._pending_sinks, []
            for sink in pending:  # the factory failed before they could be added
                sink.close()
            self.finished.emit(totals)
