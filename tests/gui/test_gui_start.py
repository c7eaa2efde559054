"""Starting the desktop app from the command line: a missing X library is one line, not Qt's
abort and core dump; a source given on the command line is watched at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_MODEL, cli_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd and Qt's xcb plugin are Linux things")


def _qt6_dir() -> Path:
    import PyQt6

    return Path(PyQt6.__file__).parent / "Qt6"


def _gui_env(**extra) -> dict:
    # no Qt variables, and not the developer's Wayland session: Qt would try its wayland plugin first
    env = {k: v for k, v in cli_env().items() if not k.startswith("QT_") and k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env.update(extra)
    return env


def _broken_plugins(folder: Path, *, xcb: bool = True, wayland: bool = False) -> Path:
    """A Qt plugin folder with real platform plugins whose first library is renamed to one no system
    has (same length, so the ELF stays valid): Qt itself would abort with a core dump on them."""
    platforms = folder / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    for name, lib, broken in [("libqxcb.so", b"libxcb-cursor.so.0", b"libxcb-cursXr.so.0"),
                              ("libqwayland.so", b"libwayland-client.so.0", b"libwayland-clienX.so.0")]:
        if (name == "libqxcb.so" and xcb) or (name == "libqwayland.so" and wayland):
            data = (_qt6_dir() / "plugins" / "platforms" / name).read_bytes()
            assert lib in data
            (platforms / name).write_bytes(data.replace(lib, broken))
    (folder / "lib").symlink_to(_qt6_dir() / "lib")  # the plugins' RPATH is $ORIGIN/../../lib
    return folder / "plugins"


def test_missing_xcb_library_is_one_line_naming_the_package(tmp_path):
    # A real xcb plugin whose libxcb-cursor dependency is renamed to a library no system has
    # (same length, so the ELF stays valid): Qt itself would abort with a core dump on it.
    plugins = _broken_plugins(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "--model", str(TINY_MODEL)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=_gui_env(DISPLAY=":93", QT_PLUGIN_PATH=str(plugins)),  # searched before Qt's own
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("maskwatch: error: the desktop app cannot start")
    assert "libxcb-cursXr.so.0" in lines[0] and "maskwatch --headless" in lines[0]
    assert "Traceback" not in r.stderr and "core dumped" not in r.stderr


def test_a_wayland_session_is_not_refused_for_missing_xcb_libraries(tmp_path, monkeypatch):
    """Regression: the check assumed xcb whenever DISPLAY was set, but Qt 6 tries its wayland
    plugin first in a Wayland session (WAYLAND_DISPLAY or XDG_SESSION_TYPE=wayland), so a working
    Wayland desktop without the xcb libraries was refused."""
    from maskwatch.errors import MaskwatchError
    from maskwatch.gui.qt_env import check_platform_libraries, qt_platform_names

    for name in ("QT_QPA_PLATFORM", "QT_QPA_PLATFORM_PLUGIN_PATH", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISPLAY", ":93")
    monkeypatch.setenv("QT_PLUGIN_PATH", str(_broken_plugins(tmp_path / "xcb")))  # Qt's own wayland plugin is fine
    with pytest.raises(MaskwatchError, match="xcb platform plugin needs libxcb-cursXr.so.0"):
        check_platform_libraries()  # an X11 session: xcb is all Qt tries
    for session in ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, {"XDG_SESSION_TYPE": "wayland"},
                    {"WAYLAND_DISPLAY": "wayland-0"}):
        for name, value in session.items():
            monkeypatch.setenv(name, value)
        assert qt_platform_names() == ["wayland", "xcb"]
        check_platform_libraries()  # wayland loads: not refused
        for name in session:
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    monkeypatch.setenv("QT_PLUGIN_PATH", str(_broken_plugins(tmp_path / "both", wayland=True)))
    with pytest.raises(MaskwatchError, match="xcb platform plugin needs libxcb-cursXr.so.0"):
        check_platform_libraries()  # neither loads: the fallback's packages are named
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check_platform_libraries()


def test_source_on_the_command_line_starts_monitoring_at_once(tmp_path):
    log = tmp_path / "counts.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskwatch.cli", "--source", str(REPO / "tests" / "fixtures" / "clip_320x240.mp4"),
         "--model", str(TINY_MODEL), "--interval", "1", "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=_gui_env(QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config")),  # not the user's settings
    )
    try:
        deadline = time.monotonic() + 90
        rows = 0
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists():
                rows = len(log.read_text().splitlines()) - 1
                if rows >= 1:
                    break
            time.sleep(0.2)
        assert rows >= 1, "no interval row: the app did not start monitoring without a press of Start"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
