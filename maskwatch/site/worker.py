"""One camera's worker process (``maskwatch serve`` starts one per ``[[cameras]]`` entry).

A worker is the single-camera loop: a :class:`~maskwatch.monitor.Monitor` whose sinks are the
camera's own outputs (:func:`~maskwatch.sinks.sinks_from_config`: CSV, JSONL, snapshots, video,
retention), a :class:`~maskwatch.sinks.database.DatabaseSink` writing intervals and events to the
history database (also the MQTT outbox) and a :class:`StatusSink` that tells the supervisor, over
the worker's own pipe (:mod:`maskwatch.site.messages`), the camera's state, who is in view, that a
row waits in the outbox, and its log lines (one writer of stderr: lines never interleave, a
credential never slips out unredacted).

It exits with 0 (the source ended or it was stopped), :data:`EXIT_PERMANENT` (the camera cannot
work as configured: a video file that is not there, a missing or broken model, whatever its
source) or :data:`EXIT_RETRY` (a network camera's errors, a history database that is away).
SIGTERM stops it after its last partial interval; SIGHUP reloads its model from disk; SIGINT is
the supervisor's business (ignored).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from multiprocessing.connection import Connection

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.history import DatabaseUnavailable, History
from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow
from maskwatch.monitor import Monitor, load_checked_classifier
from maskwatch.records import state_text
from maskwatch.site.messages import (  # noqa: F401 - the exit statuses and STATS_EVERY_S re-exported
    EXIT_PERMANENT, EXIT_RETRY, STATS_EVERY_S, InView, LogLine, Message, OutboxWritten, RunTotals, StateChanged, Stats,
    WorkerError,
)
from maskwatch.sinks import sinks_from_config
from maskwatch.sinks.base import BaseSink
from maskwatch.sinks.database import DatabaseSink
from maskwatch.sinks.names import stamped_recording  # noqa: F401 - re-exported (serve imports it from here)
from maskwatch.sinks.snapshots import SnapshotSaver
from maskwatch.sources.spec import redact



class _Sender:
    """The worker's end of its pipe, shared by the monitor thread, the logging and the watchdog."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        with self._lock:
            try:
                self.conn.send(message)
            except (OSError, ValueError):  # the supervisor is gone: the watchdog stops the run
                pass


class _PipeLogHandler(logging.Handler):
    """Worker log lines to the supervisor (which prefixes the camera and redacts them again)."""

    def __init__(self, send: _Sender, camera: str) -> None:
        super().__init__()
        self.send, self.camera = send, camera

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = redact(record.getMessage())
            if record.exc_info and record.levelno >= logging.ERROR:
                text += f" ({record.exc_info[1]!r})"
        except Exception:  # noqa: BLE001 - a bad log call must not kill the camera
            text = redact(str(record.msg))
        self.send(LogLine(self.camera, record.levelno, text))


def in_view(faces) -> dict[str, int]:
    """People in ``faces`` now, by their decided label (tracked faces whose label is decided).

    >>> import numpy as np
    >>> from maskwatch.faces import Faces
    >>> f = Faces(np.zeros((3, 4)), np.ones(3), track_id=[1, 2, 3], track_label=[0, 0, -1])
    >>> in_view(f)
    {'with_mask': 2, 'without_mask': 0, 'mask_worn_incorrectly': 0}
    """
    counts = {label: 0 for label in LABELS}
    for track, label in zip(faces.track_id, faces.track_label):
        if track >= 0 and 0 <= label < len(LABELS):
            counts[LABELS[label]] += 1
    return counts


class StatusSink(BaseSink):
    """The camera's health for the supervisor: its state and the people in view (on change), its
    totals (with each interval row) and its speed (every ``STATS_EVERY_S``)."""

    def __init__(self, send, camera: str, stats_every_s: float = STATS_EVERY_S) -> None:
        self.send, self.camera, self.stats_every_s = send, camera, stats_every_s
        self._state: str | None = None
        self._in_view: dict | None = None
        self._totals = None
        self._rows = 0
        self._frames = 0
        self._next_stats = time.monotonic() + stats_every_s

    def on_result(self, result) -> None:
        state = state_text(result.stats.source_state)
        if state != self._state:
            self._state = state
            self.send(StateChanged(self.camera, state))
        self._totals = result.totals
        if result.frame is None:
            return
        self._frames += 1
        counts = in_view(result.faces)
        if counts != self._in_view:
            self._in_view = counts
            self.send(InView(self.camera, counts))
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_every_s
            self.send(Stats(self.camera, fps=float(result.stats.fps), latency_ms=float(result.stats.latency_ms),
                            frames=self._frames))

    def on_interval(self, summary) -> None:
        self._rows += 1
        self.send(self.totals())

    def totals(self) -> RunTotals:
        t = self._totals
        return RunTotals(self.camera, rows=self._rows, people_seen=t.people_seen if t else 0,
                         by_label=dict(t.by_label) if t else {k: 0 for k in LABELS})

    def close(self) -> None:
        self.send(self.totals())


