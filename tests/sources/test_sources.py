"""Sources: files, image folders, the live reader (with fake captures) and a real RTSP server."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.config import SourceConfig
from maskwatch.errors import MaskwatchError
from maskwatch.frames import SourceState
from maskwatch.sources import FileSource, ImageFolderSource, LiveSource, open_source, redact_url
from rtsp import FIXTURES, RtspServer, requires_rtsp_server, rtsp_server  # noqa: F401 (fixture)

# ---------------------------------------------------------------------------------------------
# helpers


def write_gray_video(path: Path, n: int, fps: float, size=(64, 48)) -> Path:
    """A video whose frame i is flat gray level 10 * i (so the order can be checked after decoding)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 10 * i, np.uint8))
    writer.release()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class FakeCapture:
    """A cv2.VideoCapture stand-in: ``fps`` frames per second of ``size``, frame k filled with k % 256.

    ``fail_open`` makes ``isOpened`` False; after ``stall_after`` frames ``read`` blocks until
    ``unblock`` is set; after ``end_after`` frames ``read`` fails.
    """

    def __init__(self, fps=100.0, size=(32, 24), fail_open=False, stall_after=None, end_after=None):
        self.period = 1.0 / fps
        self.size = size
        self.fail_open = fail_open
        self.stall_after = stall_after
        self.end_after = end_after
        self.reads = 0
        self.released = threading.Event()
        self.unblock = threading.Event()

    def isOpened(self):
        return not self.fail_open

    def get(self, prop):
        return 1.0 / self.period if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if self.stall_after is not None and self.reads >= self.stall_after:
            self.unblock.wait()
            return False, None
        if self.end_after is not None and self.reads >= self.end_after:
            return False, None
        time.sleep(self.period)
        self.reads += 1
        return True, np.full((self.size[1], self.size[0], 3), self.reads % 256, np.uint8)

    def release(self):
        self.released.set()


class FakeCamera:
    """A capture factory handing out the given captures in turn (the last one again when exhausted)."""

    def __init__(self, *captures):
        self.captures = list(captures)
        self.opened: list[FakeCapture] = []
        self.open_times: list[float] = []

    def __call__(self):
        cap = self.captures[min(len(self.opened), len(self.captures) - 1)]
        if cap in self.opened:  # a fresh copy, so counters don't carry over
            cap = FakeCapture(1.0 / cap.period, cap.size, cap.fail_open, cap.stall_after, cap.end_after)
        self.opened.append(cap)
        self.open_times.append(time.monotonic())
        return cap


FAST = SourceConfig(
    open_timeout_s=2.0, read_timeout_s=1.0, stall_timeout_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.2
)


# ---------------------------------------------------------------------------------------------
# files


def test_file_source_yields_every_frame_in_order_with_timestamps(tmp_path):
    clip = write_gray_video(tmp_path / "gray.avi", n=20, fps=10)
    with open_source(str(clip)) as source:
        assert isinstance(source, FileSource)
        assert (source.kind, source.is_live, source.fps) == ("file", False, 10.0)
        frames = list(source)
        assert source.state is SourceState.ENDED
        assert source.frame_size == (64, 48)
    assert [f.index for f in frames] == list(range(20))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(20)])
    levels = [float(f.image.mean()) for f in frames]
    assert levels == pytest.approx([10 * i for i in range(20)], abs=4)
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert source.read() is None  # stays ended


def test_file_source_realtime_paces_to_the_file_fps(tmp_path):
    clip = write_gray_video(tmp_path / "gray.avi", n=9, fps=20)
    fast_start = time.monotonic()
    assert len(list(open_source(clip))) == 9
    fast = time.monotonic() - fast_start
    start = time.monotonic()
    with open_source(clip, SourceConfig(realtime=True)) as source:
        frames = list(source)
    paced = time.monotonic() - start
    assert len(frames) == 9
    assert paced >= 8 / 20 - 0.01  # frame 8 is due 0.4 s after frame 0; sleeping is never shorter
    assert paced > fast
    assert frames[-1].captured_at - frames[0].captured_at >= 8 / 20 - 0.01


