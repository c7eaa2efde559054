"""The raw BlazeFace network (ai-edge-litert) and the ``dense`` mode built on it.

``dense``
    The short-range network is fully convolutional: run it on the whole frame resized by each of
    ``scales`` (default 1.0 and 0.5) instead of squeezing the frame to 128x128, decode its anchors
    on that larger grid and merge with weighted NMS, as MediaPipe's graph does. Each level finds
    faces of ~20-100 px (input pixels) anywhere in the frame. The first level is kept within
    ``max_pixels`` (default 640x384, ~10 ms on 2 cores) and the others keep their ratio to it: a
    1080p frame runs at 1/3 and 1/6 (faces from ~50 px), a 400x300 photo at full and half size. A
    fine level leaves faces over 80 input px to the coarse one, and its faces of ``confirm_px`` or
    more must show on the coarse level too; boxes inside a better box and boxes whose keypoints are
    not face-shaped (``min_eye_mouth``) are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.boxes import box_iou, clipped_faces, weighted_nms
from maskwatch.detection.images import to_rgb
from maskwatch.detection.loading import default_threads, first_line, model_path, read_tflite
from maskwatch.detection.options import DenseOptions
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces

SHORT_RANGE_MODEL = "face_detection_short_range.tflite"
FULL_RANGE_MODEL = "face_detection_full_range_sparse.tflite"


@dataclass(frozen=True)
class BlazeFaceSpec:
    """What the raw network needs: file, input size, anchor layout (stride, anchors per cell)."""

    filename: str
    input_size: int  # the size the model was built for (square)
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per grid cell), in output order


SHORT = BlazeFaceSpec(SHORT_RANGE_MODEL, 128, ((8, 2), (16, 6)))
FULL = BlazeFaceSpec(FULL_RANGE_MODEL, 192, ((4, 1),))


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


def merged_faces(boxes: list, scores: list, keypoints: list, nms_iou: float, width: int, height: int,
                 min_eye_mouth: float) -> Faces:
    """The faces of several passes (scales, tiles) as one set: weighted NMS, clipped to the image,
    and the face-shape filter (:func:`upright_face_shape`)."""
    if not scores:
        return clipped_faces([], [], [], width, height)
    xyxy, score, kps = weighted_nms(np.concatenate(boxes), np.concatenate(scores), np.concatenate(keypoints), nms_iou)
    faces = clipped_faces(xyxy, score, kps, width, height)
    if min_eye_mouth > 0 and len(faces):
        faces = faces[upright_face_shape(faces, min_eye_mouth)]
    return faces


class BlazeFaceNet:
    """The raw BlazeFace network through ai-edge-litert, decoded like MediaPipe's graph does.

    Input is RGB scaled to [-1, 1]. The regressors are in input pixels relative to each anchor
    centre (MediaPipe divides them by the model's input size and uses anchors of size 1), so they
    decode on any grid the network is run on.
    """

    def __init__(self, spec: BlazeFaceSpec, model_dir: Path | None, num_threads: int | None):
        path = model_path(model_dir, spec.filename)
        data = read_tflite(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - the runtime depends on it
            raise MaskwatchError("the dense/tiled face detector modes need ai-edge-litert: pip install ai-edge-litert") from None
        self.spec = spec
        self.path = path
        try:
            self._interp = Interpreter(model_content=data, num_threads=num_threads or default_threads())
            self._interp.allocate_tensors()
        except Exception as e:
            raise MaskwatchError(f"cannot load face detection model {path}: {first_line(e)}") from None
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
                raise MaskwatchError(f"face detection model {self.path} cannot run on a {w}x{h} input: {first_line(e)}") from None
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


def letterbox_resize(bgr: np.ndarray, scale: float, multiple: int) -> tuple[np.ndarray, float, float]:
    """Resize BGR by ``scale``, convert to RGB, pad bottom/right to a multiple of ``multiple``; returns (rgb, sx, sy)."""
    h, w = bgr.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else bgr
    resized = to_rgb(resized)
    ph, pw = -nh % multiple, -nw % multiple
    if ph or pw:
        resized = cv2.copyMakeBorder(resized, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return resized, nw / w, nh / h


class DenseDetector:
    """Short-range BlazeFace run fully convolutionally on the whole frame at one or more scales.

    The first of ``scales`` is capped so that its input has at most ``max_pixels``; the other levels
    keep their ratio to it (see :meth:`input_scales`).
    """

    MAX_FACE = 80  # input px: wider faces on a level that has a coarser one are left to that one
    CONFIRM_SCORE = 0.25  # a coarser level's box this strong confirms a finer level's face

    def __init__(self, options: DenseOptions, min_score: float, model_dir: Path | None = None):
        self.options = options
        self._nets: dict[tuple[int, int], BlazeFaceNet] = {}
        self._model_dir, self._threads = model_dir, options.num_threads
        self._first = self._net((SHORT.input_size, SHORT.input_size))  # fail early on a bad model
        self._min_score, self._scales, self._max_pixels, self._nms = min_score, options.scales, float(options.max_pixels), options.nms_iou
        self._confirm_px = float(options.confirm_px)

    def _net(self, shape: tuple[int, int]) -> BlazeFaceNet:
        """One interpreter per input shape (a video keeps its shapes; re-planning costs ms)."""
        net = self._nets.pop(shape, None)
        if net is None:
            if len(self._nets) >= 4:  # re-plan the least recently used one (cheaper than a new interpreter)
                net = self._nets.pop(next(iter(self._nets)))
            else:
                net = BlazeFaceNet(SHORT, self._model_dir, self._threads)
        self._nets[shape] = net
        return net

    def input_scales(self, width: int, height: int) -> list[float]:
        """The resize factors used for a ``width`` x ``height`` frame.

        The first level is ``scales[0]``, reduced so that it has at most ``max_pixels``; the other
        levels keep their ratio to it (so a 1080p frame with scales (1.0, 0.5) runs at 1/3 and 1/6).

        >>> b = DenseDetector(DenseOptions(num_threads=1), 0.5)
        >>> [round(s, 3) for s in b.input_scales(400, 300)], [round(s, 3) for s in b.input_scales(1920, 1080)]
        ([1.0, 0.5], [0.344, 0.172])
        >>> b.close()
        """
        first = min(self._scales[0], math.sqrt(self._max_pixels / float(width * height)))
        return [s * first / self._scales[0] for s in self._scales]

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        all_b, all_s, all_k = [], [], []
        levels = sorted(self.input_scales(w, h))  # coarsest first
        support = np.zeros((0, 4), np.float32)  # coarser levels' boxes down to CONFIRM_SCORE
        for s in levels:
            img, sx, sy = letterbox_resize(bgr, s, 16)
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
        return merged_faces(all_b, all_s, all_k, self._nms, w, h, self.options.min_eye_mouth)

    def close(self) -> None:
        for net in self._nets.values():
            net.close()
        self._nets.clear()
