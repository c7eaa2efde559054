"""Privacy and retention: blurred faces in snapshots and videos, old snapshots and recordings deleted."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.config import Config
from maskwatch.gui.qt_env import prepare_qt_environment
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import Frame
from maskwatch.results import Event, FrameResult, Stats, Totals
from maskwatch.sinks.retention import RetentionSink, purge
from maskwatch.sinks import SnapshotSaver, VideoSink, sinks_from_config

PEOPLE = Path(__file__).resolve().parents[1] / "fixtures" / "people"

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # the app's tests below: no display
prepare_qt_environment()  # before pytest-qt makes the QApplication (cv2 points Qt at its own plugins)


def two_faces_frame() -> tuple[np.ndarray, Faces]:
    """A 640x360 frame with two real photos of people (tracks 1 and 2) and their boxes."""
    frame = np.full((360, 640, 3), 120, np.uint8)
    boxes = []
    for i, name in enumerate(("with_mask", "without_mask")):
        photo = cv2.resize(cv2.imread(str(PEOPLE / f"{name}.jpg")), (200, 200), interpolation=cv2.INTER_AREA)
        x = 40 + i * 340
        frame[80:280, x:x + 200] = photo
        boxes.append((x, 80, x + 200, 280))
    faces = Faces(np.array(boxes, np.float32), np.array([0.9, 0.9], np.float32),
                  probs=np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]], np.float32),
                  track_id=np.array([1, 2]), track_label=np.array([0, 1]))
    return frame, faces


def sharpness(image: np.ndarray, box) -> float:
    """Variance of the Laplacian inside ``box`` shrunk by a fifth per side (away from the drawn box)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    dx, dy = (x2 - x1) // 5, (y2 - y1) // 5
    region = cv2.cvtColor(image[y1 + dy:y2 - dy, x1 + dx:x2 - dx], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(region, cv2.CV_64F).var())


def decided(track: int, label: str) -> Event:
    return Event("label_decided", track, time.time(), 0, label=label, confidence=1.0)


def saved_snapshot(tmp_path, blur: str, trigger: int = 2, label: str = "without_mask") -> np.ndarray:
    frame, faces = two_faces_frame()
    saver = SnapshotSaver(tmp_path / blur, blur=blur)
    paths = saver.maybe_save(frame, faces, [decided(trigger, label)])
    assert len(paths) == 1
    return cv2.imread(str(paths[0]))


def test_snapshot_blurs_every_face_but_the_trigger_with_others(tmp_path):
    frame, faces = two_faces_frame()
    bystander, trigger = faces.xyxy[0], faces.xyxy[1]
    plain = saved_snapshot(tmp_path, "off")
    others = saved_snapshot(tmp_path, "others", trigger=2)
    assert sharpness(others, bystander) < sharpness(plain, bystander) / 10  # the bystander is unrecognisable
    assert sharpness(others, trigger) == pytest.approx(sharpness(plain, trigger), rel=0.05)  # the trigger is not
    # the overlay is drawn after the blur: the box of the blurred face is still there (its colour on the edge)
    x1, y1 = int(bystander[0]), int(bystander[1])
    assert np.abs(others[y1 + 40:y1 + 120, x1].astype(int) - plain[y1 + 40:y1 + 120, x1].astype(int)).max() < 30


def test_snapshot_blurs_all_faces_with_all(tmp_path):
    frame, faces = two_faces_frame()
    plain, blurred = saved_snapshot(tmp_path, "off"), saved_snapshot(tmp_path, "all")
    for box in faces.xyxy:
        assert sharpness(blurred, box) < sharpness(plain, box) / 10


def test_others_gives_each_snapshot_its_own_person(tmp_path):
    frame, faces = two_faces_frame()
    saver = SnapshotSaver(tmp_path / "s", blur="others", labels=("with_mask", "without_mask"))
    paths = saver.maybe_save(frame, faces, [decided(1, "with_mask"), decided(2, "without_mask")])
    first, second = (cv2.imread(str(p)) for p in paths)
    a, b = faces.xyxy
    assert sharpness(first, a) > 10 * sharpness(first, b)
    assert sharpness(second, b) > 10 * sharpness(second, a)


