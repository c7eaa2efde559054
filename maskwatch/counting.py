"""``Counter``: turns a tracker's :class:`~maskwatch.tracking.TrackUpdate` and the label votes'
decisions into events (each person once) and interval summaries. It reads only that contract.

Events:

- ``person_seen`` when the tracker confirms a track (``TrackUpdate.confirmed``: seen on enough
  frames to be real; a one-frame false detection is never counted). A re-linked track
  (``TrackUpdate.relinked``) is the same person and is not counted again;
- ``label_decided`` the first time the person's label is decided (a
  :class:`~maskwatch.votes.LabelDecision` with ``previous`` ``None``). A person is counted once, with
  this first label (``by_label``). A label decided before the track is confirmed waits:
  ``label_decided`` follows ``person_seen`` on the frame the track is counted, with the label the
  votes hold then, so every counted label belongs to a counted person;
- ``label_changed`` each time a counted person's label changes later (the votes decide when; see
  :mod:`maskwatch.votes`), with ``label`` the new one and ``previous`` the old;
- ``track_ended`` (only with ``end_events=True``) on the frame the tracker ends a counted track
  (``TrackUpdate.ended``), with the person's last label (``None`` if never decided) and last box.
  Tracks still live when the run ends get none (their person was counted; nothing ended).

Time-weighted figures: on each frame, every face of a counted person with a decided label adds the
time since the previous frame (frame timestamps; at most ``max_frame_gap_s``, so an outage adds
nothing) to ``person_s[label]`` of the open interval and of the totals. ``masked_time_share`` is
the with_mask share of that time: the answer to "for how long were people unmasked", where
``compliance_rate`` (per person, first label) answers "how many people wore a mask".

Without a ``TrackUpdate`` (faces whose ids come from elsewhere) the counter confirms an id once it
appeared on ``min_hits`` frames (:class:`~maskwatch.tracking.IdConfirmer`), and without decisions
it reads them from ``faces.track_label`` (a new label for an id is a decision).

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
>>> summary.person_s["with_mask"], summary.masked_time_share   # 1 s in view with a decided label
(1.0, 1.0)
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
from maskwatch.tracking.base import IdConfirmer, TrackUpdate
from maskwatch.votes import LabelDecision


class _Interval:
    """What is being accumulated for the open interval."""

    def __init__(self, start: float, end: float, dropped_base: int, state: SourceState, model: str | None = None):
        self.start = start
        self.models: list[str] = [model] if model else []  # the classifiers that labelled it, in order
        self.end = end
        self.frames = 0
        self.last_ts = start  # latest frame timestamp counted
        self.faces = 0
        self.people_seen = 0
        self.by_label = {k: 0 for k in LABELS}
        self.person_s = {k: 0.0 for k in LABELS}
        self.label_changes = 0
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
            person_s={k: round(v, 3) for k, v in self.person_s.items()},
            label_changes=self.label_changes,
            model=" -> ".join(self.models) or None,
        )


class Counter:
    """Counts each person (track) once and summarises intervals. See the module docstring.

    ``min_hits`` / ``min_track_score`` apply only without a ``TrackUpdate`` (the tracker confirms
    people otherwise). ``max_frame_gap_s``: the most time one frame adds to the person-seconds.

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
        max_frame_gap_s: float = 2.0,
    ):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = float(interval_s)
        self.min_hits = max(int(min_hits), 1)
        self.align_to_clock = align_to_clock
        self.min_track_score = float(min_track_score)
        self.clock = clock
        self.end_events = bool(end_events)  # emit ``track_ended`` (see the module docstring)
        self.max_frame_gap_s = float(max_frame_gap_s)
        self.totals = Totals()
        self._confirmer = IdConfirmer(self.min_hits, self.min_track_score)  # for faces without a TrackUpdate
        self._counted: set[int] = set()  # confirmed ids still held by the tracker
        self._label: dict[int, str] = {}  # current label of counted (decided) people
        self._pending: dict[int, LabelDecision] = {}  # labels of tracks not yet confirmed
        self._last_box: dict[int, tuple[float, float, float, float]] = {}  # of counted tracks
        self._seen_label: dict[int, int] = {}  # without decisions: the last track_label read per id
        self._interval: _Interval | None = None
        self.model: str | None = None  # the classifier labelling now (use_model); stamped on each summary
        self._next_model: str | None = None  # set by use_model, joins the interval of the next frame or tick
        self._dropped = 0  # last cumulative stats.dropped_frames
        self._prev_ts: float | None = None
        self._updates = 0

    def update(
        self,
        faces: Faces,
        timestamp: float,
        frame_index: int,
        stats: Stats,
        track_update: TrackUpdate | None = None,
        labels: Iterable[LabelDecision] | None = None,
    ) -> tuple[list[Event], IntervalSummary | None]:
        """Count one processed frame. Returns its events and the interval it closed, if any.

        ``track_update``: what the tracker said of this frame (recommended; without it ids are
        confirmed by ``min_hits`` frames here). ``labels``: the votes' decisions of this frame
        (without them, read from ``faces.track_label``).
        """
        closed = self._advance(timestamp, stats)
        self._take_next_model()
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

        up = track_update if track_update is not None else self._confirmer.update(faces)
        boxes = {int(t): tuple(float(v) for v in faces.xyxy[i]) for i, t in enumerate(faces.track_id) if t >= 0}
        decisions = list(labels) if labels is not None else self._read_labels(faces, timestamp)
        events: list[Event] = []
        for _old, new in up.relinked:  # the person of ``old`` goes on: nothing counted again
            self._pending.pop(new, None)
        for d in decisions:
            if d.track_id not in self._counted:
                self._pending[d.track_id] = d  # counted with the label it holds when confirmed
            else:
                events.extend(self._labelled(d, frame_index, boxes.get(d.track_id)))
        for tid in up.confirmed:
            if tid in self._counted:
                continue
            self._counted.add(tid)
            self.totals.people_seen += 1
            iv.people_seen += 1
            events.append(Event("person_seen", tid, timestamp, frame_index, box=boxes.get(tid)))
            pending = self._pending.pop(tid, None)
            if pending is not None:
                events.extend(self._labelled(pending, frame_index, boxes.get(tid), timestamp))
        for tid, box in boxes.items():
            if tid in self._counted:
                self._last_box[tid] = box
        self._add_time(faces, timestamp)
        events.extend(self._ended(up.ended, timestamp, frame_index))
        self._updates += 1
        if self._updates % self.PRUNE_EVERY == 0:
            self._prune(timestamp)
        return events, closed

    PRUNE_EVERY = 256

    def _labelled(self, d: LabelDecision, frame_index: int, box, timestamp: float | None = None) -> list[Event]:
        """The event of decision ``d`` for a counted person: the first label, or a change."""
        ts = d.timestamp if timestamp is None else timestamp
        previous = self._label.get(d.track_id)
        if previous is None:
            self._label[d.track_id] = d.label
            self.totals.by_label[d.label] += 1
            self._interval.by_label[d.label] += 1
            return [Event("label_decided", d.track_id, ts, frame_index, label=d.label,
                          confidence=d.confidence, box=box)]
        if previous == d.label:
            return []
        self._label[d.track_id] = d.label
        self.totals.label_changes += 1
        self._interval.label_changes += 1
        return [Event("label_changed", d.track_id, ts, frame_index, label=d.label,
                      confidence=d.confidence, box=box, previous=previous)]

    def _add_time(self, faces: Faces, timestamp: float) -> None:
        """Person-seconds: the time since the previous frame, for each counted face with a label."""
        prev, self._prev_ts = self._prev_ts, timestamp
        if prev is None or not timestamp > prev:
            return
        dt = min(timestamp - prev, self.max_frame_gap_s)
        iv = self._interval
        for tid in {int(t) for t in faces.track_id if t >= 0}:
            label = self._label.get(tid)
            if label is not None:
                iv.person_s[label] += dt
                self.totals.person_s[label] += dt

    def _read_labels(self, faces: Faces, timestamp: float) -> list[LabelDecision]:
        """Decisions from ``faces.track_label``: an id whose label is new or different."""
        out = []
        for i in range(len(faces)):
            tid, label = int(faces.track_id[i]), int(faces.track_label[i])
            if tid < 0 or label < 0 or self._seen_label.get(tid) == label:
                continue
            previous = self._seen_label.get(tid)
            self._seen_label[tid] = label
            p = faces.probs[i, label]
            out.append(LabelDecision(tid, LABELS[label], None if previous is None else LABELS[previous],
                                     None if math.isnan(p) else float(p), timestamp))
        return out

    def _ended(self, ended, timestamp: float, frame_index: int) -> list[Event]:
        """``track_ended`` for counted tracks the tracker ended; they are forgotten at once (ids are never reused)."""
        out = []
        for tid in ended:
            if tid not in self._counted:
                continue
            self._counted.discard(tid)
            label, box = self._label.pop(tid, None), self._last_box.pop(tid, None)
            self._seen_label.pop(tid, None)
            if self.end_events:
                out.append(Event("track_ended", tid, timestamp, frame_index, label=label, box=box))
        return out

    PENDING_S = 300.0
    """A label decided this long ago for a track never confirmed is dropped (the track is long gone)."""

    def _prune(self, timestamp: float) -> None:
        """Forget pending labels of tracks that never became people, so memory stays flat on long runs."""
        horizon = timestamp - self.PENDING_S
        self._pending = {k: d for k, d in self._pending.items() if d.timestamp >= horizon}

    def use_model(self, description: str | None) -> None:
        """The mask classifier labels with ``description`` (``"name version (sha256 8 hex)"``) from
        the next frame (or tick) on: each summary names the classifiers of its interval, in order
        (``"A -> B"`` when it was swapped during the interval). The first call (before any frame)
        names the model of the first interval.

        >>> from maskwatch.results import Stats
        >>> c = Counter(interval_s=10.0); c.use_model("m 1")
        >>> _ = c.update(Faces.empty(), 0.0, 0, Stats()); c.use_model("m 2")
        >>> c.update(Faces.empty(), 12.0, 1, Stats())[1].model  # swapped on the frame that closes [0, 10)
        'm 1'
        >>> c.use_model("m 3"); c.update(Faces.empty(), 21.0, 2, Stats())[1].model
        'm 2'
        >>> c.flush(22.0, Stats()).model  # the interval opened by that frame: the new model only
        'm 3'
        >>> c = Counter(interval_s=10.0); c.use_model("m 1"); _ = c.update(Faces.empty(), 0.0, 0, Stats())
        >>> c.use_model("m 2"); _ = c.update(Faces.empty(), 5.0, 1, Stats()); c.flush(8.0, Stats()).model
        'm 1 -> m 2'
        """
        if self._interval is None:
            self.model = description
        else:
            self._next_model = description

    def _take_next_model(self) -> None:
        """After the frame or tick has closed what it closed: a swapped-in model joins the open interval."""
        if self._next_model is None:
            return
        self.model, self._next_model = self._next_model, None
        iv = self._interval
        if iv is not None and self.model and (not iv.models or iv.models[-1] != self.model):
            iv.models.append(self.model)

    def tick(self, timestamp: float, stats: Stats) -> IntervalSummary | None:
        """Close the open interval if ``timestamp`` has passed its end, without counting a frame.

        For a pipeline waiting on a reconnecting source: called with the wall clock, it yields one
        (empty, state ``reconnecting``) summary per elapsed interval.
        """
        if self._interval is None or timestamp < self._interval.end:
            self._take_next_model()
            return None
        self._interval.state = stats.source_state
        self._dropped = max(int(stats.dropped_frames), self._dropped)
        self._interval.dropped_last = self._dropped
        iv = self._interval
        summary = iv.summary(iv.end)
        self._interval = _Interval(iv.end, iv.end + self.interval_s, self._dropped, stats.source_state, self._next_model or self.model)
        self._take_next_model()
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
            self._interval = _Interval(start, start + self.interval_s, self._dropped, stats.source_state, self._next_model or self.model)
            return None
        if timestamp < iv.start - self.interval_s and iv.frames:
            # the clock went back by more than an interval (system clock set back, a source
            # restarted its timestamps): close what we have, start again from the new time
            summary = iv.summary(max(iv.last_ts, iv.start))
            self._interval = _Interval(timestamp, timestamp + self.interval_s, self._dropped, stats.source_state, self._next_model or self.model)
            return summary
        if timestamp < iv.end:
            return None
        k = math.floor((timestamp - iv.start) / self.interval_s)
        new_start = iv.start + k * self.interval_s
        summary = iv.summary(new_start)
        self._interval = _Interval(new_start, new_start + self.interval_s, self._dropped, stats.source_state, self._next_model or self.model)
        return summary
