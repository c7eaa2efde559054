"""Swapping the mask classifier while a run goes on (issue 12): Monitor.swap_model / Pipeline.swap_classifier
keep tracks, votes and counts; a bad model keeps the old one; the model in use reaches the CSV log,
the JSONL events and the desktop app."""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the GUI test below: before any QApplication exists

from conftest import SHIPPED_MODEL, TINY_MODEL, requires_shipped_model
from maskwatch.classification import MaskClassifier, model_info
from maskwatch.config import Config, DetectorConfig
from maskwatch.errors import MaskwatchError
from maskwatch.frames import SourceState
from maskwatch.monitor import Monitor
from maskwatch.pipeline import Pipeline
from maskwatch.results import IntervalSummary
from maskwatch.sinks import CSV_COLUMNS, CallbackSink, IntervalCsvLog, sinks_from_config
from maskwatch.sinks.csv_log import LEGACY_COLUMNS

MODEL = CSV_COLUMNS.index("model")  # the model column (the time-weighted columns come after it)


def tiny_config(source, **kw) -> Config:
    kw.setdefault("detector", DetectorConfig(mode="full"))
    return replace(Config(source=str(source), model=TINY_MODEL), **kw)


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


class FixedClassifier:
    """Always says ``probs`` (a Classifier test double with a ModelInfo)."""

    def __init__(self, probs, name="fixed"):
        self.probs = np.asarray(probs, np.float32)
        info = model_info(TINY_MODEL)
        self.info = replace(info, name=name, sha256="f" * 64)

    def classify_faces(self, image, xyxy):
        return np.tile(self.probs, (len(xyxy), 1))


def test_pipeline_swap_takes_effect_on_the_next_frame_and_keeps_tracks(known_faces_clip):
    fixed = FixedClassifier([0.1, 0.2, 0.7])
    seen = []
    with Pipeline(tiny_config(known_faces_clip["path"], interval_s=1.0)) as pipeline:
        tiny = pipeline.model_description
        assert tiny.startswith("maskwatch-tiny-test-classifier 0.0.0-test (sha256 ")
        for i, result in enumerate(pipeline):
            seen.append((i, result.faces.probs.copy(), result.faces.track_id.copy(), result.summary))
            if i == 5:
                pipeline.swap_classifier(fixed)
        final = pipeline.close()
        totals = pipeline.totals
    before = [p for i, p, _, _ in seen if i <= 5 and len(p)]
    after = [p for i, p, _, _ in seen if i > 5 and len(p)]
    assert before and after
    assert not any(np.allclose(p, [0.1, 0.2, 0.7]) for p in before)
    assert all(np.allclose(p, [0.1, 0.2, 0.7]) for p in after)  # the very next frame used it
    # person A kept their track across the swap: two people in the clip, two counted
    assert totals.people_seen == known_faces_clip["people"]
    ids_a = {int(t) for i, _, ids, _ in seen if i < 30 for t in ids}
    assert len(ids_a) == 1
    summaries = [s for *_, s in seen if s is not None] + [final]
    assert summaries[0].model == f"{tiny} -> fixed 0.0.0-test (sha256 ffffffff)"  # the interval of the swap
    assert all(s.model == "fixed 0.0.0-test (sha256 ffffffff)" for s in summaries[1:])
    assert pipeline.swaps == 1


