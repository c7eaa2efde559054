"""Matching tracks to detections: a gated cost and the Hungarian assignment.

The cost mixes box overlap and centre distance relative to face size, as the centroid tracker
always did: ``(1 - IoU) + distance_weight * d``, ``d`` = centre distance / the larger face size. A
pair is allowed when IoU >= ``min_iou`` *or* ``d`` <= the allowed distance, and the two sizes differ
by less than ``max_size_ratio``. Small CCTV faces move several of their own widths between
detections, so IoU alone (ByteTrack's only cue) loses them; the size-normalised gate keeps them.
The assignment is ``scipy.optimize.linear_sum_assignment`` on the allowed pairs.

>>> import numpy as np
>>> tracks = np.array([[0, 0, 10, 10], [100, 100, 120, 120]], np.float32)
>>> dets = np.array([[104, 101, 124, 121], [6, 0, 16, 10], [300, 300, 310, 310]], np.float32)
>>> cost, ok = gated_cost(tracks, dets, max_distance=np.array([1.0, 1.0]))
>>> assign(cost, ok)
([(0, 1), (1, 0)], [], [2])
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from maskwatch.boxes import box_iou

BLOCKED = 1e6


def gated_cost(a: np.ndarray, b: np.ndarray, *, max_distance: np.ndarray, min_iou: float = 0.1,
               distance_weight: float = 0.5, max_size_ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Cost (T, D) and allowed mask between predicted track boxes ``a`` (T, 4) and detections ``b``
    (D, 4), xyxy. ``max_distance`` (T,): the centre gate of each track, in face sizes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iou = box_iou(a, b, np.float64)
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    sa = np.maximum(a[:, 2:] - a[:, :2], 1.0).max(axis=1)
    sb = np.maximum(b[:, 2:] - b[:, :2], 1.0).max(axis=1)
    big = np.maximum(sa[:, None], sb[None, :])
    dist = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2) / big
    ratio = big / np.minimum(sa[:, None], sb[None, :])
    gate = np.asarray(max_distance, np.float64).reshape(-1, 1)
    allowed = ((iou >= min_iou) | (dist <= gate)) & (ratio <= max_size_ratio)
    return (1.0 - iou) + distance_weight * dist, allowed


def assign(cost: np.ndarray, allowed: np.ndarray) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian assignment on the allowed pairs: (matches (row, col), unmatched rows, unmatched cols)."""
    rows_n, cols_n = cost.shape
    if not rows_n or not cols_n or not allowed.any():
        return [], list(range(rows_n)), list(range(cols_n))
    rows, cols = linear_sum_assignment(np.where(allowed, cost, BLOCKED))
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]
    mr, mc = {r for r, _ in matches}, {c for _, c in matches}
    return matches, [r for r in range(rows_n) if r not in mr], [c for c in range(cols_n) if c not in mc]
