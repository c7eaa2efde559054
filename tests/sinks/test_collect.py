"""The review loop's collector (issue 12): ``maskwatch --headless --collect DIR`` saves the crops the
classifier is least sure of, with ``collected.csv``; one per track every ``per_track_s``; capped,
oldest pruned first, rows and files kept consistent; image folders judged face by face."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, PEOPLE, TINY_MODEL, run_cli
from maskwatch.classification import model_info
from maskwatch.config import CollectConfig
from maskwatch.crop import crop_faces
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import Frame
from maskwatch.results import FrameResult, Stats, Totals
from maskwatch.sinks import COLLECT_COLUMNS, CollectSink
from maskwatch.sinks.collect import CSV_NAME, read_collected, rows_by_uncertainty


def read_rows(folder):
    with open(folder / CSV_NAME, newline="") as fh:
        return list(csv.DictReader(fh))


def face_box(row, prefix=""):
    return [float(row[f"{prefix}{k}"]) for k in ("x1", "y1", "x2", "y2")]


def frame_of(path, index):
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def test_headless_collect_on_a_clip_one_crop_per_track_with_its_row(known_faces_clip, tmp_path):
    out = tmp_path / "collect"
    r = run_cli("--headless", "--quiet", "--source", known_faces_clip["path"], "--model", TINY_MODEL,
                "--detector", "full", "--collect", out, timeout=120)
    assert r.returncode == 0, r.stderr
    table = read_rows(out)
    with open(out / CSV_NAME, newline="") as fh:
        assert next(csv.reader(fh)) == list(COLLECT_COLUMNS)
    # the untrained test model is unsure of every face (top probability ~0.34); each track lasts
    # under per_track_s (3 s): one crop each (the two people, and a few short-lived false faces of
    # MediaPipe's full-range model on the textured wall)
    assert len({r["track"] for r in table}) == len(table)
    assert len([r for r in table if float(r["face_px"]) > 100]) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted([CSV_NAME, *(r["file"] for r in table)])
    info = model_info(TINY_MODEL)
    for row in table:
        assert row["reason"] == "low_confidence" and row["model"] == info.describe()
        assert row["camera"] == str(known_faces_clip["path"]) and row["image"] == ""
        probs = [float(row[f"p_{k}"]) for k in ("with_mask", "without_mask", "mask_worn_incorrectly")]
        assert sum(probs) == pytest.approx(1.0, abs=2e-3) and float(row["top_prob"]) == max(probs) < 0.75
        assert row["guess"] == ("with_mask", "without_mask", "mask_worn_incorrectly")[int(np.argmax(probs))]
        box = face_box(row)
        assert float(row["face_px"]) == pytest.approx(box[2] - box[0], abs=0.11)
        # the saved crop has 1.5x the served square's side, and cutting the face box out of it with
        # the model's margin gives the pixels the classifier was served
        saved = cv2.imread(str(out / row["file"]))
        served = [int(row[f"served_{k}"]) for k in ("x1", "y1", "x2", "y2")]
        side = served[2] - served[0]
        assert saved.shape[0] == saved.shape[1] == round(1.5 * side)
        frame = frame_of(known_faces_clip["path"], int(row["frame"]))
        again = crop_faces(saved, [face_box(row, "face_")], info.input_size, info.margin)
        as_served = crop_faces(frame, [box], info.input_size, info.margin)
        assert np.abs(again.astype(int) - as_served.astype(int)).max() <= 2


def test_per_track_s_spaces_the_crops_of_one_track(known_faces_clip, tmp_path):
    out = tmp_path / "collect"
    toml = tmp_path / "site.toml"
    toml.write_text("[collect]\nper_track_s = 0.5\n")
    r = run_cli("--headless", "--quiet", "--source", known_faces_clip["path"], "--model", TINY_MODEL,
                "--detector", "full", "--collect", out, "--config", toml, timeout=120)
    assert r.returncode == 0, r.stderr
    by_track = {}
    for row in read_rows(out):
        by_track.setdefault(row["track"], []).append(int(row["frame"]))
    fps = known_faces_clip["fps"]
    assert sorted(len(frames) for frames in by_track.values())[-2:] >= [3, 3]  # 2 s on screen, a crop every 0.5 s
    for frames in by_track.values():
        assert all(b - a >= 0.5 * fps for a, b in zip(frames, frames[1:]))


def test_image_folder_sources_are_judged_face_by_face(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(FIXTURES / "faces_scene_maksssksksss21.jpg", images / "a_scene.jpg")
    shutil.copy(PEOPLE / "with_mask.jpg", images / "b_person.jpg")
    out = tmp_path / "collect"
    r = run_cli("--headless", "--quiet", "--source", images, "--model", TINY_MODEL, "--collect", out, timeout=120)
    assert r.returncode == 0, r.stderr
    table = read_rows(out)
    assert {row["image"] for row in table} == {"a_scene.jpg", "b_person.jpg"}
    assert len([row for row in table if row["image"] == "a_scene.jpg"]) >= 3  # several faces of one image
    assert all(row["track"] == "-1" and row["reason"] == "low_confidence" for row in table)
    assert all(row["frame"] == ("0" if row["image"] == "a_scene.jpg" else "1") for row in table)


def test_collect_into_a_file_or_a_foreign_csv_is_one_line_error(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    r = run_cli("--headless", "--source", PEOPLE, "--model", TINY_MODEL, "--collect", a_file)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "not a folder" in r.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / CSV_NAME).write_text("a,b\n1,2\n")
    r = run_cli("--headless", "--source", PEOPLE, "--model", TINY_MODEL, "--collect", foreign)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "different header" in r.stderr
    assert (foreign / CSV_NAME).read_text() == "a,b\n1,2\n"


# -- the sink on made-up frames (fast) -----------------------------------------------------------


def result(index, probs, tracks, t=None, size=(240, 320)):
    image = np.random.default_rng(index).integers(0, 255, (*size, 3), np.uint8)
    n = len(tracks)
    xyxy = np.array([[20 + 60 * i, 40, 70 + 60 * i, 100] for i in range(n)], np.float32)
    faces = Faces(xyxy=xyxy, score=np.ones(n, np.float32), probs=np.asarray(probs, np.float32).reshape(n, 3),
                  track_id=np.asarray(tracks))
    frame = Frame(image, index, float(index if t is None else t), 0.0)
    return FrameResult(frame, faces, Stats(), Totals())


UNSURE = [0.5, 0.3, 0.2]
SURE_WITH, SURE_WITHOUT = [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]


def sink(folder, **kw) -> CollectSink:
    config = replace(CollectConfig(folder=folder), **kw)
    return CollectSink(config, source="rtsp://admin:secret@cam.local/live", model=model_info(TINY_MODEL))


def test_rate_limit_split_votes_and_the_camera_redacted(tmp_path):
    with sink(tmp_path, per_track_s=3.0) as s:
        for i in range(10):  # track 1 unsure at every frame (1 s apart): crops at t=0, 3, 6, 9
            s.on_result(result(i, [UNSURE], [1]))
        # track 2 sure of itself, but its vote splits: 4 with_mask, then without_mask
        for i, p in enumerate([SURE_WITH] * 4 + [SURE_WITHOUT] * 3):
            s.on_result(result(20 + i, [p], [2]))
        # track 3 sure and unanimous: nothing
        for i in range(10):
            s.on_result(result(40 + i, [SURE_WITH], [3]))
    table = read_rows(tmp_path)
    assert [(r["track"], r["frame"], r["reason"]) for r in table] == [
        ("1", "0", "low_confidence"), ("1", "3", "low_confidence"), ("1", "6", "low_confidence"),
        ("1", "9", "low_confidence"), ("2", "25", "split_vote")]  # 4 vs 2: the runner-up has a third
    assert all(r["camera"] == "rtsp://admin:***@cam.local/live" for r in table)
    assert "secret" not in (tmp_path / CSV_NAME).read_text()


def test_split_vote_off_and_threshold(tmp_path):
    with sink(tmp_path, split_vote=False, max_top_prob=0.4, per_track_s=0.0) as s:
        for i, p in enumerate([SURE_WITH] * 4 + [SURE_WITHOUT] * 3 + [UNSURE]):
            s.on_result(result(i, [p], [2]))
    assert read_rows(tmp_path) == []  # 0.5 is not under 0.4, and split votes are not collected


def test_caps_prune_the_oldest_rows_then_files(tmp_path):
    with sink(tmp_path, per_track_s=0.0, max_files=10) as s:
        for i in range(25):
            s.on_result(result(i, [UNSURE], [1]))
        assert s.saved == 25 and s.pruned > 0
    table = read_rows(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png")
    assert 9 <= len(table) <= 10 and sorted(r["file"] for r in table) == files  # every row has its file, and back
    assert [int(r["frame"]) for r in table] == list(range(25 - len(table), 25))  # the newest kept, in order
    # the size cap: each crop is ~48 kB of noise (a 126 px PNG); 0.2 MB holds only a few
    other = tmp_path / "small"
    with sink(other, per_track_s=0.0, max_mb=0.2) as s:
        for i in range(12):
            s.on_result(result(i, [UNSURE], [1]))
    table = read_rows(other)
    sizes = sum((other / r["file"]).stat().st_size for r in table)
    assert 2 <= len(table) < 12 and sizes <= 200_000
    assert sorted(r["file"] for r in table) == sorted(p.name for p in other.iterdir() if p.suffix == ".png")


def test_an_existing_folder_is_appended_to_and_rows_of_deleted_files_are_dropped(tmp_path):
    with sink(tmp_path, per_track_s=0.0) as s:
        for i in range(3):
            s.on_result(result(i, [UNSURE], [1]))
    first = read_rows(tmp_path)
    (tmp_path / first[0]["file"]).unlink()  # someone deleted a crop by hand
    with sink(tmp_path, per_track_s=0.0) as s:
        s.on_result(result(7, [UNSURE], [4]))
    table = read_rows(tmp_path)
    assert [r["file"] for r in table] == [first[1]["file"], first[2]["file"], table[-1]["file"]]
    assert table[-1]["file"] not in {r["file"] for r in first} and table[-1]["frame"] == "7"
    assert read_collected(tmp_path) == table


def test_faces_not_classified_this_frame_and_status_updates_are_skipped(tmp_path):
    nan = [np.nan] * 3
    with sink(tmp_path, per_track_s=0.0) as s:
        s.on_result(result(0, [nan], [1]))
        s.on_result(FrameResult(None, Faces.empty(), Stats(), Totals()))
    assert read_rows(tmp_path) == []


def test_a_crop_at_the_frame_edge_replicates_the_border_and_keeps_the_served_box(tmp_path):
    with sink(tmp_path, per_track_s=0.0) as s:
        r = result(0, [UNSURE], [1])
        r.faces.xyxy[0] = [0, 0, 30, 40]  # the top left corner: the saved square leaves the frame
        s.on_result(r)
    row = read_rows(tmp_path)[0]
    saved = cv2.imread(str(tmp_path / row["file"]))
    info = model_info(TINY_MODEL)
    again = crop_faces(saved, [face_box(row, "face_")], info.input_size, info.margin)
    assert np.abs(again.astype(int) - crop_faces(r.frame.image, [[0, 0, 30, 40]], info.input_size, info.margin)
                  .astype(int)).max() <= 2


def test_rows_by_uncertainty_most_unsure_first(tmp_path):
    with sink(tmp_path, per_track_s=0.0, max_top_prob=0.99) as s:
        for i, p in enumerate([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05]]):
            s.on_result(result(i, [p], [i]))
    assert [r["frame"] for r in rows_by_uncertainty(read_collected(tmp_path))] == ["1", "0", "2"]


def test_a_collect_config_without_a_folder_is_an_error():
    with pytest.raises(MaskwatchError, match="no folder"):
        CollectSink(CollectConfig())


def test_the_apps_collect_and_model_settings_reach_the_run_config(tmp_path):
    from PyQt6.QtCore import QSettings

    from maskwatch.config import Config
    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    settings.set_model_and_collect(model=TINY_MODEL, collect=tmp_path / "crops")
    config = settings.apply(Config())
    assert config.collect.folder == tmp_path / "crops" and config.model == TINY_MODEL
    settings.set_model_and_collect(model=tmp_path / "gone.tflite", collect=None)  # a model deleted since: not used
    config = settings.apply(Config())
    assert config.collect.folder is None and config.model == Config().model


def _age(path, seconds):
    import os
    import time

    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_torn_last_line_is_repaired_and_orphan_crops_are_deleted(tmp_path, caplog):
    """A crash while a row was appended (review finding): the next row must not be glued onto it,
    and the crop whose row was torn (and one left by a prune) must not escape the caps."""
    with sink(tmp_path, per_track_s=0.0) as s:
        for i in range(3):
            s.on_result(result(i, [UNSURE], [1]))
    first = read_rows(tmp_path)
    text = (tmp_path / CSV_NAME).read_text()
    torn = text[:text.rstrip("\n").rfind("\n") + 1] + text.rstrip("\n").rsplit("\n", 1)[1][:25]  # 3rd row cut
    (tmp_path / CSV_NAME).write_text(torn + "\n" + "only,three,fields\n" + torn.rsplit("\n", 1)[1])
    stray = tmp_path / "000099_t5.png"  # a crop of ours with no row at all
    stray.write_bytes((tmp_path / first[0]["file"]).read_bytes())
    for name in (first[2]["file"], stray.name):
        _age(tmp_path / name, 3600)
    mine = tmp_path / "holiday.png"  # not a name the collector gives: never touched
    mine.write_bytes(b"x")
    caplog.set_level("WARNING", logger="maskwatch.collect")
    with sink(tmp_path, per_track_s=0.0) as s:
        assert s.orphans_deleted == 2
        s.on_result(result(7, [UNSURE], [4]))
    table = read_rows(tmp_path)
    assert [r["file"] for r in table[:2]] == [first[0]["file"], first[1]["file"]]
    assert len(table) == 3 and table[2]["frame"] == "7" and all(len(r) == len(COLLECT_COLUMNS) for r in table)
    assert (tmp_path / CSV_NAME).read_text().count("\n") == 4  # header + 3 whole rows
    assert not (tmp_path / first[2]["file"]).exists() and not stray.exists() and mine.exists()
    pngs = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png" and p != mine)
    assert pngs == sorted(r["file"] for r in table)  # every crop counted by the caps has its row, and back
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "last line was cut off" in messages and "2 rows had the wrong number of columns" in messages  # the cut 3rd row, the short one
    assert "2 crops had no row" in messages


def test_a_fresh_orphan_is_left_to_the_collector_writing_it(tmp_path):
    (tmp_path / "000001_t1.png").write_bytes(b"x")  # just written: its row may be on its way
    with sink(tmp_path) as s:
        assert s.orphans_deleted == 0
    assert (tmp_path / "000001_t1.png").exists()


def test_retain_days_drops_old_crops_rows_first(tmp_path):
    with sink(tmp_path, per_track_s=0.0) as s:
        for i in range(4):
            s.on_result(result(i, [UNSURE], [1]))
    rows = read_rows(tmp_path)
    old = rows[:2]
    text = (tmp_path / CSV_NAME).read_text()
    for r in old:  # saved ten days ago
        text = text.replace(r["time"], "2020-01-01T08:00:00.000+00:00", 1)
    (tmp_path / CSV_NAME).write_text(text)
    config = replace(CollectConfig(folder=tmp_path), per_track_s=0.0)
    with CollectSink(config, source="cam", model=model_info(TINY_MODEL), retain_days=7) as s:
        assert s.expired == 2
    kept = read_rows(tmp_path)
    assert [r["file"] for r in kept] == [r["file"] for r in rows[2:]]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == sorted(r["file"] for r in kept)
