"""The image conversions the detector façade and back-ends share."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError


def to_bgr(image: np.ndarray) -> np.ndarray:
    """BGR / BGRA / grayscale uint8 -> 3-channel C-contiguous BGR uint8 (the image itself when it already is one).

    >>> to_bgr(np.zeros((2, 3), np.uint8)).shape
    (2, 3, 3)
    """
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


def to_rgb(bgr: np.ndarray) -> np.ndarray:
    """BGR -> contiguous RGB (what the BlazeFace models and MediaPipe take)."""
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
