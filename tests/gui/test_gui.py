"""The desktop app's behaviour, with pytest-qt on Qt's offscreen platform.

Runs the real ``Monitor`` (the headless mode's pipeline and sinks) on a short clip cut from the demo
clip (the walker, frames 95-150). Labels come from ``models/mask_classifier.tflite`` when it is
shipped, else from the tiny fixture classifier (untrained: any label, but decided the same way).
Settings live in a temporary INI file, never in the user's QSettings.
"""

from __future__ import annotations

import csv
import re
import os
import threading

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

from PyQt6.QtCore import QSettings, Qt  # noqa: E402

from maskwatch.config import Config  # noqa: E402
from maskwatch.faces import Faces  # noqa: E402
from maskwatch.frames import Frame, SourceState  # noqa: E402
from maskwatch.gui.controls import ControlsDialog  # noqa: E402
from maskwatch.gui.main_window import MainWindow  # noqa: E402
from maskwatch.gui.settings import GuiSettings  # noqa: E402
from maskwatch.gui.worker import Delivery, MonitorWorker, ResultMailbox, person_thumbnail  # noqa: E402
from maskwatch.monitor import fan_out  # noqa: E402
from maskwatch.paths import demo_clip, models_dir  # noqa: E402
from maskwatch.results import Event, FrameResult, IntervalSummary, Stats, Totals  # noqa: E402
from maskwatch.sinks.alerts import AlertPolicy, AlertSink  # noqa: E402
from maskwatch.sinks.base import BaseSink  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny_classifier.tflite"
PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def model() -> Path:
    shipped = models_dir() / "mask_classifier.tflite"
    return shipped if shipped.is_file() and shipped.with_suffix(".json").is_file() else TINY_MODEL


@pytest.fixture(scope="module")
def walker_clip(tmp_path_factory) -> Path:
    """Frames 95-150 of the demo clip (the masked walker's face is large), half size, as MJPG AVI."""
    cap = cv2.VideoCapture(str(demo_clip()))
    path = tmp_path_factory.mktemp("clip") / "walker.avi"
    writer = None
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok or index > 150:
            break
        if index >= 95:
            frame = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 360))
            writer.write(frame)
        index += 1
    cap.release()
    writer.release()
    return path


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Any QSettings default goes to tmp_path: the user's real settings are never touched."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def make_settings(tmp_path) -> GuiSettings:
    return GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def window(qtbot, tmp_path, model):
    settings = make_settings(tmp_path)
    settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=None, sound=False, realtime=False)
    w = MainWindow(Config(model=model, interval_s=60.0), settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown()


def run_to_end(qtbot, w: MainWindow, timeout_ms: int = 60000) -> str:
    with qtbot.waitSignal(w.run_finished, timeout=timeout_ms) as blocker:
        w.start()
    return blocker.args[0]


def test_start_on_clip_counts_update_and_status_ends(qtbot, window, walker_clip, model):
    window.picker.set_spec(str(walker_clip))
    states = []
    window.delivered.connect(lambda: states.append(window.side.state))
    state = run_to_end(qtbot, window)

    assert state == "ended", window.last_error
    assert window.side.state == SourceState.ENDED.value
    assert window.side.state_label.text() == "ended"
    assert SourceState.LIVE.value in states  # "live" while frames came
    assert window.video.frames_shown > 0
    assert window.last_result is not None and window.last_result.frame.image.shape[:2] == (360, 640)
    totals = window.last_result.totals
    assert totals.people_seen >= 1
    assert window.side.people_label.text().startswith(f"{totals.people_seen} ")
    # labels: decided by vote, shown per class (real model: the walker wears a mask)
    assert totals.decided >= 1
    shown = {name: int(label.text()) for name, label in window.side.total_labels.items()}
    assert shown == totals.by_label
    if model.name == "mask_classifier.tflite":
        assert totals.by_label["with_mask"] >= 1
    assert window.side.compliance_label.text().startswith("compliance ")
    assert "fps" in window.side.fps_label.text() and "detect" in window.side.stage_label.text()
    assert window.side.intervals  # the final partial interval reached the chart
    assert window.start_action.text() == "Start" and not window.running
    assert window.windowTitle() == "walker.avi"  # Qt adds " — maskwatch" (the application's name) on screen


def test_space_starts_and_stops(qtbot, window, walker_clip):
    window.settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=None,
                                  sound=False, realtime=True)
    window.picker.set_spec(str(walker_clip))
    window.video.setFocus()
    qtbot.keyClick(window.video, Qt.Key.Key_Space)
    assert window.running
    assert window.run_config.sources.realtime  # files play at their speed when the setting says so
    qtbot.waitUntil(lambda: window.video.frames_shown > 0, timeout=30000)
    with qtbot.waitSignal(window.run_finished, timeout=15000) as blocker:
        qtbot.keyClick(window.video, Qt.Key.Key_Space)
    assert blocker.args == ["stopped"]
    assert window.side.state == "stopped"


