"""The ``byte`` tracker: two-stage association with low-score boxes, Kalman prediction through
gaps and crossings, camera motion, re-link by colour counted once, reset after an outage; and the
generic tracker behaviour for every kind. Frames with pixels are drawn as in test_tracker_reid."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.config import TrackerConfig
from maskwatch.faces import Faces
from maskwatch.frames import Frame
from maskwatch.tracking import make_tracker
from maskwatch.tracking.motion import AutoCameraMotion, CameraMotion
from test_tracker_reid import FPS, H, W, Run, background, draw_person
from tracking_driver import Driver

KINDS = ["centroid", "reid", "byte"]


def box(cx, cy, size):
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def faces(boxes, scores=None) -> Faces:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return Faces(boxes, scores)


# -- generic behaviour, every kind -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_crossing_faces_keep_their_ids(kind):
    d = Driver(TrackerConfig(min_hits=3), kind=kind)
    first = None
    for i in range(30):
        out = d.update(faces([box(100 + 10 * i, 200, 50), box(400 - 10 * i, 230, 50)]), i)
        first = first or out.track_id.tolist()
        assert out.track_id.tolist() == first, f"ids swapped at frame {i}"
    assert sorted(d.confirmed) == sorted(first) and len(set(first)) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_small_fast_face_and_detector_every_third_frame(kind):
    # 12 px face, 10 px a frame (IoU ~0.09 between frames); then a 20 px face seen every 3rd frame, 8 px a frame
    d = Driver(kind=kind)
    assert {int(d.update(faces([box(20 + 10 * i, 50, 12)]), i).track_id[0]) for i in range(20)} == {1}
    d = Driver(kind=kind)
    assert {int(d.update(faces([box(30 + 8 * i, 80, 20)]), i).track_id[0]) for i in range(0, 60, 3)} == {1}


@pytest.mark.parametrize("kind", KINDS)
def test_short_occlusion_keeps_the_id_and_a_long_one_ends_the_person(kind):
    d = Driver(TrackerConfig(min_hits=3, max_age=10, relink_s=0.0), kind=kind)
    for i in range(8):
        d.update(faces([box(100 + 3 * i, 100, 40)]), i)
    for i in range(8, 16):  # hidden for 8 frames (< max_age), still walking
        d.update(Faces.empty(), i)
    assert d.ended == [] and d.last.live == (1,)
    assert d.update(faces([box(100 + 3 * 16, 100, 40)]), 16).track_id.tolist() == [1]
    for i in range(17, 30):
        d.update(Faces.empty(), i)
    assert d.ended == [1] and d.last.live == ()
    assert d.update(faces([box(148, 100, 40)]), 30).track_id.tolist() == [2]  # ids are never reused


@pytest.mark.parametrize("kind", KINDS)
def test_predict_moves_tracks_seen_on_the_last_detector_frame(kind):
    d = Driver(kind=kind)
    for i in range(0, 30, 3):
        d.update(faces([box(100 + 6 * i, 100, 40)]), i)
    p = d.predict(29)
    assert p.track_id.tolist() == [1] and p.score.tolist() == [0.0] and np.isnan(p.probs).all()
    assert abs((p.xyxy[0, 0] + p.xyxy[0, 2]) / 2 - (100 + 6 * 29)) < 6  # within a step of the truth


# -- byte: low-score boxes ----------------------------------------------------------------------------


def test_low_score_boxes_keep_a_person_but_never_start_one():
    tracker = make_tracker(TrackerConfig(kind="byte", min_hits=3, max_age=3, relink_s=0.0))
    for i in range(5):
        up = tracker.update(faces([box(100 + 2 * i, 100, 40)], [0.9]))
    assert up.live == (1,)
    for i in range(5, 25):  # the head turns: only low scores (0.35) for 20 frames, far beyond max_age
        up = tracker.update(faces([box(100 + 2 * i, 100, 40), box(500, 300, 40)], [0.35, 0.35]))
        assert up.faces.track_id.tolist() == [1]  # the stray low box (matched to nobody) is dropped
        assert up.faces.score.tolist() == pytest.approx([0.35])
        assert up.ended == () and up.confirmed == ()
    assert [t.id for t in tracker.tracks] == [1]  # no track was started by a low box
    # low boxes alone, never above the gate: never a person, never a track
    fresh = make_tracker(TrackerConfig(kind="byte", min_hits=1))
    for _ in range(10):
        up = fresh.update(faces([box(300, 300, 40)], [0.45]))
        assert len(up.faces) == 0 and up.confirmed == () and fresh.tracks == []


def test_low_score_boxes_do_not_confirm_a_tentative_track():
    tracker = make_tracker(TrackerConfig(kind="byte", min_hits=3))
    tracker.update(faces([box(100, 100, 40)], [0.9]))  # one sure box: tentative
    for _ in range(5):
        up = tracker.update(faces([box(100, 100, 40)], [0.35]))
        assert len(up.faces) == 0 and up.confirmed == ()


def test_high_score_is_the_detector_gate():
    tracker = make_tracker(TrackerConfig(kind="byte", min_hits=1))
    tracker.high_score = 0.7
    assert tracker.update(faces([box(100, 100, 40)], [0.6])).confirmed == ()
    assert tracker.update(faces([box(300, 100, 40)], [0.8])).confirmed == (1,)  # the low box started nothing


# -- byte: occlusion and crossing with the Kalman state -----------------------------------------------


def test_a_walker_hidden_behind_a_pillar_keeps_the_id_where_the_kalman_state_expects_them():
    tracker = make_tracker(TrackerConfig(kind="byte", min_hits=3, max_age=30))
    ids = []
    for i in range(40):
        visible = not 15 <= i < 24  # 9 frames behind the pillar, walking on at 6 px a frame (> face size in total)
        b = [box(100 + 6 * i, 200, 30), box(500, 100, 30)] if visible else [box(500, 100, 30)]
        ids.append(tracker.update(faces(b)).faces.track_id.tolist())
    assert ids[-1] == [1, 2] and ids[14] == [1, 2] and ids[20] == [2]
    assert {t.id for t in tracker.tracks} == {1, 2}


def test_two_people_crossing_with_one_hidden_at_the_crossing():
    tracker = make_tracker(TrackerConfig(kind="byte", min_hits=3, max_age=30))
    out = []
    for i in range(30):
        a, b = box(100 + 10 * i, 200, 40), box(400 - 10 * i, 210, 40)
        boxes = [a, b] if not 13 <= i <= 17 else [b]  # a is behind b while they cross
        out.append(tracker.update(faces(boxes)).faces.track_id.tolist())
    assert out[0] == [1, 2] and out[-1] == [1, 2] and all(row[-1] == 2 for row in out)


# -- byte: camera motion ------------------------------------------------------------------------------


def _pan_ids(camera_motion):
    scene = background()
    people = [np.array([700, 300, 720, 322.0]), np.array([900, 420, 960, 486.0])]
    run = Run("byte", camera_motion=camera_motion)
    ids, x = [], 0.0
    for i in range(40):
        x += 24 if i % 10 < 5 else 4  # the pan speeds up and slows down: constant velocity cannot follow
        frame = scene[200:200 + H, int(x):int(x) + W].copy()
        boxes = [p - [x, 200, x, 200] for p in people]
        for b, colour in zip(boxes, [(40, 40, 200), (200, 60, 30)]):
            draw_person(frame, b, colour)
        ids.append(run.step(frame, boxes))
    return ids, run


@pytest.mark.parametrize("camera_motion", [True, "auto"])
def test_a_pan_keeps_ids_with_camera_motion_compensation(camera_motion):
    ids, run = _pan_ids(camera_motion)
    assert all(row == ids[0] for row in ids) and len(run.seen()) == 2


def test_without_compensation_the_same_pan_breaks_the_tracks():
    ids, _ = _pan_ids(False)
    assert len({i for row in ids for i in row}) > 2


def test_auto_camera_motion_stays_off_for_a_fixed_camera_and_follows_a_pan():
    scene = background(7)
    auto = AutoCameraMotion(CameraMotion(width=320), probe_every=5, hold=5)
    looked = 0
    for _ in range(30):  # a fixed camera: probed on 2 frames of every 5, never compensated
        looked += auto.wants_frame()
        assert auto.estimate(scene[100:460, 100:740]) is None
    assert not auto.moving and looked == 12
    for i in range(1, 10):
        m = auto.estimate(scene[100:460, 100 + 12 * i:740 + 12 * i])
    assert auto.moving and m[0, 2] == pytest.approx(-12, abs=1.5)
    for _ in range(6):  # still again for `hold` frames: back to probing
        auto.estimate(scene[100:460, 208:848])
    assert not auto.moving


# -- byte: re-link and reset, counted through Counter + LabelVotes -----------------------------------


def test_a_person_back_after_a_gap_is_relinked_and_counted_once():
    scene = background(1)[:H, :W]
    run = Run("byte", max_age=5, relink_s=5.0)
    face = [300, 100, 340, 150]
    for _ in range(12):
        img = scene.copy()
        draw_person(img, face, (30, 160, 230))
        run.step(img, [face])
    for _ in range(40):  # 1.6 s away (> max_age)
        run.step(scene.copy(), [])
    assert run.last.ended == () and 1 in run.last.live
    moved = [330, 104, 370, 154]
    ups = []
    for _ in range(6):
        img = scene.copy()
        draw_person(img, moved, (30, 160, 230))
        run.step(img, [moved])
        ups.append(run.last)
    assert [u.relinked for u in ups if u.relinked] == [((1, 2),)]
    assert ups[-1].faces.track_id.tolist() == [1]
    assert run.seen() == [1] and run.counter.totals.people_seen == 1
    assert run.votes.label(1) == 0 and run.counter.totals.by_label["with_mask"] == 1


def test_someone_else_in_the_same_place_is_a_new_person():
    scene = background(2)[:H, :W]
    run = Run("byte", max_age=5, relink_s=5.0)
    face = [300, 100, 340, 150]
    for colour, frames in (((30, 160, 230), 12), (None, 20), ((200, 40, 40), 12)):
        for _ in range(frames):
            img = scene.copy()
            if colour is not None:
                draw_person(img, face, colour)
            run.step(img, [face] if colour is not None else [])
    assert run.seen() == [1, 2]


def test_a_lost_person_ends_once_after_relink_s():
    scene = background(3)[:H, :W]
    run = Run("byte", max_age=2, relink_s=1.0)
    for _ in range(5):
        img = scene.copy()
        draw_person(img, [100, 100, 140, 150], (30, 160, 230))
        run.step(img, [[100, 100, 140, 150]])
    for _ in range(40):
        run.step(scene.copy(), [])
    ends = [e for e in run.events if e.kind == "track_ended"]
    assert [e.track_id for e in ends] == [1]
    assert 4 + 2 + FPS * 1.0 <= ends[0].frame_index <= 4 + 2 + FPS * 1.0 + 2


def test_after_a_reconnect_people_are_relinked_never_counted_twice():
    scene = background(4)[:H, :W]
    run = Run("byte", max_age=30)
    before = [[100, 100, 140, 150], [400, 120, 436, 165]]
    colours = [(30, 160, 230), (200, 60, 30)]

    def frame(boxes):
        img = scene.copy()
        for b, c in zip(boxes, colours):
            draw_person(img, b, c)
        return img

    for _ in range(10):
        run.step(frame(before), before)
    run.tracker.reset()
    assert all(t.mean[4:].tolist() == [0.0] * 4 for t in run.tracker._lost.values())  # no velocity survives
    run.i += int(30 * FPS)  # the outage took 30 s of frame time: longer than relink_s, still re-linkable
    after = [[104, 98, 144, 148], [396, 124, 432, 169]]
    for _ in range(10):
        ids = run.step(frame(after), after)
    assert sorted(ids) == [1, 2]
    assert run.seen() == [1, 2] and run.counter.totals.people_seen == 2
    assert [e for e in run.events if e.kind == "track_ended"] == []


def test_the_motion_gated_detector_forgets_faces_from_before_an_outage():
    from maskwatch.detection.motion import MotionGatedDetector

    class Seen:
        """A whole-frame detector that finds one face while the frame is bright, none once dark."""

        calls = 0

        def detect(self, bgr):
            self.calls += 1
            return faces([box(160, 120, 40)]) if bgr.mean() > 50 else Faces.empty()

        def detect_at(self, bgr, scale):
            return self.detect(bgr)

        def input_size(self, w, h):
            return w, h, 1.0

        def close(self):
            pass

    inner = Seen()
    gate = MotionGatedDetector(inner, full_every=50)
    bright = np.full((240, 320, 3), 120, np.uint8)
    for _ in range(10):
        assert len(gate.detect(bright)) == 1
    calls = inner.calls
    assert len(gate.detect(bright)) == 1 and inner.calls == calls  # nothing moved: the remembered face
    gate.reset()
    dark = np.full((240, 320, 3), 10, np.uint8)
    assert len(gate.detect(dark)) == 0 and gate.last_pass == "full"  # a whole-frame pass, no old face


def test_byte_tracker_config_checks():
    from maskwatch.config import Config
    from maskwatch.errors import MaskwatchError

    assert Config().with_overrides({"tracker.kind": "byte", "tracker.camera_motion": "auto"}).validate()
    for key, bad in (("tracker.camera_motion", "sometimes"), ("tracker.low_score", 1.5), ("tracker.lost_s", -1)):
        with pytest.raises(MaskwatchError, match=key.replace(".", r"\.")):
            Config().with_overrides({key: bad}).validate()
    tracker = make_tracker(TrackerConfig(kind="byte", camera_motion=False))
    assert tracker.cmc is None and type(make_tracker(TrackerConfig(kind="byte")).cmc) is AutoCameraMotion


def test_frames_with_pixels_and_none_give_the_same_ids_on_still_people():
    scene = background(8)[:H, :W]
    img = scene.copy()
    draw_person(img, [100, 100, 140, 150], (30, 160, 230))
    a = make_tracker(TrackerConfig(kind="byte", min_hits=2))
    b = make_tracker(TrackerConfig(kind="byte", min_hits=2))
    for i in range(6):
        ua = a.update(faces([[100 + i, 100, 140 + i, 150]]), Frame(img, i, i / FPS, 0.0))
        ub = b.update(faces([[100 + i, 100, 140 + i, 150]]))
        assert ua.faces.track_id.tolist() == ub.faces.track_id.tolist() == [1]


# -- the pipeline: low-score boxes for association only, a reconnect resets the detector --------------


def _pipeline_parts():
    from fakes import FakeLiveSource

    class TurningHead:
        """A person seen sure for 15 frames, then only at a low score (head turned), and a stray low box."""

        mode = "fake"

        def __init__(self):
            self.calls = 0
            self.resets = 0

        def detect(self, image):
            self.calls += 1
            x = 40 + self.calls
            person = [x, 40, x + 30, 76]
            if self.calls <= 15:
                return Faces([person], [0.9])
            return Faces([person, [120, 10, 150, 46]], [0.35, 0.35])

        def reset(self):
            self.resets += 1

        def close(self):
            pass

    class CountingClassifier:
        def __init__(self):
            self.boxes = []

        def classify_faces(self, image, xyxy):
            self.boxes.append(len(xyxy))
            return np.tile(np.array([[0.9, 0.05, 0.05]], np.float32), (len(xyxy), 1))

    return FakeLiveSource, TurningHead, CountingClassifier


def test_the_pipeline_classifies_low_boxes_only_once_matched_to_a_person():
    from maskwatch.frames import SourceState
    from maskwatch.pipeline import Pipeline
    from fakes import tiny_config

    FakeLiveSource, TurningHead, CountingClassifier = _pipeline_parts()
    source = FakeLiveSource(frames=40, then=SourceState.ENDED)
    source.fps = 25.0
    classifier = CountingClassifier()
    config = tiny_config("unused", tracker=TrackerConfig(kind="byte", min_hits=3, max_age=3, min_votes=3, vote_window=5))
    with Pipeline(config, source=source, detector=TurningHead(), classifier=classifier) as pipeline:
        results = [r for r in pipeline if r.frame is not None]
        people = pipeline.totals.people_seen
    assert people == 1
    late = results[15:]
    assert all(r.faces.track_id.tolist() == [1] for r in late)  # the stray low box is dropped, the person kept
    assert all(r.faces.score.tolist() == pytest.approx([0.35]) and np.isfinite(r.faces.probs).all() for r in late)
    assert classifier.boxes == [1] * 40  # one box classified per frame: never the stray


def test_the_pipeline_runs_the_detector_at_the_low_score_for_byte_only():
    from maskwatch.config import DetectorConfig
    from maskwatch.pipeline import Pipeline
    from fakes import FakeLiveSource, tiny_config

    gate = DetectorConfig().min_score
    for kind, want in (("byte", 0.3), ("centroid", gate)):
        config = tiny_config("unused", detector=DetectorConfig(), tracker=TrackerConfig(kind=kind))
        with Pipeline(config, source=FakeLiveSource(frames=1)) as pipeline:
            assert pipeline.detector.min_score == pytest.approx(want)
            assert getattr(pipeline.tracker, "high_score", gate) == pytest.approx(gate)


def test_a_reconnect_resets_the_detector_and_the_person_is_counted_once():
    from maskwatch.frames import SourceState
    from maskwatch.pipeline import Pipeline
    from fakes import FakeDetector, FakeLiveSource, tiny_config

    class Reconnecting(FakeLiveSource):
        def read(self, timeout=None):
            frame = super().read(timeout)
            if frame is not None and frame.index == 20:
                self.reconnects += 1  # the camera dropped and came back
            return frame

    class ResettableDetector(FakeDetector):
        resets = 0

        def reset(self):
            self.resets += 1

    detector = ResettableDetector()
    config = tiny_config("unused", tracker=TrackerConfig(kind="byte", min_hits=3, max_age=5))
    with Pipeline(config, source=Reconnecting(frames=40, then=SourceState.ENDED), detector=detector) as pipeline:
        results = [r for r in pipeline if r.frame is not None]
        people = pipeline.totals.people_seen
    assert detector.resets == 1 and people == 1
    assert {int(t) for r in results[25:] for t in r.faces.track_id} == {1}  # re-linked to the person from before
