"""The one face-crop function, shared by serving (``MaskClassifier``) and training (``train.data``).

Training and serving must see identical pixels, so both call :func:`crop_faces` with the margin and
size stored in the model's metadata.

>>> import numpy as np
>>> img = np.zeros((100, 200, 3), np.uint8)
>>> crop_faces(img, np.array([[10, 10, 40, 50]]), size=32, margin=0.2).shape
(1, 32, 32, 3)
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_MARGIN = 0.2
"""Fraction of the face box's larger side added on every side before cropping."""


def square_box(box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """The square region (x1, y1, x2, y2, integers, may leave the image) cropped for ``box``.

    The square is centred on the box, its side is the box's larger side times ``1 + 2 * margin``.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    sx1 = int(round(cx - side / 2.0))
    sy1 = int(round(cy - side / 2.0))
    s = max(int(round(side)), 1)
    return sx1, sy1, sx1 + s, sy1 + s


def padded_region(image: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray | None:
    """``image[y1:y2, x1:x2]`` with the parts outside the image filled by replicating its border;
    ``None`` when the box lies entirely outside the image."""
    h, w = image.shape[:2]
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    region = image[cy1:cy2, cx1:cx2]
    pad = (cy1 - y1, y2 - cy2, cx1 - x1, x2 - cx2)
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, borderType=cv2.BORDER_REPLICATE)
    return region


def crop_face(image: np.ndarray, box, size: int, margin: float = DEFAULT_MARGIN, bgr: bool = True) -> np.ndarray:
    """Crop one face as an RGB uint8 (size, size, 3) square.

    ``image`` is BGR (OpenCV) unless ``bgr=False`` (then RGB). Parts of the square outside the image
    are filled by replicating the border. Shrinking uses area interpolation, enlarging (small CCTV
    faces) uses bilinear, so a 16 px face is upscaled the same way in training and serving.
    """
    region = padded_region(image, *square_box(box, margin))
    if region is None:  # box entirely outside the image
        region = np.zeros((1, 1, 3), np.uint8)
    side = region.shape[0]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = cv2.resize(region, (size, size), interpolation=interp)
    if bgr:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return out


def crop_faces(image: np.ndarray, boxes, size: int, margin: float = DEFAULT_MARGIN, bgr: bool = True) -> np.ndarray:
    """Crop many faces: returns RGB uint8 (N, size, size, 3)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, b in enumerate(boxes):
        out[i] = crop_face(image, b, size, margin, bgr)
    return out