def worker_main(camera: str, config, db_url: str, conn: Connection, debug: bool,
                stats_every_s: float = STATS_EVERY_S) -> None:
    """One camera's process (the target of the supervisor's ``Process``); exits with 0 (the
    source ended or it was stopped), ``EXIT_PERMANENT`` or ``EXIT_RETRY``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's business
    send = _Sender(conn)
    holder: dict = {"monitor": None, "stop": False}

    def on_term(_signum, _frame):
        holder["stop"] = True
        if holder["monitor"] is not None:
            holder["monitor"].stop()

    def on_hup(_signum, _frame):
        holder["reload"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(send, camera)]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("sqlalchemy", "PIL", "matplotlib", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    code = _worker_run(camera, config, db_url, send, holder, stats_every_s)
    try:
        conn.close()
    finally:
        os._exit(code)  # no atexit work in a spawned child: its parent's queues are not ours


def _worker_run(camera: str, config, db_url: str, send: _Sender, holder: dict, stats_every_s: float) -> int:
    permanent = True
    try:
        permanent = config.spec.kind != "network" if isinstance(config.source, str) else True
    except MaskwatchError:
        pass
    parent = os.getppid()
    try:
        try:  # a missing or broken model is the configuration, whatever the source: not restarted
            classifier = load_checked_classifier(config.model)  # the pipeline uses this one: loaded once
        except MaskwatchError as e:
            send(WorkerError(camera, redact(str(e)), permanent=True))
            return EXIT_PERMANENT
        if config.save_video is not None:
            config = dataclasses.replace(config, save_video=stamped_recording(config.save_video))
        try:  # the supervisor opened it at start: failing now is a database that is away (restarted)
            history = History(db_url)
        except MaskwatchError as e:
            send(WorkerError(camera, redact(f"{e} (trying again)"), permanent=False))
            return EXIT_RETRY
        status = StatusSink(send, camera, stats_every_s)
        outbox = lambda *_args, **_kwargs: send(OutboxWritten(camera))  # noqa: E731

        def open_sinks():
            sinks = sinks_from_config(config)
            try:
                saver = next((s for s in sinks if isinstance(s, SnapshotSaver)), None)  # its paths go in the rows
                sinks.append(DatabaseSink(history, camera, on_write=outbox, snapshots=saver))
            except BaseException:
                for sink in sinks:
                    sink.close()
                raise
            return [*sinks, status]

        monitor = Monitor(config, sinks=open_sinks, classifier=classifier)
        holder["monitor"] = monitor
        if holder["stop"]:
            monitor.stop()
        threading.Thread(target=_watch, args=(monitor, parent, holder), name="maskwatch-watchdog", daemon=True).start()
        try:
            import_mediapipe_without_tensorflow()
            monitor.run()
        finally:
            history.close()
        return 0
    except MaskwatchError as e:
        permanent = permanent and not isinstance(e, DatabaseUnavailable)  # an outage passes: restart
        send(WorkerError(camera, redact(str(e)), permanent=permanent))
        return EXIT_PERMANENT if permanent else EXIT_RETRY
    except Exception as e:  # noqa: BLE001 - reported, then restarted by the supervisor
        send(WorkerError(camera, redact(f"unexpected {type(e).__name__}: {e}"), permanent=False))
        logging.getLogger("maskwatch.serve").debug("traceback", exc_info=True)
        return 1


def _watch(monitor, parent: int, holder: dict) -> None:
    """Stop the camera when the supervisor is gone (no orphan keeps a camera busy); reload the
    model on SIGHUP (in this thread, so the camera keeps running while it loads; the signal
    handler only sets a flag)."""
    while not monitor.finishing:
        if os.getppid() != parent:
            monitor.stop()
            return
        if holder.pop("reload", False):
            _reload_model(monitor)
        time.sleep(0.2)


def _reload_model(monitor) -> None:
    """Load the camera's model file again (a fine-tuned model copied over it): counts and tracks
    stay; a model that does not load leaves the old one in use."""
    logger = logging.getLogger("maskwatch.serve")
    try:
        described = monitor.swap_model(monitor.config.model)
    except MaskwatchError as e:
        logger.error("model not reloaded (the one in use stays): %s", e)
        return
    logger.debug("model reloaded: %s", described)
