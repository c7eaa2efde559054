"""Re-detection with the app's own face detector, so training crops are framed as served ones."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError

class _Detector:
    """Face boxes for re-detection, from the app's ``maskwatch.detection.FaceDetector``.

    Crops and small images are padded before detection (the short-range model misses faces that fill
    the whole frame); large scenes also use the full-range model.
    """

    def __init__(self, min_score: float = 0.5):
        self.min_score = min_score
        self._dets = {}

    def _get(self, mode: str):
        if mode not in self._dets:
            try:
                from maskwatch.detection import FaceDetector
            except ImportError as e:
                raise MaskwatchError(f"re-detecting faces needs the app's detector ({e}); or use --redetect none") from None
            self._dets[mode] = FaceDetector(mode=mode, min_score=self.min_score)
        return self._dets[mode]

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(xyxy (N,4) float, score (N,)) in ``image_bgr`` pixels."""
        h, w = image_bgr.shape[:2]
        boxes, scores = [], []
        pad = int(0.3 * max(h, w)) if max(h, w) <= 400 else 0
        img = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) if pad else image_bgr
        modes = ("short",) if max(h, w) <= 400 else ("short", "full")
        for mode in modes:
            faces = self._get(mode).detect(img)
            if len(faces.xyxy):
                boxes.append(np.asarray(faces.xyxy, np.float32) - pad)
                scores.append(np.asarray(faces.score, np.float32))
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(boxes), np.concatenate(scores)
