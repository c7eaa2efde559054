"""Motion gating for fixed cameras: run the face detector only where the picture changed.

``retina`` with ``motion = true`` wraps :class:`~maskwatch.detection.retina.RetinaDetector` in a
:class:`MotionGatedDetector`. Each frame, a :class:`MotionMask` (OpenCV's MOG2 background
subtractor on a small grey copy of the frame, about ``motion_width`` px wide) says which parts
moved:

- every ``full_every`` frames (and on the first frames, while the background is learnt, and
  when most of the picture moved: a camera that pans, lights switched on) the detector runs on
  the whole frame, as without gating, so people who stand still are found again;
- in between it runs only on the moving regions (grown by 32 px and a quarter of their size, the
  head above a moving body), a small one (up to 0.35 of the frame height: a far person) at
  ``region_scale`` times the frame's own size, which is *higher* than the whole-frame pass of a
  big frame (1080p runs at 0.5): the time saved by not looking at the still parts buys recall on
  the smallest faces where people move. A big region (someone close: big faces, which RetinaFace
  scores better downscaled) runs at the whole frame's scale; regions that together cost more
  than the whole frame fall back to a whole-frame pass;
- faces of the last whole-frame pass that lie where nothing moved are given again (a still
  person is still there, at the same place), so the pipeline's tracker keeps matching them;
  those where something moved are replaced by what the regions show.

A frame without motion therefore costs the grey resize and the subtractor (well under 1 ms for
1080p) instead of a network pass. The gate keeps state from frame to frame: one detector per
camera (the pipeline builds one per stream). A still image is a first frame: a whole-frame pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.boxes import box_iou, clipped_faces, nms_indices
from maskwatch.faces import Faces


@dataclass(frozen=True)
class Region:
    """A moving region, in pixels of the full frame: ``x0, y0, x1, y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


