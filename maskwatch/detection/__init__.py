"""Face detection: :class:`FaceDetector` returns faces as a :class:`~maskwatch.faces.Faces`.

Boxes, scores and keypoints come in pixels of the original image (BlazeFace: six keypoints;
RetinaFace: five). The mode picks the back-end; each is one module behind one small protocol
(:class:`~maskwatch.detection.base.Detector`: ``detect(bgr) -> Faces``, ``close()``) with a typed
options class (:mod:`~maskwatch.detection.options`: defaults, help, checks, default
``min_score``), and :mod:`~maskwatch.detection.registry` maps mode names to them:

``retina`` (:mod:`~maskwatch.detection.retina`, the default)
    RetinaFace (MobileNet-0.25) through onnxruntime on the resized whole frame; small faces.
``short``, ``full`` (:mod:`~maskwatch.detection.tasks`)
    MediaPipe Tasks ``FaceDetector`` with the short-range (128 px) or full-range (192 px) model.
``dense`` (:mod:`~maskwatch.detection.blazeface`)
    The short-range BlazeFace network run fully convolutionally at a few scales of the frame.
``tiled`` (:mod:`~maskwatch.detection.tiled`)
    ``dense`` plus the full-range network on overlapping tiles: the smallest faces, slowest.

Box maths (IoU, weighted NMS, calibration, clipping) is in :mod:`maskwatch.boxes`.

Reading the modes, their help and checking options loads no model runtime, numpy or OpenCV (the
configuration does it); the detector and the back-ends are imported on first use.

>>> import numpy as np
>>> from maskwatch.detection import DEFAULT_MODE, DETECTOR_MODES, FaceDetector
>>> DETECTOR_MODES, DEFAULT_MODE
(('retina', 'short', 'full', 'dense', 'tiled'), 'retina')
>>> with FaceDetector("short") as det:
...     faces = det.detect(np.zeros((240, 320, 3), np.uint8))
>>> len(faces), faces.xyxy.shape
(0, (0, 4))
"""

from __future__ import annotations

import importlib

from maskwatch.detection import registry
from maskwatch.detection.base import Detector, DetectorOptions, option
from maskwatch.detection.registry import (
    DEFAULT_MODE,
    default_min_score,
    register,
    unregister,
    validate_mode_options,
)

# Names that need numpy/OpenCV, imported from their module on first use (PEP 562).
_LAZY = {
    "FaceDetector": "maskwatch.detection.detector",
    "box_iou": "maskwatch.boxes",
    "weighted_nms": "maskwatch.boxes",
    "calibrate_boxes": "maskwatch.boxes",
    "upright_face_shape": "maskwatch.detection.blazeface",
    "SHORT_RANGE_MODEL": "maskwatch.detection.blazeface",
    "FULL_RANGE_MODEL": "maskwatch.detection.blazeface",
    "RETINA_MODEL": "maskwatch.detection.retina",
    "tile_grid": "maskwatch.detection.tiled",
}

__all__ = [
    "DEFAULT_MODE",
    "DETECTOR_MODES",
    "Detector",
    "DetectorOptions",
    "default_min_score",
    "option",
    "register",
    "unregister",
    "validate_mode_options",
    *_LAZY,
]


def __getattr__(name: str):
    # The mode list is read from the registry on each access, so a mode registered later shows
    # (each mode's options and their defaults: maskwatch.detection.registry.mode_options()).
    if name == "DETECTOR_MODES":
        return registry.modes()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
