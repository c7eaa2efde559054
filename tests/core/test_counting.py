"""Counter: each person once, labels once, intervals cut by timestamp, gaps, flush."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.config import TrackerConfig
from maskwatch.counting import Counter
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.results import Stats
from tracking_driver import Driver as Tracker


def tracked(*rows) -> Faces:
    """Faces from (track_id, track_label) pairs."""
    n = len(rows)
    return Faces(
        xyxy=np.tile(np.array([[10, 10, 50, 50]], np.float32), (n, 1)),
        score=np.full(n, 0.9, np.float32),
        probs=np.tile(np.array([[0.7, 0.2, 0.1]], np.float32), (n, 1)),
        track_id=np.array([r[0] for r in rows], np.int64),
        track_label=np.array([r[1] for r in rows], np.int64),
    )


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_events_once_per_track():
    counter = Counter(interval_s=60, min_hits=3)
    kinds = []
    # track 1: seen 5 frames, decided with_mask on frame 3, later flips to without_mask and back:
    #          label_changed each time, the person and the first label not counted again
    # track 2: one-frame false positive, never counted
    # track 3: label decided on its first frame, but a label waits for min_hits: on its third frame
    #          person_seen and label_decided come together
    frames = [
        [(1, -1), (2, -1)],
        [(1, -1)],
        [(1, -1), (3, 2)],
        [(1, 0), (3, 2)],
        [(1, 1), (3, 2)],
        [(1, 0)],
    ]
    for i, rows in enumerate(frames):
        events, summary = counter.update(tracked(*rows), 100.0 + i, i, Stats())
        assert summary is None
        kinds.append([(e.kind, e.track_id, e.label) for e in events])
    assert kinds == [
        [],
        [],
        [("person_seen", 1, None)],
        [("label_decided", 1, "with_mask")],
        [("label_changed", 1, "without_mask"), ("person_seen", 3, None), ("label_decided", 3, "mask_worn_incorrectly")],
        [("label_changed", 1, "with_mask")],
    ]
    t = counter.totals
    assert t.people_seen == 2
    assert t.by_label == {"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 1}
    assert t.compliance_rate == 0.5


def test_event_fields():
    counter = Counter(min_hits=1)
    events, _ = counter.update(tracked((4, 0)), 123.5, 77, Stats())
    seen, decided = events
    assert (seen.kind, seen.track_id, seen.timestamp, seen.frame_index, seen.box) == ("person_seen", 4, 123.5, 77, (10.0, 10.0, 50.0, 50.0))
    assert (decided.label, decided.confidence) == ("with_mask", pytest.approx(0.7))  # frame prob without tracks


def test_confidence_from_tracks_is_share_of_votes():
    tracker = Tracker(TrackerConfig(vote_window=10, min_votes=4, max_age=5, min_hits=1))
    counter = Counter(min_hits=1)
    decided = []
    for i, lab in enumerate([0, 1, 0, 0, 0]):
        p = np.full((1, 3), 0.1, np.float32)
        p[0, lab] = 0.8
        faces = tracker.update(Faces(xyxy=np.array([[10, 10, 50, 50]]), score=np.array([0.9]), probs=p), i)
        events, _ = counter.update(faces, 100.0 + i, i, Stats(), track_update=tracker.last, labels=tracker.decisions)
        decided += [e for e in events if e.kind == "label_decided"]
    assert len(decided) == 1
    assert decided[0].label == "with_mask" and decided[0].confidence == pytest.approx(3 / 4)  # decided on its 4th vote


def test_intervals_cut_by_timestamp_and_flush():
    clock = FakeClock()
    counter = Counter(interval_s=10, min_hits=1, clock=clock)
    summaries = []
    # 1 frame per second from t=100 to t=124 (25 frames); track i // 4 changes every 4 frames
    for i in range(25):
        clock.t += 0.05  # 20 fps processing
        stats = Stats(fps=20.0, dropped_frames=i // 5, source_state=SourceState.LIVE)
        _, summary = counter.update(tracked((i // 4 + 1, 0)), 100.0 + i, i, stats)
        if summary is not None:
            summaries.append((i, summary))
    assert [i for i, _ in summaries] == [10, 20]
    s0, s1 = summaries[0][1], summaries[1][1]
    assert (s0.start, s0.end, s1.start, s1.end) == (100.0, 110.0, 110.0, 120.0)
    assert (s0.frames, s0.faces, s1.frames) == (10, 10, 10)
    # tracks 1..3 start at frames 0, 4, 8 -> 3 in the first interval; 4, 5 start at 12, 16 -> 2
    assert (s0.people_seen, s1.people_seen) == (3, 2)
    assert s0.by_label["with_mask"] == 3 and s1.by_label["with_mask"] == 2
    assert s0.fps == pytest.approx(20.0) and s0.compliance_rate == 1.0
    # cumulative dropped 0,0,0,0,0,1,..,1 (frames 0-9 -> 0..1) then frames 10..19 -> 2..3
    assert s0.dropped_frames == 1 and s1.dropped_frames == 2
    assert s0.source_state is SourceState.LIVE

    last = counter.flush(124.5, Stats(dropped_frames=4, source_state=SourceState.ENDED))
    assert (last.start, last.end, last.frames, last.people_seen) == (120.0, 124.5, 5, 2)
    assert last.dropped_frames == 1
    assert counter.flush(125.0, Stats()) is None  # nothing left
    assert counter.totals.people_seen == 7 and counter.totals.by_label["with_mask"] == 7
    # every person is in exactly one interval
    assert s0.people_seen + s1.people_seen + last.people_seen == counter.totals.people_seen


def test_flush_without_frames_is_none():
    assert Counter().flush(10.0, Stats()) is None


def test_gap_gives_one_row_covering_it_and_rows_stay_contiguous():
    counter = Counter(interval_s=10, min_hits=1)
    counter.update(tracked((1, -1)), 100.0, 0, Stats(source_state=SourceState.LIVE))
    counter.update(tracked((1, -1)), 105.0, 1, Stats(source_state=SourceState.RECONNECTING))
    _, s = counter.update(tracked((1, -1)), 147.0, 2, Stats(source_state=SourceState.LIVE))
    assert (s.start, s.end, s.frames) == (100.0, 140.0, 2)
    assert s.source_state is SourceState.RECONNECTING  # last state seen in it
    last = counter.flush(148.0, Stats())
    assert (last.start, last.end, last.frames) == (140.0, 148.0, 1)


def test_tick_closes_empty_intervals_one_by_one():
    counter = Counter(interval_s=10, min_hits=1)
    counter.update(tracked((1, 0)), 100.0, 0, Stats())
    reconnecting = Stats(source_state=SourceState.RECONNECTING)
    assert counter.tick(105.0, reconnecting) is None
    rows = []
    while (s := counter.tick(131.0, reconnecting)) is not None:
        rows.append(s)
    assert [(r.start, r.end, r.frames) for r in rows] == [(100.0, 110.0, 1), (110.0, 120.0, 0), (120.0, 130.0, 0)]
    assert all(r.source_state is SourceState.RECONNECTING for r in rows)
    _, s = counter.update(tracked((1, 0)), 141.0, 1, Stats())
    assert (s.start, s.end, s.frames) == (130.0, 140.0, 0)
    assert counter.flush(142.0, Stats()).start == 140.0


def test_align_to_clock():
    counter = Counter(interval_s=60, align_to_clock=True)
    counter.update(tracked(), 1_000_030.0, 0, Stats())
    s = counter.flush(1_000_031.0, Stats())
    assert s.start == 1_000_020.0 and s.end == 1_000_031.0  # 16667 whole minutes


def test_bad_interval():
    with pytest.raises(ValueError):
        Counter(interval_s=0)


def test_tracker_and_counter_count_one_person_through_missed_detections():
    """One walker, detector misses 1 frame in 4, classifier flickers: one person, one label."""
    tracker = Tracker(TrackerConfig(vote_window=15, min_votes=5, max_age=30, min_hits=3))
    counter = Counter(interval_s=60, min_hits=3)
    events = []
    for i in range(100):
        if i % 4 == 3:
            faces = Faces.empty()
        else:
            p = np.array([[0.2, 0.7, 0.1]] if i % 5 == 0 else [[0.8, 0.15, 0.05]], np.float32)
            faces = Faces(xyxy=np.array([[100 + 3 * i, 200, 140 + 3 * i, 250]]), score=np.array([0.9]), probs=p)
        faces = tracker.update(faces, i)
        ev, _ = counter.update(faces, 1000.0 + i / 25, i, Stats(), track_update=tracker.last, labels=tracker.decisions)
        events += ev
    assert [(e.kind, e.track_id, e.label) for e in events] == [("person_seen", 1, None), ("label_decided", 1, "with_mask")]
    assert counter.totals.people_seen == 1


def test_predicted_frames_do_not_make_a_false_positive_a_person():
    """Detector every 3rd frame: a face detected once is predicted on 2 more frames; not counted."""
    tracker = Tracker(TrackerConfig(min_hits=3))
    counter = Counter(min_hits=3)
    events = []
    for i in range(12):
        if i % 3 == 0:
            boxes = [[10, 10, 50, 50]] + ([[200, 200, 240, 240]] if i == 0 else [])  # the 2nd: one-frame false positive
            faces = tracker.update(Faces(xyxy=np.array(boxes, np.float32), score=np.full(len(boxes), 0.9),
                                         probs=np.full((len(boxes), 3), np.nan, np.float32)), i)
        else:
            faces = tracker.predict(i)
        ev, _ = counter.update(faces, 100.0 + i, i, Stats(), track_update=tracker.last, labels=tracker.decisions)
        events += [(e.kind, e.track_id, e.frame_index) for e in ev]
    assert events == [("person_seen", 1, 6)]  # third detector match of track 1


def test_pruning_forgets_finished_ids_but_never_recounts_live_ones():
    tracker = Tracker(TrackerConfig(vote_window=5, min_votes=2, max_age=2, min_hits=1))
    counter = Counter(min_hits=1)
    counter.PRUNE_EVERY = 4
    seen = []
    for i in range(40):
        boxes = [[10, 10, 50, 50]]  # one person present the whole time
        if i < 3:
            boxes.append([300, 300, 340, 340])  # another who leaves at frame 3
        faces = tracker.update(Faces(xyxy=np.array(boxes, np.float32), score=np.full(len(boxes), 0.9),
                                     probs=np.tile(np.array([[0.8, 0.1, 0.1]], np.float32), (len(boxes), 1))), i)
        ev, _ = counter.update(faces, 100.0 + i, i, Stats(), track_update=tracker.last, labels=tracker.decisions)
        seen += [(e.kind, e.track_id) for e in ev]
    assert sorted(seen) == [("label_decided", 1), ("label_decided", 2), ("person_seen", 1), ("person_seen", 2)]
    assert counter.totals.people_seen == 2
    assert counter._counted == {1} and set(counter._label) == {1}  # id 2 finished and forgotten


def test_min_track_score_skips_weak_persistent_tracks():
    counter = Counter(min_hits=2, min_track_score=0.65)
    events = []
    for i, (s1, s2) in enumerate([(0.55, 0.6), (0.55, 0.7), (0.58, 0.6), (0.55, 0.6)]):
        faces = tracked((1, 0 if i >= 1 else -1), (2, 0 if i >= 1 else -1))
        faces.score = np.array([s1, s2], np.float32)
        ev, _ = counter.update(faces, 100.0 + i, i, Stats())
        events += [(e.kind, e.track_id, e.frame_index) for e in ev]
    # track 1 never reaches 0.65: neither seen nor decided; track 2 counted at its 0.7 frame
    assert events == [("person_seen", 2, 1), ("label_decided", 2, 1)]
    assert counter.totals.people_seen == 1 and counter.totals.decided == 1


def test_clock_going_back_closes_interval_and_restarts():
    counter = Counter(interval_s=10, min_hits=1)
    counter.update(tracked((1, -1)), 1000.0, 0, Stats())
    counter.update(tracked((1, -1)), 1004.0, 1, Stats())
    _, s = counter.update(tracked((1, -1)), 500.0, 2, Stats())  # clock set back
    assert (s.start, s.end, s.frames) == (1000.0, 1004.0, 2)
    _, s = counter.update(tracked((1, -1)), 505.0, 3, Stats())  # small steps back/forth stay in the interval
    assert s is None
    last = counter.flush(506.0, Stats())
    assert (last.start, last.end, last.frames) == (500.0, 506.0, 2)
    assert counter.totals.people_seen == 1
