"""Trackers: stable ids over moving sequences, crossings, gaps, predict(); the votes on their ids.

``Driver`` replays the frame-indexed calls these tests were written with on the tracker contract
(the frames between two indexes are ``predict()`` calls, as the pipeline makes them), and feeds
each ``TrackUpdate`` to :class:`~maskwatch.votes.LabelVotes` (``change_after_s = 0``: the label
follows the window's majority at once, the behaviour these vote tests pin down).
"""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch import LABELS
from maskwatch.config import TrackerConfig
from maskwatch.faces import Faces
from maskwatch.boxes import box_iou
from tracking_driver import Driver

WITH, WITHOUT, INCORRECT = range(3)


def probs_for(label: int | None, p: float = 0.8) -> np.ndarray:
    """A probability row whose argmax is ``label``; NaN row for ``None`` (not classified)."""
    if label is None:
        return np.full(3, np.nan, np.float32)
    row = np.full(3, (1 - p) / 2, np.float32)
    row[label] = p
    return row


def faces_at(boxes, labels=None) -> Faces:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = labels if labels is not None else [WITH] * len(boxes)
    return Faces(xyxy=boxes, score=np.full(len(boxes), 0.9, np.float32),
                 probs=np.stack([probs_for(lab) for lab in labels]) if len(boxes) else None)


def Tracker(config: TrackerConfig = TrackerConfig()) -> Driver:  # noqa: N802 - reads like the old class
    return Driver(config)


def box(cx, cy, size):
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def test_box_iou_matrix():
    iou = box_iou(np.array([[0, 0, 10, 10], [0, 0, 20, 20]]), np.array([[0, 0, 10, 10], [10, 10, 20, 20], [30, 30, 40, 40]]))
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1.0, 0.0, 0.0], [0.25, 0.25, 0.0]])


def test_ids_stable_over_moving_sequence_and_same_faces_returned():
    tracker = Tracker()
    seen = []
    for i in range(40):
        f = faces_at([box(50 + 4 * i, 100, 40), box(400 - 3 * i, 300, 60)])
        out = tracker.update(f, frame_index=i)
        assert out is f  # same object, same order
        seen.append(out.track_id.tolist())
    assert all(ids == seen[0] for ids in seen)
    assert len(set(seen[0])) == 2 and min(seen[0]) >= 1
    assert len(tracker.tracks) == 2


def test_small_fast_face_is_followed_by_centre_distance():
    # a 12 px face moving 10 px per frame: consecutive boxes overlap with IoU ~0.09 only
    tracker = Tracker()
    ids = set()
    for i in range(20):
        f = tracker.update(faces_at([box(20 + 10 * i, 50, 12)]), frame_index=i)
        ids.add(int(f.track_id[0]))
    assert ids == {1}


def test_detector_every_third_frame_keeps_id_of_walker():
    # detections only every 3rd frame, 20 px face moving 8 px/frame (24 px between detections):
    # no overlap at all between detections; the constant-velocity prediction keeps the match
    tracker = Tracker()
    ids = set()
    for i in range(0, 60, 3):
        f = tracker.update(faces_at([box(30 + 8 * i, 80, 20)]), frame_index=i)
        ids.add(int(f.track_id[0]))
    assert ids == {1}


def test_two_crossing_faces_keep_their_ids():
    tracker = Tracker()
    first = None
    for i in range(30):
        a = box(100 + 10 * i, 200, 50)  # left to right
        b = box(400 - 10 * i, 230, 50)  # right to left, crossing around i = 15
        f = tracker.update(faces_at([a, b]), frame_index=i)
        if first is None:
            first = f.track_id.tolist()
        assert f.track_id.tolist() == first, f"ids swapped at frame {i}"
    # order of detections within a frame does not matter
    f = tracker.update(faces_at([box(400 - 10 * 30, 230, 50), box(100 + 10 * 30, 200, 50)]), frame_index=30)
    assert f.track_id.tolist() == first[::-1]


def test_far_detection_starts_new_track():
    tracker = Tracker()
    tracker.update(faces_at([box(100, 100, 40)]), 0)
    f = tracker.update(faces_at([box(100, 100, 40), box(500, 400, 40)]), 1)
    assert f.track_id.tolist() == [1, 2]


def test_very_different_size_is_not_matched():
    tracker = Tracker()
    tracker.update(faces_at([box(100, 100, 20)]), 0)
    f = tracker.update(faces_at([box(100, 100, 80)]), 1)
    assert f.track_id.tolist() == [2]


def test_gap_within_max_age_keeps_id_and_longer_gap_finishes_track():
    tracker = Tracker(TrackerConfig(vote_window=15, min_votes=5, max_age=10, min_hits=3))
    for i in range(5):
        f = tracker.update(faces_at([box(100 + 2 * i, 100, 40)]), i)
    assert tracker.confirmed == [1]  # on its 3rd hit
    for i in range(5, 15):  # missed detections for 10 frames (== max_age)
        tracker.update(Faces.empty(), i)
    assert tracker.ended == [] and tracker.last.live == (1,)
    f = tracker.update(faces_at([box(130, 100, 40)]), 15)
    assert f.track_id.tolist() == [1]
    assert tracker.tracks[0].hits == 6 and tracker.tracks[0].first_frame == 0 and tracker.tracks[0].last_frame == 15

    tracker.update(Faces.empty(), 26)  # 11 frames unseen > max_age
    assert tracker.ended == [1] and tracker.last.live == ()
    assert tracker.tracks == [] and tracker.confirmed == [1]
    f = tracker.update(faces_at([box(130, 100, 40)]), 27)
    assert f.track_id.tolist() == [2]  # ids are never reused


