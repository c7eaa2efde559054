"""Draw faces (boxes coloured by class, label, confidence, track id) and a status line on a frame.

The GUI, the snapshots and ``maskwatch --headless --show`` style previews use the same colours:
``COLORS`` (BGR, for OpenCV) and ``COLORS_RGB`` / :func:`color_rgb` (for Qt).

:func:`annotate` is the one way a frame is saved with its overlay (faces blurred first as
``blur_faces`` says): the snapshot sink, the video sink and the desktop app's Ctrl+S call it.

>>> import numpy as np
>>> from maskwatch.faces import Faces
>>> img = np.zeros((240, 320, 3), np.uint8)
>>> faces = Faces(xyxy=np.array([[100, 60, 160, 140]]), score=np.array([0.9]),
...               probs=np.array([[0.1, 0.85, 0.05]]), track_id=np.array([3]), track_label=np.array([1]))
>>> out = draw(img, faces)
>>> tuple(int(v) for v in out[100, 100]) == COLORS["without_mask"], int(img.sum())
(True, 0)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.blur import blur_faces, faces_to_blur
from maskwatch.faces import Faces
from maskwatch.records import state_text

UNDECIDED = "undecided"

COLORS: dict[str, tuple[int, int, int]] = {
    "with_mask": (80, 200, 0),  # green
    "without_mask": (40, 40, 230),  # red
    "mask_worn_incorrectly": (0, 170, 255),  # amber
    UNDECIDED: (170, 170, 170),  # grey
}
"""BGR colour per label, plus ``"undecided"`` for tracks whose vote is not decided yet."""

COLORS_RGB: dict[str, tuple[int, int, int]] = {k: (v[2], v[1], v[0]) for k, v in COLORS.items()}
"""The same colours as RGB (Qt, matplotlib)."""

DISPLAY_NAMES: dict[str, str] = {
    "with_mask": "mask",
    "without_mask": "no mask",
    "mask_worn_incorrectly": "incorrect",
    UNDECIDED: "?",
}
"""Short texts drawn next to boxes (legible on small faces)."""


def color_rgb(label: str) -> tuple[int, int, int]:
    """RGB colour of a label name (or ``"undecided"``).

    >>> color_rgb("with_mask") == COLORS["with_mask"][::-1]
    True
    """
    return COLORS_RGB[label]


def label_names(faces: Faces, labels=LABELS) -> list[str]:
    """The name each face is drawn with: its voted track label, ``"undecided"`` for a tracked face
    without one, and the per-frame classifier label for untracked faces (single images)."""
    per_frame = faces.label
    out = []
    for i in range(len(faces)):
        tl = int(faces.track_label[i])
        if tl >= 0:
            out.append(labels[tl])
        elif int(faces.track_id[i]) < 0 and per_frame[i] >= 0:
            out.append(labels[int(per_frame[i])])
        else:
            out.append(UNDECIDED)
    return out


def _scale(image: np.ndarray) -> tuple[int, float]:
    """Line thickness and font scale for an image: 1 px / 0.4 at 480p, 2 px / 0.6 at 1080p."""
    short = min(image.shape[:2])
    thickness = max(1, int(round(short / 540)))
    font = max(0.35, min(short / 1800, 1.2))
    return thickness, font


def label_text(faces: Faces, i: int, name: str, labels=LABELS, show_track_id: bool = True) -> str:
    """The text shown next to face ``i`` drawn as ``name`` (a label or ``UNDECIDED``):
    ``"<label> <conf>% #<id>"``, the confidence being this frame's probability for ``name``."""
    text = DISPLAY_NAMES.get(name, name)
    if name != UNDECIDED and name in labels:
        p = float(faces.probs[i, labels.index(name)])
        if not math.isnan(p):
            text += f" {p:.0%}"
    if show_track_id and int(faces.track_id[i]) >= 0:
        text += f" #{int(faces.track_id[i])}"
    return text


