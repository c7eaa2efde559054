"""Start and stop the real GStreamer RTSP test server (``scripts/rtsp_server.py``) from tests.

    from rtsp import RtspServer, requires_rtsp_server   # tests/support/ is on sys.path under pytest (pyproject pythonpath)

    @requires_rtsp_server
    def test_camera(tmp_path):
        with RtspServer(FIXTURES / "clip_320x240.mp4") as srv:
            url = srv.url                # rtsp://127.0.0.1:PORT/stream (with user:password@ if given)
            srv.pause(); srv.resume()    # SIGSTOP / SIGCONT: a hung camera (stall)
            srv.stop()                   # SIGKILL: the camera vanishes
            srv.start()                  # back on the same port
            srv.restart(clip=other)      # same port, another clip (e.g. another frame size)

Fixture clips: ``fixtures/clip_320x240.mp4`` and ``fixtures/clip_480x360.mp4`` (ffmpeg testsrc,
25 fps, 50 frames, H.264 baseline). The server runs under Debian's ``/usr/bin/python3`` (it needs python3-gi and gst-rtsp-server, which
``scripts/install_test_deps.sh`` installs). ``requires_rtsp_server`` marks a test ``rtsp`` and skips
it, with the reason, only when that interpreter cannot import GstRtspServer.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@functools.lru_cache(maxsize=1)
def rtsp_server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None if it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (run scripts/install_test_deps.sh)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "import sys; sys.exit(0 if Gst.ElementFactory.find('x264enc') else 3)"
    )
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{SYSTEM_PYTHON} cannot probe GStreamer: {e}"
    if r.returncode == 3:
        return "GStreamer x264enc missing (gstreamer1.0-plugins-ugly; run scripts/install_test_deps.sh)"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks gi/GstRtspServer ({last}); run scripts/install_test_deps.sh"
    return None


def requires_rtsp_server(test):
    """Decorator: mark a test ``rtsp`` and skip it when the RTSP server cannot run here."""
    reason = rtsp_server_missing()
    test = pytest.mark.rtsp(test)
    if reason:
        test = pytest.mark.skip(reason=reason)(test)
    return test


@pytest.fixture
def rtsp_server():
    """A started ``RtspServer`` looping ``fixtures/clip_320x240.mp4`` (25 fps, 2 s); killed after the test.

    Use it by importing it into a test module: ``from rtsp import rtsp_server``.
    """
    reason = rtsp_server_missing()
    if reason:
        pytest.skip(reason)
    with RtspServer(FIXTURES / "clip_320x240.mp4") as server:
        yield server


class RtspServer:
    """A running ``scripts/rtsp_server.py``; ``stop()`` kills it, ``start()`` brings it back on the same port.

    ``clip`` None serves a moving test pattern of ``width`` x ``height``. ``port`` 0 lets the first
    start pick a free port; later starts reuse it.
    """

    def __init__(
        self,
        clip: str | Path | None = None,
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        path: str = "/stream",
        width: int = 320,
        height: int = 240,
        ready_timeout: float = 20.0,
    ):
        self.clip = Path(clip) if clip is not None else None
        self.port = port
        self.user = user
        self.password = password
        self.path = path if path.startswith("/") else "/" + path
        self.width = width
        self.height = height
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self._output: list[str] = []

    @property
    def url(self) -> str:
        """The stream URL, with ``user:password@`` when the server requires auth."""
        if not self.port:
            raise RuntimeError("RtspServer has no port yet: start() it first")
        creds = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"rtsp://{creds}127.0.0.1:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "RtspServer":
        """Start the server (no-op if running) and wait for its READY line."""
        if self.running:
            return self
        cmd = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), "--path", self.path]
        if self.clip is not None:
            cmd += ["--clip", str(self.clip)]
        else:
            cmd += ["--width", str(self.width), "--height", str(self.height)]
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
        deadline = time.monotonic() + self.ready_timeout
        while True:
            error = self._launch(cmd, deadline)
            if error is None:
                return self
            # A port just freed by a killed server can take a moment to be bindable again.
            if "cannot listen" in error and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise RuntimeError(f"RTSP test server did not start: {error}")

    def _launch(self, cmd: list[str], deadline: float) -> str | None:
        self._output = []
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream=self.proc.stdout):
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                return f"no READY within {self.ready_timeout:.0f} s: {''.join(self._output)[-500:]}"
            if line is None:
                self.proc.wait()
                return f"exited with {self.proc.returncode}: {''.join(self._output)[-500:]}"
            self._output.append(line)
            if line.startswith("READY "):
                self.port = int(line.split()[1].rsplit(":", 1)[1].split("/", 1)[0])
                return None

    def stop(self) -> None:
        """Kill the server at once (SIGKILL), like a camera losing power. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but no frame comes, like a hung camera."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause`` (SIGCONT)."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, clip: str | Path | None = None, width: int | None = None, height: int | None = None):
        """Stop, optionally switch clip or pattern size, and start again on the same port."""
        self.stop()
        if clip is not None:
            self.clip = Path(clip)
        if width is not None:
            self.width = width
        if height is not None:
            self.height = height
        return self.start()

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
