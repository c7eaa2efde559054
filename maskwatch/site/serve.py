"""``maskwatch serve --config site.toml``: every camera of a site, one supervised worker process each.

The supervisor (this process) starts one worker per ``[[cameras]]`` entry (``multiprocessing``
"spawn": a fresh interpreter, nothing shared but what is sent) and owns the one MQTT connection
(:class:`~maskwatch.site.publisher.MqttPublisher`, when there is an ``[mqtt]`` table). A worker is
the single-camera loop: a :class:`~maskwatch.monitor.Monitor` whose sinks are the camera's own
outputs (:func:`~maskwatch.sinks.sinks_from_config`: CSV, JSONL, snapshots, video, retention), a
:class:`~maskwatch.sinks.database.DatabaseSink` writing intervals and events to the history
database (also the MQTT outbox) and a :class:`StatusSink` that tells the supervisor, over the
worker's own pipe, the camera's state, who is in view, that a row waits in the outbox, and its
log lines (one writer of stderr: lines never interleave, a credential never slips out unredacted).

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

Signals: SIGTERM / SIGINT (Ctrl-C reaches every process of the terminal's group; workers ignore it,
the supervisor decides) -> every worker gets SIGTERM, writes its last partial interval and exits;
the supervisor waits ``stop_timeout_s`` (then SIGKILL), publishes the final states, closes MQTT
(``offline``) and exits 0 with one summary line per camera on stdout. SIGHUP is forwarded to the
workers, which reload their classifier model from disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.records import state_text
from maskwatch.sinks.base import BaseSink

log = logging.getLogger("maskwatch.serve")

EXIT_PERMANENT = 3
"""A worker's exit status: the camera cannot work as configured; do not restart it."""
EXIT_RETRY = 4
"""A worker's exit status: the camera failed (unreachable at start); restart it with backoff."""
STATS_EVERY_S = 5.0
"""How often a worker sends its speed (fps, capture-to-label latency) to the supervisor, unless
``[serve] stats_every_s`` says (then the supervisor logs it as an ordinary line, else in --debug)."""
_POLL_S = 0.2


def build_parser(parser_class, prog: str) -> argparse.ArgumentParser:
    p = parser_class(prog=prog, description="Run every camera of a site (site.toml), one supervised worker process "
                                            "per camera, with the history database and MQTT.")
    p.add_argument("--config", required=True, type=Path, metavar="SITE_TOML", help="the site file (see docs/site.md)")
    p.add_argument("--debug", action="store_true", help="debug log lines (fps and latency per camera), tracebacks")
    return p


def run(args: argparse.Namespace, stop_signals) -> int:
    from maskwatch.site.config import SiteConfig
    from maskwatch.sinks.from_config import check_sinks_config

    site = SiteConfig.load(args.config)
    for camera in site.cameras:
        config = camera.config
        if config.save_video is not None:  # each worker run records its own file (see _stamped_recording)
            config = dataclasses.replace(config, save_video=_stamped_recording(config.save_video))
        try:
            check_sinks_config(config)  # a bad output path fails now, in one line
        except MaskwatchError as e:
            raise MaskwatchError(f"camera {camera.name!r}: {e}") from None
    debug = bool(getattr(args, "debug", False) or os.environ.get("MASKWATCH_DEBUG", "") not in ("", "0"))
    handler = _setup_logging(debug)
    try:
        supervisor = Supervisor(site, debug=debug)
        stop_signals.attach(supervisor)
        if stop_signals.received is not None:
            return 0
        previous_hup = signal.signal(signal.SIGHUP, supervisor.reload)
        try:
            supervisor.run()
        finally:
            signal.signal(signal.SIGHUP, previous_hup)
        for line in supervisor.summary():
            print(line, file=sys.stdout, flush=True)
        failed = [w.name for w in supervisor.workers if w.how_ended.startswith("failed")]
        if failed and stop_signals.received is None:  # every camera ended and some could not work: say so
            return 1
        return 0
    finally:
        logging.getLogger("maskwatch").removeHandler(handler)


class _RedactingFormatter(logging.Formatter):
    """``maskwatch serve: [camera: ]message``, one line, every credential hidden."""

    def format(self, record: logging.LogRecord) -> str:
        from maskwatch.sources.spec import redact

        camera = getattr(record, "camera", None)
        text = " ".join(redact(record.getMessage()).split())
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"maskwatch serve: {camera + ': ' if camera else ''}{level}{text}"


def _setup_logging(debug: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter())
    root = logging.getLogger("maskwatch")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False  # the CLI's own root handler would print each line a second time
    return handler


