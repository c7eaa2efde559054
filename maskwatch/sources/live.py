"""Live sources: webcams and network cameras, read by a background thread that keeps only the newest frame.

A consumer slower than the camera never builds a backlog or a growing lag; the frames it missed are
counted in ``dropped``. Network cameras are opened with FFmpeg over TCP with open and read
timeouts, watched for stalls, and reconnected with capped exponential backoff; their ``state`` goes
CONNECTING -> LIVE -> RECONNECTING -> LIVE ... -> ENDED. The URL FFmpeg gets is the parsed
:class:`~maskwatch.sources.spec.SourceSpec`'s ``url`` (credentials percent-encoded); everything
shown or logged uses its redacted ``name``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from typing import Callable, Protocol

import cv2
import numpy as np

from maskwatch.sources.options import SourceConfig
from maskwatch.errors import MaskwatchError
from maskwatch.frames import Frame, SourceState
from maskwatch.sources.base import Source
from maskwatch.sources.spec import SourceSpec, parse, redact, validate_url

log = logging.getLogger("maskwatch.sources")


class Capture(Protocol):
    """What ``LiveSource`` needs from a capture: ``cv2.VideoCapture`` or a test double."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...
    def get(self, prop: int) -> float: ...


def _ensure_tcp_transport() -> None:
    """Ask OpenCV's FFmpeg backend for RTSP over TCP (no UDP loss, passes NAT), keeping other options."""
    options = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
    if "rtsp_transport" not in options:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join(filter(None, [options, "rtsp_transport;tcp"]))


def network_capture(url: str, config: SourceConfig) -> cv2.VideoCapture:
    """Open ``url`` with FFmpeg over TCP, with the open and read timeouts of ``config``."""
    _ensure_tcp_transport()
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1, int(config.open_timeout_s * 1000)),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(1, int(config.read_timeout_s * 1000)),
    ]  # fmt: skip
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


def webcam_capture(device: int | str) -> cv2.VideoCapture:
    return cv2.VideoCapture(device)


class _Connection:
    """One attempt to open a capture and read from it, on its own thread.

    The supervisor can abandon a connection whose ``read`` hangs: the thread finishes (and releases
    its capture) when that read returns; its frames are ignored from the moment it is abandoned.
    """

    def __init__(self, source: "LiveSource", number: int):
        self.source = source
        self.number = number
        self.opened_at: float | None = None
        self.last_frame_at: float | None = None
        self.frames = 0
        self.error: str | None = None
        self.abandoned = False
        self.thread = threading.Thread(
            target=self._run, name=f"maskwatch-source-{number}", daemon=True
        )

    def _run(self) -> None:
        src = self.source
        cap = None
        started = time.monotonic()
        try:
            cap = src._open_capture()
            if not cap.isOpened():
                src._connection_failed(self, src._open_failure_reason(time.monotonic() - started))
                return
            fps = cap.get(cv2.CAP_PROP_FPS)
            src._connection_opened(self, float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None)
            while not self.abandoned:
                ok, image = cap.read()
                if self.abandoned:
                    break
                if not ok or image is None:
                    src._connection_failed(self, "stream ended or read failed")
                    return
                src._publish(self, image)
        except Exception as e:  # a capture that raises is a failed connection, never a dead thread
            src._connection_failed(self, f"{type(e).__name__}: {e}")
        finally:
            if cap is not None:
                try:
                    cap.release()
                except Exception:  # noqa: BLE001 - release must never take the process down
                    log.debug("release failed", exc_info=True)


