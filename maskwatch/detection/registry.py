"""Mode name -> (options class, back-end): the one table of face detector modes.

Everything that lists, describes or checks modes reads it: :class:`~maskwatch.detection.FaceDetector`,
the configuration (default ``min_score``, option checks), the CLI's ``--detector`` choices and
help, the GUI's mode list. A back-end module is imported only when a detector of its mode is
built, so reading the table costs no numpy, OpenCV or model runtime.

A new back-end is one module with a class built as ``Backend(options, min_score, model_dir)``
(see :class:`~maskwatch.detection.base.Detector`), its options class (with the built-in ones in
:mod:`~maskwatch.detection.options`, so the configuration can read it without the back-end) and
one :func:`register` line at the end of this file.

>>> modes()
('retina', 'short', 'full', 'dense', 'tiled')
>>> default_min_score("dense"), validate_mode_options("dense", {"scales": [1, 2]})
(0.6, {'scales': (1.0, 2.0)})
>>> validate_mode_options("tiled", {"overlap": 1})
Traceback (most recent call last):
...
maskwatch.errors.MaskwatchError: face detector mode 'tiled' option overlap must be a number in [0, 1), got 1
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from maskwatch.detection.base import Detector, DetectorOptions
from maskwatch.detection.options import DenseOptions, FullOptions, RetinaOptions, ShortOptions, TiledOptions
from maskwatch.errors import MaskwatchError

DEFAULT_MODE = "retina"

BackendFactory = Callable[[DetectorOptions, float, "Path | None"], Detector]


@dataclass(frozen=True)
class Mode:
    """One registered mode: its options class and its back-end (a class, or ``"module:Class"`` imported on first use)."""

    options: type[DetectorOptions]
    backend: str | BackendFactory

    @property
    def name(self) -> str:
        return self.options.mode

    def factory(self) -> BackendFactory:
        """The back-end class (importing its module the first time)."""
        if not isinstance(self.backend, str):
            return self.backend
        module, _, attr = self.backend.partition(":")
        return getattr(importlib.import_module(module), attr)

    def describe(self) -> str:
        """One line for help texts: name, help, default ``min_score``.

        >>> get("retina").describe()
        'retina (default): small faces in CCTV and crowds, min score 0.7'
        """
        default = " (default)" if self.name == DEFAULT_MODE else ""
        return f"{self.name}{default}: {self.options.help}, min score {self.options.default_min_score:g}"


_MODES: dict[str, Mode] = {}


def register(options: type[DetectorOptions], backend: str | BackendFactory) -> None:
    """Add a mode: ``options`` (a :class:`DetectorOptions` subclass whose ``mode`` is the name) and its back-end."""
    if not (isinstance(options, type) and issubclass(options, DetectorOptions) and options.mode):
        raise TypeError(f"register() needs a DetectorOptions subclass with a mode name, got {options!r}")
    if options.mode in _MODES:
        raise ValueError(f"face detector mode {options.mode!r} is already registered")
    _MODES[options.mode] = Mode(options, backend)


def unregister(mode: str) -> None:
    """Remove a mode (a plug-in's, or a test's)."""
    _MODES.pop(mode, None)


def modes() -> tuple[str, ...]:
    """The registered mode names, in registration order."""
    return tuple(_MODES)


def get(mode: str) -> Mode:
    """The registered ``mode``; a one-line error naming the choices when there is none."""
    try:
        return _MODES[mode]
    except (KeyError, TypeError):
        raise MaskwatchError(f"unknown face detector mode {mode!r}; choose one of {', '.join(_MODES)}") from None


def default_min_score(mode: str) -> float:
    """The ``min_score`` a user who picks ``mode`` without a score gets (benchmarks/results/face_recall.md)."""
    return get(mode).options.default_min_score


def parse_options(mode: str, options: Mapping) -> DetectorOptions:
    """``mode``'s typed options from a user's dict (missing ones get their defaults)."""
    return get(mode).options.from_dict(options)


def validate_mode_options(mode: str, options: Mapping) -> dict:
    """The options a user gave for ``mode``, checked and normalised (a list of scales becomes a tuple).

    Returns only the names given; raises a one-line :class:`MaskwatchError` naming the first bad
    option, or an option ``mode`` does not take:

    >>> validate_mode_options("retina", {"tile": 96})
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: face detector mode 'retina' has no option tile (it takes max_pixels, max_upscale, nms_iou, num_threads, calibrate, weights, motion, full_every, region_scale, motion_width)
    """
    parsed = parse_options(mode, options)
    return {name: getattr(parsed, name) for name in options}


class _MinScores(Mapping):
    """``{mode: default min_score}``, read from the registry on each access (a mode registered later shows)."""

    def __getitem__(self, mode: str) -> float:
        try:
            return _MODES[mode].options.default_min_score
        except (KeyError, TypeError):
            raise KeyError(mode) from None

    def __iter__(self):
        return iter(_MODES)

    def __len__(self) -> int:
        return len(_MODES)

    def __repr__(self) -> str:
        return repr(dict(self))


MIN_SCORES: Mapping[str, float] = _MinScores()
"""Each mode's default ``min_score``, as a read-only mapping (``maskwatch.config.MODE_MIN_SCORE``)."""


def mode_options() -> dict[str, dict]:
    """``{mode: {option: default}}`` of every registered mode."""
    return {name: m.options.defaults() for name, m in _MODES.items()}


def build(mode: str, options: DetectorOptions, min_score: float, model_dir: Path | None) -> Detector:
    """The back-end of ``mode``, loaded with ``options`` (of that mode's class)."""
    entry = get(mode)
    if not isinstance(options, entry.options):
        raise TypeError(f"face detector mode {mode!r} needs {entry.options.__name__}, got {type(options).__name__}")
    return entry.factory()(options, min_score, model_dir)


register(RetinaOptions, "maskwatch.detection.retina:retina_backend")
register(ShortOptions, "maskwatch.detection.tasks:ShortRangeDetector")
register(FullOptions, "maskwatch.detection.tasks:FullRangeDetector")
register(DenseOptions, "maskwatch.detection.blazeface:DenseDetector")
register(TiledOptions, "maskwatch.detection.tiled:TiledDetector")
