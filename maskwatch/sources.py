"""Frame sources: one ``open_source(spec)`` for a webcam, an RTSP/HTTP camera, a video file or an image folder.

    >>> from maskwatch.sources import open_source, redact_url
    >>> with open_source("tests/fixtures/clip_320x240.mp4") as source:
    ...     for frame in source:
    ...         pass
    >>> frame.index, frame.timestamp, frame.image.shape
    (49, 1.96, (240, 320, 3))
    >>> redact_url("cannot open rtsp://admin:s3cret@10.0.0.7/stream1")
    'cannot open rtsp://admin:***@10.0.0.7/stream1'

``spec`` is chosen like this: an ``int`` or a digit string is a webcam index; ``rtsp://``,
``rtsps://``, ``rtmp://``, ``http://``, ``https://`` URLs are network cameras; an existing directory
is an image folder; an existing image file is a one-image folder; any other existing file is a
video; a character device (``/dev/video0``) is a webcam. Anything else raises ``MaskwatchError``
with one line, credentials redacted.

Files (``FileSource``, ``ImageFolderSource``) deliver every frame in order and then end.
Live sources (``LiveSource``: webcams and network cameras) run a reader thread that keeps only the
newest frame: a consumer slower than the camera never builds a backlog or a growing lag, and the
frames it missed are counted in ``dropped``. Network cameras are opened with FFmpeg over TCP with
open and read timeouts, watched for stalls, and reconnected with capped exponential backoff; their
``state`` goes CONNECTING -> LIVE -> RECONNECTING -> LIVE ... -> ENDED.

Reading: ``for frame in source`` blocks until the next frame and stops when the source has ended for
good. ``source.read(timeout)`` returns the next frame, or ``None`` when no frame came within
``timeout`` seconds or the source has ended (check ``source.state``); a consumer that must keep
working while a camera is down (interval logging, a GUI) uses ``read`` with a timeout.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np

from maskwatch.config import SourceConfig
from maskwatch.errors import MaskwatchError
from maskwatch.frames import Frame, SourceState

__all__ = [
    "FileSource",
    "ImageFolderSource",
    "LiveSource",
    "Source",
    "open_source",
    "redact_url",
]

log = logging.getLogger("maskwatch.sources")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
FALLBACK_FPS = 25.0

# scheme://user:password@ ... The password runs to the LAST "@" of the whitespace-free token, so a
# raw "@" or "/" inside a password is still hidden (at worst a little more than the password is).
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^\s:@/?#]*):(?P<password>\S*)@"
)
_URL_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://")


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` URL in it replaced by ``***``.

    >>> redact_url("rtsp://admin:pa55@cam.local:554/live and http://u:p@h/x")
    'rtsp://admin:***@cam.local:554/live and http://u:***@h/x'
    >>> redact_url("rtsp://viewer@cam/live")  # a user name alone is kept
    'rtsp://viewer@cam/live'
    """
    return _URL_CREDENTIALS.sub(lambda m: f"{m['prefix']}{m['user']}:***@", str(text))


# --------------------------------------------------------------------------------------------------
# The base class


class Source:
    """Frames from somewhere. Subclasses: ``FileSource``, ``ImageFolderSource``, ``LiveSource``.

    Attributes every consumer may read at any time (from any thread):

    - ``name``: display name, credentials redacted; ``kind``: "file", "images", "webcam", "network";
    - ``fps``: nominal frame rate if known; ``frame_size``: (w, h) of the last frame read;
    - ``state``: a ``SourceState``; ``reconnect_in``: seconds to the next reconnect attempt while
      RECONNECTING (0.0 while an attempt is under way), else None;
    - ``dropped``: frames a live reader overwrote before they were read (cumulative);
    - ``reconnects``: reconnect attempts made so far; ``last_error``: why the source last failed
      (one line, credentials redacted) or None; ``is_live``.
    """

    kind: str = ""
    is_live: bool = False

    def __init__(self, name: str):
        self.name = redact_url(name)
        self.fps: float | None = None
        self.frame_size: tuple[int, int] | None = None
        self.dropped = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._state = SourceState.CONNECTING

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def reconnect_in(self) -> float | None:
        return None

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None if none came within ``timeout`` s (None: wait) or the source ended."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file, camera or stream. Idempotent."""
        self._state = SourceState.ENDED

    def __iter__(self) -> Iterator[Frame]:
        """Every frame until the source ends for good (a live source may block while reconnecting)."""
        while True:
            frame = self.read(timeout=0.5)
            if frame is not None:
                yield frame
            elif self.state is SourceState.ENDED:
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.state.value}>"

    def _note_frame(self, image: np.ndarray) -> None:
        self.frame_size = (int(image.shape[1]), int(image.shape[0]))


