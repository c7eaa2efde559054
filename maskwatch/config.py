"""Configuration: one typed object, loaded from TOML and/or command-line flags and GUI settings.

``Config.load(toml, overrides)`` is the whole story: defaults, then the TOML file, then the flags
(or GUI settings) merged by :meth:`Config.with_overrides`, then :meth:`Config.validate`, which
checks every field and says in one line which one is wrong (and in which file).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.detection import registry as detection_registry  # the registry: no model, numpy or OpenCV
from maskwatch.detection import validate_mode_options
from maskwatch.detection.config import MODE_MIN_SCORE, DetectorConfig  # noqa: F401 - re-exported
from maskwatch.errors import MaskwatchError
from maskwatch.paths import demo_clip, models_dir
from maskwatch.sources.options import SourceConfig  # noqa: F401 - re-exported: each stage owns its config
from maskwatch.sources.spec import SourceSpec
from maskwatch.sources.spec import display_path as _shown
from maskwatch.sources.spec import parse as parse_source
from maskwatch.tracking.config import TrackerConfig  # noqa: F401 - re-exported
from maskwatch.tracking.registry import TRACKER_KINDS  # names only: no tracker is imported

BLUR_MODES: tuple[str, ...] = ("off", "others", "all")
"""``Config.blur_faces`` values: which faces saved snapshots and videos blur (``true`` in a TOML file
means ``"others"``, ``false`` ``"off"``).

