"""Tracking: stable ids for faces across frames, behind one contract (:mod:`maskwatch.tracking.base`).

``update(faces, frame) -> TrackUpdate`` on detector frames, ``predict(frame)`` in between,
``reset()`` when continuity is lost. Which tracker runs is ``[tracker] kind``
(:data:`~maskwatch.tracking.registry.TRACKER_KINDS`); labels are decided outside the tracker, by
:class:`maskwatch.votes.LabelVotes`, from the ids it gives.
"""

from maskwatch.tracking.base import IdConfirmer, Tracker, TrackUpdate
from maskwatch.tracking.registry import DEFAULT_KIND, TRACKER_KINDS, make_tracker

__all__ = ["DEFAULT_KIND", "IdConfirmer", "TRACKER_KINDS", "TrackUpdate", "Tracker", "make_tracker"]
