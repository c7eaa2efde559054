"""FaceDetector on a real scene (tests/fixtures/faces_scene_maksssksksss21.*) and on bad input."""

from __future__ import annotations

import dataclasses
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.detection import (
    DETECTOR_MODES,
    FULL_RANGE_MODEL,
    RETINA_MODEL,
    SHORT_RANGE_MODEL,
    FaceDetector,
    box_iou,
    tile_grid,
    upright_face_shape,
    weighted_nms,
)
from maskwatch.detection import Detector, registry
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCENE = FIXTURES / "faces_scene_maksssksksss21.jpg"


@pytest.fixture(scope="module")
def scene():
    image = cv2.imread(str(SCENE))
    assert image is not None, SCENE
    root = ET.parse(SCENE.with_suffix(".xml")).getroot()
    boxes = [[float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.findall("object")]
    return image, np.array(boxes, np.float32)


@pytest.fixture(scope="module")
def detectors():
    dets = {mode: FaceDetector(mode) for mode in DETECTOR_MODES}
    yield dets
    for d in dets.values():
        d.close()


def _check_faces(faces: Faces, width: int, height: int) -> None:
    n = len(faces)
    assert faces.xyxy.shape == (n, 4) and faces.xyxy.dtype == np.float32
    # BlazeFace: eyes, nose, mouth, ears; RetinaFace: eyes, nose, mouth corners
    assert faces.score.shape == (n,) and faces.keypoints.shape[0] == n and faces.keypoints.shape[1:] in ((6, 2), (5, 2))
    assert np.all((faces.score >= 0) & (faces.score <= 1))
    assert np.all(faces.xyxy[:, [0, 2]] >= 0) and np.all(faces.xyxy[:, [0, 2]] <= width)
    assert np.all(faces.xyxy[:, [1, 3]] >= 0) and np.all(faces.xyxy[:, [1, 3]] <= height)
    assert np.all(faces.xyxy[:, 2] > faces.xyxy[:, 0]) and np.all(faces.xyxy[:, 3] > faces.xyxy[:, 1])


@pytest.mark.parametrize("mode", ["retina", "dense", "tiled"])
def test_small_face_modes_find_every_face_of_the_scene(detectors, scene, mode):
    image, gt = scene  # five faces, 39-69 px wide, in a 400x227 street photo
    faces = detectors[mode].detect(image)
    _check_faces(faces, image.shape[1], image.shape[0])
    iou = box_iou(gt, faces.xyxy)
    assert (iou.max(axis=1) >= 0.3).all(), iou.max(axis=1)
    assert len(faces) == len(gt)  # no extra boxes on this scene
    # keypoints (eyes, nose, mouth, ears) lie in or near their face box
    best = faces[iou.argmax(axis=1)]
    cx = best.keypoints[:, :5, 0].mean(axis=1)
    assert np.all((cx > best.xyxy[:, 0]) & (cx < best.xyxy[:, 2]))


@pytest.mark.parametrize("mode", DETECTOR_MODES)
def test_every_mode_runs_and_finds_a_face(detectors, scene, mode):
    image, gt = scene
    faces = detectors[mode].detect(image)
    _check_faces(faces, image.shape[1], image.shape[0])
    assert (box_iou(gt, faces.xyxy) >= 0.3).any()  # even the short-range model finds one of them


@pytest.mark.parametrize("mode", DETECTOR_MODES)
def test_black_and_tiny_images_give_empty_faces(detectors, mode):
    for shape in [(240, 320, 3), (1, 1, 3), (0, 0, 3), (7, 500, 3)]:
        faces = detectors[mode].detect(np.zeros(shape, np.uint8))
        assert len(faces) == 0
        assert faces.xyxy.shape == (0, 4) and faces.score.shape == (0,) and faces.keypoints.shape[0] == 0


def test_grayscale_and_bgra_inputs(detectors, scene):
    image, gt = scene
    det = detectors["dense"]
    gray = det.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert (box_iou(gt, gray.xyxy).max(axis=1) >= 0.3).sum() >= 3
    bgra = det.detect(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    np.testing.assert_allclose(bgra.xyxy, det.detect(image).xyxy, atol=1e-3)
    flipped = det.detect(image[:, ::-1])  # a non-contiguous view (mirrored webcam)
    assert (box_iou(gt[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [image.shape[1], 0, image.shape[1], 0], flipped.xyxy).max(axis=1) >= 0.3).sum() >= 4
    with pytest.raises(MaskwatchError, match="uint8"):
        det.detect(image.astype(np.float32))
    with pytest.raises(MaskwatchError, match="shape"):
        det.detect(np.zeros((10, 10, 5), np.uint8))


def test_faces_are_in_original_pixels_when_the_frame_is_big(detectors, scene):
    image, gt = scene
    big = cv2.resize(image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)  # 1000x568
    faces = detectors["dense"].detect(big)
    _check_faces(faces, big.shape[1], big.shape[0])
    assert (box_iou(gt * 2.5, faces.xyxy).max(axis=1) >= 0.3).sum() >= 4


def test_big_close_faces_give_one_box_each(detectors, scene):
    image, gt = scene
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)  # faces 117-207 px
    faces = detectors["dense"].detect(big)
    iou = box_iou(gt * 3, faces.xyxy)
    assert (iou.max(axis=1) >= 0.3).all(), iou.max(axis=1)
    assert len(faces) == len(gt)


def _scene_in_a_big_frame(scene, factor: float):
    """The scene shrunk by ``factor`` and pasted into a plain 960x540 frame; (frame, gt boxes)."""
    image, gt = scene
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    frame = np.full((540, 960, 3), 90, np.uint8)
    y0, x0 = 200, 300
    frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return frame, gt * factor + [x0, y0, x0, y0]


def test_retina_finds_16_to_28_px_faces_in_a_big_frame(scene):
    frame, gt = _scene_in_a_big_frame(scene, 0.4)  # faces 16-28 px wide in 960x540
    with FaceDetector("retina", min_score=0.5) as det:
        faces = det.detect(frame)
    _check_faces(faces, 960, 540)
    found = box_iou(gt, faces.xyxy).max(axis=1, initial=0) >= 0.3
    assert found.sum() >= 3, found  # the BlazeFace `dense` mode finds none of them, even at 0.5
    assert (box_iou(faces.xyxy, gt).max(axis=1) >= 0.3).all()  # and nothing on the plain background


def test_retina_upscales_small_images(scene):
    image, gt = scene
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)  # 200x114, faces 20-35 px
    with FaceDetector("retina", min_score=0.7) as det:
        assert det._backend.input_size(200, 114)[2] == 3.0  # capped by max_upscale
        faces = det.detect(small)
    _check_faces(faces, small.shape[1], small.shape[0])
    assert (box_iou(gt * 0.5, faces.xyxy).max(axis=1) >= 0.3).sum() >= 4


def test_retina_opencv_fallback_gives_the_same_faces(scene, monkeypatch):
    image, _ = scene
    with FaceDetector("retina") as det:
        assert det._backend._session is not None  # onnxruntime is a dependency
        expected = det.detect(image)
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with FaceDetector("retina") as det:
        assert det._backend._session is None and det._backend._net is not None
        got = det.detect(image)
    assert len(got) == len(expected) == 5
    np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=0.5)
    np.testing.assert_allclose(got.score, expected.score, atol=1e-3)


