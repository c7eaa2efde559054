"""``maskwatch bench``'s report: built from the stages' protocols, never a camera password."""

from __future__ import annotations

import time

import numpy as np

from conftest import TINY_MODEL
from maskwatch import bench
from maskwatch.config import Config
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState
from maskwatch.pipeline import Pipeline


class ScriptedSource:
    """A ``stages.FrameSource`` that gives ``n`` black frames; its name is NOT redacted (a careless
    new source): the report must redact it itself."""

    def __init__(self, n: int, name: str):
        self.name, self.kind, self.is_live, self.fps = name, "file", False, 10.0
        self.dropped = self.reconnects = 0
        self.last_error = None
        self._left, self._index = n, 0

    @property
    def state(self) -> SourceState:
        return SourceState.LIVE if self._left else SourceState.ENDED

    @property
    def reconnect_in(self) -> float | None:
        return None

    def read(self, timeout: float | None = None) -> Frame | None:
        if not self._left:
            return None
        self._left -= 1
        self._index += 1
        return Frame(np.zeros((48, 64, 3), np.uint8), self._index, self._index / 10.0, time.time())

    def close(self) -> None:
        self._left = 0


class NoFaces:
    def detect(self, image):
        return Faces.empty()

    def close(self):
        pass


class Uniform:
    def classify_faces(self, image_bgr, xyxy):
        return np.full((len(xyxy), 3), 1 / 3, np.float32)


def test_report_reads_the_stage_protocols_and_redacts_the_source():
    """Regression: bench read getattr(..., default) attributes and fell back to an unredacted
    str(config.source)."""
    config = Config(source="rtsp://admin:hunter22@cam/live", model=TINY_MODEL).with_overrides(
        {"detector": {"mode": "dense"}})
    pipeline = Pipeline(config, source=ScriptedSource(8, "rtsp://admin:hunter22@cam/live?token=t0ken99"),
                        detector=NoFaces(), classifier=Uniform())
    report = bench.run(config, warmup=2, pipeline=pipeline)
    assert report["source"] == "rtsp://admin:***@cam/live?token=***" and report["source_kind"] == "file"
    assert (report["frames"], report["resolution"], report["detector"]) == (6, [64, 48], "dense")
    assert report["classifier"] == {"path": str(TINY_MODEL), "version": None}  # not a MaskClassifier
    assert "hunter22" not in bench.format_report(report) and "t0ken99" not in str(report)