def test_fixture_clip_opens(tmp_path):
    with open_source(FIXTURES / "clip_320x240.mp4") as source:
        frames = list(source)
    assert len(frames) == 50 and source.fps == 25.0 and source.frame_size == (320, 240)


# ---------------------------------------------------------------------------------------------
# image folders


def test_image_folder_in_natural_order_skips_unreadable(tmp_path, caplog):
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((10 + i, 20, 3), i, np.uint8))
    (tmp_path / "img3.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored")
    caplog.set_level(logging.WARNING, logger="maskwatch.sources")
    with open_source(tmp_path) as source:
        assert isinstance(source, ImageFolderSource) and source.kind == "images"
        frames = list(source)
    assert [source.paths[f.index].name for f in frames] == ["img1.png", "img2.png", "img10.png"]
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 10]
    assert source.skipped == 1 and [p.name for p in source.skipped_paths] == ["img3.jpg"]
    assert source.state is SourceState.ENDED
    assert any("img3.jpg" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_single_image_file_is_a_one_frame_source(tmp_path):
    path = tmp_path / "one.jpg"
    cv2.imwrite(str(path), np.zeros((30, 40, 3), np.uint8))
    assert [f.image.shape for f in open_source(path)] == [(30, 40, 3)]


# ---------------------------------------------------------------------------------------------
# bad input


def test_missing_path(tmp_path):
    with pytest.raises(MaskwatchError, match=r"^source not found: .*nope\.mp4$"):
        open_source(str(tmp_path / "nope.mp4"))


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(MaskwatchError, match="no images in folder"):
        open_source(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"\x00garbage" * 500, (FIXTURES / "clip_320x240.mp4").read_bytes()[:3000], b""],
    ids=["garbage", "truncated", "empty"],
)
def test_corrupt_video(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(MaskwatchError) as info:
        open_source(path)
    message = str(info.value)
    assert "broken.mp4" in message and "\n" not in message


def test_unreadable_single_image(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"PNG? no")
    with pytest.raises(MaskwatchError, match="cannot read image"):
        open_source(path)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("rtsp://", "no host"),
        ("rtsp:///stream", "no host"),
        ("rtsp://cam:99999/stream", "port"),
        ("rtsp://cam:abc/stream", "port"),
        ("rtsp://cam:0/stream", "port 0"),
        ("rtsp://ca m/stream", "whitespace"),
        ("ftp://cam/stream", "unsupported URL scheme"),
        ("rtsp://admin:topsecret@:554/x", "no host"),
    ],
)
def test_malformed_url(url, reason):
    with pytest.raises(MaskwatchError) as info:
        open_source(url)
    message = str(info.value)
    assert reason in message and "\n" not in message
    assert "topsecret" not in message


def test_missing_webcam():
    with pytest.raises(MaskwatchError, match=r"cannot open webcam 97"):
        open_source("97", SourceConfig(open_timeout_s=5))


# ---------------------------------------------------------------------------------------------
# redaction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:pa55@10.0.0.7:554/live", "rtsp://admin:***@10.0.0.7:554/live"),
        ("open 'rtsp://u:p@h/x' failed", "open 'rtsp://u:***@h/x' failed"),
        ("http://a:1@h1/ and https://b:2@h2/", "http://a:***@h1/ and https://b:***@h2/"),
        ("rtsp://admin:p@ss:w/rd@cam/live", "rtsp://admin:***@cam/live"),
        ("RTSP://Admin:x@cam", "RTSP://Admin:***@cam"),
        ("rtsp://:secret@cam/live", "rtsp://:***@cam/live"),
        ("source_url=rtsp://u:pw@cam/live", "source_url=rtsp://u:***@cam/live"),
        ("url_rtsp://u:pw@cam", "url_rtsp://u:***@cam"),
        ("rtsp://viewer@cam/live", "rtsp://viewer@cam/live"),
        ("rtsp://cam:554/live", "rtsp://cam:554/live"),
        ("no url here: user:pw", "no url here: user:pw"),
    ],
)
def test_redact_url(text, expected):
    assert redact_url(text) == expected