def test_closing_flushes_the_log(qtbot, tmp_path, walker_clip, model):
    log = tmp_path / "out" / "counts.csv"
    settings = make_settings(tmp_path)
    settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=log, snapshots=None, sound=False,
                           realtime=True)  # real speed: the clip is still playing when the window closes
    w = MainWindow(Config(model=model, interval_s=3600.0), settings)
    qtbot.addWidget(w)
    w.show()
    w.picker.set_spec(str(walker_clip))
    w.start()
    qtbot.waitUntil(lambda: w.video.frames_shown >= 3, timeout=30000)
    assert w.running
    assert not log.exists() or len(log.read_text().splitlines()) <= 1  # no interval closed yet
    w.close()
    assert not w.running  # worker stopped and joined: camera/file released
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 1  # the partial interval, written on close
    assert int(rows[0]["frames"]) >= 3
    assert int(rows[0]["frames"]) < 56  # stopped before the clip's end


def test_record_button_writes_the_annotated_video(qtbot, window, walker_clip, tmp_path):
    window.settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=None, sound=False,
                                  realtime=True)  # real speed: the clip is still playing while we record
    window.settings.set_value("output/recordings", tmp_path / "rec")
    window.picker.set_spec(str(walker_clip))
    assert window.record_action.isEnabled()  # also before a run: Record when idle starts one (test_gui_all_day)
    window.start()
    assert window.record_action.isEnabled()
    qtbot.waitUntil(lambda: window.video.frames_shown >= 2, timeout=30000)
    window.video.setFocus()
    ctrl_r = (Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.video, *ctrl_r)
    assert window.recording and window.record_action.text() == "Stop recording"
    assert window.record_label.text().startswith("● REC")
    first = window.recorder
    qtbot.waitUntil(lambda: first.frames_written >= 10, timeout=30000)
    qtbot.keyClick(window.video, *ctrl_r)  # stop: the file is finalised at once
    assert not window.recording and window.record_action.text() == "Record" and window.record_label.text() == ""
    assert window.recordings == [first.path] and "Recording saved" in window.statusBar().currentMessage()
    assert first.path.parent == tmp_path / "rec" and first.path.name.startswith("maskwatch_") and first.path.suffix == ".mp4"
    cap = cv2.VideoCapture(str(first.path))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert frames == first.frames_written >= 10
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 360)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0, abs=0.1)  # the clip's frame rate
    cap.release()

    qtbot.keyClick(window.video, *ctrl_r)  # again: a new file, ended by the end of the run
    assert window.recording and window.recorder is not first
    shown = window.video.frames_shown
    qtbot.waitUntil(lambda: window.video.frames_shown >= shown + 3, timeout=30000)  # frames reached the recorder
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.stop()
    assert not window.recording and window.record_action.isEnabled()  # Record when idle starts a run
    assert len(window.recordings) == 2 and window.recordings[1] != first.path
    assert cv2.VideoCapture(str(window.recordings[1])).get(cv2.CAP_PROP_FRAME_COUNT) >= 2  # finalised: readable