@requires_shipped_model
def test_monitor_swap_mid_run_keeps_counts_and_logs_the_model(known_faces_clip, tmp_path):
    """Swapped from another thread while the clip plays: the counts so far stay, the next rows and
    events name the new model, and the event log records the swap."""
    config = tiny_config(known_faces_clip["path"], interval_s=1.0, log=tmp_path / "counts.csv",
                         events=tmp_path / "events.jsonl")
    swapped = threading.Event()
    described = {}
    reached = threading.Event()

    def on_result(result):
        if result.frame is not None and result.frame.index == 3:
            reached.set()
            swapped.wait(30)  # hold the run here until the other thread has swapped

    monitor = Monitor(config, sinks=lambda: [*sinks_from_config(config), CallbackSink(on_result=on_result)])

    def swap():
        reached.wait(60)
        described["text"] = monitor.swap_model(SHIPPED_MODEL)
        swapped.set()

    thread = threading.Thread(target=swap)
    thread.start()
    totals = monitor.run()
    thread.join(5)
    shipped = MaskClassifier(SHIPPED_MODEL).info.describe()
    assert described["text"] == shipped and shipped.startswith("maskwatch-mask-classifier 0.4.0 (sha256 ")
    # A walked in before the swap and kept their track; both decided by the shipped model
    assert totals.people_seen == 2
    assert totals.by_label == known_faces_clip["by_label"]
    table = rows(tmp_path / "counts.csv")
    assert table[0] == list(CSV_COLUMNS) and "model" in table[0]
    models = [r[MODEL] for r in table[1:]]
    tiny = model_info(TINY_MODEL).describe()
    assert models[0] == f"{tiny} -> {shipped}" and set(models[1:]) == {shipped}
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    swaps = [r for r in records if r["kind"] == "model_swapped"]
    assert len(swaps) == 1 and swaps[0]["model"] == shipped and swaps[0]["previous"] == tiny
    assert swaps[0]["path"] == "models/mask_classifier.tflite"
    at = records.index(swaps[0])
    events = lambda part: [r for r in part if r["kind"] in ("person_seen", "label_decided")]  # noqa: E731 (alerts: their own keys)
    assert events(records[at + 1:]) and all(r["model"] == shipped for r in events(records[at + 1:]))
    assert all(r["model"] == tiny for r in events(records[:at]))


