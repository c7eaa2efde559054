"""``Counter``: turns tracked faces into events (each person once) and interval summaries.

Events, once per track and never again:

- ``person_seen`` the first time a track has been seen on ``min_hits`` frames (a one-frame false
  detection is never counted) and, with ``min_track_score``, one of its detections scored that high;
- ``label_decided`` the first time the track's voted label (``faces.track_label``) is decided. A
  person is counted once, with this first decided label, even if the vote changes later. A label
  decided before ``min_hits`` is reached waits: ``label_decided`` follows ``person_seen`` on the
  frame the track is counted, so every counted label belongs to a counted person (a track not
  counted as a person never gets a ``label_decided``);
- ``track_ended`` (only with ``end_events=True`` and ``tracks`` given to :meth:`Counter.update`) on
  the first frame a counted track is no longer among the tracker's live tracks, with the label it
  was counted with (``None`` if it was never decided) and its last box. Tracks still live when the
  run ends get none (their person was counted; nothing ended).

Intervals are cut by the frames' ``timestamp`` (epoch seconds): the first interval starts at the
first frame's timestamp (or at the previous multiple of ``interval_s`` with ``align_to_clock=True``,
e.g. whole minutes), and each interval is ``[start, start + interval_s)``.

Gaps (no frames for longer than an interval, e.g. a camera reconnecting): the frame after the gap
closes the open interval with ``end`` moved to the start of the interval that frame falls in, so
one row covers the gap, rows stay contiguous (each row's ``end`` is the next row's ``start``) and a
row longer than ``interval_s`` shows the outage. If the timestamps jump back by more than an
interval (clock set back), the open interval is closed at its last frame and a new one starts.
A pipeline that wants one row per elapsed interval even without frames calls
:meth:`Counter.tick` while it waits (``maskwatch.pipeline`` does, for live sources).

>>> import numpy as np
>>> from maskwatch.faces import Faces
>>> from maskwatch.results import Stats
>>> counter = Counter(interval_s=10, min_hits=2)
>>> for i in range(3):
...     faces = Faces(xyxy=np.array([[0, 0, 20, 20]]), score=np.array([0.9]),
...                   track_id=np.array([7]), track_label=np.array([-1, -1, 0][i:i + 1]))
...     events, summary = counter.update(faces, timestamp=100.0 + i, frame_index=i, stats=Stats())
...     print([(e.kind, e.label) for e in events])
[]
[('person_seen', None)]
[('label_decided', 'with_mask')]
>>> summary = counter.flush(timestamp=103.0, stats=Stats())
>>> summary.frames, summary.people_seen, summary.by_label["with_mask"], counter.totals.people_seen
(3, 1, 1, 1)
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from collections.abc import Callable, Iterable

from maskwatch import LABELS
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.results import Event, IntervalSummary, Stats, Totals


class _Interval:
    """What is being accumulated for the open interval."""

    def __init__(self, start: float, end: float, dropped_base: int, state: SourceState):
        self.start = start
        self.end = end
        self.frames = 0
        self.last_ts = start  # latest frame timestamp counted
        self.faces = 0
        self.people_seen = 0
        self.by_label = {k: 0 for k in LABELS}
        self.first_clock: float | None = None
        self.last_clock: float | None = None
        self.fps_sum = 0.0
        self.fps_n = 0
        self.dropped_base = dropped_base
        self.dropped_last = dropped_base
        self.state = state

    def summary(self, end: float) -> IntervalSummary:
        if self.frames >= 2 and self.last_clock > self.first_clock:
            fps = (self.frames - 1) / (self.last_clock - self.first_clock)
        else:
            fps = self.fps_sum / self.fps_n if self.fps_n else 0.0
        return IntervalSummary(
            start=self.start,
            end=end,
            frames=self.frames,
            faces=self.faces,
            people_seen=self.people_seen,
            by_label=dict(self.by_label),
            fps=fps,
            dropped_frames=max(self.dropped_last - self.dropped_base, 0),
            source_state=self.state,
        )


class Counter:
    """Counts each person (track) once and summarises intervals. See the module docstring.

    ``min_track_score`` (off by default): a track is counted only once one of its detections
    scored at least this (detector false positives on textured backgrounds can persist for many
    frames at scores just above the detector's threshold).

    ``clock`` measures processing time for the interval's ``fps`` (frames processed per second of
    wall time, which for a file run faster than real time is the processing speed, not the file's
    frame rate); it falls back to the mean of ``stats.fps`` for intervals of one frame.
    """

    def __init__(
        self,
        interval_s: float = 60.0,
        min_hits: int = 3,
        *,
        align_to_clock: bool = False,
        min_track_score: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        end_events: bool = False,
    ):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = float(interval_s)
        self.min_hits = max(int(min_hits), 1)
        self.align_to_clock = align_to_clock
        self.min_track_score = float(min_track_score)
        self.clock = clock
        self.end_events = bool(end_events)  # emit ``track_ended`` (see the module docstring)
        self.totals = Totals()
        self._hits: dict[int, int] = {}  # frames each track id appeared on (until it is seen)
        self._best_score: dict[int, float] = {}  # best detector score of each id (until it is seen)
        self._seen: set[int] = set()
        self._decided: set[int] = set()
        self._labels: dict[int, str] = {}  # decided label of each counted track (for track_ended)
        self._last_box: dict[int, tuple[float, float, float, float]] = {}  # of counted tracks (end_events)
        self._interval: _Interval | None = None
        self._dropped = 0  # last cumulative stats.dropped_frames
        self._updates = 0

    def update(
        self,
        faces: Faces,
        timestamp: float,
        frame_index: int,
        stats: Stats,
        tracks: Iterable | None = None,
    ) -> tuple[list[Event], IntervalSummary | None]:
        """Count one processed frame. Returns its events and the interval it closed, if any.

        ``tracks`` (optional, ``Tracker.tracks``; recommended): ``min_hits`` then counts the
        frames a detection was matched to the track (``Track.hits``), not frames where the tracker
        only predicted it, each event's ``confidence`` is the share of the track's votes (without
        it: this frame's probability for the label), and ids of finished tracks are forgotten.
        Without ``tracks`` the counter counts the frames each id appears on.
        """
        closed = self._advance(timestamp, stats)
        iv = self._interval
        now = self.clock()
        if iv.first_clock is None:
            iv.first_clock = now
        iv.last_clock = now
        iv.frames += 1
        iv.last_ts = max(iv.last_ts, timestamp)
        iv.faces += len(faces)
        if stats.fps > 0:
            iv.fps_sum += stats.fps
            iv.fps_n += 1
        self._dropped = max(int(stats.dropped_frames), self._dropped)
        iv.dropped_last = self._dropped
        iv.state = stats.source_state

        by_id = {t.id: t for t in tracks} if tracks is not None else {}
        events: list[Event] = []
        for i in range(len(faces)):
            tid = int(faces.track_id[i])
            if tid < 0:
                continue
            box = tuple(float(v) for v in faces.xyxy[i])
            label = int(faces.track_label[i])
            if tid not in self._seen:
                track = by_id.get(tid)
                if track is not None:  # detector matches: frames where the tracker only predicted don't count
                    hits = int(track.hits)
                else:
                    hits = self._hits[tid] = self._hits.get(tid, 0) + 1
                best = self._best_score[tid] = max(self._best_score.get(tid, 0.0), float(faces.score[i]))
                if hits >= self.min_hits and best >= self.min_track_score:
                    self._seen.add(tid)
                    self._hits.pop(tid, None)
                    self._best_score.pop(tid, None)
                    self.totals.people_seen += 1
                    iv.people_seen += 1
                    events.append(Event("person_seen", tid, timestamp, frame_index, box=box))
            if self.end_events and tid in self._seen:
                self._last_box[tid] = box
            if label >= 0 and tid in self._seen and tid not in self._decided:
                self._decided.add(tid)
                name = LABELS[label]
                if self.end_events:
                    self._labels[tid] = name
                self.totals.by_label[name] += 1
                iv.by_label[name] += 1
                events.append(Event("label_decided", tid, timestamp, frame_index, label=name,
                                    confidence=self._confidence(faces, i, label, by_id.get(tid)), box=box))
        if self.end_events and tracks is not None:
            events.extend(self._ended(by_id, timestamp, frame_index))
        self._updates += 1
        if tracks is not None and self._updates % self.PRUNE_EVERY == 0:
            self._prune(by_id.keys())
        return events, closed

    PRUNE_EVERY = 256

    def _ended(self, live: dict, timestamp: float, frame_index: int) -> list[Event]:
        """``track_ended`` for counted tracks no longer live; they are forgotten at once (ids are never reused)."""
        gone = sorted(tid for tid in self._seen if tid not in live)
        for tid in gone:
            self._seen.discard(tid)
            self._decided.discard(tid)
        return [Event("track_ended", tid, timestamp, frame_index, label=self._labels.pop(tid, None),
                      box=self._last_box.pop(tid, None)) for tid in gone]

    def _prune(self, live_ids) -> None:
        """Forget ids of finished tracks (ids are never reused), so memory stays flat on long runs."""
        live = set(live_ids)
        self._seen &= live
        self._decided &= live
        self._hits = {k: v for k, v in self._hits.items() if k in live}
        self._best_score = {k: v for k, v in self._best_score.items() if k in live}
        # _labels and _last_box hold counted ids only, and _ended() has already dropped those not live

    def tick(self, timestamp: float, stats: Stats) -> IntervalSummary | None:
        """Close the open interval if ``timestamp`` has passed its end, without counting a frame.

        For a pipeline waiting on a reconnecting source: called with the wall clock, it yields one
        (empty, state ``reconnecting``) summary per elapsed interval.
        """
        if self._interval is None or timestamp < self._interval.end:
            return None
        self._interval.state = stats.source_state
        self._dropped = max(int(stats.dropped_frames), self._dropped)
        self._interval.dropped_last = self._dropped
        iv = self._interval
        summary = iv.summary(iv.end)
        self._interval = _Interval(iv.end, iv.end + self.interval_s, self._dropped, stats.source_state)
        return summary

    def flush(self, timestamp: float, stats: Stats) -> IntervalSummary | None:
        """The partial interval at shutdown, ending at ``timestamp`` (``None`` if there is none).

        An interval opened by :meth:`tick` during an outage has no frames but still covers time
        the source was away: it is returned too (rows stay contiguous up to the shutdown), unless
        it is empty in time as well.
        """
        iv = self._interval
        self._interval = None
        if iv is None:
            return None
        end = min(max(timestamp, iv.start), iv.end)
        if iv.frames == 0 and end <= iv.start:
            return None
        self._dropped = max(int(stats.dropped_frames), self._dropped)
        iv.dropped_last = self._dropped
        iv.state = stats.source_state  # the state at shutdown: "ended" for a finished file
        return iv.summary(end)

    # -- internals -------------------------------------------------------------------------------

    def _advance(self, timestamp: float, stats: Stats) -> IntervalSummary | None:
        """Open the first interval, or close the current one when ``timestamp`` passed its end."""
        iv = self._interval
        if iv is None:
            start = timestamp
            if self.align_to_clock:  # on the local clock: hourly rows start on the hour in +05:30 too
                off = datetime.fromtimestamp(timestamp).astimezone().utcoffset().total_seconds()
                start = math.floor((timestamp + off) / self.interval_s) * self.interval_s - off
            self._interval = _Interval(start, start + self.interval_s, self._dropped, stats.source_state)
            return None
        if timestamp < iv.start - self.interval_s and iv.frames:
            # the clock went back by more than an interval (system clock set back, a source
            # restarted its timestamps): close what we have, start again from the new time
            summary = iv.summary(max(iv.last_ts, iv.start))
            self._interval = _Interval(timestamp, timestamp + self.interval_s, self._dropped, stats.source_state)
            return summary
        if timestamp < iv.end:
            return None
        k = math.floor((timestamp - iv.start) / self.interval_s)
        new_start = iv.start + k * self.interval_s
        summary = iv.summary(new_start)
        self._interval = _Interval(new_start, new_start + self.interval_s, self._dropped, stats.source_state)
        return summary

    @staticmethod
    def _confidence(faces: Faces, i: int, label: int, track) -> float | None:
        if track is not None and getattr(track, "confidence", None) is not None:
            return float(track.confidence)
        p = faces.probs[i, label]
        return None if math.isnan(p) else float(p)
