"""The sinks' side of face blurring (``Config.blur_faces``): :func:`check_blur_mode`.

The blurring itself is core (:mod:`maskwatch.blur`, used through
:func:`maskwatch.overlay.annotate`); its names stay importable from here.

>>> check_blur_mode("others")
'others'
"""

from __future__ import annotations

from maskwatch.blur import BLOCKS, GROW, blur_faces, faces_to_blur
from maskwatch.config import BLUR_MODES
from maskwatch.errors import MaskwatchError

__all__ = ["BLOCKS", "GROW", "blur_faces", "check_blur_mode", "faces_to_blur"]


def check_blur_mode(mode) -> str:
    """``mode`` if it is one of :data:`~maskwatch.config.BLUR_MODES`, else a one-line ``MaskwatchError``."""
    if mode not in BLUR_MODES:
        raise MaskwatchError(f"blur_faces must be one of {', '.join(BLUR_MODES)}, got {mode!r}")
    return mode