def merge_boxes(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes that overlap or touch merged into their union, until none do.

    >>> merge_boxes([(0, 0, 10, 10), (5, 5, 20, 20), (40, 40, 50, 50)])
    [(0, 0, 20, 20), (40, 40, 50, 50)]
    """
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        out: list[tuple[int, int, int, int]] = []
        for b in boxes:
            for i, o in enumerate(out):
                if b[0] <= o[2] and o[0] <= b[2] and b[1] <= o[3] and o[1] <= b[3]:
                    out[i] = (min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return sorted(boxes)


class MotionMask:
    """Where a fixed camera's picture moved: MOG2 background subtraction on a small grey frame.

    ``regions(bgr)`` returns the moving regions in full-frame pixels (grown by ``pad`` px and
    merged where they touch) and the share of the small frame that moved. Shadows (MOG2's grey
    label) do not count; specks smaller than ``min_area`` of the small frame are noise.

    >>> m = MotionMask(width=64)
    >>> still = np.full((120, 160, 3), 90, np.uint8)
    >>> for _ in range(5):
    ...     _ = m.regions(still)
    >>> moved = still.copy(); moved[40:80, 60:100] = 250
    >>> regions, share = m.regions(moved)
    >>> [(r.x0 <= 60, r.x1 >= 100) for r in regions], round(share, 2)
    ([(True, True)], 0.08)
    """

    def __init__(self, width: int = 320, pad: float = 32.0, min_area: float = 0.0005, history: int = 300,
                 learning_rate: float = 0.01):
        self.width, self.pad, self.min_area = int(width), float(pad), float(min_area)
        self.learning_rate = float(learning_rate)
        self._sub = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=16, detectShadows=True)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.frames = 0
        self.grey: np.ndarray | None = None  # the last small grey frame
        self.scale = (1.0, 1.0)  # small grey px per frame px (x, y)

    def changed(self, reference: np.ndarray, xyxy: np.ndarray, threshold: float = 6.0) -> np.ndarray:
        """Per box (frame px): did the last small grey frame change there since ``reference`` (an
        earlier one)? The mean absolute grey difference inside the box is above ``threshold``.
        A person who moves slowly far away blends into the background model; this test does not."""
        if self.grey is None or reference is None or reference.shape != self.grey.shape or not len(xyxy):
            return np.ones(len(xyxy), bool)
        sx, sy = self.scale
        gh, gw = self.grey.shape
        diff = cv2.absdiff(self.grey, reference)
        out = np.zeros(len(xyxy), bool)
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(xyxy, np.float64)):
            a, b = int(max(0, np.floor(x0 * sx))), int(min(gw, np.ceil(x1 * sx)))
            c, d = int(max(0, np.floor(y0 * sy))), int(min(gh, np.ceil(y1 * sy)))
            out[i] = b <= a or d <= c or float(diff[c:d, a:b].mean()) > threshold
        return out

    def regions(self, bgr: np.ndarray) -> tuple[list[Region], float]:
        h, w = bgr.shape[:2]
        scale = min(1.0, self.width / float(w))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else bgr
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        self.grey, self.scale = grey, (sw / float(w), sh / float(h))
        # the first frame sets the model; after it a fixed rate: OpenCV's default (1 / frames seen)
        # learns so fast at first that something moving in during the first seconds is background
        # within a frame or two; 1/100 absorbs a person who stands still in a few seconds (the
        # detector's own whole-frame passes and the change test keep them)
        mask = self._sub.apply(grey, learningRate=-1 if self.frames == 0 else self.learning_rate)
        self.frames += 1
        mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)[1]  # 127 = shadow
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        share = float(np.count_nonzero(mask)) / mask.size
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_px = max(1.0, self.min_area * mask.size)
        fx, fy = w / float(sw), h / float(sh)
        boxes = []
        for x, y, bw, bh, area in stats[1:n]:
            if area < min_px:
                continue
            boxes.append((
                max(0, int((x * fx) - self.pad)), max(0, int((y * fy) - self.pad)),
                min(w, int(np.ceil((x + bw) * fx + self.pad))), min(h, int(np.ceil((y + bh) * fy + self.pad))),
            ))
        return [Region(*b) for b in merge_boxes(boxes)], share


class MotionGatedDetector:
    """A whole-frame detector (``detect``, ``detect_at``, ``input_size``) run only where a :class:`MotionMask` saw motion.

    See the module docstring. ``last_pass`` says what the last call did: ``"full"``,
    ``"regions"`` or ``"none"`` (nothing moved: the known faces were given again).
    """

    WARMUP_FRAMES = 5  # MOG2 calls everything foreground until it has seen a few frames
    MAX_MOVING_SHARE = 0.4  # more of the picture moved than this: a whole-frame pass
    MIN_REGION = 96  # a region's side in frame pixels at least (context around a small face)
    SMALL_REGION = 0.35  # a region this share of the frame height or less is small: it runs at region_scale
    GROW = 0.25  # a moving region is grown by this share of its size on each side (the head above a moving body)

    def __init__(self, detector, full_every: int = 5, region_scale: float = 1.0, width: int = 320, pad: float = 32.0,
                 max_pixels: float | None = None):
        self.detector = detector
        self.full_every = max(1, int(full_every))
        self.region_scale = float(region_scale)
        self.max_pixels = float(max_pixels) if max_pixels else None
        self.mask = MotionMask(width=width, pad=pad)
        self._since_full = 0
        self._static: Faces | None = None  # the faces known now: the last whole-frame pass's, updated by region passes
        self._size: tuple[int, int] | None = None
        # the small grey frame as it was when each part of it was last looked at by the detector
        self._reference: np.ndarray | None = None
        self.last_pass = "none"
        self.last_regions: list[Region] = []

    @property
    def options(self):
        """The wrapped detector's options."""
        return getattr(self.detector, "options", None)

    def input_size(self, width: int, height: int) -> tuple[int, int, float]:
        """The wrapped detector's whole-frame input size for a ``width`` x ``height`` frame."""
        return self.detector.input_size(width, height)

    def _full(self, bgr: np.ndarray) -> Faces:
        faces = self.detector.detect(bgr)
        self._static, self._since_full, self.last_pass = faces, 0, "full"
        self._reference = None if self.mask.grey is None else self.mask.grey.copy()
        return faces

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        if self._size != (w, h):  # a new camera size: start over
            self.mask = MotionMask(width=self.mask.width, pad=self.mask.pad, min_area=self.mask.min_area)
            self._size, self._static = (w, h), None
        regions, share = self.mask.regions(bgr)
        self._since_full += 1
        if (self._static is None or self.mask.frames <= self.WARMUP_FRAMES or self._since_full >= self.full_every
                or share > self.MAX_MOVING_SHARE):
            return self._full(bgr)
        static = self._static
        if len(static):
            # a known face whose pixels changed (a slow walker the background model has absorbed)
            # is looked for again around where it was
            moved = self.mask.changed(self._reference, static.xyxy)
            for x0, y0, x1, y1 in static.xyxy[moved]:
                bw, bh = x1 - x0, y1 - y0
                regions.append(Region(max(0, int(x0 - bw)), max(0, int(y0 - bh)), min(w, int(x1 + bw)), min(h, int(y1 + bh))))
        regions = merge_boxes_regions([self._grown(r, w, h) for r in regions])
        self.last_regions = regions
        # the whole-frame pass's scale; small regions (far people) run at region_scale when it is
        # higher, big ones (people near the camera, big faces) at the whole frame's own scale
        full_scale = self.detector.input_size(w, h)[2]
        small = max(full_scale, self.region_scale)
        scales = [small if max(r.x1 - r.x0, r.y1 - r.y0) <= self.SMALL_REGION * h else full_scale for r in regions]
        budget = self.max_pixels or float(w * h)
        if sum(r.area * s * s for r, s in zip(regions, scales)) > budget:
            # the regions cost more than a whole-frame pass: try them all at the whole frame's
            # scale; still too much, a whole-frame pass
            scales = [full_scale] * len(regions)
            if sum(r.area for r in regions) * full_scale * full_scale > budget:
                return self._full(bgr)
        boxes, scores, kps = [], [], []
        for r, scale in zip(regions, scales):
            faces = self.detector.detect_at(bgr[r.y0:r.y1, r.x0:r.x1], scale)
            if not len(faces):
                continue
            # a face cut by an inner edge of the region is left to the next whole-frame pass
            m = 1.0
            xyxy = faces.xyxy
            cut = ((xyxy[:, 0] < m) & (r.x0 > 0)) | ((xyxy[:, 1] < m) & (r.y0 > 0))
            cut |= ((xyxy[:, 2] > r.x1 - r.x0 - m) & (r.x1 < w)) | ((xyxy[:, 3] > r.y1 - r.y0 - m) & (r.y1 < h))
            faces = faces[~cut]
            boxes.append(faces.xyxy + np.array([r.x0, r.y0, r.x0, r.y0], np.float32))
            scores.append(faces.score)
            kps.append(faces.keypoints + np.array([r.x0, r.y0], np.float32))
        if len(static):
            # a remembered face goes only where the regions looked at all of it (wholly inside one:
            # not there any more, or found again) or where a region face replaces it; a still face
            # that a walker's region merely touches stays (else it flickers while people pass)
            keep = np.ones(len(static), bool)
            if regions:
                rxy = np.array([[r.x0, r.y0, r.x1, r.y1] for r in regions], np.float32)
                sx = static.xyxy
                inside = ((sx[:, None, 0] >= rxy[None, :, 0]) & (sx[:, None, 1] >= rxy[None, :, 1])
                          & (sx[:, None, 2] <= rxy[None, :, 2]) & (sx[:, None, 3] <= rxy[None, :, 3])).any(axis=1)
                keep &= ~inside
                found = [b for b in boxes if len(b)]
                if found:
                    keep &= ~(box_iou(sx, np.concatenate(found)) >= 0.3).any(axis=1)
            boxes.append(static.xyxy[keep])
            scores.append(static.score[keep])
            kps.append(static.keypoints[keep])
        self.last_pass = "regions" if regions else "none"
        parts = [(b, s, k) for b, s, k in zip(boxes, scores, kps) if len(s)]
        if not parts:
            faces = clipped_faces([], [], [], w, h)
        else:
            xyxy, score, keypoints = (np.concatenate(p) for p in zip(*parts))
            faces = clipped_faces(*_nms(xyxy, score, keypoints, 0.4), w, h)
        if regions:  # what the regions show is what is known there now
            self._static = faces
            self._refresh_reference(regions)
        return faces

    def _refresh_reference(self, regions: list[Region]) -> None:
        grey, ref = self.mask.grey, self._reference
        if grey is None or ref is None or ref.shape != grey.shape:
            self._reference = None if grey is None else grey.copy()
            return
        sx, sy = self.mask.scale
        for r in regions:
            a, b = int(r.x0 * sx), int(np.ceil(r.x1 * sx))
            c, d = int(r.y0 * sy), int(np.ceil(r.y1 * sy))
            ref[c:d, a:b] = grey[c:d, a:b]

    def _grown(self, r: Region, w: int, h: int) -> Region:
        """``r`` grown by :attr:`GROW` and (about its centre, within the frame) to at least :attr:`MIN_REGION` px a side."""
        gx, gy = int((r.x1 - r.x0) * self.GROW), int((r.y1 - r.y0) * self.GROW)
        x0, y0, x1, y1 = max(0, r.x0 - gx), max(0, r.y0 - gy), min(w, r.x1 + gx), min(h, r.y1 + gy)
        side = self.MIN_REGION
        if x1 - x0 < side:
            cx = (x0 + x1) // 2
            x0, x1 = max(0, min(cx - side // 2, w - side)), min(w, max(cx - side // 2, 0) + side)
        if y1 - y0 < side:
            cy = (y0 + y1) // 2
            y0, y1 = max(0, min(cy - side // 2, h - side)), min(h, max(cy - side // 2, 0) + side)
        return Region(int(x0), int(y0), int(x1), int(y1))

    def reset(self) -> None:
        """Start over as on a first frame (after a camera reconnect): no background model, no
        remembered faces (they are from before the outage), a whole-frame pass next."""
        self.mask = MotionMask(width=self.mask.width, pad=self.mask.pad, min_area=self.mask.min_area,
                               learning_rate=self.mask.learning_rate)
        self._static, self._size, self._reference = None, None, None
        self._since_full = 0
        self.last_pass = "none"
        self.last_regions = []

    def close(self) -> None:
        self.detector.close()
        self._static = None


def merge_boxes_regions(regions: list[Region]) -> list[Region]:
    """:func:`merge_boxes` for :class:`Region` objects."""
    return [Region(*b) for b in merge_boxes([(r.x0, r.y0, r.x1, r.y1) for r in regions])]


def _nms(xyxy: np.ndarray, score: np.ndarray, kps: np.ndarray, iou: float):
    """Plain NMS (regions overlap a little where they were grown): the best of overlapping boxes."""
    if len(score) < 2:
        return xyxy, score, kps
    idx = nms_indices(xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2], score, 0.0, iou)
    return xyxy[idx], score[idx], kps[idx]
