"""Test doubles the pipeline, tracker and GUI tests share: a camera that goes silent, a detector
that always finds one face, and a config that runs the tiny classifier."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from conftest import TINY_MODEL
from maskwatch.config import Config, DetectorConfig
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState


PLUMBING_DETECTOR = DetectorConfig(mode="full")
"""Plumbing tests pin the detector (MediaPipe's full-range model finds each face of the known-faces
clip once per frame), so they test the pipeline, not a detector setting. The shipped-model tests
at the end run the app's defaults."""


def tiny_config(source, **kw) -> Config:
    kw.setdefault("detector", PLUMBING_DETECTOR)
    return replace(Config(source=str(source), model=TINY_MODEL), **kw)


class FakeLiveSource:
    """A camera that delivers ``frames`` frames, then goes silent in ``then`` state (like a dropped RTSP feed).

    A ``maskwatch.stages.FrameSource``: every attribute the pipeline reads."""

    kind = "network"
    is_live = True
    fps = 25.0

    def __init__(self, frames: int = 5, then: SourceState = SourceState.RECONNECTING, last_error=None, fail_after=None):
        self.name = "rtsp://cam/stream"
        self.remaining = frames
        self.then = then
        self.state = SourceState.CONNECTING
        self.reconnect_in = None
        self.dropped = 0
        self.reconnects = 0
        self.last_error = last_error
        self.fail_after = fail_after
        self.index = 0
        self.closed = False

    def read(self, timeout=None):
        if self.fail_after is not None and self.index >= self.fail_after:
            raise MaskwatchError("stream broke: corrupt packet")
        if self.remaining > 0:
            self.remaining -= 1
            self.state = SourceState.LIVE
            image = np.full((120, 160, 3), 80, np.uint8)
            frame = Frame(image=image, index=self.index, timestamp=time.time(), captured_at=time.monotonic())
            self.index += 1
            return frame
        self.state = self.then
        self.reconnect_in = 1.5 if self.then == SourceState.RECONNECTING else None
        if self.then != SourceState.ENDED and timeout:
            time.sleep(timeout)
        return None

    def close(self):
        self.closed = True
        self.state = SourceState.ENDED


class FakeDetector:
    """One face in the middle of every frame (so tracking and counting have something to do)."""

    mode = "fake"

    def __init__(self):
        self.calls = 0
        self.closed = False

    def detect(self, image):
        self.calls += 1
        h, w = image.shape[:2]
        return Faces(xyxy=[[w * 0.4, h * 0.3, w * 0.6, h * 0.6]], score=[0.9])

    def close(self):
        self.closed = True