def test_a_save_video_from_the_command_line_is_not_reused_by_every_run(qtbot, tmp_path, model):
    w = MainWindow(Config(model=model, save_video=tmp_path / "run.mp4"), make_settings(tmp_path))
    qtbot.addWidget(w)
    w.picker.set_spec("tests/fixtures/clip_320x240.mp4")
    assert w.build_run_config().save_video is None  # the window records with Record, a new file each time


def test_record_into_an_unwritable_place_is_a_banner_not_a_crash(qtbot, window, walker_clip, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    window.settings.set_value("output/recordings", blocker)
    window.picker.set_spec(str(walker_clip))
    window.start()
    assert window.start_recording() is None and not window.recording
    assert window.banner.isVisible() and "Cannot record" in window.banner.text.text()
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.stop()


def test_picking_a_detector_mode_puts_its_default_score(qtbot, tmp_path, model):
    w = MainWindow(Config(model=model), make_settings(tmp_path))
    qtbot.addWidget(w)
    dialog = ControlsDialog(w.settings, w.base_config, w)
    assert dialog.mode.currentData() == "retina" and dialog.min_score.value() == pytest.approx(0.7)
    dialog.mode.activated.emit(dialog.mode.findData("dense"))  # what a user's click sends
    assert dialog.min_score.value() == pytest.approx(0.6)
    dialog.min_score.setValue(0.45)  # and the box stays editable
    assert dialog.min_score.value() == pytest.approx(0.45)


def test_settings_persist(qtbot, tmp_path, model):
    settings = make_settings(tmp_path)
    w = MainWindow(Config(model=model), settings)
    qtbot.addWidget(w)
    dialog = ControlsDialog(w.settings, w.base_config, w)
    dialog.mode.setCurrentIndex(dialog.mode.findData("dense"))
    dialog.min_score.setValue(0.65)
    dialog.vote_window.setValue(9)
    dialog.log.setText(str(tmp_path / "log.csv"))
    dialog.snapshots.setText(str(tmp_path / "snaps"))
    dialog.sound.setChecked(True)
    dialog.realtime.setChecked(False)
    dialog.accept()
    del dialog, w

    again = make_settings(tmp_path)  # a new QSettings on the same file: what the next app start reads
    w2 = MainWindow(Config(model=model), again)
    qtbot.addWidget(w2)
    w2.picker.set_spec("tests/fixtures/clip_320x240.mp4")
    cfg = w2.build_run_config()
    assert cfg.detector.mode == "dense"
    assert cfg.detector.min_score == pytest.approx(0.65)
    assert cfg.tracker.vote_window == 9 and cfg.tracker.min_votes <= 9
    assert cfg.log == tmp_path / "log.csv" and cfg.snapshots == tmp_path / "snaps"
    assert cfg.sources.realtime is False and again.sound() is True
    dialog2 = ControlsDialog(again, w2.base_config, w2)
    assert dialog2.mode.currentData() == "dense" and dialog2.vote_window.value() == 9
    assert "organization" not in str(again.q.fileName())  # the temp INI file, not the user's settings
    assert Path(again.q.fileName()) == tmp_path / "gui.ini"


def test_password_never_shown_or_stored(qtbot, window, caplog):
    url = f"rtsp://admin:{PASSWORD}@127.0.0.1:9/stream1"
    edit = window.picker.combo.lineEdit()
    edit.clear()
    qtbot.keyClicks(edit, url)  # typed into the URL field: the password moves to its own field
    assert PASSWORD not in window.picker.combo.currentText()
    assert window.picker.password.text() == PASSWORD
    assert window.picker.password.echoMode() == window.picker.password.EchoMode.Password
    assert window.picker.current_spec() == "rtsp://admin@127.0.0.1:9/stream1"

    window.start()  # nothing listens on port 9: the source keeps reconnecting
    assert PASSWORD in window.run_config.source  # only the monitor's config carries it
    qtbot.waitUntil(lambda: window.side.state in ("connecting", "reconnecting", "error"), timeout=5000)
    qtbot.wait(300)
    window.stop()
    qtbot.waitUntil(lambda: not window.running, timeout=20000)

    stored = window.settings.all_values()
    assert stored and not any(PASSWORD in k or PASSWORD in v for k, v in stored.items())
    assert PASSWORD not in Path(window.settings.q.fileName()).read_text()
    assert window.settings.recent_sources()[0] == "rtsp://admin@127.0.0.1:9/stream1"
    assert PASSWORD not in window.windowTitle()
    assert PASSWORD not in window.statusBar().currentMessage() and PASSWORD not in window.status_right.text()
    assert PASSWORD not in window.banner.text.text() and PASSWORD not in (window.last_error or "")
    for i in range(window.picker.combo.count()):
        assert PASSWORD not in window.picker.combo.itemText(i) and PASSWORD not in str(window.picker.combo.itemData(i))
    assert PASSWORD not in caplog.text


def _result(index: int, faces: Faces | None = None, events=(), totals: Totals | None = None) -> FrameResult:
    image = np.full((90, 160, 3), index % 255, np.uint8)
    return FrameResult(Frame(image, index, index / 30, 0.0), faces or Faces.empty(),
                       Stats(fps=30.0, source_state=SourceState.LIVE), totals or Totals(), list(events))


def test_mailbox_keeps_only_the_newest_result_but_every_event():
    box = ResultMailbox()
    e1 = Event("label_decided", 1, 0.1, 1, "without_mask", 0.9, (10, 10, 40, 40))
    e2 = Event("person_seen", 2, 0.2, 2)
    assert box.put(_result(1, events=[e1])) is True  # the UI had nothing: notify
    AlertSink(AlertPolicy(0.8), box.on_alert, thumbnail=person_thumbnail).on_result(_result(1, events=[e1]))
    assert box.put(_result(2, events=[e2])) is False  # not consumed yet: no second signal
    assert box.put(_result(3)) is False
    d = box.take()
    assert d.result.frame.index == 3  # the newest frame; 1 and 2 were dropped, not queued
    assert d.skipped == 2
    assert [e.kind for e in d.events] == ["label_decided", "person_seen"]  # no event lost
    person = next(a for a in d.alerts if a.track_id == 1)
    assert person.thumbnail.shape == (96, 96, 3)  # the person's face, cut once from frame 1 by the alert sink
    assert box.take() is None
    summary = IntervalSummary(0, 1, 3, 0, 0, {"with_mask": 0, "without_mask": 1, "mask_worn_incorrectly": 0}, 30, 0,
                              SourceState.LIVE)
    assert box.put_summary(summary) is True  # consumed: the next item notifies again
    assert box.put_status(Stats(source_state=SourceState.RECONNECTING, reconnect_in=2.0)) is False
    d = box.take()
    assert d.result is None and d.summaries == [summary] and d.status.source_state == SourceState.RECONNECTING


class _FloodMonitor:
    """Delivers frames as fast as it can (a camera much faster than the UI)."""

    def __init__(self, config, mailbox, n=400):
        self.on_result = mailbox.on_result  # the mailbox is the monitor's sink
        self.n = n
        self.stopped = False

    def run(self):
        for i in range(self.n):
            if self.stopped:
                break
            self.on_result(_result(i))
        return Totals()

    def stop(self):
        self.stopped = True


def test_worker_drops_frames_while_the_ui_is_busy(qtbot):
    worker = MonitorWorker(monitor_factory=_FloodMonitor)
    taken = []
    signals = []

    def on_available():
        signals.append(1)
        d = worker.take()
        if d is not None:
            taken.append(d)
        qtbot.wait(5)  # a slow UI

    worker.result_available.connect(on_available)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start(Config())
    qtbot.wait(50)
    d = worker.take()
    if d is not None:
        taken.append(d)
    assert worker.join(5)
    assert taken[-1].result.frame.index == 399  # the last frame is always shown
    indices = [d.result.frame.index for d in taken]
    assert indices == sorted(indices)
    assert len(taken) < 400 and worker.skipped == 400 - len(taken)  # dropped, not queued
    assert len(signals) <= len(taken) + 1  # at most one pending signal at any time


class _Frames:
    """A pipeline of ``n`` plain frames (what Monitor iterates, stops and closes)."""

    def __init__(self, n, start: threading.Event | None = None):
        self.n, self.start, self.stopped, self.totals = n, start, False, Totals()

    def __iter__(self):
        if self.start is not None:
            assert self.start.wait(10)
        for i in range(self.n):
            if self.stopped:
                return
            yield _result(i)

    def stop(self):
        self.stopped = True

    def close(self):
        return None


class _Counting(BaseSink):
    def __init__(self):
        self.results, self.closed = 0, 0

    def on_result(self, result):
        self.results += 1

    def close(self):
        self.closed += 1


def test_stop_recording_while_the_worker_hands_over_queued_sinks(qtbot):
    """Regression: a Record queued while the models loaded, stopped just as the worker handed it to
    the monitor, was missed by remove_sink and then recorded the whole run."""
    from maskwatch.monitor import Monitor

    created, removed = threading.Event(), threading.Event()
    recording = _Counting()

    def stop_recording(sink):
        worker.remove_sink(sink)
        removed.set()

    class HandOver(Monitor):
        def add_sink(self, sink, on_error=None):
            remover = threading.Thread(target=stop_recording, args=(sink,))  # Stop recording, now
            remover.start()
            remover.join(0.3)
            return super().add_sink(sink, on_error)

    def factory(config, mailbox):
        assert created.wait(10)  # "loading models" until Record was pressed
        return HandOver(config, sinks=[mailbox], pipeline=_Frames(20, start=removed))

    worker = MonitorWorker(monitor_factory=factory)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start(Config())
        assert worker.add_sink(recording)  # queued: no monitor yet
        created.set()
    assert worker.join(5)
    assert recording.results == 0 and recording.closed == 1  # stopped before its first frame, closed once


def test_alerts_banner_and_log_with_thumbnail(qtbot, window):
    faces = Faces(xyxy=np.array([[40, 20, 80, 70]]), score=np.array([0.9]), probs=np.array([[0.05, 0.9, 0.05]]),
                  track_id=np.array([7]), track_label=np.array([1]))
    totals = Totals(people_seen=1, by_label={"with_mask": 0, "without_mask": 1, "mask_worn_incorrectly": 0})
    event = Event("label_decided", 7, 1.0, 30, "without_mask", 0.9, (40.0, 20.0, 80.0, 70.0))
    result = _result(30, faces, [event], totals)
    box = ResultMailbox()
    # as in a run: the monitor feeds the alert sink (the same policy as --headless) and the mailbox
    alerts = AlertSink(AlertPolicy(window.base_config.alert_compliance_below), box.on_alert, thumbnail=person_thumbnail)
    assert fan_out(result, [alerts, box]) is None
    window.show_delivery(box.take())
    assert window.banner.isVisible()
    texts = [window.side.alert_log.item(i).text() for i in range(window.side.alert_log.count())]
    assert any("Person #7 without a mask" in t for t in texts)
    assert any("Compliance fell to 0%" in t for t in texts)
    person = next(a for a in window.side.alert_log.alerts if a.track_id == 7)
    assert person.thumbnail is not None and person.thumbnail.shape[2] == 3
    assert window.side.in_view_label.text().count("#7") == 1
    # the live view drew the box in the without_mask colour with label, confidence and track id
    window.video.repaint()
    assert window.video.drawn_boxes[0]["text"] == "no mask 90% #7" and window.video.drawn_boxes[0]["decided"]


def test_snapshot_button_saves_annotated_frame(qtbot, window, tmp_path):
    window.settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=tmp_path / "snaps",
                                  sound=False, realtime=False)
    assert window.save_snapshot() is None  # nothing shown yet
    faces = Faces(xyxy=np.array([[40, 20, 80, 70]]), score=np.array([0.9]), probs=np.array([[0.9, 0.05, 0.05]]),
                  track_id=np.array([2]), track_label=np.array([0]))
    box = ResultMailbox()
    box.put(_result(5, faces))
    window.show_delivery(box.take())
    path = window.save_snapshot()
    assert path is not None and path.parent == tmp_path / "snaps"
    image = cv2.imread(str(path))
    assert image.shape == (90, 160, 3)
    assert (image != 5).any()  # the box was drawn on the frame


