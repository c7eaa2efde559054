"""The supervisor of ``maskwatch serve``: one worker process per camera, watched, restarted, stopped.

The supervisor (the ``serve`` process) starts one worker (:mod:`maskwatch.site.worker`) per
``[[cameras]]`` entry (``multiprocessing`` "spawn": a fresh interpreter, nothing shared but what is
sent), reads each worker's messages (:mod:`maskwatch.site.messages`) from the worker's own pipe and
owns the one MQTT connection (:class:`~maskwatch.site.mqtt.client.MqttPublisher`, when there is an
``[mqtt]`` table).

Supervision, Frigate's watchdog in small:

- a worker that dies (a crash, the OOM killer, ``kill -9``) is restarted after a wait that doubles
  from ``restart_backoff_initial_s`` up to ``restart_backoff_max_s``, and starts over from the
  initial wait once a worker has run ``restart_reset_after_s``; each restart is logged with the
  camera, the exit code or signal and the restart count, the camera's MQTT state is
  ``reconnecting`` meanwhile, and the count is in the final summary;
- a camera that cannot work as configured (a video file that is not there, a missing or broken
  model: checked by each worker before it starts, whatever its source) is reported once and not
  restarted: state ``ended``; a network camera's errors are retried, and so is a history database
  that is away when a worker starts (the supervisor opened it at start: it will be back);
- a worker that ends (for good or to be restarted) leaves nobody in view: its retained
  ``<camera>/<label>`` counts go to 0;
- a file source that ends ends its camera (``ended``); when every camera has ended, serve exits
  (status 0, or 1 when a camera could not work).

Signals (handled by :mod:`maskwatch.site.serve`, which calls :meth:`Supervisor.stop` and
:meth:`Supervisor.reload`): SIGTERM / SIGINT -> every worker gets SIGTERM, writes its last partial
interval and exits; the supervisor waits ``stop_timeout_s`` (then SIGKILL), publishes the final
states and closes MQTT (``offline``). SIGHUP is forwarded to the workers, which reload their
classifier model from disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.history import History
from maskwatch.site.messages import (EXIT_PERMANENT, EXIT_RETRY, STATS_EVERY_S, InView, LogLine, Message, OutboxWritten,
                                     RunTotals, StateChanged, Stats, WorkerError)
from maskwatch.site.mqtt import MqttPublisher
from maskwatch.site.spawn import worker_process
from maskwatch.sinks.from_config import check_sinks_config
from maskwatch.sinks.names import stamped_recording

log = logging.getLogger("maskwatch.serve")

_POLL_S = 0.2


@dataclass
class _Worker:
    """One camera's worker process and what the supervisor knows of it."""

    name: str
    config: object = field(repr=False)  # the camera's Config (with its password: never logged)
    backoff: float
    process: multiprocessing.process.BaseProcess | None = None
    conn: Connection | None = None
    started: float = 0.0  # time.monotonic() of the last start
    restart_at: float | None = None  # when to start it again (monotonic), None: not scheduled
    restarts: int = 0
    done: bool = False  # ended for good (source ended, permanent error, stopped)
    how_ended: str = ""
    last_error: str | None = None  # the last error a worker reported (logged once per distinct text)
    state: str | None = None
    rows: int = 0  # interval rows written, all runs
    people: int = 0
    by_label: dict = field(default_factory=lambda: {k: 0 for k in LABELS})
    run_totals: RunTotals | None = None  # the running worker's latest totals
    fps: float | None = None
    latency_ms: float | None = None

    def bank(self) -> None:
        """Add the finished run's totals to the camera's."""
        totals, self.run_totals = self.run_totals, None
        if totals is not None:
            self.rows += totals.rows
            self.people += totals.people_seen
            for label, n in totals.by_label.items():
                self.by_label[label] = self.by_label.get(label, 0) + n


