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

from maskwatch.errors import MaskwatchError

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


# Libraries Qt's xcb platform plugin links against, and the Debian/Ubuntu packages that ship them.
# Without one, Qt prints "Could not load the Qt platform plugin xcb" and aborts with a core dump.
XCB_LIBRARY_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}


def parse_ldd_missing(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` reports as ``not found``, in order, once each.

    >>> parse_ldd_missing('''\\tlibxcb-cursor.so.0 => not found
    ...     libGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f)
    ...     libxcb-icccm.so.4 => not found''')
    ['libxcb-cursor.so.0', 'libxcb-icccm.so.4']
    """
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, sep, target = line.strip().partition("=>")
        if sep and target.strip().startswith("not found") and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def qt_platform_names(environ=None) -> list[str]:
    """The platform plugins Qt 6 tries, in order, until one loads (Linux).

    Qt's own rule (``QGuiApplicationPrivate::createPlatformIntegration`` in qtbase,
    ``qguiapplication.cpp``): ``QT_QPA_PLATFORM`` (a ``;``-separated list) when set; else
    ``wayland`` first when ``WAYLAND_DISPLAY`` is set or ``XDG_SESSION_TYPE`` is ``wayland``, then
    ``xcb`` (when ``DISPLAY`` is set, and as the build's default in any case).

    >>> qt_platform_names({"QT_QPA_PLATFORM": "wayland;xcb"}), qt_platform_names({"DISPLAY": ":0"})
    (['wayland', 'xcb'], ['xcb'])
    >>> qt_platform_names({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})
    ['wayland', 'xcb']
    >>> qt_platform_names({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}), qt_platform_names({})
    (['wayland', 'xcb'], ['xcb'])
    """
    environ = os.environ if environ is None else environ
    explicit = [p.split(":")[0].strip() for p in environ.get("QT_QPA_PLATFORM", "").split(";")]
    if any(explicit):
        return [p for p in explicit if p]
    wayland = bool(environ.get("WAYLAND_DISPLAY")) or environ.get("XDG_SESSION_TYPE") == "wayland"
    return (["wayland"] if wayland else []) + ["xcb"]


def qt_platform_name(environ=None) -> str:
    """The platform plugin Qt tries first (:func:`qt_platform_names`).

    >>> qt_platform_name({"QT_QPA_PLATFORM": "offscreen"}), qt_platform_name({"DISPLAY": ":0"})
    ('offscreen', 'xcb')
    >>> qt_platform_name({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})
    'wayland'
    """
    return qt_platform_names(environ)[0]


def _platform_plugin(platform: str, plugin_dir: str | Path | None = None) -> Path | None:
    """The file Qt loads for ``platform`` (``libq<platform>.so``), searched where Qt searches:
    ``plugin_dir`` (default ``QT_QPA_PLATFORM_PLUGIN_PATH``), then ``QT_PLUGIN_PATH``'s
    ``platforms`` folders, then Qt's own; ``None`` when there is none (or no PyQt6)."""
    try:
        from PyQt6.QtCore import QLibraryInfo
    except ImportError:
        return None
    dirs = [Path(d) for d in str(plugin_dir or os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "")).split(os.pathsep) if d]
    dirs += [Path(d) / "platforms" for d in os.environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if d]
    dirs.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms")
    return next((d / f"libq{platform}.so" for d in dirs if (d / f"libq{platform}.so").is_file()), None)


def missing_platform_libraries(platform: str | None = None, plugin_dir: str | Path | None = None) -> list[str]:
    """Sonames the Qt platform plugin (default: the one Qt tries first) needs but this system lacks.

    ``plugin_dir``: where Qt loads platform plugins from (default: ``QT_QPA_PLATFORM_PLUGIN_PATH``,
    then ``QT_PLUGIN_PATH``'s ``platforms`` folders, then Qt's own; call
    :func:`prepare_qt_environment` first, which drops the paths OpenCV sets). Asks ``ldd``
    about the plugin; an empty list when nothing is missing or it cannot be told (no ``ldd``, not
    Linux, no such plugin).
    """
    import shutil
    import subprocess
    import sys

    platform = platform or qt_platform_name()
    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        return []
    plugin = _platform_plugin(platform, plugin_dir)
    if plugin is None:
        return []
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd_missing(out)


def check_platform_libraries() -> None:
    """Raise a one-line ``MaskwatchError`` when no platform plugin Qt would try can load.

    Call after :func:`prepare_qt_environment` and before the ``QApplication`` exists (Qt aborts
    the process, core dump and all, when no platform plugin loads). Qt tries the plugins of
    :func:`qt_platform_names` in order: a Wayland session whose ``wayland`` plugin loads starts
    even when the ``xcb`` plugin lacks its libraries. A plugin that is not installed is skipped,
    as Qt does; when none can be checked (no ``ldd``, not Linux) nothing is refused.
    """
    import sys

    if not sys.platform.startswith("linux"):
        return
    refused: list[tuple[str, list[str]]] = []
    for platform in qt_platform_names():
        if platform in ("offscreen", "minimal"):
            return
        if _platform_plugin(platform) is None:
            continue  # not installed here: Qt goes on to the next
        missing = missing_platform_libraries(platform)
        if not missing:
            return  # this one loads (or it cannot be told): Qt starts with it
        refused.append((platform, missing))
    if refused:
        # name the xcb plugin's packages when it is among them (the fallback everywhere; its packages are known)
        platform, missing = next((r for r in refused if r[0] == "xcb"), refused[0])
        raise MaskwatchError(platform_libraries_error(missing, platform))


def platform_libraries_error(missing: list[str], platform: str = "xcb") -> str:
    """The one line shown when the platform plugin cannot load, naming the packages to install.

    >>> platform_libraries_error(["libxcb-cursor.so.0", "libfoo.so.1"])
    "the desktop app cannot start: Qt's xcb platform plugin needs libxcb-cursor.so.0, libfoo.so.1, which this system lacks; install them (Debian/Ubuntu: apt-get install libxcb-cursor0; and the package that has libfoo.so.1) or use 'maskwatch --headless'"
    """
    packages = sorted({XCB_LIBRARY_PACKAGES[m] for m in missing if m in XCB_LIBRARY_PACKAGES})
    unknown = [m for m in missing if m not in XCB_LIBRARY_PACKAGES]
    hint = f"apt-get install {' '.join(packages)}" if packages else ""
    if unknown:
        hint += ("; and " if hint else "") + f"the package{'s' if len(unknown) > 1 else ''} that {'have' if len(unknown) > 1 else 'has'} {', '.join(unknown)}"
    return (f"the desktop app cannot start: Qt's {platform} platform plugin needs {', '.join(missing)}, which this "
            f"system lacks; install them (Debian/Ubuntu: {hint}) or use 'maskwatch --headless'")
