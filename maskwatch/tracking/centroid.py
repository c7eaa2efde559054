"""``CentroidTracker``: stable ids for faces across frames (the ``centroid`` kind).

A small norfair-style tracker: each live track predicts where its face is now (constant velocity),
this frame's detections are matched to the predictions by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on a cost that mixes box overlap (IoU) and centre distance
relative to face size (small CCTV faces move several of their own widths between detections, so
IoU alone loses them), unmatched detections start new tracks, and tracks unseen for more than
``max_age`` frames are finished. A track is confirmed (a person) once ``min_hits`` detections
were matched to it. Labels are not decided here: :mod:`maskwatch.votes` does that from the ids.

Each ``update``/``predict`` call is one frame (the tracker counts them itself, so a source that
restarts its frame numbers after a reconnect changes nothing).

>>> import numpy as np
>>> from maskwatch.faces import Faces
>>> from maskwatch.config import TrackerConfig
>>> tracker = CentroidTracker(TrackerConfig(min_hits=3))
>>> for i in range(4):
...     up = tracker.update(Faces(xyxy=[[100 + 5 * i, 50, 140 + 5 * i, 100]], score=[0.9]))
...     print(up.faces.track_id.tolist(), up.confirmed)
[1] ()
[1] ()
[1] (1,)
[1] ()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from maskwatch.tracking.config import TrackerConfig
from maskwatch.faces import Faces
from maskwatch.tracking.base import TrackUpdate
from maskwatch.tracking.matching import gated_cost

MAX_EXTRAPOLATION = 10
"""Frames a track's box is moved at constant velocity while it is not seen; after that it waits."""


@dataclass(eq=False)
class Track:
    """One face followed over frames. Read it; only the tracker changes it.

    ``xyxy`` is the box last matched to a detection (``predicted_box`` gives the box at a later
    frame). ``age`` is frames since the track was last matched (0 on a frame it was seen).
    ``hits`` counts frames a detection was matched to it; ``confirmed`` is set once ``hits``
    reached the tracker's ``min_hits``.
    """

    id: int
    xyxy: np.ndarray  # (4,) float32, last matched box
    first_frame: int
    last_frame: int
    hits: int = 1
    age: int = 0
    confirmed: bool = False
    score_sum: float = 0.0  # detector scores summed over hits
    max_score: float = 0.0  # best detector score over hits
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box delta per frame

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(4)

    @property
    def score(self) -> float:
        """Mean detector score over the frames the track was matched."""
        return self.score_sum / self.hits if self.hits else 0.0

    def predicted_box(self, frame_index: int) -> np.ndarray:
        """The box extrapolated at constant velocity to ``frame_index``.

        Extrapolation stops after ``MAX_EXTRAPOLATION`` frames (someone who stopped behind a
        pillar is looked for where they were last heading, not ever further away), and the box
        keeps a positive size.
        """
        gap = min(max(frame_index - self.last_frame, 0), MAX_EXTRAPOLATION)
        box = self.xyxy + self.velocity * gap
        centre = (box[:2] + box[2:]) / 2
        half = np.maximum((box[2:] - box[:2]) / 2, 1.0)
        return np.concatenate([centre - half, centre + half]).astype(np.float32)


