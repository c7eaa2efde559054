"""The desktop app's Site tab (``maskwatch/gui/site_tab.py``).

- Fast, without a broker (pytest-qt, offscreen): recorded payloads of ``serve`` build the tiles
  (state and how long, people in view, last interval and today's compliance, the last alert with
  its snapshot or "not on this machine"), a camera quiet past its timeout and ``available offline``
  turn grey, garbage is ignored, bad fields are one line; a double-click opens the camera's source
  from the opened site config, or its history from the site's database.
- With a real Mosquitto (offscreen, in this process): a wrong broker password is refused in one
  line, the right one connects, and the password reaches neither QSettings' file nor the screen.
- Under Xvfb (Qt's xcb platform, a subprocess: this file run as a script, see :func:`scenario`): a
  real Mosquitto with a user and password, a real ``maskwatch serve`` with two cameras on video
  files; both tiles go live; a hung camera worker (SIGSTOP: it stops publishing) turns its tile
  grey within its timeout while the other stays live; serve killed (SIGKILL: the broker sends its
  last will ``offline``) turns both grey. The scenario grabs the tab at 1280x720 with two live
  tiles: ``python tests/gui/test_gui_site.py --screenshot docs/screenshots/site.png`` made
  docs/screenshots/site.png.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if __name__ == "__main__":  # the Xvfb scenario: Qt's platform comes from the caller's environment
    sys.path[:0] = [str(HERE), str(ROOT / "tests"), str(ROOT / "tests" / "support"), str(ROOT)]
else:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import pytest  # noqa: E402

from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

from PyQt6.QtCore import QSettings, Qt  # noqa: E402

PEOPLE = ROOT / "tests" / "fixtures" / "people"
BROKER_PASSWORD = "Br0ker-s3cret-Pw"
CAMERA_PASSWORD = "Cam-pa55-w0rd"


def _settings(path: Path):
    from maskwatch.gui.settings import GuiSettings

    return GuiSettings(QSettings(str(path), QSettings.Format.IniFormat))


def _tab(qtbot, tmp_path):
    from maskwatch.gui.site_tab import SiteTab

    tab = SiteTab(_settings(tmp_path / "gui.ini"))
    qtbot.addWidget(tab)
    tab.resize(1280, 680)
    return tab


def _interval(camera: str, start: float, length: float = 60.0, **labels) -> bytes:
    by = {"with_mask": 0, "without_mask": 0, "mask_worn_incorrectly": 0, **labels}
    decided = sum(by.values())
    return json.dumps({"id": uuid.uuid5(uuid.NAMESPACE_OID, f"{camera}-{start}").hex, "camera": camera, "start_ts": start,
                       "end_ts": start + length, "frames": 298, "faces": 412, "people_seen": decided, **by,
                       "compliance_rate": by["with_mask"] / decided if decided else None, "fps": 4.97,
                       "dropped_frames": 0, "source_state": "live", "model": "mask_classifier 0.4.0"}).encode()


def _event(camera: str, ts: float, label: str, snapshot: str | None, previous: str | None = None,
           kind: str = "update", track: int = 12) -> bytes:
    return json.dumps({"id": uuid.uuid5(uuid.NAMESPACE_OID, f"{camera}-{ts}-{label}-{kind}").hex, "type": kind, "camera": camera, "track_id": track,
                       "label": label, "ts": ts, "confidence": 0.83, "box": [1.0, 2.0, 3.0, 4.0],
                       "snapshot": snapshot, "previous": previous}).encode()


# -- fast: recorded payloads, no broker ---------------------------------------------------------------


def test_recorded_payloads_build_live_tiles_and_quiet_or_offline_ones_turn_grey(qtbot, tmp_path):
    tab = _tab(qtbot, tmp_path)
    tab.connection = "connected"  # as after a connect (no broker in this test)
    now = time.time()
    tab.state.connected(now - 5)
    # what a subscriber gets at once (retained), then live messages, as in docs/mqtt.md
    for topic, payload in [("maskwatch/available", b"online"), ("maskwatch/entrance/state", b"live"),
                           ("maskwatch/entrance/with_mask", b"1"), ("maskwatch/entrance/without_mask", b"1"),
                           ("maskwatch/entrance/mask_worn_incorrectly", b"0"), ("maskwatch/entrance/compliance", b"0.5"),
                           ("maskwatch/corridor/state", b"reconnecting"), ("maskwatch/corridor/compliance", b"None")]:
        tab.feed(topic, payload, retained=True, now=now - 5)
    tab.feed("maskwatch/entrance/intervals", _interval("entrance", now - 120, with_mask=3, without_mask=1), now=now - 60)
    tab.feed("maskwatch/entrance/intervals", _interval("entrance", now - 60, with_mask=2, without_mask=1), now=now)
    tab.feed("maskwatch/entrance/compliance", b"0.6667", now=now)
    here = str(PEOPLE / "without_mask.jpg")
    tab.feed("maskwatch/events", _event("entrance", now - 30, "without_mask", here), now=now - 30)
    tab.feed("maskwatch/events", _event("corridor", now - 20, "without_mask", "/srv/far/away/snap.jpg", "with_mask"),
             now=now - 20)
    tab.feed("maskwatch/events", _event("corridor", now - 10, "with_mask", None, "without_mask"), now=now - 10)  # mask on
    tab.feed("maskwatch/events", _event("corridor", now - 9, "without_mask", None, kind="end"), now=now - 9)
    # noise: none of it may raise, build a tile or change a value
    ignored = tab.state.ignored
    for topic, payload in [("maskwatch/entrance/state", b"dancing"), ("maskwatch/entrance/with_mask", b"many"),
                           ("maskwatch/entrance/compliance", b"7.5"), ("maskwatch/entrance/intervals", b"{not json"),
                           ("maskwatch/events", b"[1, 2]"), ("maskwatch/a/b/c", b"1"), ("other/entrance/state", b"live"),
                           ("maskwatch/entrance/with_mask", b"\xff\xfe"), ("maskwatch/available", b"maybe"),
                           ("maskwatch/events", json.dumps({"camera": "x/y", "type": "update"}).encode())]:
        tab.feed(topic, payload, now=now)
    assert tab.state.ignored == ignored + 10
    tab.refresh(now)
    assert sorted(tab.tiles) == ["corridor", "entrance"]

    entrance, corridor = tab.tiles["entrance"], tab.tiles["corridor"]
    assert entrance.pill.text() == "LIVE" and not entrance.stale
    assert entrance.state_label.text().startswith("live for ≥ 5s")  # retained at the connect: at least that long
    assert entrance.in_view_label.text().startswith("<b>2</b> in view")
    assert entrance.compliance_label.text() == "last interval 67%"
    assert entrance.today_label.text() == "today 71% of 7 decided"  # (3 + 2) / (4 + 3)
    assert "#12 without a mask" in entrance.alert_label.text() and entrance.thumbnail_shown
    assert corridor.pill.text() == "RECONNECTING" and corridor.compliance_label.text() == "last interval nobody decided"
    assert "took the mask off" in corridor.alert_label.text()  # the mask put on again later is no alert
    assert "snapshot not on this machine" in corridor.alert_label.text() and not corridor.thumbnail_shown

    # a state change is timed from when it came
    tab.feed("maskwatch/corridor/state", b"live", now=now)
    tab.refresh(now + 65)
    assert corridor.state_label.text().startswith("live for 1m 05s")
    # quiet past the timeout (2 intervals of 60 s + 10 s, learned from the rows): grey, the other not
    tab.feed("maskwatch/entrance/intervals", _interval("entrance", now + 60, with_mask=1), now=now + 120)
    assert tab.timeout_s("corridor") == 130.0  # no row of its own yet: the 60 s default interval
    tab.refresh(now + 131)
    assert corridor.stale and corridor.pill.text() == "NO DATA" and "nothing heard for 2m 11s" in corridor.state_label.text()
    assert not entrance.stale and entrance.property("stale") == "false"
    tab.timeout_spin.setValue(5)  # a fixed timeout from the box
    tab.refresh(now + 126)
    assert entrance.stale and tab.settings.q.value("site/timeout_s") in (5, "5")
    tab.timeout_spin.setValue(0)
    tab.refresh(now + 121)
    assert not entrance.stale
    # serve died: the broker's last will says offline, every tile is grey at once
    tab.feed("maskwatch/available", b"offline", now=now + 121)
    assert entrance.stale and entrance.pill.text() == "OFFLINE" and entrance.property("stale") == "true"
    tab.feed("maskwatch/available", b"online", now=now + 122)
    tab.feed("maskwatch/entrance/state", b"ended", now=now + 122)
    assert entrance.stale and entrance.pill.text() == "ENDED"
    tab.shutdown()
    tab.refresh(now + 122)
    assert "not connected to the broker" in tab.tiles["corridor"].state_label.text()


def test_bad_fields_and_bad_site_files_are_one_line_in_the_tab(qtbot, tmp_path):
    tab = _tab(qtbot, tmp_path)
    assert not tab.connect_broker()
    assert tab.status_label.text() == "Site: enter the broker's host (the [mqtt] host of site.toml)"
    tab.host_edit.setText("127.0.0.1")
    tab.prefix_edit.setText("a/#")
    assert not tab.connect_broker()
    assert "prefix 'a/#' must be topic levels" in tab.status_label.text()
    tab.prefix_edit.setText("site")
    tab.password_edit.setText(BROKER_PASSWORD)  # a password without a user
    assert not tab.connect_broker() and tab.status_label.text() == "Site: a password needs a username"
    bad = tmp_path / "site.toml"
    bad.write_text("[[cameras]\nname = ")
    assert not tab.open_site_config(bad)
    assert "site.toml" in tab.status_label.text() and "\n" not in tab.status_label.text()
    assert not tab.open_site_config(tmp_path / "missing.toml")
    assert "missing.toml" in tab.status_label.text()
    assert tab.site is None and not tab.tiles and BROKER_PASSWORD not in tab.status_label.text()


def test_double_click_opens_the_source_from_site_toml_or_the_history_from_its_database(qtbot, tmp_path, monkeypatch):
    from maskwatch.site.history import History

    monkeypatch.setenv("MW_TEST_SITE_CAM_PW", CAMERA_PASSWORD)
    db = tmp_path / "site.db"
    now = time.time()
    # three rows of today, all before now, also in the first minutes after midnight (local time)
    midnight = time.mktime(time.localtime(now)[:3] + (0, 0, 0, 0, 0, -1))
    start = max(now - 300, midnight + 1)
    length = min(60.0, (now - start) / 3)
    with History(db) as history:  # today's rows and an alert of a camera on another host
        for i in range(3):
            history.upsert("interval", json.loads(_interval("annex", start + length * i, length, with_mask=1,
                                                            without_mask=1)))
        history.upsert("event", json.loads(_event("annex", max(now - 100, start), "without_mask", None)))
    (tmp_path / "site.toml").write_text(f"""
