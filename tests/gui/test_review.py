"""The Review tab (issue 12), driven with the keyboard by pytest-qt: label, skip, not a face, undo;
checks the ImageFolder it writes (``labelled/<label>/``) and ``decisions.csv``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

from dataclasses import replace  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

from PyQt6.QtCore import QSize, Qt  # noqa: E402
from PyQt6.QtWidgets import QWidget  # noqa: E402

import maskwatch.gui.review as review_module  # noqa: E402

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


# --------------------------------------------------------------------------- issue 18: the Review tab's defects


THUMB_SIZE = QSize(160, 160)
CROP_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "train" / "crops"
CANONICAL = {"mask_weared_incorrect": "mask_worn_incorrectly"}


def _labelled_folder(root: Path, per_class: int = 6, classes: tuple[str, ...] | None = None) -> Path:
    """A collect-like folder whose ``labelled/<label>/`` holds ``per_class`` fixture crops (and mirrors) per class."""
    for src in sorted(CROP_FIXTURES.iterdir()):
        label = CANONICAL.get(src.name, src.name)
        if classes is not None and label not in classes:
            continue
        dst = root / "labelled" / label
        dst.mkdir(parents=True)
        files = sorted(src.glob("*.jpg"))
        for i in range(per_class):
            img = cv2.imread(str(files[i % len(files)]))
            if i >= len(files):
                img = cv2.flip(img, 1)
            if i >= 2 * len(files):
                img = cv2.resize(img[1:-1, 1:-1], img.shape[1::-1])
            cv2.imwrite(str(dst / f"{i:02d}.jpg"), img)
    return root


def _has_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


needs_train = [pytest.mark.train,
               pytest.mark.skipif(not _has_tensorflow(), reason="the [train] extra (TensorFlow) is not installed")]


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory) -> Path:
    """A 32 px lowres_cnn (random weights) as .keras with metadata next to it: a fine-tune of seconds."""
    import json

    from train.models import build_model

    d = tmp_path_factory.mktemp("model")
    path = d / "tiny.keras"
    build_model("lowres_cnn", 32, weights="none").save(path)
    (d / "tiny.json").write_text(json.dumps({"labels": ["with_mask", "without_mask", "mask_worn_incorrectly"],
                                             "version": "0.9.1", "crop_margin": 0.2, "backbone": "lowres_cnn",
                                             "temperature": 1.0, "calibration": {"applied": False}}))
    return path


TINY_RUN = ["--epochs", "1", "--batch-size", "8", "--calib-size", "4"]


def test_an_empty_tab_says_how_to_fill_it(qtbot, tmp_path, collected):
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.show()
    assert tab.stack.currentWidget() is tab.hint and tab.hint.isVisible()
    text = tab.hint.text()
    assert "Collect uncertain faces" in text and "maskwatch --headless --source SOURCE --collect DIR" in text
    assert "Ctrl+Shift+O" in text
    # a folder with nothing left to review says so, and how to get more
    empty = tmp_path / "empty"
    empty.mkdir()
    assert tab.open_folder(empty)
    assert tab.stack.currentWidget() is tab.hint and "Nothing left to review" in tab.hint.text()
    assert "Ctrl+Shift+O" in tab.hint.text() and "--collect" in tab.hint.text()
    # crops to review: the grid, with the keys on it
    assert tab.open_folder(collected)
    assert tab.stack.currentWidget() is tab.grid and tab.focusWidget() is tab.grid


def test_no_hard_coded_colours_only_object_names(qtbot, collected):
    """The dark theme is the window stylesheet's: the tab sets no colours of its own (issue 18)."""
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.open_folder(collected)
    before = tab.grid.item(0).icon().pixmap(THUMB_SIZE).toImage()
    qtbot.keyClick(tab.grid, Qt.Key.Key_1)  # labelled
    qtbot.keyClick(tab.grid, Qt.Key.Key_S)  # skipped
    for i in range(tab.grid.count()):
        item = tab.grid.item(i)
        assert item.background().style() == Qt.BrushStyle.NoBrush
        assert item.foreground().style() == Qt.BrushStyle.NoBrush
    # a decided crop is told apart by its caption and its dimmed thumbnail
    assert tab.grid.item(0).text().startswith("✓ mask") and tab.grid.item(1).text().startswith("skipped")
    after = tab.grid.item(0).icon().pixmap(THUMB_SIZE).toImage()
    assert before != after
    names = {w.objectName() for w in tab.findChildren(QWidget)}
    assert {"reviewGrid", "reviewHint", "reviewProgress", "reviewWarning", "finetuneBar", "finetuneButton",
            "finetuneCancel", "finetuneUse", "finetuneStatus"} <= names
    # the tab's code is split by idea (review_session, review_grid, review_tab, review_finetune)
    source = "".join(path.read_text() for path in Path(review_module.__file__).parent.glob("review*.py"))
    assert "class ReviewTab" in source and "setStyleSheet" not in source and "setBackground" not in source and "setForeground" not in source


