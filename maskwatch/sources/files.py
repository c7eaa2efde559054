"""File sources: a video file (``FileSource``) and a folder of images (``ImageFolderSource``).

Both deliver every frame in order and then end. Paths are never handed to OpenCV as text it
cannot encode: OpenCV turns a ``str`` path into UTF-8, and a file name that is not valid UTF-8
(``os.fsdecode(b"caf\\xe9.mp4")``, a name written by another system) makes it crash the process.
Images are read as bytes (``np.fromfile`` + ``cv2.imdecode``); a video with such a name is opened
through a symlink with a plain name (or ``/proc/self/fd/N``).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from maskwatch.sources.options import SourceConfig
from maskwatch.errors import MaskwatchError
from maskwatch.frames import Frame, SourceState
from maskwatch.opencv_paths import opencv_path
from maskwatch.sources.base import Source
from maskwatch.sources.spec import IMAGE_SUFFIXES, display_path

log = logging.getLogger("maskwatch.sources")
# Skipped images go to their own logger: the CLI holds back "maskwatch.sources" (connection chatter
# that ends in one error line) until the first frame, but an unreadable file is news at once.
image_log = logging.getLogger("maskwatch.images")

FALLBACK_FPS = 25.0


def load_image(path: str | Path) -> np.ndarray | None:
    """BGR uint8 image, or None when the file can't be read or decoded (any file name works).

    >>> load_image("tests/fixtures/people/with_mask.jpg").shape[2], load_image("no/such.jpg")
    (3, None)
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


class FileSource(Source):
    """Every frame of a video file, in order; ``timestamp = index / fps``.

    ``fps`` comes from the container (25 if it has none). With ``SourceConfig.realtime`` frames are
    delivered no faster than the file's fps (a file standing in for a camera); otherwise as fast as
    they decode.
    """

    kind = "file"

    def __init__(self, path: str | Path, config: SourceConfig | None = None):
        super().__init__(display_path(path))
        self.path = Path(path)
        self._origin = display_path(self.path.name)  # each Frame's origin
        self.config = config or SourceConfig()
        try:
            with opencv_path(self.path) as usable:
                cap = cv2.VideoCapture(usable, cv2.CAP_FFMPEG)
        except OSError as e:
            raise MaskwatchError(f"cannot open video {self.name}: {e.strerror or e}") from None
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
            return Frame(image=image, index=index, timestamp=index / self.fps, captured_at=time.monotonic(),
                         origin=self._origin)

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


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (``IMAGE_SUFFIXES``) in natural name order, the order an
    image-folder source reads them; ``OSError`` if the folder cannot be listed."""
    paths = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(paths, key=_natural_key)


class ImageFolderSource(Source):
    """The images of a folder (``IMAGE_SUFFIXES``, natural name order), one frame each.

    An image that cannot be read is skipped with a warning (logger ``maskwatch.images``) and
    counted in ``skipped``; a folder in which no image can be read is an error
    (``MaskwatchError``), at open (:meth:`from_folder` decodes up to the first readable image) or
    at the end of reading, never a run that quietly processed nothing. ``frame.index`` is the
    image's position in ``paths`` (so ``source.paths[frame.index]`` is its file) and
    ``frame.timestamp`` is that position in seconds (one image per second, nominally).
    """

    kind = "images"

    def __init__(self, paths: list[Path], name: str):
        super().__init__(display_path(name))
        self.paths = list(paths)
        self.skipped = 0
        self.skipped_paths: list[Path] = []
        self.last_path: Path | None = None
        self.delivered = 0
        self._next = 0
        self._pending: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._state = SourceState.LIVE

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ImageFolderSource":
        """The images of ``folder``; raises ``MaskwatchError`` if it has none, or none readable."""
        folder = Path(folder)
        try:
            paths = list_images(folder)
        except OSError as e:
            raise MaskwatchError(f"cannot list image folder {display_path(folder)}: {e.strerror}") from None
        if not paths:
            raise MaskwatchError(
                f"no images in folder {display_path(folder)} (looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        source = cls(paths, name=str(folder))
        with source._lock:
            source._pending = source._next_readable(report=False)
        if source._pending is None:
            source._raise_nothing_readable()  # one error line, not a warning per file first
        for path in source.skipped_paths:
            image_log.warning("skipping unreadable image %s", display_path(path))
        return source

    @classmethod
    def from_file(cls, path: str | Path) -> "ImageFolderSource":
        """A single image as a one-frame source; an unreadable image is an error here."""
        path = Path(path)
        if load_image(path) is None:
            raise MaskwatchError(f"cannot read image {display_path(path)}: not an image OpenCV can decode")
        return cls([path], name=str(path))

    def _next_readable(self, report: bool = True) -> tuple[int, np.ndarray] | None:
        """(index, image) of the next readable image, skipping (and reporting) unreadable ones."""
        while self._next < len(self.paths):
            index = self._next
            self._next += 1
            path = self.paths[index]
            image = load_image(path)
            if image is not None:
                return index, image
            self.skipped += 1
            self.skipped_paths.append(path)
            if report:
                image_log.warning("skipping unreadable image %s", display_path(path))
        return None

    def _raise_nothing_readable(self) -> None:
        self._state = SourceState.ENDED
        count = len(self.paths)
        example = display_path(self.skipped_paths[0].name) if self.skipped_paths else "?"
        what = f"its only image failed to decode ({example})" if count == 1 else \
            f"all {count} images failed to decode (e.g. {example})"
        raise MaskwatchError(f"no readable image in {self.name}: {what}")

    def read(self, timeout: float | None = None) -> Frame | None:
        with self._lock:
            if self._state is SourceState.ENDED:
                return None
            item, self._pending = (self._pending, None) if self._pending is not None else (self._next_readable(), None)
            if item is not None:
                index, image = item
                self.last_path = self.paths[index]
                self.delivered += 1
                self._note_frame(image)
                return Frame(image=image, index=index, timestamp=float(index), captured_at=time.monotonic(),
                             origin=self.last_path.name)
            if not self.delivered and self.skipped:
                self._raise_nothing_readable()
            self._state = SourceState.ENDED
            log.info("%s: %d images read, %d skipped", self.name, self.delivered, self.skipped)
            return None

    def close(self) -> None:
        with self._lock:
            self._next = len(self.paths)
            self._pending = None
            self._state = SourceState.ENDED