>>> Config().with_overrides(blur_faces=True).blur_faces
'others'
"""


@dataclass
class CollectConfig:
    """The review loop's collector (``maskwatch.sinks.collect``): which face crops are saved for a
    person to label. Off while ``folder`` is ``None`` (``--collect DIR``, ``[collect] folder``)."""

    folder: Path | None = None
    max_top_prob: float = 0.75  # a face whose calibrated top probability is under this is saved
    split_vote: bool = True  # ... and a track whose runner-up label has >= 1/3 of the votes
    per_track_s: float = 3.0  # at most one crop per track every this many seconds (media time for files)
    max_files: int = 2000  # the oldest crops are deleted (and their rows dropped) beyond this ...
    max_mb: float = 500.0  # ... or this many megabytes of crops


@dataclass
class Config:
    source: str = field(default_factory=lambda: str(demo_clip()))
    model: Path = field(default_factory=lambda: models_dir() / "mask_classifier.tflite")
    interval_s: float = 60.0  # at least 0.001 s: rows are stamped to the millisecond
    log: Path | None = None  # CSV of interval summaries
    events: Path | None = None  # JSONL of events
    snapshots: Path | None = None  # folder; off when None
    save_video: Path | None = None  # annotated video of every processed frame (maskwatch.sinks.video); off when None
    # privacy: faces blurred in saved snapshots and videos: "off", "others" (every face but the one
    # whose event triggered the snapshot; in videos every face), "all" (maskwatch.sinks.blur)
    blur_faces: str = "off"
    # snapshots and recordings older than this many days are deleted (maskwatch.sinks.retention); None = kept
    retain_days: float | None = None
    alert_compliance_below: float = 0.8
    sources: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        """The defaults with a TOML file's values, checked (:meth:`validate`): every error is one
        line naming the file and the dotted field (``config file site.toml: sources.backoff_max_s
        must be a number > 0, got -1``)."""
        path = Path(path)
        where = f"config file {_shown(path)}"
        data = read_toml(path, where)
        return cls().with_overrides(data, where=where).validate(where=where)

    @classmethod
    def load(cls, toml: str | Path | None = None, overrides: Mapping | None = None) -> "Config":
        """Defaults, then the TOML file (if any), then ``overrides`` (flags, GUI settings), checked.

        >>> Config.load(overrides={"interval_s": 5, "detector.mode": "dense"}).detector.min_score
        0.6
        """
        config = cls.from_toml(toml) if toml else cls()
        return config.with_overrides(overrides or {}).validate()

    def with_overrides(self, overrides: Mapping | None = None, /, *, where: str | None = None, **flags) -> "Config":
        """A copy with ``overrides`` (and ``flags``) applied: the one merge of TOML, flags and GUI settings.

        Keys are field names, dotted names (``"detector.min_score"``) or nested tables
        (``{"detector": {"min_score": 0.5}}``, what TOML gives). ``None`` means "not given" and
        changes nothing; ``""`` turns an optional path off. Rules that keep a merge meaningful:
        a detector mode given without a ``min_score`` brings that mode's default score
        (:meth:`DetectorConfig.with_mode`); a ``vote_window`` given without ``min_votes`` caps
        ``min_votes`` at the window (else a short window never decides a label); text for a path
        field becomes a ``Path``, with ``~`` expanded (``log = "~/c.csv"`` is in the home folder,
        not in a folder named ``~``). Unknown keys and non-table values for tables are one-line
        errors (prefixed with ``where``); values are checked by :meth:`validate`, not here.

        >>> c = Config().with_overrides({"tracker": {"vote_window": 5}}, detector={"mode": "dense"}, log="out.csv")
        >>> c.tracker.min_votes, c.detector.min_score, str(c.log)
        (5, 0.6, 'out.csv')
        """
        flat: dict[str, object] = {}
        _flatten(self, {**(overrides or {}), **flags}, "", flat, where)
        return _apply(self, flat)

    def validate(self, where: str | None = None) -> "Config":
        """Check every field; returns ``self``. A bad value is a one-line ``MaskwatchError``
        naming the dotted field (and ``where``, e.g. the TOML file it came from).

        ``bool`` is never a number here (``True`` would pass ``isinstance(x, int)``), numbers must
        be finite, and the detector's options are checked by the detector registry without
        loading a model.

        >>> Config().with_overrides(sources={"backoff_max_s": 0.0001}).validate("config file site.toml")
        Traceback (most recent call last):
        ...
        maskwatch.errors.MaskwatchError: config file site.toml: sources.backoff_max_s must be a number >= 0.1 (seconds; a shorter wait retries an unreachable camera many times a second), got 0.0001
        """
        for name, value, rule in _fields_and_rules(self):
            problem = rule(value)
            if problem:
                _fail(where, f"{name} {problem}, got {_shown_value(value)}")
        det, tr, src = self.detector, self.tracker, self.sources
        if tr.min_votes > tr.vote_window:
            _fail(where, f"tracker.min_votes must be <= tracker.vote_window ({tr.vote_window}), got {tr.min_votes}")
        if src.backoff_initial_s > src.backoff_max_s:
            _fail(where, f"sources.backoff_initial_s must be <= sources.backoff_max_s ({src.backoff_max_s:g}), "
                         f"got {src.backoff_initial_s:g}")
        try:
            validate_mode_options(det.mode, det.options)
        except MaskwatchError as e:
            _fail(where, f"detector.options: {e}")
        try:
            self.spec  # noqa: B018 - parsed here, once: every later reader gets the same SourceSpec
        except MaskwatchError as e:
            _fail(where, f"source: {e}")
        return self

    @functools.cached_property
    def spec(self) -> SourceSpec:
        """``source`` parsed (:func:`maskwatch.sources.spec.parse`), once per config: the pipeline,
        the sinks, the collector and ``serve``'s workers read this one :class:`SourceSpec` instead
        of parsing the text again. :meth:`validate` parses it; a config changed with
        :meth:`with_overrides` (or ``dataclasses.replace``) is a new object with its own.

        >>> Config(source="rtsp://admin:pw@cam/live").spec.name
        'rtsp://admin:***@cam/live'
        """
        return parse_source(self.source)

    def __getstate__(self) -> dict:
        """Pickled (to a ``serve`` worker process) without the parsed :attr:`spec`: the receiving
        process parses the source itself, which also teaches *its* :func:`redact` the password (a
        password no pattern can find is hidden only in a process that parsed it)."""
        state = dict(self.__dict__)
        state.pop("spec", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        try:
            self.spec  # noqa: B018 - parsed here, in this process (see __getstate__)
        except MaskwatchError:
            pass  # a config that was never valid: its own checks say so where it is used


# -- merging ---------------------------------------------------------------------------------------


def read_toml(path: str | os.PathLike, where: str) -> dict:
    """The tables of the TOML file ``path``; every problem is one line starting with ``where``
    (``config file site.toml``), the one reader of the single-camera and the site file.

    >>> read_toml("/nonexistent/site.toml", "config file /nonexistent/site.toml")
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: config file not found: /nonexistent/site.toml
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise MaskwatchError(f"config file not found: {_shown(path)}") from None
    except IsADirectoryError:
        raise MaskwatchError(f"{where} is a directory, not a TOML file") from None
    except OSError as e:
        raise MaskwatchError(f"cannot read {where}: {(e.strerror or str(e)).lower()}") from None
    except UnicodeDecodeError:
        raise MaskwatchError(f"{where} is not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise MaskwatchError(f"{where} is not valid TOML: {e}") from None


def _fail(where: str | None, message: str):
    raise MaskwatchError(f"{where}: {message}" if where else message)


def _flatten(obj, data: Mapping, prefix: str, out: dict, where: str | None) -> None:
    """``data`` (nested tables and/or dotted keys) as ``{dotted field: value}``, keys checked."""
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if value is None:  # not given
            continue
        head, dot, tail = str(key).partition(".")
        if head not in names:
            _fail(where, f"unknown config key {prefix}{key}")
        current = getattr(obj, head)
        if dataclasses.is_dataclass(current):
            if dot:
                _flatten(current, {tail: value}, f"{prefix}{head}.", out, where)
            else:
                if not isinstance(value, Mapping):
                    _fail(where, f"config key {prefix}{head} must be a table, got {_shown_value(value)}")
                _flatten(current, value, f"{prefix}{head}.", out, where)
        elif dot:
            _fail(where, f"unknown config key {prefix}{key}")
        else:
            out[f"{prefix}{head}"] = value


def _path_fields(obj) -> set[str]:
    return {f.name for f in dataclasses.fields(obj) if "Path" in str(f.type)}


def _as_paths(obj, changes: dict) -> dict:
    """``changes`` with text for a path field of ``obj`` as a ``Path``, ``~`` expanded
    (``"~/counts.csv"`` is in the home folder, as in a shell), and ``""`` as ``None`` (off)."""
    out = dict(changes)
    for name in _path_fields(obj) & set(out):
        value = out[name]
        if isinstance(value, (str, os.PathLike)):
            out[name] = Path(value).expanduser() if str(value) else None
    return out


def _apply(config: "Config", flat: dict):
    """``config`` with the ``{dotted field: value}`` changes, and the merge rules of ``with_overrides``."""
    top: dict = {}
    tables: dict[str, dict] = {}
    for key, value in flat.items():
        head, dot, tail = key.partition(".")
        if dot:
            tables.setdefault(head, {})[tail] = value
        else:
            top[head] = value
    top = _as_paths(config, top)
    if isinstance(top.get("blur_faces"), bool):  # the issue's and users' spelling: true = all but the trigger
        top["blur_faces"] = "others" if top["blur_faces"] else "off"
    for head, changes in tables.items():
        current = getattr(config, head)
        if isinstance(current, DetectorConfig) and isinstance(changes.get("mode"), str):
            current = current.with_mode(changes["mode"])  # a min_score given next to it still wins
        changes = _as_paths(current, changes)  # [collect] folder = "~/crops"
        if isinstance(current, TrackerConfig) and "min_votes" not in changes:
            window = changes.get("vote_window")
            if _is_int(window) and window >= 1:
                changes = {**changes, "min_votes": min(current.min_votes, window)}
        top[head] = dataclasses.replace(current, **changes)
    return dataclasses.replace(config, **top)


# -- checks ----------------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(*, gt: float | None = None, ge: float | None = None, le: float | None = None, why: str = ""):
    if ge is not None and le is not None:
        wanted = f"must be a number between {ge:g} and {le:g}"
    else:
        wanted = f"must be a number > {gt:g}" if gt is not None else f"must be a number >= {ge:g}"
    wanted += f" ({why})" if why else ""

    def check(value) -> str | None:
        ok = _is_number(value) and (gt is None or value > gt) and (ge is None or value >= ge) and (le is None or value <= le)
        return None if ok else wanted

    return check


def _integer(minimum: int, *, optional: str | None = None):
    wanted = f"must be an integer >= {minimum}" + (f" (or left out: {optional})" if optional else "")

    def check(value) -> str | None:
        if value is None and optional:
            return None
        return None if _is_int(value) and value >= minimum else wanted

    return check


def _boolean(value) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _path(*, optional: bool):
    def check(value) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, Path) and str(value) not in ("", "."):
            return None
        return "must be a path (a non-empty string)" + (", or empty for none" if optional else "")

    return check


