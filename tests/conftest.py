"""Shared test fixtures: the tiny test classifier, a generated clip with known faces, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow

import_mediapipe_without_tensorflow()  # as the app does (seconds of start-up saved per session)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_MODEL = FIXTURES / "tiny_classifier.tflite"
"""A real, untrained int8 TFLite classifier (see fixtures/make_tiny_classifier.py): for plumbing tests."""
SHIPPED_MODEL = REPO / "models" / "mask_classifier.tflite"
PEOPLE = FIXTURES / "people"  # one masked and one unmasked real photo (see fixtures/README.md)

requires_shipped_model = pytest.mark.skipif(
    not SHIPPED_MODEL.is_file(), reason=f"the shipped classifier {SHIPPED_MODEL} is not there yet"
)

KNOWN_CLIP_FPS = 15
KNOWN_CLIP_SIZE = (640, 360)


def _background(width: int, height: int) -> np.ndarray:
    """A static, textured wall-and-floor background (seeded: the same pixels every run)."""
    rng = np.random.default_rng(3)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    base = 90 + 60 * y + 25 * x
    img = np.repeat(base[:, :, None], 3, axis=2) * np.array([1.0, 0.95, 0.85], np.float32)
    img[int(0.75 * height):] *= 0.7  # floor
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_known_faces_clip(path: Path, fps: int = KNOWN_CLIP_FPS) -> dict:
    """An mp4 in which person A (masked) walks across, left to right, for 2 s, nobody for 1 s,
    then person B (unmasked) walks the same way for 2 s. Their faces are 120-150 px wide, real
    photos (``fixtures/people``). B enters far from where A left, so no tracker can take B for A.
    Returns what the clip contains."""
    width, height = KNOWN_CLIP_SIZE
    background = _background(width, height)
    people = []
    for name in ("with_mask", "without_mask"):
        photo = cv2.imread(str(PEOPLE / f"{name}.jpg"))
        scale = 240.0 / photo.shape[0]
        people.append(cv2.resize(photo, (round(photo.shape[1] * scale), 240), interpolation=cv2.INTER_AREA))
    segment, gap = 2 * fps, fps
    # soft photo borders: a camera never sees the hard edge of a pasted rectangle
    feather = []
    for photo in people:
        h, w = photo.shape[:2]
        ramp = lambda n: np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / 24.0, 0, 1)  # noqa: E731
        feather.append((ramp(h)[:, None] * ramp(w)[None, :])[:, :, None].astype(np.float32))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here")
    try:
        for who, photo in enumerate(people):
            h, w = photo.shape[:2]
            for i in range(segment):
                frame = background.copy()
                x = int(20 + (width - w - 40) * i / (segment - 1))  # both walk left to right
                y = 60 + int(6 * np.sin(i / 3.0))  # a little bob, like walking
                region = frame[y:y + h, x:x + w].astype(np.float32)
                alpha = feather[who]
                frame[y:y + h, x:x + w] = (alpha * photo + (1 - alpha) * region).astype(np.uint8)
                writer.write(frame)
            if who == 0:
                for _ in range(gap):
                    writer.write(background)
    finally:
        writer.release()
    return {"path": path, "fps": fps, "frames": 2 * segment + gap, "gap_frames": gap, "people": 2,
            "by_label": {"with_mask": 1, "without_mask": 1, "mask_worn_incorrectly": 0}}


@pytest.fixture(scope="session")
def known_faces_clip(tmp_path_factory) -> dict:
    return write_known_faces_clip(tmp_path_factory.mktemp("clips") / "two_people.mp4")


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MASKWATCH_DEBUG", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_cli(*args, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``maskwatch ARGS`` in a subprocess (``python -m maskwatch.cli``), text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=cli_env(), cwd=cwd or REPO,
    )


def start_cli(*args, cwd: Path | None = None) -> subprocess.Popen:
    """``maskwatch ARGS`` started in the background (stdout/stderr piped, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "maskwatch.cli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=cwd or REPO,
    )


from services import mosquitto  # noqa: E402,F401  (a real MQTT broker for the site tests; see tests/support/services.py)