# ---------------------------------------------------------------------------------------------
# the live reader, with injected fake captures


def test_live_reader_keeps_only_the_newest_frame_and_counts_drops():
    camera = FakeCamera(FakeCapture(fps=200))
    source = LiveSource("fake", "network", camera, FAST, jitter=0)
    try:
        consumed = []
        first = source.read(timeout=2.0)
        assert first is not None and source.state is SourceState.LIVE
        consumed.append(first)
        for _ in range(5):
            time.sleep(0.1)  # a consumer much slower than the camera
            frame = source.read(timeout=2.0)
            assert time.monotonic() - frame.captured_at < 0.2  # fresh: no backlog, no growing lag
            consumed.append(frame)
        indices = [f.index for f in consumed]
        assert all(b - a > 1 for a, b in zip(indices, indices[1:]))  # older frames were skipped
        assert source.dropped > 20
    finally:
        source.close()
    reads = camera.opened[0].reads
    # every captured frame was either consumed or dropped (one may have sat in the slot, one in flight)
    assert reads - 2 <= len(consumed) + source.dropped <= reads
    assert source.state is SourceState.ENDED and source.read(timeout=0.1) is None
    assert camera.opened[0].released.wait(2.0)


def test_live_reader_without_a_slow_consumer_drops_nothing():
    source = LiveSource("fake", "network", FakeCamera(FakeCapture(fps=50)), FAST)
    try:
        frames = [source.read(timeout=2.0) for _ in range(10)]
    finally:
        source.close()
    assert [f.index for f in frames] == list(range(10)) and source.dropped == 0


def test_stall_watchdog_reconnects_and_frame_size_change_just_works(caplog):
    stalling = FakeCapture(size=(32, 24), stall_after=5)
    camera = FakeCamera(stalling, FakeCapture(size=(48, 40)))
    caplog.set_level(logging.INFO, logger="maskwatch.sources")
    source = LiveSource("fake", "network", camera, FAST, jitter=0)
    try:
        assert source.read(timeout=2.0).image.shape == (24, 32, 3)
        assert wait_for(lambda: source.state is SourceState.RECONNECTING, 3.0)
        assert "stalled" in source.last_error
        frame = None
        deadline = time.monotonic() + 5
        while (frame is None or frame.image.shape != (40, 48, 3)) and time.monotonic() < deadline:
            frame = source.read(timeout=1.0)
        assert frame.image.shape == (40, 48, 3)
        assert source.frame_size == (48, 40) and source.state is SourceState.LIVE
        assert source.reconnects == 1
    finally:
        source.close()
        stalling.unblock.set()  # the abandoned reader thread finishes and releases its capture
    assert stalling.released.wait(2.0)
    assert any("stalled" in r.getMessage() for r in caplog.records)


def test_backoff_doubles_up_to_the_cap_and_counts_down():
    failing = FakeCapture(fail_open=True)
    camera = FakeCamera(failing, failing, failing, failing, failing, FakeCapture())
    config = SourceConfig(open_timeout_s=2, stall_timeout_s=1, backoff_initial_s=0.1, backoff_max_s=0.3)
    source = LiveSource("fake", "network", camera, config, jitter=0)
    try:
        seen = []
        while source.state is not SourceState.LIVE and len(seen) < 5000:
            if source.reconnect_in is not None:
                seen.append(source.reconnect_in)
            time.sleep(0.005)
        assert source.read(timeout=2.0) is not None
        assert source.reconnects == 5 and source.last_error.startswith("connection refused")
    finally:
        source.close()
    gaps = np.diff(camera.open_times[:6])
    # waits: 0.1, 0.2, 0.3 (capped), 0.3, 0.3; each gap is at least its wait
    assert all(g >= w - 0.01 for g, w in zip(gaps, [0.1, 0.2, 0.3, 0.3, 0.3]))
    assert max(seen) <= 0.3 + 1e-6 and min(seen) >= 0.0
    assert any(later < earlier for earlier, later in zip(seen, seen[1:]))  # it counts down


