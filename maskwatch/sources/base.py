"""``Source``: the base class of every frame source, and what consumers may read from one."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from maskwatch.frames import Frame, SourceState
from maskwatch.sources.spec import redact


class Source:
    """Frames from somewhere. Subclasses: ``FileSource``, ``ImageFolderSource``, ``LiveSource``.

    Attributes every consumer may read at any time (from any thread), the
    :class:`~maskwatch.stages.FrameSource` protocol:

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
        self.name = redact(name)
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
