"""Sinks: CSV interval log (header, rows, append, no clobber, flush), JSONL events, snapshots."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime

import cv2
import numpy as np
import pytest

from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.results import Event, IntervalSummary
from maskwatch.sinks import CSV_COLUMNS, EventJsonl, IntervalCsvLog, SnapshotSaver

HEADER = "start,end,frames,faces,people_seen,with_mask,without_mask,mask_worn_incorrectly,compliance_rate,fps,dropped_frames,source_state"


def summary(start=1_700_000_000.0, people=(3, 1, 0), **kw) -> IntervalSummary:
    values = dict(start=start, end=start + 60, frames=1500, faces=2400, people_seen=sum(people),
                  by_label=dict(zip(("with_mask", "without_mask", "mask_worn_incorrectly"), people)),
                  fps=24.96, dropped_frames=2, source_state=SourceState.LIVE)
    values.update(kw)
    return IntervalSummary(**values)


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_header_and_row(tmp_path):
    path = tmp_path / "logs" / "counts.csv"  # parent folder is created
    with IntervalCsvLog(path) as log:
        log.write(summary())
        log.write(summary(start=1_700_000_060.0, people=(0, 0, 0), people_seen=0, source_state=SourceState.RECONNECTING))
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER == ",".join(CSV_COLUMNS)
    rows = read_rows(path)
    assert len(rows) == 2
    r = rows[0]
    assert datetime.fromisoformat(r["start"]).timestamp() == 1_700_000_000.0
    assert datetime.fromisoformat(r["end"]).timestamp() == 1_700_000_060.0
    assert datetime.fromisoformat(r["start"]).tzinfo is not None
    assert (r["frames"], r["faces"], r["people_seen"]) == ("1500", "2400", "4")
    assert (r["with_mask"], r["without_mask"], r["mask_worn_incorrectly"]) == ("3", "1", "0")
    assert (r["compliance_rate"], r["fps"], r["dropped_frames"], r["source_state"]) == ("0.750", "25.0", "2", "live")
    assert rows[1]["compliance_rate"] == ""  # nobody decided
    assert rows[1]["source_state"] == "reconnecting"


def test_row_visible_to_another_reader_immediately(tmp_path):
    path = tmp_path / "counts.csv"
    log = IntervalCsvLog(path)
    assert path.read_text() == HEADER + "\n"
    log.write(summary())
    assert len(read_rows(path)) == 1  # before close
    log.close()
    log.close()  # idempotent
    with pytest.raises(MaskwatchError):
        log.write(summary())


def test_append_never_clobbers(tmp_path):
    path = tmp_path / "counts.csv"
    with IntervalCsvLog(path) as log:
        log.write(summary())
    before = path.read_bytes()
    with IntervalCsvLog(path) as log:
        log.write(summary(start=1_700_000_060.0))
    after = path.read_bytes()
    assert after.startswith(before)
    assert after.count(HEADER.encode()) == 1
    assert len(read_rows(path)) == 2


def test_empty_existing_file_gets_header(tmp_path):
    path = tmp_path / "counts.csv"
    path.touch()
    with IntervalCsvLog(path) as log:
        log.write(summary())
    assert path.read_text().splitlines()[0] == HEADER


def test_torn_last_line_is_not_merged_with_new_row(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text(HEADER + "\n2023-11-14T22:13:20+00:00,2023-11")  # a previous run killed mid-row
    with IntervalCsvLog(path) as log:
        log.write(summary())
    lines = path.read_text().splitlines()
    assert lines[1] == "2023-11-14T22:13:20+00:00,2023-11"
    assert lines[2].split(",")[2] == "1500"


def test_mismatched_header_is_an_error_and_file_untouched(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("a,b,c\n1,2,3\n")
    before = path.read_bytes()
    with pytest.raises(MaskwatchError) as e:
        IntervalCsvLog(path)
    assert "different header" in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == before


def test_unwritable_path_is_a_one_line_error(tmp_path):
    with pytest.raises(MaskwatchError) as e:
        IntervalCsvLog(tmp_path)  # a directory
    assert "\n" not in str(e.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaskwatchError):
        IntervalCsvLog(blocker / "counts.csv")  # parent is a file
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(MaskwatchError):
                IntervalCsvLog(ro / "counts.csv")
        finally:
            ro.chmod(0o700)


def event(kind="label_decided", track_id=5, label="without_mask", t=1_700_000_001.25, frame=42):
    return Event(kind, track_id, t, frame, label=label if kind == "label_decided" else None,
                 confidence=0.8 if kind == "label_decided" else None, box=(10.0, 20.5, 50.25, 70.0))


def test_event_jsonl(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventJsonl(path) as sink:
        sink.write(event("person_seen"))
        assert len(path.read_text().splitlines()) == 1  # flushed per line
        sink.write_all([event(), event(track_id=6, label="with_mask")])
    with EventJsonl(path) as sink:  # append
        sink.write(event(track_id=7))
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["track_id"] for r in recs] == [5, 5, 6, 7]
    r = recs[1]
    assert set(r) == {"kind", "track_id", "label", "confidence", "time", "epoch", "frame_index", "box"}
    assert (r["kind"], r["label"], r["confidence"], r["frame_index"]) == ("label_decided", "without_mask", 0.8, 42)
    assert r["epoch"] == 1_700_000_001.25
    assert datetime.fromisoformat(r["time"]).timestamp() == pytest.approx(1_700_000_001.25)
    assert r["box"] == [10.0, 20.5, 50.2, 70.0] or r["box"] == [10.0, 20.5, 50.3, 70.0]
    assert recs[0]["label"] is None and recs[0]["confidence"] is None


def test_event_jsonl_unwritable(tmp_path):
    with pytest.raises(MaskwatchError):
        EventJsonl(tmp_path)


def frame_and_faces():
    img = np.full((240, 320, 3), 60, np.uint8)
    faces = Faces(xyxy=np.array([[100, 60, 160, 140], [200, 60, 260, 140]], np.float32),
                  score=np.array([0.9, 0.9], np.float32),
                  probs=np.array([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05]], np.float32),
                  track_id=np.array([5, 6]), track_label=np.array([1, 0]))
    return img, faces


def test_snapshot_once_per_track_and_only_listed_labels(tmp_path):
    folder = tmp_path / "snaps"
    saver = SnapshotSaver(folder)
    assert folder.is_dir()
    img, faces = frame_and_faces()
    written = saver.maybe_save(img, faces, [event("person_seen"), event(), event(track_id=6, label="with_mask")])
    assert len(written) == 1
    p = written[0]
    assert p.parent == folder and "track5" in p.name and "without_mask" in p.name and p.suffix == ".jpg"
    assert p.name.startswith(datetime.fromtimestamp(1_700_000_001.25).strftime("%Y%m%dT%H%M%S"))
    saved = cv2.imread(str(p))
    assert saved.shape == img.shape
    assert not np.array_equal(saved, img)  # annotated
    assert saver.maybe_save(img, faces, [event()]) == []  # same track again: nothing
    assert saver.maybe_save(img, faces, []) == []
    assert len(list(folder.iterdir())) == 1
    incorrect = saver.maybe_save(img, faces, [event(track_id=9, label="mask_worn_incorrectly")])
    assert len(incorrect) == 1 and "mask_worn_incorrectly" in incorrect[0].name


def test_snapshot_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaskwatchError):
        SnapshotSaver(blocker)
    with pytest.raises(MaskwatchError):
        SnapshotSaver(tmp_path / "s", labels=("no_such_label",))