# --------------------------------------------------------------------------------------------------
# Files


class FileSource(Source):
    """Every frame of a video file, in order; ``timestamp = index / fps``.

    ``fps`` comes from the container (25 if it has none). With ``SourceConfig.realtime`` frames are
    delivered no faster than the file's fps (a file standing in for a camera); otherwise as fast as
    they decode.
    """

    kind = "file"

    def __init__(self, path: str | Path, config: SourceConfig | None = None):
        super().__init__(str(path))
        self.path = Path(path)
        self.config = config or SourceConfig()
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise MaskwatchError(f"cannot open video {self.name}: not a video file FFmpeg can decode")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else FALLBACK_FPS
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: int | None = int(count) if math.isfinite(count) and count > 0 else None
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise MaskwatchError(f"video {self.name} has no decodable frames (corrupt or empty file)")
        self._cap = cap
        self._pending: np.ndarray | None = image
        self._next_index = 0
        self._started_at: float | None = None
        self._lock = threading.Lock()
        self._state = SourceState.LIVE

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame in file order, or None at the end (``timeout`` is not used: files don't wait)."""
        with self._lock:
            if self._state is SourceState.ENDED:
                return None
            if self._pending is not None:
                image, self._pending = self._pending, None
            else:
                ok, image = self._cap.read()
                if not ok or image is None:
                    self._finish()
                    return None
            index = self._next_index
            self._next_index += 1
            if self.config.realtime:
                now = time.monotonic()
                if self._started_at is None:
                    self._started_at = now
                delay = self._started_at + index / self.fps - now
                if delay > 0:
                    time.sleep(delay)
            self._note_frame(image)
            return Frame(image=image, index=index, timestamp=index / self.fps, captured_at=time.monotonic())

    def _finish(self) -> None:
        if self.frame_count and self._next_index < 0.9 * self.frame_count:
            self.last_error = f"video ended after {self._next_index} of {self.frame_count} frames (truncated or corrupt?)"
            log.warning("%s: %s", self.name, self.last_error)
        else:
            log.info("%s: end of video after %d frames", self.name, self._next_index)
        self._close_capture()

    def _close_capture(self) -> None:
        self._state = SourceState.ENDED
        self._pending = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def close(self) -> None:
        with self._lock:
            self._close_capture()


def _natural_key(path: Path):
    """Sort ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(Source):
    """The images of a folder (``.jpg .jpeg .png .bmp .webp``, natural name order), one frame each.

    An image that cannot be read is skipped with a warning and counted in ``skipped``. ``frame.index``
    is the image's position in ``paths`` (so ``source.paths[frame.index]`` is its file) and
    ``frame.timestamp`` is that position in seconds (one image per second, nominally).
    """

    kind = "images"

    def __init__(self, paths: list[Path], name: str):
        super().__init__(name)
        self.paths = list(paths)
        self.skipped = 0
        self.skipped_paths: list[Path] = []
        self.last_path: Path | None = None
        self._next = 0
        self._lock = threading.Lock()
        self._state = SourceState.LIVE

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ImageFolderSource":
        folder = Path(folder)
        try:
            paths = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        except OSError as e:
            raise MaskwatchError(f"cannot list image folder {folder}: {e.strerror}") from None
        if not paths:
            raise MaskwatchError(
                f"no images in folder {folder} (looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        return cls(sorted(paths, key=_natural_key), name=str(folder))

    @classmethod
    def from_file(cls, path: str | Path) -> "ImageFolderSource":
        """A single image as a one-frame source; an unreadable image is an error here."""
        path = Path(path)
        if _load_image(path) is None:
            raise MaskwatchError(f"cannot read image {path}: not an image OpenCV can decode")
        return cls([path], name=str(path))

    def read(self, timeout: float | None = None) -> Frame | None:
        with self._lock:
            while self._next < len(self.paths):
                index = self._next
                self._next += 1
                path = self.paths[index]
                image = _load_image(path)
                if image is None:
                    self.skipped += 1
                    self.skipped_paths.append(path)
                    log.warning("skipping unreadable image %s", path)
                    continue
                self.last_path = path
                self._note_frame(image)
                return Frame(image=image, index=index, timestamp=float(index), captured_at=time.monotonic())
            if self._state is not SourceState.ENDED:
                self._state = SourceState.ENDED
                log.info(
                    "%s: %d images read, %d skipped", self.name, len(self.paths) - self.skipped, self.skipped
                )
            return None

    def close(self) -> None:
        with self._lock:
            self._next = len(self.paths)
            self._state = SourceState.ENDED


def _load_image(path: Path) -> np.ndarray | None:
    """BGR uint8 image, or None when the file can't be read or decoded (works for any path encoding)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


# --------------------------------------------------------------------------------------------------
# Live sources: webcams and network cameras


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
    def network(cls, url: str, config: SourceConfig | None = None, **kwargs) -> "LiveSource":
        """An RTSP/RTMP/HTTP camera, opened with FFmpeg over TCP. The URL is validated here."""
        validate_url(url)
        config = config or SourceConfig()
        return cls(redact_url(url), "network", lambda: network_capture(url, config), config, **kwargs)

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
                conn.error = redact_url(reason)
                self._cond.notify_all()

    def _publish(self, conn: _Connection, image: np.ndarray) -> None:
        now_wall, now = time.time(), time.monotonic()
        became_live = False
        with self._cond:
            if conn is not self._conn or conn.abandoned:
                return
            if self._slot is not None:
                self.dropped += 1
            self._slot = Frame(image=image, index=self._seq, timestamp=now_wall, captured_at=now)
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
                    self.last_error = redact_url(reason)
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
                log.warning("%s: %s; reconnecting in %.1f s", self.name, self.last_error, delay)
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


# --------------------------------------------------------------------------------------------------
# open_source


def validate_url(url: str) -> None:
    """Raise ``MaskwatchError`` unless ``url`` is a syntactically usable camera URL."""
    shown = redact_url(url)
    if re.search(r"\s", url):
        raise MaskwatchError(f"malformed URL {shown}: contains whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise MaskwatchError(f"malformed URL {shown}: {redact_url(str(e)).lower()}") from None
    if parts.scheme.lower() not in NETWORK_SCHEMES:
        raise MaskwatchError(
            f"unsupported URL scheme {parts.scheme!r} in {shown} (use {', '.join(s + '://' for s in NETWORK_SCHEMES)})"
        )
    if not parts.hostname:
        raise MaskwatchError(f"malformed URL {shown}: no host")
    if port == 0:
        raise MaskwatchError(f"malformed URL {shown}: port 0")


def open_source(spec: str | int | os.PathLike, config: SourceConfig | None = None) -> Source:
    """Open a webcam index, camera URL, video file, image or image folder (see the module doc).

    Raises ``MaskwatchError`` (one line, credentials redacted) for a missing path, a malformed or
    unsupported URL, a video or image that can't be decoded, an empty folder, a webcam that can't
    be opened. A network camera that does not answer is not an error: it is retried (``state``).
    """
    config = config or SourceConfig()
    if isinstance(spec, bool):
        raise MaskwatchError(f"not a source: {spec!r}")
    if isinstance(spec, int):
        return LiveSource.webcam(spec, config)
    text = os.fspath(spec).strip() if isinstance(spec, os.PathLike) else str(spec).strip()
    if not text:
        raise MaskwatchError("no source given")
    if text.isdigit():
        return LiveSource.webcam(int(text), config)
    scheme = _URL_SCHEME.match(text)
    if scheme:
        if scheme["scheme"].lower() == "file":
            text = text[len("file://") :]
        else:
            return LiveSource.network(text, config)
    path = Path(text).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MaskwatchError(f"source not found: {redact_url(text)}") from None
    except OSError as e:
        raise MaskwatchError(f"cannot access source {redact_url(text)}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        return ImageFolderSource.from_folder(path)
    if stat.S_ISCHR(mode):
        return LiveSource.webcam(str(path), config)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource.from_file(path)
    return FileSource(path, config)

