"""The Review tab (issue 12), driven with the keyboard by pytest-qt: label, skip, not a face, undo;
checks the ImageFolder it writes (``labelled/<label>/``) and ``decisions.csv``."""

from __future__ import annotations

import csv
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

from dataclasses import replace  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

from PyQt6.QtCore import Qt  # noqa: E402

from conftest import TINY_MODEL  # noqa: E402
from maskwatch.classification import model_info  # noqa: E402
from maskwatch.config import CollectConfig  # noqa: E402
from maskwatch.faces import Faces  # noqa: E402
from maskwatch.frames import Frame  # noqa: E402
from maskwatch.gui.review import DECISION_COLUMNS, ReviewSession, ReviewTab  # noqa: E402
from maskwatch.results import FrameResult, Stats, Totals  # noqa: E402
from maskwatch.sinks import CollectSink  # noqa: E402

TOPS = [0.62, 0.41, 0.55, 0.70, 0.38]  # the top probability of each collected crop, in the order collected


@pytest.fixture
def collected(tmp_path):
    """A collect folder with five crops (made by the real CollectSink), uncertainties ``TOPS``."""
    folder = tmp_path / "collect"
    config = replace(CollectConfig(folder=folder), per_track_s=0.0)
    with CollectSink(config, source="cam", model=model_info(TINY_MODEL)) as sink:
        for i, top in enumerate(TOPS):
            image = np.full((120, 160, 3), 40 * i, np.uint8)
            probs = np.array([[top, (1 - top) / 2, (1 - top) / 2]], np.float32)
            faces = Faces(xyxy=np.array([[50, 30, 90, 80]], np.float32), score=np.ones(1, np.float32), probs=probs,
                          track_id=np.array([i]))
            sink.on_result(FrameResult(Frame(image, i, float(i), 0.0), faces, Stats(), Totals()))
    return folder