class CentroidTracker:
    """Gives each face a stable ``track_id``; says which tracks became people and which ended.

    ``iou_weight``/``distance_weight`` shape the matching cost ``(1 - IoU) + distance_weight * d``
    where ``d`` is the centre distance divided by the larger face size; a pair is allowed only if
    IoU >= ``min_iou`` or ``d`` <= ``max_distance`` (in face sizes, times the square root of the
    frames since the track was seen, capped at 2x), and the sizes differ by less than
    ``max_size_ratio``. ``min_track_score`` (off by default): a track is confirmed only once one
    of its detections scored at least this.
    """

    kind = "centroid"

    def __init__(
        self,
        config: TrackerConfig = TrackerConfig(),
        *,
        min_iou: float = 0.1,
        max_distance: float = 1.0,
        distance_weight: float = 0.5,
        max_size_ratio: float = 2.0,
        velocity_smoothing: float = 0.5,
        min_track_score: float = 0.0,
    ):
        if config.min_hits < 1 or config.max_age < 0:
            raise ValueError(f"bad tracker config: {config}")
        self.config = config
        self.min_iou = min_iou
        self.max_distance = max_distance
        self.distance_weight = distance_weight
        self.max_size_ratio = max_size_ratio
        self.velocity_smoothing = velocity_smoothing
        self.min_track_score = float(min_track_score)
        self._tracks: list[Track] = []
        self._next_id = 1
        self._frame = -1  # index of the last update/predict call
        self._last_update: int | None = None

    @property
    def tracks(self) -> list[Track]:
        """Live tracks, oldest first."""
        return list(self._tracks)

    def track(self, track_id: int) -> Track | None:
        """The live track with this id, or ``None``."""
        for t in self._tracks:
            if t.id == track_id:
                return t
        return None

    def update(self, faces: Faces, frame=None) -> TrackUpdate:
        """Match this frame's detections to tracks; fill ``faces.track_id`` in place.

        ``frame`` (the :class:`~maskwatch.frames.Frame`) is not needed by this tracker.
        """
        self._frame += 1
        now = self._last_update = self._frame
        n = len(faces)
        track_ids = np.full(n, -1, np.int64)
        confirmed: list[int] = []
        matches, unmatched = self._associate(faces.xyxy, now)
        for ti, di in matches:
            t = self._tracks[ti]
            self._hit(t, faces.xyxy[di], now, float(faces.score[di]))
            track_ids[di] = t.id
            if self._confirm(t):
                confirmed.append(t.id)
        for di in unmatched:
            t = Track(id=self._next_id, xyxy=faces.xyxy[di], first_frame=now, last_frame=now,
                      score_sum=float(faces.score[di]), max_score=float(faces.score[di]))
            self._next_id += 1
            self._tracks.append(t)
            track_ids[di] = t.id
            if self._confirm(t):
                confirmed.append(t.id)
        for t in self._tracks:
            t.age = now - t.last_frame
        ended = self._expire(now)
        faces.track_id = track_ids
        return TrackUpdate(faces, tuple(confirmed), ended, (), self._live())

    def predict(self, frame=None) -> TrackUpdate:
        """Boxes of the tracks seen on the last ``update`` frame, moved to this frame.

        For frames where the detector is skipped: ids are kept, no track is created, confirmed or
        dropped. ``score`` is 0 and ``probs`` NaN (nothing was measured).
        """
        self._frame += 1
        live = [t for t in self._tracks if t.last_frame == self._last_update]
        if not live:
            return TrackUpdate(Faces.empty(), live=self._live())
        faces = Faces(
            xyxy=np.stack([t.predicted_box(self._frame) for t in live]),
            score=np.zeros(len(live), np.float32),
            track_id=np.array([t.id for t in live], np.int64),
        )
        return TrackUpdate(faces, live=self._live())

    def reset(self) -> None:
        """Continuity lost (a reconnect, a new frame size): no track is moved by its old velocity.

        Tracks are kept until ``max_age``, so a person still where they were keeps their id.
        """
        for t in self._tracks:
            t.velocity = np.zeros(4, np.float32)

    # -- internals -------------------------------------------------------------------------------

    def _live(self) -> tuple[int, ...]:
        return tuple(t.id for t in self._tracks if t.confirmed)

    def _confirm(self, t: Track) -> bool:
        """Confirm ``t`` when it has enough hits (and score); True on the frame it happens."""
        if t.confirmed or t.hits < self.config.min_hits or t.max_score < self.min_track_score:
            return False
        t.confirmed = True
        return True

    def _expire(self, frame_index: int) -> tuple[int, ...]:
        """Finish tracks unseen for more than ``max_age`` frames (a face missed for exactly
        ``max_age`` frames and found on the next one keeps its id); the confirmed ones are returned."""
        keep, ended = [], []
        for t in self._tracks:
            if frame_index - t.last_frame <= self.config.max_age:
                keep.append(t)
            elif t.confirmed:
                ended.append(t.id)
        self._tracks = keep
        return tuple(ended)

    def _associate(self, boxes: np.ndarray, frame_index: int) -> tuple[list[tuple[int, int]], list[int]]:
        if not self._tracks or not len(boxes):
            return [], list(range(len(boxes)))
        pred = np.stack([t.predicted_box(frame_index) for t in self._tracks])
        gaps = np.array([max(frame_index - t.last_frame, 1) for t in self._tracks], np.float32)
        cost, allowed = self._cost(pred, boxes, gaps)
        big = 1e6
        rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
        matches = [(r, c) for r, c in zip(rows, cols) if allowed[r, c]]
        matched = {c for _, c in matches}
        return matches, [d for d in range(len(boxes)) if d not in matched]

    def _cost(self, a: np.ndarray, b: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cost and allowed mask between predicted boxes ``a`` (T, 4) and detections ``b`` (D, 4).

        ``gaps`` (T,) are frames since each track was last seen: the allowed centre distance grows
        with the square root of the gap (up to 4 frames), since the prediction is less sure.
        """
        return gated_cost(a, b, max_distance=self.max_distance * np.sqrt(np.minimum(gaps, 4.0)),
                          min_iou=self.min_iou, distance_weight=self.distance_weight,
                          max_size_ratio=self.max_size_ratio)

    def _hit(self, t: Track, box: np.ndarray, frame_index: int, score: float) -> None:
        gap = frame_index - t.last_frame
        box = np.asarray(box, np.float32)
        if gap > 0:
            measured = (box - t.xyxy) / gap
            a = self.velocity_smoothing if t.hits > 1 else 1.0
            t.velocity = (a * measured + (1 - a) * t.velocity).astype(np.float32)
        t.xyxy = box
        t.last_frame = frame_index
        t.hits += 1
        t.age = 0
        t.score_sum += score
        t.max_score = max(t.max_score, score)
