"""``FrameResult``: what the pipeline yields for every processed frame, read by every consumer.

The GUI, the headless logger, the benchmark and the evaluation all read this one stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maskwatch import LABELS
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState


@dataclass
class Stats:
    """Health and speed, first-class (like frigate's camera stats)."""

    fps: float = 0.0  # processed frames per second (moving average)
    stage_ms: dict[str, float] = field(default_factory=dict)  # decode, detect, classify, track (last frame)
    dropped_frames: int = 0  # frames the live reader overwrote before we processed them (cumulative)
    source_state: SourceState = SourceState.CONNECTING
    reconnect_in: float | None = None  # seconds until the next reconnect attempt, when reconnecting
    latency_ms: float = 0.0  # capture to label, this frame
    source_error: str | None = None  # why the source is down (redacted), while it is reconnecting or ended


@dataclass(frozen=True)
class Event:
    """Something the counter decided. ``kind`` is ``"person_seen"``, ``"label_decided"``,
    ``"label_changed"`` (a counted person's label changed: took the mask off, put it on) or
    ``"track_ended"`` (a counted track left; see :mod:`maskwatch.counting`).

    ``label`` is one of ``LABELS`` for ``label_decided``, the new label for ``label_changed``
    (``previous`` is the old one), ``None`` for ``person_seen``, the person's last label (or
    ``None``) for ``track_ended``.
    """

    kind: str
    track_id: int
    timestamp: float  # frame timestamp (seconds; wall clock for live sources)
    frame_index: int
    label: str | None = None
    confidence: float | None = None  # share of the track's votes for ``label``
    box: tuple[float, float, float, float] | None = None
    previous: str | None = None  # label_changed: the label before the change


def _zero_seconds() -> dict[str, float]:
    return {k: 0.0 for k in LABELS}


def masked_share(person_s: dict[str, float]) -> float | None:
    """with_mask person-seconds / person-seconds with any decided label; ``None`` with no time.

    >>> masked_share({"with_mask": 30.0, "without_mask": 10.0, "mask_worn_incorrectly": 0.0})
    0.75
    """
    total = sum(person_s.values())
    return None if total <= 0 else person_s.get("with_mask", 0.0) / total


@dataclass
class Totals:
    """Counts of unique people (tracks) since start. A person is counted once, with the label first
    decided for them (``by_label``); ``person_s`` is the time people were in view by their label
    at that moment (seconds, summed over people), and ``label_changes`` how often a label changed."""

    people_seen: int = 0
    by_label: dict[str, int] = field(default_factory=lambda: {k: 0 for k in LABELS})
    person_s: dict[str, float] = field(default_factory=_zero_seconds)
    label_changes: int = 0

    @property
    def masked_time_share(self) -> float | None:
        """Share of person-time with a mask (see :func:`masked_share`)."""
        return masked_share(self.person_s)

    @property
    def decided(self) -> int:
        return sum(self.by_label.values())

    @property
    def compliance_rate(self) -> float | None:
        """with_mask / decided people, ``None`` when nobody has been decided yet."""
        d = self.decided
        return None if d == 0 else self.by_label["with_mask"] / d


@dataclass
class IntervalSummary:
    """One CSV row: what happened between ``start`` and ``end`` (both wall-clock epoch seconds)."""

    start: float
    end: float
    frames: int
    faces: int  # face detections summed over frames
    people_seen: int  # new tracks that started in this interval
    by_label: dict[str, int]  # labels decided in this interval
    fps: float
    dropped_frames: int  # dropped during this interval
    source_state: SourceState
    model: str | None = None  # the mask classifier that labelled this interval ("mask_classifier 0.4.0")
    # time-weighted: seconds counted people were in view in this interval, by their label then
    person_s: dict[str, float] = field(default_factory=_zero_seconds)
    label_changes: int = 0  # label_changed events in this interval

    @property
    def compliance_rate(self) -> float | None:
        """Per person: with_mask / people whose label was decided in this interval."""
        d = sum(self.by_label.values())
        return None if d == 0 else self.by_label["with_mask"] / d

    @property
    def masked_time_share(self) -> float | None:
        """Per person-time: the masked share of the time people were in view (see :func:`masked_share`)."""
        return masked_share(self.person_s)


@dataclass
class FrameResult:
    frame: Frame | None  # None: a status update from a silent live source (see maskwatch.pipeline)
    faces: Faces  # boxes, scores, probs, track ids and voted labels of this frame
    stats: Stats
    totals: Totals
    events: list[Event] = field(default_factory=list)  # decided on this frame
    summary: IntervalSummary | None = None  # set on the frame that closed an interval
