"""``retina`` with ``motion = true`` (maskwatch.detection.motion) and the ``weights`` option, on real frames.

No timing asserts: cost shows as which passes ran (``last_pass``), never as milliseconds.
"""

from __future__ import annotations

import collections
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.detection import FaceDetector, box_iou, validate_mode_options
from maskwatch.detection.motion import MotionGatedDetector, MotionMask, merge_boxes
from maskwatch.errors import MaskwatchError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCENE = FIXTURES / "faces_scene_maksssksksss21.jpg"


@pytest.fixture(scope="module")
def scene():
    image = cv2.imread(str(SCENE))
    root = ET.parse(SCENE.with_suffix(".xml")).getroot()
    boxes = [[float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.findall("object")]
    return image, np.array(boxes, np.float32)


def _background(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    bg = np.full((height, width, 3), 110, np.uint8)
    bg += rng.integers(0, 20, (height, width, 1), dtype=np.uint8)  # some still texture
    return cv2.GaussianBlur(bg, (5, 5), 0)


def _moving_scene(scene, factor: float, size=(1920, 1080), frames: int = 30, still: int = 8, step: int = 12):
    """A fixed camera: ``still`` frames of background, then the scene (shrunk by ``factor``) slides in, ``step`` px a frame.
    Yields (frame, gt boxes or None)."""
    image, gt = scene
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    bg = _background(*size)
    for i in range(frames):
        frame = bg.copy()
        if i < still:
            yield frame, None
            continue
        x0, y0 = 700 + (i - still) * step, 500
        frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
        yield frame, gt * factor + [x0, y0, x0, y0]


def test_a_still_image_is_a_whole_frame_pass_with_the_plain_faces(scene):
    image, _ = scene
    with FaceDetector("retina") as plain, FaceDetector("retina", motion=True) as gated:
        expected, got = plain.detect(image), gated.detect(image)
        assert gated._backend.last_pass == "full"
    np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-3)
    np.testing.assert_allclose(got.score, expected.score, atol=1e-5)


def test_no_motion_no_network_pass_and_still_people_stay(scene):
    """A still picture: after the background is learnt, frames cost no network pass, the faces of
    the last whole-frame pass are given every frame, and a whole-frame pass runs every full_every."""
    image, _ = scene
    frame = cv2.copyMakeBorder(image, 100, 100, 200, 200, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    passes = []
    with FaceDetector("retina") as plain, FaceDetector("retina", motion=True, full_every=8) as gated:
        expected = plain.detect(frame)
        for _ in range(30):
            faces = gated.detect(frame)
            passes.append(gated._backend.last_pass)
            assert len(faces) == len(expected) == 5
            assert (box_iou(expected.xyxy, faces.xyxy).max(axis=1) > 0.99).all()
    counts = collections.Counter(passes)
    assert counts["none"] >= 20, counts
    assert 3 <= counts["full"] <= 10, counts  # warm-up, then every 8th frame
    assert passes[-9:].count("full") == 1


def test_small_moving_faces_run_at_a_higher_scale_than_the_whole_frame(scene):
    """Faces 16-28 px wide in a 1080p frame are 8-14 px in the whole-frame pass (scale 0.5), too
    small for it; their moving region runs at scale 1 and finds them."""
    plain_found = gated_found = regions = 0
    with FaceDetector("retina") as plain, FaceDetector("retina", motion=True, full_every=100) as gated:
        for frame, gt in _moving_scene(scene, 0.4):
            faces = gated.detect(frame)
            if gt is None or gated._backend.last_pass != "regions":
                continue
            regions += 1
            ref = plain.detect(frame)
            gated_found += int((box_iou(gt, faces.xyxy).max(axis=1, initial=0) >= 0.3).sum()) if len(faces) else 0
            plain_found += int((box_iou(gt, ref.xyxy).max(axis=1, initial=0) >= 0.3).sum()) if len(ref) else 0
            # nothing found on the background (a face's box may be looser than its annotation)
            assert not len(faces) or (box_iou(faces.xyxy, gt).max(axis=1) >= 0.2).all()
    assert regions >= 15
    assert gated_found >= 3 * regions  # at least 3 of the 5 faces on a typical frame
    assert gated_found > 2 * plain_found


def test_a_face_that_moves_is_found_where_it_went(scene):
    """Faces known from an earlier pass are not given where the picture moved: the moving faces are
    found where they are now, about as well as a whole-frame pass on the same frame finds them."""
    gated_found = plain_found = regions = 0
    with FaceDetector("retina", motion=True, full_every=100) as gated, FaceDetector("retina") as plain:
        for frame, gt in _moving_scene(scene, 1.0, step=8):
            faces = gated.detect(frame)
            if gt is None or gated._backend.last_pass != "regions":
                continue
            regions += 1
            assert len(faces) and (box_iou(faces.xyxy, gt).max(axis=1) >= 0.2).all()  # no stale box left behind
            gated_found += int((box_iou(gt, faces.xyxy).max(axis=1) >= 0.3).sum())
            ref = plain.detect(frame)
            plain_found += int((box_iou(gt, ref.xyxy).max(axis=1, initial=0) >= 0.3).sum()) if len(ref) else 0
    assert regions >= 15
    assert gated_found >= 0.9 * plain_found, (gated_found, plain_found)


def test_a_new_frame_size_starts_over(scene):
    image, _ = scene
    with FaceDetector("retina", motion=True) as gated:
        for _ in range(8):
            gated.detect(np.full((360, 640, 3), 80, np.uint8))
        faces = gated.detect(image)
        assert gated._backend.last_pass == "full" and len(faces) == 5


def test_motion_mask_regions_and_change_test():
    mask = MotionMask(width=160)
    bg = _background(640, 360)
    for _ in range(10):
        regions, share = mask.regions(bg)
    assert regions == [] and share == 0.0
    reference = mask.grey
    moved = bg.copy()
    moved[100:200, 300:360] = 250
    regions, share = mask.regions(moved)
    assert len(regions) == 1 and 0 < share < 0.1
    r = regions[0]
    assert r.x0 <= 300 and r.y0 <= 100 and r.x1 >= 360 and r.y1 >= 200
    changed = mask.changed(reference, np.array([[300, 100, 360, 200], [10, 10, 60, 60]], np.float32))
    assert changed.tolist() == [True, False]
    assert merge_boxes([(0, 0, 5, 5), (5, 5, 9, 9)]) == [(0, 0, 9, 9)]


def test_gate_wraps_any_whole_frame_detector(scene):
    from maskwatch.detection.options import RetinaOptions
    from maskwatch.detection.retina import RetinaDetector

    gate = MotionGatedDetector(RetinaDetector(RetinaOptions(num_threads=1), 0.7), full_every=3)
    image, _ = scene
    kinds = []
    for _ in range(12):
        gate.detect(image)
        kinds.append(gate.last_pass)
    gate.close()
    gate.close()  # twice is harmless
    assert kinds[:5] == ["full"] * 5 and "none" in kinds


def test_motion_and_weights_options_are_checked():
    assert validate_mode_options("retina", {"motion": True, "full_every": 5}) == {"motion": True, "full_every": 5}
    with pytest.raises(MaskwatchError, match="full_every must be an integer >= 1"):
        validate_mode_options("retina", {"full_every": 0})
    with pytest.raises(MaskwatchError, match="region_scale"):
        validate_mode_options("retina", {"region_scale": 0})
    with pytest.raises(MaskwatchError, match="weights must be one of 'float', 'int8'"):
        validate_mode_options("retina", {"weights": "int4"})
    with pytest.raises(MaskwatchError, match="motion must be true or false"):
        validate_mode_options("retina", {"motion": "yes"})


def test_int8_weights_missing_file_is_one_line(tmp_path):
    with pytest.raises(MaskwatchError, match="face detection model not found: .*_int8.onnx"):
        FaceDetector("retina", weights="int8", model_dir=tmp_path)


def test_unset_motion_is_on_for_video_and_off_for_photos():
    with FaceDetector("retina") as photos, FaceDetector("retina", video=True) as camera, \
            FaceDetector("retina", video=True, motion=False) as told:
        assert (photos.options["motion"], camera.options["motion"], told.options["motion"]) == (False, True, False)
        assert isinstance(camera._backend, MotionGatedDetector)
        assert not isinstance(photos._backend, MotionGatedDetector) and not isinstance(told._backend, MotionGatedDetector)


def test_the_pipeline_gates_its_default_detector_and_still_counts(known_faces_clip):
    """The pipeline's default detector is motion-gated; on the known-faces clip (two people walking
    across, one after the other) most frames skip the whole-frame pass and both are counted."""
    from conftest import TINY_MODEL

    from maskwatch.config import Config
    from maskwatch.pipeline import Pipeline

    config = Config(source=str(known_faces_clip["path"]), model=TINY_MODEL, interval_s=60)
    passes = collections.Counter()
    with Pipeline(config) as pipeline:
        backend = pipeline.detector._backend
        assert isinstance(backend, MotionGatedDetector)
        frames_with_faces = 0
        for result in pipeline:
            passes[backend.last_pass] += 1
            frames_with_faces += len(result.faces) > 0
        totals = pipeline.totals
    assert totals.people_seen == known_faces_clip["people"] == 2
    assert passes["full"] < passes["regions"] + passes["none"], passes
    assert frames_with_faces >= 0.8 * (known_faces_clip["frames"] - known_faces_clip["gap_frames"])


def test_a_still_face_next_to_a_walker_does_not_flicker(scene):
    """Someone walks past just below still people: the walker's motion region touches their faces.
    A remembered face the regions only partly cover must stay (it dropped out on every gated frame
    while the walker was near: 13 face-frames missing in this scene before the fix)."""
    image, _ = scene
    frame0 = cv2.copyMakeBorder(image, 100, 300, 200, 200, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    with FaceDetector("retina") as plain:
        expected = plain.detect(frame0)
    assert len(expected) == 5
    below = int(expected.xyxy[:, 3].max())
    missing = 0
    with FaceDetector("retina", motion=True, full_every=10) as gated:
        for i in range(60):
            frame = frame0.copy()
            if i >= 15:  # a dark figure crossing the frame under the faces, 25 px a frame
                x = (i - 15) * 25
                frame[below + 5 : below + 85, x : x + 60] = (20, 20, 20)
            faces = gated.detect(frame)
            found = box_iou(expected.xyxy, faces.xyxy).max(axis=1) > 0.9 if len(faces) else np.zeros(5, bool)
            missing += int((~found).sum())
    assert missing == 0
