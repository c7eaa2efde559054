"""``Faces``: one plain dataclass of numpy arrays that travels through every stage.

Like ``supervision.Detections``: the detector fills boxes, scores and keypoints; the classifier
fills ``probs``; the tracker fills ``track_id`` and ``track_label``.

>>> import numpy as np
>>> f = Faces.empty()
>>> len(f)
0
>>> f = Faces(xyxy=np.array([[10, 20, 50, 70]], np.float32), score=np.array([0.9], np.float32))
>>> f.widths.tolist()
[40.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskwatch import LABELS


def _zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)


@dataclass
class Faces:
    xyxy: np.ndarray  # (N, 4) float32, pixels of the original frame
    score: np.ndarray  # (N,) float32 detector confidence
    keypoints: np.ndarray = field(default=None)  # (N, 6, 2) float32 pixels, or (N, 0, 2)
    probs: np.ndarray = field(default=None)  # (N, 3) float32 classifier probabilities, LABELS order
    track_id: np.ndarray = field(default=None)  # (N,) int64, -1 = not tracked
    track_label: np.ndarray = field(default=None)  # (N,) int64 voted label index, -1 = undecided

    def __post_init__(self):
        n = len(self.xyxy)
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(n, 4)
        self.score = np.asarray(self.score, np.float32).reshape(n)
        if self.keypoints is None:
            self.keypoints = _zeros((n, 0, 2), np.float32)
        self.keypoints = np.asarray(self.keypoints, np.float32)
        if self.keypoints.ndim != 3:
            self.keypoints = self.keypoints.reshape(n, -1, 2) if n else _zeros((0, 0, 2), np.float32)
        if self.probs is None:
            self.probs = np.full((n, len(LABELS)), np.nan, np.float32)
        self.probs = np.asarray(self.probs, np.float32).reshape(n, len(LABELS))
        if self.track_id is None:
            self.track_id = np.full(n, -1, np.int64)
        self.track_id = np.asarray(self.track_id, np.int64).reshape(n)
        if self.track_label is None:
            self.track_label = np.full(n, -1, np.int64)
        self.track_label = np.asarray(self.track_label, np.int64).reshape(n)

    @classmethod
    def empty(cls) -> "Faces":
        return cls(xyxy=_zeros((0, 4), np.float32), score=_zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, idx) -> "Faces":
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return Faces(
            xyxy=self.xyxy[idx],
            score=self.score[idx],
            keypoints=self.keypoints[idx],
            probs=self.probs[idx],
            track_id=self.track_id[idx],
            track_label=self.track_label[idx],
        )

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def label(self) -> np.ndarray:
        """Per-frame label index (argmax of ``probs``), -1 where not classified."""
        out = np.full(len(self), -1, np.int64)
        ok = ~np.isnan(self.probs).any(axis=1) if len(self) else np.zeros(0, bool)
        out[ok] = self.probs[ok].argmax(axis=1)
        return out

    @staticmethod
    def concat(parts: list["Faces"]) -> "Faces":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Faces.empty()
        return Faces(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            keypoints=np.concatenate([p.keypoints for p in parts]) if len({p.keypoints.shape[1:] for p in parts}) == 1 else None,
            probs=np.concatenate([p.probs for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
            track_label=np.concatenate([p.track_label for p in parts]),
        )
