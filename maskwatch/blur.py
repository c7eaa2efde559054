"""Face blurring for saved images and videos (``Config.blur_faces``): a site keeps pictures of people.

:func:`blur_faces` pixelates each face box (grown by :data:`GROW` on every side, so hair and the
jaw line go too) to blocks about a tenth of the face wide and then smooths the blocks: nothing of
the face survives that a sharpening filter could bring back, while the overlay drawn on top (box,
label, track id) still says who was counted as what.

Modes (``maskwatch.config.BLUR_MODES``): ``"off"``; ``"others"``: every face but the one whose
event triggered the snapshot (a video or the app's Ctrl+S has no trigger: every face); ``"all"``.
:func:`maskwatch.overlay.annotate` blurs and draws in one call; the sinks check the mode with
:func:`maskwatch.sinks.blur.check_blur_mode`.

A core module: NumPy and OpenCV only.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> image = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
>>> out = blur_faces(image, np.array([[20, 20, 60, 60]], np.float32))
>>> bool(out[25:55, 25:55].std() < image[25:55, 25:55].std() / 3)  # the face: noise smoothed away
True
>>> bool((out[90:, 90:] == image[90:, 90:]).all())  # outside the faces nothing changes
True
"""

from __future__ import annotations

import cv2
import numpy as np

GROW = 0.15
"""Each face box is grown by this share of its size on every side before blurring."""

BLOCKS = 8
"""The face is pixelated to about this many blocks across."""


def blur_faces(image_bgr: np.ndarray, boxes: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``image_bgr`` with each box of ``boxes`` (N x 4, xyxy pixels) made unrecognisable,
    except where ``keep`` (N booleans) is true."""
    out = image_bgr.copy()
    h, w = out.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
        if keep is not None and keep[i]:
            continue
        gx, gy = (x2 - x1) * GROW, (y2 - y1) * GROW
        left, top = max(0, int(np.floor(x1 - gx))), max(0, int(np.floor(y1 - gy)))
        right, bottom = min(w, int(np.ceil(x2 + gx))), min(h, int(np.ceil(y2 + gy)))
        if right - left < 2 or bottom - top < 2:
            continue
        region = out[top:bottom, left:right]
        rw, rh = right - left, bottom - top
        bw = max(1, min(BLOCKS, rw))
        bh = max(1, min(round(BLOCKS * rh / rw), rh))
        small = cv2.resize(region, (bw, bh), interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(rw, rh) // BLOCKS) | 1)  # odd, about a block wide: soft blocks, no face edges
        out[top:bottom, left:right] = cv2.GaussianBlur(blocky, (k, k), 0)
    return out


def faces_to_blur(mode: str, track_ids: np.ndarray, trigger: int | None = None) -> np.ndarray | None:
    """The ``keep`` mask for :func:`blur_faces` under ``mode``; ``None`` when nothing is blurred
    (``"off"``).

    >>> faces_to_blur("others", np.array([3, 7]), trigger=7).tolist(), faces_to_blur("all", np.array([3])).tolist()
    ([False, True], [False])
    >>> faces_to_blur("off", np.array([3])) is None
    True
    """
    if mode == "off":
        return None
    track_ids = np.asarray(track_ids)
    if mode == "others" and trigger is not None:
        return track_ids == trigger
    return np.zeros(len(track_ids), bool)