def _source(value) -> str | None:
    if _is_int(value) and value >= 0:
        return None  # a webcam index
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return None
    return "must be a webcam index, a camera URL, a video file or an image folder (a non-empty string)"


def _detector_mode(value) -> str | None:
    modes = detection_registry.modes()  # read now: a mode registered after import counts
    return None if isinstance(value, str) and value in modes else f"must be one of {', '.join(modes)}"


def _tracker_kind(value) -> str | None:
    return None if isinstance(value, str) and value in TRACKER_KINDS else f"must be one of {', '.join(TRACKER_KINDS)}"


def _regions(value) -> str | None:
    """``[[x1, y1, x2, y2], ...]`` fractions of the frame, each region with x1 < x2 and y1 < y2."""
    problem = "must be a list of [x1, y1, x2, y2] regions (fractions of the frame, 0-1, x1 < x2, y1 < y2)"
    if not isinstance(value, (list, tuple)):
        return problem
    for region in value:
        if not isinstance(region, (list, tuple)) or len(region) != 4:
            return problem
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
                   for v in region):
            return problem
        if not (region[0] < region[2] and region[1] < region[3]):
            return problem
    return None


def _table(value) -> str | None:
    return None if isinstance(value, Mapping) else "must be a table"


# Floors, in seconds: interval rows are stamped to the millisecond (maskwatch.sinks.timestamps), so a
# shorter interval has no time of its own; a network timeout under 0.1 s fails on a healthy camera
# (a frame takes tens of ms to come) and turns into reconnects; a reconnect wait under 0.1 s retries
# an unreachable camera many times a second.
_TIMEOUT = "seconds; a shorter one fails on a healthy camera and turns into reconnects"
_BACKOFF = "seconds; a shorter wait retries an unreachable camera many times a second"

