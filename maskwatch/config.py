"""Configuration: one typed object, loaded from TOML and/or command-line flags."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.detection.registry import MIN_SCORES
from maskwatch.errors import MaskwatchError
from maskwatch.paths import demo_clip, models_dir


@dataclass
class SourceConfig:
    realtime: bool = False  # files: pace to the file's fps
    open_timeout_s: float = 10.0  # network: give up one open attempt after this
    read_timeout_s: float = 5.0  # network: a read that blocks longer is a failure
    stall_timeout_s: float = 5.0  # network: no new frame for this long -> reconnect
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_reconnects: int | None = None  # None = forever


MODE_MIN_SCORE: Mapping[str, float] = MIN_SCORES
"""Each detector mode's default ``min_score`` (benchmarks/results/face_recall.md): choosing a mode
without a score (``--detector dense``, ``mode = "dense"`` in TOML, the GUI's mode list) gets it.
Read from the detector registry (each mode's options class says it), without loading a detector."""


@dataclass
class DetectorConfig:
    mode: str = "retina"  # see maskwatch.detection.DETECTOR_MODES
    # 0.7: on the shared scenes `retina` keeps recall 0.826 (0.879 for 16-32 px faces) with 0.33
    # unmatched boxes per image, against 0.870 / 0.62 at 0.5 (benchmarks/results/face_recall.md);
    # the tracker's min_hits removes most of the remaining short-lived false faces from the counts.
    min_score: float = 0.7
    every_n: int = 1  # run the detector every N frames (tracker predicts in between)
    # the mode's options (maskwatch.detection.MODE_OPTIONS), e.g. {"max_pixels": 1280 * 736} for
    # `retina` on a 4K camera with tiny faces; TOML: a [detector.options] table
    options: dict = field(default_factory=dict)

    def with_mode(self, mode: str) -> "DetectorConfig":
        """This config for ``mode``, with that mode's default ``min_score`` if it has another mode.

        >>> DetectorConfig().with_mode("dense").min_score, DetectorConfig(min_score=0.4).with_mode("retina").min_score
        (0.6, 0.4)
        """
        if mode == self.mode:
            return self
        return dataclasses.replace(self, mode=mode, min_score=MODE_MIN_SCORE.get(mode, self.min_score))


@dataclass
class TrackerConfig:
    vote_window: int = 15  # a track's label is the majority over its last N classified frames
    # classified frames before a track's label is decided: 10 (not 5) so that a few bad early crops
    # (a torso boxed as a face while the person is far away) cannot decide the label alone
    min_votes: int = 10
    # detector matches a track needs before it counts as a person: short-lived false faces (a
    # scribble in a photo's background, wall texture) last a few frames, people much longer
    min_hits: int = 10
    max_age: int = 30  # frames a track survives unseen


@dataclass
class Config:
    source: str = field(default_factory=lambda: str(demo_clip()))
    model: Path = field(default_factory=lambda: models_dir() / "mask_classifier.tflite")
    interval_s: float = 60.0
    log: Path | None = None  # CSV of interval summaries
    events: Path | None = None  # JSONL of events
    snapshots: Path | None = None  # folder; off when None
    save_video: Path | None = None  # annotated video of every processed frame (maskwatch.sinks.video); off when None
    alert_compliance_below: float = 0.8
    sources: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise MaskwatchError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise MaskwatchError(f"config file {path} is not valid TOML: {e}") from None
        return cls().updated(data)

    def updated(self, data: dict) -> "Config":
        """A copy with values from a nested dict (TOML tables map to the sub-configs)."""
        return _update(self, data, prefix="")


def _update(obj, data: dict, prefix: str):
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise MaskwatchError(f"unknown config key: {prefix}{key}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise MaskwatchError(f"config key {prefix}{key} must be a table")
            if isinstance(current, DetectorConfig) and isinstance(value.get("mode"), str):
                current = current.with_mode(value["mode"])  # a min_score given next to it still wins
            changes[key] = _update(current, value, prefix=f"{prefix}{key}.")
        elif isinstance(current, Path) or key in ("log", "events", "snapshots", "save_video", "model"):
            changes[key] = None if value in (None, "") else Path(value)
        else:
            changes[key] = value
    return dataclasses.replace(obj, **changes)