def draw(image_bgr: np.ndarray, faces: Faces, labels=LABELS, show_track_ids: bool = True, copy: bool = True) -> np.ndarray:
    """Boxes coloured by class with ``"<label> <conf>% #<id>"`` above (or inside, at the top edge).

    The confidence is this frame's classifier probability for the drawn label (omitted when the face
    was not classified this frame). Returns the drawn image (a copy unless ``copy=False``).
    """
    out = image_bgr.copy() if copy else image_bgr
    if not len(faces):
        return out
    h, w = out.shape[:2]
    thickness, font_scale = _scale(out)
    font = cv2.FONT_HERSHEY_SIMPLEX
    names = label_names(faces, labels)
    for i in range(len(faces)):
        name = names[i]
        color = COLORS.get(name, COLORS[UNDECIDED])
        x1, y1, x2, y2 = (int(round(v)) for v in faces.xyxy[i])
        x1, x2 = max(min(x1, w - 1), 0), max(min(x2, w - 1), 0)
        y1, y2 = max(min(y1, h - 1), 0), max(min(y2, h - 1), 0)
        if x2 <= x1 or y2 <= y1:
            continue
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA if thickness > 1 else cv2.LINE_8)

        text = label_text(faces, i, name, labels, show_track_ids)
        (tw, th), base = cv2.getTextSize(text, font, font_scale, 1)
        pad = max(1, thickness)
        ty = y1 - pad - base  # baseline of the text above the box
        if ty - th - pad < 0:  # no room above: inside the box, at its top
            ty = y1 + th + pad + thickness
        tx = min(x1, max(w - tw - 2 * pad, 0))
        cv2.rectangle(out, (tx, ty - th - pad), (tx + tw + 2 * pad, ty + base), color, cv2.FILLED)
        cv2.putText(out, text, (tx + pad, ty), font, font_scale, _text_color(color), 1, cv2.LINE_AA)
    return out


def annotate(image_bgr: np.ndarray, faces: Faces, *, blur: str = "off", trigger: int | None = None,
             labels=LABELS, show_track_ids: bool = True) -> np.ndarray:
    """The frame as it is saved: faces blurred as ``blur`` says, then the overlay of :func:`draw`.

    ``blur`` is a ``Config.blur_faces`` mode: ``"off"``; ``"others"`` blurs every face but the
    one of track ``trigger`` (the person a snapshot is about; with no ``trigger``, as in a video or
    the app's Ctrl+S, every face); ``"all"``. Blurring comes first, so boxes and labels stay
    readable. Always a new image: ``image_bgr`` is left alone.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    >>> faces = Faces(xyxy=np.array([[20, 40, 100, 140], [180, 40, 260, 140]], np.float32),
    ...               score=np.array([0.9, 0.9]), probs=np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]),
    ...               track_id=np.array([3, 7]), track_label=np.array([0, 1]))
    >>> def smooth(out, x):  # the inside of a face box: blurred (noise gone) or not
    ...     return bool(out[80:100, x:x + 20].std() < img[80:100, x:x + 20].std() / 3)
    >>> out = annotate(img, faces, blur="others", trigger=7)  # a snapshot about track 7
    >>> smooth(out, 50), smooth(out, 210), bool((annotate(img, faces) == draw(img, faces)).all())
    (True, False, True)
    >>> out = annotate(img, faces, blur="others")  # no trigger: every face
    >>> smooth(out, 50), smooth(out, 210)
    (True, True)
    """
    keep = faces_to_blur(blur, faces.track_id, trigger)
    if keep is not None and len(faces):
        blurred = blur_faces(image_bgr, faces.xyxy, keep)  # a copy: the overlay is drawn into it
        return draw(blurred, faces, labels, show_track_ids, copy=False)
    return draw(image_bgr, faces, labels, show_track_ids)


def draw_status(image_bgr: np.ndarray, stats, totals, copy: bool = False) -> np.ndarray:
    """A one-line HUD at the top-left: fps, people counted, compliance, source state.

    ``stats`` is a ``maskwatch.results.Stats``, ``totals`` a ``maskwatch.results.Totals``.
    """
    out = image_bgr.copy() if copy else image_bgr
    rate = totals.compliance_rate
    state = state_text(stats.source_state)
    parts = [f"{stats.fps:.1f} fps", f"{totals.people_seen} people",
             "compliance -" if rate is None else f"compliance {rate:.0%}", state]
    if stats.dropped_frames:
        parts.append(f"dropped {stats.dropped_frames}")
    text = " | ".join(parts)
    _, font_scale = _scale(out)
    font_scale *= 1.1
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, font_scale, 1)
    pad = max(3, th // 3)
    x2, y2 = min(tw + 2 * pad, out.shape[1]), min(th + base + 2 * pad, out.shape[0])
    region = out[0:y2, 0:x2]
    region[:] = (region * 0.4).astype(out.dtype)  # darkened background, frame still visible
    cv2.putText(out, text, (pad, pad + th), font, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (relative luminance of the BGR colour)."""
    b, g, r = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
