"""``Tracker``: stable ids for faces across frames, and a label decided by vote (no flicker).

A small norfair-style tracker: each live ``Track`` predicts where its face is now (constant velocity),
this frame's detections are matched to the predictions by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on a cost that mixes box overlap (IoU) and centre distance
relative to face size (small CCTV faces move several of their own widths between detections, so
IoU alone loses them), unmatched detections start new tracks, and tracks unseen for more than
``max_age`` frames are finished.

Each track keeps the per-frame classifier labels (argmax of ``probs``) of its last ``vote_window``
classified frames; once it has ``min_votes`` of them its label is the majority (ties broken by the
mean probabilities, and a decided label is kept on a tie), so one odd frame never flips a label.

>>> import numpy as np
>>> from maskwatch.faces import Faces
>>> tracker = Tracker()
>>> for i in range(10):   # TrackerConfig.min_votes (10) classified frames decide a label
...     faces = Faces(xyxy=[[100 + 5 * i, 50, 140 + 5 * i, 100]], score=[0.9], probs=np.array([[0.9, 0.05, 0.05]]))
...     faces = tracker.update(faces, frame_index=i)
...     if i == 8:
...         print(faces.track_id.tolist(), faces.track_label.tolist())  # one id; 9 votes: undecided
[1] [-1]
>>> faces.track_id.tolist(), faces.track_label.tolist()  # 10 votes: label 0 = with_mask
([1], [0])
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from maskwatch import LABELS
from maskwatch.boxes import box_iou
from maskwatch.config import TrackerConfig
from maskwatch.faces import Faces

_NUM_CLASSES = len(LABELS)

MAX_EXTRAPOLATION = 10
"""Frames a track's box is moved at constant velocity while it is not seen; after that it waits."""


@dataclass(eq=False)
class Track:
    """One face followed over frames. Read it; only the ``Tracker`` changes it.

    ``xyxy`` is the box last matched to a detection (``predicted_box`` gives the box at a later
    frame). ``age`` is frames since the track was last matched (0 on a frame it was seen).
    ``hits`` counts frames a detection was matched to it. ``label`` is a ``LABELS`` index or -1
    while undecided.
    """

    id: int
    xyxy: np.ndarray  # (4,) float32, last matched box
    first_frame: int
    last_frame: int
    vote_window: int = 15
    hits: int = 1
    age: int = 0
    label: int = -1
    score_sum: float = 0.0  # detector scores summed over hits
    max_score: float = 0.0  # best detector score over hits
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box delta per frame
    _labels: deque = field(default=None, repr=False)  # per-frame argmax of the last classified frames
    _probs: deque = field(default=None, repr=False)  # the matching probability rows

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(4)
        if self._labels is None:
            self._labels = deque(maxlen=self.vote_window)
        if self._probs is None:
            self._probs = deque(maxlen=self.vote_window)

    @property
    def votes(self) -> np.ndarray:
        """Counts per class (``LABELS`` order) over the last ``vote_window`` classified frames."""
        return np.bincount(np.asarray(self._labels, np.int64), minlength=_NUM_CLASSES)[:_NUM_CLASSES]

    @property
    def score(self) -> float:
        """Mean detector score over the frames the track was matched."""
        return self.score_sum / self.hits if self.hits else 0.0

    @property
    def num_votes(self) -> int:
        return len(self._labels)

    @property
    def confidence(self) -> float | None:
        """Share of the window's votes that went to ``label``; ``None`` while undecided."""
        if self.label < 0 or not self._labels:
            return None
        return float(self.votes[self.label]) / len(self._labels)

    @property
    def label_name(self) -> str | None:
        return LABELS[self.label] if self.label >= 0 else None

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


