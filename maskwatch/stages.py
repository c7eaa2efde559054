"""The stages a :class:`~maskwatch.pipeline.Pipeline` composes, as small Protocols.

Each says what the pipeline reads and calls, nothing more, so a test double or a new implementation
knows what to offer (the pipeline reads these attributes directly: no ``getattr`` defaults hide a
missing one). The shipped implementations: :class:`~maskwatch.sources.Source` (``FrameSource``),
:class:`~maskwatch.detection.FaceDetector` (``Detector``, the detection package's protocol),
:class:`~maskwatch.classification.MaskClassifier` (``Classifier``),
:mod:`~maskwatch.tracking` (``Tracker``, the tracking package's protocol) and :class:`~maskwatch.counting.Counter`
(``Counter``).

>>> from maskwatch.sources import FileSource
>>> with FileSource("tests/fixtures/clip_320x240.mp4") as source:
...     isinstance(source, FrameSource)
True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from maskwatch.detection.base import Detector
from maskwatch.tracking.base import Tracker

if TYPE_CHECKING:
    import numpy as np

    from maskwatch.faces import Faces
    from maskwatch.frames import Frame, SourceState
    from maskwatch.results import Event, IntervalSummary, Stats, Totals
    from maskwatch.tracking.base import TrackUpdate

__all__ = ["Classifier", "Counter", "Detector", "FrameSource", "Tracker"]


@runtime_checkable
class FrameSource(Protocol):
    """Frames from a camera, file or folder (see :class:`maskwatch.sources.Source` for the meanings).

    ``read(timeout)`` returns the next frame, or ``None`` when none came within ``timeout`` s or the
    source has ended. The attributes may be read from any thread at any time.
    """

    name: str  # credentials redacted
    kind: str
    is_live: bool
    fps: float | None
    dropped: int
    reconnects: int
    last_error: str | None

    @property
    def state(self) -> SourceState: ...

    @property
    def reconnect_in(self) -> float | None: ...

    def read(self, timeout: float | None = None) -> Frame | None: ...

    def close(self) -> None: ...


@runtime_checkable
class Classifier(Protocol):
    """Mask labels of the faces in a frame: ``(N, 3)`` probabilities in ``maskwatch.LABELS`` order."""

    def classify_faces(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Counter(Protocol):
    """Tracks into events and interval summaries; ``totals`` since the start."""

    totals: Totals

    def update(self, faces: Faces, timestamp: float, frame_index: int, stats: Stats,
               track_update: TrackUpdate | None = None,
               labels: Iterable | None = None) -> tuple[list[Event], IntervalSummary | None]: ...

    def tick(self, timestamp: float, stats: Stats) -> IntervalSummary | None: ...

    def flush(self, timestamp: float, stats: Stats) -> IntervalSummary | None: ...

    def use_model(self, description: str | None) -> None:
        """The classifier that labels from the next frame on: stamped on the summaries it labels."""
