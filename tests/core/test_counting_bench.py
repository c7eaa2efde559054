"""The people-level benchmark's scorer (benchmarks/counting_score.py) on hand-made truth with known answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import counting_score as cs  # noqa: E402

pytest.importorskip("motmetrics")

FPS = 10.0


def truth_row(frame, person, x, label="with_mask", visible=1, size=40):
    return dict(frame=frame, person=person, x1=x, y1=100, x2=x + size, y2=100 + size, label=label, visible=visible)


def box(x, size=40):
    return (x + 1.0, 101.0, x + size + 1.0, 101.0 + size)


def two_people(frames=40):
    """Person 1 at x=100 and person 2 at x=400, in view the whole time."""
    return [r for f in range(frames) for r in (truth_row(f, 1, 100), truth_row(f, 2, 400, "without_mask"))]


def test_perfect_tracks_score_one_and_count_right():
    truth = two_people()
    pred = cs.Prediction(FPS, {f: [(1, box(100), "with_mask"), (2, box(400), "without_mask")] for f in range(40)},
                         [("person_seen", 1, 0, None, None), ("person_seen", 2, 0, None, None)])
    s = cs.score_clip(truth, {1: "person", 2: "person"}, pred)
    assert (s["idf1"], s["num_switches"], s["mota"]) == (1.0, 0, 1.0)
    assert (s["people_true"], s["people_counted"], s["count_error"], s["max_tracks_whole_clip"]) == (2, 2, 0.0, 1)
    assert s["label_accuracy"] == 1.0 and s["spurious_changes"] == 0


def test_an_id_switch_and_a_fragmented_person_are_counted():
    truth = two_people()
    frames = {}
    for f in range(40):
        a = 1 if f < 20 else 3  # person 1's track breaks at frame 20 and a new one takes over
        frames[f] = [(a, box(100), "with_mask"), (2, box(400), "without_mask")]
    events = [("person_seen", 1, 0, None, None), ("person_seen", 2, 0, None, None), ("person_seen", 3, 20, None, None)]
    s = cs.score_clip(truth, {1: "person", 2: "person"}, cs.Prediction(FPS, frames, events))
    assert s["num_switches"] == 1
    assert s["people_counted"] == 3 and s["count_error"] == pytest.approx(0.5)
    assert s["tracks_per_person"] == {1: 2, 2: 1} and s["max_tracks_whole_clip"] == 2
    # IDF1: person 1's 40 frames are split 20/20 between two ids: 60 of 80 truth frames keep their id
    assert s["idf1"] == pytest.approx(0.75)


def test_a_counted_painting_is_an_error_but_not_a_tracking_false_positive():
    truth = [r for f in range(30) for r in (truth_row(f, 1, 100), truth_row(f, 2, 300))]
    frames = {f: [(1, box(100), "with_mask"), (5, box(300), "with_mask")] for f in range(30)}
    events = [("person_seen", 1, 0, None, None), ("person_seen", 5, 0, None, None)]
    s = cs.score_clip(truth, {1: "person", 2: "not_a_person"}, cs.Prediction(FPS, frames, events))
    assert s["counted_not_people"] == 1 and s["people_true"] == 1 and s["people_counted"] == 2
    assert s["precision"] == 1.0 and s["idf1"] == 1.0  # the painting's box is left out of the MOT scores


def test_invisible_truth_is_not_scored_and_a_track_on_it_is_no_false_positive():
    truth = [truth_row(f, 1, 100, visible=int(f < 20 or f >= 30)) for f in range(40)]
    frames = {f: [(1, box(100), "with_mask")] for f in range(40) if f < 20 or f >= 25}  # lost for 5 of the 10 hidden frames
    s = cs.score_clip(truth, {1: "person"}, cs.Prediction(FPS, frames, [("person_seen", 1, 0, None, None)]))
    assert (s["recall"], s["precision"], s["idf1"]) == (1.0, 1.0, 1.0)


def test_mask_off_delay_spurious_changes_and_label_accuracy():
    # with_mask until frame 49, taken off over 50-54, without_mask from 55 on
    labels = ["with_mask"] * 50 + ["transition"] * 5 + ["without_mask"] * 45
    truth = [truth_row(f, 1, 100, labels[f]) for f in range(100)]
    app = ["with_mask"] * 80 + ["without_mask"] * 20  # the app changes at frame 80: 3.0 s after 50
    frames = {f: [(1, box(100), app[f])] for f in range(100)}
    events = [("person_seen", 1, 0, None, None), ("label_decided", 1, 0, "with_mask", None),
              ("label_changed", 1, 80, "without_mask", "with_mask")]
    s = cs.score_clip(truth, {1: "person"}, cs.Prediction(FPS, frames, events))
    assert s["mask_off"] == [{"person": 1, "frame": 50, "delay_s": 3.0}]
    assert s["spurious_changes"] == 0 and s["first_label_accuracy"] == 1.0
    # frames scored: 50 with_mask right, 45 without_mask of which 20 right (transition frames not scored)
    assert s["label_accuracy"] == pytest.approx(70 / 95, abs=1e-4)

    masked = [truth_row(f, 1, 100) for f in range(100)]  # never takes it off: a change to without is spurious
    s = cs.score_clip(masked, {1: "person"}, cs.Prediction(FPS, frames, events))
    assert s["spurious_changes"] == 1 and s["spurious_changes_masked"] == 1 and s["mask_off"] == []


def test_interval_masked_share_error_against_the_truth():
    truth = [r for f in range(20) for r in (truth_row(f, 1, 100), truth_row(f, 2, 400, "without_mask"))]
    pred = cs.Prediction(FPS, {f: [(1, box(100), "with_mask")] for f in range(20)}, [("person_seen", 1, 0, None, None)],
                         intervals=[(0.0, 1.0, 0.5), (1.0, 2.0, 0.8)])
    s = cs.score_clip(truth, {1: "person", 2: "person"}, pred)
    assert s["interval_compliance_mae"] == pytest.approx((0.0 + 0.3) / 2)
