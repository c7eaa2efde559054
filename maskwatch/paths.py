"""Where the shipped model files live."""

from __future__ import annotations

import os
from pathlib import Path


def models_dir() -> Path:
    """``$MASKWATCH_MODELS`` if set, else the repository's ``models/`` (editable install)."""
    env = os.environ.get("MASKWATCH_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "models"


def assets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets"


DEMO_CLIP_NAME = "demo.mp4"


def demo_clip() -> Path:
    return assets_dir() / DEMO_CLIP_NAME
