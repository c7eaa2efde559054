"""What every face detector back-end is: a :class:`Detector` built from a typed :class:`DetectorOptions`.

This module imports no numpy, OpenCV or model runtime: the configuration reads the options
(defaults, help, checks) without loading a back-end.

An options class is a frozen dataclass. Its class-level facts say which mode it is, the mode's
default ``min_score`` and a one-line help (the CLI's ``--detector`` help, the GUI's tooltip);
each field is made with :func:`option` (default, one-line help, allowed range). Values are
checked when the object is made, so a back-end never sees a bad one:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class DemoOptions(DetectorOptions):
...     mode = "demo"
...     help = "a demo"
...     size: int = option(64, "input size", ge=16)
>>> DemoOptions.from_dict({"size": 96})
DemoOptions(size=96)
>>> DemoOptions.from_dict({"size": True})
Traceback (most recent call last):
...
maskwatch.errors.MaskwatchError: face detector mode 'demo' option size must be an integer >= 16, got True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from maskwatch.errors import MaskwatchError

if TYPE_CHECKING:
    import numpy as np

    from maskwatch.faces import Faces


@runtime_checkable
class Detector(Protocol):
    """A face detector back-end.

    ``detect`` gets a C-contiguous 3-channel BGR uint8 image with at least one pixel (the
    :class:`~maskwatch.detection.FaceDetector` façade converts and checks what callers pass) and
    returns the faces in that image's pixels, clipped to it. ``close`` frees the model (twice is
    harmless). A back-end class is built as ``Backend(options, min_score, model_dir)``.
    """

    def detect(self, bgr: np.ndarray) -> Faces: ...

    def close(self) -> None: ...


def option(default: Any, help: str, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
           le: float | None = None, choices: tuple | None = None) -> Any:
    """A dataclass field of a :class:`DetectorOptions`: default, one-line help, allowed range or values."""
    bounds = {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}
    return dataclasses.field(default=default, metadata={"help": help, "bounds": bounds, "choices": choices})


@dataclass(frozen=True)
class DetectorOptions:
    """Base of a mode's options. Subclasses set the class-level facts below and declare fields with :func:`option`."""

    mode: ClassVar[str] = ""  # the name users pick (``--detector NAME``, ``mode = "NAME"``)
    title: ClassVar[str] = ""  # a few words for lists (the GUI's mode list)
    help: ClassVar[str] = ""  # one line: what the mode is for (the CLI's --help, the GUI's tooltip)
    default_min_score: ClassVar[float] = 0.5  # the score threshold a user who picks this mode gets

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _checked(self.mode, f.name, hints[f.name], f.metadata, getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict:
        """``{name: default}`` of every option."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """``{name: one-line help}`` of every option."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, options: Mapping) -> "DetectorOptions":
        """The options a user gave (a TOML ``[detector.options]`` table, keyword arguments), checked.

        Unknown names and bad values raise a one-line :class:`MaskwatchError` naming the option.
        """
        if not isinstance(options, Mapping):
            raise MaskwatchError(f"face detector mode {cls.mode!r} options must be a table, got {options!r}")
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise MaskwatchError(
                f"face detector mode {cls.mode!r} has no option {', '.join(map(str, unknown))} (it takes {', '.join(cls.names())})"
            )
        return cls(**options)

    def as_dict(self) -> dict:
        """``{name: value}`` of every option (defaults included)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _is_int(value) -> bool:
    """An integer (numpy's too); ``True``/``False`` are not numbers here."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """An integer or a finite real (numpy's too); ``True``/``False`` are not numbers here."""
    return _is_int(value) or (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value))


def _bounds_text(bounds: dict) -> str:
    if "ge" in bounds and "le" in bounds:
        return f" in [{bounds['ge']:g}, {bounds['le']:g}]"
    if "ge" in bounds and "lt" in bounds:
        return f" in [{bounds['ge']:g}, {bounds['lt']:g})"
    if "gt" in bounds and "le" in bounds:
        return f" in ({bounds['gt']:g}, {bounds['le']:g}]"
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return "".join(f" {ops[k]} {v:g}" for k, v in bounds.items())


def _in_bounds(value, bounds: dict) -> bool:
    return (
        ("gt" not in bounds or value > bounds["gt"])
        and ("ge" not in bounds or value >= bounds["ge"])
        and ("lt" not in bounds or value < bounds["lt"])
        and ("le" not in bounds or value <= bounds["le"])
    )


def _checked(mode: str, name: str, kind, metadata: Mapping, value):
    """``value`` checked against the field's type and bounds (a list of numbers becomes a tuple)."""
    bounds, choices = metadata.get("bounds", {}), metadata.get("choices")
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    ok, want = True, ""
    if kind is bool:
        want, ok = "true or false", isinstance(value, bool)
    elif kind is int:
        want = "an integer" + _bounds_text(bounds)
        ok = _is_int(value) and _in_bounds(value, bounds)
    elif kind is float:
        want = "a number" + _bounds_text(bounds)
        ok = _is_number(value) and _in_bounds(value, bounds)
    elif kind is str:
        want = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
        ok = isinstance(value, str) and (not choices or value in choices)
    elif typing.get_origin(kind) is tuple:  # tuple[float, ...]: one number or a list of them
        want = "a number" + _bounds_text(bounds) + " or a list of them"
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        ok = bool(items) and all(_is_number(v) and _in_bounds(v, bounds) for v in items)
        if ok:
            value = tuple(float(v) for v in items)
    else:  # pragma: no cover - a programming error in an options class
        raise TypeError(f"option {name}: unsupported type {kind!r}")
    if not ok:
        if optional:
            want += " (or unset)"
        raise MaskwatchError(f"face detector mode {mode!r} option {name} must be {want}, got {value!r}")
    return value