def test_backoff_starts_over_once_frames_flow_again():
    camera = FakeCamera(FakeCapture(end_after=3))  # every connection gives 3 frames, then fails
    config = SourceConfig(backoff_initial_s=0.05, backoff_max_s=5.0)
    source = LiveSource("fake", "network", camera, config, jitter=0)
    try:
        # ~0.1 s per cycle; if the wait kept doubling, 8 opens would take 0.05 + 0.1 + ... + 3.2 = 6.35 s
        assert wait_for(lambda: len(camera.opened) >= 8, 2.5)
    finally:
        source.close()


def test_gives_up_after_max_reconnects():
    camera = FakeCamera(FakeCapture(fail_open=True))
    config = SourceConfig(backoff_initial_s=0.01, backoff_max_s=0.02, max_reconnects=2)
    source = LiveSource("fake", "network", camera, config)
    assert list(source) == []  # iteration ends when the source gives up
    assert source.state is SourceState.ENDED and source.reconnects == 2 and len(camera.opened) == 3
    assert source.last_error and source.reconnect_in is None
    source.close()


def test_close_is_prompt_and_idempotent_while_waiting_to_reconnect():
    config = SourceConfig(backoff_initial_s=30, backoff_max_s=30)
    source = LiveSource("fake", "network", FakeCamera(FakeCapture(fail_open=True)), config)
    assert wait_for(lambda: source.state is SourceState.RECONNECTING, 2.0)
    assert 25 < source.reconnect_in <= 33
    start = time.monotonic()
    source.close()
    source.close()
    assert time.monotonic() - start < 1.0
    assert source.state is SourceState.ENDED and source.read(timeout=0.1) is None


def test_webcam_first_open_failure_raises():
    with pytest.raises(MaskwatchError, match="cannot open fake cam: no such camera"):
        LiveSource("fake cam", "webcam", FakeCamera(FakeCapture(fail_open=True)), FAST, retry_first_open=False)


# ---------------------------------------------------------------------------------------------
# a real RTSP server (GStreamer gst-rtsp-server)

RTSP_CONFIG = SourceConfig(
    open_timeout_s=5.0, read_timeout_s=2.0, stall_timeout_s=2.0, backoff_initial_s=0.2, backoff_max_s=0.5
)


