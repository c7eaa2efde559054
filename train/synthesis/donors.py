"""Donors: the mask of a real masked face, cut out by GrabCut in the canonical frame (:func:`extract_donor`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from train.synthesis.geometry import (CANVAS_SCALE, CANVAS_Y0, EYE_LINE, MASK_CORE, MASK_POLYGON, REF_REGION,
                                      SEG_SCALE, _h, _region_px, _units_to_px, canvas_size, canvas_to_units,
                                      similarity_to, yaw_of)

@dataclass
class Donor:
    """A real mask in the canonical frame: colours (BGR uint8, extended past the mask's edge), alpha
    (float32 0/1), the height of its top edge (units), the donor face's yaw and where it came from."""

    bgr: np.ndarray
    alpha: np.ndarray
    top: float
    yaw: float
    face_w: float
    ref_lab: np.ndarray  # mean L, a, b of the upper face (REF_REGION) and std of L
    ref_gray: np.ndarray  # the upper face (REF_REGION) in gray, canvas resolution: the sharpness reference
    path: str = ""
    box: tuple = ()
    source: str = ""
    flipped: bool = False

    def mirrored(self) -> "Donor":
        """The same mask seen in a mirror (the canvas is symmetric about the face's centre line)."""
        return Donor(np.ascontiguousarray(self.bgr[:, ::-1]), np.ascontiguousarray(self.alpha[:, ::-1]), self.top,
                     -self.yaw, self.face_w, self.ref_lab, np.ascontiguousarray(self.ref_gray[:, ::-1]), self.path,
                     self.box, self.source, not self.flipped)


def warp_to_canvas(image: np.ndarray, keypoints: np.ndarray, scale: float = CANVAS_SCALE) -> np.ndarray | None:
    """The face of ``image`` (BGR) in the canonical frame, (H, W, 3) uint8; None if keypoints are degenerate.

    Large faces are area-shrunk first so the warp does not alias."""
    m = similarity_to(keypoints)
    if m is None:
        return None
    a = _h(m) @ canvas_to_units(0.0, scale)     # canvas px -> image px
    k = math.sqrt(abs(np.linalg.det(a[:2, :2])))  # image px per canvas px
    img = image
    if k > 1.5:  # shrink the image so one canvas pixel is about one image pixel
        f = 1.0 / k
        img = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        a = np.diag([f, f, 1.0]) @ a
    return cv2.warpAffine(img, a[:2], canvas_size(scale), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _lab(bgr: np.ndarray) -> np.ndarray:
    """Float LAB (L 0..100, a/b about -128..127) of uint8 BGR."""
    return cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)


def ref_stats(canvas_bgr: np.ndarray, exclude: np.ndarray | None = None, scale: float = CANVAS_SCALE) -> np.ndarray:
    """[mean L, mean a, mean b, std L] of the upper-face reference region (``REF_REGION``) of a canvas."""
    sy, sx = _region_px(REF_REGION, scale)
    lab = _lab(canvas_bgr[sy, sx]).reshape(-1, 3)
    if exclude is not None:
        keep = exclude[sy, sx].reshape(-1) < 0.5
        if keep.sum() > 20:
            lab = lab[keep]
    return np.array([*lab.mean(axis=0), lab[:, 0].std()], np.float32)


def _mask_top(alpha: np.ndarray, scale: float = CANVAS_SCALE) -> float | None:
    """Median height (units) of the mask's top edge over the central columns (x 46..66 units)."""
    (x1, _), (x2, _) = _units_to_px([(46, 0), (66, 0)], scale).round().astype(int)
    tops = []
    for col in alpha[:, x1:x2].T:
        rows = np.flatnonzero(col > 0.5)
        if len(rows):
            tops.append(rows[0])
    if len(tops) < (x2 - x1) // 2:
        return None
    return float(np.median(tops)) / scale + CANVAS_Y0


def _extend_colours(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Every pixel outside the mask takes the colour of the nearest mask pixel (no skin at the edge)."""
    from scipy.ndimage import distance_transform_edt

    outside = alpha < 0.5
    if not outside.any() or outside.all():
        return bgr
    _, (iy, ix) = distance_transform_edt(outside, return_indices=True)
    return bgr[iy, ix]


def segment_mask(canvas_bgr: np.ndarray, scale: float = SEG_SCALE, iterations: int = 3) -> tuple[np.ndarray | None, str]:
    """The mask of a masked face in the canonical frame: (alpha float32 0/1 or None, "ok" or why rejected).

    GrabCut seeded by ``MASK_POLYGON`` (probable mask), ``MASK_CORE`` (sure mask), a band around the
    polygon (probable background) and everything else, eyes included (sure background).
    """
    h, w = canvas_bgr.shape[:2]
    poly = _units_to_px(MASK_POLYGON, scale).round().astype(np.int32)
    prior = np.zeros((h, w), np.uint8)
    cv2.fillPoly(prior, [poly], 1)
    band_r = int(round(7 * scale))
    band = cv2.dilate(prior, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_r + 1, 2 * band_r + 1)))
    gc = np.full((h, w), cv2.GC_BGD, np.uint8)
    gc[band > 0] = cv2.GC_PR_BGD
    gc[prior > 0] = cv2.GC_PR_FGD
    (cx, cy), (rx, ry) = MASK_CORE
    c = _units_to_px([(cx, cy)], scale)[0]
    cv2.ellipse(gc, (int(round(c[0])), int(round(c[1]))), (int(round(rx * scale)), int(round(ry * scale))), 0, 0, 360,
                cv2.GC_FGD, -1)
    eye_px = int(round((EYE_LINE + 2 - CANVAS_Y0) * scale))
    gc[:eye_px] = cv2.GC_BGD
    # GrabCut on the region of interest only (the band's bounding box plus a margin)
    ys, xs = np.nonzero(band)
    m = int(round(4 * scale))
    y1, y2, x1, x2 = max(ys.min() - m, 0), min(ys.max() + m + 1, h), max(xs.min() - m, 0), min(xs.max() + m + 1, w)
    roi = np.ascontiguousarray(canvas_bgr[y1:y2, x1:x2])
    sub = np.ascontiguousarray(gc[y1:y2, x1:x2])
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means starts from OpenCV's global RNG: the same face, the same cut
    try:
        cv2.grabCut(roi, sub, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None, "grabcut failed"
    fg = np.zeros((h, w), np.uint8)
    fg[y1:y2, x1:x2] = ((sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)).astype(np.uint8)
    # the component over the mouth, holes filled, edges smoothed
    n, lab = cv2.connectedComponents(fg)
    core_label = lab[int(round(c[1])), int(round(c[0]))]
    if core_label == 0:
        return None, "mouth not in mask"
    fg = (lab == core_label).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(2 * scale) * 2 + 1,) * 2)
    fg = cv2.morphologyEx(cv2.morphologyEx(fg, cv2.MORPH_CLOSE, k), cv2.MORPH_OPEN, k)
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None, "empty"
    outline = max(contours, key=cv2.contourArea)
    if cv2.contourArea(outline) < 0.85 * cv2.contourArea(cv2.convexHull(outline)):
        return None, "ragged"   # a worn mask seen from the front is nearly convex
    fg = np.zeros_like(fg)
    cv2.drawContours(fg, [outline], -1, 1, -1)
    ratio = fg.sum() / max(prior.sum(), 1)
    if not 0.6 <= ratio <= 1.3:
        return None, "area ratio"
    if (fg & (prior == 0)).sum() > 0.15 * fg.sum():  # spilled into the background or the neck
        return None, "outside outline"
    top = _mask_top(fg.astype(np.float32), scale)
    if top is None or not 52.0 <= top <= 70.0:
        return None, "top edge"
    row = fg[int(round((92.3 - CANVAS_Y0) * scale))]
    cols = np.flatnonzero(row)
    (lx, _), (rx_, _) = _units_to_px([(34, 0), (78, 0)], scale)
    if not len(cols) or cols[0] > lx or cols[-1] < rx_:
        return None, "narrow"
    return fg.astype(np.float32), "ok"


def extract_donor(image_bgr: np.ndarray, keypoints: np.ndarray, face_w: float = 0.0,
                  scale: float = CANVAS_SCALE) -> tuple[Donor | None, str]:
    """The mask of the masked face with these keypoints, as a :class:`Donor` (or None and why not)."""
    canvas = warp_to_canvas(image_bgr, keypoints, scale)
    if canvas is None:
        return None, "keypoints"
    small = warp_to_canvas(image_bgr, keypoints, SEG_SCALE)
    alpha, why = segment_mask(small, SEG_SCALE)
    if alpha is None:
        return None, why
    # back to the canvas resolution, edges smoothed rather than staircased
    alpha = cv2.GaussianBlur(cv2.resize(alpha, canvas_size(scale), interpolation=cv2.INTER_LINEAR), (0, 0), scale / 2)
    alpha = (alpha > 0.5).astype(np.float32)
    # drop the outermost pixel ring (GrabCut's boundary is half skin), then fill colours outwards
    alpha = cv2.erode(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    bgr = _extend_colours(canvas, alpha)
    sy, sx = _region_px(REF_REGION, scale)
    ref_gray = cv2.cvtColor(np.ascontiguousarray(canvas[sy, sx]), cv2.COLOR_BGR2GRAY)
    return Donor(bgr, alpha, _mask_top(alpha, scale) or 60.0, yaw_of(keypoints), float(face_w),
                 ref_stats(canvas, alpha, scale), ref_gray), "ok"
