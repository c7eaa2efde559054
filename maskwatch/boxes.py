"""Box maths on ``(N, 4)`` xyxy pixel boxes: overlap, merging, moving, clipping to the image.

The one place for it: the detector back-ends merge and clip with it, the tracker matches with
:func:`box_iou`, the benchmarks score with it, training matches annotations to detections with
:func:`box_ios`.

>>> import numpy as np
>>> box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]), np.float64).round(3).tolist()
[[0.333, 0.0]]
"""

from __future__ import annotations

import numpy as np

from maskwatch.faces import Faces


def _intersections(a: np.ndarray, b: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a`` and ``b`` as (N, 4) xyxy arrays of ``dtype``, and their intersection areas (len(a), len(b))."""
    a = np.asarray(a, dtype).reshape(-1, 4)
    b = np.asarray(b, dtype).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return a, b, np.clip(rb - lt, 0, None).prod(axis=2)


def box_iou(a: np.ndarray, b: np.ndarray, dtype=np.float32) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes, computed in ``dtype``.

    float32 is what the detector's merges were tuned with; the tracker asks for float64 (its
    matching cost adds IoU to a distance, and keeps the precision it always had).

    >>> [round(float(v), 3) for v in box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0]]
    [0.333]
    >>> box_iou(np.zeros((0, 4)), np.array([[0, 0, 1, 1]])).shape
    (0, 1)
    """
    a, b, inter = _intersections(a, b, dtype)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def box_ios(a: np.ndarray, b: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Intersection over the smaller box's area, matrix (len(a), len(b)) of xyxy boxes, in ``dtype``.

    1 where one box lies inside the other whatever their sizes (their IoU can be small): how well an
    annotated face box and a detection cover each other (``train.data`` matches them with it). Areas
    are taken as given (not clipped); the smaller one is floored at 1e-6.

    >>> box_ios(np.array([[0, 0, 10, 10]]), np.array([[2, 2, 6, 6], [5, 0, 15, 10], [20, 20, 30, 30]])).round(3).tolist()
    [[1.0, 0.5, 0.0]]
    """
    a, b, inter = _intersections(a, b, dtype)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-6)


def weighted_nms(xyxy: np.ndarray, score: np.ndarray, keypoints: np.ndarray, iou: float, contained: float = 0.6):
    """MediaPipe-style weighted NMS: each kept face is the score-weighted mean of its cluster.

    Returns (xyxy, score, keypoints) of the kept faces, best first.

    >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    >>> kept, score, _ = weighted_nms(boxes, np.array([0.9, 0.3, 0.8], np.float32), np.zeros((3, 6, 2), np.float32), 0.3)
    >>> kept.round(2).tolist(), score.tolist()
    ([[0.25, 0.0, 10.25, 10.0], [50.0, 50.0, 60.0, 60.0]], [0.8999999761581421, 0.800000011920929])
    """
    order = np.argsort(-score)
    xyxy, score, keypoints = xyxy[order], score[order], keypoints[order]
    alive = np.ones(len(score), bool)
    out_b, out_s, out_k = [], [], []
    for i in range(len(score)):
        if not alive[i]:
            continue
        members = np.flatnonzero(alive)
        members = members[box_iou(xyxy[i], xyxy[members])[0] >= iou]
        members = np.union1d(members, [i])
        alive[members] = False
        w = score[members][:, None]
        out_b.append((xyxy[members] * w).sum(0) / w.sum())
        out_k.append((keypoints[members] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(score[i])
    if not out_s:
        return xyxy[:0], score[:0], keypoints[:0]
    xyxy, score, keypoints = np.stack(out_b), np.asarray(out_s, np.float32), np.stack(out_k)
    # Averaged boxes of neighbouring clusters can still overlap, and the network fires on parts of
    # big faces (a respirator mask alone looks like a face): drop a box that overlaps a better one
    # by ``iou`` or lies mostly (``contained``) inside it.
    keep = np.ones(len(score), bool)
    overlap = box_iou(xyxy, xyxy)
    inside = _intersections(xyxy, xyxy, xyxy.dtype)[2] / np.maximum((xyxy[:, 2:] - xyxy[:, :2]).prod(axis=1), 1e-9)[None, :]
    for i in range(len(score)):
        if keep[i]:
            later = np.arange(len(score)) > i
            keep[later & ((overlap[i] >= iou) | (inside[i] >= contained))] = False
    return xyxy[keep], score[keep], keypoints[keep]


def nms_indices(xy: np.ndarray, wh: np.ndarray, score: np.ndarray, min_score: float, iou: float) -> np.ndarray:
    """Indices of the boxes (top-left ``xy``, size ``wh``) that OpenCV's greedy NMS keeps
    (``cv2.dnn.NMSBoxes``: score at least ``min_score``, overlap under ``iou``), best first.

    >>> xy = np.array([[0, 0], [1, 1], [50, 50]], np.float32); wh = np.full((3, 2), 10, np.float32)
    >>> nms_indices(xy, wh, np.array([0.9, 0.8, 0.7]), 0.5, 0.4).tolist()
    [0, 2]
    """
    import cv2  # here: the rest of this module is numpy only (tracking imports it)

    boxes = np.hstack([xy, wh]).tolist()
    return np.asarray(cv2.dnn.NMSBoxes(boxes, np.asarray(score).tolist(), min_score, iou), int).reshape(-1)


def calibrate_boxes(xyxy: np.ndarray, calibration) -> np.ndarray:
    """Move and resize boxes: centre += (dx * width, dy * height), size *= (sw, sh).

    >>> calibrate_boxes(np.array([[0, 0, 10, 20]], np.float32), (0.1, 0.25, 1.0, 0.5)).tolist()
    [[1.0, 10.0, 11.0, 20.0]]
    """
    dx, dy, sw, sh = calibration
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2 + wh * np.array([dx, dy], np.float32)
    half = wh * np.array([sw, sh], np.float32) / 2
    return np.hstack([centre - half, centre + half])


def clipped_faces(xyxy, score, keypoints, width: int, height: int) -> Faces:
    """:class:`Faces` with boxes clipped to a ``width`` x ``height`` image and degenerate ones (< 1 px) dropped.

    Scores are clipped to [0, 1]; no faces give empty arrays ((0, 4) boxes, (0, 6, 2) keypoints).

    >>> f = clipped_faces([[-5, 10, 20, 30], [90, 0, 130, 5]], [0.9, 1.2], np.zeros((2, 6, 2)), 100, 50)
    >>> f.xyxy.tolist(), f.score.tolist()
    ([[0.0, 10.0, 20.0, 30.0], [90.0, 0.0, 100.0, 5.0]], [0.8999999761581421, 1.0])
    >>> len(clipped_faces([[100, 0, 120, 10]], [0.5], np.zeros((1, 5, 2)), 100, 50))  # outside: dropped
    0
    """
    if len(score) == 0:
        return Faces(xyxy=np.zeros((0, 4), np.float32), score=np.zeros(0, np.float32), keypoints=np.zeros((0, 6, 2), np.float32))
    xyxy = np.asarray(xyxy, np.float32).copy()
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
    return Faces(
        xyxy=xyxy[keep],
        score=np.asarray(score, np.float32)[keep].clip(0, 1),
        keypoints=np.asarray(keypoints, np.float32).reshape(len(xyxy), -1, 2)[keep],
    )


def outside_regions(xyxy: np.ndarray, regions, width: int, height: int) -> np.ndarray:
    """True for each box whose centre is outside every region (``[x1, y1, x2, y2]`` fractions of a
    ``width`` x ``height`` frame): the faces that are kept when those regions are ignored.

    >>> outside_regions(np.array([[10, 10, 30, 30], [60, 60, 80, 80]]), [[0.5, 0.5, 1, 1]], 100, 100).tolist()
    [True, False]
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    keep = np.ones(len(xyxy), bool)
    if not len(xyxy) or not len(regions):
        return keep
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / width
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / height
    for x1, y1, x2, y2 in regions:
        keep &= ~((cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2))
    return keep
