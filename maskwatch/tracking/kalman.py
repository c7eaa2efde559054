"""A constant-velocity Kalman filter on face boxes: centre, size and their velocities.

Ported from the ByteTrack / supervision ``KalmanFilter`` (after ``deep_sort``) with the state of
BoT-SORT's variant: ``(cx, cy, w, h, vcx, vcy, vw, vh)`` rather than an aspect ratio, since faces
turn and their boxes change shape. Process and measurement noise scale with the box size (a 12 px
CCTV face and a 300 px webcam face are equally uncertain in face sizes). Numpy only; the states of
all tracks are stacked so one call predicts them all.

ByteTrack: Copyright (c) 2021 Yifu Zhang, MIT licence. supervision: Copyright (c) 2022 Roboflow,
MIT licence. The MIT notice: "Permission is hereby granted, free of charge, to any person obtaining
a copy of this software [...] The above copyright notice and this permission notice shall be
included in all copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS",
WITHOUT WARRANTY OF ANY KIND." (this module is a rewrite on those lines, not a copy).

>>> import numpy as np
>>> kf = BoxKalman()
>>> mean, cov = kf.initiate(np.array([[100.0, 50.0, 20.0, 24.0]]))
>>> for x in (104.0, 108.0, 112.0, 116.0, 120.0):          # 4 px a frame to the right
...     mean, cov = kf.predict(mean, cov)
...     mean, cov = kf.update(mean, cov, np.array([[x, 50.0, 20.0, 24.0]]))
>>> mean, cov = kf.predict(mean, cov)
>>> round(float(mean[0, 0])), round(float(mean[0, 4]), 1)   # where it is now, its speed
(123, 3.4)
"""

from __future__ import annotations

import numpy as np

NDIM = 4


class BoxKalman:
    """Stacked Kalman states: ``mean`` (N, 8), ``cov`` (N, 8, 8); measurements (N, 4) ``cx, cy, w, h``."""

    def __init__(self, std_position: float = 1.0 / 20, std_velocity: float = 1.0 / 160):
        self.std_position = float(std_position)
        self.std_velocity = float(std_velocity)
        self._motion = np.eye(2 * NDIM)
        self._motion[:NDIM, NDIM:] = np.eye(NDIM)  # one frame per step
        self._observe = np.eye(NDIM, 2 * NDIM)

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.asarray(measurement, np.float64).reshape(-1, NDIM)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        size = _size(z)
        std = np.concatenate([np.repeat(2 * self.std_position * size, NDIM, axis=1),
                              np.repeat(10 * self.std_velocity * size, NDIM, axis=1)], axis=1)
        return mean, _diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(mean):
            return mean, cov
        size = _size(mean)
        std = np.concatenate([np.repeat(self.std_position * size, NDIM, axis=1),
                              np.repeat(self.std_velocity * size, NDIM, axis=1)], axis=1)
        f = self._motion
        mean = mean @ f.T
        cov = f @ cov @ f.T + _diag(std ** 2)
        return mean, cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        std = self.std_position * np.repeat(_size(mean), NDIM, axis=1)
        h = self._observe
        return mean @ h.T, h @ cov @ h.T + _diag(std ** 2)

    def update(self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(mean):
            return mean, cov
        z = np.asarray(measurement, np.float64).reshape(-1, NDIM)
        projected, s = self.project(mean, cov)
        pht = cov @ self._observe.T  # (N, 8, 4)
        gain = np.linalg.solve(s, np.transpose(pht, (0, 2, 1)))  # (N, 4, 8) = S^-1 (P H^T)^T
        gain = np.transpose(gain, (0, 2, 1))  # (N, 8, 4)
        innovation = z - projected
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        cov = cov - gain @ s @ np.transpose(gain, (0, 2, 1))
        return mean, cov

    @staticmethod
    def warp(mean: np.ndarray, cov: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States moved by the camera's 2x3 partial affine ``m`` (as BoT-SORT's GMC applies it):
        centre ``R c + t``, velocity ``R v``, size and size velocity times the scale."""
        if not len(mean):
            return mean, cov
        r = np.asarray(m[:, :2], np.float64)
        t = np.asarray(m[:, 2], np.float64)
        s = float(np.sqrt(abs(np.linalg.det(r))))
        big = np.zeros((2 * NDIM, 2 * NDIM))
        big[0:2, 0:2] = r
        big[2:4, 2:4] = s * np.eye(2)
        big[4:6, 4:6] = r
        big[6:8, 6:8] = s * np.eye(2)
        mean = mean @ big.T
        mean[:, :2] += t
        cov = big @ cov @ big.T
        return mean, cov


def _size(x: np.ndarray) -> np.ndarray:
    """(N, 1) the face size the noise scales with: the larger side, at least 1 px."""
    return np.maximum(np.maximum(x[:, 2:3], x[:, 3:4]), 1.0)


def _diag(values: np.ndarray) -> np.ndarray:
    n, d = values.shape
    out = np.zeros((n, d, d))
    idx = np.arange(d)
    out[:, idx, idx] = values
    return out


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """``[[x1, y1, x2, y2]]`` -> ``[[cx, cy, w, h]]`` (float64).

    >>> xyxy_to_cxcywh(np.array([[10, 20, 30, 60]])).tolist()
    [[20.0, 40.0, 20.0, 40.0]]
    """
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)


def cxcywh_to_xyxy(state: np.ndarray) -> np.ndarray:
    """The box of a state's first four values (float32), at least 2 px a side."""
    s = np.asarray(state, np.float64).reshape(-1, state.shape[-1])
    half = np.maximum(s[:, 2:4], 2.0) / 2
    return np.concatenate([s[:, :2] - half, s[:, :2] + half], axis=1).astype(np.float32)
