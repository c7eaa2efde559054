"""Position-only synthetic faces: a real mask, cut from a real masked face, placed on a real unmasked one.

Why: the pool has few real incorrectly-worn faces and many synthetic ones on studio portraits, so a
model learns what a *synthetic* mask looks like instead of *where* the mask sits (issue 9). Here every
generated face goes through one function, :func:`compose`, whose only class-dependent argument is the
height of the mask's top edge on the face; the donor, the colour matching, the feathering, the crop
and the JPEG encoding are the same, so any artefact they leave carries no label.

How (all in a canonical face frame, the 5-point ArcFace template ``TEMPLATE``, in "units"):

1. Keypoints: the app's RetinaFace (``FaceDetector("retina")``) on every image of a ``prepare``
   manifest, cached as JSON (:class:`KeypointCache`); a manifest face takes the keypoints of the
   detection that overlaps its box (IoU >= 0.35, keypoints inside the box).
2. Donors (:func:`extract_donor`): real ``with_mask`` faces >= 40 px wide, warped into the canonical
   frame by a similarity transform (``cv2.estimateAffinePartial2D`` on the 5 keypoints); the mask is
   GrabCut, initialised from a mask-shaped polygon (nose bridge, cheeks, under the chin) with the
   mouth area as sure foreground and the eyes as sure background. Implausible cut-outs (area ratio to
   the polygon, spill outside it, top edge, width at the mouth, ragged outline) are rejected. Colours
   outside the cut-out are filled with the nearest mask colour, so warping and feathering never pull
   in skin (no halo).
3. Targets: real ``without_mask`` faces >= 24 px wide, roughly frontal (|yaw| <= 0.35).
4. :func:`compose`: the donor's canonical mask is shifted down the face axis so that its top edge
   lands at ``top`` units (``POSITIONS``), mapped onto the target with the target's similarity
   transform (area-downscaled first when the target is smaller), blurred until it is no sharper
   than the target's upper face, its LAB lightness matched to the target (ratio of upper-face
   lightness, target/donor, ** 0.75, highlights kept below white) and its a/b nudged toward the
   target's, the alpha feathered by a Gaussian (sigma ~ 2% of the eye distance, >= 0.6 px) and
   alpha-blended. Position ``none`` (the control, ``without_mask``) runs the same steps with alpha 0.
5. The face is cut with :func:`maskwatch.crop.crop_face` (the app's crop, the training margin) at its
   native resolution and written as ``OUT/<label>/<name>.jpg`` (quality 95), with a row in
   ``OUT/manifest.csv`` in ``prepare``'s format plus ``generated=1``, ``synth_position``, ``donor``,
   ``target``, ``donor_source``, ``target_source``; ``source`` is ``synthetic-position``, ``split``
   is ``train`` and ``group`` is the target's ``prepare`` group.

Split safety: only targets *and* donors of the manifest's ``train`` split are used, so a generated
face never shows a person or a mask of a validation or test image. By default a donor comes from
the target's own source (``donor_source="same"``): leave-one-source-out then drops a generated face
together with its target (same group) and no mask of the held-out source reaches training.
``OUT/combined/manifest.csv`` is the input manifest plus the generated rows, ready for ``fit``.

Example::

    maskwatch-train prepare ../shared/data/facemask-scenes ../shared/data/ilc2021-scenes \\
        --label-map with_incorrect_mask=mask_worn_incorrectly --out runs/pool
    maskwatch-train synthesize --data runs/pool --out runs/synth --per-target 3 --seed 0
    maskwatch-train fit --data runs/synth/combined --out runs/lite0_synth

>>> POSITIONS["under_nose"].label, POSITIONS["over_nose"].label, POSITIONS["none"].label
('mask_worn_incorrectly', 'with_mask', 'without_mask')
>>> [round(float(v), 1) for v in TEMPLATE[2]]   # nose tip, in canonical units
[56.0, 71.7]
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskwatch.crop import DEFAULT_MARGIN, crop_face, square_box
from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.synthesis")

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
"""Canonical 5 keypoints (eyes, nose tip, mouth corners; image-left first, RetinaFace's order): the
ArcFace 112x112 alignment template. Its units are the canonical frame's coordinates."""

CANVAS_X0, CANVAS_Y0, CANVAS_W, CANVAS_H = -16.0, 0.0, 144.0, 200.0
"""The canonical canvas in units: x from -16 to 128 (symmetric about the face's centre line x=56),
y from 0 (above the brows) to 200 (the neck, where a mask on the chin still reaches)."""
CANVAS_SCALE = 1.5
"""Canvas pixels per unit (eye distance 53 px): about the resolution of the largest pool faces."""
SEG_SCALE = 1.0
"""Pixels per unit where GrabCut runs (3x faster than at ``CANVAS_SCALE``; still finer than most donors)."""

MASK_POLYGON = np.array([[12, 64], [30, 59], [56, 56], [82, 59], [100, 64], [103, 80], [99, 98], [89, 112],
                         [73, 122], [56, 125], [39, 122], [23, 112], [13, 98], [9, 80]], np.float32)
"""A worn mask's usual outline in canonical units: top edge over the nose bridge, the cheeks, under
the chin. GrabCut's prior (probable foreground); the cut-out must fill a plausible share of it."""
MASK_CORE = ((56.0, 95.0), (20.0, 12.0))
"""Centre and half-axes (units) of an ellipse over the mouth: surely mask on a masked face."""
EYE_LINE = 51.6
REF_REGION = (30.0, 38.0, 82.0, 55.0)
"""Upper face (x1, y1, x2, y2 units: brows to lower eyelids), never under a worn mask: the lightness
reference for colour matching, in donor and target alike."""

SYNTH_SOURCE = "synthetic-position"
EXTRA_COLUMNS = ["generated", "synth_position", "donor", "target", "donor_source", "target_source"]
SYNTHETIC_DONOR_MARKERS = ("prajnasb_",)
"""Path parts of pool images whose masks are themselves synthetic (web-2class ``prajnasb_*``): never donors."""
SYNTHETIC_SOURCES = ("maskedface-net", SYNTH_SOURCE)
"""Sources whose masks are synthetic: never donors."""


@dataclass(frozen=True)
class Position:
    """Where the mask's top edge sits: a range of canonical y (units), and the label that gives."""

    label: str
    top: tuple[float, float] | None  # None: no mask (the control, same code path with alpha 0)
    doc: str = ""


POSITIONS = {
    "over_nose": Position("with_mask", (55.0, 62.0), "top edge over the nose bridge (worn correctly)"),
    "under_nose": Position("mask_worn_incorrectly", (76.0, 81.0),
                           "top edge between the nose tip and the upper lip: nose fully visible"),
    "mouth_only": Position("mask_worn_incorrectly", (84.0, 88.0),
                           "top edge on the upper lip: nose and philtrum bare, mouth still covered"),
    "chin": Position("mask_worn_incorrectly", (100.0, 107.0), "top edge under the lower lip: mouth bare, mask on the chin"),
    "none": Position("without_mask", None, "no mask: the target through the same path (control)"),
}
"""Canonical heights: eyes 51.6, nose tip 71.7, mouth corners 92.3, lower lip ~98, chin ~118."""
INCORRECT_WEIGHTS = {"under_nose": 0.5, "mouth_only": 0.25, "chin": 0.25}
"""How a pair's incorrectly-worn face is placed (under the nose is the most common real violation)."""


# ---------------------------------------------------------------- geometry

def similarity_to(points: np.ndarray) -> np.ndarray | None:
    """2x3 similarity (rotation, uniform scale, translation) mapping ``TEMPLATE`` units onto ``points``.

    >>> m = similarity_to(TEMPLATE * 2 + 10)
    >>> np.round(m, 3).tolist()
    [[2.0, -0.0, 10.0], [0.0, 2.0, 10.0]]
    """
    pts = np.asarray(points, np.float32).reshape(5, 2)
    m, _ = cv2.estimateAffinePartial2D(TEMPLATE, pts, method=cv2.LMEDS)
    if m is None or not np.all(np.isfinite(m)):
        return None
    return m.astype(np.float64)


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def canvas_to_units(dy: float = 0.0, scale: float = CANVAS_SCALE) -> np.ndarray:
    """3x3: canvas pixel -> canonical units, moved ``dy`` units down the face axis."""
    return np.array([[1 / scale, 0, CANVAS_X0], [0, 1 / scale, CANVAS_Y0 + dy], [0, 0, 1]], np.float64)


def canvas_size(scale: float = CANVAS_SCALE) -> tuple[int, int]:
    """(width, height) of the canonical canvas in pixels."""
    return int(round(CANVAS_W * scale)), int(round(CANVAS_H * scale))


def yaw_of(keypoints: np.ndarray) -> float:
    """Head turn from keypoints: the nose tip's offset from the eyes' midpoint along the eye axis, in
    eye distances (0 frontal, about +-0.3 at a three-quarter view; sign flips with a mirror image).

    >>> abs(round(yaw_of(TEMPLATE), 3))
    0.0
    >>> turned = TEMPLATE.copy(); turned[2, 0] += 10   # nose tip 10 units to the right
    >>> round(yaw_of(turned), 2)
    0.28
    """
    k = np.asarray(keypoints, np.float64).reshape(5, 2)
    axis = k[1] - k[0]
    d = float(np.hypot(*axis))
    if d < 1e-6:
        return 0.0
    return float(np.dot(k[2] - (k[0] + k[1]) / 2, axis / d) / d)


def plausible_keypoints(keypoints: np.ndarray, box, max_yaw: float = 0.35) -> str | None:
    """None if the 5 keypoints describe an upright, roughly frontal face in ``box``; else why not."""
    k = np.asarray(keypoints, np.float64).reshape(5, 2)
    x1, y1, x2, y2 = (float(v) for v in box)
    w = max(x2 - x1, 1e-6)
    eye_d = float(np.hypot(*(k[1] - k[0])))
    if not 0.2 <= eye_d / w <= 0.7:
        return "eye distance"
    if abs(yaw_of(k)) > max_yaw:
        return "turned"
    # eyes above nose above mouth, along the face's own vertical axis
    axis = k[1] - k[0]
    down = np.array([-axis[1], axis[0]]) / max(np.hypot(*axis), 1e-6)
    eyes, nose, mouth = (k[0] + k[1]) / 2, k[2], (k[3] + k[4]) / 2
    if not (np.dot(nose - eyes, down) > 0.15 * eye_d and np.dot(mouth - nose, down) > 0.1 * eye_d):
        return "not upright"
    return None


# ---------------------------------------------------------------- keypoints (RetinaFace, cached)

def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
    for d in detections:
        if len(d) < 15:
            continue
        iou = _iou(box, d[:4])
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


# ---------------------------------------------------------------- donors: the mask of a real masked face

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


def _units_to_px(pts, scale: float = CANVAS_SCALE) -> np.ndarray:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    return np.stack([(p[:, 0] - CANVAS_X0) * scale, (p[:, 1] - CANVAS_Y0) * scale], axis=1)


def _region_px(region, scale: float = CANVAS_SCALE) -> tuple[slice, slice]:
    (x1, y1), (x2, y2) = _units_to_px([region[:2], region[2:]], scale).round().astype(int)
    return slice(max(y1, 0), y2), slice(max(x1, 0), x2)


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


# ---------------------------------------------------------------- compose: the one code path for every class

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


# ---------------------------------------------------------------- the generator over a prepare manifest

@dataclass
class SynthReport:
    """What ``synthesize`` used, rejected and wrote."""

    targets_considered: int = 0
    targets_used: int = 0
    target_rejects: Counter = field(default_factory=Counter)
    donors_considered: int = 0
    donors_used: int = 0
    donor_rejects: Counter = field(default_factory=Counter)
    not_train: int = 0
    detected_images: int = 0
    faces: int = 0
    per_position: Counter = field(default_factory=Counter)
    per_label: Counter = field(default_factory=Counter)
    per_target_source: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def _manifest_rows(data: str | Path) -> tuple[list[dict], Path]:
    from train.data import load_manifest

    path = Path(data)
    csv_path = path / "manifest.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise MaskwatchError(f"--data {data}: no manifest.csv there; run 'maskwatch-train prepare <sources> --out DIR' "
                             "first and pass DIR (synthesize takes faces, splits and groups from its manifest, so a "
                             "generated face stays on its target's side of the split)")
    rows = load_manifest(csv_path)
    if any(r.get("generated") == "1" for r in rows):
        raise MaskwatchError(f"--data {data} already holds generated faces; pass the manifest written by prepare")
    return rows, csv_path


