"""``FaceDetector``: faces as a :class:`~maskwatch.faces.Faces`.

Both BlazeFace models and a RetinaFace (MobileNet-0.25) model ship in ``models/`` (see
``models/MODELS.md``). The detector has a few modes, all returning boxes, scores and keypoints in
pixels of the original image (BlazeFace: six; RetinaFace: five):

``retina``
    RetinaFace with a MobileNet-0.25 backbone (trained on WIDER FACE, made for small faces)
    through onnxruntime (OpenCV's DNN module when onnxruntime is missing), on the whole frame
    resized to about ``max_pixels`` (default 960x540: a 1080p frame runs at half size, a 400x300
    photo at 2.1x, never more than ``max_upscale``), anchors decoded as in the reference
    implementation and merged by NMS, boxes moved to the face-box convention the mask classifier
    was trained on (``calibrate``). It finds faces from ~8 px (input pixels). The default:
    on the shared scenes it finds far more small faces than the BlazeFace modes, at ~16 ms a
    frame on 2 cores (benchmarks/results/face_recall.md).

``short``
    MediaPipe Tasks ``FaceDetector`` with the short-range model (128x128 input) on the whole
    frame. Fast, but the frame is shrunk to 128 px, so it only finds faces that fill a good part
    of it (webcams, selfies).
``full``
    MediaPipe Tasks ``FaceDetector`` with the full-range model (192x192 input) on the whole frame.
``dense``
    The short-range network is fully convolutional: run it (through ai-edge-litert) on the whole
    frame resized by each of ``scales`` (default 1.0 and 0.5) instead of squeezing the frame to
    128x128, decode its anchors on that larger grid and merge with weighted NMS, as MediaPipe's
    graph does. Each level finds faces of ~20-100 px (input pixels) anywhere in the frame. The
    first level is kept within ``max_pixels`` (default 640x384, ~10 ms on 2 cores) and the others
    keep their ratio to it: a 1080p frame runs at 1/3 and 1/6 (faces from ~50 px), a 400x300 photo
    at full and half size. A fine level leaves faces over 80 input px to the coarse one, and its
    faces of ``confirm_px`` or more must show on the coarse level too; boxes inside a better box
    and boxes whose keypoints are not face-shaped (``min_eye_mouth``) are dropped.
``tiled``
    ``dense`` on the whole frame plus the full-range model (through ai-edge-litert) on a grid of
    overlapping ``tile`` px tiles (default 128, grown until there are at most ``max_tiles``), each
    resized to 192x192, all tiles in one batched call; faces cut by a tile edge or too big for a
    tile are left to the whole-frame pass; everything merged with weighted NMS. Finds much smaller
    faces, at many times the cost: for CCTV with ``every_n`` > 1, or offline.

Example::

    >>> import numpy as np
    >>> with FaceDetector("short") as det:
    ...     faces = det.detect(np.zeros((240, 320, 3), np.uint8))
    >>> len(faces), faces.xyxy.shape
    (0, (0, 4))
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.paths import models_dir

log = logging.getLogger("maskwatch.detection")

DETECTOR_MODES: tuple[str, ...] = ("retina", "short", "full", "dense", "tiled")
DEFAULT_MODE = "retina"

SHORT_RANGE_MODEL = "face_detection_short_range.tflite"
FULL_RANGE_MODEL = "face_detection_full_range_sparse.tflite"
RETINA_MODEL = "face_detection_retinaface_mnet025.onnx"

# Options each mode accepts (besides min_score / model_dir), with their defaults.
MODE_OPTIONS: dict[str, dict] = {
    "retina": {"max_pixels": 960 * 540, "max_upscale": 3.0, "nms_iou": 0.4, "num_threads": None, "calibrate": True},
    "short": {"nms_iou": 0.3},
    "full": {"nms_iou": 0.3},
    "dense": {"scales": (1.0, 0.5), "max_pixels": 640 * 384, "nms_iou": 0.3, "num_threads": None, "min_eye_mouth": 0.28, "confirm_px": 48},
    "tiled": {"tile": 128, "overlap": 0.25, "max_tiles": 24, "nms_iou": 0.3, "num_threads": None, "whole": "dense", "min_eye_mouth": 0.28},
}


@dataclass(frozen=True)
class _BlazeFaceSpec:
    """What the raw network needs: file, input size, anchor layout (stride, anchors per cell)."""

    filename: str
    input_size: int  # the size the model was built for (square)
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per grid cell), in output order


_SHORT = _BlazeFaceSpec(SHORT_RANGE_MODEL, 128, ((8, 2), (16, 6)))
_FULL = _BlazeFaceSpec(FULL_RANGE_MODEL, 192, ((4, 1),))


def _model_path(model_dir: Path | None, filename: str) -> Path:
    path = Path(model_dir or models_dir()) / filename
    if not path.is_file():
        raise MaskwatchError(f"face detection model not found: {path} (ship models/{filename} or set MASKWATCH_MODELS)")
    return path


def _read_model(path: Path) -> bytes:
    data = path.read_bytes()
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise MaskwatchError(f"face detection model {path} is not a TFLite model (corrupt or wrong file)")
    return data


def _default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """BGR / BGRA / grayscale uint8 -> 3-channel BGR uint8 (a view when it already is one)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise MaskwatchError(f"face detection needs a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image if image.flags.c_contiguous else np.ascontiguousarray(image)  # e.g. a flipped view
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise MaskwatchError(f"face detection needs a BGR, BGRA or grayscale image, got shape {image.shape}")


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes.

    >>> [round(float(v), 3) for v in box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0]]
    [0.333]
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def weighted_nms(xyxy: np.ndarray, score: np.ndarray, keypoints: np.ndarray, iou: float, contained: float = 0.6):
    """MediaPipe-style weighted NMS: each kept face is the score-weighted mean of its cluster.

    Returns (xyxy, score, keypoints) of the kept faces, best first.
    """
    order = np.argsort(-score)
    xyxy, score, keypoints = xyxy[order], score[order], keypoints[order]
    alive = np.ones(len(score), bool)
    out_b, out_s, out_k = [], [], []
    for i in range(len(score)):
        if not alive[i]:
            continue
        members = np.flatnonzero(alive)
        members = members[box_iou(xyxy[i], xyxy[members])[0] >= iou]
        members = np.union1d(members, [i])
        alive[members] = False
        w = score[members][:, None]
        out_b.append((xyxy[members] * w).sum(0) / w.sum())
        out_k.append((keypoints[members] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(score[i])
    if not out_s:
        return xyxy[:0], score[:0], keypoints[:0]
    xyxy, score, keypoints = np.stack(out_b), np.asarray(out_s, np.float32), np.stack(out_k)
    # Averaged boxes of neighbouring clusters can still overlap, and the network fires on parts of
    # big faces (a respirator mask alone looks like a face): drop a box that overlaps a better one
    # by ``iou`` or lies mostly (``contained``) inside it.
    keep = np.ones(len(score), bool)
    overlap = box_iou(xyxy, xyxy)
    lt = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    rb = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inside = np.clip(rb - lt, 0, None).prod(axis=2) / np.maximum((xyxy[:, 2:] - xyxy[:, :2]).prod(axis=1), 1e-9)[None, :]
    for i in range(len(score)):
        if keep[i]:
            later = np.arange(len(score)) > i
            keep[later & ((overlap[i] >= iou) | (inside[i] >= contained))] = False
    return xyxy[keep], score[keep], keypoints[keep]


def upright_face_shape(faces: Faces, min_eye_mouth: float) -> np.ndarray:
    """Bool per face: the mouth keypoint lies at least ``min_eye_mouth`` box widths below the eyes.

    BlazeFace's false boxes (hands, knees, bokeh, a respirator valve) mostly have squashed
    keypoints; on the shared scenes this test dropped ~20% of the false boxes for ~1.4% of the true
    faces, a better trade than a higher score threshold. It assumes upright faces (street, CCTV).
    """
    if len(faces) == 0 or min_eye_mouth <= 0:
        return np.ones(len(faces), bool)
    k = faces.keypoints  # 0/1 eyes, 2 nose, 3 mouth, 4/5 ears
    eyes_y = (k[:, 0, 1] + k[:, 1, 1]) / 2
    return (k[:, 3, 1] - eyes_y) >= min_eye_mouth * np.maximum(faces.widths, 1e-6)


def _faces(xyxy, score, keypoints, width: int, height: int) -> Faces:
    """Faces clipped to the image, degenerate boxes dropped."""
    if len(score) == 0:
        return Faces(xyxy=np.zeros((0, 4), np.float32), score=np.zeros(0, np.float32), keypoints=np.zeros((0, 6, 2), np.float32))
    xyxy = np.asarray(xyxy, np.float32).copy()
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
    return Faces(
        xyxy=xyxy[keep],
        score=np.asarray(score, np.float32)[keep].clip(0, 1),
        keypoints=np.asarray(keypoints, np.float32).reshape(len(xyxy), -1, 2)[keep],
    )


_LIVE_TASKS: "weakref.WeakSet[_TasksBackend]" = weakref.WeakSet()


def _close_live_tasks() -> None:
    # mediapipe 1.2.2's FaceDetector.__del__ fails noisily when a detector outlives the interpreter
    # (its call executor is already shut down): close ours first, and disarm any that cannot close.
    for backend in list(_LIVE_TASKS):
        try:
            backend.close()
        except Exception:
            if backend._detector is not None:
                backend._detector._handle = None
            backend._detector = None


# Run before concurrent.futures shuts its executors down (its hook is registered the same way,
# and these hooks run last-registered first); plain atexit is the fallback.
_register = getattr(threading, "_register_atexit", None)
try:
    if _register is None:
        raise RuntimeError
    _register(_close_live_tasks)
except RuntimeError:
    atexit.register(_close_live_tasks)


class _TasksBackend:
    """MediaPipe Tasks ``FaceDetector`` (IMAGE mode) on the whole frame."""

    def __init__(self, spec: _BlazeFaceSpec, model_dir: Path | None, min_score: float, nms_iou: float):
        path = _model_path(model_dir, spec.filename)
        data = _read_model(path)
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_score),
            min_suppression_threshold=float(nms_iou),
        )
        try:
            self._detector = vision.FaceDetector.create_from_options(options)
        except Exception as e:  # mediapipe raises RuntimeError/ValueError with multi-line text
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MaskwatchError(f"cannot load face detection model {path}: {msg}") from None
        _LIVE_TASKS.add(self)

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        result = self._detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=_rgb(bgr)))
        n = len(result.detections)
        xyxy = np.zeros((n, 4), np.float32)
        score = np.zeros(n, np.float32)
        kps = np.zeros((n, 6, 2), np.float32)
        for i, d in enumerate(result.detections):
            bb = d.bounding_box
            xyxy[i] = (bb.origin_x, bb.origin_y, bb.origin_x + bb.width, bb.origin_y + bb.height)
            score[i] = d.categories[0].score if d.categories else 0.0
            pts = [(k.x * w, k.y * h) for k in (d.keypoints or [])][:6]
            if len(pts) == 6:
                kps[i] = pts
        return _faces(xyxy, score, kps, w, h)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None