[db]
url = "{db}"
[mqtt]
host = "127.0.0.1"
port = 1883
prefix = "site"
[[cameras]]
name = "gate"
source = "rtsp://admin@10.0.0.7:554/live"
password_env = "MW_TEST_SITE_CAM_PW"
[[cameras]]
name = "hall"
source = "{PEOPLE / 'with_mask.jpg'}"
""")
    tab = _tab(qtbot, tmp_path)
    assert tab.open_site_config(tmp_path / "site.toml"), tab.status_label.text()
    assert tab.host_edit.text() == "127.0.0.1" and tab.prefix_edit.text() == "site"
    assert list(tab.tiles) == ["gate", "hall", "annex"]  # the config's cameras, and the database's
    assert "3 interval rows of today" in tab.status_label.text()
    tab.connection = "connected"
    tab.refresh(now)
    assert tab.tiles["annex"].today_label.text() == "today 50% of 6 decided"
    assert "without a mask" in tab.tiles["annex"].alert_label.text()
    assert CAMERA_PASSWORD not in tab.status_label.text()

    opened, sources = [], []
    tab.open_camera.connect(opened.append)
    tab.open_source.connect(sources.append)
    qtbot.mouseDClick(tab.tiles["gate"], Qt.MouseButton.LeftButton)
    assert opened == ["gate"] and sources == [f"rtsp://admin:{CAMERA_PASSWORD}@10.0.0.7:554/live"]  # for the picker
    assert CAMERA_PASSWORD not in tab.status_label.text() and "10.0.0.7:554/live" in tab.status_label.text()
    qtbot.mouseDClick(tab.tiles["hall"], Qt.MouseButton.LeftButton)
    assert sources[-1] == str(PEOPLE / "with_mask.jpg")

    shown = []
    monkeypatch.setattr(type(tab), "show_history", lambda self, name: shown.append(self.history_dialog(name)))
    tab.tiles["annex"].activated.disconnect()
    tab.tiles["annex"].activated.connect(tab.activate)
    qtbot.mouseDClick(tab.tiles["annex"], Qt.MouseButton.LeftButton)  # not in site.toml: its history
    assert opened[-1] == "annex" and len(sources) == 2
    dialog = shown[0]
    qtbot.addWidget(dialog)
    assert dialog.error is None and dialog.table.rowCount() == 3
    assert "compliance 50% of 6 decided people" in dialog.summary.text()
    assert dialog.table.item(0, 6).text() == "50%" and "without a mask" in dialog.alerts.text()


def test_history_dialog_says_in_one_line_when_the_database_is_not_there(qtbot, tmp_path):
    from maskwatch.gui.site_tab import HistoryDialog

    dialog = HistoryDialog("gate", str(tmp_path / "nope.db"), "nope.db")
    qtbot.addWidget(dialog)
    assert dialog.error and dialog.summary.text().startswith("cannot read the history: ")
    assert "\n" not in dialog.summary.text() and not (tmp_path / "nope.db").exists()  # a viewer creates nothing


# -- a real broker, in this process -------------------------------------------------------------------


def test_broker_password_is_refused_or_used_and_never_stored_or_shown(qtbot, tmp_path):
    from services import Mosquitto, MqttRecorder

    broker = Mosquitto(tmp_path / "broker", users={"guard": BROKER_PASSWORD}).start()
    try:
        tab = _tab(qtbot, tmp_path)
        tab.host_edit.setText(broker.host)
        tab.port_spin.setValue(broker.port)
        tab.prefix_edit.setText("site")
        tab.user_edit.setText("guard")
        tab.password_edit.setText("wrong-" + BROKER_PASSWORD)
        assert tab.connect_broker()
        qtbot.waitUntil(lambda: tab.connection == "refused", timeout=15000)
        assert "refused the connection" in tab.status_label.text()

        tab.password_edit.setText(BROKER_PASSWORD)
        assert tab.connect_broker()
        qtbot.waitUntil(lambda: tab.is_connected, timeout=15000)
        publisher = MqttRecorder(broker, "nothing", username="guard", password=BROKER_PASSWORD).connect()
        publisher.client.publish("site/door/state", "live", qos=1, retain=True).wait_for_publish(5)
        publisher.client.publish("site/available", "online", qos=1, retain=True).wait_for_publish(5)
        qtbot.waitUntil(lambda: "door" in tab.tiles and tab.tiles["door"].pill.text() == "LIVE", timeout=15000)
        assert not tab.tiles["door"].stale
        publisher.close()

        tab.shutdown()
        assert tab.connect_button.text() == "Connect" and tab.status_label.text() == "disconnected"
        tab.settings.q.sync()
        stored = (tmp_path / "gui.ini").read_text()
        assert "guard" in stored and str(broker.port) in stored  # the fields are kept ...
        assert BROKER_PASSWORD not in stored  # ... the password is not
        assert all(BROKER_PASSWORD not in v for v in tab.settings.all_values().values())
        texts = [w.text() for w in tab.findChildren(type(tab.status_label))] + [tab.windowTitle()]
        assert not any(BROKER_PASSWORD in t for t in texts)
        assert tab.password_edit.echoMode() == tab.password_edit.EchoMode.Password
    finally:
        broker.stop()


# -- under Xvfb: a real broker and a real serve with two cameras -------------------------------------------


def _repeated_clip(path: Path, source: Path, seconds: float, fps: int = 10, shift: int = 0) -> Path:
    """``source`` at half size and ``fps``, repeated for ``seconds`` (from frame ``shift`` on): a file
    camera that stays live for the whole scenario."""
    import cv2

    cap = cv2.VideoCapture(str(source))
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or fps) / fps))
    frames, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(cv2.resize(frame, (frame.shape[1] // 2 // 2 * 2, frame.shape[0] // 2 // 2 * 2),
                                     interpolation=cv2.INTER_AREA) if frame.shape[1] > 640 else frame)
        index += 1
    cap.release()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frames[0].shape[1::-1])
    for i in range(int(seconds * fps)):
        writer.write(frames[(i + shift) % len(frames)])
    writer.release()
    return path


def _wait(app, predicate, timeout: float, step: float = 0.1) -> float | None:
    """Run Qt's events until ``predicate()``; the seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        app.processEvents()
        if predicate():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def scenario(out: Path, screenshot: Path | None) -> dict:
    """The Xvfb scenario (run by :func:`test_site_tab_follows_a_real_serve_under_xvfb`): returns
    what was seen, written to ``out/result.json``."""
    import re
    import threading

    from PyQt6.QtWidgets import QApplication

    from conftest import SHIPPED_MODEL, TINY_MODEL, cli_env
    from services import Mosquitto

    result: dict = {"platform": None}
    broker = Mosquitto(out / "broker", users={"maskwatch": BROKER_PASSWORD}).start()
    serve = None
    lines: list[str] = []
    try:
        model = SHIPPED_MODEL if SHIPPED_MODEL.is_file() else TINY_MODEL
        from conftest import write_known_faces_clip
        from maskwatch.paths import demo_clip

        known = write_known_faces_clip(out / "known.mp4", fps=10)["path"]  # a masked person, nobody, an unmasked one
        clips = {"door": _repeated_clip(out / "door.avi", demo_clip(), 240),  # the demo corridor, masked walker
                 "hall": _repeated_clip(out / "hall.avi", known, 240, shift=20)}
        (out / "snaps").mkdir()
        site = out / "site.toml"
        site.write_text(f"""
[defaults]
interval_s = 1.0
model = "{model}"
detector.every_n = 2
sources.realtime = true

[db]
url = "site.db"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
prefix = "site"
username = "maskwatch"
password_env = "MW_TEST_SITE_MQTT_PW"
discovery = false
""" + "".join(f'\n[[cameras]]\nname = "{n}"\nsource = "{p}"\nsnapshots = "snaps/{n}"\n' for n, p in clips.items()))
        env = dict(cli_env(), MW_TEST_SITE_MQTT_PW=BROKER_PASSWORD)
        serve = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "serve", "--config", str(site)], cwd=out,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
        threading.Thread(target=lambda: [lines.append(line.rstrip()) for line in serve.stdout], daemon=True).start()

        os.environ["MW_TEST_SITE_MQTT_PW"] = BROKER_PASSWORD  # the app reads site.toml as serve does
        app = QApplication.instance() or QApplication([])
        result["platform"] = app.platformName()
        try:
            from maskwatch.gui.theme import apply_theme

            apply_theme(app)
        except ImportError:  # the window's own stylesheet, before the shared theme existed
            from maskwatch.gui.main_window import STYLE
            from maskwatch.paths import assets_dir

            app.setStyleSheet(STYLE.replace("@ICONS@", (assets_dir() / "icons").as_posix()))
        from maskwatch.gui.site_tab import SiteTab

        ini = out / "gui.ini"
        tab = SiteTab(_settings(ini))
        tab.setWindowTitle("maskwatch — Site")
        tab.resize(1280, 720)
        tab.show()
        assert tab.open_site_config(site), tab.status_label.text()
        assert tab.connect_broker(), tab.status_label.text()

        def live(name: str) -> bool:
            tile, status = tab.tiles.get(name), tab.state.cameras.get(name)
            return (tile is not None and not tile.stale and tile.pill.text() == "LIVE" and status.last_news is not None
                    and len(status.today) >= 2)

        result["both_live_s"] = _wait(app, lambda: live("door") and live("hall"), 240)
        result["timeout_s"] = {name: tab.timeout_s(name) for name in ("door", "hall")}
        # a moment more for decided people and an alert with its snapshot (the screenshot's sake)
        _wait(app, lambda: all(s.today_rate(time.time())[1] >= 2 for s in tab.state.cameras.values())
              and any(t.thumbnail_shown for t in tab.tiles.values()), 45)
        result["tile_names"] = sorted(t.name for t in tab.findChildren(type(tab.tiles["door"])))
        tab.refresh()
        app.processEvents()
        result["tiles_live"] = {n: {"pill": t.pill.text(), "stale": t.stale, "state": t.state_label.text(),
                                    "today": t.today_label.text(), "alert": t.alert_label.text()}
                                for n, t in tab.tiles.items()}
        image = tab.grab()
        target = screenshot or out / "site.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(target))
        result["screenshot"] = [str(target), image.width(), image.height()]

        pids = {m.group(1): int(m.group(2)) for line in list(lines)
                for m in [re.search(r"(door|hall): worker started \(pid (\d+)\)", line)] if m}
        result["pids"] = pids
        os.kill(pids["door"], signal.SIGSTOP)  # door's worker hangs: it stops publishing
        result["door_grey_s"] = _wait(app, lambda: tab.tiles["door"].stale, 60)
        result["door_grey_reason"] = tab.tiles["door"].grey_reason
        result["hall_live_while_door_grey"] = live("hall")
        _wait(app, lambda: False, 0.3)  # let the layouts catch up before the grab
        tab.grab().save(str(out / "door_grey.png"))  # to look at: one grey tile, one live
        os.kill(serve.pid, signal.SIGKILL)  # serve dies: no goodbye; the broker sends its last will
        result["hall_grey_s"] = _wait(app, lambda: tab.tiles["hall"].stale, 60)
        result["hall_grey_reason"] = tab.tiles["hall"].grey_reason
        result["pills_at_end"] = {n: t.pill.text() for n, t in tab.tiles.items()}
        tab.shutdown()
        app.processEvents()
        result["settings_file"] = ini.read_text() if ini.exists() else ""
        result["texts"] = [w.text() for w in tab.findChildren(type(tab.status_label))] + [tab.windowTitle()]
        for pid in pids.values():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    finally:
        if serve is not None and serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        if serve is not None:
            serve.wait(30)
        broker.stop()
        result["serve_log"] = lines[-60:]
        (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


@pytest.mark.xvfb
@pytest.mark.mqtt
def test_site_tab_follows_a_real_serve_under_xvfb(tmp_path):
    import importlib.util
    import shutil

    from conftest import cli_env
    from services import require_mosquitto

    require_mosquitto()
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (bash scripts/install_test_deps.sh)")
    spec = importlib.util.spec_from_file_location("gui_screenshot", ROOT / "scripts" / "gui_screenshot.py")
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    xvfb, display = shots.start_xvfb("1280x800x24")
    try:
        env = {k: v for k, v in cli_env().items() if not k.startswith("QT_") and k != "WAYLAND_DISPLAY"}
        env.update(DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(tmp_path))
        proc = subprocess.run([sys.executable, str(Path(__file__)), "--out", str(tmp_path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=420)
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    result_file = tmp_path / "result.json"
    assert result_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(result_file.read_text())
    log = "\n".join(result.get("serve_log", [])) + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    assert result["platform"] == "xcb"
    assert result["both_live_s"] is not None, log  # the tiles of both cameras went live from the broker
    assert result["timeout_s"] == {"door": 12.0, "hall": 12.0}  # interval 1 s in site.toml: 2 x 1 s + 10 s
    assert all(t["pill"] == "LIVE" and not t["stale"] for t in result["tiles_live"].values()), result["tiles_live"]
    assert result["tile_names"] == ["door", "hall"]  # one tile each
    # the hung camera is grey within its timeout (+ the tab's 1 s refresh and the last row's own second)
    assert result["door_grey_s"] is not None and result["door_grey_s"] <= 12.0 + 3.0, result
    assert result["door_grey_reason"].startswith("nothing heard for")
    assert result["hall_live_while_door_grey"], result
    # serve killed: its last will says offline, the other tile is grey at once
    assert result["hall_grey_s"] is not None and result["hall_grey_s"] <= 5.0, result
    assert result["hall_grey_reason"].startswith("serve offline")
    assert result["pills_at_end"] == {"door": "OFFLINE", "hall": "OFFLINE"}
    # the broker password: used (it connected), never stored or shown
    assert "maskwatch" in result["settings_file"] and BROKER_PASSWORD not in result["settings_file"]
    assert not any(BROKER_PASSWORD in t for t in result["texts"])
    import cv2

    image = cv2.imread(result["screenshot"][0])
    assert image is not None and image.shape[:2] == (720, 1280) and float(image.std()) > 10


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The Site tab's Xvfb scenario (see the module docstring)")
    parser.add_argument("--out", type=Path, help="a folder for the broker, serve and result.json (default: a temp one)")
    parser.add_argument("--screenshot", type=Path, help="where to save the 1280x720 grab (default: OUT/site.png)")
    args = parser.parse_args()
    import tempfile

    out = args.out or Path(tempfile.mkdtemp(prefix="maskwatch_site_"))
    outcome = scenario(out, args.screenshot.resolve() if args.screenshot else None)
    print(json.dumps({k: v for k, v in outcome.items() if k not in ("serve_log", "settings_file")}, indent=1))
    sys.exit(0)
