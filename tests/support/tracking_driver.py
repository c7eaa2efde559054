"""``Driver``: a tracker and its label votes driven by frame index, for the tests.

The tests were written with frame-indexed calls (``update(faces, 7)``, ``predict(8)``); on the
tracker contract the frames between two indexes are ``predict()`` calls, as the pipeline makes
them. Each ``TrackUpdate`` goes to :class:`~maskwatch.votes.LabelVotes` with ``change_after_s``
0 by default (the label follows the window's majority at once).
"""

from __future__ import annotations

from maskwatch.config import TrackerConfig
from maskwatch.faces import Faces
from maskwatch.tracking import TrackUpdate, make_tracker
from maskwatch.votes import LabelVotes


class Driver:
    """A tracker driven by frame index (see the module docstring), with its votes."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), kind: str = "centroid", change_after_s: float = 0.0):
        config = TrackerConfig(**{**config.__dict__, "kind": kind})
        self.tracker = make_tracker(config)
        self.votes = LabelVotes(config.vote_window, config.min_votes, change_after_s=change_after_s)
        self.frame = -1
        self.ended: list[int] = []
        self.confirmed: list[int] = []
        self.last: TrackUpdate | None = None
        self.decisions: list = []

    def _take(self, up: TrackUpdate, index: int) -> Faces:
        self.frame = index
        self.decisions = self.votes.update(up, timestamp=index / 25)
        self.ended += up.ended
        self.confirmed += up.confirmed
        self.last = up
        return up.faces

    def _skip_to(self, index: int) -> None:
        while self.frame < index - 1:
            self._take(self.tracker.predict(), self.frame + 1)

    def update(self, faces: Faces, frame_index: int) -> Faces:
        self._skip_to(frame_index)
        return self._take(self.tracker.update(faces), frame_index)

    def predict(self, frame_index: int) -> Faces:
        self._skip_to(frame_index)
        return self._take(self.tracker.predict(), frame_index)

    @property
    def tracks(self):
        return self.tracker.tracks