def test_a_bad_model_raises_one_line_and_the_old_one_stays(known_faces_clip, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    shutil.copy(TINY_MODEL.with_suffix(".json"), broken.with_suffix(".json"))
    nometa = tmp_path / "nometa.tflite"
    shutil.copy(TINY_MODEL, nometa)
    config = tiny_config(known_faces_clip["path"], interval_s=60.0)
    errors = []

    def on_result(result):
        if result.frame is not None and result.frame.index == 2:
            for bad in (broken, nometa, tmp_path / "missing.tflite"):
                with pytest.raises(MaskwatchError) as info:
                    monitor.swap_model(bad)
                errors.append(str(info.value))

    monitor = Monitor(config, sinks=[CallbackSink(on_result=on_result)])
    totals = monitor.run()
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert errors[0].startswith("cannot load model") and "metadata not found" in errors[1]
    assert "not found" in errors[2]
    assert monitor.pipeline.swaps == 0
    assert monitor.model_info == model_info(TINY_MODEL)
    assert totals.people_seen == 2  # the run went on


def test_swap_before_the_pipeline_is_built_is_used_from_the_first_frame(known_faces_clip):
    config = tiny_config(known_faces_clip["path"], interval_s=60.0)
    monitor = Monitor(config, sinks=[])
    copy_info = monitor.swap_model(TINY_MODEL)
    monitor.run()
    assert copy_info == model_info(TINY_MODEL).describe()
    assert monitor.pipeline.swaps == 1 and monitor.model_info == model_info(TINY_MODEL)


def summary(model=None) -> IntervalSummary:
    return IntervalSummary(1.7e9, 1.7e9 + 60, 10, 4, 1, {"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 0},
                           25.0, 0, SourceState.LIVE, model=model)


def test_an_old_log_without_the_model_column_is_appended_in_its_own_shape(tmp_path):
    path = tmp_path / "counts.csv"
    old_row = "2023-11-14T22:13:20+00:00,2023-11-14T22:14:20+00:00,10,4,1,1,0,0,1.000,25.0,0,live"
    path.write_text(",".join(LEGACY_COLUMNS) + "\n" + old_row + "\n")
    with IntervalCsvLog(path) as log:
        log.write(summary("m 1 (sha256 abcdabcd)"))
    table = rows(path)
    assert table[0] == list(LEGACY_COLUMNS) and ",".join(table[1]) == old_row
    assert len(table) == 3 and all(len(r) == len(LEGACY_COLUMNS) for r in table)
    new = tmp_path / "new.csv"
    with IntervalCsvLog(new) as log:
        log.write(summary("m 1 (sha256 abcdabcd)"))
        log.write(summary(None))
    table = rows(new)
    assert table[0] == list(CSV_COLUMNS) and [r[MODEL] for r in table[1:]] == ["m 1 (sha256 abcdabcd)", ""]


@requires_shipped_model
def test_gui_swaps_the_model_from_settings_while_a_clip_plays_and_keeps_its_counts(qtbot, tmp_path, known_faces_clip):
    from maskwatch.gui.qt_env import prepare_qt_environment

    prepare_qt_environment()
    from PyQt6.QtCore import QSettings

    from maskwatch.gui.controls import ControlsDialog
    from maskwatch.gui.main_window import MainWindow
    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    log = tmp_path / "counts.csv"
    settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=log, snapshots=None, sound=False,
                           realtime=True)  # the clip plays at its speed (5 s): the swap comes while it plays
    w = MainWindow(Config(model=TINY_MODEL, interval_s=1.0), settings)
    qtbot.addWidget(w)
    w.show()
    tiny = model_info(TINY_MODEL).describe()
    assert w.model_label.text() == f"model: {tiny} · fixtures/tiny_classifier.tflite"
    w.picker.set_spec(str(known_faces_clip["path"]))
    w.start()
    qtbot.waitUntil(lambda: w.last_result is not None and w.last_result.frame.index >= 3, timeout=30000)
    # the user picks the shipped model in Settings and saves, while the clip plays
    dialog = ControlsDialog(w.settings, w.base_config, w)
    dialog.model.setText(str(SHIPPED_MODEL))
    dialog.accept()
    with qtbot.waitSignal(w.run_finished, timeout=60000) as finished:
        swapped_at = w.last_result.frame.index
        seen_before = w.last_result.totals.people_seen
        w.settings_saved(dialog)
        assert w.running  # not restarted
    assert finished.args == ["ended"], w.last_error
    shipped = model_info(SHIPPED_MODEL).describe()
    assert w.model_label.text() == f"model: {shipped} · models/mask_classifier.tflite"
    assert swapped_at < 30  # person A was on screen: their track went on across the swap
    totals = w.last_result.totals
    assert totals.people_seen == 2 >= seen_before  # counted once each: nothing restarted
    assert totals.by_label["without_mask"] == 1  # B came after the swap: the shipped model labelled them
    models = [row[MODEL] for row in rows(log)[1:]]
    swap_row = models.index(f"{tiny} -> {shipped}")
    assert set(models[:swap_row]) <= {tiny} and set(models[swap_row + 1:]) == {shipped}
    assert w.settings.saved_controls()["model"] == str(SHIPPED_MODEL)  # and the next Start uses it


def test_gui_keeps_the_old_model_when_the_new_one_is_bad(qtbot, tmp_path, known_faces_clip):
    from maskwatch.gui.qt_env import prepare_qt_environment

    prepare_qt_environment()
    from PyQt6.QtCore import QSettings

    from maskwatch.gui.main_window import MainWindow
    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    settings.save_controls(mode="full", min_score=0.5, vote_window=15, log=None, snapshots=None, sound=False,
                           realtime=True)
    w = MainWindow(Config(model=TINY_MODEL, interval_s=60.0), settings)
    qtbot.addWidget(w)
    w.show()
    assert w.swap_model(TINY_MODEL) is None and "no run" in w.banner.text.text()  # nothing running yet
    w.picker.set_spec(str(known_faces_clip["path"]))
    w.start()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=30000)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"junk")
    shutil.copy(TINY_MODEL.with_suffix(".json"), bad.with_suffix(".json"))
    with qtbot.waitSignal(w.run_finished, timeout=60000) as finished:
        assert w.swap_model(bad) is None
    assert finished.args == ["ended"]
    assert w.banner.text.text().startswith("Model not changed: cannot load model") and "\n" not in w.banner.text.text()
    assert "maskwatch-tiny-test-classifier" in w.model_label.text()
    assert w.last_result.totals.people_seen == 2


def test_swap_from_a_sighup_handler_in_the_run_thread(known_faces_clip):
    """``serve`` reloads on SIGHUP: a handler that runs in the monitor's own thread, mid-run."""
    import signal

    fixed = []
    config = tiny_config(known_faces_clip["path"], interval_s=60.0)

    def on_result(result):
        if result.frame is not None and result.frame.index == 3:
            os.kill(os.getpid(), signal.SIGHUP)

    monitor = Monitor(config, sinks=[CallbackSink(on_result=on_result)])
    previous = signal.signal(signal.SIGHUP, lambda *_: fixed.append(monitor.swap_model(TINY_MODEL)))
    try:
        totals = monitor.run()
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert fixed == [model_info(TINY_MODEL).describe()] and monitor.pipeline.swaps == 1
    assert totals.people_seen == 2