# -- the supervisor --------------------------------------------------------------------------------


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
    run_totals: dict | None = None  # the running worker's latest totals
    fps: float | None = None
    latency_ms: float | None = None

    def bank(self) -> None:
        """Add the finished run's totals to the camera's."""
        totals, self.run_totals = self.run_totals, None
        if totals:
            self.rows += totals["rows"]
            self.people += totals["people_seen"]
            for label, n in totals["by_label"].items():
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
        self.publisher = None

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
        from maskwatch.history import History

        history = History(self.site.db_url)  # creates the tables once, before the workers race to
        try:
            log.info("%d camera%s, history %s%s", len(self.workers), "s" if len(self.workers) != 1 else "",
                     self.site.shown_db_url, "" if self.site.mqtt is None else f", MQTT {self.site.mqtt.address}")
            if self.site.mqtt is not None:
                from maskwatch.site.publisher import MqttPublisher

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

    def _handle(self, worker: _Worker, message) -> None:
        kind = message[0]
        if kind == "state":
            self._set_state(worker, message[2])
        elif kind == "in_view":
            if self.publisher is not None:
                self.publisher.set_in_view(worker.name, message[2])
        elif kind == "outbox":
            if self.publisher is not None:
                self.publisher.wake()
        elif kind == "log":
            _, _, level, text = message
            log.log(level, "%s", text, extra={"camera": worker.name})
        elif kind == "totals":
            worker.run_totals = message[2]
        elif kind == "stats":
            worker.fps, worker.latency_ms = message[2]["fps"], message[2]["latency_ms"]
            log.log(logging.INFO if self.settings.stats_every_s else logging.DEBUG,
                    "%.1f fps, capture to label %.0f ms, %d frames", worker.fps, worker.latency_ms,
                    message[2]["frames"], extra={"camera": worker.name})
        elif kind == "error":
            _, _, text, permanent = message
            if text != worker.last_error:
                log.error("%s", text, extra={"camera": worker.name})
            worker.last_error = text

    def _set_state(self, worker: _Worker, state: str) -> None:
        if state == worker.state:
            return
        worker.state = state
        log.debug("state %s", state, extra={"camera": worker.name})
        if self.publisher is not None:
            self.publisher.set_state(worker.name, state)

    def _start(self, worker: _Worker) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=worker_main, name=f"maskwatch-{worker.name}",
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


# -- the worker ------------------------------------------------------------------------------------


class _Sender:
    """The worker's end of its pipe, shared by the monitor thread, the logging and the watchdog."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def __call__(self, message: tuple) -> None:
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
        from maskwatch.sources.spec import redact

        try:
            text = redact(record.getMessage())
            if record.exc_info and record.levelno >= logging.ERROR:
                text += f" ({record.exc_info[1]!r})"
        except Exception:  # noqa: BLE001 - a bad log call must not kill the camera
            text = redact(str(record.msg))
        self.send(("log", self.camera, record.levelno, text))


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
            self.send(("state", self.camera, state))
        self._totals = result.totals
        if result.frame is None:
            return
        self._frames += 1
        counts = in_view(result.faces)
        if counts != self._in_view:
            self._in_view = counts
            self.send(("in_view", self.camera, counts))
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_every_s
            self.send(("stats", self.camera, {"fps": float(result.stats.fps),
                                              "latency_ms": float(result.stats.latency_ms), "frames": self._frames}))

    def on_interval(self, summary) -> None:
        self._rows += 1
        self.send(("totals", self.camera, self.totals()))

    def totals(self) -> dict:
        t = self._totals
        return {"rows": self._rows, "people_seen": t.people_seen if t else 0,
                "by_label": dict(t.by_label) if t else {k: 0 for k in LABELS}}

    def close(self) -> None:
        self.send(("totals", self.camera, self.totals()))


def _stamped_recording(path: Path) -> Path:
    """``path`` with this run's start time: each worker run records its own file (a restarted
    worker must not find its predecessor's video in the way; retention knows the pattern)."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.stem}-{stamp}{path.suffix}")


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
    from maskwatch.sources.spec import parse, redact

    permanent = True
    try:
        permanent = parse(config.source).kind != "network" if isinstance(config.source, str) else True
    except MaskwatchError:
        pass
    parent = os.getppid()
    try:
        from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow
        from maskwatch.monitor import Monitor
        from maskwatch.history import History
        from maskwatch.sinks import sinks_from_config
        from maskwatch.sinks.database import DatabaseSink
        from maskwatch.sinks.snapshots import SnapshotSaver

        from maskwatch.monitor import load_checked_classifier

        try:  # a missing or broken model is the configuration, whatever the source: not restarted
            classifier = load_checked_classifier(config.model)  # the pipeline uses this one: loaded once
        except MaskwatchError as e:
            send(("error", camera, redact(str(e)), True))
            return EXIT_PERMANENT
        if config.save_video is not None:
            config = dataclasses.replace(config, save_video=_stamped_recording(config.save_video))
        try:  # the supervisor opened it at start: failing now is a database that is away (restarted)
            history = History(db_url)
        except MaskwatchError as e:
            send(("error", camera, redact(f"{e} (trying again)"), False))
            return EXIT_RETRY
        status = StatusSink(send, camera, stats_every_s)
        outbox = lambda *_args, **_kwargs: send(("outbox", camera))  # noqa: E731

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
        from maskwatch.history import DatabaseUnavailable

        permanent = permanent and not isinstance(e, DatabaseUnavailable)  # an outage passes: restart
        send(("error", camera, redact(str(e)), permanent))
        return EXIT_PERMANENT if permanent else EXIT_RETRY
    except Exception as e:  # noqa: BLE001 - reported, then restarted by the supervisor
        send(("error", camera, redact(f"unexpected {type(e).__name__}: {e}"), False))
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
