"""What sources produce: a ``Frame`` and the source's ``SourceState``."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy stays out of the light imports (config, CLI parser, option checks)
    import numpy as np


class SourceState(str, enum.Enum):
    """Health of a source, reported in every ``FrameResult`` and in the CSV log."""

    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


@dataclass(slots=True)
class Frame:
    """One decoded video frame.

    ``image`` is BGR uint8 (H, W, 3) as OpenCV decodes it. ``index`` counts frames delivered by the
    source (for files: the frame number in the file). ``timestamp`` is seconds: for files the media
    position (index / fps), for live sources ``time.time()`` at capture. ``captured_at`` is always
    ``time.monotonic()`` when the frame was read, for capture-to-label latency. ``origin`` says
    where it came from: for image sources the image's file name (so a sink that names the image,
    the review loop's collector, need not list the folder again), for a video file the file's name,
    for a camera its name with every credential hidden; empty when unknown (a made-up frame).
    """

    image: np.ndarray
    index: int
    timestamp: float
    captured_at: float
    origin: str = ""