def test_qt_uses_its_own_plugins_not_opencvs(monkeypatch):
    import cv2 as cv

    cv_plugins = str(Path(cv.__file__).parent / "qt" / "plugins")
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", cv_plugins)
    monkeypatch.setenv("QT_PLUGIN_PATH", os.pathsep.join([cv_plugins, "/opt/elsewhere/plugins"]))
    report = prepare_qt_environment()
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in os.environ
    assert os.environ["QT_PLUGIN_PATH"] == "/opt/elsewhere/plugins"  # other folders are kept
    assert "PyQt6" in report.plugins_path and "cv2" not in report.plugins_path
    assert (Path(report.platform_plugin_dir) / "libqxcb.so").exists() or os.name != "posix"


def test_delivery_while_reconnecting_shows_countdown(qtbot, window):
    window.show_delivery(Delivery(result=None, status=Stats(source_state=SourceState.RECONNECTING, reconnect_in=4.0)))
    assert window.side.state_label.text() == "reconnecting in 4 s"


def test_a_bad_source_shows_a_one_line_error(qtbot, window, tmp_path):
    window.picker.set_spec(str(tmp_path / "no_such_clip.mp4"))
    state = run_to_end(qtbot, window)
    assert state == "error" and window.side.state == "error"
    assert window.banner.isVisible() and "no_such_clip.mp4" in window.banner.text.text()
    assert "\n" not in window.banner.text.text() and "Traceback" not in window.banner.text.text()
    assert window.start_action.text() == "Start"  # ready for another try


