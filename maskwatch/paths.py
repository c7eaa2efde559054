"""Where the shipped model files and assets live, and how a path is shown (:func:`display_path`).

The repository keeps them at its top level (``models/``, ``assets/``); a built wheel or sdist carries
them inside the package (``maskwatch/models``, ``maskwatch/assets``: see ``setup.py``). Each resolver
looks inside the installed package first, then at the top of the clone (``pip install -e .``, or
running from the source tree), so the same code finds them in site-packages and in a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
"""The ``maskwatch`` package folder (in site-packages, or ``maskwatch/`` of a clone)."""


def _shipped(name: str) -> Path:
    """``maskwatch/<name>`` of an installed wheel if it is there, else ``<clone>/<name>``."""
    inside = PACKAGE_DIR / name
    if inside.is_dir():
        return inside
    return PACKAGE_DIR.parent / name


def models_dir() -> Path:
    """``$MASKWATCH_MODELS`` if set, else the shipped ``models/`` (installed package or clone)."""
    env = os.environ.get("MASKWATCH_MODELS")
    if env:
        return Path(env)
    return _shipped("models")


def assets_dir() -> Path:
    """The shipped ``assets/`` (demo clip, icons, desktop entry, systemd unit)."""
    return _shipped("assets")


DEMO_CLIP_NAME = "demo.mp4"


def demo_clip() -> Path:
    return assets_dir() / DEMO_CLIP_NAME


def display_path(path) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 (a file name from
    another system) are shown as ``\\xNN`` escapes instead of crashing ``print``.

    >>> display_path(os.fsdecode(b"caf\\xe9.jpg"))
    'caf\\\\xe9.jpg'
    """
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")
