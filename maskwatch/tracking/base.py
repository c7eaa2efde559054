"""The tracker contract: ``update(faces, frame) -> TrackUpdate``, and what a tracker says changed.

Every tracker in this package (``centroid``, ``byte``, ...) gives each face a ``track_id`` and says,
frame by frame, which tracks became people (``confirmed``), which people left (``ended``) and which
new track turned out to be an earlier person again (``relinked``). The counter and the label votes
(:mod:`maskwatch.votes`) read only this, never a tracker's internals, so a tracker can be swapped
without touching what is counted.

``IdConfirmer`` makes the same ``TrackUpdate`` for faces whose ids come from elsewhere (a test, an
external tracker): an id is confirmed once it has appeared on ``min_hits`` frames.

>>> import numpy as np
>>> from maskwatch.faces import Faces
>>> confirm = IdConfirmer(min_hits=2)
>>> [confirm.update(Faces(np.zeros((1, 4)), [0.9], track_id=[4])).confirmed for _ in range(3)]
[(), (4,), ()]
>>> confirm.update(Faces.empty(), live_ids=[]).ended   # the caller's tracker no longer holds 4
(4,)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from maskwatch.faces import Faces
    from maskwatch.frames import Frame


@dataclass
class TrackUpdate:
    """What one ``update``/``predict`` call of a tracker did.

    - ``faces``: this frame's faces with ``track_id`` filled (-1: not tracked). A tracker may drop
      faces it used for association only (low-score boxes matched to no track).
    - ``confirmed``: ids that became people on this frame (seen on enough frames to be real). Each
      id is confirmed at most once; a counter counts a person here.
    - ``ended``: confirmed ids that are finished on this frame (unseen for too long). Never reused.
    - ``relinked``: ``(old, new)`` pairs: track ``new`` (never confirmed; its ids were provisional)
      is the person of the earlier confirmed track ``old``, and goes on as ``old`` from this frame.
      The person is not counted again; votes made under ``new`` belong to ``old``.
    - ``live``: ids of the confirmed tracks the tracker still holds (seen or briefly lost).
    """

    faces: "Faces"
    confirmed: tuple[int, ...] = ()
    ended: tuple[int, ...] = ()
    relinked: tuple[tuple[int, int], ...] = ()
    live: tuple[int, ...] = field(default=())


@runtime_checkable
class Tracker(Protocol):
    """Stable ids across frames: ``update`` on detector frames, ``predict`` in between, ``reset``
    when continuity is lost (a camera reconnect, a frame-size change): motion state is dropped,
    while people already counted may still be re-linked, never counted twice."""

    def update(self, faces: "Faces", frame: "Frame | None" = None) -> TrackUpdate: ...

    def predict(self, frame: "Frame | None" = None) -> TrackUpdate: ...

    def reset(self) -> None: ...


class IdConfirmer:
    """A ``TrackUpdate`` for faces that already carry ids: confirmed after ``min_hits`` frames.

    ``update(faces, live_ids)``: with ``live_ids`` (the ids the caller's tracker still holds) a
    confirmed id ends when it leaves that set, and unconfirmed ids outside it are forgotten; without
    them nothing ends (ids are taken to be never reused).
    """

    def __init__(self, min_hits: int = 1, min_track_score: float = 0.0):
        self.min_hits = max(int(min_hits), 1)
        self.min_track_score = float(min_track_score)
        self._hits: dict[int, int] = {}
        self._best: dict[int, float] = {}
        self._confirmed: set[int] = set()

    def update(self, faces: "Faces", live_ids=None) -> TrackUpdate:
        confirmed = []
        ids = [int(t) for t in faces.track_id]
        for i, tid in enumerate(ids):
            if tid < 0 or tid in self._confirmed:
                continue
            hits = self._hits[tid] = self._hits.get(tid, 0) + 1
            best = self._best[tid] = max(self._best.get(tid, 0.0), float(faces.score[i]))
            if hits >= self.min_hits and best >= self.min_track_score:
                self._confirmed.add(tid)
                self._hits.pop(tid, None)
                self._best.pop(tid, None)
                confirmed.append(tid)
        ended: tuple[int, ...] = ()
        if live_ids is not None:
            live = {int(t) for t in live_ids}
            ended = tuple(sorted(t for t in self._confirmed if t not in live))
            self._confirmed -= set(ended)
            self._hits = {k: v for k, v in self._hits.items() if k in live}
            self._best = {k: v for k, v in self._best.items() if k in live}
        return TrackUpdate(faces, tuple(confirmed), ended, (), tuple(sorted(self._confirmed)))
