"""Starting the desktop app from the command line: a missing X library is one line, not Qt's
abort and core dump; a source given on the command line is watched at once."""

from __future__ import annotations

import os
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
    env = {k: v for k, v in cli_env().items() if not k.startswith("QT_")}
    env.update(extra)
    return env


def test_missing_xcb_library_is_one_line_naming_the_package(tmp_path):
    # A real xcb plugin whose libxcb-cursor dependency is renamed to a library no system has
    # (same length, so the ELF stays valid): Qt itself would abort with a core dump on it.
    real = _qt6_dir() / "plugins" / "platforms" / "libqxcb.so"
    data = real.read_bytes()
    assert b"libxcb-cursor.so.0" in data
    platforms = tmp_path / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (platforms / "libqxcb.so").write_bytes(data.replace(b"libxcb-cursor.so.0", b"libxcb-cursXr.so.0"))
    (tmp_path / "lib").symlink_to(_qt6_dir() / "lib")  # the plugin's RPATH is $ORIGIN/../../lib
    r = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "--model", str(TINY_MODEL)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=_gui_env(DISPLAY=":93", QT_PLUGIN_PATH=str(tmp_path / "plugins")),  # searched before Qt's own
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("maskwatch: error: the desktop app cannot start")
    assert "libxcb-cursXr.so.0" in lines[0] and "maskwatch --headless" in lines[0]
    assert "Traceback" not in r.stderr and "core dumped" not in r.stderr


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
