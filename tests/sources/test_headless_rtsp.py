"""Headless mode on a real RTSP camera (GStreamer gst-rtsp-server on 127.0.0.1, see tests/support/rtsp.py).

The camera is killed mid-run and brought back on the same port: the monitor must report
``reconnecting``, reconnect by itself, keep logging (rows before and after, none duplicated), and
never print or log the URL's password.
"""

from __future__ import annotations

import csv
import signal
import time
from datetime import datetime

from conftest import TINY_MODEL, start_cli
from maskwatch.sinks import CSV_COLUMNS
from rtsp import RtspServer, requires_rtsp_server

PASSWORD = "s3cret-Pa55"

FAST_RECONNECT_TOML = """
[sources]
open_timeout_s = 4.0
read_timeout_s = 2.0
stall_timeout_s = 1.5
backoff_initial_s = 0.3
backoff_max_s = 1.0
"""


def rows(path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def wait_for(predicate, timeout: float, proc) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


@requires_rtsp_server
def test_camera_killed_and_restarted_keeps_logging(known_faces_clip, tmp_path):
    log, events, config = tmp_path / "counts.csv", tmp_path / "events.jsonl", tmp_path / "maskwatch.toml"
    config.write_text(FAST_RECONNECT_TOML)
    server = RtspServer(known_faces_clip["path"], user="admin", password=PASSWORD).start()
    proc = None
    try:
        proc = start_cli("--headless", "--source", server.url, "--model", TINY_MODEL, "--interval", "1",
                         "--log", log, "--events", events, "--config", config)
        live = lambda: [r for r in rows(log) if r["source_state"] == "live" and int(r["frames"]) > 0]  # noqa: E731
        assert wait_for(lambda: len(live()) >= 2, 60, proc), "no live rows before the camera was killed"

        server.stop()  # the camera loses power
        assert wait_for(lambda: any(r["source_state"] == "reconnecting" for r in rows(log)), 20, proc), \
            "no reconnecting row while the camera was down"
        time.sleep(1.0)
        n_before = len(live())

        server.start()  # back on the same port
        assert wait_for(lambda: len(live()) >= n_before + 2, 30, proc), "no live rows after the camera came back"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        server.stop()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0, err
    table = rows(log)
    assert list(table[0]) == list(CSV_COLUMNS)
    states = [r["source_state"] for r in table]
    first_down = states.index("reconnecting")
    assert "live" in states[:first_down] and "live" in states[first_down:]
    # rows are contiguous and never duplicated: each starts where the previous ended
    starts = [datetime.fromisoformat(r["start"]) for r in table]
    ends = [datetime.fromisoformat(r["end"]) for r in table]
    assert all(a < b for a, b in zip(starts, starts[1:]))
    assert all(e == s for e, s in zip(ends, starts[1:]))
    # while the camera was down, rows kept coming (on the wall clock) without frames
    assert any(int(r["frames"]) == 0 for r in table if r["source_state"] == "reconnecting")
    # the password never leaks
    for text in (out, err, log.read_text(), events.read_text() if events.exists() else ""):
        assert PASSWORD not in text
    assert "Traceback" not in err
    assert "reconnecting" in err  # the operator is told the camera is away (credentials masked)