def test_merge_keeps_one_box_per_face():
    kps = np.zeros((4, 6, 2), np.float32)
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [30, 50, 80, 100], [200, 0, 260, 60]], np.float32)
    xyxy, score, _ = weighted_nms(boxes, np.array([0.9, 0.8, 0.6, 0.7], np.float32), kps, iou=0.3)
    assert score.tolist() == pytest.approx([0.9, 0.7])  # the box inside the big face is dropped
    assert xyxy[0].tolist() == pytest.approx([0 + 5 * 0.8 / 1.7, 0 + 5 * 0.8 / 1.7, 100 + 5 * 0.8 / 1.7, 100 + 5 * 0.8 / 1.7])


def test_upright_face_shape():
    kp = np.zeros((2, 6, 2), np.float32)
    kp[:, 0] = (30, 40)
    kp[:, 1] = (70, 40)
    kp[0, 3] = (50, 75)  # mouth 35 px below the eyes in a 100 px box: a face
    kp[1, 3] = (50, 50)  # 10 px: squashed, not a face
    faces = Faces(xyxy=np.array([[0, 0, 100, 100]] * 2, np.float32), score=np.ones(2, np.float32), keypoints=kp)
    assert upright_face_shape(faces, 0.28).tolist() == [True, False]
    assert upright_face_shape(faces, 0).tolist() == [True, True]