def read_until(source, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = source.read(timeout=0.2)
        if frame is not None and predicate(frame):
            return frame
    return None


@requires_rtsp_server
def test_rtsp_reconnects_after_server_restart_with_new_frame_size():
    with RtspServer(FIXTURES / "clip_320x240.mp4") as server:
        with open_source(server.url, RTSP_CONFIG) as source:
            assert source.kind == "network" and source.is_live
            first = source.read(timeout=10.0)
            assert first is not None and first.image.shape == (240, 320, 3)
            assert source.state is SourceState.LIVE and source.fps == pytest.approx(25.0)
            assert read_until(source, lambda f: f.index > first.index + 10, 5.0) is not None

            server.stop()
            assert wait_for(lambda: source.state is SourceState.RECONNECTING, 5.0)
            assert source.reconnect_in is not None and source.last_error

            server.restart(clip=FIXTURES / "clip_480x360.mp4")
            frame = read_until(source, lambda f: f.image.shape == (360, 480, 3), 15.0)
            assert frame is not None
            assert source.state is SourceState.LIVE and source.frame_size == (480, 360)
            assert source.reconnects >= 1
            later = read_until(source, lambda f: f.index > frame.index + 5, 5.0)
            assert later is not None and later.timestamp > frame.timestamp  # frames resumed


@requires_rtsp_server
def test_rtsp_hung_camera_is_caught_by_the_stall_watchdog():
    # FFmpeg's own read timeout is far away: only the watchdog can notice within seconds.
    config = dataclasses.replace(RTSP_CONFIG, read_timeout_s=60.0, stall_timeout_s=1.5)
    with RtspServer(FIXTURES / "clip_320x240.mp4") as server, open_source(server.url, config) as source:
        assert source.read(timeout=10.0) is not None
        server.pause()  # the TCP connection stays up, frames stop
        try:
            assert wait_for(lambda: source.state is SourceState.RECONNECTING, 1.5 + 3.0)
            assert "stalled" in source.last_error
        finally:
            server.resume()
        resumed = time.monotonic()
        assert read_until(source, lambda f: f.captured_at > resumed, 15.0) is not None
        assert source.state is SourceState.LIVE and source.reconnects >= 1


@requires_rtsp_server
def test_rtsp_slow_consumer_gets_fresh_frames_and_drops_counted(rtsp_server):
    with open_source(rtsp_server.url, RTSP_CONFIG) as source:
        assert source.read(timeout=10.0) is not None
        time.sleep(1.5)  # the opening burst is over; the stream runs at 25 fps
        dropped_before = source.dropped
        for _ in range(4):
            time.sleep(0.25)
            frame = source.read(timeout=2.0)
            assert frame is not None and time.monotonic() - frame.captured_at < 0.2
        assert source.dropped - dropped_before >= 4 * 3  # ~6 frames arrive per 0.25 s, 1 is read


@requires_rtsp_server
def test_rtsp_camera_that_comes_up_later():
    server = RtspServer(FIXTURES / "clip_320x240.mp4")
    server.start()
    server.stop()  # now we know a port with nothing listening
    with open_source(server.url, RTSP_CONFIG) as source:
        assert wait_for(lambda: source.state is SourceState.RECONNECTING, 5.0)
        assert "refused" in source.last_error
        with server:
            assert read_until(source, lambda f: True, 15.0) is not None
            assert source.state is SourceState.LIVE


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (scripts/install_test_deps.sh)")
def test_http_mjpeg_camera():
    port = free_port()
    server = subprocess.Popen(
        ["ffmpeg", "-v", "quiet", "-re", "-stream_loop", "-1", "-i", str(FIXTURES / "clip_320x240.mp4"),
         "-c:v", "mjpeg", "-f", "mpjpeg", "-listen", "1", f"http://127.0.0.1:{port}/cam.mjpg"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with open_source(f"http://viewer:pw123@127.0.0.1:{port}/cam.mjpg", RTSP_CONFIG) as source:
            assert source.kind == "network" and source.name.startswith("http://viewer:***@")
            frames = [read_until(source, lambda f: True, 10.0) for _ in range(3)]
            assert all(f is not None and f.image.shape == (240, 320, 3) for f in frames)
            assert source.state is SourceState.LIVE
    finally:
        server.kill()
        server.wait(timeout=10)


@requires_rtsp_server
def test_rtsp_credentials_never_leak(caplog, capfd):
    password = "Hunter2-Secret"
    caplog.set_level(logging.DEBUG, logger="maskwatch")
    with RtspServer(FIXTURES / "clip_320x240.mp4", user="admin", password=password) as server:
        assert password in server.url
        with open_source(server.url, RTSP_CONFIG) as good:
            assert good.read(timeout=10.0) is not None
            assert password not in good.name and "admin:***@" in good.name
            assert password not in repr(good)
            server.stop()
            assert wait_for(lambda: good.state is SourceState.RECONNECTING, 5.0)
            assert password not in good.last_error
        wrong = server.url.replace(password, password + "-wrong")
        server.start()
        with open_source(wrong, RTSP_CONFIG) as rejected:
            assert wait_for(lambda: rejected.last_error is not None, 10.0)
            assert rejected.read(timeout=0.5) is None and rejected.state is not SourceState.LIVE
            assert password not in rejected.last_error and password not in rejected.name
    with pytest.raises(MaskwatchError) as info:
        open_source(f"rtsp://admin:{password}@127.0.0.1:99999/stream")
    assert password not in str(info.value)
    messages = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert any("admin:***@" in m for m in messages)
    assert not any(password in m for m in messages)
    out, err = capfd.readouterr()  # what OpenCV and FFmpeg printed natively, too
    assert password not in out and password not in err