def test_full_screen_shows_only_the_video(qtbot, window):
    window.toggle_fullscreen()
    qtbot.waitUntil(lambda: window.isFullScreen(), timeout=3000)
    assert not window.toolbar.isVisible() and not window.side.isVisible() and window.video.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=3000)
    assert window.toolbar.isVisible() and window.side.isVisible()


def test_source_down_after_frames_shows_a_badge_over_the_last_frame(qtbot, window):
    box = ResultMailbox()
    box.put(_result(1))
    window.show_delivery(box.take())
    window.show_delivery(Delivery(result=None, status=Stats(source_state=SourceState.RECONNECTING, reconnect_in=2.0)))
    assert window.video._badge == "reconnecting in 2 s"
    box.put(_result(2))
    window.show_delivery(box.take())
    assert window.video._badge == "" and window.side.state == "live"


def test_rtsp_camera_with_a_separate_password(qtbot, window, tmp_path):
    from rtsp import FIXTURES, RtspServer, rtsp_server_missing

    if rtsp_server_missing():
        pytest.skip(rtsp_server_missing())
    password = "p@ss:w0rd/" + PASSWORD  # characters that must be percent-encoded in a URL
    with RtspServer(FIXTURES / "clip_320x240.mp4", user="admin", password=password) as server:
        url = f"rtsp://admin@127.0.0.1:{server.port}/stream"
        window.picker.set_spec(url)
        window.picker.password.setText(password)
        window.start()
        qtbot.waitUntil(lambda: window.video.frames_shown >= 5, timeout=30000)
        assert window.side.state == SourceState.LIVE.value
        assert window.last_result.frame.image.shape[:2] == (240, 320)
        with qtbot.waitSignal(window.run_finished, timeout=20000):
            window.stop()
    assert window.settings.recent_sources()[0] == url
    assert PASSWORD not in Path(window.settings.q.fileName()).read_text()
    assert PASSWORD not in window.windowTitle() and PASSWORD not in window.statusBar().currentMessage()


