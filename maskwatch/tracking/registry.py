"""Tracker kind -> class: the one table of trackers (``[tracker] kind``, ``--set tracker.kind=...``).

A class is named as ``"module:Class"`` and imported only when a tracker of its kind is built, so
checking a configuration costs no SciPy. A new tracker is one module with a class built as
``Class(config: TrackerConfig)`` that keeps the :class:`~maskwatch.tracking.base.Tracker`
contract, and one line here.

>>> tuple(TRACKER_KINDS)
('centroid', 'reid', 'byte')
>>> type(make_tracker(__import__("maskwatch.config").config.TrackerConfig())).__name__
'ReidTracker'
"""

from __future__ import annotations

import importlib

from maskwatch.errors import MaskwatchError

DEFAULT_KIND = "reid"

TRACKER_KINDS: dict[str, str] = {
    "centroid": "maskwatch.tracking.centroid:CentroidTracker",  # constant velocity, Hungarian on IoU + size-normalised centre distance
    "reid": "maskwatch.tracking.reid:ReidTracker",  # centroid + camera-motion compensation + re-link of lost people by colour
    "byte": "maskwatch.tracking.byte:ByteTracker",  # Kalman + ByteTrack two-stage association (low-score boxes) + CMC + colour re-link
}


def make_tracker(config):
    """The tracker of ``config.kind`` (a :class:`~maskwatch.config.TrackerConfig`)."""
    try:
        target = TRACKER_KINDS[config.kind]
    except KeyError:
        raise MaskwatchError(f"tracker.kind must be one of {', '.join(TRACKER_KINDS)}, got {config.kind!r}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)(config)