def test_video_blurs_every_face(tmp_path):
    frame, faces = two_faces_frame()
    paths = {}
    for blur in ("off", "others"):
        path = tmp_path / f"{blur}.avi"
        with VideoSink(path, fps=10, blur=blur) as sink:
            for i in range(3):
                sink.on_result(FrameResult(Frame(frame, i, i / 10, 0.0), faces, Stats(), Totals()))
        paths[blur] = sink.path
    images = {}
    for blur, path in paths.items():
        capture = cv2.VideoCapture(str(path))
        ok, images[blur] = capture.read()
        capture.release()
        assert ok
    for box in faces.xyxy:
        assert sharpness(images["others"], box) < sharpness(images["off"], box) / 10
    assert (frame == two_faces_frame()[0]).all()  # the frame itself is never changed (other sinks read it)


def test_blur_faces_true_means_others_false_means_off():
    assert Config().with_overrides({"blur_faces": True}).validate().blur_faces == "others"
    assert Config().with_overrides({"blur_faces": False}).validate().blur_faces == "off"


def test_bad_blur_mode_is_one_line():
    with pytest.raises(MaskwatchError, match="blur_faces must be one of off, others, all"):
        Config().with_overrides(blur_faces="yes").validate()
    with pytest.raises(MaskwatchError, match=r"retain_days must be a number > 0"):
        Config().with_overrides(retain_days=-1).validate("config file site.toml")
    with pytest.raises(MaskwatchError, match="blur_faces"):
        SnapshotSaver("unused", blur="some")


def age(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"data")
    t = time.time() - days * 86400
    os.utime(path, (t, t))
    return path


def test_retention_deletes_only_our_old_files(tmp_path):
    snaps, videos = tmp_path / "snaps", tmp_path / "videos"
    old_snap = age(snaps / "20250101T080000+0100_track4_without_mask.jpg", 10)
    old_part = age(snaps / "20250101T080000+0100_track5_without_mask.jpg.part", 10)
    new_snap = age(snaps / "20261101T080000+0100_track9_mask_worn_incorrectly.jpg", 1)
    foreign = age(snaps / "holiday.jpg", 100)
    nested = age(snaps / "sub" / "20250101T080000+0100_track4_without_mask.jpg", 100)
    old_video = age(videos / "door.mp4", 10)
    old_run = age(videos / "door-20250101T080000.mp4", 10)
    old_numbered = age(videos / "door-2.mp4", 10)
    old_tmp = age(videos / ".maskwatch-recording-ab12cd.mp4", 10)
    new_run = age(videos / "door-20261101T080000.mp4", 2)
    other_video = age(videos / "door-party.mp4", 100)
    other_ext = age(videos / "door.avi", 100)
    config = Config(snapshots=snaps, save_video=videos / "door.mp4", retain_days=7)
    deleted = purge(config)
    assert set(deleted) == {old_snap, old_part, old_video, old_run, old_numbered, old_tmp}
    for kept in (new_snap, foreign, nested, new_run, other_video, other_ext):
        assert kept.exists(), kept
    assert purge(Config(snapshots=snaps, retain_days=None)) == []


def test_retention_runs_from_the_configured_sinks_and_logs(tmp_path, caplog):
    snaps = tmp_path / "snaps"
    old = age(snaps / "20250101T080000+0100_track4_without_mask.jpg", 3)
    config = Config(snapshots=snaps, retain_days=2)
    caplog.set_level("INFO", logger="maskwatch.sinks.retention")
    sinks = sinks_from_config(config)
    try:
        retention = [s for s in sinks if isinstance(s, RetentionSink)]
        assert len(retention) == 1 and retention[0].deleted == 1
        assert not old.exists()
        assert any(old.name in r.getMessage() for r in caplog.records)
        # a file that ages while the camera runs goes at the next hourly pass
        later = age(snaps / "20250102T080000+0100_track6_without_mask.jpg", 3)
        retention[0]._next = 0.0
        retention[0].on_result(None)
        assert not later.exists() and retention[0].deleted == 2
    finally:
        for sink in sinks:
            sink.close()
    assert not any(isinstance(s, RetentionSink) for s in sinks_from_config(Config(snapshots=snaps)))