class Tracker:
    """Gives each face a stable ``track_id`` and a voted ``track_label``. See the module docstring.

    ``iou_weight``/``distance_weight`` shape the matching cost ``(1 - IoU) + distance_weight * d``
    where ``d`` is the centre distance divided by the larger face size; a pair is allowed only if
    IoU >= ``min_iou`` or ``d`` <= ``max_distance`` (in face sizes, times the square root of the
    frames since the track was seen, capped at 2x), and the sizes differ by less than
    ``max_size_ratio``.
    """

    def __init__(
        self,
        config: TrackerConfig = TrackerConfig(),
        *,
        min_iou: float = 0.1,
        max_distance: float = 1.0,
        distance_weight: float = 0.5,
        max_size_ratio: float = 2.0,
        velocity_smoothing: float = 0.5,
        max_finished: int = 1024,
    ):
        if config.vote_window < 1 or config.min_votes < 1 or config.max_age < 0:
            raise ValueError(f"bad tracker config: {config}")
        self.config = config
        self.min_iou = min_iou
        self.max_distance = max_distance
        self.distance_weight = distance_weight
        self.max_size_ratio = max_size_ratio
        self.velocity_smoothing = velocity_smoothing
        self._tracks: list[Track] = []
        self._finished: deque[Track] = deque(maxlen=max_finished)
        self._next_id = 1
        self._last_frame: int | None = None

    @property
    def tracks(self) -> list[Track]:
        """Live tracks, oldest first."""
        return list(self._tracks)

    def pop_finished(self) -> list[Track]:
        """Tracks removed (unseen for more than ``max_age`` frames) since the last call.

        Only the last ``max_finished`` are kept, so a caller that never asks leaks nothing.
        """
        out = list(self._finished)
        self._finished.clear()
        return out

    def track(self, track_id: int) -> Track | None:
        """The live track with this id, or ``None``."""
        for t in self._tracks:
            if t.id == track_id:
                return t
        return None

    def update(self, faces: Faces, frame_index: int) -> Faces:
        """Match this frame's detections to tracks; fill ``faces.track_id``/``track_label`` in place.

        ``faces.probs`` rows that are NaN (not classified this frame) add no vote. Returns ``faces``.
        """
        self._last_frame = frame_index
        n = len(faces)
        track_ids = np.full(n, -1, np.int64)
        track_labels = np.full(n, -1, np.int64)
        matches, unmatched = self._associate(faces.xyxy, frame_index)
        per_frame = faces.label
        for ti, di in matches:
            t = self._tracks[ti]
            self._hit(t, faces.xyxy[di], frame_index, float(faces.score[di]))
            self._vote(t, per_frame[di], faces.probs[di])
            track_ids[di], track_labels[di] = t.id, t.label
        for di in unmatched:
            t = Track(id=self._next_id, xyxy=faces.xyxy[di], first_frame=frame_index, last_frame=frame_index,
                      vote_window=self.config.vote_window, score_sum=float(faces.score[di]),
                      max_score=float(faces.score[di]))
            self._next_id += 1
            self._vote(t, per_frame[di], faces.probs[di])
            self._tracks.append(t)
            track_ids[di], track_labels[di] = t.id, t.label
        for t in self._tracks:
            t.age = frame_index - t.last_frame
        self._expire(frame_index)
        faces.track_id = track_ids
        faces.track_label = track_labels
        return faces

    def predict(self, frame_index: int) -> Faces:
        """Boxes of the tracks seen on the last ``update`` frame, moved to ``frame_index``.

        For frames where the detector is skipped: ids and labels are kept, no votes are added, no
        track is created or dropped. ``score`` is 0 and ``probs`` NaN (nothing was measured).
        """
        live = [t for t in self._tracks if t.last_frame == self._last_frame]
        if not live:
            return Faces.empty()
        return Faces(
            xyxy=np.stack([t.predicted_box(frame_index) for t in live]),
            score=np.zeros(len(live), np.float32),
            track_id=np.array([t.id for t in live], np.int64),
            track_label=np.array([t.label for t in live], np.int64),
        )

    # -- internals -------------------------------------------------------------------------------

    def _expire(self, frame_index: int) -> None:
        """Finish tracks unseen for more than ``max_age`` frames (a face missed for exactly
        ``max_age`` frames and found on the next one keeps its id)."""
        keep = []
        for t in self._tracks:
            (keep if frame_index - t.last_frame <= self.config.max_age else self._finished).append(t)
        self._tracks = keep

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
        iou = box_iou(a, b, np.float64)
        ca = (a[:, :2] + a[:, 2:]) / 2
        cb = (b[:, :2] + b[:, 2:]) / 2
        sa = np.maximum(a[:, 2:] - a[:, :2], 1.0).max(axis=1)
        sb = np.maximum(b[:, 2:] - b[:, :2], 1.0).max(axis=1)
        size = np.maximum(sa[:, None], sb[None, :])
        dist = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2) / size
        ratio = np.maximum(sa[:, None], sb[None, :]) / np.minimum(sa[:, None], sb[None, :])
        max_dist = self.max_distance * np.sqrt(np.minimum(gaps, 4.0))[:, None]
        allowed = ((iou >= self.min_iou) | (dist <= max_dist)) & (ratio <= self.max_size_ratio)
        cost = (1.0 - iou) + self.distance_weight * dist
        return cost, allowed

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

    def _vote(self, t: Track, label: int, probs: np.ndarray) -> None:
        if label < 0:
            return
        t._labels.append(int(label))
        t._probs.append(np.asarray(probs, np.float32))
        if len(t._labels) < self.config.min_votes:
            return
        votes = t.votes
        best = np.flatnonzero(votes == votes.max())
        if t.label in best:
            return  # a decided label is kept on a tie
        if len(best) > 1:
            mean = np.mean(np.stack(t._probs), axis=0)
            best = best[np.argmax(mean[best])]
        t.label = int(np.atleast_1d(best)[0])

