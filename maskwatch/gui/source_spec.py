"""The webcams on this machine, for the desktop app's source picker.

Everything else about source texts (kinds, URLs, the password field's split and join) is
:mod:`maskwatch.sources.spec`'s, the one parser of source texts: import it from there.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Webcam", "find_webcams"]


@dataclass(frozen=True)
class Webcam:
    spec: str  # what open_source takes: "0" or "/dev/video2"
    name: str  # for the picker


def find_webcams(max_index: int = 4) -> list[Webcam]:
    """Video capture devices on this machine, without opening them (opening can take seconds).

    Linux: ``/dev/video*`` nodes whose sysfs ``index`` is 0 (UVC cameras also create metadata
    nodes), named from sysfs. Other systems: indices ``0..max_index-1`` can't be listed without
    opening them, so the picker offers index 0 (``Webcam 0``).
    """
    if not sys.platform.startswith("linux"):
        return [Webcam("0", "Webcam 0")]
    cams = []
    for node in sorted(glob.glob("/dev/video*"), key=lambda p: int(re.sub(r"\D", "", p) or 0)):
        sysfs = Path("/sys/class/video4linux") / os.path.basename(node)
        try:
            if (sysfs / "index").read_text().strip() not in ("", "0"):
                continue
        except OSError:
            pass
        try:
            label = (sysfs / "name").read_text().strip()
        except OSError:
            label = ""
        digits = re.sub(r"\D", "", node)
        spec = digits if digits else node
        cams.append(Webcam(spec, f"Webcam {spec}" + (f" — {label}" if label else "")))
    return cams[:max(max_index, 1) * 4]
