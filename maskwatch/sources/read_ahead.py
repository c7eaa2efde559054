"""``ReadAhead``: a file source read ahead in a thread (the pipeline's ``read_ahead`` frames)."""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maskwatch.sources.base import Source


class ReadAhead:
    """Reads a file source ahead in a thread, so decoding the next frame overlaps processing this
    one (OpenCV releases the GIL while it decodes). A bounded queue of ``depth`` frames: memory
    stays flat and frames stay in order; ``read`` returns ``(frame, decode_ms, state)`` or ``None``
    at the end (or once ``stop`` is set), and re-raises an error the source raised."""

    _END = object()

    def __init__(self, source: Source, depth: int, stop: threading.Event):
        self._queue = queue.Queue(maxsize=max(int(depth), 1))
        self._empty = queue.Empty
        self._full = queue.Full
        self._source = source
        self._stop = stop
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maskwatch-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not (self._stop.is_set() or self._closed.is_set()):
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except self._full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not (self._stop.is_set() or self._closed.is_set()):
                t0 = time.perf_counter()
                frame = self._source.read()
                decode_ms = (time.perf_counter() - t0) * 1000.0
                if frame is None:
                    break
                if not self._put((frame, decode_ms, self._source.state)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)
            return
        self._put(self._END)

    def read(self):
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except self._empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return None
                continue
            if item is self._END:
                return None
            if isinstance(item, BaseException):
                raise item
            return item
        return None

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)
