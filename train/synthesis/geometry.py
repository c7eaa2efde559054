"""The canonical face frame: the 5-point template, the canvas, the mask's prior outline, and the
maps between keypoints, canonical units and canvas pixels; head yaw and keypoint plausibility."""

from __future__ import annotations

import cv2
import numpy as np

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
"""Canonical 5 keypoints (eyes, nose tip, mouth corners; image-left first, RetinaFace's order): the
ArcFace 112x112 alignment template. Its units are the canonical frame's coordinates."""

CANVAS_X0, CANVAS_Y0, CANVAS_W, CANVAS_H = -16.0, 0.0, 144.0, 200.0
"""The canonical canvas in units: x from -16 to 128 (symmetric about the face's centre line x=56),
y from 0 (above the brows) to 200 (the neck, where a mask on the chin still reaches)."""
CANVAS_SCALE = 1.5
"""Canvas pixels per unit (eye distance 53 px): about the resolution of the largest pool faces."""
SEG_SCALE = 1.0
"""Pixels per unit where GrabCut runs (3x faster than at ``CANVAS_SCALE``; still finer than most donors)."""

MASK_POLYGON = np.array([[12, 64], [30, 59], [56, 56], [82, 59], [100, 64], [103, 80], [99, 98], [89, 112],
                         [73, 122], [56, 125], [39, 122], [23, 112], [13, 98], [9, 80]], np.float32)
"""A worn mask's usual outline in canonical units: top edge over the nose bridge, the cheeks, under
the chin. GrabCut's prior (probable foreground); the cut-out must fill a plausible share of it."""
MASK_CORE = ((56.0, 95.0), (20.0, 12.0))
"""Centre and half-axes (units) of an ellipse over the mouth: surely mask on a masked face."""
EYE_LINE = 51.6
REF_REGION = (30.0, 38.0, 82.0, 55.0)
"""Upper face (x1, y1, x2, y2 units: brows to lower eyelids), never under a worn mask: the lightness
reference for colour matching, in donor and target alike."""


# ---------------------------------------------------------------- geometry

def similarity_to(points: np.ndarray) -> np.ndarray | None:
    """2x3 similarity (rotation, uniform scale, translation) mapping ``TEMPLATE`` units onto ``points``.

    >>> m = similarity_to(TEMPLATE * 2 + 10)
    >>> np.round(m, 3).tolist()
    [[2.0, -0.0, 10.0], [0.0, 2.0, 10.0]]
    """
    pts = np.asarray(points, np.float32).reshape(5, 2)
    m, _ = cv2.estimateAffinePartial2D(TEMPLATE, pts, method=cv2.LMEDS)
    if m is None or not np.all(np.isfinite(m)):
        return None
    return m.astype(np.float64)


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def canvas_to_units(dy: float = 0.0, scale: float = CANVAS_SCALE) -> np.ndarray:
    """3x3: canvas pixel -> canonical units, moved ``dy`` units down the face axis."""
    return np.array([[1 / scale, 0, CANVAS_X0], [0, 1 / scale, CANVAS_Y0 + dy], [0, 0, 1]], np.float64)


def canvas_size(scale: float = CANVAS_SCALE) -> tuple[int, int]:
    """(width, height) of the canonical canvas in pixels."""
    return int(round(CANVAS_W * scale)), int(round(CANVAS_H * scale))


def yaw_of(keypoints: np.ndarray) -> float:
    """Head turn from keypoints: the nose tip's offset from the eyes' midpoint along the eye axis, in
    eye distances (0 frontal, about +-0.3 at a three-quarter view; sign flips with a mirror image).

    >>> abs(round(yaw_of(TEMPLATE), 3))
    0.0
    >>> turned = TEMPLATE.copy(); turned[2, 0] += 10   # nose tip 10 units to the right
    >>> round(yaw_of(turned), 2)
    0.28
    """
    k = np.asarray(keypoints, np.float64).reshape(5, 2)
    axis = k[1] - k[0]
    d = float(np.hypot(*axis))
    if d < 1e-6:
        return 0.0
    return float(np.dot(k[2] - (k[0] + k[1]) / 2, axis / d) / d)


def plausible_keypoints(keypoints: np.ndarray, box, max_yaw: float = 0.35) -> str | None:
    """None if the 5 keypoints describe an upright, roughly frontal face in ``box``; else why not."""
    k = np.asarray(keypoints, np.float64).reshape(5, 2)
    x1, y1, x2, y2 = (float(v) for v in box)
    w = max(x2 - x1, 1e-6)
    eye_d = float(np.hypot(*(k[1] - k[0])))
    if not 0.2 <= eye_d / w <= 0.7:
        return "eye distance"
    if abs(yaw_of(k)) > max_yaw:
        return "turned"
    # eyes above nose above mouth, along the face's own vertical axis
    axis = k[1] - k[0]
    down = np.array([-axis[1], axis[0]]) / max(np.hypot(*axis), 1e-6)
    eyes, nose, mouth = (k[0] + k[1]) / 2, k[2], (k[3] + k[4]) / 2
    if not (np.dot(nose - eyes, down) > 0.15 * eye_d and np.dot(mouth - nose, down) > 0.1 * eye_d):
        return "not upright"
    return None


def _units_to_px(pts, scale: float = CANVAS_SCALE) -> np.ndarray:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    return np.stack([(p[:, 0] - CANVAS_X0) * scale, (p[:, 1] - CANVAS_Y0) * scale], axis=1)


def _region_px(region, scale: float = CANVAS_SCALE) -> tuple[slice, slice]:
    (x1, y1), (x2, y2) = _units_to_px([region[:2], region[2:]], scale).round().astype(int)
    return slice(max(y1, 0), y2), slice(max(x1, 0), x2)
