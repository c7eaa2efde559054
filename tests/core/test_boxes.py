"""maskwatch.boxes: the one module for box maths (IoU, weighted NMS, calibration, clipping)."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch import boxes, detection
from maskwatch.tracking import centroid, matching
from maskwatch.boxes import box_iou, calibrate_boxes, clipped_faces, weighted_nms


def test_detection_and_tracking_use_the_one_box_iou():
    assert detection.box_iou is box_iou and matching.box_iou is box_iou and centroid.gated_cost is matching.gated_cost
    assert detection.weighted_nms is boxes.weighted_nms and detection.calibrate_boxes is boxes.calibrate_boxes


def test_box_iou_values_shapes_and_dtypes():
    a = np.array([[0, 0, 10, 10], [0, 0, 20, 20]])
    b = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [30, 30, 40, 40]])
    iou32, iou64 = box_iou(a, b), box_iou(a, b, np.float64)
    assert iou32.dtype == np.float32 and iou64.dtype == np.float64  # the detector's and the tracker's precision
    np.testing.assert_allclose(iou64, [[1.0, 0.0, 0.0], [0.25, 0.25, 0.0]])
    np.testing.assert_allclose(iou32, iou64, rtol=1e-6)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3) and box_iou(a, []).shape == (2, 0)
    assert box_iou([1, 2, 3, 4], [1, 2, 3, 4]).shape == (1, 1)  # one box as a flat list


def test_box_iou_of_degenerate_boxes_is_zero_not_nan():
    point = np.array([[5, 5, 5, 5]])
    inverted = np.array([[10, 10, 0, 0]])
    assert box_iou(point, point).tolist() == [[0.0]]
    assert box_iou(inverted, [[0, 0, 10, 10]]).tolist() == [[0.0]]


def test_weighted_nms_empty_and_order():
    empty = weighted_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32), 0.3)
    assert [x.shape for x in empty] == [(0, 4), (0,), (0, 6, 2)]
    far = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [200, 0, 210, 10]], np.float32)
    xyxy, score, kps = weighted_nms(far, np.array([0.5, 0.9, 0.7], np.float32), np.arange(36, dtype=np.float32).reshape(3, 6, 2), 0.3)
    assert score.tolist() == pytest.approx([0.9, 0.7, 0.5])  # best first, nothing merged
    assert xyxy[0].tolist() == pytest.approx([100, 100, 110, 110]) and kps[0, 0].tolist() == pytest.approx([12, 13])  # keypoints travel with their box


def test_weighted_nms_averages_keypoints_by_score():
    b = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], np.float32)
    kps = np.zeros((2, 6, 2), np.float32)
    kps[1] += 4
    xyxy, score, out_k = weighted_nms(b, np.array([0.75, 0.25], np.float32), kps, 0.3)
    assert len(score) == 1 and xyxy[0].tolist() == pytest.approx([0.5, 0, 10.5, 10])
    assert out_k[0, 0].tolist() == pytest.approx([1.0, 1.0])


def test_calibrate_boxes_identity_and_shift():
    b = np.array([[10, 20, 30, 60]], np.float32)
    assert calibrate_boxes(b, (0.0, 0.0, 1.0, 1.0)).tolist() == b.tolist()
    assert calibrate_boxes(b, (0.5, 0.0, 2.0, 1.0)).tolist() == [[10.0, 20.0, 50.0, 60.0]]  # centre +10 px, twice as wide
    assert calibrate_boxes(np.zeros((0, 4)), (0.1, 0.1, 1, 1)).shape == (0, 4)


def test_clipped_faces_clips_drops_and_keeps_shapes():
    xyxy = [[-10, -10, 20, 20], [95, 45, 120, 70], [-30, 0, -1, 10], [10, 10, 10.5, 30]]
    faces = clipped_faces(xyxy, [0.5, 1.5, 0.9, 0.9], np.zeros((4, 5, 2)), 100, 50)
    assert faces.xyxy.tolist() == [[0, 0, 20, 20], [95, 45, 100, 50]]  # left of the image and thinner than 1 px: dropped
    assert faces.score.tolist() == [0.5, 1.0] and faces.keypoints.shape == (2, 5, 2)
    assert faces.xyxy.dtype == np.float32 and faces.score.dtype == np.float32
    none = clipped_faces([], [], [], 100, 50)
    assert none.xyxy.shape == (0, 4) and none.score.shape == (0,) and none.keypoints.shape == (0, 6, 2)
    src = np.array([[-1, 0, 5, 5]], np.float32)
    clipped_faces(src, [0.5], np.zeros((1, 6, 2)), 10, 10)
    assert src.tolist() == [[-1, 0, 5, 5]]  # the caller's array is not changed