def _is_real_mask(row: dict) -> bool:
    return row["source"] not in SYNTHETIC_SOURCES and not any(m in row["path"] for m in SYNTHETIC_DONOR_MARKERS)


def _face_ref(row: dict) -> str:
    return f"{row['path']}@{row['x1']:.0f},{row['y1']:.0f},{row['x2']:.0f},{row['y2']:.0f}"


def plan_positions(n: int, rng: np.random.Generator, control: float) -> list[list[str]]:
    """Positions for one target's ``n`` faces, grouped by the donor they share: pairs of a correctly
    worn face and an incorrectly worn one (the same mask, the same face, only the height differs); an
    odd last face draws over_nose or an incorrect position; with probability ``control`` one more
    group holds the unmasked control.

    >>> rng = np.random.default_rng(0)
    >>> [len(g) for g in plan_positions(5, rng, 0.0)], plan_positions(2, rng, 0.0)[0][0]
    ([2, 2, 1], 'over_nose')
    """
    names, weights = list(INCORRECT_WEIGHTS), np.array(list(INCORRECT_WEIGHTS.values()))
    groups = []
    for _ in range(n // 2):
        groups.append(["over_nose", str(rng.choice(names, p=weights / weights.sum()))])
    if n % 2:
        groups.append(["over_nose" if rng.random() < 0.5 else str(rng.choice(names, p=weights / weights.sum()))])
    if control > 0 and rng.random() < control:
        groups.append(["none"])
    return groups


def pick_donor(donors: list[Donor], target_yaw: float, target_w: float, rng: np.random.Generator,
               source: str | None = None, pool: int = 12) -> Donor | None:
    """A random donor among the ``pool`` that fit the target best (mirrored when that fits better).

    Fit = difference in yaw + 0.25 per halving of resolution below 3/4 of the target's width: a mask
    enlarged from a much smaller face looks soft next to a sharp face.
    """
    cands = [d for d in donors if source is None or d.source == source]
    if not cands:
        return None
    yaw = np.array([d.yaw for d in cands])
    width = np.array([max(d.face_w, 1.0) for d in cands])
    mirror = np.abs(-yaw - target_yaw) < np.abs(yaw - target_yaw)
    cost = np.minimum(np.abs(yaw - target_yaw), np.abs(-yaw - target_yaw))
    cost += 0.25 * np.maximum(0.0, np.log2(0.75 * target_w / width))
    order = np.argsort(cost + rng.random(len(cands)) * 1e-6)[:pool]
    i = int(rng.choice(order))
    return cands[i].mirrored() if mirror[i] else cands[i]


def _read(path: str, manifest_path: Path) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise MaskwatchError(f"cannot read {path} listed in {manifest_path}")
    return img


def _keypoints_of(row: dict, detections: list, rejects: Counter) -> np.ndarray | None:
    """The keypoints of a manifest face if they describe a usable face; else count why not."""
    box = (row["x1"], row["y1"], row["x2"], row["y2"])
    kps = match_keypoints(box, detections)
    why = "no keypoints" if kps is None else plausible_keypoints(kps, box)
    if why:
        rejects[why] += 1
        return None
    return kps


def load_donors(rows: list[dict], kcache: KeypointCache, report: SynthReport, manifest_path: Path,
                progress=lambda it, **kw: it) -> list[Donor]:
    """The masks of the masked faces ``rows`` that pass :func:`plausible_keypoints` and :func:`segment_mask`."""
    donors: list[Donor] = []
    for path, group in progress(_by_path(rows), desc="donors", unit="img"):
        img = _read(path, manifest_path)
        dets = kcache.get(path, img)
        for r in group:
            kps = _keypoints_of(r, dets, report.donor_rejects)
            if kps is None:
                continue
            d, why = extract_donor(img, kps, r["face_w"])
            if d is None:
                report.donor_rejects[why] += 1
                continue
            d.path, d.box, d.source = _face_ref(r), (r["x1"], r["y1"], r["x2"], r["y2"]), r["source"]
            donors.append(d)
    return donors


def _clear_previous(out: Path) -> None:
    """Remove a previous ``synthesize`` run's files from ``out`` (only those its manifest lists); refuse
    any other non-empty folder, so nothing else is ever deleted."""
    if not out.exists():
        return
    if not out.is_dir():
        raise MaskwatchError(f"--out {out} is a file")
    if not (out / "synthesis.json").is_file():
        if any(out.iterdir()):
            raise MaskwatchError(f"--out {out} is not empty and holds no earlier synthesize run; choose a new folder")
        return
    from train.data import load_manifest

    old = out / "manifest.csv"
    if old.is_file():
        for r in load_manifest(old):
            p = Path(r["path"])
            if r.get("generated") == "1" and p.parent.parent.resolve() == out.resolve() and p.is_file():
                p.unlink()
    for p in (old, out / "combined" / "manifest.csv", out / "synthesis.json"):
        if p.is_file():
            p.unlink()


def synthesize(data: str | Path, out: str | Path, per_target: int = 2, seed: int = 0, margin: float = DEFAULT_MARGIN,
               min_donor: float = 40.0, min_target: float = 24.0, max_side: int = 224, control: float = 0.25,
               donor_source: str = "same", sources: list[str] | None = None, max_targets: int | None = None,
               cache: str | Path | None = "runs/keypoints/retina.json", progress: bool = True) -> SynthReport:
    """Generate ``per_target`` faces for every usable ``without_mask`` train face of the ``prepare``
    manifest ``data``; write crops, ``OUT/manifest.csv``, ``OUT/combined/manifest.csv`` and
    ``OUT/synthesis.json``. See the module docstring."""
    from train.data import write_manifest

    t0 = time.time()
    if per_target < 1:
        raise MaskwatchError(f"--per-target must be at least 1, not {per_target}")
    if donor_source not in ("same", "any"):
        raise MaskwatchError(f"--donor-source must be same or any, not {donor_source!r}")
    if not 0.0 <= control <= 1.0:
        raise MaskwatchError(f"--control must be in [0, 1], not {control}")
    rows, manifest_path = _manifest_rows(data)
    known = sorted({r["source"] for r in rows})
    missing = sorted(set(sources or ()) - set(known))
    if missing:
        raise MaskwatchError(f"--sources {', '.join(missing)}: not in the manifest (it has {', '.join(known)})")
    rows_sel = [r for r in rows if not sources or r["source"] in sources]
    out = Path(out)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"data": str(manifest_path), "per_target": per_target, "seed": seed, "margin": margin,
                "min_donor": min_donor, "min_target": min_target, "control": control, "donor_source": donor_source,
                "sources": sources, "max_targets": max_targets,
                "positions": {k: [v.label, v.top, v.doc] for k, v in POSITIONS.items()}}
    # the marker first: even a half-written folder is recognised as generated (prepare refuses it)
    (out / "synthesis.json").write_text(json.dumps({**settings, "status": "running"}, indent=2))
    report = SynthReport()
    rng = np.random.default_rng(seed)
    bar = _bar(progress)

    def usable(r: dict, label: str, min_w: float) -> bool:
        return r["label"] == label and r["x1"] is not None and (r["face_w"] or 0.0) >= min_w

    donor_rows = [r for r in rows_sel if usable(r, "with_mask", min_donor) and _is_real_mask(r)]
    target_rows = [r for r in rows_sel if usable(r, "without_mask", min_target)]
    report.not_train = sum(r["split"] != "train" for r in donor_rows + target_rows)
    donor_rows = [r for r in donor_rows if r["split"] == "train"]
    target_rows = [r for r in target_rows if r["split"] == "train"]
    if max_targets is not None and len(target_rows) > max_targets:
        target_rows = [target_rows[i] for i in sorted(rng.choice(len(target_rows), max_targets, replace=False))]
    report.donors_considered, report.targets_considered = len(donor_rows), len(target_rows)

    written: list[dict] = []
    kcache = KeypointCache(cache)
    try:
        donors = load_donors(donor_rows, kcache, report, manifest_path, bar)
        report.donors_used = len(donors)
        if not donors:
            raise MaskwatchError(f"no usable mask donors in {manifest_path} (train-split with_mask faces at least "
                                 f"{min_donor:g} px wide, with keypoints and a plausible mask cut-out): "
                                 f"{dict(report.donor_rejects) or 'none found'}")
        for path, group in bar(_by_path(target_rows), desc="targets", unit="img"):
            img = _read(path, manifest_path)
            dets = kcache.get(path, img)
            for r in group:
                kps = _keypoints_of(r, dets, report.target_rejects)
                if kps is None:
                    continue
                box = (r["x1"], r["y1"], r["x2"], r["y2"])
                side = crop_side(box, margin, max_side)
                n_before = len(written)
                for positions in plan_positions(per_target, rng, control):
                    donor = pick_donor(donors, yaw_of(kps), r["face_w"], rng,
                                       source=r["source"] if donor_source == "same" else None)
                    if donor is None:
                        report.target_rejects["no donor of its source"] += 1
                        break
                    for pos in positions:
                        spec = POSITIONS[pos]
                        top = None if spec.top is None else float(rng.uniform(*spec.top))
                        composite, _ = compose(img, kps, donor, top)
                        crop = crop_face(composite, box, side, margin, bgr=True)
                        dest = out / spec.label / f"{r['source']}_{Path(r['path']).stem}_{len(written) + 1:06d}_{pos}.jpg"
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        if not cv2.imwrite(str(dest), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
                            raise MaskwatchError(f"cannot write {dest}")
                        bx = box_in_crop(box, margin, side)
                        written.append({
                            "path": str(dest.resolve()), "source": SYNTH_SOURCE, "label": spec.label,
                            "face_w": round(bx[2] - bx[0], 1), "face_h": round(bx[3] - bx[1], 1), "split": "train",
                            "group": r["group"], "x1": round(bx[0], 2), "y1": round(bx[1], 2), "x2": round(bx[2], 2),
                            "y2": round(bx[3], 2), "box_from": "synthetic", "source_label": pos,
                            "generated": 1, "synth_position": pos,
                            "donor": donor.path + (" (mirrored)" if donor.flipped else ""), "target": _face_ref(r),
                            "donor_source": donor.source, "target_source": r["source"]})
                        report.per_position[pos] += 1
                        report.per_label[spec.label] += 1
                        report.per_target_source[r["source"]] += 1
                report.targets_used += len(written) > n_before
        report.detected_images = kcache.detected
    finally:
        kcache.close()
    report.faces = len(written)
    if not written:
        raise MaskwatchError(f"no faces generated: none of the {report.targets_considered} train-split without_mask "
                             f"faces at least {min_target:g} px wide in {manifest_path} was usable "
                             f"({dict(report.target_rejects) or 'no such faces'})")
    write_manifest(written, out / "manifest.csv")
    # the input manifest plus the generated faces: what 'fit --data OUT/combined' trains on
    real = [{**r, **{c: "" for c in EXTRA_COLUMNS}, "generated": 0} for r in rows]
    write_manifest(real + written, out / "combined" / "manifest.csv")
    report.seconds = round(time.time() - t0, 1)
    (out / "synthesis.json").write_text(json.dumps({**settings, "status": "done", "report": report.as_dict()}, indent=2))
    return report


def _by_path(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["path"], []).append(r)
    return list(groups.items())


def _bar(enabled: bool):
    if not enabled:
        return lambda it, **kw: it
    from tqdm import tqdm

    return lambda it, **kw: tqdm(it, **kw)


# ---------------------------------------------------------------- CLI

def register(subparsers) -> None:
    """Add ``synthesize`` to ``maskwatch-train``'s sub-commands."""
    p = subparsers.add_parser(
        "synthesize", help="real masks on real unmasked train faces, at four heights (position-only classes)",
        description="Cut real masks from masked faces of a prepare manifest and paste them on its unmasked "
                    "train faces, aligned by RetinaFace keypoints: over the nose (with_mask), under the nose, "
                    "on the upper lip, on the chin (mask_worn_incorrectly). Writes OUT/<label>/*.jpg crops, "
                    "OUT/manifest.csv (generated=1, split train, the target's group) and OUT/combined/manifest.csv.")
    p.add_argument("--data", required=True, help="prepare output folder (or its manifest.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--per-target", type=int, default=2, help="generated faces per unmasked face (default 2: a "
                   "correctly and an incorrectly worn mask from one donor)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="crop margin, as training (default %(default)s)")
    p.add_argument("--min-donor", type=float, default=40.0, help="narrowest masked face to take a mask from, px (default 40)")
    p.add_argument("--min-target", type=float, default=24.0, help="narrowest unmasked face to put a mask on, px (default 24)")
    p.add_argument("--control", type=float, default=0.25,
                   help="share of targets that also get an unmasked copy through the same path (without_mask; default 0.25)")
    p.add_argument("--donor-source", choices=("same", "any"), default="same",
                   help="take masks from the target's own source (default; keeps leave-one-source-out clean) or any")
    p.add_argument("--sources", help="comma-separated sources of the manifest to use (default: all)")
    p.add_argument("--max-targets", type=int, default=None, help="use at most this many unmasked faces (random)")
    p.add_argument("--cache", default="runs/keypoints/retina.json", help="RetinaFace keypoint cache (JSON)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None
    rep = synthesize(args.data, args.out, per_target=args.per_target, seed=args.seed, margin=args.margin,
                     min_donor=args.min_donor, min_target=args.min_target, control=args.control,
                     donor_source=args.donor_source, sources=sources, max_targets=args.max_targets,
                     cache=args.cache, progress=not args.no_progress)
    print(f"generated {rep.faces} faces from {rep.targets_used} of {rep.targets_considered} unmasked train faces "
          f"and {rep.donors_used} of {rep.donors_considered} mask donors in {rep.seconds:.0f} s")
    print("  by label: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.per_label.items())))
    print("  by position: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.per_position.items())))
    if rep.donor_rejects:
        print("  donors rejected: " + ", ".join(f"{k} {v}" for k, v in rep.donor_rejects.most_common()))
    if rep.target_rejects:
        print("  targets skipped: " + ", ".join(f"{k} {v}" for k, v in rep.target_rejects.most_common()))
    print(f"manifest: {args.out}/manifest.csv; train on {args.out}/combined (the input manifest plus these)")
    return 0
