"""Camera-motion compensation: how the whole picture moved since the previous frame.

As BoT-SORT does it: corners (``cv2.goodFeaturesToTrack``, at most ``max_corners``, ``min_distance``
> 0 so a textured patch cannot take them all) on a small grey copy of the frame, followed by sparse
optical flow (``cv2.calcOpticalFlowPyrLK``), and a partial affine transform (rotation, uniform scale,
translation) fitted with RANSAC (``cv2.estimateAffinePartial2D``). The tracker moves its tracks by
it before matching, so a pan, a zoom or a shaking hand does not look like every person jumping.
Working on a frame ``width`` pixels wide keeps the cost near a millisecond at 1080p.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> scene = (rng.random((400, 700)) * 255).astype(np.uint8)
>>> scene = __import__("cv2").GaussianBlur(scene, (0, 0), 2)
>>> cmc = CameraMotion(width=320)
>>> cmc.estimate(scene[50:350, 50:650]) is None          # the first frame: nothing to compare with
True
>>> m = cmc.estimate(scene[50:350, 62:662])              # the camera panned 12 px to the right
>>> round(float(m[0, 2])), round(float(m[1, 2])), round(float(m[0, 0]), 2)
(-12, 0, 1.0)
"""

from __future__ import annotations

import numpy as np


class CameraMotion:
    """``estimate(image)`` -> the 2x3 affine that maps the previous frame's pixels to this frame's
    (``None`` for the first frame, after :meth:`reset`, or when too few corners could be followed)."""

    def __init__(self, width: int = 256, max_corners: int = 150, min_distance: int = 6, min_points: int = 12):
        if not 0 < max_corners <= 400 or min_distance <= 0:
            raise ValueError("camera motion: 0 < max_corners <= 400 and min_distance > 0")
        self.width = int(width)
        self.max_corners = int(max_corners)
        self.min_distance = int(min_distance)
        self.min_points = int(min_points)
        self._prev: np.ndarray | None = None
        self._scale = 1.0

    def reset(self) -> None:
        """Forget the previous frame (a reconnect, a new frame size)."""
        self._prev = None

    def estimate(self, image: np.ndarray) -> np.ndarray | None:
        import cv2

        h, w = image.shape[:2]
        scale = min(self.width / w, 1.0)
        small = cv2.resize(image, (max(int(w * scale), 8), max(int(h * scale), 8)), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape or scale != self._scale:
            self._scale = scale
            return None
        pts = cv2.goodFeaturesToTrack(prev, self.max_corners, 0.01, self.min_distance)
        if pts is None or len(pts) < self.min_points:
            return None
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, grey, pts, None, winSize=(15, 15), maxLevel=2)
        ok = status.ravel() == 1
        if ok.sum() < self.min_points:
            return None
        m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if m is None or inliers is None or inliers.sum() < self.min_points:
            return None
        m = m.astype(np.float64)
        m[:, 2] /= scale  # translation back in full-frame pixels (rotation and scale do not change)
        return m


def warp_boxes(m: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Boxes moved by the affine ``m``: centres transformed, sizes scaled by its scale factor.

    >>> warp_boxes(np.array([[1.1, 0, 5], [0, 1.1, -3]]), np.array([[0, 0, 10, 20]], np.float32)).round(1).tolist()
    [[5.0, -3.0, 16.0, 19.0]]
    """
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) / 2
    s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    c = centre @ m[:, :2].T + m[:, 2]
    return np.concatenate([c - half * s, c + half * s], axis=1).astype(np.float32)


class AutoCameraMotion:
    """``camera_motion = "auto"``: :class:`CameraMotion` only while the camera moves.

    A fixed camera (most sites) should not pay for optical flow on every frame. While the camera
    looks still, the motion is measured on one pair of consecutive frames every ``probe_every``
    frames (two small grey frames and one flow); as soon as a probe sees the picture move (a
    translation over ``min_shift`` of the frame width per frame, or a scale or rotation over
    ``min_turn``), every frame is compensated, until ``hold`` frames in a row look still again.
    ``estimate`` returns the affine to apply (``None``: nothing to do); ``wants_frame`` says
    whether the next call will look at the frame at all (the tracker skips making the small copy).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scene = __import__("cv2").GaussianBlur((rng.random((400, 900)) * 255).astype(np.uint8), (0, 0), 2)
    >>> auto = AutoCameraMotion(CameraMotion(width=320), probe_every=4, hold=3)
    >>> still = [auto.estimate(scene[50:350, 50:650]) for _ in range(8)]
    >>> all(m is None for m in still), auto.moving
    (True, False)
    >>> pan = [auto.estimate(scene[50:350, 50 + 10 * i:650 + 10 * i]) for i in range(1, 9)]
    >>> auto.moving, round(float(pan[-1][0, 2]))       # found moving by a probe, then every frame
    (True, -10)
    """

    def __init__(self, cmc: CameraMotion, probe_every: int = 10, hold: int = 50, min_shift: float = 0.0015,
                 min_turn: float = 0.002):
        self.cmc = cmc
        self.probe_every = max(int(probe_every), 2)
        self.hold = max(int(hold), 1)
        self.min_shift = float(min_shift)
        self.min_turn = float(min_turn)
        self.moving = False
        self._calls = 0
        self._still = 0

    def reset(self) -> None:
        self.cmc.reset()
        self.moving = False
        self._calls = 0
        self._still = 0

    def wants_frame(self) -> bool:
        return self.moving or (self._calls % self.probe_every) in (0, 1)

    def estimate(self, image: np.ndarray | None) -> np.ndarray | None:
        phase = self._calls % self.probe_every
        self._calls += 1
        if image is None:
            self.cmc.reset()
            return None
        if self.moving:
            m = self.cmc.estimate(image)
            self._still = 0 if self._moved(m, image.shape[1]) else self._still + 1
            if self._still >= self.hold:
                self.moving = False
                self._calls = 0
            return m
        if phase == 0:  # the first frame of a probe
            self.cmc.reset()
            self.cmc.estimate(image)
            return None
        if phase == 1:
            m = self.cmc.estimate(image)
            if self._moved(m, image.shape[1]):
                self.moving, self._still = True, 0
                return m
        return None

    def _moved(self, m: np.ndarray | None, width: int) -> bool:
        if m is None:
            return False
        shift = float(np.hypot(m[0, 2], m[1, 2])) / width  # m's translation is in pixels of the image given
        turn = float(np.abs(m[:, :2] - np.eye(2)).max())
        return shift > self.min_shift or turn > self.min_turn
