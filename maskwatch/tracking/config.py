"""``TrackerConfig``: tracking and label voting (the ``[tracker]`` table); owned by the tracking
stage, re-exported by :mod:`maskwatch.config`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackerConfig:
    vote_window: int = 15  # a track's label is the majority over its last N classified frames
    # classified frames before a track's label is decided: 10 (not 5) so that a few bad early crops
    # (a torso boxed as a face while the person is far away) cannot decide the label alone
    min_votes: int = 10
    # detector matches a track needs before it counts as a person: short-lived false faces (a
    # scribble in a photo's background, wall texture) last a few frames, people much longer
    min_hits: int = 10
    max_age: int = 30  # frames a track survives unseen
    kind: str = "reid"  # which tracker (maskwatch.tracking.TRACKER_KINDS); "centroid": without camera motion and re-link
    # a decided label changes only once another label has led the vote for this long (frame time):
    # a mask pulled down is reported a few seconds later, one held up for a second changes nothing
    change_after_s: float = 3.0
    # kinds "reid" and "byte": move tracks with the camera (pan, zoom, shake) before matching
    # (maskwatch.tracking.motion): true, false, or "auto" (byte: measured only while the camera is
    # seen to move, probed every 10 frames otherwise; reid: on)
    camera_motion: bool | str = "auto"
    # kind "reid": a person unseen for longer than max_age is kept this long (frame time) to be re-linked
    relink_s: float = 5.0
    # kind "byte": detector boxes down to this score go to the tracker to keep a confirmed person's
    # track (a turned head, blur); they never start one and only those matched to a person are
    # classified (>= detector.min_score: no low boxes)
    low_score: float = 0.3
    # kind "byte": a lost person is matched by motion for max_age frames, or this many seconds of
    # frame time when that is longer (0: frames only)
    lost_s: float = 0.0
