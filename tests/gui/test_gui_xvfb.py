"""The desktop app under a real X server: Xvfb + Qt's xcb platform plugin, on the demo clip.

Runs ``scripts/gui_screenshot.py`` (which starts Xvfb, the app, waits for a labelled box and grabs
the window from the X server) and checks the PNG: not blank, and the labelled box the app reports
is really on screen in its class colour. Skipped only when Xvfb is not installed
(``bash scripts/install_test_deps.sh`` installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.paths import models_dir

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gui_screenshot.py"

pytestmark = [
    pytest.mark.xvfb,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb not installed (bash scripts/install_test_deps.sh)"),
]


def _model() -> Path:
    shipped = models_dir() / "mask_classifier.tflite"
    if shipped.is_file() and shipped.with_suffix(".json").is_file():
        return shipped
    return ROOT / "tests" / "fixtures" / "tiny_classifier.tflite"


def _edge_share(image: np.ndarray, x: int, y0: int, y1: int, rgb) -> float:
    """Share of pixels in column ``x`` (± 2 px), rows ``y0..y1``, close to the colour ``rgb``."""
    bgr = np.array(rgb[::-1], np.int16)
    best = 0.0
    for dx in range(-2, 3):
        col = image[y0:y1, min(max(x + dx, 0), image.shape[1] - 1)].astype(np.int16)
        if len(col):
            best = max(best, float((np.abs(col - bgr).max(axis=1) <= 40).mean()))
    return best


def test_screenshot_under_xvfb_shows_a_labelled_box(tmp_path):
    out = tmp_path / "gui.png"
    # the full-range detector: the fastest to reach the walker's face (frame 110) on 2 CPUs
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--model", str(_model()), "--timeout", "90",
                           "--detector", "full"],
                          cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".png.json").read_text())

    # the real xcb platform, with PyQt6's own plugin (not the Qt5 one bundled with OpenCV)
    assert report["platform"] == "xcb" and report["grab"] == "screen"
    assert "PyQt6" in report["xcb_plugin_loaded"] and "cv2" not in report["xcb_plugin_loaded"]

    image = cv2.imread(str(out))
    assert image is not None and image.shape[:2] == tuple(report["image_size"][::-1])
    assert float(image.std()) > 20  # not blank
    assert len(np.unique(image.reshape(-1, 3)[::37], axis=0)) > 500  # a video frame, not a flat UI

    assert report["labelled_boxes"] >= 1
    ox, oy = report["video_origin"]
    box = next(b for b in report["boxes"] if b["decided"])
    x, y, w, h = box["rect"]
    left = _edge_share(image, int(round(ox + x)), int(oy + y + 2), int(oy + y + h - 2), box["color_rgb"])
    right = _edge_share(image, int(round(ox + x + w)), int(oy + y + 2), int(oy + y + h - 2), box["color_rgb"])
    assert max(left, right) > 0.6, (left, right, box)  # the box is on screen, in its class colour
    assert report["csv_rows_after_close"] >= 1  # the app closed cleanly and flushed its log