def test_flicker_vote_keeps_with_mask():
    tracker = Tracker(TrackerConfig(vote_window=15, min_votes=5, max_age=30))
    # mostly with_mask, every 3rd frame without_mask, and some frames not classified at all
    labels = []
    for i in range(60):
        per_frame = None if i % 7 == 6 else (WITHOUT if i % 3 == 2 else WITH)
        f = tracker.update(faces_at([box(200 + i, 150, 50)], labels=[per_frame]), i)
        labels.append(int(f.track_label[0]))
    decided_at = next(i for i, lab in enumerate(labels) if lab >= 0)
    assert decided_at >= 4  # needs min_votes classified frames first
    assert labels[:decided_at] == [-1] * decided_at
    assert set(labels[decided_at:]) == {WITH}
    tid = tracker.tracks[0].id
    votes = tracker.votes.counts(tid)
    assert tracker.votes.label(tid) == WITH and LABELS[tracker.votes.label(tid)] == "with_mask"
    assert votes.sum() == 15 and votes[WITH] > votes[WITHOUT] > 0
    assert tracker.votes.confidence(tid) == pytest.approx(votes[WITH] / 15)


def test_label_undecided_until_min_votes_and_nan_rows_do_not_vote():
    tracker = Tracker(TrackerConfig(vote_window=15, min_votes=5, max_age=30))
    for i in range(10):
        lab = WITHOUT if i % 2 == 0 else None  # 5 classified frames out of 10
        f = tracker.update(faces_at([box(100, 100, 40)], labels=[lab]), i)
        assert f.track_label[0] == (WITHOUT if i == 8 or i == 9 else -1), i
    assert tracker.votes.counts(tracker.tracks[0].id).sum() == 5


def test_label_changes_only_on_a_real_majority():
    tracker = Tracker(TrackerConfig(vote_window=6, min_votes=3, max_age=30))
    seq = [WITH] * 6 + [INCORRECT] * 3 + [INCORRECT] * 3
    out = [int(tracker.update(faces_at([box(100, 100, 40)], labels=[lab]), i).track_label[0]) for i, lab in enumerate(seq)]
    assert out[2:9] == [WITH] * 7  # a 3-3 tie keeps the decided label
    assert out[9:] == [INCORRECT] * 3  # a 2-4 majority changes it


def test_predict_moves_visible_tracks_without_voting():
    tracker = Tracker()
    for i in range(0, 9, 3):  # detector every 3 frames, face moving 6 px per frame
        tracker.update(faces_at([box(100 + 6 * i, 100, 40)]), i)
    votes_before = tracker.votes.counts(1).sum()
    p = tracker.predict(7)
    assert p.track_id.tolist() == [1]
    np.testing.assert_allclose(p.xyxy[0], box(100 + 6 * 7, 100, 40), atol=1e-3)
    assert np.isnan(p.probs).all() and p.score.tolist() == [0.0]
    assert tracker.votes.counts(1).sum() == votes_before
    # a track missed on the last detector frame is not drawn in between
    tracker.update(faces_at([box(600, 400, 40)]), 9)
    assert tracker.predict(10).track_id.tolist() == [2]
    assert len(tracker.tracks) == 2


def test_predict_before_any_update_and_empty_frames():
    tracker = Tracker()
    assert len(tracker.predict(0)) == 0
    f = tracker.update(Faces.empty(), 0)
    assert len(f) == 0 and f.track_id.shape == (0,)


def test_labels_name_matches_label_order():
    assert LABELS[WITH] == "with_mask" and LABELS[WITHOUT] == "without_mask" and LABELS[INCORRECT] == "mask_worn_incorrectly"


def test_only_confirmed_tracks_end_and_nothing_is_kept_of_finished_ones():
    tracker = Tracker(TrackerConfig(max_age=0, min_hits=2))
    for i in range(50):  # a new face far away every other frame, each finishes the next frame
        tracker.update(faces_at([box(60 * (i % 10) + 30, 100 + 50 * (i % 2), 20)]), i * 2)
    assert tracker.ended == [] and tracker.confirmed == []  # one hit each: never people
    assert len(tracker.tracks) == 1
    for i in range(100, 103):
        tracker.update(faces_at([box(300, 300, 40)]), i)
    tracker.update(Faces.empty(), 104)
    assert tracker.confirmed == [51] and tracker.ended == [51] and tracker.tracks == []


def test_track_score_mean_and_max():
    tracker = Tracker()
    for i, s in enumerate([0.6, 0.8, 0.7]):
        f = faces_at([box(100, 100, 40)])
        f.score = np.array([s], np.float32)
        tracker.update(f, i)
    t = tracker.tracks[0]
    assert t.hits == 3 and t.score == pytest.approx(0.7) and t.max_score == pytest.approx(0.8)


def test_prediction_is_capped_and_keeps_positive_size():
    tracker = Tracker(TrackerConfig(max_age=100))
    tracker.update(faces_at([[100, 100, 140, 140]]), 0)
    tracker.update(faces_at([[110, 100, 146, 136]]), 1)  # moving right 10 px/frame and shrinking 4 px/frame
    t = tracker.tracks[0]
    far = t.predicted_box(1000)
    assert far[2] > far[0] and far[3] > far[1]
    np.testing.assert_allclose(far, t.predicted_box(1 + 10))  # no further than 10 frames ahead
    assert (far[0] + far[2]) / 2 == pytest.approx(128 + 10 * 8)