@pytest.mark.parametrize("mode", ["dense", "tiled"])
def test_face_shape_filter_runs_once_on_the_merged_faces(scene, mode):
    big = cv2.resize(scene[0], None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    with FaceDetector(mode, min_score=0.3, min_eye_mouth=0) as det:
        raw = det.detect(big)
    with FaceDetector(mode, min_score=0.3) as det:  # min_eye_mouth 0.28
        kept = det.detect(big)
    squashed = ~upright_face_shape(raw, 0.28)
    assert squashed.any()  # this scene, this big, has boxes with squashed keypoints at 0.3
    np.testing.assert_array_equal(kept.xyxy, raw.xyxy[~squashed])


@pytest.mark.parametrize("mode", DETECTOR_MODES)
def test_every_back_end_has_the_detector_protocol(detectors, mode):
    backend = detectors[mode]._backend
    assert isinstance(backend, Detector)
    expected = registry.parse_options(mode, {})
    if "motion" in expected.names():  # unset motion is resolved when the detector is built: off for photos
        expected = dataclasses.replace(expected, motion=False)
    assert backend.options == expected  # built from its typed options


def test_context_manager_and_closed_detector(scene):
    with FaceDetector("dense") as det:
        assert len(det.detect(scene[0])) > 0
    with pytest.raises(MaskwatchError, match="closed"):
        det.detect(scene[0])
    det.close()  # closing twice is harmless


def test_unknown_mode_and_options():
    with pytest.raises(MaskwatchError, match="unknown face detector mode 'huge'"):
        FaceDetector("huge")
    with pytest.raises(MaskwatchError, match="no option tile"):
        FaceDetector("dense", tile=3)
    with pytest.raises(MaskwatchError, match="min_score"):
        FaceDetector("short", min_score=1.5)


@pytest.mark.parametrize("mode", DETECTOR_MODES)
def test_missing_model_file(tmp_path, mode):
    with pytest.raises(MaskwatchError, match="face detection model not found") as e:
        FaceDetector(mode, model_dir=tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", DETECTOR_MODES)
def test_corrupt_model_file(tmp_path, mode):
    for name in (SHORT_RANGE_MODEL, FULL_RANGE_MODEL, RETINA_MODEL):
        (tmp_path / name).write_bytes(b"this is not a tflite model at all")
    expected = "cannot load face detection model" if mode == "retina" else "not a TFLite model"
    with pytest.raises(MaskwatchError, match=expected) as e:
        FaceDetector(mode, model_dir=tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("mode", "name"), [("short", SHORT_RANGE_MODEL), ("retina", RETINA_MODEL)])
def test_truncated_model_file(tmp_path, mode, name):
    src = Path(__file__).resolve().parents[2] / "models" / name
    shutil.copy(src, tmp_path / name)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 3])
    with pytest.raises(MaskwatchError) as e:
        FaceDetector(mode, model_dir=tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", DETECTOR_MODES)
def test_unreadable_model_file_is_one_line_naming_it(tmp_path, mode, monkeypatch):
    """Regression: a model that cannot be read (a folder in its place, no read permission) gave
    "unexpected PermissionError ..." and exit 1 instead of one line naming the file."""
    names = (SHORT_RANGE_MODEL, FULL_RANGE_MODEL, RETINA_MODEL)
    for name in names:
        (tmp_path / name).mkdir()
    with pytest.raises(MaskwatchError, match=rf"^face detection model {tmp_path}/\S+ is a directory, not a model file$"):
        FaceDetector(mode, model_dir=tmp_path)
    for name in names:
        (tmp_path / name).rmdir()
        (tmp_path / name).write_bytes(b"x" * 64)
        (tmp_path / name).chmod(0)
    if os.geteuid() == 0:  # root (CI) reads a mode-0 file: make the read fail as it does for anyone else
        real_read_bytes = Path.read_bytes

        def denying_read_bytes(self):
            if self.parent == tmp_path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_read_bytes(self)

        monkeypatch.setattr(Path, "read_bytes", denying_read_bytes)
    with pytest.raises(MaskwatchError, match=rf"^cannot read face detection model {tmp_path}/\S+: permission denied$"):
        FaceDetector(mode, model_dir=tmp_path)


def test_tile_grid_covers_the_image():
    for w, h in [(400, 227), (1920, 1080), (100, 50)]:
        tiles = tile_grid(w, h, 128, 0.25)
        cover = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in tiles:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            cover[y0:y1, x0:x1] = True
        assert cover.all()
