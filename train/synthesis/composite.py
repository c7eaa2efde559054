"""Compose: the one code path that draws a mask on a face, for every class (only the height of the
mask's top edge depends on the label); the size of the written crop and the box inside it."""

from __future__ import annotations

import math

import cv2
import numpy as np

from maskwatch.crop import DEFAULT_MARGIN, square_box
from maskwatch.errors import MaskwatchError
from train.synthesis.donors import Donor, _lab, ref_stats, warp_to_canvas
from train.synthesis.geometry import CANVAS_SCALE, REF_REGION, _h, _region_px, canvas_to_units, similarity_to

BLUR_STEPS = (0.0, 0.4, 0.7, 1.0, 1.4, 2.0, 2.8)
"""Gaussian sigmas (target pixels) tried to make the mask no sharper than the target face."""


def sharpness(gray: np.ndarray) -> float:
    """Contrast-normalised detail of a gray patch: mean |Laplacian| / (std + 4). Blur lowers it,
    lighting does not change it much."""
    g = gray.astype(np.float32)
    if min(g.shape[:2]) < 3:
        return 0.0
    return float(np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=1)[1:-1, 1:-1]).mean() / (g.std() + 4.0))


def matching_blur(donor_gray: np.ndarray, target_sharpness: float, k: float) -> float:
    """The smallest sigma of ``BLUR_STEPS`` after which the donor's upper face, brought to the target's
    resolution (``k`` target px per canvas px), is no sharper than the target's (``target_sharpness``)."""
    h, w = donor_gray.shape[:2]
    size = (max(int(round(w * k)), 3), max(int(round(h * k)), 3))
    small = cv2.resize(donor_gray, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR).astype(np.float32)
    for sigma in BLUR_STEPS:
        blurred = cv2.GaussianBlur(small, (0, 0), sigma) if sigma > 0 else small
        if sharpness(blurred) <= 1.05 * target_sharpness:
            return sigma
    return BLUR_STEPS[-1]


def compose(target_bgr: np.ndarray, target_kps: np.ndarray, donor: Donor, top: float | None,
            scale: float = CANVAS_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``donor``'s mask on the face with ``target_kps``, its top edge at canonical height ``top``.

    Returns (a copy of ``target_bgr`` with the mask blended in, the alpha used, float32 (H, W)).
    ``top=None`` is the control: every step runs, with alpha 0. This is the only function that
    draws a mask, for every position and label.
    """
    out = target_bgr.copy()
    h, w = out.shape[:2]
    alpha_full = np.zeros((h, w), np.float32)
    m = similarity_to(target_kps)
    if m is None:
        raise MaskwatchError("target keypoints are degenerate")
    dy = (top - donor.top) if top is not None else 0.0
    a = _h(m) @ canvas_to_units(dy, scale)        # donor canvas px -> target px
    k = math.sqrt(abs(np.linalg.det(a[:2, :2])))  # target px per canvas px
    src_bgr, src_alpha = donor.bgr, donor.alpha
    if k < 0.8:  # the target is smaller: shrink the donor with area averaging before warping
        src_bgr = cv2.resize(src_bgr, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        src_alpha = cv2.resize(src_alpha, (src_bgr.shape[1], src_bgr.shape[0]), interpolation=cv2.INTER_AREA)
        a = a @ np.diag([1.0 / k, 1.0 / k, 1.0])
    # the target pixels the canvas lands on
    sh, sw = src_alpha.shape
    corners = (a @ np.array([[0, sw, sw, 0], [0, 0, sh, sh], [1, 1, 1, 1]], np.float64))[:2]
    x1, y1 = np.floor(corners.min(axis=1)).astype(int) - 2
    x2, y2 = np.ceil(corners.max(axis=1)).astype(int) + 2
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return out, alpha_full
    a_roi = np.array([[1, 0, -x1], [0, 1, -y1], [0, 0, 1]], np.float64) @ a
    size = (x2 - x1, y2 - y1)
    mask_bgr = cv2.warpAffine(src_bgr, a_roi[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(src_alpha, a_roi[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    # the target's upper face at its own resolution: lightness, colour and sharpness references
    t_scale = scale * k
    t_canvas = warp_to_canvas(target_bgr, target_kps, t_scale)
    t_ref = ref_stats(t_canvas, None, t_scale)
    sy, sx = _region_px(REF_REGION, t_scale)
    t_sharp = sharpness(cv2.cvtColor(np.ascontiguousarray(t_canvas[sy, sx]), cv2.COLOR_BGR2GRAY))
    blur = matching_blur(donor.ref_gray, t_sharp, k)
    if blur > 0:
        mask_bgr = cv2.GaussianBlur(mask_bgr, (0, 0), blur)
    # colour: lightness of the mask scaled by the target/donor upper-face ratio (highlights kept
    # below white), contrast by their spread ratio, a/b nudged toward the target's
    d_ref = donor.ref_lab
    gain = float(np.clip((max(t_ref[0], 1.0) / max(d_ref[0], 1.0)) ** 0.75, 0.6, 1.5))
    contrast = float(np.clip((t_ref[3] + 1.0) / (d_ref[3] + 1.0), 0.75, 1.33))
    lab = _lab(mask_bgr)
    inside = alpha > 0.5
    lightness = lab[..., 0][inside] if inside.any() else lab[..., 0].reshape(-1)
    mean_l, high_l = float(lightness.mean()), float(np.percentile(lightness, 98))
    if gain > 1.0 and mean_l > 1.0:
        gain = max(1.0, min(gain, (97.0 - (high_l - mean_l) * contrast) / mean_l))
    lab[..., 0] = np.clip((lab[..., 0] - mean_l) * contrast + mean_l * gain, 0.0, 100.0)
    lab[..., 1:] += np.clip(0.3 * (t_ref[1:3] - d_ref[1:3]), -6.0, 6.0)
    mask_bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR) * 255.0
    # feathering: a soft edge about 2% of the eye distance wide
    eye_d = float(np.hypot(*(np.asarray(target_kps, np.float64).reshape(5, 2)[1] - np.asarray(target_kps, np.float64).reshape(5, 2)[0])))
    sigma = max(0.6, 0.02 * eye_d, blur)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    if top is None:
        alpha[:] = 0.0
    region = out[y1:y2, x1:x2].astype(np.float32)
    blended = alpha[..., None] * mask_bgr + (1.0 - alpha[..., None]) * region
    out[y1:y2, x1:x2] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    alpha_full[y1:y2, x1:x2] = alpha
    return out, alpha_full


def crop_side(box, margin: float = DEFAULT_MARGIN, max_side: int = 224) -> int:
    """Side of the written crop: the crop square's own side (native resolution), at most ``max_side``.

    >>> crop_side((0, 0, 30, 40), 0.2), crop_side((0, 0, 300, 300), 0.2)
    (56, 224)
    """
    x1, y1, x2, y2 = square_box(box, margin)
    return int(min(max(x2 - x1, 1), max_side))


def box_in_crop(box, margin: float, side: int) -> tuple[float, float, float, float]:
    """``box`` in the pixels of its crop (``crop_face(image, box, side, margin)``), so that cutting the
    crop again with the same margin gives the whole crop back (``train.data.crop_rows`` does that)."""
    sx1, sy1, sx2, _ = square_box(box, margin)
    k = side / float(sx2 - sx1)
    x1, y1, x2, y2 = (float(v) for v in box)
    return ((x1 - sx1) * k, (y1 - sy1) * k, (x2 - sx1) * k, (y2 - sy1) * k)