def test_the_printed_command_works_from_another_folder(qtbot, tmp_path, collected, monkeypatch):
    """Every crop had its turn: the command shown has absolute, quoted paths and the default model
    resolves without the repository as working folder (it runs, and fails only on the data: too few crops)."""
    import shlex
    import subprocess

    from conftest import cli_env

    import maskwatch.gui.finetune_runner as runner_module

    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.open_folder(collected)
    for key in (Qt.Key.Key_1, Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_2, Qt.Key.Key_3):
        qtbot.keyClick(tab.grid, key)
    shown = tab.message.text()
    assert "Every crop had its turn" in shown
    command = shown.split("or run: ", 1)[1]
    words = shlex.split(command)
    data = words[words.index("--data") + 1]
    out = words[words.index("--out") + 1]
    assert Path(data).is_absolute() and Path(data) == collected / "labelled" and Path(data).is_dir()
    assert Path(out).is_absolute() and Path(out).parent.parent == collected
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}  # as a user's shell has it
    for which in (runner_module.shutil.which, lambda name: None):  # maskwatch-train on PATH, and not
        monkeypatch.setattr(runner_module.shutil, "which", which)
        command = tab.printed_command()
        assert command.startswith("maskwatch-train finetune" if which("maskwatch-train") else "PYTHONPATH=")
        done = subprocess.run(command, shell=True, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        # the model was found (it is checked first) and the run stopped on the data, in one line
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("maskwatch-train: error: too few labelled crops: ") and "with_mask 2" in line
        assert not Path(out).exists()


def test_finetune_without_tensorflow_says_how_to_install(qtbot, tmp_path, monkeypatch):
    import maskwatch.gui.finetune_runner as runner_module

    real = runner_module._find_spec
    monkeypatch.setattr(runner_module, "_find_spec", lambda name: None if name == "tensorflow" else real(name))
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.open_folder(_labelled_folder(tmp_path / "site"))
    assert tab.start_finetune() is False
    text = tab.message.text()
    assert "\n" not in text and "pip install 'maskwatch[train]'" in text and "TensorFlow" in text
    assert not tab.runner.running and not (tmp_path / "site" / "finetuned").exists()


def test_finetune_with_nothing_labelled_says_so(qtbot, collected):
    tab = ReviewTab()
    qtbot.addWidget(tab)
    assert tab.start_finetune() is False and "Open a folder" in tab.message.text()
    tab.open_folder(collected)
    assert tab.start_finetune() is False and "Nothing labelled" in tab.message.text()


@pytest.mark.train
def test_single_class_warns_asks_and_cancel_stops_it(qtbot, tmp_path, tiny_keras):
    """15 crops of one class: one warning line, a question; No trains nothing; Yes starts the
    background run with --allow-single-class, and Cancel stops it and leaves no run folder."""
    site = _labelled_folder(tmp_path / "site", per_class=15, classes=("with_mask",))
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.open_folder(site)
    tab.finetune_model = str(tiny_keras)
    tab.finetune_args = ["--epochs", "50", "--batch-size", "2"]  # long enough to be cancelled
    asked = []
    tab.ask = lambda title, text: asked.append(text) or False
    assert tab.start_finetune() is False
    assert len(asked) == 1 and "Every labelled crop is with_mask (15)" in asked[0]
    warnings = tab.warning.text().splitlines()
    assert tab.warning.isVisibleTo(tab)
    assert [w for w in warnings if w.startswith("warning: single class: all 15 labelled crops are with_mask")]
    assert [w for w in warnings if w.startswith("no replay: only these site crops train")]
    assert "Not fine-tuned" in tab.message.text() and not tab.runner.running
    assert not (site / "finetuned").exists()

    tab.ask = lambda title, text: True
    progress = []
    tab.runner.progress.connect(lambda f, text: progress.append((f, text)))
    ready = []
    tab.model_ready.connect(ready.append)
    assert tab.start_finetune() is True
    assert "--allow-single-class" in tab.runner.process.arguments()
    assert tab.finetune_bar.isVisibleTo(tab) and tab.cancel_button.isVisibleTo(tab)
    assert not tab.finetune_button.isEnabled()
    run = tab.runner.out
    qtbot.waitUntil(lambda: any(text.startswith("loading") or text.startswith("training") for _, text in progress),
                    timeout=90_000)
    with qtbot.waitSignal(tab.finetune_finished, timeout=20_000) as finished:
        qtbot.mouseClick(tab.cancel_button, Qt.MouseButton.LeftButton)
    assert finished.args[0] == "cancelled"
    assert not tab.runner.running and not run.exists() and ready == []
    assert "cancelled" in tab.message.text() and not tab.cancel_button.isVisibleTo(tab)
    assert tab.finetune_button.isEnabled() and not tab.use_button.isVisibleTo(tab)


@pytest.mark.train
def test_finetune_on_these_end_to_end(qtbot, tmp_path, tiny_keras):
    """The button: a background fine-tune of the labelled crops with a progress bar; at the end the
    new model is offered and taking it emits model_ready with the .tflite, which the app loads."""
    from maskwatch.classification import MaskClassifier

    site = _labelled_folder(tmp_path / "site")
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.open_folder(site)
    tab.finetune_model = str(tiny_keras)
    tab.finetune_args = list(TINY_RUN)
    tab.ask = lambda title, text: pytest.fail("three classes: nothing to ask")
    values = []
    tab.finetune_bar.valueChanged.connect(values.append)
    with qtbot.waitSignal(tab.finetune_finished, timeout=120_000) as finished:
        qtbot.mouseClick(tab.finetune_button, Qt.MouseButton.LeftButton)
        assert tab.runner.running and tab.finetune_bar.isVisibleTo(tab)
    state, tflite, message = finished.args
    assert state == "done", message
    assert Path(tflite).is_file() and Path(tflite).parent.parent == site / "finetuned"
    assert values and values == sorted(values) and max(values) >= 800  # it moved forward, up to the export
    assert "held-out site crops" in message
    assert "no replay" in tab.warning.text()
    assert not tab.finetune_bar.isVisibleTo(tab) and tab.use_button.isVisibleTo(tab)
    with qtbot.waitSignal(tab.model_ready, timeout=1000) as ready:
        qtbot.mouseClick(tab.use_button, Qt.MouseButton.LeftButton)
    assert ready.args == [tflite]
    assert MaskClassifier(tflite).version.startswith("0.9.1+ft.")
    # the run is not reviewed as crops when the folder is reopened
    assert tab.open_folder(site)
    assert not [c.file for c in tab.session.crops if c.file.startswith(("finetuned/", "labelled/"))]


def test_a_failing_fine_tune_is_one_line(qtbot, tmp_path):
    """The subprocess's one-line error is the reason shown; nothing is offered (no TensorFlow needed:
    it stops at its checks)."""
    from maskwatch.gui.finetune_runner import FinetuneRunner

    site = _labelled_folder(tmp_path / "site", per_class=2)
    runner = FinetuneRunner()
    with qtbot.waitSignal(runner.finished, timeout=60_000) as finished:
        runner.start(site / "labelled", tmp_path / "run")
    state, tflite, message = finished.args
    assert state == "failed" and tflite == "" and not runner.running
    assert message.startswith("too few labelled crops: ") and "\n" not in message
    # in the tab: a folder the checks refuse is said in one line before anything starts
    (site / "labelled" / "cats").mkdir()
    tab = ReviewTab()
    qtbot.addWidget(tab)
    tab.open_folder(site)
    if _has_tensorflow():
        assert tab.start_finetune() is False
        assert tab.message.text().startswith("Not fine-tuned: unknown class folders") and "cats" in tab.message.text()
        assert not tab.runner.running