class _BlazeFaceNet:
    """The raw BlazeFace network through ai-edge-litert, decoded like MediaPipe's graph does.

    Input is RGB scaled to [-1, 1]. The regressors are in input pixels relative to each anchor
    centre (MediaPipe divides them by the model's input size and uses anchors of size 1), so they
    decode on any grid the network is run on.
    """

    def __init__(self, spec: _BlazeFaceSpec, model_dir: Path | None, num_threads: int | None):
        path = _model_path(model_dir, spec.filename)
        data = _read_model(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - the runtime depends on it
            raise MaskwatchError("the dense/tiled face detector modes need ai-edge-litert: pip install ai-edge-litert") from None
        self.spec = spec
        self.path = path
        try:
            self._interp = Interpreter(model_content=data, num_threads=num_threads or _default_threads())
            self._interp.allocate_tensors()
        except Exception as e:
            raise MaskwatchError(f"cannot load face detection model {path}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
        self._input = self._interp.get_input_details()[0]["index"]
        outs = self._interp.get_output_details()
        # regressors (.., 16) and classificators (.., 1), whatever their names
        self._reg = next(o["index"] for o in outs if o["shape"][-1] == 16)
        self._cls = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._shape = tuple(self._interp.get_input_details()[0]["shape"])
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def anchors(self, height: int, width: int) -> np.ndarray:
        """(A, 2) anchor centres in input pixels, in the network's output order."""
        key = (height, width)
        if key not in self._anchors:
            parts = []
            for stride, per_cell in self.spec.layers:
                gy, gx = math.ceil(height / stride), math.ceil(width / stride)
                ys, xs = np.meshgrid((np.arange(gy) + 0.5) * stride, (np.arange(gx) + 0.5) * stride, indexing="ij")
                centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
                parts.append(np.repeat(centres, per_cell, axis=0))
            self._anchors[key] = np.concatenate(parts).astype(np.float32)
        return self._anchors[key]

    def run(self, batch_rgb: np.ndarray, min_score: float):
        """``batch_rgb`` (B, H, W, 3) uint8 -> per image list of (xyxy, score, keypoints) in input pixels."""
        b, h, w = batch_rgb.shape[:3]
        if (b, h, w, 3) != self._shape:
            try:
                self._interp.resize_tensor_input(self._input, [b, h, w, 3])
                self._interp.allocate_tensors()
            except Exception as e:
                raise MaskwatchError(f"face detection model {self.path} cannot run on a {w}x{h} input: {str(e).strip().splitlines()[0]}") from None
            self._shape = (b, h, w, 3)
        x = batch_rgb.astype(np.float32)
        x *= 1.0 / 127.5
        x -= 1.0
        self._interp.set_tensor(self._input, x)
        self._interp.invoke()
        reg = self._interp.get_tensor(self._reg).reshape(b, -1, 16)
        logit = self._interp.get_tensor(self._cls).reshape(b, -1)
        anchors = self.anchors(h, w)
        if len(anchors) != reg.shape[1]:
            raise MaskwatchError(f"face detection model {self.path} gave {reg.shape[1]} anchors, expected {len(anchors)}")
        min_logit = math.log(min_score / (1 - min_score)) if 0 < min_score < 1 else (-np.inf if min_score <= 0 else np.inf)
        out = []
        for i in range(b):
            idx = np.flatnonzero(logit[i] >= min_logit)
            r, a = reg[i, idx], anchors[idx]
            score = 1.0 / (1.0 + np.exp(-np.clip(logit[i, idx], -100, 100)))
            cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
            half_w, half_h = r[:, 2] / 2, r[:, 3] / 2
            xyxy = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
            kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
            out.append((xyxy, score.astype(np.float32), kps))
        return out

    def close(self) -> None:
        self._interp = None


def _letterbox_resize(bgr: np.ndarray, scale: float, multiple: int) -> tuple[np.ndarray, float, float]:
    """Resize BGR by ``scale``, convert to RGB, pad bottom/right to a multiple of ``multiple``; returns (rgb, sx, sy)."""
    h, w = bgr.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else bgr
    resized = _rgb(resized)
    ph, pw = -nh % multiple, -nw % multiple
    if ph or pw:
        resized = cv2.copyMakeBorder(resized, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return resized, nw / w, nh / h


class _DenseBackend:
    """Short-range BlazeFace run fully convolutionally on the whole frame at one or more scales.

    The first of ``scales`` is capped so that its input has at most ``max_pixels``; the other levels
    keep their ratio to it (see :meth:`input_scales`).
    """

    MAX_FACE = 80  # input px: wider faces on a level that has a coarser one are left to that one
    CONFIRM_SCORE = 0.25  # a coarser level's box this strong confirms a finer level's face

    def __init__(self, model_dir, min_score, scales, max_pixels, nms_iou, num_threads, confirm_px=0.0):
        scales = tuple(float(s) for s in (scales if isinstance(scales, (list, tuple)) else (scales,)))
        if not scales or not all(s > 0 for s in scales) or not max_pixels > 0:
            raise MaskwatchError("dense face detector needs scales > 0 and max_pixels > 0")
        self._nets: dict[tuple[int, int], _BlazeFaceNet] = {}
        self._model_dir, self._threads = model_dir, num_threads
        self._first = self._net((_SHORT.input_size, _SHORT.input_size))  # fail early on a bad model
        self._min_score, self._scales, self._max_pixels, self._nms = min_score, scales, float(max_pixels), nms_iou
        self._confirm_px = float(confirm_px)

    def _net(self, shape: tuple[int, int]) -> _BlazeFaceNet:
        """One interpreter per input shape (a video keeps its shapes; re-planning costs ms)."""
        net = self._nets.pop(shape, None)
        if net is None:
            if len(self._nets) >= 4:  # re-plan the least recently used one (cheaper than a new interpreter)
                net = self._nets.pop(next(iter(self._nets)))
            else:
                net = _BlazeFaceNet(_SHORT, self._model_dir, self._threads)
        self._nets[shape] = net
        return net

    def input_scales(self, width: int, height: int) -> list[float]:
        """The resize factors used for a ``width`` x ``height`` frame.

        The first level is ``scales[0]``, reduced so that it has at most ``max_pixels``; the other
        levels keep their ratio to it (so a 1080p frame with scales (1.0, 0.5) runs at 1/3 and 1/6).

        >>> b = _DenseBackend(None, 0.5, (1.0, 0.5), 640 * 384, 0.3, 1)
        >>> [round(s, 3) for s in b.input_scales(400, 300)], [round(s, 3) for s in b.input_scales(1920, 1080)]
        ([1.0, 0.5], [0.344, 0.172])
        """
        first = min(self._scales[0], math.sqrt(self._max_pixels / float(width * height)))
        return [s * first / self._scales[0] for s in self._scales]

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        all_b, all_s, all_k = [], [], []
        levels = sorted(self.input_scales(w, h))  # coarsest first
        support = np.zeros((0, 4), np.float32)  # coarser levels' boxes down to CONFIRM_SCORE
        for s in levels:
            img, sx, sy = _letterbox_resize(bgr, s, 16)
            if min(img.shape[:2]) < 16:
                continue
            (xyxy, score, kps), = self._net(img.shape[:2]).run(img[None], min(self._min_score, self.CONFIRM_SCORE))
            width = xyxy[:, 2] - xyxy[:, 0]
            scale = np.array([sx, sy, sx, sy], np.float32)
            keep = score >= self._min_score
            if s > levels[0]:
                # Big faces are the coarser level's job: on a finer level the network fires on
                # parts of them (several boxes per big masked face), and those survive the NMS.
                keep &= width <= self.MAX_FACE
                # A face big enough to be seen on the coarser level too must be seen there (even
                # weakly): textures that fool the network at one scale rarely do at both.
                if self._confirm_px > 0:
                    big = keep & (width >= self._confirm_px)
                    if big.any():
                        seen = box_iou(xyxy[big] / scale, support).max(axis=1, initial=0) >= 0.3 if len(support) else np.zeros(big.sum(), bool)
                        keep[np.flatnonzero(big)[~seen]] = False
            support = np.concatenate([support, xyxy / scale])
            all_b.append(xyxy[keep] / scale)
            all_k.append(kps[keep] / np.array([sx, sy], np.float32))
            all_s.append(score[keep])
        if not all_s:
            return _faces([], [], [], w, h)
        xyxy, score, kps = weighted_nms(np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_k), self._nms)
        return _faces(xyxy, score, kps, w, h)

    def close(self) -> None:
        for net in self._nets.values():
            net.close()
        self._nets.clear()


def calibrate_boxes(xyxy: np.ndarray, calibration) -> np.ndarray:
    """Move and resize boxes: centre += (dx * width, dy * height), size *= (sw, sh).

    >>> calibrate_boxes(np.array([[0, 0, 10, 20]], np.float32), (0.1, 0.25, 1.0, 0.5)).tolist()
    [[1.0, 10.0, 11.0, 20.0]]
    """
    dx, dy, sw, sh = calibration
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2 + wh * np.array([dx, dy], np.float32)
    half = wh * np.array([sw, sh], np.float32) / 2
    return np.hstack([centre - half, centre + half])


class _RetinaBackend:
    """RetinaFace (MobileNet-0.25, biubug6/Pytorch_Retinaface export) on the resized whole frame.

    The ONNX graph takes a float32 NCHW BGR image minus the mean (104, 117, 123), any size that
    is a multiple of 32, and returns per anchor: box offsets, softmax scores (background, face)
    and five landmark offsets. Anchors: strides 8/16/32 with square sizes 16, 32 / 64, 128 /
    256, 512 input px, centred on each cell; offsets are scaled by variances 0.1 (centre) and 0.2
    (log size), as in the reference ``decode`` / ``decode_landm``.
    """

    STEPS = (8, 16, 32)
    SIZES = ((16, 32), (64, 128), (256, 512))
    VARIANCE = (0.1, 0.2)
    MEAN_BGR = (104.0, 117.0, 123.0)
    MULTIPLE = 32
    # RetinaFace's boxes (WIDER FACE convention) sit higher and are taller than the Pascal VOC face
    # boxes the mask classifier was trained on: centre offset (x, y) in box widths/heights, then
    # width and height factors, medians over 1,704 matched faces of the classifier's training
    # split of facemask-scenes (benchmarks/retina_box_calibration.py). With them the classifier's
    # accuracy on the test split's detected faces went from 0.929 to 0.951 (macro F1 0.766 -> 0.834).
    CALIBRATION = (0.016, 0.125, 1.047, 0.912)

    def __init__(self, model_dir, min_score, max_pixels, max_upscale, nms_iou, num_threads, calibrate=True):
        try:
            max_pixels, max_upscale = float(max_pixels), float(max_upscale)
        except (TypeError, ValueError):
            max_pixels = max_upscale = 0.0
        if not max_pixels > 0 or not max_upscale > 0:
            raise MaskwatchError("retina face detector needs numbers max_pixels > 0 and max_upscale > 0")
        path = _model_path(model_dir, RETINA_MODEL)
        data = path.read_bytes()
        self.path = path
        self._min_score, self._max_pixels, self._max_upscale, self._nms = min_score, max_pixels, max_upscale, nms_iou
        self._calibration = self.CALIBRATION if calibrate else (0.0, 0.0, 1.0, 1.0)
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self._session = self._net = None
        try:
            import onnxruntime as ort
        except ImportError:  # OpenCV's DNN module reads the same graph (slower, ~1.6x)
            ort = None
        try:
            if ort is not None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = num_threads or _default_threads()
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                # no busy-waiting between runs: spinning pool threads starve the frame resize, the
                # decoder thread and the classifier (a 1080p detect took 29 ms with, 20 ms without)
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
                names = {o.name for o in self._session.get_outputs()}
                if not {"loc", "conf", "landmarks"} <= names or self._session.get_inputs()[0].name != "input":
                    raise ValueError(f"inputs/outputs are not RetinaFace's (outputs {sorted(names)})")
            else:
                self._net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MaskwatchError(f"cannot load face detection model {path}: {msg[:200]}") from None

    def input_size(self, width: int, height: int) -> tuple[int, int, float]:
        """(resized width, resized height, scale) for a ``width`` x ``height`` frame.

        >>> b = _RetinaBackend(None, 0.5, 960 * 540, 3.0, 0.4, 1)
        >>> b.input_size(1920, 1080), b.input_size(400, 300)[:2], b.input_size(64, 48)
        ((960, 540, 0.5), (831, 624), (192, 144, 3.0))
        """
        scale = min(self._max_upscale, math.sqrt(self._max_pixels / float(width * height)))
        return max(1, round(width * scale)), max(1, round(height * scale)), scale

    def anchors(self, height: int, width: int) -> np.ndarray:
        """(N, 4) anchors (cx, cy, w, h) in input pixels, in the network's output order."""
        key = (height, width)
        a = self._anchors.get(key)
        if a is None:
            parts = []
            for step, sizes in zip(self.STEPS, self.SIZES):
                ny, nx = math.ceil(height / step), math.ceil(width / step)
                yy, xx = np.mgrid[0:ny, 0:nx]
                centres = np.stack([(xx.ravel() + 0.5) * step, (yy.ravel() + 0.5) * step], axis=1)
                centres = np.repeat(centres, len(sizes), axis=0)
                wh = np.tile(np.repeat(np.asarray(sizes, np.float64)[:, None], 2, axis=1), (ny * nx, 1))
                parts.append(np.hstack([centres, wh]))
            a = np.vstack(parts).astype(np.float32)
            if len(self._anchors) >= 4:
                self._anchors.pop(next(iter(self._anchors)))
            self._anchors[key] = a
        return a

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        nw, nh, _ = self.input_size(w, h)
        # INTER_AREA only for big reductions (4K -> 960x540), where bilinear would alias small faces
        # away; it is slow for other ratios (4.5 ms vs 0.5 ms for 1080p -> 964x542)
        interp = cv2.INTER_AREA if nw <= w / 2 else cv2.INTER_LINEAR
        img = cv2.resize(bgr, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else bgr
        ph, pw = -nh % self.MULTIPLE, -nw % self.MULTIPLE
        if ph or pw:  # pad with the mean, which the network sees as zero
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.MEAN_BGR)
        blob = cv2.dnn.blobFromImage(img, 1.0, None, self.MEAN_BGR, swapRB=False, crop=False)
        if self._session is not None:
            loc, conf, landm = self._session.run(["loc", "conf", "landmarks"], {"input": blob})
        else:
            self._net.setInput(blob)
            loc, conf, landm = self._net.forward(["loc", "conf", "landmarks"])
        anchors = self.anchors(*blob.shape[2:])
        if loc.shape[1] != len(anchors):
            raise MaskwatchError(f"face detection model {self.path} gave {loc.shape[1]} anchors, expected {len(anchors)}")
        score = conf[0, :, 1]
        keep = np.flatnonzero(score >= self._min_score)
        if not len(keep):
            return _faces([], [], [], w, h)
        a, loc, landm, score = anchors[keep], loc[0, keep], landm[0, keep], score[keep]
        v0, v1 = self.VARIANCE
        centre = a[:, :2] + loc[:, :2] * v0 * a[:, 2:]
        size = a[:, 2:] * np.exp(loc[:, 2:] * v1)
        xyxy = np.hstack([centre - size / 2, centre + size / 2])
        kps = a[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * a[:, None, 2:]
        idx = np.asarray(cv2.dnn.NMSBoxes(np.hstack([xyxy[:, :2], size]).tolist(), score.tolist(), self._min_score, self._nms), int).reshape(-1)
        sx, sy = nw / w, nh / h
        xyxy = calibrate_boxes(xyxy[idx], self._calibration) / np.array([sx, sy, sx, sy], np.float32)
        kps = kps[idx] / np.array([sx, sy], np.float32)
        return _faces(xyxy, score[idx], kps, w, h)

    def close(self) -> None:
        self._session = self._net = None
        self._anchors.clear()


def tile_grid(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles ``(x0, y0, x1, y1)`` covering the image (tiles shrink to fit small images).

    >>> tile_grid(400, 300, 192, 0.25)[:2]
    [(0, 0, 192, 192), (104, 0, 296, 192)]
    """
    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        n = math.ceil((length - tile) / (tile * (1 - overlap))) + 1
        return [round(i * (length - tile) / (n - 1)) for i in range(n)]

    t_w, t_h = min(tile, width), min(tile, height)
    return [(x, y, x + t_w, y + t_h) for y in starts(height) for x in starts(width)]


class _TiledBackend:
    """Full-range BlazeFace on the whole frame plus overlapping tiles, merged by NMS."""

    MAX_TILE_FACE = 0.5  # tile faces wider than this fraction of the model input are left to the whole-frame pass

    def __init__(self, model_dir, min_score, tile, overlap, max_tiles, nms_iou, num_threads, whole):
        if not tile >= 16 or not 0 <= overlap < 1 or not max_tiles >= 1:
            raise MaskwatchError("tiled face detector needs tile >= 16, 0 <= overlap < 1, max_tiles >= 1")
        self._net = _BlazeFaceNet(_FULL, model_dir, num_threads)
        # whole-frame pass: "dense" (short-range, fully convolutional) or "full" (full-range, letterboxed)
        if whole not in ("dense", "full"):
            raise MaskwatchError(f"tiled face detector option whole must be 'dense' or 'full', got {whole!r}")
        self._dense = _DenseBackend(model_dir, min_score, (1.0, 0.5), MODE_OPTIONS["dense"]["max_pixels"], nms_iou, num_threads, MODE_OPTIONS["dense"]["confirm_px"]) if whole == "dense" else None
        self._min_score, self._tile, self._overlap, self._max_tiles, self._nms = min_score, int(tile), float(overlap), int(max_tiles), nms_iou

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The tiles for a frame: ``tile`` px, grown until there are at most ``max_tiles``."""
        tile = self._tile
        while True:
            grid = tile_grid(width, height, tile, self._overlap)
            if len(grid) <= self._max_tiles:
                return grid
            tile = int(tile * 1.25) + 1

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        size = self._net.spec.input_size
        regions, crops = [], []
        if self._dense is None:  # whole frame letterboxed to a square, in the same batch as the tiles
            side = max(w, h)
            regions.append((0, 0, side, side))
            crops.append(cv2.copyMakeBorder(bgr, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0)))
        grid = self.tiles(w, h)
        if not (self._dense is None and len(grid) == 1 and w == h):  # else the tile is the whole frame again
            for x0, y0, x1, y1 in grid:
                regions.append((x0, y0, x1, y1))
                crops.append(bgr[y0:y1, x0:x1])
        results = []
        if crops:
            batch = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops])[..., ::-1]  # BGR -> RGB
            results = self._net.run(batch, self._min_score)
        all_b, all_s, all_k = [], [], []
        if self._dense is not None:
            whole = self._dense.detect(bgr)
            all_b.append(whole.xyxy)
            all_s.append(whole.score)
            all_k.append(whole.keypoints)
        for (x0, y0, x1, y1), (xyxy, score, kps) in zip(regions, results):
            if self._dense is not None and len(score):
                # Tiles are for small faces: drop faces cut by an inner tile edge (another tile or the
                # whole-frame pass sees them whole) and faces too big to be small.
                m = 2.0
                cut = ((xyxy[:, 0] < m) & (x0 > 0)) | ((xyxy[:, 1] < m) & (y0 > 0))
                cut |= ((xyxy[:, 2] > size - m) & (x1 < w)) | ((xyxy[:, 3] > size - m) & (y1 < h))
                keep = ~cut & (xyxy[:, 2] - xyxy[:, 0] <= size * self.MAX_TILE_FACE)
                xyxy, score, kps = xyxy[keep], score[keep], kps[keep]
            if not len(score):
                continue
            sx, sy = (x1 - x0) / size, (y1 - y0) / size
            all_b.append(xyxy * [sx, sy, sx, sy] + [x0, y0, x0, y0])
            all_k.append(kps * [sx, sy] + [x0, y0])
            all_s.append(score)
        if not all_s:
            return _faces([], [], [], w, h)
        xyxy, score, kps = weighted_nms(np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_k), self._nms)
        return _faces(xyxy, score, kps, w, h)

    def close(self) -> None:
        self._net.close()
        if self._dense is not None:
            self._dense.close()


