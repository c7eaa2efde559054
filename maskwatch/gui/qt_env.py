"""Make PyQt6 load its own Qt plugins even after ``import cv2``.

``mediapipe`` depends on ``opencv-contrib-python``, whose wheel bundles Qt5 and, on ``import cv2``,
points ``QT_QPA_PLATFORM_PLUGIN_PATH`` (and ``QT_QPA_FONTDIR``) at ``cv2/qt/...``. A Qt6
application that inherits those variables tries to load cv2's Qt5 ``libqxcb.so`` and dies with
"Could not load the Qt platform plugin xcb". :func:`prepare_qt_environment` imports cv2 first
(so it cannot set them again later), removes every Qt variable that points into cv2's folder,
and checks that Qt6's own plugin folder is the one ``QLibraryInfo`` reports.

Call it before creating the ``QApplication``:

>>> from maskwatch.gui.qt_env import prepare_qt_environment
>>> report = prepare_qt_environment()
>>> "QT_QPA_PLATFORM_PLUGIN_PATH" in report.removed or "cv2" not in __import__("os").environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "")
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Qt variables that may point at plugin or font folders (path lists use os.pathsep).
QT_PATH_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH", "QT_QPA_FONTDIR")


@dataclass
class QtEnvironmentReport:
    """What :func:`prepare_qt_environment` changed and found."""

    removed: dict[str, str] = field(default_factory=dict)  # variable -> value it had
    plugins_path: str = ""  # QLibraryInfo's PluginsPath (should be PyQt6/Qt6/plugins)
    platform_plugin_dir: str = ""  # the folder the platform plugins (xcb, offscreen) load from


def _cv2_dir() -> Path | None:
    try:
        import cv2  # noqa: F401 - imported for its side effect on os.environ, then scrubbed
    except ImportError:
        return None
    return Path(cv2.__file__).resolve().parent


def _inside(path: str, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def prepare_qt_environment() -> QtEnvironmentReport:
    """Import cv2, drop Qt path variables pointing into it, and report Qt6's plugin folder.

    Safe to call more than once. Paths in a variable that do not point into cv2 are kept.
    """
    report = QtEnvironmentReport()
    cv2_dir = _cv2_dir()
    if cv2_dir is not None:
        for name in QT_PATH_VARIABLES:
            value = os.environ.get(name)
            if not value:
                continue
            kept = [p for p in value.split(os.pathsep) if p and not _inside(p, cv2_dir)]
            if len(kept) != len([p for p in value.split(os.pathsep) if p]):
                report.removed[name] = value
                if kept:
                    os.environ[name] = os.pathsep.join(kept)
                else:
                    del os.environ[name]
    from PyQt6.QtCore import QLibraryInfo

    report.plugins_path = QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
    platform_dir = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH") or os.path.join(report.plugins_path, "platforms")
    report.platform_plugin_dir = platform_dir
    if cv2_dir is not None and _inside(report.plugins_path, cv2_dir):  # pragma: no cover - would be a broken install
        raise RuntimeError(f"Qt6 plugin path {report.plugins_path} points into OpenCV's bundled Qt; reinstall PyQt6")
    return report
