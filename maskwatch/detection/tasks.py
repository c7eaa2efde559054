"""The ``short`` and ``full`` modes: MediaPipe Tasks ``FaceDetector`` (IMAGE mode) on the whole frame.

``short``
    The short-range model (128x128 input). Fast, but the frame is shrunk to 128 px, so it only
    finds faces that fill a good part of it (webcams, selfies).
``full``
    The full-range model (192x192 input).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from pathlib import Path
from typing import ClassVar

import numpy as np

from maskwatch.boxes import clipped_faces
from maskwatch.detection.blazeface import FULL, SHORT, BlazeFaceSpec
from maskwatch.detection.images import to_rgb
from maskwatch.detection.loading import first_line, model_path, read_tflite
from maskwatch.detection.options import FullOptions, ShortOptions
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces

_LIVE: "weakref.WeakSet[TasksDetector]" = weakref.WeakSet()


def _close_live() -> None:
    # mediapipe 1.2.2's FaceDetector.__del__ fails noisily when a detector outlives the interpreter
    # (its call executor is already shut down): close ours first, and disarm any that cannot close.
    for backend in list(_LIVE):
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
    _register(_close_live)
except RuntimeError:
    atexit.register(_close_live)


class TasksDetector:
    """MediaPipe Tasks ``FaceDetector`` on the whole frame, with the model of ``SPEC``."""

    SPEC: ClassVar[BlazeFaceSpec]

    def __init__(self, options: ShortOptions | FullOptions, min_score: float, model_dir: Path | None = None):
        self.options = options
        self._detector = None
        path = model_path(model_dir, self.SPEC.filename)
        data = read_tflite(path)
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        tasks_options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_score),
            min_suppression_threshold=float(options.nms_iou),
        )
        try:
            self._detector = vision.FaceDetector.create_from_options(tasks_options)
        except Exception as e:  # mediapipe raises RuntimeError/ValueError with multi-line text
            raise MaskwatchError(f"cannot load face detection model {path}: {first_line(e)}") from None
        _LIVE.add(self)

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        result = self._detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=to_rgb(bgr)))
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
        return clipped_faces(xyxy, score, kps, w, h)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None


class ShortRangeDetector(TasksDetector):
    """``short``: the short-range model (128x128 input)."""

    SPEC = SHORT


class FullRangeDetector(TasksDetector):
    """``full``: the full-range model (192x192 input)."""

    SPEC = FULL