def test_a_mask_taken_off_is_followed_by_the_in_view_list_totals_and_alert_log(qtbot, tmp_path, model):
    """A real Monitor run (fake detector: one face; fake classifier: with_mask for 100 frames, then
    without_mask) in the window: the in-view list shows the person masked, then unmasked (their row
    follows the label change), the alert log and banner say they took the mask off, and the totals
    card shows the masked share of person-time next to the per-person compliance."""
    import time
    from dataclasses import replace

    from maskwatch.config import TrackerConfig
    from maskwatch.monitor import Monitor
    from maskwatch.pipeline import Pipeline
    from maskwatch.sinks import sinks_from_config
    from fakes import FakeDetector, FakeLiveSource

    class MediaTimeSource(FakeLiveSource):
        def read(self, timeout=None):
            frame = super().read(timeout)
            if frame is not None:
                frame.timestamp = 1e9 + frame.index / 25.0
                time.sleep(0.004)  # the UI takes some of the frames in between
            return frame

    class MaskOffClassifier:
        calls = 0

        def classify_faces(self, image, xyxy):
            self.calls += 1
            row = [0.9, 0.05, 0.05] if self.calls <= 100 else [0.05, 0.9, 0.05]
            return np.tile(np.array([row], np.float32), (len(xyxy), 1))

    def factory(config, mailbox):
        config = replace(config, tracker=replace(config.tracker, change_after_s=1.0))

        def open_sinks():
            sinks = sinks_from_config(config, alert_listeners=[mailbox.on_alert], alert_thumbnail=person_thumbnail)
            return [*sinks, mailbox]

        pipeline = Pipeline(config, source=MediaTimeSource(frames=250, then=SourceState.ENDED),
                            detector=FakeDetector(), classifier=MaskOffClassifier())
        return Monitor(config, sinks=open_sinks, pipeline=pipeline)

    settings = make_settings(tmp_path)
    settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=None, sound=False,
                           realtime=False)
    w = MainWindow(Config(model=model, interval_s=60.0, tracker=TrackerConfig(min_votes=5)), settings,
                   worker=MonitorWorker(monitor_factory=factory))
    qtbot.addWidget(w)
    w.show()
    w.picker.set_spec("tests/fixtures/clip_320x240.mp4")  # shown in the window; the factory's source runs
    seen: list[str] = []
    w.delivered.connect(lambda: seen.append(w.side.in_view_label.text()))
    try:
        assert run_to_end(qtbot, w) == "ended"
        rows = [t for t in seen if "#" in t]
        masked = [i for i, t in enumerate(rows) if t.endswith(" mask") and not t.endswith("no mask")]
        unmasked = [i for i, t in enumerate(rows) if t.endswith("no mask")]
        assert masked and unmasked and max(masked) < min(unmasked), rows  # the same row, now the new label
        tid = re.search(r"</span> #(\d+) ", rows[unmasked[0]])[1]  # (the colour of the span is "#rrggbb" too)
        assert all(f"#{tid} " in rows[i] for i in masked), rows  # one person throughout: the row follows them
        texts = [w.side.alert_log.item(i).text() for i in range(w.side.alert_log.count())]
        assert sum(f"Person #{tid} took the mask off" in t for t in texts) == 1, texts
        off = next(a for a in w.side.alert_log.alerts if a.kind == "mask_off")
        assert off.label == "without_mask" and off.thumbnail is not None
        assert "without a mask" not in " ".join(texts)  # first decided with a mask: no first-label alert
        assert w.side.compliance_label.text() == "compliance 100%"  # per person: first label
        masked_text = w.side.masked_time_label.text()
        share = int(masked_text.split("masked time ")[1].split("%")[0])
        # decided at ~frame 5, changed ~1.3 s after frame 100: ~5 s of ~10 s in view masked
        assert 40 <= share <= 65 and "1 label change" in masked_text, masked_text
    finally:
        w.shutdown()