def decisions(folder):
    with open(folder / "decisions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(DECISION_COLUMNS)
    return [dict(zip(DECISION_COLUMNS, r)) for r in rows[1:]]


def labelled(folder):
    root = folder / "labelled"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_keys_label_skip_not_a_face_and_undo(qtbot, collected):
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.show()
    assert tab.open_folder(collected)
    files = [c.file for c in tab.session.crops]
    # most uncertain first: 0.38, 0.41, 0.55, 0.62, 0.70 (collected 5th, 2nd, 3rd, 1st, 4th)
    assert [c.top_prob for c in tab.session.crops] == sorted(TOPS)
    assert files == ["000005_t4.png", "000002_t1.png", "000003_t2.png", "000001_t0.png", "000004_t3.png"]
    assert tab.grid.count() == 5 and tab.current == 0 and tab.focusWidget() is tab.grid  # the keys go to the grid
    assert tab.grid.iconSize().width() >= 160
    assert tab.grid.item(0).text() == "mask 38%"  # the model's guess and its probability

    qtbot.keyClick(tab.grid, Qt.Key.Key_2)  # without mask; the next crop becomes current
    assert tab.current == 1
    qtbot.keyClick(tab.grid, Qt.Key.Key_S)  # skip: nothing written
    assert tab.current == 2
    qtbot.keyClick(tab.grid, Qt.Key.Key_X)  # not a face
    qtbot.keyClick(tab.grid, Qt.Key.Key_3)
    qtbot.keyClick(tab.grid, Qt.Key.Key_1)
    assert labelled(collected) == sorted([f"without_mask/{files[0]}", f"not_a_face/{files[2]}",
                                          f"mask_worn_incorrectly/{files[3]}", f"with_mask/{files[4]}"])
    rows = decisions(collected)
    assert [(r["file"], r["decision"]) for r in rows] == [
        (files[0], "without_mask"), (files[2], "not_a_face"), (files[3], "mask_worn_incorrectly"), (files[4], "with_mask")]
    assert [r["guess"] for r in rows] == ["with_mask"] * 4 and rows[0]["top_prob"] == "0.3800"
    assert all(r["time"] for r in rows)
    # the copies are the collected files, which stay where they were
    assert all((collected / f).is_file() for f in files)
    assert (collected / "labelled" / "with_mask" / files[4]).read_bytes() == (collected / files[4]).read_bytes()
    assert tab.session.labelled == 4 and "4 labelled" in tab.progress.text()
    # every crop had its turn: the skipped one is the only one left, and it is current again
    assert tab.current == 1

    qtbot.keyClick(tab.grid, Qt.Key.Key_Z)  # undo "1": the copy goes, the row goes
    assert tab.current == 4
    assert f"with_mask/{files[4]}" not in labelled(collected)
    assert [r["file"] for r in decisions(collected)] == [files[0], files[2], files[3]]
    qtbot.keyClick(tab.grid, Qt.Key.Key_2)  # relabel it
    assert f"without_mask/{files[4]}" in labelled(collected)
    assert [(r["file"], r["decision"]) for r in decisions(collected)][-1] == (files[4], "without_mask")
    for _ in range(3):  # undo three: the relabel, "3" and "X"
        qtbot.keyClick(tab.grid, Qt.Key.Key_Z)
    assert tab.current == 2
    assert labelled(collected) == [f"without_mask/{files[0]}"]
    assert [r["file"] for r in decisions(collected)] == [files[0]]
    qtbot.keyClick(tab.grid, Qt.Key.Key_Z)  # undo the skip: back to it, nothing to delete
    assert tab.current == 1 and tab.session.crops[1].decision is None
    qtbot.keyClick(tab.grid, Qt.Key.Key_1)
    assert f"with_mask/{files[1]}" in labelled(collected)

    # reopened: the labelled crops are not shown again
    again = ReviewTab()
    qtbot.addWidget(again)
    assert again.open_folder(collected)
    assert [c.file for c in again.session.crops] == [files[2], files[3], files[4]]


def test_labelling_an_already_labelled_crop_says_to_undo(qtbot, collected):
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.open_folder(collected)
    qtbot.keyClick(tab.grid, Qt.Key.Key_1)
    tab.grid.setCurrentRow(0)
    qtbot.keyClick(tab.grid, Qt.Key.Key_2)
    assert "undo" in tab.message.text()
    assert [r["decision"] for r in decisions(collected)] == ["with_mask"]


def test_a_plain_image_folder_of_crops_works_too(qtbot, tmp_path):
    crops = tmp_path / "crops"
    for sub, name in (("with_mask", "a.jpg"), ("without_mask", "a.jpg"), ("", "c.png")):
        (crops / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(crops / sub / name), np.full((40, 40, 3), 128, np.uint8))
    tab = ReviewTab()
    qtbot.addWidget(tab)
    assert tab.open_folder(crops)
    assert [(c.file, c.guess) for c in tab.session.crops] == [
        ("c.png", ""), ("with_mask/a.jpg", "with_mask"), ("without_mask/a.jpg", "without_mask")]
    for key in (Qt.Key.Key_1, Qt.Key.Key_1, Qt.Key.Key_3):
        qtbot.keyClick(tab.grid, key)
    # same file names in two folders stay two files
    assert labelled(crops) == ["mask_worn_incorrectly/without_mask__a.jpg", "with_mask/c.png", "with_mask/with_mask__a.jpg"]
    assert tab.open_folder(crops) and tab.session.crops == []  # everything labelled; labelled/ is not reviewed


def test_a_folder_that_is_not_there_is_one_line(qtbot, tmp_path):
    tab = ReviewTab()
    qtbot.addWidget(tab)
    assert not tab.open_folder(tmp_path / "missing")
    assert tab.message.text().startswith("not a folder")


def test_review_session_without_qt_keys(collected):
    session = ReviewSession(collected)
    session.decide(0, "with_mask")
    with pytest.raises(Exception, match="already labelled"):
        session.decide(0, "without_mask")
    assert session.undo() == 0 and session.undo() is None
    assert decisions(collected) == []


def test_the_main_window_has_the_review_tab_and_opens_the_collect_folder(qtbot, tmp_path, collected):
    from PyQt6.QtCore import QSettings

    from maskwatch.config import Config
    from maskwatch.gui.main_window import MainWindow
    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    settings.set_model_and_collect(model=None, collect=collected)
    w = MainWindow(Config(model=TINY_MODEL), settings)
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)  # window shortcuts need the active window
    assert w.tabs.tabText(1) == "Review" and w.tabs.currentIndex() == 0
    w.video.setFocus()
    qtbot.keyClick(w.video, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert w.tabs.currentWidget() is w.review and w.review.session.folder == collected
    assert w.review.focusWidget() is w.review.grid
    qtbot.keyClick(w.review.grid, Qt.Key.Key_3)
    assert [r["decision"] for r in decisions(collected)] == ["mask_worn_incorrectly"]
    qtbot.keyClick(w.review.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Z undoes too
    assert decisions(collected) == [] and w.review.current == 0
    qtbot.keyClick(w.review.grid, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)  # Ctrl+1 is not "1"
    assert w.tabs.currentIndex() == 0
    w.shutdown()


def test_a_torn_decisions_csv_is_repaired_and_its_labelled_copy_adopted(collected, caplog):
    """The app died while a decision row was written (review finding): the next decision must not be
    glued onto the torn row, and the torn decision (its copy is in labelled/) is not lost."""
    session = ReviewSession(collected)
    first, second = session.crops[0].file, session.crops[1].file
    session.decide(0, "with_mask")
    session.decide(1, "without_mask")
    text = (collected / "decisions.csv").read_text()
    (collected / "decisions.csv").write_text(text[:-20])  # the second row cut off mid-way
    caplog.set_level("WARNING", logger="maskwatch.review")
    again = ReviewSession(collected)
    assert first not in {c.file for c in again.crops} and second not in {c.file for c in again.crops}
    again.decide(0, "mask_worn_incorrectly")
    rows = decisions(collected)
    assert [(r["file"], r["decision"]) for r in rows] == [
        (first, "with_mask"), (second, "without_mask"), (again.crops[0].file, "mask_worn_incorrectly")]
    assert (collected / "decisions.csv").read_text().endswith("\n")
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "last line was cut off" in messages and "1 labelled copies had no row" in messages
    assert labelled(collected) == sorted([f"with_mask/{first}", f"without_mask/{second}",
                                          f"mask_worn_incorrectly/{again.crops[0].file}"])
