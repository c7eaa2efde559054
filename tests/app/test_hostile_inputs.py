"""Hostile inputs: file names that are not UTF-8 (OpenCV crashed on them), folders of unreadable
images (a run that processed nothing used to exit 0), and unreadable images at the start of a folder
(skipped silently). Whatever could crash the interpreter runs in a subprocess."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import PEOPLE, REPO, TINY_MODEL, cli_env, run_cli
from maskwatch.cli import main
from maskwatch.errors import MaskwatchError
from maskwatch.sources import FileSource, ImageFolderSource, display_path, load_image, open_source
from rtsp import FIXTURES

CAFE = b"caf\xe9"  # Latin-1 bytes: not valid UTF-8


def odd_path(folder: Path, stem: bytes, suffix: str) -> Path:
    """A path in ``folder`` whose name is ``stem`` bytes that are not UTF-8 (as Python shows it)."""
    return folder / (os.fsdecode(stem) + suffix)


def test_image_and_video_with_a_name_that_is_not_utf8(tmp_path):
    image = odd_path(tmp_path, CAFE, ".jpg")
    shutil.copy(PEOPLE / "with_mask.jpg", image)
    video = odd_path(tmp_path, CAFE + b" \xff", ".mp4")
    shutil.copy(FIXTURES / "clip_320x240.mp4", video)
    # in a child: the bug was a segfault, which would take pytest down with it
    code = f"""
import os
from maskwatch.sources import open_source, load_image
image, video = os.fsdecode({bytes(image)!r}), os.fsdecode({bytes(video)!r})
assert load_image(image).shape == (196, 256, 3)
with open_source(image) as s:
    assert [f.image.shape for f in s] == [(196, 256, 3)]
with open_source(video) as s:
    frames = list(s)
    print(len(frames), s.fps, s.name)
with open_source({str(tmp_path)!r}) as s:
    print(len(list(s)), s.kind)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env(), cwd=REPO)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first == f"50 25.0 {tmp_path}/caf\\xe9 \\xff.mp4"
    assert second == "1 images"


def test_no_opencv_call_gets_an_unencodable_path(tmp_path):
    video = odd_path(tmp_path, CAFE, ".mp4")
    shutil.copy(FIXTURES / "clip_320x240.mp4", video)
    with FileSource(video) as source:  # in-process too: through the symlink, never the raw name
        assert source.frame_count == 50 and source.read().index == 0
        assert source.name == display_path(video) and "\\xe9" in source.name
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("maskwatch-*/source.mp4"))  # the link is gone
    assert load_image(odd_path(tmp_path, CAFE, ".png")) is None  # missing: None, not a crash


def test_detect_goes_on_after_a_name_that_is_not_utf8(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (b"a.jpg", CAFE + b".jpg", b"z.jpg"):
        shutil.copy(PEOPLE / "without_mask.jpg", folder / os.fsdecode(name))
    r = run_cli("detect", "--json", "--model", TINY_MODEL, "--detector", "full", folder, timeout=120)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(rec["image"]).name for rec in records] == ["a.jpg", "caf\\xe9.jpg", "z.jpg"]
    assert all(len(rec["faces"]) == 1 for rec in records)
    r = run_cli("detect", "--model", TINY_MODEL, "--detector", "full", folder / os.fsdecode(CAFE + b".jpg"), timeout=120)
    assert r.returncode == 0 and r.stdout.startswith(f"{folder}/caf\\xe9.jpg  (242x256, 1 face)")


def test_headless_run_on_a_video_whose_name_is_not_utf8(tmp_path):
    video = odd_path(tmp_path, CAFE, ".mp4")
    shutil.copy(FIXTURES / "clip_320x240.mp4", video)
    log = tmp_path / "counts.csv"
    r = run_cli("--headless", "--source", video, "--model", TINY_MODEL, "--detector", "full", "--log", log, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "total: people" in r.stdout and log.is_file()


def unreadable_folder(folder: Path, n: int) -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"img{i}.jpg").write_bytes(b"not a jpeg at all")
    return folder


def test_folder_of_unreadable_images_is_an_error(tmp_path, capfd):
    folder = unreadable_folder(tmp_path / "photos", 3)
    with pytest.raises(MaskwatchError, match=r"^no readable image in .*photos: all 3 images failed to decode \(e\.g\. img0\.jpg\)$"):
        open_source(folder)
    log = tmp_path / "counts.csv"
    code = main(["--headless", "--source", str(folder), "--model", str(TINY_MODEL), "--log", str(log)])
    out, err = capfd.readouterr()
    assert code == 2
    assert err.strip().splitlines() == [  # one line, not a warning per file first
        f"maskwatch: error: no readable image in {folder}: all 3 images failed to decode (e.g. img0.jpg)"]
    assert "total:" not in out  # no success line
    assert not log.exists()  # the run failed before its first frame: no file at all