class Supervisor:
    """Starts, watches, restarts and stops the workers (see the module docstring)."""

    def __init__(self, site, *, debug: bool = False):
        self.site = site
        self.debug = debug
        self.settings = site.serve
        self.workers = [_Worker(c.name, c.config, backoff=self.settings.restart_backoff_initial_s) for c in site.cameras]
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._finishing = threading.Event()
        self._reload = False
        self.publisher: MqttPublisher | None = None

    # -- signal handler side (thread- and signal-safe: flags only) ------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def finishing(self) -> bool:
        """Workers are writing their last rows: a second Ctrl-C waits (see cli._StopSignals)."""
        return self._finishing.is_set()

    def reload(self, _signum=None, _frame=None) -> None:
        self._reload = True

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        history = History(self.site.db_url)  # creates the tables once, before the workers race to
        try:
            log.info("%d camera%s, history %s%s", len(self.workers), "s" if len(self.workers) != 1 else "",
                     self.site.shown_db_url, "" if self.site.mqtt is None else f", MQTT {self.site.mqtt.address}")
            if self.site.mqtt is not None:
                self.publisher = MqttPublisher(self.site.mqtt, history, [w.name for w in self.workers]).start()
            for worker in self.workers:
                self._set_state(worker, "connecting")
                self._start(worker)
            while not self._stop.is_set() and not all(w.done for w in self.workers):
                self._step()
            self._shutdown()
        finally:
            try:
                if self.publisher is not None:
                    self.publisher.close()
            finally:
                history.close()

    def _step(self) -> None:
        if self._reload:
            self._reload = False
            self._signal_workers(signal.SIGHUP, "reloading the model")
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None and now >= worker.restart_at and not worker.done:
                worker.restart_at = None
                self._start(worker)
        self._pump(_POLL_S)
        for worker in self.workers:
            if worker.process is not None and not worker.process.is_alive():
                self._reap(worker, stopping=False)

    def _pump(self, timeout: float) -> None:
        """Handle the workers' messages for up to ``timeout`` seconds (returns at the first batch)."""
        live = {w.conn: w for w in self.workers if w.conn is not None}
        sentinels = [w.process.sentinel for w in self.workers if w.process is not None]
        ready = wait([*live, *sentinels], timeout)
        for conn in ready:
            worker = live.get(conn)
            if worker is not None:
                self._drain(worker)

    def _drain(self, worker: _Worker) -> None:
        conn = worker.conn
        try:
            while conn is not None and conn.poll():
                self._handle(worker, conn.recv())
        except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
            # the worker is gone (EOF), or died in the middle of a message: its sentinel says which
            if not isinstance(e, EOFError):
                log.debug("message from a dying worker dropped: %s", type(e).__name__, extra={"camera": worker.name})
            conn.close()
            worker.conn = None
        except Exception as e:  # noqa: BLE001 - an unpickling surprise must not end the site
            log.warning("bad message from the worker dropped: %s", e, extra={"camera": worker.name})
            conn.close()
            worker.conn = None

    def _handle(self, worker: _Worker, message: Message) -> None:
        if isinstance(message, StateChanged):
            self._set_state(worker, message.state)
        elif isinstance(message, InView):
            if self.publisher is not None:
                self.publisher.set_in_view(worker.name, message.counts)
        elif isinstance(message, OutboxWritten):
            if self.publisher is not None:
                self.publisher.wake()
        elif isinstance(message, LogLine):
            log.log(message.level, "%s", message.text, extra={"camera": worker.name})
        elif isinstance(message, RunTotals):
            worker.run_totals = message
        elif isinstance(message, Stats):
            worker.fps, worker.latency_ms = message.fps, message.latency_ms
            log.log(logging.INFO if self.settings.stats_every_s else logging.DEBUG,
                    "%.1f fps, capture to label %.0f ms, %d frames", worker.fps, worker.latency_ms,
                    message.frames, extra={"camera": worker.name})
        elif isinstance(message, WorkerError):
            if message.text != worker.last_error:
                log.error("%s", message.text, extra={"camera": worker.name})
            worker.last_error = message.text

    def _set_state(self, worker: _Worker, state: str) -> None:
        if state == worker.state:
            return
        worker.state = state
        log.debug("state %s", state, extra={"camera": worker.name})
        if self.publisher is not None:
            self.publisher.set_state(worker.name, state)

    def _start(self, worker: _Worker) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=worker_process, name=f"maskwatch-{worker.name}",
                                        args=(worker.name, worker.config, self.site.db_url, send, self.debug,
                                              self.settings.stats_every_s or STATS_EVERY_S))
        # The child starts with SIGINT/SIGTERM/SIGHUP blocked (the mask survives fork and exec): a
        # signal that comes while it imports waits until its handlers are in place.
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        send.close()
        worker.process, worker.conn, worker.started = process, receive, time.monotonic()
        what = "started" if worker.restarts == 0 else f"restarted (restart {worker.restarts})"
        log.info("worker %s (pid %d)", what, process.pid, extra={"camera": worker.name})

    def _reap(self, worker: _Worker, *, stopping: bool) -> None:
        """The worker's process ended: collect its last messages, then end or reschedule the camera."""
        process = worker.process
        process.join()
        if worker.conn is not None:
            self._drain(worker)
        if worker.conn is not None:
            worker.conn.close()
            worker.conn = None
        worker.process = None
        worker.bank()
        self._nobody_in_view(worker)
        code = process.exitcode
        ran = time.monotonic() - worker.started
        if stopping or self._stop.is_set():
            worker.done, worker.how_ended = True, "stopped" if code == 0 else f"stopped ({_exit_text(code)})"
            return
        if code == 0:
            log.info("source ended; camera done", extra={"camera": worker.name})
            worker.done, worker.how_ended = True, "source ended"
            self._set_state(worker, "ended")
            return
        if code == EXIT_PERMANENT:
            log.error("not restarted: the camera cannot work as configured (fix site.toml and restart serve)",
                      extra={"camera": worker.name})
            worker.done, worker.how_ended = True, "failed: " + (worker.last_error or "error")
            self._set_state(worker, "ended")
            return
        if ran >= self.settings.restart_reset_after_s:
            worker.backoff = self.settings.restart_backoff_initial_s
        wait_s = worker.backoff
        worker.backoff = min(worker.backoff * 2, self.settings.restart_backoff_max_s)
        worker.restarts += 1
        worker.restart_at = time.monotonic() + wait_s
        cause = "failed" if code == EXIT_RETRY else f"died ({_exit_text(code)})"
        log.warning("worker %s after %.1f s; restart %d in %.1f s", cause, ran, worker.restarts, wait_s,
                    extra={"camera": worker.name})
        self._set_state(worker, "reconnecting")

    def _signal_workers(self, signum: int, why: str) -> None:
        for worker in self.workers:
            process = worker.process
            if process is not None and process.is_alive():
                log.debug("%s (pid %d)", why, process.pid, extra={"camera": worker.name})
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    def _shutdown(self) -> None:
        """SIGTERM every worker, wait for their last rows (then SIGKILL), publish the final states."""
        self._finishing.set()
        if any(w.process is not None for w in self.workers):
            log.info("stopping: every worker writes its last interval")
        self._signal_workers(signal.SIGTERM, "stopping")
        deadline = time.monotonic() + self.settings.stop_timeout_s
        while any(w.process is not None for w in self.workers):
            self._pump(min(_POLL_S, max(0.0, deadline - time.monotonic())))
            for worker in self.workers:
                if worker.process is not None and not worker.process.is_alive():
                    self._reap(worker, stopping=True)
            if time.monotonic() >= deadline:
                for worker in self.workers:
                    if worker.process is not None:
                        log.warning("did not stop within %.0f s: killed", self.settings.stop_timeout_s,
                                    extra={"camera": worker.name})
                        worker.process.kill()
                        self._reap(worker, stopping=True)
        for worker in self.workers:
            worker.restart_at = None
            worker.done = True
            worker.how_ended = worker.how_ended or "stopped"
            self._nobody_in_view(worker)
            self._set_state(worker, "ended")

    def _nobody_in_view(self, worker: _Worker) -> None:
        """A camera whose worker ended sees nobody: its retained ``<camera>/<label>`` counts read 0
        (else Home Assistant shows the last people in view forever)."""
        if self.publisher is not None:
            self.publisher.set_in_view(worker.name, {label: 0 for label in LABELS})

    def summary(self) -> list[str]:
        """One line per camera: rows, people by label, restarts, how it ended."""
        lines = []
        for w in self.workers:
            labels = ", ".join(f"{label} {w.by_label.get(label, 0)}" for label in LABELS)
            lines.append(f"{w.name}: {w.rows} interval row{'s' if w.rows != 1 else ''}, {w.people} "
                         f"{'person' if w.people == 1 else 'people'} ({labels}), {w.restarts} "
                         f"restart{'s' if w.restarts != 1 else ''}, {w.how_ended or 'stopped'}")
        return lines


def _exit_text(code: int | None) -> str:
    """``"exit code 1"`` or ``"killed by SIGKILL"``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def check_outputs(site) -> None:
    """Every camera's outputs can be written (a one-line ``MaskwatchError`` naming the camera),
    checked before any worker starts; each worker run records its own video (``stamped_recording``)."""
    for camera in site.cameras:
        config = camera.config
        if config.save_video is not None:
            config = dataclasses.replace(config, save_video=stamped_recording(config.save_video))
        try:
            check_sinks_config(config)
        except MaskwatchError as e:
            raise MaskwatchError(f"camera {camera.name!r}: {e}") from None


@contextlib.contextmanager
def reload_on_sighup(supervisor: Supervisor):
    """SIGHUP calls ``supervisor.reload`` (the workers reload their model) while the block runs."""
    previous = signal.signal(signal.SIGHUP, supervisor.reload)
    try:
        yield supervisor
    finally:
        signal.signal(signal.SIGHUP, previous)
