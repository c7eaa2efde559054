"""``LabelVotes``: a person's mask label over time, decided by vote, outside the tracker.

Keyed by track id and fed by a tracker's :class:`~maskwatch.tracking.TrackUpdate`, so any
tracker gets the same labels, and a re-linked track (``relinked``: ``(old, new)``) keeps the votes
of both. Each track keeps the per-frame classifier labels (argmax of ``probs``; NaN rows, frames
not classified, add no vote) of its last ``vote_window`` classified frames.

- **First label**: once a track has ``min_votes`` votes, its label is the window's majority
  (ties broken by the mean probabilities), so a few bad early crops cannot decide it alone.
- **A change**: the current label must have lost the window's majority for ``change_after_s``
  seconds of frame time (media time for files), on every vote in between (a tie keeps it; regaining
  the lead once starts the wait again). The new label is the one with most votes over that wait
  (a mask pulled down is often seen partly as ``without_mask``, partly as
  ``mask_worn_incorrectly``: the wait counts both against ``with_mask``). ``change_after_s = 0``:
  the label follows the window's majority at once. A mask pulled down is reported after
  about that long; a mask held up to the face for a second is not worn and changes nothing.

Each decision is a :class:`LabelDecision` (``previous`` is ``None`` for the first one);
``faces.track_label`` is filled with each face's current label (-1 while undecided).

>>> import numpy as np
>>> from maskwatch.faces import Faces
>>> from maskwatch.tracking import TrackUpdate
>>> votes = LabelVotes(vote_window=4, min_votes=3, change_after_s=1.0)
>>> def frame(t, p):
...     faces = Faces([[0, 0, 40, 40]], [0.9], probs=[p], track_id=[7])
...     return [(d.label, d.previous) for d in votes.update(TrackUpdate(faces), timestamp=t)]
>>> [frame(0.1 * i, [0.9, 0.1, 0.0]) for i in range(3)][-1]   # third vote decides
[('with_mask', None)]
>>> changes = [frame(0.3 + 0.25 * i, [0.1, 0.9, 0.0]) for i in range(8)]
>>> [i for i, c in enumerate(changes) if c], changes[6]        # leads from i = 2, held 1 s at i = 6
([6], [('without_mask', 'with_mask')])
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from maskwatch import LABELS
from maskwatch.tracking.base import TrackUpdate

_NUM_CLASSES = len(LABELS)


@dataclass(frozen=True)
class LabelDecision:
    """A track's label was decided (``previous`` is ``None``) or changed (``previous`` is the old one)."""

    track_id: int
    label: str
    previous: str | None
    confidence: float  # share of the window's votes for ``label``
    timestamp: float


class _Ballot:
    """The votes of one track."""

    __slots__ = ("labels", "probs", "label", "since", "held", "last_call")

    def __init__(self, window: int):
        self.labels: deque = deque(maxlen=window)
        self.probs: deque = deque(maxlen=window)
        self.label = -1
        self.since: float | None = None  # when ``label`` lost the window's lead (None: it leads)
        self.held = np.zeros(_NUM_CLASSES, np.int64)  # votes per class since then
        self.last_call = 0

    def counts(self) -> np.ndarray:
        return np.bincount(np.asarray(self.labels, np.int64), minlength=_NUM_CLASSES)[:_NUM_CLASSES]

    def majority(self) -> int:
        counts = self.counts()
        best = np.flatnonzero(counts == counts.max())
        if self.label in best:
            return self.label  # a decided label is kept on a tie
        if len(best) > 1:
            mean = np.mean(np.stack(self.probs), axis=0)
            return int(best[np.argmax(mean[best])])
        return int(best[0])

    def share(self, label: int) -> float:
        return float(self.counts()[label]) / len(self.labels) if self.labels else 0.0


