"""``VideoSink``: every processed frame, with the app's overlay, into a video file.

``maskwatch --headless --save-video out.mp4`` and the desktop app's Record button use it. Frames
are drawn with :func:`maskwatch.overlay.annotate` (boxes coloured by class, label, confidence, track
id) and written with OpenCV's ``cv2.VideoWriter``: ``.mp4`` / ``.m4v`` / ``.mov`` / ``.mkv`` as
MPEG-4 Part 2 (``mp4v``, which every OpenCV wheel can write), ``.avi`` as Motion-JPEG.

Frame rate: the source's, measured from the frames' own timestamps over the first frames (a file's
frames carry their media position, so this is exactly the file's frame rate; a live camera's carry
the capture time, so a camera processed at 12 fps gives a 12 fps video that plays in real time).
``fps`` overrides it. Frames of another size (a camera reconnecting at another resolution) are
resized to the first frame's size. With ``blur`` (``Config.blur_faces``) other than ``"off"``
every face is blurred before the overlay is drawn (:mod:`maskwatch.blur`). The file is
finalised by :meth:`VideoSink.close`, which the monitor calls however the run ends (end of
source, stop, SIGINT/SIGTERM, error).

Frames go to a hidden temporary file with a plain ASCII name in the same folder
(``.maskwatch-recording-*.mp4``), which ``close`` moves to the real name once the file is complete:
there is never half a video under the final name, and OpenCV never gets a file name it cannot
encode (it turns a ``str`` path into UTF-8 and crashes the process on a name that is not valid
UTF-8, such as ``os.fsdecode(b"caf\\xe9.mp4")``); a folder whose own name is not UTF-8 is reached
through a symlink with a plain name.

Paths are checked when the sink is made, before any model is loaded: the extension, the folder
(must exist and be writable), and an existing file is never overwritten.

>>> import tempfile, pathlib, numpy as np
>>> from maskwatch.faces import Faces
>>> from maskwatch.frames import Frame
>>> from maskwatch.results import FrameResult, Stats, Totals
>>> path = pathlib.Path(tempfile.mkdtemp()) / "out.mp4"
>>> with VideoSink(path) as sink:
...     for i in range(10):
...         frame = Frame(np.zeros((48, 64, 3), np.uint8), i, i / 10, 0.0)
...         sink.on_result(FrameResult(frame, Faces.empty(), Stats(), Totals()))
>>> sink.frames_written, sink.fps, sink.size
(10, 10.0, (64, 48))
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError
from maskwatch.opencv_paths import opencv_path
from maskwatch.overlay import annotate
from maskwatch.results import FrameResult
from maskwatch.sinks.appended import new_file_mode
from maskwatch.sinks.base import BaseSink
from maskwatch.sinks.blur import check_blur_mode
from maskwatch.sinks.names import PART_PREFIX, numbered_variants  # noqa: F401 - PART_PREFIX re-exported

log = logging.getLogger("maskwatch.sinks.video")

FOURCC_BY_SUFFIX: dict[str, str] = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
"""The codec written for each file extension."""

DEFAULT_FPS = 25.0
"""The frame rate when the frames' timestamps cannot tell (one frame, or all at the same time)."""

MIN_FPS, MAX_FPS = 1.0, 240.0

WARMUP_FRAMES = 8
"""Frames held back to measure the frame rate before the file is opened."""

WARMUP_BYTES = 64 * 1024 * 1024
"""At most this much frame data is held back (fewer frames at 4K)."""


@functools.lru_cache(maxsize=None)
def codec_works(suffix: str) -> bool:
    """Whether this OpenCV build writes ``suffix`` files (probed once with a tiny temporary file)."""
    fourcc = FOURCC_BY_SUFFIX.get(suffix)
    if fourcc is None:
        return False
    with tempfile.TemporaryDirectory(prefix="maskwatch-codec-") as tmp:
        probe = os.path.join(tmp, "probe" + suffix)
        writer = cv2.VideoWriter(probe, cv2.VideoWriter_fourcc(*fourcc), DEFAULT_FPS, (32, 32))
        try:
            if not writer.isOpened():
                return False
            writer.write(np.zeros((32, 32, 3), np.uint8))
        finally:
            writer.release()
        return os.path.getsize(probe) > 0


