"""``DetectorConfig``: the face detector's settings (the ``[detector]`` table); owned by the
detection stage, re-exported by :mod:`maskwatch.config`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from maskwatch.detection.registry import DEFAULT_MODE, MIN_SCORES

MODE_MIN_SCORE: Mapping[str, float] = MIN_SCORES
"""Each detector mode's default ``min_score`` (benchmarks/results/face_recall.md): choosing a mode
without a score (``--detector dense``, ``mode = "dense"`` in TOML, the GUI's mode list) gets it.
Read from the detector registry (each mode's options class says it), without loading a detector."""


@dataclass
class DetectorConfig:
    mode: str = DEFAULT_MODE  # the registry's modes: maskwatch.detection.registry
    # the default mode's own score (retina 0.7: on the shared scenes it keeps recall 0.826, 0.879 for
    # 16-32 px faces, with 0.33 unmatched boxes per image, against 0.870 / 0.62 at 0.5,
    # benchmarks/results/face_recall.md; the tracker's min_hits removes most of the remaining
    # short-lived false faces from the counts)
    min_score: float = MIN_SCORES[DEFAULT_MODE]
    every_n: int = 1  # run the detector every N frames (tracker predicts in between)
    # the mode's options (its options class in maskwatch.detection.options), e.g. {"max_pixels": 1280 * 736} for
    # `retina` on a 4K camera with tiny faces; TOML: a [detector.options] table
    options: dict = field(default_factory=dict)
    # regions where faces are not people (a painting, a poster, a screen showing faces): a face whose
    # centre is inside one is dropped before anything else sees it. Each is [x1, y1, x2, y2] as
    # fractions of the frame's width and height, e.g. [[0.45, 0.1, 0.56, 0.32]]
    ignore: list = field(default_factory=list)

    def with_mode(self, mode: str) -> "DetectorConfig":
        """This config for ``mode``, with that mode's default ``min_score`` if it has another mode.

        >>> DetectorConfig().with_mode("dense").min_score, DetectorConfig(min_score=0.4).with_mode("retina").min_score
        (0.6, 0.4)
        """
        if mode == self.mode:
            return self
        return dataclasses.replace(self, mode=mode, min_score=MODE_MIN_SCORE.get(mode, self.min_score))
