"""A cheap appearance cue: the colours of a person's head and shoulders, to re-link a lost track.

The region is the face box widened to the shoulders and extended down to the chest (hair, skin,
clothes: what stays the same when the face turns away); its hue-saturation histogram (16 x 8 bins)
is compared with the Bhattacharyya distance (0 = same colours, 1 = nothing in common). It is read
on a copy of the frame scaled to at most ``max_width`` pixels, so it costs little per face.

>>> import numpy as np
>>> red = np.zeros((200, 300, 3), np.uint8); red[:] = (20, 20, 200)
>>> blue = red.copy(); blue[:] = (200, 40, 20)
>>> a = Appearance().describe(red, np.array([[120, 40, 160, 90]], np.float32))
>>> b = Appearance().describe(blue, np.array([[120, 40, 160, 90]], np.float32))
>>> round(distance(a[0], a[0]), 3), distance(a[0], b[0]) > 0.9
(0.0, True)
"""

from __future__ import annotations

import numpy as np


class Appearance:
    def __init__(self, max_width: int = 480, bins: tuple[int, int] = (16, 8)):
        self.max_width = int(max_width)
        self.bins = bins

    def describe(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """(N, bins) float32 normalised histograms, one per box (zeros for a box with no pixels)."""
        import cv2

        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        out = np.zeros((len(xyxy), self.bins[0] * self.bins[1]), np.float32)
        if not len(xyxy):
            return out
        h, w = image.shape[:2]
        scale = min(self.max_width / w, 1.0)
        small = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        sh, sw = hsv.shape[:2]
        for i, (x1, y1, x2, y2) in enumerate(xyxy * scale):
            fw, fh = x2 - x1, y2 - y1
            a, b = int(max(x1 - 0.5 * fw, 0)), int(min(x2 + 0.5 * fw, sw))
            c, d = int(max(y1 - 0.2 * fh, 0)), int(min(y2 + 1.2 * fh, sh))
            if b - a < 2 or d - c < 2:
                continue
            hist = cv2.calcHist([hsv[c:d, a:b]], [0, 1], None, list(self.bins), [0, 180, 0, 256]).ravel()
            total = hist.sum()
            if total > 0:
                out[i] = hist / total
        return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two normalised histograms (1.0 when either is empty)."""
    if not a.any() or not b.any():
        return 1.0
    bc = float(np.sum(np.sqrt(a * b)))
    return float(np.sqrt(max(1.0 - bc, 0.0)))