def check_video_path(path: str | Path, *, overwrite: bool = False) -> Path:
    """``path`` if a video can be written there, else a one-line ``MaskwatchError``."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in FOURCC_BY_SUFFIX:
        known = ", ".join(sorted(FOURCC_BY_SUFFIX))
        raise MaskwatchError(f"cannot write video {path}: unknown extension {suffix or '(none)'!r}; use one of {known}")
    folder = path.parent
    if not folder.is_dir():
        raise MaskwatchError(f"cannot write video {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MaskwatchError(f"cannot write video {path}: folder {folder} is not writable")
    if path.is_dir():
        raise MaskwatchError(f"cannot write video {path}: it is a directory")
    if path.exists() and not overwrite:
        raise MaskwatchError(f"video {path} exists; not overwriting it (remove it or choose another name)")
    if not codec_works(suffix):
        raise MaskwatchError(f"cannot write video {path}: this OpenCV cannot encode {suffix} ({FOURCC_BY_SUFFIX[suffix]})")
    return path


def _publish(part: Path, path: Path, overwrite: bool) -> Path:
    """Move the finished ``part`` to ``path``; the name used. Without ``overwrite`` never over a
    file that appeared during the recording: then ``path`` with ``-1``, ``-2`` ... before the
    extension."""
    if overwrite:
        os.replace(part, path)
        return path
    for target in numbered_variants(path):
        try:
            os.link(part, target)  # fails if target exists: no race with another writer
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            if target.exists():
                continue
            os.replace(part, target)
            return target
        os.unlink(part)
        return target
    raise FileExistsError(f"{path} and its numbered variants exist")


def measured_fps(timestamps: list[float]) -> float:
    """Frames per second of frames stamped ``timestamps`` (``DEFAULT_FPS`` when they cannot tell).

    >>> measured_fps([0.0, 0.04, 0.08]), measured_fps([5.0]), measured_fps([1.0, 1.0])
    (25.0, 25.0, 25.0)
    """
    if len(timestamps) < 2 or not timestamps[-1] > timestamps[0]:
        return DEFAULT_FPS
    fps = (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])
    return float(min(max(round(fps, 3), MIN_FPS), MAX_FPS))


class VideoSink(BaseSink):
    """Writes each ``FrameResult`` with a frame, annotated, to ``path`` (see the module docstring).

    Thread-safe: the desktop app closes it (Record off) from the UI thread while the monitor's
    thread writes; ``close`` waits for the frame being written and finalises the file.
    """

    def __init__(self, path: str | Path, fps: float | None = None, *, overwrite: bool = False,
                 show_track_ids: bool = True, blur: str = "off"):
        self.blur = check_blur_mode(blur)  # a video has no triggering face: "others" and "all" blur every face
        self.path = check_video_path(path, overwrite=overwrite)
        if fps is not None and not (MIN_FPS <= float(fps) <= MAX_FPS):
            raise MaskwatchError(f"video frame rate must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps}")
        self.fps = None if fps is None else float(fps)
        self.show_track_ids = show_track_ids
        self.size: tuple[int, int] | None = None  # (width, height) of the file
        self.frames_written = 0
        self.overwrite = overwrite
        self._writer: cv2.VideoWriter | None = None
        self._part: Path | None = None  # the temporary file being written, moved to path on close
        self._folder_text: contextlib.ExitStack | None = None
        self._pending: list[tuple[np.ndarray, float]] = []  # (annotated frame, timestamp) until the rate is known
        self._lock = threading.Lock()
        self._closed = False

    @property
    def recording(self) -> bool:
        return not self._closed

    def on_result(self, result: FrameResult) -> None:
        if result.frame is None:
            return
        # no trigger: "others" and "all" blur every face, before the overlay (boxes and labels stay readable)
        image = annotate(result.frame.image, result.faces, blur=self.blur, show_track_ids=self.show_track_ids)
        with self._lock:
            if self._closed:
                return
            if self._writer is not None:
                self._write(image)
                return
            self._pending.append((image, float(result.frame.timestamp)))
            held = len(self._pending)
            if self.fps is None and held < WARMUP_FRAMES and held * image.nbytes < WARMUP_BYTES:
                return
            self._open_and_flush()

    def close(self) -> None:
        """Finalise the file and give it its real name. Idempotent and thread-safe: a second call
        (from another thread too) returns once the first has finished, so the file is complete."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._pending:
                    self._open_and_flush()
            finally:
                writer, self._writer = self._writer, None
                try:
                    if writer is not None:
                        writer.release()
                finally:
                    self._finalise()

    # -- internals -----------------------------------------------------------------------------

    def _finalise(self) -> None:
        stack, self._folder_text = self._folder_text, None
        if stack is not None:
            stack.close()
        part, self._part = self._part, None
        if part is None:
            return
        try:
            final = _publish(part, self.path, self.overwrite)
        except OSError as e:
            raise MaskwatchError(f"cannot finish video {self.path}: {e.strerror or e} (the recording is in {part})") from None
        if final != self.path:
            log.warning("%s appeared during the recording; the video is %s", self.path, final)
            self.path = final

    def _open_and_flush(self) -> None:
        pending, self._pending = self._pending, []
        if self.fps is None:
            self.fps = measured_fps([t for _, t in pending])
        h, w = pending[0][0].shape[:2]
        self.size = (w, h)
        suffix = self.path.suffix.lower()
        try:
            fd, part = tempfile.mkstemp(prefix=PART_PREFIX, suffix=suffix, dir=self.path.parent)
        except OSError as e:
            raise MaskwatchError(f"cannot write video {self.path}: {e.strerror or e}") from None
        os.close(fd)
        os.chmod(part, new_file_mode())  # the one rule for our files (sinks.appended.new_file_mode), not mkstemp's 0600
        self._part = Path(part)
        stack = contextlib.ExitStack()
        folder = stack.enter_context(opencv_path(os.path.abspath(self.path.parent)))
        self._folder_text = stack
        fourcc = cv2.VideoWriter_fourcc(*FOURCC_BY_SUFFIX[suffix])
        writer = cv2.VideoWriter(os.path.join(folder, self._part.name), fourcc, self.fps, self.size)
        if not writer.isOpened():
            writer.release()
            stack.close()
            self._folder_text, part, self._part = None, self._part, None
            part.unlink(missing_ok=True)
            raise MaskwatchError(f"cannot write video {self.path}: OpenCV could not open it")
        self._writer = writer
        for image, _ in pending:
            self._write(image)

    def _write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames_written += 1