def test_unreadable_first_images_are_skipped_with_a_warning(tmp_path, capfd, caplog):
    folder = unreadable_folder(tmp_path / "photos", 2)
    cv2.imwrite(str(folder / "img5.jpg"), np.full((48, 64, 3), 90, np.uint8))
    caplog.set_level(logging.WARNING)
    with open_source(folder) as source:  # the first readable image is found at open
        assert isinstance(source, ImageFolderSource) and source.skipped == 2
        assert [f.index for f in source] == [2]
    assert [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()] == [
        f"skipping unreadable image {folder / 'img0.jpg'}", f"skipping unreadable image {folder / 'img1.jpg'}"]
    caplog.clear()
    code = main(["--headless", "--source", str(folder), "--model", str(TINY_MODEL), "--detector", "full"])
    out, err = capfd.readouterr()
    assert code == 0 and "total: people" in out
    skipped = [m for m in err.splitlines() + [r.getMessage() for r in caplog.records] if "skipping unreadable image" in m]
    assert any("img0.jpg" in m for m in skipped) and any("img1.jpg" in m for m in skipped)  # said, not silent


def test_detect_on_folders_that_give_nothing(tmp_path, capfd):
    bad = unreadable_folder(tmp_path / "bad", 2)
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["detect", "--model", str(TINY_MODEL), "--detector", "full", str(bad), str(empty)])
    out, err = capfd.readouterr()
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"maskwatch: warning: cannot read image: {bad / 'img0.jpg'}",
        f"maskwatch: warning: cannot read image: {bad / 'img1.jpg'}",
        f"maskwatch: warning: no images in folder {empty}",
        "maskwatch: error: 3 images could not be read (no image was read)",
    ]


# -- outputs whose names are not UTF-8 --------------------------------------------------------------


def count_frames(video: Path) -> int:
    with FileSource(video) as source:  # opened through a plain-named link, never the raw name
        return sum(1 for _ in source)


def test_save_video_to_a_name_that_is_not_utf8(tmp_path):
    """Regression: ``cv2.VideoWriter(str(path))`` with such a name crashed the process (rc -11)."""
    video = odd_path(tmp_path, CAFE, ".mp4")
    log = tmp_path / "counts.csv"
    r = run_cli("--headless", "--quiet", "--source", FIXTURES / "clip_320x240.mp4", "--model", TINY_MODEL,
                "--detector", "full", "--log", log, "--save-video", video, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "total: people" in r.stdout
    assert sorted(os.fsencode(p.name) for p in tmp_path.iterdir()) == [CAFE + b".mp4", b"counts.csv"]  # no temp file left
    assert count_frames(video) == 50


def test_video_sink_in_a_folder_whose_name_is_not_utf8(tmp_path):
    folder = odd_path(tmp_path, CAFE + b" \xff", "")
    folder.mkdir()
    code = f"""
import os, numpy as np
from maskwatch.faces import Faces
from maskwatch.frames import Frame
from maskwatch.results import FrameResult, Stats, Totals
from maskwatch.sinks import VideoSink
sink = VideoSink(os.path.join(os.fsdecode({bytes(folder)!r}), os.fsdecode({CAFE + b".avi"!r})))
for i in range(12):
    sink.on_result(FrameResult(Frame(np.full((48, 64, 3), 90, np.uint8), i, i / 10, 0.0), Faces.empty(), Stats(), Totals()))
sink.close()
print(sink.frames_written)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env(), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["12"]
    assert [os.fsencode(p.name) for p in folder.iterdir()] == [CAFE + b".avi"]
    assert count_frames(folder / os.fsdecode(CAFE + b".avi")) == 12


def test_gui_snapshot_into_a_folder_whose_name_is_not_utf8(tmp_path):
    """Regression: the desktop app's Snapshot button called ``cv2.imwrite(str(path))`` (a crash)."""
    folder = odd_path(tmp_path, CAFE, "")
    code = f"""
import os, numpy as np
from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QApplication
from maskwatch.config import Config
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState
from maskwatch.gui.main_window import MainWindow
from maskwatch.gui.settings import GuiSettings
from maskwatch.gui.worker import ResultMailbox
from maskwatch.results import FrameResult, Stats, Totals
app = QApplication([])
w = MainWindow(Config(model={str(TINY_MODEL)!r}), GuiSettings(QSettings({str(tmp_path / "gui.ini")!r}, QSettings.Format.IniFormat)))
w.run_config = Config(model={str(TINY_MODEL)!r}, snapshots=os.fsdecode({bytes(folder)!r}))  # a run's folder
box = ResultMailbox()
box.put(FrameResult(Frame(np.full((90, 160, 3), 5, np.uint8), 5, 0.2, 0.0), Faces.empty(),
                    Stats(source_state=SourceState.LIVE), Totals()))
w.show_delivery(box.take())
print(w.save_snapshot() is not None)
"""
    env = {**cli_env(), "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "True"
    (snapshot,) = folder.iterdir()
    assert snapshot.suffix == ".png" and load_image(snapshot).shape == (90, 160, 3)