def _gui_window(qtbot, tmp_path, monkeypatch, config: Config):
    """The desktop window with its settings in tmp_path (snapshots to tmp_path/gui_snaps,
    recordings to tmp_path/gui_videos)."""
    from PyQt6.QtCore import QSettings

    from maskwatch.gui.main_window import RECORDINGS_KEY, MainWindow
    from maskwatch.gui.settings import GuiSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=tmp_path / "gui_snaps",
                           sound=False, realtime=False)
    settings.set_value(RECORDINGS_KEY, str(tmp_path / "gui_videos"))
    window = MainWindow(config, settings)
    qtbot.addWidget(window)
    return window


@pytest.mark.parametrize("mode", ["others", "all"])
def test_the_apps_snapshot_blurs_every_face_with_blur_faces(qtbot, tmp_path, monkeypatch, mode):
    """Ctrl+S in the desktop app honours blur_faces (review finding): no trigger, so every face."""
    from conftest import TINY_MODEL
    from maskwatch.frames import SourceState

    frame, faces = two_faces_frame()
    shown = FrameResult(Frame(frame, 1, 0.0, 0.0), faces, Stats(fps=10.0, source_state=SourceState.LIVE), Totals(), [])
    sharp = {}
    for blur in ("off", mode):
        window = _gui_window(qtbot, tmp_path / blur, monkeypatch, Config(model=TINY_MODEL, blur_faces=blur))
        try:
            window.last_result = shown
            path = window.save_snapshot()
            assert path is not None and path.parent == tmp_path / blur / "gui_snaps"
            image = cv2.imread(str(path))
            sharp[blur] = [sharpness(image, box) for box in faces.xyxy]
        finally:
            window.shutdown()
    for face in range(2):
        assert sharp[mode][face] < sharp["off"][face] / 5, sharp


def test_the_apps_recordings_and_snapshots_go_after_retain_days(qtbot, tmp_path, monkeypatch, caplog):
    from conftest import TINY_MODEL

    videos, snaps = tmp_path / "gui_videos", tmp_path / "gui_snaps"
    old_video = age(videos / "maskwatch_20250101_080000.mp4", 10)
    old_second = age(videos / "maskwatch_20250101_080000_1.mp4", 10)
    old_snap = age(snaps / "maskwatch_20250101_080001.png", 10)
    new_video = age(videos / "maskwatch_20261101_080000.mp4", 1)
    foreign = age(videos / "wedding.mp4", 100)
    caplog.set_level("INFO", logger="maskwatch.sinks.retention")
    window = _gui_window(qtbot, tmp_path, monkeypatch, Config(model=TINY_MODEL, retain_days=7))
    try:
        window._purge_old_outputs()  # what start() and start_recording() call
    finally:
        window.shutdown()
    assert not old_video.exists() and not old_second.exists() and not old_snap.exists()
    assert new_video.exists() and foreign.exists()
    assert sum("retention: deleted" in r.getMessage() for r in caplog.records) == 3
    keep = _gui_window(qtbot, tmp_path / "keep", monkeypatch, Config(model=TINY_MODEL))  # no retain_days
    kept = age(tmp_path / "keep" / "gui_videos" / "maskwatch_20200101_080000.mp4", 1000)
    try:
        keep._purge_old_outputs()
    finally:
        keep.shutdown()
    assert kept.exists()


def test_retain_days_reaches_the_collector(tmp_path):
    from dataclasses import replace

    from conftest import TINY_MODEL
    from maskwatch.config import CollectConfig
    from maskwatch.sinks.collect import CollectSink

    config = replace(Config(model=TINY_MODEL, retain_days=3), collect=CollectConfig(folder=tmp_path / "crops"))
    sinks = sinks_from_config(config)
    try:
        collectors = [s for s in sinks if isinstance(s, CollectSink)]
        assert len(collectors) == 1 and collectors[0].retain_s == 3 * 86400.0
    finally:
        for sink in sinks:
            sink.close()
