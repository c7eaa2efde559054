"""Finding and opening the face detection models: one place for their paths, checks and load errors."""

from __future__ import annotations

import os
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.paths import models_dir


def model_path(model_dir: Path | None, filename: str) -> Path:
    """``model_dir / filename`` (``model_dir`` unset: the shipped ``models/``); a one-line error when it is missing."""
    path = Path(model_dir or models_dir()) / filename
    if path.is_dir():
        raise MaskwatchError(f"face detection model {path} is a directory, not a model file")
    if not path.is_file():
        raise MaskwatchError(f"face detection model not found: {path} (ship models/{filename} or set MASKWATCH_MODELS)")
    return path


def read_model(path: Path) -> bytes:
    """The bytes of a model file; a one-line error naming it when it cannot be read (permissions,
    a directory, an I/O error).

    >>> read_model(Path("/"))
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: cannot read face detection model /: is a directory
    """
    try:
        return path.read_bytes()
    except OSError as e:
        raise MaskwatchError(f"cannot read face detection model {path}: {(e.strerror or str(e)).lower()}") from None


def read_tflite(path: Path) -> bytes:
    """The bytes of a TFLite model; a one-line error when the file is not one (corrupt, wrong file) or cannot be read."""
    data = read_model(path)
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise MaskwatchError(f"face detection model {path} is not a TFLite model (corrupt or wrong file)")
    return data


def default_threads() -> int:
    """Inference threads when the options leave them unset: up to 2 (the classifier and decoder need the rest)."""
    return max(1, min(2, os.cpu_count() or 1))


def first_line(error: BaseException) -> str:
    """The first line of a runtime's (often multi-line) error message, or its type when it has none.

    >>> first_line(RuntimeError("bad model\\n  at line 3")), first_line(ValueError())
    ('bad model', 'ValueError')
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