_RULES = {
    "source": _source,
    "model": _path(optional=False),
    "interval_s": _number(ge=0.001, why="seconds; interval start times are written to the millisecond"),
    "alert_compliance_below": _number(ge=0, le=1),
    "sources.realtime": _boolean,
    "sources.open_timeout_s": _number(ge=0.1, why=_TIMEOUT),
    "sources.read_timeout_s": _number(ge=0.1, why=_TIMEOUT),
    "sources.stall_timeout_s": _number(ge=0.1, why=_TIMEOUT),
    "sources.backoff_initial_s": _number(ge=0.1, why=_BACKOFF),
    "sources.backoff_max_s": _number(ge=0.1, why=_BACKOFF),
    "sources.max_reconnects": _integer(0, optional="retry forever"),
    "detector.mode": _detector_mode,
    "detector.min_score": _number(ge=0, le=1),
    "detector.every_n": _integer(1),
    "detector.options": _table,
    "detector.ignore": lambda value: _regions(value),
    "tracker.vote_window": _integer(1),
    "tracker.min_votes": _integer(1),
    "tracker.min_hits": _integer(1),
    "tracker.max_age": _integer(0),
    "tracker.kind": lambda value: _tracker_kind(value),
    "tracker.camera_motion": lambda value: None if value is True or value is False or value == "auto" else 'must be true, false or "auto"',
    "tracker.low_score": _number(ge=0, le=1, why="detector score; boxes down to it are for association only"),
    "tracker.lost_s": _number(ge=0, why="seconds a lost person is matched by motion (0: max_age frames only)"),
    "tracker.relink_s": _number(ge=0, why="seconds a lost person is kept to be re-linked"),
    "tracker.change_after_s": _number(ge=0, why="seconds a new label must lead the vote before a decided label changes"),
    "blur_faces": lambda value: None if value in BLUR_MODES else f"must be one of {', '.join(BLUR_MODES)}",
    "collect.folder": _path(optional=True),
    "collect.split_vote": _boolean,
    "collect.max_top_prob": _number(ge=0, le=1, why="a calibrated probability"),
    "collect.per_track_s": _number(ge=0, why="seconds between two crops of one track"),
    "collect.max_files": _integer(1),
    "collect.max_mb": _number(gt=0, why="megabytes of crops kept"),
    "retain_days": lambda value: None if value is None else _number(gt=0, why="days; or left out to keep everything")(value),
}
"""The check of each field; a field not listed is checked by its type (a path, a flag, a number)."""


def _rule_for_type(annotation: str):
    annotation = str(annotation).replace(" ", "")
    if "Path" in annotation:
        return _path(optional="None" in annotation)
    if annotation == "bool":
        return _boolean
    return None  # numbers need their range said: a line in _RULES


def _fields_and_rules(obj, prefix: str = ""):
    """(dotted name, value, check) of every leaf field of ``obj``."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _fields_and_rules(value, f"{name}.")
            continue
        rule = _RULES.get(name) or _rule_for_type(f.type)
        if rule is None:  # a new field needs a line in _RULES (tests/app/test_config.py checks every field)
            raise TypeError(f"no check for config field {name} ({f.type})")
        yield name, value, rule


def _shown_value(value) -> str:
    if isinstance(value, Path):
        return repr(_shown(value))
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)