class LabelVotes:
    """Labels of tracks over time; see the module docstring."""

    FORGET_AFTER_CALLS = 3000
    """A track with no vote and no face for this many frames, and not among the tracker's people, is forgotten."""

    def __init__(self, vote_window: int = 15, min_votes: int = 10, change_after_s: float = 3.0):
        if vote_window < 1 or min_votes < 1 or min_votes > vote_window or not change_after_s >= 0:
            raise ValueError(f"bad votes: window {vote_window}, min_votes {min_votes}, change_after_s {change_after_s}")
        self.vote_window = int(vote_window)
        self.min_votes = int(min_votes)
        self.change_after_s = float(change_after_s)
        self._ballots: dict[int, _Ballot] = {}
        self._calls = 0

    @classmethod
    def from_config(cls, config) -> "LabelVotes":
        """From a :class:`~maskwatch.config.TrackerConfig` (``vote_window``, ``min_votes``, ``change_after_s``)."""
        return cls(config.vote_window, config.min_votes, config.change_after_s)

    def update(self, update: TrackUpdate, timestamp: float) -> list[LabelDecision]:
        """Apply one frame: re-links, this frame's votes, ended tracks. Fills ``update.faces.track_label``."""
        self._calls += 1
        for old, new in update.relinked:
            self._merge(old, new)
        faces = update.faces
        decisions: list[LabelDecision] = []
        per_frame = faces.label if len(faces) else np.zeros(0, np.int64)
        labels = np.full(len(faces), -1, np.int64)
        for i in range(len(faces)):
            tid = int(faces.track_id[i])
            if tid < 0:
                continue
            ballot = self._ballots.get(tid)
            if ballot is None:
                ballot = self._ballots[tid] = _Ballot(self.vote_window)
            ballot.last_call = self._calls
            if per_frame[i] >= 0:
                decision = self._vote(tid, ballot, int(per_frame[i]), faces.probs[i], float(timestamp))
                if decision is not None:
                    decisions.append(decision)
            labels[i] = ballot.label
        faces.track_label = labels
        for tid in update.ended:
            self._ballots.pop(tid, None)
        if self._calls % 256 == 0:
            self._forget(set(update.live))
        return decisions

    def label(self, track_id: int) -> int:
        """The track's current label (a ``LABELS`` index), -1 while undecided or unknown."""
        ballot = self._ballots.get(track_id)
        return -1 if ballot is None else ballot.label

    def counts(self, track_id: int) -> np.ndarray:
        """Votes per class (``LABELS`` order) in the track's window (zeros for an unknown track)."""
        ballot = self._ballots.get(track_id)
        return np.zeros(_NUM_CLASSES, np.int64) if ballot is None else ballot.counts()

    def confidence(self, track_id: int) -> float | None:
        """Share of the window's votes for the current label; ``None`` while undecided."""
        ballot = self._ballots.get(track_id)
        if ballot is None or ballot.label < 0:
            return None
        return ballot.share(ballot.label)

    # -- internals -------------------------------------------------------------------------------

    def _vote(self, tid: int, ballot: _Ballot, label: int, probs, timestamp: float) -> LabelDecision | None:
        ballot.labels.append(label)
        ballot.probs.append(np.asarray(probs, np.float32))
        if len(ballot.labels) < self.min_votes:
            return None
        lead = ballot.majority()
        if ballot.label < 0:
            ballot.label = lead
            return LabelDecision(tid, LABELS[lead], None, ballot.share(lead), timestamp)
        if lead == ballot.label:
            ballot.since = None
            return None
        if ballot.since is None:
            ballot.since = timestamp
            ballot.held[:] = 0
        ballot.held[label] += 1
        if timestamp - ballot.since + 1e-9 < self.change_after_s:
            return None
        held = ballot.held.copy()
        held[ballot.label] = -1
        best = np.flatnonzero(held == held.max())
        new = lead if lead in best else int(best[0])
        previous = LABELS[ballot.label]
        ballot.label, ballot.since = new, None
        return LabelDecision(tid, LABELS[new], previous, ballot.share(new), timestamp)

    def _merge(self, old: int, new: int) -> None:
        """Track ``new`` goes on as ``old``: ``old``'s votes first, then ``new``'s (the newer)."""
        ballot_new = self._ballots.pop(new, None)
        if ballot_new is None:
            return
        ballot = self._ballots.get(old)
        if ballot is None:
            self._ballots[old] = ballot_new
            return
        ballot.labels.extend(ballot_new.labels)
        ballot.probs.extend(ballot_new.probs)
        ballot.last_call = max(ballot.last_call, ballot_new.last_call)

    def _forget(self, people: set[int]) -> None:
        horizon = self._calls - self.FORGET_AFTER_CALLS
        self._ballots = {k: b for k, b in self._ballots.items() if k in people or b.last_call > horizon}

