"""RetinaFace keypoints of manifest faces: the detections of each image, cached as JSON
(:class:`KeypointCache`), and the one matching a face's box (:func:`match_keypoints`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from maskwatch.boxes import box_iou

def match_keypoints(box, detections: list[list[float]], min_iou: float = 0.35) -> np.ndarray | None:
    """The (5, 2) keypoints of the detection that best overlaps ``box`` (IoU >= ``min_iou``, eyes and
    mouth inside the box grown by 15%), or None. ``detections``: ``[x1, y1, x2, y2, score, 10 kps]``.

    >>> det = [0, 0, 10, 10, 0.9, 3, 4, 7, 4, 5, 6, 3, 8, 7, 8]
    >>> match_keypoints((0, 0, 10, 11), [det]).shape, match_keypoints((20, 20, 30, 30), [det])
    ((5, 2), None)
    """
    box = [float(v) for v in box]
    best, best_iou = None, min_iou
    gx, gy = 0.15 * (box[2] - box[0]), 0.15 * (box[3] - box[1])
    detections = [d for d in detections if len(d) >= 15]
    ious = box_iou(np.array([box]), np.array([d[:4] for d in detections]).reshape(-1, 4), np.float64)[0]
    for d, iou in zip(detections, ious):
        k = np.asarray(d[5:15], np.float32).reshape(5, 2)
        inside = np.all((k[:, 0] >= box[0] - gx) & (k[:, 0] <= box[2] + gx) & (k[:, 1] >= box[1] - gy) & (k[:, 1] <= box[3] + gy))
        if iou >= best_iou and inside:
            best, best_iou = k, iou
    return best


class KeypointCache:
    """RetinaFace detections (boxes, scores, 5 keypoints) per image, kept in a JSON file.

    Keyed by the image's absolute path, size in bytes and modification time, so an edited image is
    detected again. Small images (face crops) are padded by 30% first: the detector misses faces that
    fill the whole frame.
    """

    VERSION = 1

    def __init__(self, path: str | Path | None, min_score: float = 0.5):
        self.path = Path(path) if path else None
        self.min_score = float(min_score)
        self._det = None
        self._dirty = 0
        self.detected = 0
        self.entries: dict[str, dict] = {}
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("version") == self.VERSION and data.get("min_score") == self.min_score:
                self.entries = data.get("images", {})

    def _detector(self):
        if self._det is None:
            from maskwatch.detection import FaceDetector

            self._det = FaceDetector("retina", min_score=self.min_score, num_threads=1)
        return self._det

    @staticmethod
    def _key(path: str | Path) -> tuple[str, list]:
        p = os.path.abspath(path)
        st = os.stat(p)
        return p, [st.st_size, int(st.st_mtime)]

    def get(self, path: str | Path, image: np.ndarray | None = None) -> list[list[float]]:
        """Detections in ``path`` as ``[x1, y1, x2, y2, score, kx1, ky1, ..., kx5, ky5]`` lists."""
        key, stamp = self._key(path)
        hit = self.entries.get(key)
        if hit is not None and hit.get("stamp") == stamp:
            return hit["faces"]
        if image is None:
            image = cv2.imread(key, cv2.IMREAD_COLOR)
        faces = [] if image is None else self.detect(image)
        self.entries[key] = {"stamp": stamp, "faces": faces}
        self.detected += 1
        self._dirty += 1
        if self._dirty >= 200:
            self.save()
        return faces

    def detect(self, image: np.ndarray) -> list[list[float]]:
        h, w = image.shape[:2]
        pad = int(0.3 * max(h, w)) if max(h, w) <= 400 else 0
        img = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) if pad else image
        faces = self._detector().detect(img)
        out = []
        for box, score, kps in zip(faces.xyxy, faces.score, faces.keypoints):
            if kps.shape[0] < 5:
                continue
            vals = [float(v) - pad for v in box] + [float(score)] + [float(v) - pad for v in kps[:5].reshape(-1)]
            out.append([round(v, 2) for v in vals])
        return out

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": self.VERSION, "min_score": self.min_score, "detector": "retina",
                                   "images": self.entries}))
        os.replace(tmp, self.path)
        self._dirty = 0

    def close(self) -> None:
        self.save()
        if self._det is not None:
            self._det.close()
            self._det = None