class LiveSource(Source):
    """A webcam or network camera read by a background thread that keeps only the newest frame.

    ``open_capture`` is any callable returning a ``cv2.VideoCapture``-like object (tests inject
    fakes). A supervisor thread opens it, watches for stalls (no frame for ``stall_timeout_s``),
    and after any failure waits ``backoff_initial_s``, doubling up to ``backoff_max_s`` (+-``jitter``
    fraction), before it opens again, ``max_reconnects`` times (None: forever). The backoff starts
    over once frames flow again. With ``retry_first_open`` False (webcams) the constructor waits for
    the first open and raises ``MaskwatchError`` if it fails; network cameras keep trying instead,
    since a camera may come up later.

    ``frame.index`` numbers every frame the reader captured (across reconnects), so a gap between
    two frames read is the number dropped in between; ``frame.timestamp`` is ``time.time()`` and
    ``frame.captured_at`` ``time.monotonic()`` at capture.

        >>> cam = LiveSource.network("rtsp://user:pw@127.0.0.1:8554/stream")  # doctest: +SKIP
        >>> frame = cam.read(timeout=5.0)   # doctest: +SKIP
        >>> cam.state, cam.reconnect_in, cam.dropped, cam.last_error   # doctest: +SKIP
    """

    is_live = True
    jitter = 0.1

    def __init__(
        self,
        name: str,
        kind: str,
        open_capture: Callable[[], Capture],
        config: SourceConfig | None = None,
        *,
        retry_first_open: bool = True,
        jitter: float | None = None,
    ):
        super().__init__(name)
        self.kind = kind
        self.config = config or SourceConfig()
        if jitter is not None:
            self.jitter = jitter
        self._open_capture = open_capture
        self._retry_first_open = retry_first_open
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._seq = 0
        self._closing = False
        self._conn: _Connection | None = None
        self._reconnect_at: float | None = None
        self._first_outcome = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name="maskwatch-source-supervisor", daemon=True
        )
        self._supervisor.start()
        if not retry_first_open:
            self._first_outcome.wait()
            if self._state is SourceState.ENDED:
                self.close()
                raise MaskwatchError(f"cannot open {self.name}: {self.last_error}")

    # ---- constructors ----
    @classmethod
    def network(cls, url: str | SourceSpec, config: SourceConfig | None = None, **kwargs) -> "LiveSource":
        """An RTSP/RTMP/HTTP camera, opened with FFmpeg over TCP. The URL is validated here."""
        spec = parse(url)
        validate_url(spec.url or spec.text, shown=spec.name)
        config = config or SourceConfig()
        return cls(spec.name, "network", lambda: network_capture(spec.url, config), config, **kwargs)

    @classmethod
    def webcam(cls, device: int | str, config: SourceConfig | None = None, **kwargs) -> "LiveSource":
        """A local camera by index (0, 1, ...) or device path (/dev/video0)."""
        kwargs.setdefault("retry_first_open", False)
        name = f"webcam {device}" if isinstance(device, int) else str(device)
        return cls(name, "webcam", lambda: webcam_capture(device), config, **kwargs)

    # ---- what consumers read ----
    @property
    def reconnect_in(self) -> float | None:
        with self._cond:
            if self._state is not SourceState.RECONNECTING:
                return None
            if self._reconnect_at is None:
                return 0.0  # an attempt is under way
            return max(0.0, self._reconnect_at - time.monotonic())

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not read yet; None if none came within ``timeout`` s or the source ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is None:
                if self._state is SourceState.ENDED:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._slot = self._slot, None
        self._note_frame(frame.image)
        return frame

    def close(self) -> None:
        """Stop the reader promptly and release the capture. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._slot = None
            conn = self._conn
            if conn is not None:
                conn.abandoned = True
            self._cond.notify_all()
        if threading.current_thread() is not self._supervisor:
            self._supervisor.join(timeout=2.0)
        if conn is not None and conn.thread.is_alive() and threading.current_thread() is not conn.thread:
            # A webcam read returns within a frame; a dead stream's read within read_timeout_s.
            conn.thread.join(timeout=min(2.0, self.config.read_timeout_s + 0.5))
        with self._cond:
            self._state = SourceState.ENDED
            self._reconnect_at = None
            self._cond.notify_all()
        self._first_outcome.set()

    # ---- called from the connection thread ----
    def _connection_opened(self, conn: _Connection, fps: float | None) -> None:
        with self._cond:
            if conn is not self._conn or conn.abandoned:
                return
            conn.opened_at = time.monotonic()
            if fps is not None:
                self.fps = fps
            self._cond.notify_all()
        log.info("%s: opened", self.name)
        self._first_outcome.set()

    def _connection_failed(self, conn: _Connection, reason: str) -> None:
        with self._cond:
            if conn is self._conn and not conn.abandoned and conn.error is None:
                conn.error = redact(reason)
                self._cond.notify_all()

    def _publish(self, conn: _Connection, image: np.ndarray) -> None:
        now_wall, now = time.time(), time.monotonic()
        became_live = False
        with self._cond:
            if conn is not self._conn or conn.abandoned:
                return
            if self._slot is not None:
                self.dropped += 1
            self._slot = Frame(image=image, index=self._seq, timestamp=now_wall, captured_at=now, origin=self.name)
            self._seq += 1
            conn.last_frame_at = now
            conn.frames += 1
            if self._state is not SourceState.LIVE:
                self._state = SourceState.LIVE
                became_live = True
            self._cond.notify_all()
        if became_live:
            log.info("%s: live (%dx%d)", self.name, image.shape[1], image.shape[0])

    def _open_failure_reason(self, elapsed: float) -> str:
        if self.kind == "webcam":
            return "no such camera, or it is in use"
        if elapsed >= 0.9 * self.config.open_timeout_s:
            return f"no answer within {self.config.open_timeout_s:g} s"
        return "connection refused or stream rejected (check host, port, path and credentials)"

    # ---- the supervisor ----
    def _supervise(self) -> None:
        failures = 0  # consecutive failed attempts since frames last flowed
        number = 0
        warned = None  # the reason last logged as a warning in this outage
        try:
            while True:
                with self._cond:
                    if self._closing:
                        break
                    number += 1
                    conn = self._conn = _Connection(self, number)
                    self._reconnect_at = None
                conn.thread.start()
                reason = self._watch(conn)
                with self._cond:
                    conn.abandoned = True
                    if reason is None or self._closing:
                        break
                    self.last_error = redact(reason)
                    failures = 1 if conn.frames else failures + 1
                    first_failed = number == 1 and conn.opened_at is None
                    give_up = (first_failed and not self._retry_first_open) or (
                        self.config.max_reconnects is not None and self.reconnects >= self.config.max_reconnects
                    )
                    if give_up:
                        self._state = SourceState.ENDED
                        self._cond.notify_all()
                    else:
                        delay = self._backoff(failures)
                        self._state = SourceState.RECONNECTING
                        self._reconnect_at = time.monotonic() + delay
                        self._cond.notify_all()
                self._first_outcome.set()
                if give_up:
                    log.error("%s: %s; giving up after %d reconnects", self.name, self.last_error, self.reconnects)
                    return
                if self.last_error != warned or failures == 1:
                    log.warning("%s: %s; reconnecting in %.1f s", self.name, self.last_error, delay)
                    warned = self.last_error
                elif failures & (failures - 1) == 0 and failures >= 16:  # a reminder at 16, 32, 64... tries
                    log.warning("%s: still %s after %d tries; retrying every %.0f s", self.name, self.last_error,
                                failures, self.config.backoff_max_s)
                else:  # the same reason again: said once per outage, not on every retry
                    log.debug("%s: %s; reconnecting in %.1f s", self.name, self.last_error, delay)
                with self._cond:
                    self._cond.wait_for(lambda: self._closing, timeout=delay)
                    if self._closing:
                        break
                    self.reconnects += 1
                    self._reconnect_at = None
        except Exception:  # never leave consumers waiting on a dead supervisor
            log.exception("%s: reader supervisor failed", self.name)
            with self._cond:
                self.last_error = self.last_error or "internal error in the reader"
        with self._cond:
            self._state = SourceState.ENDED
            self._reconnect_at = None
            self._cond.notify_all()
        self._first_outcome.set()

    def _watch(self, conn: _Connection) -> str | None:
        """Wait until ``conn`` fails or stalls (returns why) or the source is closed (returns None)."""
        cfg = self.config
        open_deadline = time.monotonic() + cfg.open_timeout_s + 2.0  # FFmpeg enforces the open timeout itself
        with self._cond:
            while True:
                if self._closing:
                    return None
                if conn.error is not None:
                    return conn.error
                now = time.monotonic()
                if conn.opened_at is None:
                    if now >= open_deadline:
                        return f"open did not finish within {cfg.open_timeout_s:g} s"
                    self._cond.wait(open_deadline - now)
                    continue
                last = conn.last_frame_at or conn.opened_at
                stall_deadline = last + cfg.stall_timeout_s
                if now >= stall_deadline:
                    return f"no frame for {cfg.stall_timeout_s:g} s (stalled)"
                self._cond.wait(stall_deadline - now)

    def _backoff(self, failures: int) -> float:
        cfg = self.config
        delay = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** min(failures - 1, 30))
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, delay)
