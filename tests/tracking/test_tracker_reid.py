"""The ``reid`` tracker: camera motion, re-linking lost people by colour, reset after an outage.

Frames are real images (a textured background with coloured "people"), so the camera-motion
estimate and the colour histograms run on pixels, as in the app.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskwatch.config import TrackerConfig
from maskwatch.counting import Counter
from maskwatch.faces import Faces
from maskwatch.frames import Frame
from maskwatch.results import Stats
from maskwatch.tracking import make_tracker
from maskwatch.votes import LabelVotes

FPS = 25.0
W, H = 640, 360


def background(seed: int = 0, size=(900, 1600)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.random((size[0] // 8, size[1] // 8, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (size[1], size[0]), interpolation=cv2.INTER_NEAREST), (0, 0), 1.5)


def draw_person(img: np.ndarray, box, colour) -> None:
    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cv2.rectangle(img, (x1 - w // 2, y2), (x2 + w // 2, min(y2 + 2 * h, img.shape[0] - 1)), colour, -1)  # shoulders
    cv2.rectangle(img, (x1, y1), (x2, y2), (150, 170, 210), -1)  # face


class Run:
    """A tracker + votes + counter driven with frames, as the pipeline drives them."""

    def __init__(self, kind: str, **cfg):
        config = TrackerConfig(kind=kind, **{"min_hits": 3, "max_age": 5, "min_votes": 3, "vote_window": 5, **cfg})
        self.tracker = make_tracker(config)
        self.votes = LabelVotes.from_config(config)
        self.counter = Counter(interval_s=3600, min_hits=1, end_events=True)
        self.events = []
        self.i = 0

    def step(self, image: np.ndarray, boxes) -> list[int]:
        faces = Faces(np.asarray(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32),
                      probs=np.tile(np.array([[0.9, 0.05, 0.05]], np.float32), (len(boxes), 1)))
        up = self.tracker.update(faces, Frame(image, self.i, self.i / FPS, 0.0))
        decisions = self.votes.update(up, self.i / FPS)
        ev, _ = self.counter.update(up.faces, self.i / FPS, self.i, Stats(), track_update=up, labels=decisions)
        self.events += ev
        self.i += 1
        self.last = up
        return up.faces.track_id.tolist()

    def seen(self) -> list[int]:
        return [e.track_id for e in self.events if e.kind == "person_seen"]


@pytest.mark.parametrize("kind, stable", [("reid", True), ("centroid", False)])
def test_a_fast_pan_keeps_ids_only_with_camera_motion_compensation(kind, stable):
    """The camera pans 24 px a frame; two still people move 24 px a frame in the picture, and one
    face (20 px) moves more than its own size between frames: without compensation the centre gate
    loses it whenever the pan speeds up."""
    scene = background()
    people = [np.array([700, 300, 720, 322.0]), np.array([900, 420, 960, 486.0])]
    run = Run(kind)
    ids = []
    x = 0.0
    for i in range(40):
        x += 24 if i % 10 < 5 else 4  # the pan speeds up and slows down: constant velocity cannot follow
        frame = scene[200:200 + H, int(x):int(x) + W].copy()
        boxes = [p - [x, 200, x, 200] for p in people]
        for b, colour in zip(boxes, [(40, 40, 200), (200, 60, 30)]):
            draw_person(frame, b, colour)
        ids.append(run.step(frame, boxes))
    if stable:
        assert all(row == ids[0] for row in ids) and len(run.seen()) == 2
    else:  # the pan broke the tracks: new ids (and people counted under ids that started late)
        assert len({i for row in ids for i in row}) > 2


def test_a_person_hidden_longer_than_max_age_is_relinked_and_counted_once():
    scene = background(1)[:H, :W]
    run = Run("reid", max_age=5, relink_s=5.0)
    face = [300, 100, 340, 150]
    for _ in range(12):
        img = scene.copy()
        draw_person(img, face, (30, 160, 230))
        run.step(img, [face])
    assert run.seen() == [1]
    for _ in range(40):  # behind a pillar for 1.6 s (> max_age of 5 frames)
        run.step(scene.copy(), [])
    assert run.last.ended == () and 1 in run.last.live  # lost, not ended
    moved = [320, 104, 360, 154]
    ids = []
    for _ in range(12):
        img = scene.copy()
        draw_person(img, moved, (30, 160, 230))
        ids.append(run.step(img, [moved]))
    assert ids[-1] == [1]  # back under the old id once it would have been counted
    assert run.seen() == [1] and run.counter.totals.people_seen == 1
    assert run.votes.label(1) == 0  # with_mask, votes carried over


def test_someone_else_in_the_same_place_is_a_new_person():
    scene = background(2)[:H, :W]
    run = Run("reid", max_age=5, relink_s=5.0)
    face = [300, 100, 340, 150]
    for colour, frames in (((30, 160, 230), 12), (None, 20), ((200, 40, 40), 12)):
        for _ in range(frames):
            img = scene.copy()
            if colour is not None:
                draw_person(img, face, colour)
            run.step(img, [face] if colour is not None else [])
    assert len(run.seen()) == 2 and run.last.relinked == ()


def test_a_lost_person_ends_after_relink_s():
    scene = background(3)[:H, :W]
    run = Run("reid", max_age=2, relink_s=1.0)
    for _ in range(5):
        img = scene.copy()
        draw_person(img, [100, 100, 140, 150], (30, 160, 230))
        run.step(img, [[100, 100, 140, 150]])
    ended_at = None
    for _ in range(40):
        run.step(scene.copy(), [])
        if run.last.ended:
            ended_at = run.i - 1
            break
    assert run.last.ended == (1,)
    assert 4 + 2 + FPS * 1.0 <= ended_at <= 4 + 2 + FPS * 1.0 + 2  # max_age frames, then relink_s of frame time
    assert [e.kind for e in run.events].count("track_ended") == 1


def test_after_a_reconnect_people_are_relinked_never_counted_twice():
    scene = background(4)[:H, :W]
    run = Run("reid", max_age=30)
    faces = [[100, 100, 140, 150], [400, 120, 436, 165]]
    colours = [(30, 160, 230), (200, 60, 30)]

    def frame(boxes):
        img = scene.copy()
        for b, c in zip(boxes, colours):
            draw_person(img, b, c)
        return img

    for _ in range(10):
        run.step(frame(faces), faces)
    run.tracker.reset()  # the camera came back after an outage
    after = [[104, 98, 144, 148], [396, 124, 432, 169]]
    for _ in range(10):
        ids = run.step(frame(after), after)
    assert sorted(ids) == [1, 2]
    assert run.seen() == [1, 2] and run.counter.totals.people_seen == 2


def test_camera_motion_estimate_follows_a_pan_and_a_zoom():
    from maskwatch.tracking.motion import CameraMotion, warp_boxes

    scene = background(5)
    cmc = CameraMotion(width=320)
    cmc.estimate(scene[100:460, 100:740])
    m = cmc.estimate(scene[100:460, 130:770])  # 30 px to the right
    assert m[0, 2] == pytest.approx(-30, abs=1.5) and m[1, 2] == pytest.approx(0, abs=1.5)
    big = cv2.resize(scene[100:460, 130:770], None, fx=1.1, fy=1.1)[18:378, 32:672]
    m = cmc.estimate(big)  # zoomed in 10% about the centre
    assert np.sqrt(np.linalg.det(m[:, :2])) == pytest.approx(1.1, abs=0.02)
    np.testing.assert_allclose(warp_boxes(m, np.array([[310, 170, 330, 190]])), [[309, 169, 331, 191]], atol=2)
    with pytest.raises(ValueError):
        CameraMotion(max_corners=1000)


def test_a_live_track_taken_over_on_a_frame_with_other_matches_does_not_break_matching():
    """A person briefly missing while their face shows up as a new track elsewhere (the prediction
    drifted): the new track takes the old one over at confirmation, on a frame where other tracks
    are matched too (the tracker once indexed its list after dropping the old track)."""
    scene = background(6)[:H, :W]
    run = Run("reid", max_age=30, min_hits=3)
    a, b, c = [100, 100, 140, 150], [400, 100, 440, 150], [250, 220, 290, 270]
    colours = {0: (30, 160, 230), 1: (200, 60, 30), 2: (60, 200, 60)}

    def frame(boxes_colours):
        img = scene.copy()
        for box, k in boxes_colours:
            draw_person(img, box, colours[k])
        return img

    for _ in range(6):
        run.step(frame([(a, 0), (b, 1), (c, 2)]), [a, b, c])
    jumped = [a[0] + 150, a[1] + 20, a[2] + 150, a[3] + 20]  # person 0 seen far from their track for 3+ frames
    for _ in range(3):
        run.step(frame([(b, 1), (c, 2)]), [b, c])
    ids = [run.step(frame([(jumped, 0), (b, 1), (c, 2)]), [jumped, b, c]) for _ in range(4)]
    assert ids[-1] == [1, 2, 3] and run.seen() == [1, 2, 3]