def check_mode_options(mode: str, options) -> None:
    """Raise a one-line :class:`MaskwatchError` for options that ``mode`` (a known mode) does not take.

    >>> check_mode_options("retina", {"max_pixels": 100})
    >>> check_mode_options("retina", {"tile": 96})
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: face detector mode 'retina' has no option tile (it takes max_pixels, max_upscale, nms_iou, num_threads, calibrate)
    """
    unknown = sorted(set(options) - set(MODE_OPTIONS[mode]))
    if unknown:
        raise MaskwatchError(
            f"face detector mode {mode!r} has no option {', '.join(unknown)} (it takes {', '.join(MODE_OPTIONS[mode])})"
        )


class FaceDetector:
    """Faces in a BGR frame, in pixels of that frame.

    >>> import numpy as np
    >>> det = FaceDetector("dense", scales=(1.0, 2.0))
    >>> det.detect(np.zeros((120, 160), np.uint8)).xyxy.shape   # grayscale is fine too
    (0, 4)
    >>> det.close()

    ``mode`` is one of :data:`DETECTOR_MODES`; ``mode_options`` are that mode's entries of
    :data:`MODE_OPTIONS` (for example ``FaceDetector("tiled", tile=256)``).
    """

    def __init__(self, mode: str = DEFAULT_MODE, min_score: float = 0.5, model_dir: Path | None = None, **mode_options):
        if mode not in DETECTOR_MODES:
            raise MaskwatchError(f"unknown face detector mode {mode!r}; choose one of {', '.join(DETECTOR_MODES)}")
        if not 0.0 <= float(min_score) <= 1.0:
            raise MaskwatchError(f"face detector min_score must be in [0, 1], got {min_score}")
        check_mode_options(mode, mode_options)
        opts = {**MODE_OPTIONS[mode], **mode_options}
        self.mode = mode
        self.min_score = float(min_score)
        self.options = opts
        if mode == "retina":
            self._backend = _RetinaBackend(
                model_dir, self.min_score, opts["max_pixels"], opts["max_upscale"], opts["nms_iou"], opts["num_threads"], opts["calibrate"]
            )
        elif mode == "short":
            self._backend = _TasksBackend(_SHORT, model_dir, self.min_score, opts["nms_iou"])
        elif mode == "full":
            self._backend = _TasksBackend(_FULL, model_dir, self.min_score, opts["nms_iou"])
        elif mode == "dense":
            self._backend = _DenseBackend(
                model_dir, self.min_score, opts["scales"], opts["max_pixels"], opts["nms_iou"], opts["num_threads"], opts["confirm_px"]
            )
        else:
            self._backend = _TiledBackend(
                model_dir, self.min_score, opts["tile"], opts["overlap"], opts["max_tiles"], opts["nms_iou"], opts["num_threads"], opts["whole"]
            )

    @classmethod
    def from_config(cls, config) -> "FaceDetector":
        """The detector a :class:`~maskwatch.config.DetectorConfig` describes (mode, min_score, options)."""
        return cls(config.mode, config.min_score, **config.options)

    def detect(self, image_bgr: np.ndarray) -> Faces:
        """Faces in ``image_bgr`` (uint8 BGR; BGRA and grayscale are converted)."""
        if self._backend is None:
            raise MaskwatchError("face detector is closed")
        bgr = _to_bgr(image_bgr)
        if bgr.shape[0] == 0 or bgr.shape[1] == 0:
            return _faces([], [], [], bgr.shape[1], bgr.shape[0])
        faces = self._backend.detect(bgr)
        if self.options.get("min_eye_mouth", 0) > 0 and len(faces):
            faces = faces[upright_face_shape(faces, self.options["min_eye_mouth"])]
        return faces

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaceDetector(mode={self.mode!r}, min_score={self.min_score}, {self.options})"
